/**
 * `builtin:filters`: a fixed, hand-designed filter-bank backbone that ships in the code (no
 * weights file, no download). It is what the demo and the tests use on a fresh clone.
 *
 * Three levels at strides 4, 8 and 16 (finest first), 16 channels each. For the level of stride S
 * the image is box-filtered and subsampled by S/2, then
 *  - 3 channels: the local mean colour (centred and scaled);
 *  - 12 channels: Gabor energies |g ∗ gray| at 6 orientations × 2 phases (even, odd), 5×5;
 *  - 1 channel: |LoG ∗ gray| (blob / spot detector), 5×5;
 * all rectified responses are then averaged over 2×2 (stride S). The poolings are 'valid', so a
 * level is ⌊H/S⌋ × ⌊W/S⌋ (the rows and columns beyond the last whole window are dropped). Each coarser level sees a
 * twice-larger neighbourhood, so the three levels cover fine texture, structure and blobs.
 *
 * This is a genuinely useful descriptor for texture anomalies (scratches, spots, colour stains,
 * wrong orientation), nothing like an ImageNet backbone on objects: a real backbone
 * (`resnet18`, `wide_resnet50_2`, `mcait`, or a TensorFlow.js model `tfjs:<dir>`) is what gives
 * the published accuracy on MVTec AD.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { FeatureExtractor } from './types.js';
import { formatHW, ruleLevelSizes, toHW, type HW, type SizeInput } from '../size.js';

export const BUILTIN_FILTERS = 'builtin:filters';

/** Filter size; the ONNX export (models/export/backbone.ts) mirrors extract() with these constants. */
export const K = 5;
const ORIENTATIONS = 6;
/** Gains chosen so that responses on natural textures in [0,1] are of order 1. */
export const COLOUR_GAIN = 4;
export const FILTER_GAIN = 8;
/** Luma weights of the grey image the filters see. */
export const GRAY_WEIGHTS = [0.299, 0.587, 0.114] as const;

/** 5×5 filters [K,K,1,13]: 6 even Gabors, 6 odd Gabors, 1 LoG; each zero-mean with unit L2 norm. */
export function filterBank(): Float32Array {
  const n = 2 * ORIENTATIONS + 1;
  const w = new Float32Array(K * K * n);
  const c = (K - 1) / 2;
  const sigma = 1.2;
  const lambda = 4;
  const filters: Float64Array[] = [];
  for (const phase of [0, Math.PI / 2]) {
    for (let o = 0; o < ORIENTATIONS; o++) {
      const th = (o * Math.PI) / ORIENTATIONS;
      const f = new Float64Array(K * K);
      for (let y = 0; y < K; y++) {
        for (let x = 0; x < K; x++) {
          const dx = x - c;
          const dy = y - c;
          const xr = dx * Math.cos(th) + dy * Math.sin(th);
          const yr = -dx * Math.sin(th) + dy * Math.cos(th);
          f[y * K + x] = Math.exp(-(xr * xr + yr * yr) / (2 * sigma * sigma)) * Math.cos((2 * Math.PI * xr) / lambda + phase);
        }
      }
      filters.push(f);
    }
  }
  const log = new Float64Array(K * K);
  const s2 = 1.0;
  for (let y = 0; y < K; y++) {
    for (let x = 0; x < K; x++) {
      const r2 = (x - c) ** 2 + (y - c) ** 2;
      log[y * K + x] = (r2 / (2 * s2) - 1) * Math.exp(-r2 / (2 * s2));
    }
  }
  filters.push(log);
  filters.forEach((f, j) => {
    const mean = f.reduce((a, b) => a + b, 0) / f.length;
    let norm = 0;
    for (let i = 0; i < f.length; i++) {
      f[i] = f[i]! - mean;
      norm += f[i]! ** 2;
    }
    norm = Math.sqrt(norm) || 1;
    for (let i = 0; i < f.length; i++) w[i * n + j] = f[i]! / norm;
  });
  return w;
}

export class BuiltinFilters implements FeatureExtractor {
  readonly name = BUILTIN_FILTERS;
  readonly channels = [16, 16, 16] as const;
  readonly scaleFactors = [4, 8, 16] as const;
  readonly layerNormLevels = false;
  private readonly bank: tf.Tensor4D;
  private readonly toGray: tf.Tensor4D;

  readonly inputSize: HW;
  readonly featureSizes: HW[];

  constructor(size: SizeInput) {
    this.inputSize = toHW(size);
    if (Math.min(...this.inputSize) < 32) {
      throw new Error(`${BUILTIN_FILTERS}: input_size must be at least 32 a side (got ${formatHW(this.inputSize)})`);
    }
    this.featureSizes = ruleLevelSizes('floor', this.inputSize, this.scaleFactors);
    this.bank = tf.tensor4d(filterBank(), [K, K, 1, 2 * ORIENTATIONS + 1]);
    this.toGray = tf.tensor4d([...GRAY_WEIGHTS], [1, 1, 3, 1]);
  }

  extract(images: tf.Tensor4D): tf.Tensor4D[] {
    const [, h, w, ch] = images.shape;
    if (h !== this.inputSize[0] || w !== this.inputSize[1] || ch !== 3) {
      throw new Error(`${BUILTIN_FILTERS}: expected images [B, ${this.inputSize[0]}, ${this.inputSize[1]}, 3], got [${images.shape.join(', ')}]`);
    }
    return this.scaleFactors.map((s) =>
      tf.tidy(() => {
        const half = s / 2;
        const small = tf.avgPool(images, half, half, 'valid');
        const colour = tf.mul(tf.sub(tf.avgPool(small, 2, 2, 'valid'), 0.5), COLOUR_GAIN);
        const gray = tf.conv2d(small, this.toGray, 1, 'valid');
        // Reflect padding: zero padding would make every border look like an edge.
        const r = (K - 1) / 2;
        const padded = tf.mirrorPad(gray, [[0, 0], [r, r], [r, r], [0, 0]], 'reflect');
        const resp = tf.abs(tf.conv2d(padded, this.bank, 1, 'valid'));
        const energy = tf.mul(tf.avgPool(resp, 2, 2, 'valid'), FILTER_GAIN);
        return tf.concat([colour, energy], 3) as tf.Tensor4D;
      }),
    );
  }

  dispose(): void {
    this.bank.dispose();
    this.toGray.dispose();
  }
}

export function createBuiltinExtractor(backbone: string, inputSize: SizeInput): FeatureExtractor {
  if (backbone !== BUILTIN_FILTERS) throw new Error(`unknown built-in backbone '${backbone}': the built-in one is '${BUILTIN_FILTERS}'`);
  return new BuiltinFilters(inputSize);
}
