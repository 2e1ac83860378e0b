/**
 * One ONNX model per trained model: backbone taps → feature normalisation (if the model has one)
 * → flow → latents, and the anomaly map with the image score, built by walking our own model
 * classes (backbone.ts, flow.ts, map.ts) so it computes what the tfjs model computes. The NFA
 * detection is not in the graph: it runs on the latents in TypeScript (the calibration travels in
 * the metadata).
 *
 * Graph inputs and outputs (NCHW, ONNX's convention; `batch` is symbolic):
 *   image        float32 [batch, 3, S, S]  RGB in [0, 1], S = input size
 *   z0 … z{L−1}  float32 [batch, C_l, h_l, w_l]  latents, finest first
 *   anomaly_map  float32 [batch, 1, T, T]  (U-Flow 1 − P in [0, 1]; FastFlow −P in [−1, 0])
 *   score        float32 [batch]           max of the map
 */
import type { AnomalyModel } from '../model-factory.js';
import { UFlowModel } from '../uflow-model.js';
import { FastFlowModel } from '../fastflow-model.js';
import { LAYER_NORM_EPS, type FeatureNorm } from '../backbones/feature-norm.js';
import { values } from '../flows/state.js';
import { GraphBuilder, OPSET } from './graph.js';
import { backboneEmitter } from './backbone.js';
import { ExportUnsupportedError } from './errors.js';
import { emitAllInOne, emitUFlowGraph } from './flow.js';
import { emitAnomalyMap } from './map.js';
import { layerNormCHW } from './layers.js';
import { toHW, type SizeInput } from '../size.js';

export { ExportUnsupportedError } from './errors.js';
export { SUPPORTED_BACKBONES, backboneSupported } from './backbone.js';

/** Bumped when the graph's inputs, outputs or metadata keys change meaning. */
export const ONNX_EXPORT_FORMAT = 'uflow-onnx/1';

export interface OnnxExportOptions {
  /** Anomaly map size: [h, w] or one side (the evaluation size: 256 for a square input, else the input aspect with the longer side 256). */
  mapSize: SizeInput;
  /** Version of this software (producer_version). */
  producerVersion: string;
  /** Run-level metadata added after the model's own keys (run id, threshold, calibration, …). */
  metadata?: Record<string, string>;
  docString?: string;
}

export interface OnnxIo {
  name: string;
  shape: Array<number | string>;
  description: string;
}

export interface OnnxExport {
  bytes: Uint8Array;
  inputs: OnnxIo[];
  outputs: OnnxIo[];
  metadata: Record<string, string>;
  stats: { nodes: number; initializers: number; parameters: number };
}

/** The LayerNorm per level as NCHW [C, H, W] data. */
function emitNorm(g: GraphBuilder, norm: FeatureNorm, features: readonly string[]): string[] {
  const state = new Map(norm.state());
  return features.map((f, i) => {
    const [h, w, c] = norm.shapes[i]!;
    const weight = state.get(`feature_extractor.feature_normalizations.${i}.weight`);
    const bias = state.get(`feature_extractor.feature_normalizations.${i}.bias`);
    if (!weight || !bias) throw new Error(`ONNX export: the feature normalisation of level ${i} has no weights`);
    return layerNormCHW(g, f, values(weight), values(bias), [c, h, w], LAYER_NORM_EPS, `norm.level${i}`);
  });
}

/** Model kinds and why one is refused; undefined when it can be exported. */
export function unsupportedReason(model: AnomalyModel): string | undefined {
  if (!model.extractor) return 'ONNX export needs the model with its backbone (this one was built from cached features only).';
  if (!(model instanceof UFlowModel) && !(model instanceof FastFlowModel)) return `ONNX export does not support the model '${model.kind}' yet.`;
  try {
    backboneEmitter(model.extractor);
  } catch (e) {
    if (e instanceof ExportUnsupportedError) return e.message;
    throw e;
  }
  return undefined;
}

/** Builds the ONNX model of `model` (with its extractor). Throws ExportUnsupportedError for what is not supported yet. */
export function exportOnnx(model: AnomalyModel, opts: OnnxExportOptions): OnnxExport {
  const why = unsupportedReason(model);
  if (why) throw new ExportUnsupportedError(why);
  const ex = model.extractor!;
  const [H, W] = toHW(model.config.inputSize);
  const [Th, Tw] = toHW(opts.mapSize, 'map size');
  const backbone = backboneEmitter(ex);
  const g = new GraphBuilder();
  const image = g.input('image', ['batch', 3, H, W]);
  const feats = backbone.emit(g, image);
  const norm = (model as UFlowModel | FastFlowModel).norm;
  const normed = norm ? emitNorm(g, norm, feats) : feats;

  let z: string[];
  let latentShapes: Array<[number, number, number]>; // [C, h, w]
  if (model instanceof UFlowModel) {
    z = emitUFlowGraph(g, normed, model.flow);
    latentShapes = model.flow.latentShapes().map(([h, w, c]) => [c, h, w]);
  } else {
    const ff = model as FastFlowModel;
    z = ff.flows.levels.map((blocks, l) => blocks.reduce((x, b, k) => emitAllInOne(g, x, b, `flow.level${l}.step${k}`), normed[l]!));
    latentShapes = model.featureSizes().map(([h, w], l) => [model.config.channels[l]!, h, w]);
  }
  const { map, score } = emitAnomalyMap(g, model.kind, z, latentShapes.map(([, h, w]) => [h, w] as const), [Th, Tw]);

  const inputs: OnnxIo[] = [{ name: 'image', shape: ['batch', 3, H, W], description: `RGB in [0, 1], NCHW, ${H}×${W} (height × width)` }];
  const outputs: OnnxIo[] = [];
  z.forEach((zs, l) => {
    const [c, h, w] = latentShapes[l]!;
    const name = `z${l}`;
    g.output(zs, name, ['batch', c, h, w]);
    outputs.push({ name, shape: ['batch', c, h, w], description: `latent of level ${l} (${l === 0 ? 'finest' : l === z.length - 1 ? 'coarsest' : 'middle'}), N(0, I) on normal images` });
  });
  const range = model.mapRange();
  g.output(map, 'anomaly_map', ['batch', 1, Th, Tw]);
  outputs.push({ name: 'anomaly_map', shape: ['batch', 1, Th, Tw], description: `anomaly map in [${range[0]}, ${range[1]}], higher = more anomalous` });
  g.output(score, 'score', ['batch']);
  outputs.push({ name: 'score', shape: ['batch'], description: 'image score: the maximum of the anomaly map' });

  const metadata: Record<string, string> = {
    format: ONNX_EXPORT_FORMAT,
    model: model.kind,
    model_name: model.kind === 'fastflow' ? 'FastFlow' : 'U-Flow',
    model_config: JSON.stringify(model.config),
    backbone: ex.name,
    input_size: H === W ? String(H) : JSON.stringify([H, W]),
    input: JSON.stringify(inputs[0]),
    input_normalisation: `RGB in [0, 1] (pixel / 255), resized to ${H}×${W} (height × width) with antialiased bilinear (PIL BILINEAR); the backbone's own normalisation is in the graph: ${backbone.preprocessing}`,
    outputs: JSON.stringify(outputs),
    map_size: Th === Tw ? String(Th) : JSON.stringify([Th, Tw]),
    map_range: JSON.stringify(range),
    opset: String(OPSET),
    ...(opts.metadata ?? {}),
  };
  const bytes = g.encode({ graphName: `${model.kind}_${ex.name.replace(/[^A-Za-z0-9_]+/g, '_')}`, producerVersion: opts.producerVersion, metadata, docString: opts.docString });
  return { bytes, inputs, outputs, metadata, stats: g.stats() };
}
