/**
 * FastFlow's anomaly map (anomalib AnomalyMapGenerator, spec/fastflow.md part A):
 *   map = mean_levels bilinear_{align_corners=False}( −exp(−0.5 · mean_c z_l²) )  at the input size,
 * values in [−1, 0], higher = more anomalous (anomalib's negative-probability convention; U-Flow's
 * 1 − P is this map plus one when both use the same latents). pred_score = max over the map.
 * NHWC in and out.
 */
import * as tf from '@tensorflow/tfjs-core';
import { imageScore, resizeBilinearTorch, scaleProbability, type Size } from './anomaly-map.js';

/** The range FastFlow's map lies in. */
export const FASTFLOW_MAP_RANGE: readonly [number, number] = [-1, 0];

/** mean over levels of the upsampled −p_l: [B,H,W,1]. */
export function fastflowAnomalyMap(z: readonly tf.Tensor4D[], size: Size): tf.Tensor4D {
  if (z.length === 0) throw new Error('fastflowAnomalyMap: no latents');
  return tf.tidy(() => {
    const maps = z.map((zl) => resizeBilinearTorch(tf.neg(scaleProbability(zl)) as tf.Tensor4D, size));
    return tf.div(maps.length === 1 ? maps[0]! : tf.addN(maps), maps.length) as tf.Tensor4D;
  });
}

/** pred_score = max over the map: [B]. */
export function fastflowImageScore(map: tf.Tensor4D): tf.Tensor1D {
  return imageScore(map);
}
