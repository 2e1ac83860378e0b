/**
 * The training estimate (server/estimate.ts): the extrapolation arithmetic, the line, the faster
 * alternative; and, through the pipeline, that measuring before training changes nothing the
 * training computes (same weights with and without the estimate).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { generateDemoDataset } from '../../models/data/demo-dataset.js';
import { readSafetensors } from '../../models/io/safetensors.js';
import { train } from '../../server/train.js';
import { runTraining, type StepProgress } from '../../models/train/trainer.js';
import { UFlowModel } from '../../models/uflow-model.js';
import { etaFromEstimate, extrapolate, fasterAlternative, formatEstimate, formatSeconds, secondsPerTrainEpoch, validationsIn } from '../../server/estimate.js';
import type { TrainingEstimate, TrainingUpdate } from '../../server/protocol.js';

const tmp = mkdtempSync(join(tmpdir(), 'estimate-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('secondsPerTrainEpoch: full batches plus the partial one in proportion', () => {
  assert.equal(secondsPerTrainEpoch(200, 32, 2), 6 * 2 + (8 / 32) * 2); // 12.5
  assert.equal(secondsPerTrainEpoch(64, 32, 3), 6);
  assert.equal(secondsPerTrainEpoch(10, 32, 4), 4, 'a batch larger than the set is one step of the whole set');
});

test('validationsIn: every N-th epoch and the last, from the resume point', () => {
  assert.equal(validationsIn(0, 100, 10), 10);
  assert.equal(validationsIn(0, 105, 10), 11, 'epoch 105 is validated too');
  assert.equal(validationsIn(40, 100, 10), 6);
  assert.equal(validationsIn(0, 100, 0), 0);
  assert.equal(validationsIn(100, 100, 10), 0);
});

test('extrapolate: features × uncached images + epochs × (train epoch + amortised validation)', () => {
  const e = extrapolate({
    trainImages: 180,
    uncachedImages: 300,
    featureSecondsPerImage: 0.5,
    batchSize: 32,
    stepSeconds: 1.5,
    epochs: 200,
    validateEvery: 20,
    validationSeconds: 30,
    earlyStopping: true,
  });
  assert.equal(e.featureSeconds, 150);
  // 5 full steps + 20/32 of one = 5.625 steps × 1.5 s = 8.4375 s; 10 validations × 30 s over 200 epochs = 1.5 s/epoch
  assert.equal(e.secondsPerEpoch, 8.4375 + 1.5);
  assert.equal(e.totalSeconds, 150 + 200 * 9.9375);
  assert.equal(e.atMost, true);
  assert.equal(e.epochs, 200);
  const resumed = extrapolate({ trainImages: 64, uncachedImages: 0, featureSecondsPerImage: 9, batchSize: 32, stepSeconds: 1, epochs: 5, validateEvery: 0, validationSeconds: 0, earlyStopping: false, totalEpochs: 10, startEpoch: 5 });
  assert.equal(resumed.featureSeconds, 0, 'cached features cost nothing');
  assert.equal(resumed.totalSeconds, 10);
});

const base: Omit<TrainingEstimate, 'line'> = { totalSeconds: 2520, featureSeconds: 180, uncachedImages: 240, secondsPerEpoch: 9, epochs: 260, atMost: false, backend: 'wasm', threads: 2, measuredSeconds: 3 };

test('formatEstimate: one line, the issue’s shape', () => {
  assert.equal(formatEstimate(base), 'about 42 min: features 3 min, 9.0 s/epoch × 260 epochs, wasm 2 threads');
  assert.equal(formatEstimate({ ...base, atMost: true, uncachedImages: 0, featureSeconds: 0, totalSeconds: 45, secondsPerEpoch: 0.35, epochs: 1, backend: 'cpu', threads: 1 }), 'at most about 45 s: features cached, 0.35 s/epoch × 1 epoch, cpu 1 thread');
  assert.equal(formatEstimate({ ...base, backend: 'tensorflow', threads: 0, totalSeconds: 4800, secondsPerEpoch: 75 }), 'about 1 h 20 min: features 3 min, 75 s/epoch × 260 epochs, tensorflow');
  assert.equal(formatSeconds(89), '89 s');
  assert.equal(formatSeconds(7200), '2 h');
});

test('etaFromEstimate: the features left and every epoch', () => {
  assert.equal(etaFromEstimate({ ...base, line: '' }, 240), 2520);
  assert.equal(etaFromEstimate({ ...base, line: '' }, 0), 2340);
});

test('fasterAlternative: fewer epochs when the features fit, else half the input size, nothing when it already fits', () => {
  const fewer = fasterAlternative(base, 20 * 60, { epochs: 260, inputSize: 256 });
  assert.deepEqual(fewer?.config, { trainer: { epochs: 113 } }, '(1200 − 180) / 9 = 113 epochs');
  assert.equal(fewer?.totalSeconds, 180 + 113 * 9);
  assert.match(fewer!.label, /113 epochs instead of 260/);
  const resumed = fasterAlternative({ ...base, epochs: 160 }, 20 * 60, { epochs: 260, inputSize: 256, startEpoch: 100 });
  assert.deepEqual(resumed?.config, { trainer: { epochs: 213 } }, 'counted from the resume point');
  const smaller = fasterAlternative({ ...base, featureSeconds: 1500 }, 20 * 60, { epochs: 260, inputSize: [448, 640] });
  assert.deepEqual(smaller?.config, { model: { input_size: [224, 320] } });
  assert.equal(smaller?.totalSeconds, 2520 / 4);
  assert.equal(fasterAlternative(base, 60 * 60, { epochs: 260, inputSize: 256 }), undefined);
  assert.equal(fasterAlternative({ ...base, featureSeconds: 1500 }, 20 * 60, { epochs: 260, inputSize: 256 }, () => false), undefined, 'a size the backbone refuses is not offered');
});

function weightsOf(runDir: string): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [k, t] of readSafetensors(join(runDir, 'checkpoint.safetensors')).tensors) out.set(k, t.data as Float32Array);
  return out;
}

test('the estimate changes nothing the training computes: the same weights with and without it', async () => {
  await initEngine({ backend: 'wasm' });
  const data = generateDemoDataset(join(tmp, 'data'), { size: 64, counts: { train: 10, testGood: 2, defects: { hole: 1, scratch: 1, stain: 1 } } });
  const config = {
    model: { backbone: 'builtin:filters', input_size: 32, flow_steps: 2 },
    trainer: { epochs: 2, batch_train: 4, learning_rate: 2e-3, validate_every: 1, patience: 0, holdout: 0.2 },
  };
  const updates: TrainingUpdate[] = [];
  const logs: string[] = [];
  const n0 = tf.memory().numTensors;
  // A generous budget: the first batch is measured warm and cached however loaded the machine is.
  process.env.UFLOW_ESTIMATE_SECONDS = '30';
  const withEstimate = await train({ datasetPath: data, trainDir: join(tmp, 'a'), backend: 'wasm', config, estimate: true }, { onUpdate: (u) => updates.push(u), onLog: (l) => logs.push(l) }).finally(() => delete process.env.UFLOW_ESTIMATE_SECONDS);
  assert.equal(withEstimate.state, 'finished', withEstimate.error);
  assert.equal(tf.memory().numTensors, n0, 'the measuring frees its tensors');
  const without = await train({ datasetPath: data, trainDir: join(tmp, 'b'), backend: 'wasm', config, estimate: false }, { onLog: (l) => assert.doesNotMatch(l, /^estimate:/) });
  assert.equal(without.state, 'finished', without.error);

  const line = logs.find((l) => l.startsWith('estimate: '));
  assert.match(line ?? '', /^estimate: (at most )?about \d+ (s|min): features \d+ (s|min), [\d.]+ s\/epoch × 2 epochs, wasm [12] threads?$/);
  const first = updates.findIndex((u) => u.estimate);
  assert.ok(first >= 0 && updates.slice(0, first).every((u) => u.phase !== 'train'), 'the estimate comes before the first step');
  const est = updates[first]!.estimate!;
  assert.equal(est.uncachedImages, 10 + 5, 'every training, held-out and test image');
  assert.ok(est.secondsPerEpoch > 0 && est.featureSeconds > 0 && est.measuredSeconds < 60);
  assert.equal(updates[first]!.etaSeconds, est.totalSeconds);
  // The measured batch went to the cache: every image was computed once (15 feature files).
  const cache = join(tmp, 'a', 'cache', 'features');
  assert.equal(readdirSync(join(cache, readdirSync(cache)[0]!)).length, 15);

  // The bounded path (a slow backbone: one image alone, not cached; the warm-up step as the figure).
  process.env.UFLOW_ESTIMATE_SECONDS = '0';
  const lines: string[] = [];
  const bounded = await train({ datasetPath: data, trainDir: join(tmp, 'c'), backend: 'wasm', config, estimate: true }, { onLog: (l) => lines.push(l) }).finally(() => delete process.env.UFLOW_ESTIMATE_SECONDS);
  assert.equal(bounded.state, 'finished', bounded.error);
  assert.ok(lines.some((l) => l.startsWith('estimate: ')));

  const a = weightsOf(withEstimate.dir);
  const b = weightsOf(without.dir);
  const c = weightsOf(bounded.dir);
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [k, v] of a) assert.deepEqual(v, b.get(k), `${k} differs`);
  for (const [k, v] of c) assert.deepEqual(v, b.get(k), `${k} differs (bounded measuring)`);
});

test('runTraining: the ETA comes from the estimate until the first epoch ends, then from the measured epochs', async () => {
  await initEngine({ backend: 'cpu' });
  const model = new UFlowModel({ backbone: 'test', inputSize: 32, channels: [8, 8, 8], scaleFactors: [4, 8, 16], flowSteps: 2, layerNorm: false, seed: 0 });
  const levels = model.featureSizes().map(([h, w]) => tf.randomNormal([6, h, w, 8], 0, 1, 'float32', 1) as tf.Tensor4D);
  const features = { paths: ['a', 'b', 'c', 'd', 'e', 'f'], levels, computed: 0, dispose: () => tf.dispose(levels) };
  const steps: StepProgress[] = [];
  try {
    // An estimate of 1000 s per epoch, far from the real milliseconds: the first epoch's ETAs say so, the later ones do not.
    await runTraining({ model, features, epochs: 3, batchSize: 3, learningRate: 1e-3, weightDecay: 1e-5, seed: 0, estimatedSecondsPerEpoch: 1000 }, { onStep: (p) => void steps.push(p) });
  } finally {
    features.dispose();
    model.dispose();
  }
  const first = steps.filter((p) => p.epoch === 1);
  const later = steps.filter((p) => p.epoch > 1);
  assert.equal(first.length, 2);
  for (const p of first) assert.ok(p.etaSeconds > 2 * 1000 && p.etaSeconds <= 3 * 1000, `epoch 1 step ${p.step}: ETA ${p.etaSeconds} from the estimate (2 epochs left + the rest of this one)`);
  for (const p of later) assert.ok(p.etaSeconds < 100, `epoch ${p.epoch} step ${p.step}: ETA ${p.etaSeconds} from the measured epochs`);
});
