/**
 * `model: 'fastflow'` through the pipeline (what CLI `-model fastflow` and daemon
 * `uflow/train {model:'fastflow'}` call): train with validation (tree NFA → mIoU), resume, evaluate,
 * predict; the checkpoint is a FastFlow one with anomalib names, the maps use FastFlow's range.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { generateDemoDataset } from '../../models/data/demo-dataset.js';
import { readModelCheckpoint } from '../../models/model-factory.js';
import { evaluate } from '../../server/evaluate.js';
import { Predictor } from '../../server/predict.js';
import { train } from '../../server/train.js';

const tmp = mkdtempSync(join(tmpdir(), 'fastflow-pipeline-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test("model 'fastflow': train (validated, resumed), evaluate with NFA mIoU, predict; FastFlow checkpoint; no leaked tensors", async () => {
  await initEngine({ backend: 'wasm' });
  const data = generateDemoDataset(join(tmp, 'data'), { size: 64, counts: { train: 8, testGood: 2, defects: { hole: 1, scratch: 1, stain: 1 } } });
  const trainDir = join(tmp, 'td');
  const config = {
    model: { backbone: 'builtin:filters', input_size: 32, flow_steps: 2, hidden_ratio: 0.5, conv3x3_only: true },
    trainer: { epochs: 1, batch_train: 4, learning_rate: 1e-3, validate_every: 1, patience: 0 },
  };
  const n0 = tf.memory().numTensors;
  const first = await train({ datasetPath: data, trainDir, backend: 'wasm', model: 'fastflow', config });
  assert.equal(first.state, 'finished', first.error);
  assert.equal(first.model, 'fastflow');
  const run = await train({ trainDir, datasetPath: data, resumeRunId: first.runId, backend: 'wasm', config: { trainer: { epochs: 2 } } });
  assert.equal(run.state, 'finished', run.error);
  assert.equal(run.epochsDone, 2);
  assert.equal(tf.memory().numTensors, n0, 'train');
  assert.ok(run.best.pixel_auroc !== undefined && Number.isFinite(run.best.pixel_auroc));

  const ck = readModelCheckpoint(join(run.dir, 'checkpoint.safetensors'));
  assert.equal(ck.kind, 'fastflow');
  assert.equal(ck.metadata.epoch, '2');
  assert.ok(ck.state.has('fast_flow_blocks.2.module_list.1.subnet.4.bias'));
  assert.ok(![...ck.state.keys()].some((k) => k.startsWith('norms.')), 'builtin:filters reports no LayerNorm levels');
  assert.deepEqual(ck.state.get('fast_flow_blocks.0.module_list.1.subnet.1.weight')!.shape, [4, 8, 3, 3], 'conv3x3_only and hidden_ratio 0.5 (16 channels: C1 8 → 4)');

  const ev = await evaluate({ trainDir, runId: run.runId });
  assert.equal(ev.model, 'fastflow');
  assert.equal(ev.images.length, 5);
  for (const k of ['image_auroc', 'pixel_auroc', 'aupro', 'miou'] as const) assert.ok(Number.isFinite(ev.overall[k]), `${k} = ${ev.overall[k]}`);
  for (const im of ev.images) {
    assert.ok(im.score >= -1 && im.score <= 0, `FastFlow score ${im.score} in [−1, 0]`);
    assert.ok(Number.isFinite(im.maxNegLogNfa) || im.maxNegLogNfa === -Infinity);
  }
  assert.equal(tf.memory().numTensors, n0, 'evaluate');

  const p = await Predictor.open({ trainDir, runId: run.runId });
  const pr = await p.predict(ev.images[0]!.path, { includeRaw: true });
  assert.equal(pr.anomalyMap!.length, 256 * 256);
  assert.ok(pr.anomalyMap!.every((v) => v >= -1 && v <= 0));
  assert.equal(pr.score, Math.max(...pr.anomalyMap!));
  assert.equal(pr.negLogNfaMap!.length, 256 * 256);
  p.dispose();
  assert.equal(tf.memory().numTensors, n0, 'predict');
});
