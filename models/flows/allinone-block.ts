/**
 * FrEIA's AllInOneBlock as U-Flow configures it (spec/uflow.md §4.1–4.2): affine coupling with
 * clamping 2.0 (tanh), the subnet output scaled by 0.1, a SOFTPLUS (β = 0.5) global affine, then a
 * hard channel permutation loaded from `w_perm` (never regenerated). No conditions, no GIN, no
 * Householder, no reverse pre-permutation. NHWC inside; PyTorch names and layouts at the state edge.
 */
import * as tf from '@tensorflow/tfjs-core';
import { oihwToHwio, hwioToOihw } from '../layout.js';
import type { RawTensor } from '../io/safetensors.js';
import { TensorFileError } from '../io/safetensors.js';
import { conv2dSame, permutationMatrix, permuteChannels, permuteChannelsMatMul, sumPerSample } from '../ops/grad-ops.js';
import { wasmCopyKernelsActive } from '../ops/wasm-copy-kernels.js';
import { mulberry32, randomPermutation, uniform } from './rng.js';
import { f32, owned, readF32, values, type StateSpec, type Stateful } from './state.js';

export const AFFINE_CLAMPING = 2.0;
/** FrEIA's initial global_scale for global_affine_init 1.0: 2·ln(exp(5) − 1), giving g = 1. */
export const GLOBAL_SCALE_INIT = 2 * Math.log(Math.exp(5) - 1);
const SOFTPLUS_BETA = 0.5;
const SOFTPLUS_THRESHOLD = 20;

export interface FlowOutput {
  y: tf.Tensor4D;
  /** Per-sample log|det J|, [B]. */
  logdet: tf.Tensor1D;
}

export interface FlowInverse {
  x: tf.Tensor4D;
  /** Per-sample log|det J| of the inverse map (the negative of the forward one), [B]. */
  logdet: tf.Tensor1D;
}

export interface NamedVariable {
  /** PyTorch state name relative to the owner (e.g. 'subnet.0.weight'). */
  name: string;
  variable: tf.Variable;
}

/**
 * g = 0.1 · softplus_β(γ) with β = 0.5 and PyTorch's threshold: softplus returns γ itself where
 * β·γ > 20. The exp branch is evaluated on min(β·γ, 20), so its gradient stays finite everywhere.
 */
export function globalScaleActivation(gamma: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const bx = tf.mul(gamma, SOFTPLUS_BETA);
    const soft = tf.div(tf.log1p(tf.exp(tf.minimum(bx, SOFTPLUS_THRESHOLD))), SOFTPLUS_BETA);
    // mask = [β·γ > 20] via step (which has a zero gradient; Greater has none in tfjs). Selecting by
    // mask·γ + (1 − mask)·soft is exact since one term is an exact zero.
    const mask = tf.step(tf.sub(bx, SOFTPLUS_THRESHOLD));
    return tf.mul(tf.add(tf.mul(mask, gamma), tf.mul(tf.sub(1, mask), soft)), 0.1);
  });
}

/** PyTorch's default Conv2d init: kaiming_uniform(a=√5) → U(±1/√fan_in) for weight and bias. OIHW data. */
function torchConvInit(cout: number, cin: number, k: number, rng: () => number): { w: Float32Array; b: Float32Array } {
  const bound = 1 / Math.sqrt(cin * k * k);
  return { w: uniform(cout * cin * k * k, bound, rng), b: uniform(cout, bound, rng) };
}

/** π from a hard permutation matrix W [C,C] (row-major): W[i, π(i)] = 1, every other entry 0. */
function permFromMatrix(w: Float32Array, c: number, what: string, source: string): number[] {
  const perm: number[] = [];
  const used = new Uint8Array(c);
  for (let i = 0; i < c; i++) {
    let col = -1;
    let ok = true;
    for (let j = 0; j < c; j++) {
      const v = w[i * c + j]!;
      if (v === 1 && col < 0) col = j;
      else if (v !== 0) ok = false;
    }
    if (!ok || col < 0 || used[col]) {
      throw new TensorFileError(
        source,
        `${what} is not a hard permutation matrix (row ${i}); only permute_soft=False blocks (U-Flow's setting) are supported`,
      );
    }
    used[col] = 1;
    perm.push(col);
  }
  return perm;
}

function permMatrix(perm: readonly number[]): Float32Array {
  const c = perm.length;
  const m = new Float32Array(c * c);
  perm.forEach((p, i) => (m[i * c + p] = 1));
  return m;
}

export interface AllInOneBlockOptions {
  channels: number;
  /** Subnet kernel size (U-Flow: 3 on even steps, 1 on odd). Odd only. */
  kernelSize: number;
  /**
   * Subnet hidden width (output channels of the first conv). Default: the passive channel count C1
   * (U-Flow). FastFlow uses int(C1 · hidden_ratio).
   */
  hiddenChannels?: number;
  /** Seed for a fresh block's weights and permutation (ignored once a state is loaded). */
  seed?: number;
  /** Or a shared generator (takes precedence over `seed`). */
  rng?: () => number;
}

export class AllInOneBlock implements Stateful {
  readonly channels: number;
  /** Passive (conditioning) channels C − ⌊C/2⌋, first in the channel order. */
  readonly c1: number;
  /** Active (transformed) channels ⌊C/2⌋. */
  readonly c2: number;
  readonly kernelSize: number;
  /** Subnet hidden width (C1 unless `hiddenChannels` was given). */
  readonly hidden: number;
  readonly w0: tf.Variable<tf.Rank.R4>;
  readonly b0: tf.Variable<tf.Rank.R1>;
  readonly w2: tf.Variable<tf.Rank.R4>;
  readonly b2: tf.Variable<tf.Rank.R1>;
  /** γ, [C] (PyTorch [1,C,1,1]). */
  readonly globalScale: tf.Variable<tf.Rank.R1>;
  /** [C] (PyTorch [1,C,1,1]). */
  readonly globalOffset: tf.Variable<tf.Rank.R1>;
  private wPerm!: Float32Array;
  private wPermInv!: Float32Array;
  private permIndex: number[] = [];
  /** π and π⁻¹ as int32 indices (gather form of the hard permutation). */
  private perm!: tf.Tensor1D;
  private invPerm!: tf.Tensor1D;
  /** Permutation matrices (matMul form; see permuteChannelsMatMul), used on wasm where GatherV2 is slow. */
  private pm!: tf.Tensor2D;
  private pmInv!: tf.Tensor2D;

  constructor(opts: AllInOneBlockOptions) {
    const { channels: c, kernelSize: k } = opts;
    if (!Number.isInteger(c) || c < 2) throw new Error(`AllInOneBlock needs at least 2 channels (got ${c})`);
    if (k % 2 !== 1) throw new Error(`AllInOneBlock subnet kernel must be odd (got ${k})`);
    this.channels = c;
    this.c2 = Math.floor(c / 2);
    this.c1 = c - this.c2;
    this.kernelSize = k;
    const hid = opts.hiddenChannels ?? this.c1;
    if (!Number.isInteger(hid) || hid < 1) throw new Error(`AllInOneBlock subnet hidden width must be a positive integer (got ${hid})`);
    this.hidden = hid;
    const rng = opts.rng ?? mulberry32(opts.seed ?? 0);
    const l0 = torchConvInit(hid, this.c1, k, rng);
    const l2 = torchConvInit(2 * this.c2, hid, k, rng);
    this.w0 = owned(oihwToHwio(l0.w, [hid, this.c1, k, k]));
    this.b0 = owned(tf.tensor1d(l0.b));
    this.w2 = owned(oihwToHwio(l2.w, [2 * this.c2, hid, k, k]));
    this.b2 = owned(tf.tensor1d(l2.b));
    this.globalScale = owned(tf.fill([c], GLOBAL_SCALE_INIT) as tf.Tensor1D);
    this.globalOffset = owned(tf.zeros([c]) as tf.Tensor1D);
    this.setPermutation(randomPermutation(c, rng));
  }

  private setPermutation(perm: number[], wPerm?: Float32Array, wPermInv?: Float32Array): void {
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    this.pm?.dispose();
    this.pmInv?.dispose();
    this.perm?.dispose();
    this.invPerm?.dispose();
    this.permIndex = [...perm];
    this.perm = tf.keep(tf.tensor1d(perm, 'int32'));
    this.invPerm = tf.keep(tf.tensor1d(inv, 'int32'));
    this.pm = tf.keep(permutationMatrix(perm));
    this.pmInv = tf.keep(permutationMatrix(inv));
    this.wPerm = wPerm ?? permMatrix(perm);
    this.wPermInv = wPermInv ?? permMatrix(inv);
  }

  /** π with out[..., i] = v[..., π(i)]. */
  permutation(): number[] {
    return [...this.permIndex];
  }

  /** g = 0.1·softplus_{0.5}(γ), [C]. */
  globalScaleActivated(): tf.Tensor1D {
    return globalScaleActivation(this.globalScale) as tf.Tensor1D;
  }

  /**
   * out[..., i] = v[..., π(i)] (or the inverse). Both forms are exact. The gather everywhere (no C²
   * work, and no TF32 rounding on GPUs that use it for matrix products), with the heap-copy GatherV2
   * of models/ops/wasm-copy-kernels.ts on wasm; the matrix product only on wasm's stock kernels
   * (UFLOW_WASM_COPY_KERNELS=0), where it is 3.5× faster than their GatherV2.
   */
  private permute(v: tf.Tensor4D, inverse: boolean): tf.Tensor4D {
    if (tf.getBackend() === 'wasm' && !wasmCopyKernelsActive()) return inverse ? permuteChannelsMatMul(v, this.pmInv, this.pm) : permuteChannelsMatMul(v, this.pm, this.pmInv);
    return inverse ? permuteChannels(v, this.invPerm, this.perm) : permuteChannels(v, this.perm, this.invPerm);
  }

  /** a = 0.1·subnet(x1): [B,H,W,2·C2]; returns (s = clamp·tanh(a[:C2]), t = a[C2:]). */
  private coupling(x1: tf.Tensor4D): { s: tf.Tensor4D; t: tf.Tensor4D } {
    const h = tf.relu(conv2dSame(x1, this.w0, this.b0));
    const a = tf.mul(conv2dSame(h as tf.Tensor4D, this.w2, this.b2), 0.1) as tf.Tensor4D;
    const [b, hh, ww] = a.shape;
    const s = tf.mul(tf.tanh(tf.slice(a, [0, 0, 0, 0], [b, hh, ww, this.c2])), AFFINE_CLAMPING) as tf.Tensor4D;
    const t = tf.slice(a, [0, 0, 0, this.c2], [b, hh, ww, this.c2]) as tf.Tensor4D;
    return { s, t };
  }

  private checkInput(x: tf.Tensor, what: string): void {
    if (x.rank !== 4 || x.shape[3] !== this.channels) {
      throw new Error(`AllInOneBlock.${what}: expected NHWC input with ${this.channels} channels, got shape [${x.shape.join(', ')}]`);
    }
  }

  forward(x: tf.Tensor4D): FlowOutput {
    this.checkInput(x, 'forward');
    return tf.tidy(() => {
      const [b, h, w] = x.shape;
      const x1 = tf.slice(x, [0, 0, 0, 0], [b, h, w, this.c1]) as tf.Tensor4D;
      const x2 = tf.slice(x, [0, 0, 0, this.c1], [b, h, w, this.c2]);
      const { s, t } = this.coupling(x1);
      const y2 = tf.add(tf.mul(x2, tf.exp(s)), t);
      const jac = sumPerSample(s);
      const u = tf.concat([x1, y2], 3);
      const g = this.globalScaleActivated();
      const v = tf.add(tf.mul(u, g), this.globalOffset);
      const y = this.permute(v as tf.Tensor4D, false);
      const logdet = tf.add(jac, tf.mul(tf.sum(tf.log(g)), h * w)) as tf.Tensor1D;
      return { y, logdet };
    });
  }

  inverse(y: tf.Tensor4D): FlowInverse {
    this.checkInput(y, 'inverse');
    return tf.tidy(() => {
      const [b, h, w] = y.shape;
      const g = this.globalScaleActivated();
      const v = this.permute(y, true);
      const u = tf.div(tf.sub(v, this.globalOffset), g);
      const x1 = tf.slice(u, [0, 0, 0, 0], [b, h, w, this.c1]) as tf.Tensor4D;
      const y2 = tf.slice(u, [0, 0, 0, this.c1], [b, h, w, this.c2]);
      const { s, t } = this.coupling(x1);
      const x2 = tf.mul(tf.sub(y2, t), tf.exp(tf.neg(s)));
      const x = tf.concat([x1, x2], 3) as tf.Tensor4D;
      const logdet = tf.sub(tf.neg(sumPerSample(s)), tf.mul(tf.sum(tf.log(g)), h * w)) as tf.Tensor1D;
      return { x, logdet };
    });
  }

  /** Trainable parameters (w_perm / w_perm_inv are not), with their PyTorch names. */
  trainableVariables(): NamedVariable[] {
    return [
      { name: 'global_scale', variable: this.globalScale },
      { name: 'global_offset', variable: this.globalOffset },
      { name: 'subnet.0.weight', variable: this.w0 },
      { name: 'subnet.0.bias', variable: this.b0 },
      { name: 'subnet.2.weight', variable: this.w2 },
      { name: 'subnet.2.bias', variable: this.b2 },
    ];
  }

  stateSpec(): StateSpec[] {
    const { channels: c, c1, c2, kernelSize: k, hidden: hid } = this;
    return [
      { name: 'global_scale', shape: [1, c, 1, 1] },
      { name: 'global_offset', shape: [1, c, 1, 1] },
      { name: 'w_perm', shape: [c, c, 1, 1] },
      { name: 'w_perm_inv', shape: [c, c, 1, 1] },
      { name: 'subnet.0.weight', shape: [hid, c1, k, k] },
      { name: 'subnet.0.bias', shape: [hid] },
      { name: 'subnet.2.weight', shape: [2 * c2, hid, k, k] },
      { name: 'subnet.2.bias', shape: [2 * c2] },
    ];
  }

  /** PyTorch state_dict order and layouts (OIHW, [1,C,1,1], w_perm [C,C,1,1]). */
  state(): Array<[string, RawTensor]> {
    const c = this.channels;
    const w0 = hwioToOihw(this.w0);
    const w2 = hwioToOihw(this.w2);
    return [
      ['global_scale', f32([1, c, 1, 1], readF32(this.globalScale))],
      ['global_offset', f32([1, c, 1, 1], readF32(this.globalOffset))],
      ['w_perm', f32([c, c, 1, 1], Float32Array.from(this.wPerm))],
      ['w_perm_inv', f32([c, c, 1, 1], Float32Array.from(this.wPermInv))],
      ['subnet.0.weight', f32(w0.shape, w0.data)],
      ['subnet.0.bias', f32([this.hidden], readF32(this.b0))],
      ['subnet.2.weight', f32(w2.shape, w2.data)],
      ['subnet.2.bias', f32([2 * this.c2], readF32(this.b2))],
    ];
  }

  /** Loads a validated state (relative names). π comes from w_perm; w_perm_inv must be its inverse. */
  loadState(get: (name: string) => RawTensor, source: string, where = 'AllInOneBlock'): void {
    const c = this.channels;
    const wPerm = values(get('w_perm'));
    const wPermInv = values(get('w_perm_inv'));
    const perm = permFromMatrix(wPerm, c, `${where}.w_perm`, source);
    const inv = permFromMatrix(wPermInv, c, `${where}.w_perm_inv`, source);
    if (perm.some((p, i) => inv[p] !== i)) {
      throw new TensorFileError(source, `${where}.w_perm_inv is not the inverse of ${where}.w_perm`);
    }
    const sw0 = get('subnet.0.weight');
    const sw2 = get('subnet.2.weight');
    tf.tidy(() => {
      this.globalScale.assign(tf.tensor1d(values(get('global_scale'))));
      this.globalOffset.assign(tf.tensor1d(values(get('global_offset'))));
      this.w0.assign(oihwToHwio(values(sw0), sw0.shape));
      this.b0.assign(tf.tensor1d(values(get('subnet.0.bias'))));
      this.w2.assign(oihwToHwio(values(sw2), sw2.shape));
      this.b2.assign(tf.tensor1d(values(get('subnet.2.bias'))));
    });
    this.setPermutation(perm, Float32Array.from(wPerm), Float32Array.from(wPermInv));
  }

  dispose(): void {
    for (const v of [this.w0, this.b0, this.w2, this.b2, this.globalScale, this.globalOffset]) v.dispose();
    this.pm.dispose();
    this.pmInv.dispose();
    this.perm.dispose();
    this.invPerm.dispose();
  }
}
