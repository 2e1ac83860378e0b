/**
 * U-Flow's U-shaped normalizing-flow graph (spec/uflow.md §4), for any number of scales and flow
 * steps. NHWC inside; the state dict uses FrEIA's GraphINN names (`flow.module_list.<i>.*`) and
 * PyTorch layouts, so checkpoints move both ways.
 *
 *   X ← F_S
 *   for s = S … 2 (coarsest first): X ← stage(X); (U, z_s) ← split(X, A = ⌊V/8⌋·4);
 *                                    X ← concat(F_{s−1}, IRevNetUp(U))   (features first)
 *   X ← stage(X); z_1 ← X
 *
 * module_list index of stage j (0 = coarsest), step k: j·(flow_steps + 3) + k; then split, up, cat.
 */
import * as tf from '@tensorflow/tfjs-core';
import { TensorFileError, type RawTensor, type TensorMap } from '../io/safetensors.js';
import { AllInOneBlock, type NamedVariable } from './allinone-block.js';
import { IRevNetUpsampling, concatChannels, splitChannels } from './irevnet-upsampling.js';
import { mulberry32 } from './rng.js';
import { validateState } from './state.js';

export interface UFlowGraphConfig {
  /** Channels of each input feature level, finest first. */
  channels: readonly number[];
  /** [height, width] of each input level, finest first; each level is twice the next coarser one. */
  sizes: ReadonlyArray<readonly [number, number]>;
  /** AllInOne blocks per stage (U-Flow: 4). */
  flowSteps: number;
  /** Seed for a fresh model's weights and permutations. */
  seed?: number;
}

/** Called for every graph node in topological order (tests and debugging): outputs NHWC, log-jac [B]. */
export type NodeHook = (name: string, outputs: tf.Tensor4D[], logJac: tf.Tensor1D) => void;

interface Stage {
  /** 0 = coarsest. */
  j: number;
  /** The input level (0-based, finest = 0) this stage runs at. */
  level: number;
  channels: number;
  height: number;
  width: number;
  blocks: AllInOneBlock[];
  /** Absent on the last (finest) stage. */
  split?: { up: number; out: number; upsampler: IRevNetUpsampling };
}

/** Leftover training keys the official loader deletes. */
export const DROPPED_KEY_PARTS = ['log_loss_weights', 'aupro', 'f1', 'mcc'] as const;

/**
 * The official loader's key clean-up: strips everything up to the last `model.` and drops keys
 * containing `log_loss_weights`, `aupro`, `f1` or `mcc`. Throws if two keys collide after stripping.
 */
export function normalizeReferenceKeys(map: TensorMap, source: string): TensorMap {
  const out: TensorMap = new Map();
  for (const [key, t] of map) {
    if (DROPPED_KEY_PARTS.some((p) => key.includes(p))) continue;
    const i = key.lastIndexOf('model.');
    const k = i >= 0 ? key.slice(i + 'model.'.length) : key;
    if (out.has(k)) throw new TensorFileError(source, `two tensors are named '${k}' once the 'model.' prefix is removed`);
    out.set(k, t);
  }
  return out;
}

export class UFlowGraph {
  readonly config: Readonly<UFlowGraphConfig>;
  private readonly stages: Stage[];

  constructor(config: UFlowGraphConfig) {
    const { channels, sizes, flowSteps } = config;
    const S = channels.length;
    if (S < 1 || sizes.length !== S) throw new Error(`UFlowGraph: ${S} channel counts but ${sizes.length} sizes (one [h, w] per level)`);
    if (!Number.isInteger(flowSteps) || flowSteps < 1) throw new Error(`UFlowGraph: flow_steps must be a positive integer (got ${flowSteps})`);
    for (let s = 1; s < S; s++) {
      const [h, w] = sizes[s]!;
      const [hf, wf] = sizes[s - 1]!;
      if (hf !== 2 * h || wf !== 2 * w) {
        throw new Error(`UFlowGraph: level ${s} is ${h}×${w} and level ${s - 1} is ${hf}×${wf}; each level must be twice the next coarser one`);
      }
    }
    this.config = { ...config, channels: [...channels], sizes: sizes.map((x) => [x[0], x[1]] as const) };
    const rng = mulberry32(config.seed ?? 0);
    this.stages = [];
    let v = channels[S - 1]!;
    for (let j = 0; j < S; j++) {
      const level = S - 1 - j;
      const [height, width] = sizes[level]!;
      const blocks = Array.from({ length: flowSteps }, (_, k) => new AllInOneBlock({ channels: v, kernelSize: k % 2 === 0 ? 3 : 1, rng }));
      const stage: Stage = { j, level, channels: v, height, width, blocks };
      if (level > 0) {
        const a = Math.floor(v / 8) * 4;
        if (a < 4) throw new Error(`UFlowGraph: level ${level} has ${v} channels in the flow; at least 8 are needed to split off an upsampled part`);
        stage.split = { up: a, out: v - a, upsampler: new IRevNetUpsampling(a) };
        v = channels[level - 1]! + a / 4;
      }
      this.stages.push(stage);
    }
  }

  get flowSteps(): number {
    return this.config.flowSteps;
  }

  /** Shapes [h, w, c] of the latents, finest first. */
  latentShapes(): Array<[number, number, number]> {
    const out: Array<[number, number, number]> = [];
    for (const st of this.stages) out[st.level] = [st.height, st.width, st.split ? st.split.out : st.channels];
    return out;
  }

  private index(st: Stage, k: number): number {
    return st.j * (this.flowSteps + 3) + k;
  }

  /** The stages, coarsest first (what the ONNX export walks): input level, blocks, and the split into (upsampled, latent) channels. */
  stageLayout(): Array<{ level: number; blocks: AllInOneBlock[]; split?: { up: number; out: number } }> {
    return this.stages.map((st) => ({ level: st.level, blocks: [...st.blocks], ...(st.split ? { split: { up: st.split.up, out: st.split.out } } : {}) }));
  }

  /** Every AllInOne block with its module_list index, in topological order. */
  blocks(): Array<{ index: number; block: AllInOneBlock; name: string }> {
    return this.stages.flatMap((st) => st.blocks.map((block, k) => ({ index: this.index(st, k), block, name: `flow${st.width}_step${k}` })));
  }

  /**
   * features: NHWC maps, finest first. Returns the latents (finest first) and Σ log|det J| per sample.
   */
  forward(features: readonly tf.Tensor4D[], hook?: NodeHook): { z: tf.Tensor4D[]; logdet: tf.Tensor1D } {
    this.checkFeatures(features);
    return tf.tidy(() => {
      const S = this.stages.length;
      const B = features[0]!.shape[0];
      const zero = tf.zeros([B]) as tf.Tensor1D;
      let logdet = zero;
      const z: tf.Tensor4D[] = new Array(S);
      let x = features[S - 1]!;
      for (const st of this.stages) {
        st.blocks.forEach((block, k) => {
          const r = block.forward(x);
          x = r.y;
          logdet = tf.add(logdet, r.logdet) as tf.Tensor1D;
          hook?.(`flow${st.width}_step${k}`, [x], r.logdet);
        });
        if (st.split) {
          const [u, zs] = splitChannels(x, [st.split.up, st.split.out]) as [tf.Tensor4D, tf.Tensor4D];
          hook?.(`split_${st.level + 1}`, [u, zs], zero);
          z[st.level] = zs;
          const up = st.split.upsampler.forward(u);
          hook?.(`up_${st.level + 1}`, [up], zero);
          x = concatChannels([features[st.level - 1]!, up]);
          hook?.(`cat_${st.level}`, [x], zero);
        } else {
          z[st.level] = x;
        }
      }
      return { z, logdet };
    });
  }

  /** The inverse map: latents (finest first) → features (finest first) and the inverse log-det [B]. */
  inverse(z: readonly tf.Tensor4D[]): { features: tf.Tensor4D[]; logdet: tf.Tensor1D } {
    const shapes = this.latentShapes();
    if (z.length !== shapes.length) throw new Error(`UFlowGraph.inverse: expected ${shapes.length} latents, got ${z.length}`);
    z.forEach((t, s) => {
      const [h, w, c] = shapes[s]!;
      if (t.rank !== 4 || t.shape[1] !== h || t.shape[2] !== w || t.shape[3] !== c) {
        throw new Error(`UFlowGraph.inverse: latent ${s} should be [B, ${h}, ${w}, ${c}], got [${t.shape.join(', ')}]`);
      }
    });
    return tf.tidy(() => {
      const S = this.stages.length;
      const features: tf.Tensor4D[] = new Array(S);
      let logdet = tf.zeros([z[0]!.shape[0]]) as tf.Tensor1D;
      let x = z[0]!;
      for (let j = S - 1; j >= 0; j--) {
        const st = this.stages[j]!;
        if (st.split) {
          // x is the concat(F_{level-1}, up(U)) that the finer stage consumed
          const fine = this.config.channels[st.level - 1]!;
          const [f, up] = splitChannels(x, [fine, x.shape[3] - fine]) as [tf.Tensor4D, tf.Tensor4D];
          features[st.level - 1] = f;
          x = concatChannels([st.split.upsampler.inverse(up), z[st.level]!]);
        }
        for (let k = st.blocks.length - 1; k >= 0; k--) {
          const r = st.blocks[k]!.inverse(x);
          x = r.x;
          logdet = tf.add(logdet, r.logdet) as tf.Tensor1D;
        }
      }
      features[S - 1] = x;
      return { features, logdet };
    });
  }

  private checkFeatures(features: readonly tf.Tensor4D[]): void {
    const { channels, sizes } = this.config;
    if (features.length !== channels.length) throw new Error(`UFlowGraph: expected ${channels.length} feature maps, got ${features.length}`);
    features.forEach((f, s) => {
      const [h, w] = sizes[s]!;
      if (f.rank !== 4 || f.shape[1] !== h || f.shape[2] !== w || f.shape[3] !== channels[s]) {
        throw new Error(`UFlowGraph: feature level ${s} should be NHWC [B, ${h}, ${w}, ${channels[s]}], got [${f.shape.join(', ')}]`);
      }
    });
  }

  /** Trainable variables with their state names (`flow.module_list.<i>.<param>`). */
  trainableVariables(): NamedVariable[] {
    return this.blocks().flatMap(({ index, block }) => block.trainableVariables().map((v) => ({ name: `flow.module_list.${index}.${v.name}`, variable: v.variable })));
  }

  /** Expected state keys and PyTorch shapes, in module_list order. */
  stateSpec(): Array<{ key: string; shape: number[] }> {
    const out: Array<{ key: string; shape: number[] }> = [];
    for (const st of this.stages) {
      st.blocks.forEach((b, k) => out.push(...b.stateSpec().map((s) => ({ key: `flow.module_list.${this.index(st, k)}.${s.name}`, shape: s.shape }))));
      if (st.split) {
        const i = this.index(st, this.flowSteps + 1);
        out.push(...st.split.upsampler.stateSpec().map((s) => ({ key: `flow.module_list.${i}.${s.name}`, shape: s.shape })));
      }
    }
    return out;
  }

  /** UFlow.state_dict() restricted to the flow: PyTorch names, layouts and order (including downsample_kernel). */
  stateDict(): TensorMap {
    const out: TensorMap = new Map();
    for (const st of this.stages) {
      st.blocks.forEach((b, k) => {
        for (const [n, t] of b.state()) out.set(`flow.module_list.${this.index(st, k)}.${n}`, t);
      });
      if (st.split) {
        const i = this.index(st, this.flowSteps + 1);
        for (const [n, t] of st.split.upsampler.state()) out.set(`flow.module_list.${i}.${n}`, t);
      }
    }
    return out;
  }

  /** Loads from a getter over keys already checked against `stateSpec()`. */
  loadValidated(get: (key: string) => RawTensor, source: string): void {
    for (const st of this.stages) {
      st.blocks.forEach((b, k) => {
        const prefix = `flow.module_list.${this.index(st, k)}.`;
        b.loadState((n) => get(prefix + n), source, prefix.slice(0, -1));
      });
    }
  }

  /**
   * Loads a state dict with the reference names: `flow.module_list.<i>.*`, optionally prefixed
   * (`model.` of Lightning checkpoints); training leftovers are dropped. One error lists every
   * missing key, unexpected key and wrong shape, naming `source`. `ignore` keys are skipped.
   */
  loadStateDict(map: TensorMap, source: string, ignore?: (key: string) => boolean): void {
    const clean = normalizeReferenceKeys(map, source);
    const get = validateState(clean, this.stateSpec(), source, ignore);
    this.loadValidated(get, source);
  }

  dispose(): void {
    for (const st of this.stages) for (const b of st.blocks) b.dispose();
  }
}
