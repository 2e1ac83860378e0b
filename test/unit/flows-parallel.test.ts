import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { UFlowModel, type UFlowModelConfig } from '../../models/uflow-model.js';
import { Adam } from '../../models/train/adam.js';
import { trainStep } from '../../models/train/step.js';
import { ParallelTrainer, splitBatch } from '../../models/train/parallel.js';
import { mulberry32 } from '../../models/flows/rng.js';
import { assertClose } from '../helpers/assert-close.js';
import { FastFlowModel, fastflowLoss, type FastFlowModelConfig } from '../../models/fastflow-model.js';
import { modelFromConfig } from '../../models/model-factory.js';

const cfg: UFlowModelConfig = { backbone: 'test', inputSize: 32, channels: [8, 16], scaleFactors: [4, 8], flowSteps: 2, layerNorm: true, seed: 21 };

test('splitBatch gives consecutive, nearly equal, non-empty parts', () => {
  assert.deepEqual(splitBatch(8, 2), [[0, 4], [4, 4]]);
  assert.deepEqual(splitBatch(5, 2), [[0, 3], [3, 2]]);
  assert.deepEqual(splitBatch(1, 2), [[0, 1]]);
});

for (const variant of ['official', 'legacy'] as const) {
  test(`two workers with half the batch each give the single-thread step's results (${variant} loss, odd batch)`, async () => {
    await initEngine({ backend: 'wasm' });
    const rng = mulberry32(4);
    const single = new UFlowModel(cfg);
    const par = new UFlowModel(cfg);
    const feats = single.featureSizes().map(([h, w], i) => tf.tensor4d(Float32Array.from({ length: 3 * h * w * cfg.channels[i]! }, () => 2 * rng() - 1), [3, h, w, cfg.channels[i]!]));
    const o1 = new Adam(single.trainableVariables(), { lr: 1e-2, weightDecay: 1e-5 });
    const o2 = new Adam(par.trainableVariables(), { lr: 1e-2, weightDecay: 1e-5 });
    const trainer = await ParallelTrainer.create(par, { workers: 2, backend: 'wasm', loss: variant });
    try {
      assert.equal(trainer.size, 2);
      const l1: number[] = [];
      const l2: number[] = [];
      for (let i = 0; i < 3; i++) {
        l1.push(trainStep(single, feats, o1, { loss: variant }));
        l2.push(await trainer.step(feats, o2));
      }
      assertClose(l2, l1, { rtol: 1e-5, what: 'losses' });
      assert.ok(l1[2]! < l1[0]!, 'training progressed');
      const a = single.stateDict();
      const b = par.stateDict();
      for (const [k, t] of a) assertClose(b.get(k)!.data as Float32Array, t.data as Float32Array, { rtol: 1e-4, atol: 1e-5, what: k });
    } finally {
      await trainer.dispose();
      o1.dispose();
      o2.dispose();
      tf.dispose(feats);
      single.dispose();
      par.dispose();
    }
  });
}

test('FastFlow: two workers give the single-thread step of its own loss', async () => {
  await initEngine({ backend: 'wasm' });
  const ffCfg: FastFlowModelConfig = { backbone: 'test', inputSize: 32, channels: [8, 16], scaleFactors: [4, 8], flowSteps: 2, layerNorm: true, conv3x3Only: false, hiddenRatio: 1.0, seed: 3 };
  const rng = mulberry32(9);
  const single = modelFromConfig('fastflow', ffCfg);
  const par = modelFromConfig('fastflow', ffCfg);
  assert.ok(par instanceof FastFlowModel);
  const feats = single.featureSizes().map(([h, w], i) => tf.tensor4d(Float32Array.from({ length: 4 * h * w * ffCfg.channels[i]! }, () => 2 * rng() - 1), [4, h, w, ffCfg.channels[i]!]));
  const o1 = new Adam(single.trainableVariables(), { lr: 1e-2, weightDecay: 1e-5 });
  const o2 = new Adam(par.trainableVariables(), { lr: 1e-2, weightDecay: 1e-5 });
  const trainer = await ParallelTrainer.create(par, { workers: 2, backend: 'wasm' });
  try {
    const l1: number[] = [];
    const l2: number[] = [];
    for (let i = 0; i < 2; i++) {
      // the single-thread reference is FastFlow's own loss, Σ_levels mean_b(0.5·Σz² − logdet_l)
      const { value, grads } = tf.variableGrads(() => {
        const { z, logdets } = (single as FastFlowModel).forwardLevels(feats);
        return fastflowLoss(z, logdets);
      }, single.trainableVariables().map((v) => v.variable));
      l1.push(value.dataSync()[0]!);
      o1.apply(grads);
      tf.dispose([value, ...Object.values(grads)]);
      l2.push(await trainer.step(feats, o2));
    }
    assertClose(l2, l1, { rtol: 1e-5, what: 'losses' });
    const a = single.stateDict();
    const b = par.stateDict();
    for (const [k, t] of a) assertClose(b.get(k)!.data as Float32Array, t.data as Float32Array, { rtol: 1e-4, atol: 1e-5, what: k });
  } finally {
    await trainer.dispose();
    o1.dispose();
    o2.dispose();
    tf.dispose(feats);
    single.dispose();
    par.dispose();
  }
});
