/**
 * FastFlow's flows in the anomalib layout (spec/fastflow.md part A): one FrEIA SequenceINN per
 * feature level, each a chain of `flow_steps` AllInOneBlocks (affine clamping 2.0, SOFTPLUS global
 * affine with init 1.0, hard permutation loaded from `w_perm`). Step i's subnet uses kernel 1 when
 * i is odd and `conv3x3Only` is off, kernel 3 otherwise:
 *   ZeroPad2d(p) → Conv2d(C1, hid, k) → ReLU → ZeroPad2d(p) → Conv2d(hid, 2·C2, k),
 * hid = int(C1 · hidden_ratio). For the odd kernels used here p is the symmetric k//2, i.e. a
 * stride-1 'same' convolution, which is what AllInOneBlock computes.
 *
 * The levels are independent (no cross-level coupling). NHWC inside; the state dict uses
 * anomalib's names `fast_flow_blocks.<level>.module_list.<step>.*` with the subnet convs at
 * `subnet.1` and `subnet.4` (indices 0 and 3 are the parameter-free ZeroPad2d layers).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RawTensor, TensorMap } from '../io/safetensors.js';
import { AllInOneBlock, type NamedVariable } from './allinone-block.js';
import { mulberry32 } from './rng.js';

export interface FastFlowFlowsConfig {
  /** Channels of each feature level, finest first. */
  channels: readonly number[];
  /** [height, width] of each level, finest first. */
  sizes: ReadonlyArray<readonly [number, number]>;
  /** AllInOneBlocks per level (anomalib default 8). */
  flowSteps: number;
  /** 3×3 subnet convs on every step (default false: 1×1 on odd steps). */
  conv3x3Only?: boolean;
  /** Subnet hidden width = int(C1 · hiddenRatio) (default 1.0). */
  hiddenRatio?: number;
  /** Seed of a fresh model's weights and permutations. */
  seed?: number;
}

/** Our AllInOneBlock names the subnet convs as U-Flow's Sequential does; anomalib's subnet has ZeroPad2d in front of each conv. */
const TO_FASTFLOW: Readonly<Record<string, string>> = { 'subnet.0.': 'subnet.1.', 'subnet.2.': 'subnet.4.' };

function toFastflowName(blockName: string): string {
  for (const [a, b] of Object.entries(TO_FASTFLOW)) if (blockName.startsWith(a)) return b + blockName.slice(a.length);
  return blockName;
}

/** Subnet kernel of step `i` (anomalib: 1 on odd steps unless conv3x3_only, else 3). */
export function fastflowKernelSize(step: number, conv3x3Only: boolean): number {
  return !conv3x3Only && step % 2 === 1 ? 1 : 3;
}

/** Passive channel count C1 = C − ⌊C/2⌋ (the subnet's input) and hid = int(C1 · ratio), as Python computes it. */
export function fastflowHiddenChannels(channels: number, hiddenRatio: number): number {
  const c1 = channels - Math.floor(channels / 2);
  return Math.trunc(c1 * hiddenRatio);
}

export const FASTFLOW_PREFIX = 'fast_flow_blocks.';

export class FastFlowFlows {
  readonly config: Readonly<Required<FastFlowFlowsConfig>>;
  /** blocks[level][step]. */
  readonly levels: AllInOneBlock[][];

  constructor(config: FastFlowFlowsConfig) {
    const { channels, sizes, flowSteps } = config;
    const conv3x3Only = config.conv3x3Only ?? false;
    const hiddenRatio = config.hiddenRatio ?? 1.0;
    if (channels.length < 1 || sizes.length !== channels.length) {
      throw new Error(`FastFlow: ${channels.length} channel counts but ${sizes.length} sizes (one [h, w] per level)`);
    }
    if (!Number.isInteger(flowSteps) || flowSteps < 1) throw new Error(`FastFlow: flow_steps must be a positive integer (got ${flowSteps})`);
    if (!(hiddenRatio > 0) || !Number.isFinite(hiddenRatio)) throw new Error(`FastFlow: hidden_ratio must be a positive number (got ${hiddenRatio})`);
    this.config = {
      channels: [...channels],
      sizes: sizes.map((s) => [s[0], s[1]] as const),
      flowSteps,
      conv3x3Only,
      hiddenRatio,
      seed: config.seed ?? 0,
    };
    const rng = mulberry32(this.config.seed);
    this.levels = [];
    try {
      channels.forEach((c, l) => {
        const hid = fastflowHiddenChannels(c, hiddenRatio);
        if (hid < 1) {
          throw new Error(`FastFlow: level ${l} has ${c} channels; hidden_ratio ${hiddenRatio} gives a subnet hidden width of ${hid} (int(${c - Math.floor(c / 2)} · ${hiddenRatio})): raise hidden_ratio`);
        }
        const blocks: AllInOneBlock[] = [];
        this.levels.push(blocks);
        for (let i = 0; i < flowSteps; i++) {
          blocks.push(new AllInOneBlock({ channels: c, kernelSize: fastflowKernelSize(i, conv3x3Only), hiddenChannels: hid, rng }));
        }
      });
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  get flowSteps(): number {
    return this.config.flowSteps;
  }

  private checkFeatures(features: readonly tf.Tensor4D[], what: string): void {
    const { channels, sizes } = this.config;
    if (features.length !== channels.length) throw new Error(`FastFlow.${what}: expected ${channels.length} feature maps, got ${features.length}`);
    features.forEach((f, l) => {
      const [h, w] = sizes[l]!;
      if (f.rank !== 4 || f.shape[1] !== h || f.shape[2] !== w || f.shape[3] !== channels[l]) {
        throw new Error(`FastFlow.${what}: level ${l} should be NHWC [B, ${h}, ${w}, ${channels[l]}], got [${f.shape.join(', ')}]`);
      }
    });
  }

  /** features (NHWC, finest first) → latents (same shapes) and the per-level log|det J| [B] each. */
  forward(features: readonly tf.Tensor4D[]): { z: tf.Tensor4D[]; logdets: tf.Tensor1D[] } {
    this.checkFeatures(features, 'forward');
    return tf.tidy(() => {
      const z: tf.Tensor4D[] = [];
      const logdets: tf.Tensor1D[] = [];
      this.levels.forEach((blocks, l) => {
        let x = features[l]!;
        let ld: tf.Tensor1D | undefined;
        for (const b of blocks) {
          const r = b.forward(x);
          x = r.y;
          ld = ld ? (tf.add(ld, r.logdet) as tf.Tensor1D) : r.logdet;
        }
        z.push(x);
        logdets.push(ld!);
      });
      return { z, logdets };
    });
  }

  /** The inverse: latents (finest first) → features, and the per-level inverse log|det J| [B]. */
  inverse(z: readonly tf.Tensor4D[]): { features: tf.Tensor4D[]; logdets: tf.Tensor1D[] } {
    this.checkFeatures(z, 'inverse');
    return tf.tidy(() => {
      const features: tf.Tensor4D[] = [];
      const logdets: tf.Tensor1D[] = [];
      this.levels.forEach((blocks, l) => {
        let x = z[l]!;
        let ld: tf.Tensor1D | undefined;
        for (let i = blocks.length - 1; i >= 0; i--) {
          const r = blocks[i]!.inverse(x);
          x = r.x;
          ld = ld ? (tf.add(ld, r.logdet) as tf.Tensor1D) : r.logdet;
        }
        features.push(x);
        logdets.push(ld!);
      });
      return { features, logdets };
    });
  }

  private prefix(level: number, step: number): string {
    return `${FASTFLOW_PREFIX}${level}.module_list.${step}.`;
  }

  /** Trainable variables with anomalib's names. */
  trainableVariables(): NamedVariable[] {
    return this.levels.flatMap((blocks, l) =>
      blocks.flatMap((b, i) => b.trainableVariables().map((v) => ({ name: this.prefix(l, i) + toFastflowName(v.name), variable: v.variable }))),
    );
  }

  /** Expected keys and PyTorch shapes (incl. w_perm, w_perm_inv), in state_dict order. */
  stateSpec(): Array<{ key: string; shape: number[] }> {
    return this.levels.flatMap((blocks, l) =>
      blocks.flatMap((b, i) => b.stateSpec().map((s) => ({ key: this.prefix(l, i) + toFastflowName(s.name), shape: s.shape }))),
    );
  }

  /** anomalib's state_dict restricted to the flows: names, layouts and order. */
  stateDict(): TensorMap {
    const out: TensorMap = new Map();
    this.levels.forEach((blocks, l) =>
      blocks.forEach((b, i) => {
        for (const [n, t] of b.state()) out.set(this.prefix(l, i) + toFastflowName(n), t);
      }),
    );
    return out;
  }

  /** Loads from a getter over keys already checked against `stateSpec()`. */
  loadValidated(get: (key: string) => RawTensor, source: string): void {
    this.levels.forEach((blocks, l) =>
      blocks.forEach((b, i) => {
        const p = this.prefix(l, i);
        b.loadState((n) => get(p + toFastflowName(n)), source, p.slice(0, -1));
      }),
    );
  }

  dispose(): void {
    for (const blocks of this.levels) for (const b of blocks) b.dispose();
  }
}
