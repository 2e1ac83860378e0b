/**
 * A fixed channel reduction after the backbone's taps: each level keeps a subset of its channels,
 * chosen once at random from a seed (as PaDiM reduces Wide-ResNet-50's 1792 channels to 550).
 * The flow's cost grows with the square of the channels, so ResNet-50's 256/512/1024 reduced to
 * 64/128/256 costs the flow what ResNet-18's levels cost.
 *
 * The subset is a pure function of (the backbone's channels, the kept counts, the seed), so a run
 * that records `backbone_channels`, `channel_reduction` and `channel_seed` gets the same channels
 * back in predict, evaluate and export. The wrapped extractor reports the reduced channels, so the
 * feature cache stores (and keys on) the reduced maps and the flow is built for them.
 */
import * as tf from '@tensorflow/tfjs-core';
import { mulberry32, randomPermutation } from '../flows/rng.js';
import type { FeatureExtractor } from './types.js';

export const CHANNEL_REDUCTIONS = ['random'] as const;
export type ChannelReduction = (typeof CHANNEL_REDUCTIONS)[number];

export interface ChannelReductionSpec {
  /** Channels to keep per level, finest first. */
  keep: readonly number[];
  method: ChannelReduction;
  /** Seed of the random subset (default 0). */
  seed?: number;
}

/**
 * Per level, `keep[l]` distinct channel indices out of `total[l]`, ascending: one mulberry32 stream
 * from `seed`, a Fisher–Yates permutation per level (finest first), its first `keep[l]` entries.
 */
export function randomChannelSubsets(total: readonly number[], keep: readonly number[], seed = 0): number[][] {
  if (total.length !== keep.length) {
    throw new Error(`backbone_channels has ${keep.length} entries but the backbone gives ${total.length} levels (channels [${total.join(', ')}]): give one count per level`);
  }
  keep.forEach((k, l) => {
    if (!Number.isInteger(k) || k < 1 || k > total[l]!) {
      throw new Error(`backbone_channels[${l}] is ${k} but level ${l} of the backbone has ${total[l]} channels: give a count from 1 to ${total[l]}`);
    }
  });
  const rng = mulberry32(seed);
  return total.map((n, l) => randomPermutation(n, rng).slice(0, keep[l]).sort((a, b) => a - b));
}

/** A backbone whose levels keep only the channels `indices[l]` (NHWC, last axis). */
export class ChannelSelectExtractor implements FeatureExtractor {
  readonly channels: readonly number[];
  private readonly idx: tf.Tensor1D[];

  constructor(
    readonly inner: FeatureExtractor,
    readonly indices: readonly (readonly number[])[],
    readonly method: ChannelReduction,
    readonly seed: number,
  ) {
    if (indices.length !== inner.channels.length) throw new Error(`channel selection: ${indices.length} index lists for ${inner.channels.length} levels`);
    indices.forEach((ix, l) => {
      if (ix.some((i) => !Number.isInteger(i) || i < 0 || i >= inner.channels[l]!)) throw new Error(`channel selection: level ${l} index out of range 0..${inner.channels[l]! - 1}`);
    });
    this.channels = indices.map((ix) => ix.length);
    this.idx = indices.map((ix) => tf.keep(tf.tensor1d([...ix], 'int32')));
  }

  get name(): string {
    return this.inner.name;
  }
  get inputSize() {
    return this.inner.inputSize;
  }
  get featureSizes() {
    return this.inner.featureSizes;
  }
  get scaleFactors() {
    return this.inner.scaleFactors;
  }
  get layerNormLevels(): boolean {
    return this.inner.layerNormLevels;
  }

  extract(images: tf.Tensor4D): tf.Tensor4D[] {
    const full = this.inner.extract(images);
    try {
      return full.map((f, l) => tf.gather(f, this.idx[l]!, 3) as tf.Tensor4D);
    } finally {
      tf.dispose(full);
    }
  }

  dispose(): void {
    tf.dispose(this.idx);
    this.inner.dispose();
  }
}

/** What identifies a reduction (folded into the feature-cache key): method, seed and the indices' digest. */
export function reductionId(ex: ChannelSelectExtractor): string {
  let h = 2166136261;
  for (const ix of ex.indices) for (const i of [...ix, -1]) h = Math.imul(h ^ (i & 0xffff), 16777619) >>> 0;
  return `${ex.method}:${ex.seed}:${ex.channels.join('/')}:${h.toString(16)}`;
}

/** Wraps `inner` with the reduction `spec` describes (the inner extractor is disposed on error). */
export function reduceChannels(inner: FeatureExtractor, spec: ChannelReductionSpec): ChannelSelectExtractor {
  try {
    const seed = spec.seed ?? 0;
    return new ChannelSelectExtractor(inner, randomChannelSubsets(inner.channels, spec.keep, seed), spec.method, seed);
  } catch (e) {
    inner.dispose();
    throw e;
  }
}
