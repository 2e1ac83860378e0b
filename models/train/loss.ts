/**
 * U-Flow's training objective (spec/uflow.md §5). Sums of z² are reduced per sample in stages
 * (W, then H, then C; see grad-ops.sumPerSample) so they hold on wasm's sequential float32 Sum.
 */
import * as tf from '@tensorflow/tfjs-core';
import { sumPerSample } from '../ops/grad-ops.js';

/** lpz_b = Σ_s 0.5 · Σ_{h,w,c} z_s[b]², [B]. */
export function lpzPerSample(z: readonly tf.Tensor[]): tf.Tensor1D {
  return tf.tidy(() => {
    let acc: tf.Tensor | undefined;
    for (const zs of z) {
      const t = tf.mul(sumPerSample(tf.square(zs)), 0.5);
      acc = acc ? tf.add(acc, t) : t;
    }
    if (!acc) throw new Error('lpzPerSample: no latents');
    return acc as tf.Tensor1D;
  });
}

/** Official HEAD (src/train.py): mean_b(lpz_b − logdet_b). A scalar. */
export function uflowLoss(z: readonly tf.Tensor[], logdet: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.sub(lpzPerSample(z), logdet)) as tf.Scalar);
}

/** Legacy (first official commit, anomalib UFlowLoss): Σ_b lpz_b − mean_b logdet_b. A scalar. */
export function uflowLossLegacy(z: readonly tf.Tensor[], logdet: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => tf.sub(tf.sum(lpzPerSample(z)), tf.mean(logdet)) as tf.Scalar);
}

export type LossVariant = 'official' | 'legacy';

export function lossFor(variant: LossVariant): (z: readonly tf.Tensor[], logdet: tf.Tensor1D) => tf.Scalar {
  return variant === 'legacy' ? uflowLossLegacy : uflowLoss;
}
