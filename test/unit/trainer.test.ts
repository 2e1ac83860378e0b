/** The training loop, evaluation and prediction on tiny inputs: batching, NaN stop, resume state, tensor hygiene. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { epochBatches, optimizerState, restoreOptimizerState, runTraining, type TrainerOptions } from '../../models/train/trainer.js';
import { Adam } from '../../models/train/adam.js';
import { UFlowModel } from '../../models/uflow-model.js';
import { readSafetensors, toFloat32 } from '../../models/io/safetensors.js';
import type { FeatureSet } from '../../models/train/feature-cache.js';
import { evaluate } from '../../server/evaluate.js';
import { Predictor } from '../../server/predict.js';
import { train } from '../../server/train.js';
import { generateDemoDataset } from '../../models/data/demo-dataset.js';

const tmp = mkdtempSync(join(tmpdir(), 'uflow-trainer-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('epochBatches: a seeded permutation, every image once, the last batch partial', () => {
  const a = epochBatches(10, 4, 0, 1);
  assert.deepEqual(a.map((b) => b.length), [4, 4, 2]);
  assert.deepEqual(a.flat().sort((x, y) => x - y), [...Array(10).keys()]);
  assert.deepEqual(epochBatches(10, 4, 0, 1), a);
  assert.notDeepEqual(epochBatches(10, 4, 0, 2), a);
  assert.notDeepEqual(epochBatches(10, 4, 1, 1), a);
});

function tinyModel(): { model: UFlowModel; features: FeatureSet } {
  const model = new UFlowModel({ backbone: 'test', inputSize: 32, channels: [8, 8, 8], scaleFactors: [4, 8, 16], flowSteps: 2, layerNorm: false, seed: 0 });
  const levels = model.featureSizes().map(([h, w]) => tf.randomNormal([6, h, w, 8], 0, 1, 'float32', 1) as tf.Tensor4D);
  return { model, features: { paths: ['a', 'b', 'c', 'd', 'e', 'f'], levels, computed: 0, dispose: () => tf.dispose(levels) } };
}

test('runTraining: a non-finite loss stops the run after the last complete epoch', async () => {
  await initEngine({ backend: 'cpu' });
  const { model, features } = tinyModel();
  const before = tf.memory().numTensors;
  // Poison the model from the second epoch on: the loss becomes NaN.
  let calls = 0;
  const poisoned = {
    ...model,
    trainableVariables: () => model.trainableVariables(),
    fromFeatures: (f: readonly tf.Tensor4D[]) => {
      calls++;
      const r = model.fromFeatures(f);
      if (calls <= 2) return r;
      const z = r.z.map((t) => tf.mul(t, NaN) as tf.Tensor4D);
      tf.dispose(r.z);
      return { z, logdet: r.logdet };
    },
  } as unknown as UFlowModel;
  const ends: number[] = [];
  const out = await runTraining({ model: poisoned, features, epochs: 5, batchSize: 3, learningRate: 1e-3, weightDecay: 1e-5, seed: 0 } as TrainerOptions, { onEpochEnd: (r) => void ends.push(r.epoch) });
  assert.equal(out.state, 'failed');
  assert.equal(out.epochsDone, 1);
  assert.deepEqual(ends, [1]);
  assert.match(out.message!, /the loss became NaN at epoch 2, step 1: training diverged\. The checkpoint of epoch 1 is kept; lower the learning rate/);
  assert.equal(tf.memory().numTensors, before, 'no tensors left behind');
  features.dispose();
  model.dispose();
});

test('runTraining: cancelling stops before the next step; optimizer state round-trips by reference names', async () => {
  await initEngine({ backend: 'cpu' });
  const { model, features } = tinyModel();
  const ac = new AbortController();
  let saved: ReturnType<typeof optimizerState> | undefined;
  const out = await runTraining(
    { model, features, epochs: 10, batchSize: 3, learningRate: 1e-3, weightDecay: 1e-5, seed: 0, signal: ac.signal },
    {
      onEpochEnd: (r, opt) => {
        if (r.epoch === 2) {
          saved = opt();
          ac.abort();
        }
      },
    },
  );
  assert.equal(out.state, 'cancelled');
  assert.equal(out.epochsDone, 2);
  assert.equal(Number(saved!.get('__step__')!.data[0]), 4);
  const adam = new Adam(model.trainableVariables(), { lr: 1e-3 });
  assert.equal(restoreOptimizerState(adam, model.trainableVariables(), saved!), true);
  const again = optimizerState(adam, model.trainableVariables());
  for (const [k, t] of saved!) assert.deepEqual(Array.from(again.get(k)!.data as Float32Array), Array.from(t.data as Float32Array), k);
  assert.equal(restoreOptimizerState(adam, model.trainableVariables(), new Map()), false);
  adam.dispose();
  features.dispose();
  model.dispose();
});

test('train, evaluate and predict leave no tensors behind; a diverging run keeps its last good checkpoint', async () => {
  await initEngine({ backend: 'wasm' });
  const data = generateDemoDataset(join(tmp, 'data'), { size: 64, counts: { train: 8, testGood: 2, defects: { hole: 1, scratch: 1, stain: 1 } } });
  const trainDir = join(tmp, 'td');
  const config = { model: { backbone: 'builtin:filters', input_size: 32, flow_steps: 2 }, trainer: { epochs: 2, batch_train: 4, learning_rate: 1e-3, validate_every: 1 } };
  const n0 = tf.memory().numTensors;
  const run = await train({ datasetPath: data, trainDir, backend: 'wasm', config });
  assert.equal(run.state, 'finished', run.error);
  assert.equal(tf.memory().numTensors, n0, 'train');
  const ev = await evaluate({ trainDir, runId: run.runId });
  assert.equal(ev.images.length, 5);
  assert.equal(tf.memory().numTensors, n0, 'evaluate');
  const p = await Predictor.open({ trainDir, runId: run.runId });
  const pr = await p.predict(ev.images[0]!.path, { includeRaw: true });
  assert.match(pr.anomalyMapPng, /^data:image\/png;base64,/);
  assert.equal(pr.anomalyMap!.length, 256 * 256);
  assert.ok(p.bytes > 0);
  p.dispose();
  assert.equal(tf.memory().numTensors, n0, 'predict');

  const bad = await train({ datasetPath: data, trainDir, backend: 'wasm', config: { ...config, trainer: { ...config.trainer, epochs: 5, learning_rate: 30, validate_every: 0, holdout: 0 } } });
  assert.equal(bad.state, 'failed');
  assert.match(bad.error!, /the loss became (NaN|-?Infinity) at epoch \d+/);
  assert.equal(tf.memory().numTensors, n0, 'failed train');
  const runJson = JSON.parse(readFileSync(join(bad.dir, 'run.json'), 'utf8'));
  assert.equal(runJson.state, 'failed');
  if (bad.epochsDone > 0) {
    const ck = readSafetensors(join(bad.dir, 'checkpoint.safetensors'));
    assert.equal(Number(ck.metadata.epoch), bad.epochsDone);
    for (const [k, t] of ck.tensors) assert.ok(toFloat32(t).every(Number.isFinite), `${k} is finite`);
  } else assert.ok(!existsSync(join(bad.dir, 'checkpoint.safetensors')));
});
