import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  appendMetrics,
  claimRun,
  listRuns,
  markInterrupted,
  newestFinishedRun,
  newRunId,
  PipelineError,
  readMetrics,
  readRun,
  runDir,
  truncateMetrics,
  writeRun,
  type StoredRun,
} from '../../server/runs.js';
import type { RunConfig } from '../../server/protocol.js';

const config: RunConfig = {
  model: { input_size: 64, flow_steps: 2, backbone: 'builtin:filters' },
  trainer: {
    epochs: 3,
    batch_train: 4,
    batch_val: 4,
    learning_rate: 1e-3,
    weight_decay: 1e-5,
    log_every_n_epochs: 1,
    save_ckpt_every: 1,
    save_debug_images_every: 0,
    log_predefined_debug_images: false,
    log_n_images: 0,
    validate_every: 1,
    patience: 0,
    seed: 0,
  },
};

function makeRun(trainDir: string, category: string, when: Date, state: StoredRun['state']): StoredRun {
  const runId = newRunId(category, 'uflow', when);
  const now = when.toISOString();
  return writeRun({
    runId,
    dir: runDir(trainDir, runId),
    model: 'uflow',
    category,
    datasetPath: '/data/' + category,
    datasetFingerprint: 'x',
    config,
    state,
    createdAt: now,
    updatedAt: now,
    epochsDone: 0,
    engine: { backend: 'cpu', device: 'cpu' },
    versions: {},
    best: {},
  });
}

test('run ids sort by time and name the category and model', () => {
  const a = newRunId('carpet', 'uflow', new Date(Date.UTC(2024, 0, 2, 3, 4, 5)));
  assert.match(a, /^carpet-uflow-20240102-030405-[0-9a-f]{4}$/);
  const b = newRunId('carpet', 'uflow', new Date(Date.UTC(2024, 0, 2, 3, 4, 6)));
  assert.ok(a < b);
  assert.match(newRunId('my cat/../x', 'fastflow'), /^my_cat_.._x-fastflow-\d{8}-\d{6}-[0-9a-f]{4}$/);
  assert.throws(() => runDir('/t', '../etc'), (e: unknown) => e instanceof PipelineError && e.code === 'Usage');
});

test('listRuns is newest first; newestFinishedRun filters by category; readRun names missing runs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'uflow-runs-'));
  try {
    const r1 = makeRun(dir, 'carpet', new Date(Date.UTC(2024, 0, 1)), 'finished');
    const r2 = makeRun(dir, 'grid', new Date(Date.UTC(2024, 0, 2)), 'finished');
    const r3 = makeRun(dir, 'carpet', new Date(Date.UTC(2024, 0, 3)), 'failed');
    assert.deepEqual(listRuns(dir).map((r) => r.runId), [r3.runId, r2.runId, r1.runId]);
    assert.equal(newestFinishedRun(dir, 'carpet')?.runId, r1.runId);
    assert.equal(newestFinishedRun(dir)?.runId, r2.runId);
    assert.equal(readRun(dir, r2.runId).category, 'grid');
    assert.throws(() => readRun(dir, 'nope-uflow-20240101-000000-0000'), (e: unknown) => e instanceof PipelineError && e.code === 'NotFound' && /recent runs: /.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('markInterrupted: running runs of dead processes become interrupted, live ones stay', () => {
  const dir = mkdtempSync(join(tmpdir(), 'uflow-runs-'));
  try {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const r1 = makeRun(dir, 'carpet', new Date(Date.UTC(2024, 0, 1)), 'running');
    writeRun({ ...claimRun(r1, 'running'), pid: dead });
    const r2 = claimRun(makeRun(dir, 'grid', new Date(Date.UTC(2024, 0, 2)), 'queued'), 'running');
    const changed = markInterrupted(dir);
    assert.deepEqual(changed.map((r) => r.runId), [r1.runId]);
    assert.equal(readRun(dir, r1.runId).state, 'interrupted');
    assert.equal(readRun(dir, r2.runId).state, 'running');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('metrics.jsonl holds whole lines; a resumed epoch replaces later lines', () => {
  const dir = mkdtempSync(join(tmpdir(), 'uflow-runs-'));
  try {
    const rec = (epoch: number) => ({ epoch, loss: -epoch, lr: 1e-3, seconds: 1, imagesPerSecond: 10, time: 't' });
    for (const e of [1, 2, 3]) appendMetrics(dir, rec(e));
    truncateMetrics(dir, 2);
    appendMetrics(dir, { ...rec(3), loss: -30 });
    const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    assert.equal(lines.length, 3);
    assert.deepEqual(readMetrics(dir).map((r) => r.loss), [-1, -2, -30]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
