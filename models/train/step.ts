/**
 * One U-Flow training step on cached features: forward (norm + flow), loss, gradients with
 * tf.variableGrads (the flow's convs and permutations carry custom gradients, so this runs on
 * wasm), and an Adam update.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedVariable } from '../flows/allinone-block.js';
import { lpzPerSample, type LossVariant } from './loss.js';
import type { Adam } from './adam.js';

export interface Trainable {
  fromFeatures(features: readonly tf.Tensor4D[]): { z: tf.Tensor4D[]; logdet: tf.Tensor1D };
  trainableVariables(): NamedVariable[];
}

/**
 * This batch's share of the loss of a batch of `totalBatch` samples it is part of, so that shares
 * of a split batch add up to the whole batch's loss (and gradients):
 *   official: Σ_b (lpz_b − logdet_b) / N;   legacy: Σ_b lpz_b − Σ_b logdet_b / N.
 * With totalBatch = this batch's size these are exactly uflowLoss / uflowLossLegacy.
 */
export function lossShare(z: readonly tf.Tensor[], logdet: tf.Tensor1D, totalBatch: number, variant: LossVariant = 'official'): tf.Scalar {
  return tf.tidy(() => {
    const lpz = lpzPerSample(z);
    if (variant === 'legacy') return tf.sub(tf.sum(lpz), tf.div(tf.sum(logdet), totalBatch)) as tf.Scalar;
    return tf.div(tf.sum(tf.sub(lpz, logdet)), totalBatch) as tf.Scalar;
  });
}

export interface StepOptions {
  loss?: LossVariant;
  /** Whole-batch size when `features` is a part of a larger batch (data-parallel workers). */
  totalBatch?: number;
}

/** Loss and gradients (keyed by variable name) for one batch, without updating anything. Caller disposes grads. */
export function computeGradients(model: Trainable, features: readonly tf.Tensor4D[], opts: StepOptions = {}): { loss: number; grads: tf.NamedTensorMap } {
  const vars = model.trainableVariables().map((v) => v.variable);
  const n = opts.totalBatch ?? features[0]!.shape[0];
  const { value, grads } = tf.variableGrads(() => {
    const { z, logdet } = model.fromFeatures(features);
    return lossShare(z, logdet, n, opts.loss);
  }, vars);
  const loss = value.dataSync()[0]!;
  value.dispose();
  return { loss, grads };
}

/** One optimisation step; returns the batch loss before the update. */
export function trainStep(model: Trainable, features: readonly tf.Tensor4D[], optimizer: Adam, opts: StepOptions = {}): number {
  const { loss, grads } = computeGradients(model, features, opts);
  try {
    optimizer.apply(grads);
  } finally {
    tf.dispose(grads);
  }
  return loss;
}

