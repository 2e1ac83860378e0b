/**
 * torchvision / timm ResNet feature extractor (U-Flow §3.2, FastFlow): the outputs of `layer1`,
 * `layer2`, `layer3` (timm `features_only`, `out_indices=[1,2,3]`), in eval mode.
 *
 * The architecture is read from the state dict: stem width from `conv1.weight`, the number of
 * stages and of blocks per stage from the `layerN.M.*` keys present, BasicBlock (resnet18/34) or
 * Bottleneck (resnet50, wide_resnet50_2: `conv3` present) from the keys, widths from the weight
 * shapes. Strides follow torchvision: stage 1 keeps the resolution, each later stage halves it
 * (in `conv1` of a BasicBlock, in `conv2` of a Bottleneck, in the 1×1 `downsample.0`).
 *
 * BatchNorm (running statistics, eps 1e-5) is folded into the preceding convolution at load time:
 * w' = w·γ/√(σ²+ε), b' = β − μ·γ/√(σ²+ε), computed in float64. Convolutions use symmetric explicit
 * padding (PyTorch semantics; TensorFlow's 'same' pads stride-2 convolutions asymmetrically).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorMap } from '../io/safetensors.js';
import { normalizeImagenet } from '../ops/image-norm.js';
import type { FeatureExtractor } from './types.js';
import { expectShape, getF32, selectModel } from './weights.js';
import { convOut, formatHW, toHW, type HW, type SizeInput } from '../size.js';

const BN_EPS = 1e-5;

/** A convolution with its BatchNorm folded in: HWIO filter, bias, stride, symmetric padding. */
export interface FoldedConv {
  filter: tf.Tensor4D;
  bias: tf.Tensor1D;
  stride: number;
  pad: number;
  outChannels: number;
}

export interface ResnetBlock {
  conv1: FoldedConv;
  conv2: FoldedConv;
  /** Bottleneck only. */
  conv3?: FoldedConv;
  downsample?: FoldedConv;
}

export interface ResnetArchitecture {
  kind: 'basic' | 'bottleneck';
  stemWidth: number;
  /** Blocks per stage (stage 1 first). */
  blocks: number[];
  /** Output channels per stage. */
  channels: number[];
}

/** Folds `bn` (prefix, e.g. 'layer1.0.bn1') into conv `conv` (e.g. 'layer1.0.conv1'). */
function foldConvBn(sd: TensorMap, conv: string, bn: string, stride: number, what: string): FoldedConv {
  const w = getF32(sd, `${conv}.weight`, what);
  if (w.shape.length !== 4) throw new Error(`${what}: '${conv}.weight' should be a 4-D OIHW conv weight, got [${w.shape.join(', ')}]`);
  const [o, i, kh, kw] = w.shape as [number, number, number, number];
  if (kh !== kw || kh % 2 !== 1) throw new Error(`${what}: '${conv}.weight' has a ${kh}×${kw} kernel; odd square kernels expected`);
  const gamma = getF32(sd, `${bn}.weight`, what);
  const beta = getF32(sd, `${bn}.bias`, what);
  const mean = getF32(sd, `${bn}.running_mean`, what);
  const variance = getF32(sd, `${bn}.running_var`, what);
  for (const [k, t] of [['weight', gamma], ['bias', beta], ['running_mean', mean], ['running_var', variance]] as const) {
    expectShape(t.shape, [o], `${bn}.${k}`, what);
  }
  // OIHW → HWIO with the per-output-channel scale applied.
  const filter = new Float32Array(o * i * kh * kw);
  const bias = new Float32Array(o);
  for (let oc = 0; oc < o; oc++) {
    const scale = gamma.data[oc]! / Math.sqrt(variance.data[oc]! + BN_EPS);
    bias[oc] = beta.data[oc]! - mean.data[oc]! * scale;
    for (let ic = 0; ic < i; ic++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++) {
          filter[((y * kw + x) * i + ic) * o + oc] = w.data[((oc * i + ic) * kh + y) * kw + x]! * scale;
        }
  }
  return {
    filter: tf.tensor4d(filter, [kh, kw, i, o]),
    bias: tf.tensor1d(bias),
    stride,
    pad: (kh - 1) / 2,
    outChannels: o,
  };
}

function runConv(x: tf.Tensor4D, c: FoldedConv, relu: boolean): tf.Tensor4D {
  return tf.fused.conv2d({
    x,
    filter: c.filter,
    strides: c.stride,
    pad: c.pad,
    bias: c.bias,
    activation: relu ? 'relu' : 'linear',
  });
}

/** Reads the architecture of a (prefix-free) ResNet state dict. */
export function resnetArchitecture(sd: TensorMap, what = 'resnet'): ResnetArchitecture {
  const stem = sd.get('conv1.weight');
  if (!stem) throw new Error(`${what}: no 'conv1.weight' in the state dict`);
  const blocks: number[] = [];
  for (let s = 1; sd.has(`layer${s}.0.conv1.weight`); s++) {
    let n = 0;
    while (sd.has(`layer${s}.${n}.conv1.weight`)) n++;
    blocks.push(n);
  }
  if (blocks.length === 0) throw new Error(`${what}: the state dict has no 'layer1.0.conv1.weight': not a torchvision/timm ResNet`);
  const kind = sd.has('layer1.0.conv3.weight') ? 'bottleneck' : 'basic';
  const last = kind === 'bottleneck' ? 'conv3' : 'conv2';
  const channels = blocks.map((n, s) => {
    const w = sd.get(`layer${s + 1}.${n - 1}.${last}.weight`);
    if (!w) throw new Error(`${what}: 'layer${s + 1}.${n - 1}.${last}.weight' is missing`);
    return w.shape[0]!;
  });
  return { kind, stemWidth: stem.shape[0]!, blocks, channels };
}

export interface ResnetOptions {
  /** Stages whose outputs are returned (1-based, finest first). Default [1, 2, 3]. */
  layers?: number[];
}

export class ResnetExtractor implements FeatureExtractor {
  readonly channels: number[];
  readonly scaleFactors: number[];
  readonly layerNormLevels = true;
  readonly architecture: ResnetArchitecture;
  /** The folded convolutions (read by the ONNX export, models/export/resnet.ts). */
  readonly stem: FoldedConv;
  readonly stages: ResnetBlock[][];
  /** Stages returned, 1-based, finest first. */
  readonly layers: number[];
  private disposed = false;
  readonly inputSize: HW;
  readonly featureSizes: HW[];

  constructor(
    readonly name: string,
    stateDict: TensorMap,
    inputSize: SizeInput,
    opts: ResnetOptions = {},
  ) {
    this.inputSize = toHW(inputSize);
    const what = name;
    const sd = selectModel(stateDict, 'conv1.weight', what);
    const arch = resnetArchitecture(sd, what);
    this.architecture = arch;
    const layers = opts.layers ?? [1, 2, 3];
    if (layers.length === 0) throw new Error(`${what}: no output layers requested`);
    for (let i = 0; i < layers.length; i++) {
      const l = layers[i]!;
      if (!Number.isInteger(l) || l < 1 || l > arch.blocks.length) {
        throw new Error(`${what}: layer ${l} requested, but the weights have stages 1..${arch.blocks.length}`);
      }
      if (i > 0 && l <= layers[i - 1]!) throw new Error(`${what}: output layers must be increasing (finest first), got [${layers.join(', ')}]`);
    }
    if (/resnet18|resnet34/.test(name) && arch.kind !== 'basic') {
      throw new Error(`${what}: the weights are a Bottleneck ResNet (they have 'layer1.0.conv3.weight'), not ${name}`);
    }
    if (/wide_resnet|resnet50|resnet101/.test(name) && arch.kind !== 'bottleneck') {
      throw new Error(`${what}: the weights are a BasicBlock ResNet (no 'layer1.0.conv3.weight'), not ${name}`);
    }
    this.layers = layers;
    const stemW = getF32(sd, 'conv1.weight', what);
    if (stemW.shape[1] !== 3) throw new Error(`${what}: 'conv1.weight' expects ${stemW.shape[1]} input channels; RGB (3) needed`);
    const nStages = layers[layers.length - 1]!;
    const made: tf.Tensor[] = [];
    try {
      this.stem = foldConvBn(sd, 'conv1', 'bn1', 2, what);
      made.push(this.stem.filter, this.stem.bias);
      this.stages = [];
      for (let s = 0; s < nStages; s++) {
        const stride = s === 0 ? 1 : 2;
        const stage: ResnetBlock[] = [];
        for (let b = 0; b < arch.blocks[s]!; b++) {
          const p = `layer${s + 1}.${b}`;
          const st = b === 0 ? stride : 1;
          const block: ResnetBlock =
            arch.kind === 'basic'
              ? { conv1: foldConvBn(sd, `${p}.conv1`, `${p}.bn1`, st, what), conv2: foldConvBn(sd, `${p}.conv2`, `${p}.bn2`, 1, what) }
              : {
                  conv1: foldConvBn(sd, `${p}.conv1`, `${p}.bn1`, 1, what),
                  conv2: foldConvBn(sd, `${p}.conv2`, `${p}.bn2`, st, what),
                  conv3: foldConvBn(sd, `${p}.conv3`, `${p}.bn3`, 1, what),
                };
          if (sd.has(`${p}.downsample.0.weight`)) block.downsample = foldConvBn(sd, `${p}.downsample.0`, `${p}.downsample.1`, st, what);
          for (const c of [block.conv1, block.conv2, block.conv3, block.downsample]) if (c) made.push(c.filter, c.bias);
          stage.push(block);
        }
        this.stages.push(stage);
      }
    } catch (e) {
      for (const t of made) t.dispose();
      throw e;
    }
    this.channels = layers.map((l) => arch.channels[l - 1]!);
    this.scaleFactors = layers.map((l) => 4 * 2 ** (l - 1));
    this.featureSizes = layers.map((l) => resnetLevelSize(this.inputSize, l));
  }

  /** Stem: conv1 7×7/2 (+BN folded) → ReLU → max-pool 3×3/2 pad 1, on a normalised NHWC image. */
  stemForward(x: tf.Tensor4D): tf.Tensor4D {
    return tf.tidy(() => tf.maxPool(runConv(x, this.stem, true), 3, 2, 1));
  }

  private blockForward(x: tf.Tensor4D, blk: ResnetBlock): tf.Tensor4D {
    return tf.tidy(() => {
      let y = runConv(x, blk.conv1, true);
      if (blk.conv3) {
        y = runConv(y, blk.conv2, true);
        y = runConv(y, blk.conv3, false);
      } else {
        y = runConv(y, blk.conv2, false);
      }
      const shortcut = blk.downsample ? runConv(x, blk.downsample, false) : x;
      return tf.relu(tf.add(y, shortcut)) as tf.Tensor4D;
    });
  }

  /** Stage `s` (1-based) applied to the previous stage's output (or the stem's for s = 1). */
  stageForward(x: tf.Tensor4D, s: number): tf.Tensor4D {
    const stage = this.stages[s - 1];
    if (!stage) throw new Error(`${this.name}: stage ${s} is not loaded`);
    return tf.tidy(() => {
      let y = x;
      for (const blk of stage) y = this.blockForward(y, blk);
      return y;
    });
  }

  /** Features from an already normalised NHWC image. */
  extractNormalized(x: tf.Tensor4D): tf.Tensor4D[] {
    if (this.disposed) throw new Error(`${this.name}: the extractor was disposed`);
    return tf.tidy(() => {
      const outs: tf.Tensor4D[] = [];
      let y = this.stemForward(x);
      const last = this.layers[this.layers.length - 1]!;
      for (let s = 1; s <= last; s++) {
        y = this.stageForward(y, s);
        if (this.layers.includes(s)) outs.push(y);
      }
      return outs;
    });
  }

  extract(images: tf.Tensor4D): tf.Tensor4D[] {
    if (images.shape[3] !== 3) throw new Error(`${this.name}: images must be NHWC RGB, got shape [${images.shape.join(', ')}]`);
    return tf.tidy(() => this.extractNormalized(normalizeImagenet(images))) as tf.Tensor4D[];
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.stem.filter.dispose();
    this.stem.bias.dispose();
    for (const stage of this.stages)
      for (const blk of stage)
        for (const c of [blk.conv1, blk.conv2, blk.conv3, blk.downsample]) {
          c?.filter.dispose();
          c?.bias.dispose();
        }
  }
}

/**
 * [h, w] of stage `layer`'s output for an input of `input`, by PyTorch's rule on each layer: conv1
 * 7×7/2 p3, max-pool 3×3/2 p1, then for each later stage a 3×3/2 p1 convolution (its 1×1/2 p0
 * shortcut gives the same size). Each step is ⌈n/2⌉.
 */
export function resnetLevelSize(input: SizeInput, layer: number): HW {
  const side = (n: number) => {
    let m = convOut(convOut(n, 7, 2, 3), 3, 2, 1);
    for (let s = 2; s <= layer; s++) m = convOut(m, 3, 2, 1);
    return m;
  };
  const [h, w] = toHW(input);
  return [side(h), side(w)];
}

/**
 * A ResNet extractor from a torchvision/timm state dict (keys optionally prefixed, e.g.
 * `feature_extractor.extractor.`). `name` is 'resnet18', 'wide_resnet50_2', …; the architecture
 * comes from the weights.
 */
export function createResnetExtractor(name: string, stateDict: TensorMap, inputSize: SizeInput, opts: ResnetOptions = {}): ResnetExtractor {
  const hw = toHW(inputSize);
  if (Math.min(...hw) < 32) throw new Error(`${name}: input size must be at least 32 a side, got ${formatHW(hw)}`);
  return new ResnetExtractor(name, stateDict, inputSize, opts);
}
