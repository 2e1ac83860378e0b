/**
 * Any TensorFlow.js layers model (a `model.json` + weight shards folder, e.g. a Keras
 * Applications model converted with tensorflowjs_converter) as a frozen backbone: the outputs of
 * named layers ("taps", finest first) are the feature levels.
 *
 * - Files are read with node:fs through a custom IOHandler (no tfjs-node needed).
 * - The topology is pruned to the ancestors of the tapped layers before it is built, with the taps
 *   as the model's outputs, and the input shape set to the extractor's input size (Keras exports
 *   fix e.g. 224×224; convolutional models accept any size). Only the kept layers' weights are
 *   decoded, and tfjs checks in strict mode that each of them is present.
 * - Images in [0, 1] are mapped linearly onto the model's `inputRange` (Keras MobileNet: [-1, 1]).
 * - Channels and scale factors are measured by running a zero image once.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { mapRange } from '../ops/image-norm.js';
import type { FeatureExtractor } from './types.js';
import { formatHW, toHW, type HW, type SizeInput } from '../size.js';

/** Keras MobileNetV2 feature layers at strides 4, 8, 16 (their channels depend on the width multiplier). */
export const MOBILENET_V2_TAPS = ['block_2_add', 'block_5_add', 'block_12_add'] as const;

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

interface ModelJson {
  modelTopology: Json;
  weightsManifest?: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>;
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  userDefinedMetadata?: Record<string, unknown>;
}

export interface LayersModelFiles {
  dir: string;
  json: ModelJson;
  weightSpecs: tf.io.WeightsManifestEntry[];
  weightData: ArrayBuffer;
}

/** Reads `model.json` and its weight shards (concatenated in manifest order, as tfjs expects). */
export function readLayersModelDir(dirIn: string): LayersModelFiles {
  const dir = resolve(dirIn);
  const jsonPath = join(dir, 'model.json');
  if (!existsSync(jsonPath)) {
    throw new Error(`no TensorFlow.js layers model at ${dir}: expected ${jsonPath} (with its weight files beside it)`);
  }
  let json: ModelJson;
  try {
    json = JSON.parse(readFileSync(jsonPath, 'utf8'));
  } catch (e) {
    throw new Error(`${jsonPath} is not valid JSON (${(e as Error).message}): export the model again`);
  }
  if (!json.modelTopology) throw new Error(`${jsonPath} has no modelTopology: it is not a TensorFlow.js layers model (graph models cannot be tapped)`);
  if (json.format && json.format !== 'layers-model') {
    throw new Error(`${jsonPath} is a '${json.format}', not a layers model: only layers models (tf.loadLayersModel) can be used as backbones`);
  }
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  const buffers: Uint8Array[] = [];
  for (const group of json.weightsManifest ?? []) {
    weightSpecs.push(...group.weights);
    for (const p of group.paths) {
      const file = join(dir, p);
      if (!existsSync(file)) throw new Error(`${jsonPath} names the weight file '${p}', which is missing from ${dir}`);
      buffers.push(readFileSync(file));
    }
  }
  const total = buffers.reduce((n, b) => n + b.byteLength, 0);
  const all = new Uint8Array(total);
  let off = 0;
  for (const b of buffers) {
    all.set(b, off);
    off += b.byteLength;
  }
  return { dir, json, weightSpecs, weightData: all.buffer };
}

const DTYPE_BYTES: Record<string, number> = { float32: 4, int32: 4, bool: 1, uint8: 1, uint16: 2, float16: 2, complex64: 8 };

function specBytes(s: tf.io.WeightsManifestEntry): number {
  const n = s.shape.reduce((a, b) => a * b, 1);
  const dt = s.quantization?.dtype ?? s.dtype;
  const bytes = DTYPE_BYTES[dt];
  if (bytes === undefined) throw new Error(`weight '${s.name}' has dtype ${dt}, which cannot be used here`);
  return n * bytes;
}

/** The model's layer config list and input-layer names (Functional models only; null for others). */
function functionalConfig(topology: Json): { config: Json; layers: Json[] } | null {
  const cls = topology?.class_name;
  const config = topology?.config;
  if ((cls === 'Model' || cls === 'Functional') && Array.isArray(config?.layers)) return { config, layers: config.layers };
  return null;
}

/** Names of the layers a node list (Keras JSON `inbound_nodes`) reads from. */
function inboundNames(layer: Json): string[] {
  const out: string[] = [];
  const visit = (v: Json): void => {
    if (Array.isArray(v)) {
      if (v.length >= 3 && typeof v[0] === 'string' && typeof v[1] === 'number') out.push(v[0]);
      else for (const e of v) visit(e);
    } else if (v && typeof v === 'object' && Array.isArray(v.config?.keras_history)) {
      out.push(v.config.keras_history[0]);
    } else if (v && typeof v === 'object') {
      for (const e of Object.values(v)) visit(e);
    }
  };
  visit(layer.inbound_nodes ?? []);
  return out;
}

export interface LoadLayersOptions {
  /** Input size to build the model for (one integer: square, or [height, width]). Default: as exported. */
  inputSize?: SizeInput;
  /** Keep only what these layers need and make them the outputs, in this order. */
  outputs?: readonly string[];
}

/** A topology whose input layer accepts `inputSize` images and (optionally) pruned to `outputs`. */
export function prepareTopology(topology: Json, opts: LoadLayersOptions): { topology: Json; keptLayers: Set<string> | null } {
  const t = JSON.parse(JSON.stringify(topology.model_config ?? topology));
  const fn = functionalConfig(t);
  const setShape = (cfg: Json) => {
    const shape = cfg.batch_input_shape ?? cfg.batch_shape;
    if (Array.isArray(shape) && shape.length === 4 && opts.inputSize) {
      const [h, w] = toHW(opts.inputSize);
      const next = [shape[0] ?? null, h, w, shape[3]];
      if (cfg.batch_shape) cfg.batch_shape = next;
      else cfg.batch_input_shape = next;
    }
  };
  if (!fn) {
    // Sequential: the first layer carries the input shape.
    const layers = t?.config?.layers ?? t?.config;
    if (Array.isArray(layers) && layers[0]?.config) setShape(layers[0].config);
    return { topology: t, keptLayers: null };
  }
  const byName = new Map<string, Json>(fn.layers.map((l: Json) => [l.name ?? l.config?.name, l]));
  const inputNames: string[] = (fn.config.input_layers ?? []).map((x: Json) => x[0]);
  if (inputNames.length !== 1) throw new Error(`the model has ${inputNames.length} inputs; backbones need exactly one image input`);
  for (const n of inputNames) {
    const l = byName.get(n);
    if (l?.config) setShape(l.config);
  }
  if (!opts.outputs) return { topology: t, keptLayers: null };
  const missing = opts.outputs.filter((n) => !byName.has(n));
  if (missing.length) {
    const names = [...byName.keys()];
    throw new Error(
      `the model has no layer named ${missing.map((m) => `'${m}'`).join(', ')}; its layers are ${names.slice(0, 12).join(', ')}${names.length > 12 ? `, … (${names.length} in all)` : ''}`,
    );
  }
  const keep = new Set<string>();
  const stack = [...opts.outputs];
  while (stack.length) {
    const n = stack.pop()!;
    if (keep.has(n)) continue;
    keep.add(n);
    const l = byName.get(n);
    if (!l) throw new Error(`the model's topology refers to a layer '${n}' it does not define`);
    stack.push(...inboundNames(l));
  }
  fn.config.layers = fn.layers.filter((l: Json) => keep.has(l.name ?? l.config?.name));
  fn.config.output_layers = opts.outputs.map((n) => [n, 0, 0]);
  return { topology: t, keptLayers: keep };
}

/** An IOHandler over files already read (node:fs), with the topology and weights prepared. */
export function layersModelHandler(files: LayersModelFiles, opts: LoadLayersOptions = {}): tf.io.IOHandler {
  const { topology, keptLayers } = prepareTopology(files.json.modelTopology, opts);
  let weightSpecs = files.weightSpecs;
  let weightData = files.weightData;
  if (keptLayers) {
    const specs: tf.io.WeightsManifestEntry[] = [];
    const parts: Uint8Array[] = [];
    let off = 0;
    const src = new Uint8Array(files.weightData);
    for (const s of files.weightSpecs) {
      const len = specBytes(s);
      if (keptLayers.has(s.name.split('/')[0]!)) {
        specs.push(s);
        parts.push(src.subarray(off, off + len));
      }
      off += len;
    }
    if (off !== src.byteLength) {
      throw new Error(`${files.dir}: the weight files hold ${src.byteLength} bytes but model.json describes ${off}: the export is incomplete or damaged`);
    }
    const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.byteLength;
    }
    weightSpecs = specs;
    weightData = out.buffer;
  }
  return {
    load: async () => ({
      modelTopology: topology,
      weightSpecs,
      weightData,
      format: files.json.format,
      generatedBy: files.json.generatedBy,
      convertedBy: files.json.convertedBy ?? undefined,
    }),
  };
}

/** Loads a layers model from a folder (model.json + weights) without tfjs-node. */
export async function loadLayersModelFromDir(dir: string, opts: LoadLayersOptions = {}): Promise<tfl.LayersModel> {
  return tfl.loadLayersModel(layersModelHandler(readLayersModelDir(dir), opts), { strict: true });
}

/** Whether the model looks like Keras's MobileNetV2 (its layer names), which expects inputs in [-1, 1]. */
function looksLikeMobilenetV2(topology: Json): boolean {
  const fn = functionalConfig(topology.model_config ?? topology);
  if (!fn) return false;
  const names = new Set(fn.layers.map((l: Json) => l.name ?? l.config?.name));
  return names.has('Conv1') && MOBILENET_V2_TAPS.every((n) => names.has(n));
}

export interface TfjsLayersOptions {
  /** Folder with model.json and its weight files. */
  dir: string;
  /** One integer (square) or [height, width]. */
  inputSize: SizeInput;
  /** Layers to tap, finest first. Default for Keras MobileNetV2: block_2_add, block_5_add, block_12_add. */
  layers?: readonly string[];
  /** Range the model expects its RGB input in. Default: [-1, 1] for MobileNetV2, else [0, 1]. */
  inputRange?: readonly [number, number];
  /** 'caffe': Keras "caffe" preprocessing (0–255, RGB→BGR, ImageNet means subtracted) instead of `inputRange`. */
  preprocessing?: 'range' | 'caffe';
  /** The extractor's name (default `tfjs:<dir>`; the named ones: `mobilenet_v2` (bundled), `resnet50`). */
  name?: string;
}

/** Keras "caffe" ImageNet means, BGR order. */
export const CAFFE_BGR_MEAN = [103.939, 116.779, 123.68] as const;

/** Keras `preprocess_input(mode='caffe')` of RGB images in [0, 1]. */
export function caffePreprocess(images: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.sub(tf.reverse(tf.mul(images, 255), -1), tf.tensor1d([...CAFFE_BGR_MEAN])) as tf.Tensor4D);
}

export class TfjsLayersExtractor implements FeatureExtractor {
  readonly layerNormLevels = true;
  private disposed = false;

  constructor(
    readonly name: string,
    readonly inputSize: HW,
    readonly layers: readonly string[],
    readonly inputRange: readonly [number, number],
    readonly channels: readonly number[],
    readonly scaleFactors: readonly number[],
    /** The pruned model (its layers are walked by the ONNX export, models/export/keras-layers.ts). */
    readonly model: tfl.LayersModel,
    readonly preprocessing: 'range' | 'caffe' = 'range',
    /** [h, w] of each tapped layer's output, as the model computes them for `inputSize`. */
    readonly featureSizes: readonly HW[] = [],
  ) {}

  extract(images: tf.Tensor4D): tf.Tensor4D[] {
    if (this.disposed) throw new Error(`${this.name}: the extractor was disposed`);
    const [, h, w, c] = images.shape;
    if (h !== this.inputSize[0] || w !== this.inputSize[1] || c !== 3) {
      throw new Error(`${this.name}: images must be [B, ${this.inputSize[0]}, ${this.inputSize[1]}, 3], got [${images.shape.join(', ')}]`);
    }
    return tf.tidy(() => {
      const input = this.preprocessing === 'caffe' ? caffePreprocess(images) : mapRange(images, this.inputRange);
      const out = this.model.apply(input, { training: false }) as tf.Tensor | tf.Tensor[];
      return (Array.isArray(out) ? out : [out]) as tf.Tensor4D[];
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.model.dispose();
  }
}

/**
 * A level's nominal stride: the input side over the level's side, the larger of the two axes,
 * rounded to a power of two when it is within 25 % of one (a non-divisible size gives e.g.
 * 100/13 ≈ 7.7 for stride 8), else to the nearest integer.
 */
export function nominalStride(input: HW, level: HW): number {
  const r = Math.max(input[0] / level[0], input[1] / level[1]);
  if (Number.isInteger(r)) return r;
  const p = 2 ** Math.round(Math.log2(r));
  return Math.abs(r - p) <= 0.25 * p ? p : Math.round(r);
}

/** A backbone from a TensorFlow.js layers model folder; see the module comment. */
export async function createTfjsLayersExtractor(opts: TfjsLayersOptions): Promise<TfjsLayersExtractor> {
  const inputSize = toHW(opts.inputSize);
  if (Math.min(...inputSize) < 16) throw new Error(`tfjs backbone: input size must be at least 16 a side, got ${formatHW(inputSize)}`);
  const files = readLayersModelDir(opts.dir);
  const mobilenet = looksLikeMobilenetV2(files.json.modelTopology);
  const layers = opts.layers ?? (mobilenet ? MOBILENET_V2_TAPS : undefined);
  if (!layers || layers.length === 0) {
    throw new Error(`tfjs backbone ${files.dir}: name the layers to take features from (finest first), e.g. layers: ['block_2_add', 'block_5_add', 'block_12_add']`);
  }
  const inputRange = opts.inputRange ?? (mobilenet ? ([-1, 1] as const) : ([0, 1] as const));
  const model = await tfl.loadLayersModel(layersModelHandler(files, { inputSize, outputs: layers }), { strict: true });
  try {
    const shapes = tf.tidy(() => {
      const outs = model.apply(tf.zeros([1, inputSize[0], inputSize[1], 3]), { training: false }) as tf.Tensor | tf.Tensor[];
      return (Array.isArray(outs) ? outs : [outs]).map((o) => o.shape);
    });
    if (shapes.length !== layers.length) throw new Error(`tfjs backbone ${files.dir}: expected ${layers.length} outputs, the model gave ${shapes.length}`);
    const channels: number[] = [];
    const scaleFactors: number[] = [];
    const featureSizes: HW[] = [];
    shapes.forEach((s, i) => {
      if (s.length !== 4) throw new Error(`tfjs backbone: layer '${layers[i]}' outputs shape [${s.join(', ')}], not a [B,H,W,C] feature map`);
      channels.push(s[3]!);
      featureSizes.push([s[1]!, s[2]!]);
      scaleFactors.push(nominalStride(inputSize, [s[1]!, s[2]!]));
      if (i > 0 && scaleFactors[i]! < scaleFactors[i - 1]!) {
        throw new Error(`tfjs backbone: layers must be given finest first, but '${layers[i]}' (stride ${scaleFactors[i]}) is finer than '${layers[i - 1]}' (stride ${scaleFactors[i - 1]})`);
      }
    });
    return new TfjsLayersExtractor(opts.name ?? `tfjs:${files.dir}`, inputSize, [...layers], inputRange, channels, scaleFactors, model, opts.preprocessing ?? 'range', featureSizes);
  } catch (e) {
    model.dispose();
    throw e;
  }
}
