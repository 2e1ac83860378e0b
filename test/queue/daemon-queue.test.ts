/**
 * The daemon with a Redis queue (`uflow serve --queue URL`, what VS Code's `uflow.queue` setting
 * starts): `uflow/train` answers at once, the training runs in a real `uflow worker` process, and
 * the client sees the same `uflow/trainingUpdate`, `$/progress` and `uflow/jobEnded` as for a
 * local training (the status bar and the curves read those); `uflow/cancel` stops the remote job.
 * Skipped, with the reason, where redis-server is not installed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { JobEnded, TrainResult, TrainingUpdate } from '../../server/protocol.js';
import { tinyConfig, writeTinyCategory } from '../daemon/fixtures.js';
import { startDaemon, tempDir, type DaemonProcess } from '../daemon/harness.js';
import { redisMissing, startRedis, startWorkerProc, type RedisServer, type WorkerProc } from './helpers.js';

const skip = redisMissing();
if (skip) console.log(`# ${skip}`);

const t = tempDir('uflow-daemon-queue-');
let redis: RedisServer;
let worker: WorkerProc;
let d: DaemonProcess;
let carpet: string;

before(async () => {
  if (skip) return;
  carpet = await writeTinyCategory(join(t.dir, 'data'), 'carpet', { size: 32, trainGood: 6, testGood: 2, defects: 2, seed: 1 });
  redis = await startRedis(join(t.dir, 'redis'));
  worker = await startWorkerProc(redis.url, 'wd');
  d = await startDaemon({ workspaceFolders: [t.dir], workDoneProgress: true, args: ['--queue', redis.url] });
});

after(async () => {
  if (!skip) {
    if (d) await d.close();
    if (worker?.child.exitCode === null) {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
    await redis?.stop();
  }
  t.cleanup();
});

function ended(jobId: string): Promise<JobEnded> {
  return d.inbox.wait('uflow/jobEnded', (p: JobEnded) => p.jobId === jobId, 120_000, `jobEnded of ${jobId}`).then((n) => n.params as JobEnded);
}

test('uflow/train with --queue: a worker trains it; trainingUpdate, $/progress and jobEnded as for a local run', { skip }, async () => {
  const res = (await d.conn.sendRequest('uflow/train', { datasetPath: carpet, model: 'uflow', config: tinyConfig(3), workDoneToken: 'tok-q' })) as TrainResult;
  const job = res.jobs[0]!;
  const end = await ended(job.jobId);
  assert.equal(end.state, 'done', end.error);
  assert.equal(end.run?.state, 'finished');
  assert.equal(end.run?.epochsDone, 3);
  const ups = d.inbox.all('uflow/trainingUpdate', (p: TrainingUpdate) => p.jobId === job.jobId).map((n) => n.params as TrainingUpdate);
  const train = ups.filter((u) => u.phase === 'train');
  assert.ok(train.length >= 3, `updates: ${train.length}`);
  assert.deepEqual([...new Set(train.map((u) => u.epoch))], [1, 2, 3]);
  assert.equal(train[0]!.runId, job.runId);
  const prog = d.progress('tok-q');
  assert.equal(prog[0]?.kind, 'begin');
  assert.ok(prog.some((v) => /^epoch 3\/3 · loss/.test(v.message ?? '')), JSON.stringify(prog.map((v) => v.message)));
  assert.match(prog.at(-1)?.message ?? '', /finished: 3 epochs/);
  assert.match(worker.output(), new RegExp(`job train-${job.runId}-\\S+ done`));
  const logs = d.inbox.all('uflow/log', (p: { message: string }) => /queued as job train-/.test(p.message));
  assert.equal(logs.length, 1);
});

test('uflow/cancel of a remote training: the worker stops within a step, jobEnded cancelled, run.json cancelled', { skip }, async () => {
  const res = (await d.conn.sendRequest('uflow/train', { datasetPath: carpet, model: 'uflow', config: tinyConfig(500) })) as TrainResult;
  const job = res.jobs[0]!;
  await d.inbox.wait('uflow/trainingUpdate', (p: TrainingUpdate) => p.jobId === job.jobId && p.phase === 'train' && p.epoch >= 2, 120_000, 'epoch 2');
  await d.conn.sendRequest('uflow/cancel', { jobId: job.jobId });
  const end = await ended(job.jobId);
  assert.equal(end.state, 'cancelled', JSON.stringify(end));
  const run = JSON.parse(readFileSync(join(t.dir, '.uflow', 'runs', job.runId, 'run.json'), 'utf8'));
  assert.equal(run.state, 'cancelled');
  assert.ok(run.epochsDone >= 1 && run.epochsDone < 500);
  assert.match(worker.output(), /stopped after [01] more training steps? on worker wd/);
});
