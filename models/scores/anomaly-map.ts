/**
 * U-Flow's likelihood anomaly map (spec/uflow.md §6, official UFlow.get_probability):
 * p_s = exp(−0.5 · mean_c z_s²) per scale, bilinear resize (align_corners=False) to the target,
 * P = mean over scales, anomaly = 1 − P, image score = max over pixels. NHWC in and out.
 */
import * as tf from '@tensorflow/tfjs-core';

export type Size = number | readonly [number, number];

function hw(size: Size): [number, number] {
  return typeof size === 'number' ? [size, size] : [size[0], size[1]];
}

/** exp(−0.5 · mean_c z²): [B,h,w,C] → [B,h,w,1]. */
export function scaleProbability(z: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.exp(tf.mul(tf.mean(tf.square(z), 3, true), -0.5)) as tf.Tensor4D);
}

/** PyTorch's bilinear interpolate with align_corners=False (half-pixel centres): [B,h,w,C] → [B,H,W,C]. */
export function resizeBilinearTorch(x: tf.Tensor4D, size: Size): tf.Tensor4D {
  const [h, w] = hw(size);
  if (x.shape[1] === h && x.shape[2] === w) return tf.clone(x);
  return tf.image.resizeBilinear(x, [h, w], false, true);
}

/** P = mean over scales of the upsampled per-scale probabilities: [B,H,W,1]. */
export function probabilityMap(z: readonly tf.Tensor4D[], size: Size): tf.Tensor4D {
  if (z.length === 0) throw new Error('probabilityMap: no latents');
  return tf.tidy(() => {
    const maps = z.map((zs) => resizeBilinearTorch(scaleProbability(zs), size));
    return tf.div(tf.addN(maps), maps.length) as tf.Tensor4D;
  });
}

/** 1 − P: [B,H,W,1]. */
export function anomalyMap(z: readonly tf.Tensor4D[], size: Size): tf.Tensor4D {
  return tf.tidy(() => tf.sub(1, probabilityMap(z, size)) as tf.Tensor4D);
}

/** Image score = max over pixels (and channels) of a [B,H,W,C] map: [B]. */
export function imageScore(map: tf.Tensor4D): tf.Tensor1D {
  return tf.tidy(() => tf.max(tf.reshape(map, [map.shape[0], -1]), 1) as tf.Tensor1D);
}
