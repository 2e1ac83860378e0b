/**
 * Vision-transformer feature paths (timm v0.9 names and semantics), NHWC in, NHWC out:
 *
 * - CaiT (U-Flow MS-CaiT, spec/uflow.md §3.1; FastFlow `cait_m48_448`): `patch_embed` (conv with
 *   kernel = stride = patch) → `+ pos_embed` → `blocks[0..n-1]` (LayerScale blocks with
 *   talking-heads attention) → final `norm` → tokens reshaped row-major to [B, H/p, W/p, C].
 *   No class token, no class-attention blocks.
 * - DeiT distilled (FastFlow `deit_base_distilled_patch16_384`, spec/fastflow.md): the same with
 *   [cls, dist] tokens prepended before `+ pos_embed`, plain multi-head attention, no layer scale,
 *   and the first 2 tokens dropped after `norm`.
 *
 * Blocks: x = x + γ₁·attn(norm1(x)); x = x + γ₂·mlp(norm2(x)). LayerNorm eps 1e-6, qkv with bias,
 * q scaled by head_dim^−½, MLP fc1 → exact GELU (erf) → fc2. Talking heads (present when the
 * state dict has `attn.proj_l`): the logits are mixed across heads by `proj_l` before the softmax
 * and the probabilities by `proj_w` after it. Layer scale: `gamma_1/gamma_2` (CaiT) or
 * `ls1.gamma/ls2.gamma` (timm ViT), absent otherwise.
 *
 * Attention runs head-major ([h·B, N, N]) so that the head mixes are plain [h,h]·[h, B·N·N]
 * matrix products, without transposing the N×N maps.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorMap } from '../io/safetensors.js';
import { normalizeImagenet } from '../ops/image-norm.js';
import { resizeBicubic } from '../ops/resize.js';
import type { FeatureExtractor } from './types.js';
import { expectShape, getF32, prefixesOf, selectModel, subMap } from './weights.js';
import type { HW } from '../size.js';

const LN_EPS = 1e-6;

export type VitKind = 'cait' | 'deit';

interface Linear {
  /** [in, out] (PyTorch's weight transposed). */
  w: tf.Tensor2D;
  b: tf.Tensor1D | null;
}

interface Norm {
  g: tf.Tensor1D;
  b: tf.Tensor1D;
}

interface Block {
  norm1: Norm;
  qkv: Linear;
  /** Talking heads: [h,h] mixes across heads (PyTorch layout [out,in], applied as W·a) and biases [h,1]. */
  projL?: { w: tf.Tensor2D; b: tf.Tensor2D };
  projW?: { w: tf.Tensor2D; b: tf.Tensor2D };
  proj: Linear;
  gamma1?: tf.Tensor1D;
  norm2: Norm;
  fc1: Linear;
  fc2: Linear;
  gamma2?: tf.Tensor1D;
}

export interface VitOptions {
  /** Number of attention heads. Read from `proj_l` for talking-heads models; otherwise embed/64 (timm's DeiT/ViT head width). */
  numHeads?: number;
  /** Used in error messages. */
  what?: string;
}

/** The token path of one CaiT / DeiT model. Weights live on the engine until `dispose()`. */
export class VitTokens {
  readonly kind: VitKind;
  readonly what: string;
  readonly embed: number;
  readonly patch: number;
  /** Patches per side. */
  readonly grid: number;
  /** Square input size the position embeddings were trained for (grid · patch). */
  readonly imgSize: number;
  readonly depth: number;
  readonly heads: number;
  /** Tokens prepended before the patch tokens (DeiT distilled: cls, dist = 2). */
  readonly prefixTokens: number;
  private readonly patchW: tf.Tensor4D;
  private readonly patchB: tf.Tensor1D | null;
  private readonly posEmbed: tf.Tensor3D;
  private readonly prefix: tf.Tensor3D | null;
  private readonly blocks: Block[];
  private readonly finalNorm: Norm;
  private readonly owned: tf.Tensor[] = [];
  private disposed = false;

  constructor(kind: VitKind, stateDict: TensorMap, opts: VitOptions = {}) {
    this.kind = kind;
    const what = opts.what ?? kind;
    this.what = what;
    const sd = selectModel(stateDict, 'patch_embed.proj.weight', what);
    const f = (k: string) => getF32(sd, k, what);
    try {
      const pw = f('patch_embed.proj.weight');
      if (pw.shape.length !== 4 || pw.shape[1] !== 3 || pw.shape[2] !== pw.shape[3]) {
        throw new Error(`${what}: 'patch_embed.proj.weight' should be [C, 3, p, p], got [${pw.shape.join(', ')}]`);
      }
      const [c, , p] = pw.shape as [number, number, number, number];
      this.embed = c;
      this.patch = p;
      this.patchW = this.own(tf.tidy(() => tf.transpose(tf.tensor4d(pw.data, pw.shape as [number, number, number, number]), [2, 3, 1, 0]))) as tf.Tensor4D;
      this.patchB = sd.has('patch_embed.proj.bias') ? this.vec('patch_embed.proj.bias', sd, [c]) : null;

      // Prefix tokens (DeiT: cls, then dist) are part of the sequence; CaiT's cls_token is only used
      // by its class-attention blocks, which the feature path skips.
      const prefixKeys = kind === 'deit' ? ['cls_token', 'dist_token'].filter((k) => sd.has(k)) : [];
      this.prefixTokens = prefixKeys.length;
      if (kind === 'deit' && !sd.has('cls_token')) throw new Error(`${what}: 'cls_token' is missing from the state dict`);
      this.prefix = prefixKeys.length
        ? (this.own(tf.tidy(() => tf.concat(prefixKeys.map((k) => { const t = f(k); expectShape(t.shape, [1, 1, c], k, what); return tf.tensor3d(t.data, [1, 1, c]); }), 1))) as tf.Tensor3D)
        : null;
      const pe = f('pos_embed');
      if (pe.shape.length !== 3 || pe.shape[0] !== 1 || pe.shape[2] !== c) {
        throw new Error(`${what}: 'pos_embed' should be [1, N, ${c}], got [${pe.shape.join(', ')}]`);
      }
      const nPatches = pe.shape[1]! - this.prefixTokens;
      const grid = Math.round(Math.sqrt(nPatches));
      if (grid * grid !== nPatches) throw new Error(`${what}: 'pos_embed' has ${nPatches} patch positions, not a square grid`);
      this.grid = grid;
      this.imgSize = grid * p;
      this.posEmbed = this.own(tf.tensor3d(pe.data, pe.shape as [number, number, number]));

      let depth = 0;
      while (sd.has(`blocks.${depth}.attn.qkv.weight`)) depth++;
      if (depth === 0) throw new Error(`${what}: no 'blocks.0.attn.qkv.weight': not a ${kind === 'cait' ? 'CaiT' : 'DeiT'} state dict`);
      this.depth = depth;
      const pl = sd.get('blocks.0.attn.proj_l.weight');
      const heads = pl ? pl.shape[0]! : (opts.numHeads ?? Math.max(1, Math.round(c / 64)));
      if (opts.numHeads !== undefined && pl && opts.numHeads !== heads) {
        throw new Error(`${what}: ${opts.numHeads} heads requested but the talking-heads weights are for ${heads}`);
      }
      if (c % heads !== 0) throw new Error(`${what}: embed width ${c} is not divisible by ${heads} heads`);
      this.heads = heads;
      this.blocks = [];
      // Blocks are loaded lazily up to what is used; see `ensureBlocks`.
      this.sd = sd;
      this.finalNorm = this.norm('norm', sd);
    } catch (e) {
      for (const t of this.owned) t.dispose();
      throw e;
    }
  }

  private sd: TensorMap | null;

  private own<T extends tf.Tensor>(t: T): T {
    this.owned.push(t);
    return t;
  }

  private vec(key: string, sd: TensorMap, shape: number[]): tf.Tensor1D {
    const t = getF32(sd, key, this.what);
    expectShape(t.shape, shape, key, this.what);
    return this.own(tf.tensor1d(t.data));
  }

  private norm(prefix: string, sd: TensorMap): Norm {
    return { g: this.vec(`${prefix}.weight`, sd, [this.embed]), b: this.vec(`${prefix}.bias`, sd, [this.embed]) };
  }

  private linear(prefix: string, sd: TensorMap, inF: number, outF?: number): Linear {
    const w = getF32(sd, `${prefix}.weight`, this.what);
    if (w.shape.length !== 2 || w.shape[1] !== inF || (outF !== undefined && w.shape[0] !== outF)) {
      throw new Error(`${this.what}: '${prefix}.weight' has shape [${w.shape.join(', ')}], expected [${outF ?? 'out'}, ${inF}]`);
    }
    const [o, i] = w.shape as [number, number];
    const wt = new Float32Array(i * o);
    for (let r = 0; r < o; r++) for (let k = 0; k < i; k++) wt[k * o + r] = w.data[r * i + k]!;
    return {
      w: this.own(tf.tensor2d(wt, [i, o])),
      b: sd.has(`${prefix}.bias`) ? this.vec(`${prefix}.bias`, sd, [o]) : null,
    };
  }

  private headMix(prefix: string, sd: TensorMap): { w: tf.Tensor2D; b: tf.Tensor2D } {
    const h = this.heads;
    const w = getF32(sd, `${prefix}.weight`, this.what);
    expectShape(w.shape, [h, h], `${prefix}.weight`, this.what);
    const b = sd.has(`${prefix}.bias`) ? getF32(sd, `${prefix}.bias`, this.what) : { data: new Float32Array(h), shape: [h] };
    expectShape(b.shape, [h], `${prefix}.bias`, this.what);
    return { w: this.own(tf.tensor2d(w.data, [h, h])), b: this.own(tf.tensor2d(b.data, [h, 1])) };
  }

  private loadBlock(i: number, sd: TensorMap): Block {
    const c = this.embed;
    const p = `blocks.${i}`;
    const gamma = (a: string, b: string) => (sd.has(`${p}.${a}`) ? this.vec(`${p}.${a}`, sd, [c]) : sd.has(`${p}.${b}`) ? this.vec(`${p}.${b}`, sd, [c]) : undefined);
    const fc1 = this.linear(`${p}.mlp.fc1`, sd, c);
    const blk: Block = {
      norm1: this.norm(`${p}.norm1`, sd),
      qkv: this.linear(`${p}.attn.qkv`, sd, c, 3 * c),
      proj: this.linear(`${p}.attn.proj`, sd, c, c),
      gamma1: gamma('gamma_1', 'ls1.gamma'),
      norm2: this.norm(`${p}.norm2`, sd),
      fc1,
      fc2: this.linear(`${p}.mlp.fc2`, sd, fc1.w.shape[1], c),
      gamma2: gamma('gamma_2', 'ls2.gamma'),
    };
    if (sd.has(`${p}.attn.proj_l.weight`)) {
      blk.projL = this.headMix(`${p}.attn.proj_l`, sd);
      blk.projW = this.headMix(`${p}.attn.proj_w`, sd);
    }
    return blk;
  }

  /** Loads blocks 0..n-1 onto the engine (once); later blocks are never materialised. */
  ensureBlocks(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > this.depth) throw new Error(`${this.what}: ${n} blocks requested, the model has ${this.depth}`);
    if (this.blocks.length >= n) return;
    if (!this.sd) throw new Error(`${this.what}: weights were released`);
    while (this.blocks.length < n) this.blocks.push(this.loadBlock(this.blocks.length, this.sd));
  }

  /** Drops the reference to the host-side state dict (after every needed block is loaded). */
  releaseStateDict(): void {
    this.sd = null;
  }

  /** Normalised NHWC image [B, S, S, 3] (S = imgSize) → patch tokens [B, N, C]. */
  patchEmbed(x: tf.Tensor4D): tf.Tensor3D {
    const [b, h, w] = x.shape;
    if (h !== this.imgSize || w !== this.imgSize) {
      throw new Error(`${this.what}: input must be ${this.imgSize}×${this.imgSize} (its position embeddings are for a ${this.grid}×${this.grid} grid of ${this.patch}-pixel patches), got ${h}×${w}`);
    }
    return tf.tidy(() => {
      let y: tf.Tensor4D = tf.conv2d(x, this.patchW, this.patch, 'valid');
      if (this.patchB) y = tf.add(y, this.patchB);
      return tf.reshape(y, [b, this.grid * this.grid, this.embed]);
    });
  }

  /** Prepends the prefix tokens (DeiT) and adds the position embeddings. */
  addPosition(tokens: tf.Tensor3D): tf.Tensor3D {
    return tf.tidy(() => {
      const b = tokens.shape[0];
      const x = this.prefix ? tf.concat([tf.tile(this.prefix, [b, 1, 1]), tokens], 1) : tokens;
      return tf.add(x, this.posEmbed);
    });
  }

  private layerNorm(x: tf.Tensor3D, n: Norm): tf.Tensor3D {
    return tf.tidy(() => {
      const mean = tf.mean(x, -1, true);
      const xc = tf.sub(x, mean);
      const variance = tf.mean(tf.square(xc), -1, true);
      return tf.add(tf.mul(tf.mul(xc, tf.rsqrt(tf.add(variance, LN_EPS))), n.g), n.b);
    });
  }

  private applyLinear(x2d: tf.Tensor2D, l: Linear): tf.Tensor2D {
    return (l.b ? tf.fused.matMul({ a: x2d, b: l.w, bias: l.b }) : tf.matMul(x2d, l.w)) as tf.Tensor2D;
  }

  /** Mixes the head axis of head-major maps [h, R] with W·a + b. */
  private mixHeads(a: tf.Tensor2D, m: { w: tf.Tensor2D; b: tf.Tensor2D }): tf.Tensor2D {
    return tf.add(tf.matMul(m.w, a), m.b) as tf.Tensor2D;
  }

  private attention(x: tf.Tensor3D, blk: Block): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, n, c] = x.shape;
      const h = this.heads;
      const d = c / h;
      const qkv = this.applyLinear(tf.reshape(x, [b * n, c]), blk.qkv);
      // [B,N,3,h,d] → [3,h,B,N,d]: head-major
      const t = tf.transpose(tf.reshape(qkv, [b, n, 3, h, d]), [2, 3, 0, 1, 4]);
      const [q, k, v] = tf.unstack(t, 0).map((u) => tf.reshape(u, [h * b, n, d])) as [tf.Tensor3D, tf.Tensor3D, tf.Tensor3D];
      let attn: tf.Tensor = tf.matMul(tf.mul(q, d ** -0.5), k, false, true); // [h·B, N, N]
      if (blk.projL && blk.projW) {
        attn = this.mixHeads(tf.reshape(attn, [h, b * n * n]), blk.projL);
        attn = tf.softmax(tf.reshape(attn, [h * b * n, n]));
        attn = this.mixHeads(tf.reshape(attn, [h, b * n * n]), blk.projW);
      } else {
        attn = tf.softmax(tf.reshape(attn, [h * b * n, n]));
      }
      const o = tf.matMul(tf.reshape(attn, [h * b, n, n]), v); // [h·B, N, d]
      const merged: tf.Tensor2D = tf.reshape(tf.transpose(tf.reshape(o, [h, b, n, d]), [1, 2, 0, 3]), [b * n, c]);
      return tf.reshape(this.applyLinear(merged, blk.proj), [b, n, c]);
    });
  }

  private mlp(x: tf.Tensor3D, blk: Block): tf.Tensor3D {
    return tf.tidy(() => {
      const [b, n, c] = x.shape;
      const hdn = this.applyLinear(tf.reshape(x, [b * n, c]), blk.fc1);
      const gelu: tf.Tensor2D = tf.mul(tf.mul(hdn, 0.5), tf.add(tf.erf(tf.mul(hdn, Math.SQRT1_2)), 1));
      return tf.reshape(this.applyLinear(gelu, blk.fc2), [b, n, c]);
    });
  }

  /** Block `i`: returns the tokens after the attention residual and after the whole block. */
  block(i: number, x: tf.Tensor3D): { afterAttn: tf.Tensor3D; out: tf.Tensor3D } {
    this.ensureBlocks(i + 1);
    const blk = this.blocks[i]!;
    return tf.tidy(() => {
      let a: tf.Tensor3D = this.attention(this.layerNorm(x, blk.norm1), blk);
      if (blk.gamma1) a = tf.mul(a, blk.gamma1);
      const afterAttn: tf.Tensor3D = tf.add(x, a);
      let m: tf.Tensor3D = this.mlp(this.layerNorm(afterAttn, blk.norm2), blk);
      if (blk.gamma2) m = tf.mul(m, blk.gamma2);
      return { afterAttn, out: tf.add(afterAttn, m) };
    });
  }

  /** The model's final LayerNorm. */
  normTokens(x: tf.Tensor3D): tf.Tensor3D {
    return this.layerNorm(x, this.finalNorm);
  }

  /** Drops the prefix tokens and reshapes row-major to NHWC [B, grid, grid, C]. */
  tokensToMap(x: tf.Tensor3D): tf.Tensor4D {
    return tf.tidy(() => {
      const [b, n, c] = x.shape;
      const body = this.prefixTokens ? tf.slice(x, [0, this.prefixTokens, 0], [b, n - this.prefixTokens, c]) : x;
      return tf.reshape(body, [b, this.grid, this.grid, c]);
    });
  }

  /** The whole feature path on a normalised NHWC image, with `nBlocks` blocks. */
  features(x: tf.Tensor4D, nBlocks: number): tf.Tensor4D {
    if (this.disposed) throw new Error(`${this.what}: the model was disposed`);
    this.ensureBlocks(nBlocks);
    return tf.tidy(() => {
      let t = this.addPosition(this.patchEmbed(x));
      for (let i = 0; i < nBlocks; i++) t = this.block(i, t).out;
      return this.tokensToMap(this.normTokens(t));
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.owned) t.dispose();
    this.owned.length = 0;
    this.sd = null;
  }
}

/** Default number of blocks used by U-Flow / FastFlow: 41 of cait_m48 (blocks[0..40]), 21 of cait_s24, 8 of DeiT. */
function defaultBlocks(m: VitTokens, preferred: number): number {
  return Math.min(preferred, m.depth);
}

export interface CaitOptions extends VitOptions {
  /** Blocks to run. Default min(41, depth) (U-Flow / FastFlow use blocks[0..40] of cait_m48_448). */
  nBlocks?: number;
  name?: string;
}

/** One ViT token path as a single-level extractor (ImageNet normalisation inside). */
export class VitExtractor implements FeatureExtractor {
  readonly layerNormLevels = false;
  readonly channels: number[];
  readonly scaleFactors: number[];
  readonly inputSize: HW;
  readonly featureSizes: HW[];

  constructor(
    readonly name: string,
    readonly model: VitTokens,
    readonly nBlocks: number,
  ) {
    model.ensureBlocks(nBlocks);
    model.releaseStateDict();
    this.inputSize = [model.imgSize, model.imgSize];
    this.featureSizes = [[model.grid, model.grid]];
    this.channels = [model.embed];
    this.scaleFactors = [model.patch];
  }

  extract(images: tf.Tensor4D): tf.Tensor4D[] {
    return [tf.tidy(() => this.model.features(normalizeImagenet(images), this.nBlocks))];
  }

  dispose(): void {
    this.model.dispose();
  }
}

/** FastFlow's `cait_m48_448` path (or any CaiT state dict): one level, channels = embed width, stride = patch. */
export function createCaitExtractor(stateDict: TensorMap, opts: CaitOptions = {}): VitExtractor {
  const model = new VitTokens('cait', stateDict, { ...opts, what: opts.name ?? 'cait' });
  try {
    return new VitExtractor(opts.name ?? 'cait', model, opts.nBlocks ?? defaultBlocks(model, 41));
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** FastFlow's `deit_base_distilled_patch16_384` path: [cls, dist] + patches, 8 blocks by default, first 2 tokens dropped. */
export function createDeitExtractor(stateDict: TensorMap, opts: CaitOptions = {}): VitExtractor {
  const model = new VitTokens('deit', stateDict, { ...opts, what: opts.name ?? 'deit' });
  try {
    return new VitExtractor(opts.name ?? 'deit', model, opts.nBlocks ?? defaultBlocks(model, 8));
  } catch (e) {
    model.dispose();
    throw e;
  }
}

export interface MsCaitOptions {
  /** Blocks of the scale-1 model (default min(41, depth)) and of the scale-2 model (default min(21, depth)). */
  nBlocks?: [number, number];
}

/**
 * U-Flow's MS-CaiT: scale 1 = the first model on the normalised image (448 for cait_m48_448),
 * scale 2 = the second model on the bicubic (align_corners=True) resize of the *normalised* image
 * to its own input size (224 for cait_s24_224). Channels [C1, C2], scale factors relative to the
 * scale-1 input ([16, 32] at full size), no LayerNorm levels.
 */
export class MsCaitExtractor implements FeatureExtractor {
  readonly name = 'mcait';
  readonly layerNormLevels = false;
  readonly inputSize: HW;
  readonly featureSizes: HW[];
  readonly channels: number[];
  readonly scaleFactors: number[];
  readonly nBlocks: [number, number];

  constructor(
    readonly scale1: VitTokens,
    readonly scale2: VitTokens,
    opts: MsCaitOptions = {},
  ) {
    this.nBlocks = opts.nBlocks ?? [defaultBlocks(scale1, 41), defaultBlocks(scale2, 21)];
    scale1.ensureBlocks(this.nBlocks[0]);
    scale2.ensureBlocks(this.nBlocks[1]);
    scale1.releaseStateDict();
    scale2.releaseStateDict();
    this.inputSize = [scale1.imgSize, scale1.imgSize];
    this.featureSizes = [
      [scale1.grid, scale1.grid],
      [scale2.grid, scale2.grid],
    ];
    this.channels = [scale1.embed, scale2.embed];
    this.scaleFactors = [scale1.imgSize / scale1.grid, scale1.imgSize / scale2.grid];
  }

  extract(images: tf.Tensor4D): tf.Tensor4D[] {
    return tf.tidy(() => {
      const x = normalizeImagenet(images);
      const f1 = this.scale1.features(x, this.nBlocks[0]);
      const s2 = this.scale2.imgSize;
      const x2 = s2 === x.shape[1] && s2 === x.shape[2] ? x : resizeBicubic(x, [s2, s2], true);
      return [f1, this.scale2.features(x2, this.nBlocks[1])];
    });
  }

  dispose(): void {
    this.scale1.dispose();
    this.scale2.dispose();
  }
}

/**
 * MS-CaiT from the two timm state dicts (cait_m48_448, cait_s24_224). Either may carry a prefix;
 * a single U-Flow checkpoint holding both (`…extractor1.` and `…extractor2.`) can be given as
 * both arguments, or as the first with the second omitted.
 */
export function createMsCaitExtractor(m48StateDict: TensorMap, s24StateDict?: TensorMap, opts: MsCaitOptions = {}): MsCaitExtractor {
  let sd1 = m48StateDict;
  let sd2 = s24StateDict ?? m48StateDict;
  if (sd1 === sd2) {
    const prefixes = prefixesOf(sd1, 'patch_embed.proj.weight');
    const p1 = prefixes.find((p) => /extractor1\.$/.test(p));
    const p2 = prefixes.find((p) => /extractor2\.$/.test(p));
    if (!p1 || !p2) {
      throw new Error(
        `mcait: one state dict was given for both scales but it does not hold '…extractor1.' and '…extractor2.' CaiT weights (found prefixes: ${prefixes.map((p) => `'${p}'`).join(', ') || 'none'})`,
      );
    }
    sd1 = subMap(sd1, p1);
    sd2 = subMap(sd2, p2);
  }
  const m1 = new VitTokens('cait', sd1, { what: 'mcait scale 1 (cait_m48_448)' });
  let m2: VitTokens | undefined;
  try {
    m2 = new VitTokens('cait', sd2, { what: 'mcait scale 2 (cait_s24_224)' });
    return new MsCaitExtractor(m1, m2, opts);
  } catch (e) {
    m1.dispose();
    m2?.dispose();
    throw e;
  }
}
