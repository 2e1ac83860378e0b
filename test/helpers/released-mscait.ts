/**
 * The tensors of a released U-Flow checkpoint (`models/<metric>/<category>.ckpt`), by name and
 * shape, with deterministic random values: the two whole timm v0.9 CaiT models that the official
 * `MSCaiT` holds (`feature_extractor.extractor1` = cait_m48_448, `extractor2` = cait_s24_224, every
 * block, the class-attention blocks and the head included, though U-Flow runs only blocks[0..40] and
 * blocks[0..20]), then the 4-step flow, then a training leftover — all under Lightning's `model.`.
 *
 * Values are cheap to generate (a hash of the tensor index and element index) so that the
 * 1.6 GB of the full-size state dict can be streamed to disk or regenerated for one tensor.
 */
import type { RawTensor } from '../../models/io/safetensors.js';
import { UFlowModel, type UFlowModelConfig } from '../../models/uflow-model.js';
import { writeLightningCheckpoint, type TensorEntry } from './torch-save.js';

export interface CaitArch {
  name: string;
  img: number;
  patch: number;
  embed: number;
  heads: number;
  depth: number;
  /** Class-attention blocks (`blocks_token_only`), unused by U-Flow. */
  depthTokenOnly: number;
  mlpRatio: number;
  classes: number;
  /** Blocks U-Flow runs (spec/uflow.md §3.1). */
  used: number;
}

/** timm `cait_m48_448`: 448², patch 16, 768 wide, 48 blocks of 16 heads; U-Flow uses 41. */
export const CAIT_M48_448: CaitArch = { name: 'cait_m48_448', img: 448, patch: 16, embed: 768, heads: 16, depth: 48, depthTokenOnly: 2, mlpRatio: 4, classes: 1000, used: 41 };
/** timm `cait_s24_224`: 224², patch 16, 384 wide, 24 blocks of 8 heads; U-Flow uses 21. */
export const CAIT_S24_224: CaitArch = { name: 'cait_s24_224', img: 224, patch: 16, embed: 384, heads: 8, depth: 24, depthTokenOnly: 2, mlpRatio: 4, classes: 1000, used: 21 };

export interface TensorSpec {
  key: string;
  shape: number[];
  /** Uniform half-width and centre of the values. */
  scale: number;
  offset: number;
}

/** A timm Cait state dict's tensors in `state_dict()` order (own parameters, then submodules as registered). */
export function caitTensorSpecs(a: CaitArch, prefix = ''): TensorSpec[] {
  const c = a.embed;
  const hid = c * a.mlpRatio;
  const n = (a.img / a.patch) ** 2;
  const out: TensorSpec[] = [];
  const t = (key: string, shape: number[], scale: number, offset = 0) => out.push({ key: prefix + key, shape, scale, offset });
  // Weights ~ U(±√3/√fan_in) keep the residual stream bounded over 48 blocks; layer scales ~0.1.
  const lin = (p: string, o: number, i: number) => {
    t(`${p}.weight`, [o, i], Math.sqrt(3 / i));
    t(`${p}.bias`, [o], 0.02);
  };
  const norm = (p: string) => {
    t(`${p}.weight`, [c], 0.1, 1);
    t(`${p}.bias`, [c], 0.05);
  };
  t('cls_token', [1, 1, c], 0.02);
  t('pos_embed', [1, n, c], 0.02);
  t('patch_embed.proj.weight', [c, 3, a.patch, a.patch], Math.sqrt(3 / (3 * a.patch * a.patch)));
  t('patch_embed.proj.bias', [c], 0.02);
  for (let i = 0; i < a.depth; i++) {
    const b = `blocks.${i}`;
    t(`${b}.gamma_1`, [c], 0.05, 0.1);
    t(`${b}.gamma_2`, [c], 0.05, 0.1);
    norm(`${b}.norm1`);
    lin(`${b}.attn.qkv`, 3 * c, c);
    lin(`${b}.attn.proj_l`, a.heads, a.heads);
    lin(`${b}.attn.proj_w`, a.heads, a.heads);
    lin(`${b}.attn.proj`, c, c);
    norm(`${b}.norm2`);
    lin(`${b}.mlp.fc1`, hid, c);
    lin(`${b}.mlp.fc2`, c, hid);
  }
  for (let i = 0; i < a.depthTokenOnly; i++) {
    const b = `blocks_token_only.${i}`;
    t(`${b}.gamma_1`, [c], 0.05, 0.1);
    t(`${b}.gamma_2`, [c], 0.05, 0.1);
    norm(`${b}.norm1`);
    lin(`${b}.attn.q`, c, c);
    lin(`${b}.attn.k`, c, c);
    lin(`${b}.attn.v`, c, c);
    lin(`${b}.attn.proj`, c, c);
    norm(`${b}.norm2`);
    lin(`${b}.mlp.fc1`, hid, c);
    lin(`${b}.mlp.fc2`, c, hid);
  }
  norm('norm');
  lin('head', a.classes, c);
  return out;
}

export const numel = (shape: number[]): number => shape.reduce((p, d) => p * d, 1);

/** Deterministic values of one tensor: element j of tensor `index` (splitmix-style integer hash, uniform in offset ± scale). */
export function fillTensor(spec: TensorSpec, index: number, into?: Float32Array): Float32Array {
  const len = numel(spec.shape);
  const d = into ?? new Float32Array(len);
  const seed = Math.imul(index + 1, 0x9e3779b1) >>> 0;
  const k = (2 * spec.scale) / 4294967296;
  const base = spec.offset - spec.scale;
  for (let j = 0; j < len; j++) {
    let x = (seed ^ Math.imul(j, 0x85ebca6b)) >>> 0;
    x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
    x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
    x = (x ^ (x >>> 16)) >>> 0;
    d[j] = base + x * k;
  }
  return d;
}

export function rawOf(spec: TensorSpec, index: number): RawTensor {
  return { dtype: 'F32', shape: spec.shape, data: fillTensor(spec, index) };
}

/** Both backbones of a released checkpoint, with Lightning's `model.` prefix, in the order the official module registers them. */
export function releasedBackboneSpecs(): TensorSpec[] {
  return [...caitTensorSpecs(CAIT_M48_448, 'model.feature_extractor.extractor1.'), ...caitTensorSpecs(CAIT_S24_224, 'model.feature_extractor.extractor2.')];
}

/** An in-memory state dict of the given specs (index = position in the list, as `fillTensor` numbers them); `only` keeps a subset. */
export function stateDictOf(specs: TensorSpec[], only?: (key: string) => boolean): Map<string, RawTensor> {
  const m = new Map<string, RawTensor>();
  specs.forEach((s, i) => {
    if (!only || only(s.key)) m.set(s.key, rawOf(s, i));
  });
  return m;
}

/** U-Flow's flow at the paper's configuration: MS-CaiT levels 768@28² and 384@14², 4 steps. */
export function paperFlowConfig(seed = 0): UFlowModelConfig {
  return {
    backbone: 'mcait',
    inputSize: [448, 448],
    levelSizes: [
      [28, 28],
      [14, 14],
    ],
    channels: [CAIT_M48_448.embed, CAIT_S24_224.embed],
    scaleFactors: [16, 32],
    flowSteps: 4,
    layerNorm: false,
    seed,
  };
}

export interface ReleasedCheckpoint {
  /** Bytes written. */
  bytes: number;
  /** Every tensor of the file, in order (backbones, flow, leftover). */
  entries: TensorEntry[];
  /** The backbone tensors (index i = entry i; `fillTensor(specs[i], i)` regenerates one). */
  backboneSpecs: TensorSpec[];
  /** The flow written into the file (the caller disposes it). */
  flow: UFlowModel;
}

/**
 * Writes a synthetic released checkpoint (`<category>.ckpt`, Lightning, zip): both whole CaiT
 * models of the released shapes, a fresh 4-step flow seeded `seed`, and the leftover
 * `model.log_loss_weights` the official loader drops. About 1.6 GB.
 */
export function writeReleasedCheckpoint(path: string, seed = 0): ReleasedCheckpoint {
  const backboneSpecs = releasedBackboneSpecs();
  const flow = new UFlowModel(paperFlowConfig(seed));
  try {
    const flowState = [...flow.stateDict()].map(([k, t]) => ({ key: `model.${k}`, shape: [...t.shape], data: t.data as Float32Array }));
    const leftover = { key: 'model.log_loss_weights', shape: [2], data: new Float32Array([0.5, 0.5]) };
    const entries: TensorEntry[] = [...backboneSpecs.map(({ key, shape }) => ({ key, shape })), ...flowState.map(({ key, shape }) => ({ key, shape })), { key: leftover.key, shape: leftover.shape }];
    const scratch = new Float32Array(Math.max(...backboneSpecs.map((s) => numel(s.shape))));
    const bytes = writeLightningCheckpoint(
      path,
      entries,
      (i) => {
        if (i < backboneSpecs.length) return fillTensor(backboneSpecs[i]!, i, scratch.subarray(0, numel(backboneSpecs[i]!.shape)));
        const f = flowState[i - backboneSpecs.length];
        if (f) {
          if (f.data.constructor !== Float32Array) throw new Error(`${f.key}: not float32`);
          return f.data;
        }
        return leftover.data;
      },
      { epoch: 41, globalStep: 1234, hyperParameters: { backbone: 'mcait', input_size: 448, flow_steps: 4 } },
    );
    return { bytes, entries, backboneSpecs, flow };
  } catch (e) {
    flow.dispose();
    throw e;
  }
}
