/**
 * The training benchmarks' synthetic input: a U-Flow model on the train-step shapes and seeded
 * feature tensors (a sum of three uniforms, roughly normal), so that bench/train-step.bench.ts and
 * bench/profile-step.ts time exactly the same work.
 */
import * as tf from '@tensorflow/tfjs-core';
import { UFlowModel } from '../models/uflow-model.js';
import { mulberry32 } from '../models/flows/rng.js';

export function benchModelAndFeatures(o: { inputSize: number; channels: number[]; scaleFactors: number[]; flowSteps: number; batch: number }): { model: UFlowModel; feats: tf.Tensor4D[] } {
  const model = new UFlowModel({ backbone: 'bench', inputSize: o.inputSize, channels: o.channels, scaleFactors: o.scaleFactors, flowSteps: o.flowSteps, layerNorm: true, seed: 0 });
  const rng = mulberry32(1);
  const feats = model.featureSizes().map(([h, w], i) => {
    const d = new Float32Array(o.batch * h * w * o.channels[i]!);
    for (let j = 0; j < d.length; j++) d[j] = (rng() + rng() + rng() - 1.5) * 2;
    return tf.tensor4d(d, [o.batch, h, w, o.channels[i]!]);
  });
  return { model, feats };
}
