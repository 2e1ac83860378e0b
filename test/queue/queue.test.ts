/**
 * The Redis queue with the real thing: a redis-server of its own on a free loopback port, two
 * real `uflow worker` processes (dist/cli.js), tiny categories on a shared folder (here: one
 * machine's /tmp, as an NFS mount would be on many).
 *
 * - train-all of four categories on the queue: both workers take jobs, one summary table;
 * - a worker SIGKILLed mid-epoch: the other takes the job over from the last complete epoch,
 *   nothing is lost, and the model equals an uninterrupted run's;
 * - two jobs for one run: the run lock keeps the second worker out until the first is done;
 * - cancel of a running remote job stops it within one training step;
 * - bad jobs (a dataset the worker cannot read, an unknown kind) fail with their message, and
 *   the worker goes on serving (evaluate and predict jobs after them);
 * - a Redis restart (append-only file) loses no submitted job.
 * Skipped, with the reason, where redis-server is not installed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { readSafetensors } from '../../models/io/safetensors.js';
import { QueueClient } from '../../server/queue/client.js';
import { RunLock } from '../../server/queue/run-lock.js';
import type { QueueProgress, TrainJobResult } from '../../server/queue/types.js';
import { cli, tempDir } from '../cli/cli-helpers.js';
import { redisMissing, runFolder, startRedis, startWorkerProc, tinyCategory, tinyFlags, type RedisServer, type WorkerProc } from './helpers.js';

const skip = redisMissing();
if (skip) console.log(`# ${skip}`);

const tmp = tempDir('uflow-queue-');
const data = join(tmp.dir, 'data');
const trainDir = join(tmp.dir, 'shared', '.uflow');
let redis: RedisServer;
let client: QueueClient;
const workers = new Map<string, WorkerProc>();

before(async () => {
  if (skip) return;
  for (const [i, c] of ['bolt', 'cable', 'gear', 'tile'].entries()) tinyCategory(data, c, 11 + i);
  redis = await startRedis(join(tmp.dir, 'redis'));
  const [a, b] = await Promise.all([startWorkerProc(redis.url, 'w1'), startWorkerProc(redis.url, 'w2')]);
  workers.set('w1', a);
  workers.set('w2', b);
  client = await QueueClient.open(redis.url);
});

after(async () => {
  if (skip) return tmp.cleanup();
  await client?.close();
  for (const w of workers.values()) {
    if (w.child.exitCode === null) {
      w.child.kill('SIGTERM');
      await w.exited;
    }
  }
  await redis?.stop();
  tmp.cleanup();
});

function epochsOf(runId: string): Array<{ epoch: number; loss: number }> {
  return readFileSync(join(runFolder(trainDir, runId), 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
}

function runJson(runId: string): { state: string; epochsDone: number; error?: string } {
  return JSON.parse(readFileSync(join(runFolder(trainDir, runId), 'run.json'), 'utf8'));
}

/** `uflow train --queue … --detach` → the job and run ids. */
async function submit(category: string, epochs: number, batch = 2): Promise<{ jobId: string; runId: string }> {
  const r = await cli(['train', '-cat', category, '-data', data, '-train_dir', trainDir, ...tinyFlags(epochs, batch), '--queue', redis.url, '--detach']);
  assert.equal(r.code, 0, r.stderr);
  const m = /queued job (\S+): run (\S+) on/.exec(r.stdout);
  assert.ok(m, r.stdout);
  return { jobId: m![1]!, runId: m![2]! };
}

test('train-all on the queue: four categories over two workers, one summary table with the mean', { skip }, async () => {
  const r = await cli(['train-all', '-data', data, '-train_dir', trainDir, ...tinyFlags(2), '--queue', redis.url]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const dir = /summary: (\S+)\/summary\.md/.exec(r.stdout)![1]!;
  const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as { rows: Array<{ category: string; state: string; worker: string; epochs: number; overall: Record<string, number> }>; mean: Record<string, number> };
  assert.deepEqual(summary.rows.map((x) => x.category), ['bolt', 'cable', 'gear', 'tile']);
  for (const row of summary.rows) {
    assert.equal(row.state, 'done');
    assert.equal(row.epochs, 2);
    for (const m of ['image_auroc', 'pixel_auroc', 'aupro']) assert.ok(row.overall[m]! >= 0 && row.overall[m]! <= 1, `${row.category} ${m} ${row.overall[m]}`);
  }
  assert.deepEqual([...new Set(summary.rows.map((x) => x.worker))].sort(), ['w1', 'w2'], 'both workers took jobs');
  const mean = summary.rows.reduce((s, x) => s + x.overall.pixel_auroc!, 0) / 4;
  assert.ok(Math.abs(summary.mean.pixel_auroc! - mean) < 1e-12);
  assert.match(r.stdout, /\| \*\*mean\*\* \(4 of 4\) \| /);
  for (const c of ['bolt', 'cable', 'gear', 'tile']) assert.match(r.stdout, new RegExp(`^\\| ${c} \\| \\d\\.\\d{4} \\| \\d\\.\\d{4} \\|`, 'm'));
  assert.ok(existsSync(join(dir, 'report.html')));
  assert.match(readFileSync(join(dir, 'summary.md'), 'utf8'), /4 categories in [\d.]+ s on redis:\/\/127\.0\.0\.1/);
});

test('a worker SIGKILLed mid-epoch: the other resumes from the last complete epoch; nothing lost, same model', { skip }, async () => {
  const epochs = 8;
  const { jobId, runId } = await submit('gear', epochs, 1);
  // Watch the job's live progress; kill whichever worker runs it at step 2 of epoch 3. The
  // worker goes on for a few milliseconds after the event left it: what it did before it died is
  // what its last progress events say.
  let victim: string | undefined;
  let killedAt: { epoch: number; step: number } | undefined;
  let lastOfVictim: { epoch: number; step: number; steps: number } | undefined;
  // What the victim left on disk when it died: the epoch of its last checkpoint. Read once its
  // process is gone, before the other worker can take the run over (the run lock and BullMQ's
  // stalled-job check hold it back for seconds).
  let onDisk: Promise<number> | undefined;
  const dir = runFolder(trainDir, runId);
  let end;
  try {
    end = await client.follow<TrainJobResult>(jobId, {
      onProgress: (p: QueueProgress) => {
        const u = p.update;
        if (victim && p.worker === victim && u?.phase === 'train') lastOfVictim = { epoch: u.epoch, step: u.step, steps: u.steps };
        if (!killedAt && u?.phase === 'train' && u.epoch === 3 && u.step === 2) {
          victim = p.worker;
          killedAt = { epoch: u.epoch, step: u.step };
          lastOfVictim = { epoch: u.epoch, step: u.step, steps: u.steps };
          const w = workers.get(p.worker)!;
          w.child.kill('SIGKILL');
          onDisk = w.exited.then(() => Number(readSafetensors(join(dir, 'checkpoint.safetensors')).metadata.epoch));
        }
      },
    });
  } finally {
    // The killed worker is replaced for the next tests.
    if (victim) workers.set(victim, await startWorkerProc(redis.url, victim));
  }
  assert.ok(killedAt && victim && lastOfVictim && onDisk, 'the kill happened');
  assert.equal(end.state, 'done', JSON.stringify(end));
  const v = (end as { value: TrainJobResult }).value;
  assert.notEqual(v.worker, victim, 'the other worker finished it');
  // The signal lands some milliseconds after the progress event left the victim, which may have
  // finished more steps unseen. What must hold: it died mid-training, no epoch it completed was
  // lost (its checkpoint is at least the last complete epoch it was seen in), and the other
  // worker resumed exactly from that checkpoint.
  const diedWith = await onDisk;
  const lastComplete = lastOfVictim.step === lastOfVictim.steps ? lastOfVictim.epoch : lastOfVictim.epoch - 1;
  assert.ok(diedWith < epochs, `the victim finished the run (checkpoint epoch ${diedWith}) before the signal landed: nothing was tested`);
  assert.ok(diedWith >= lastComplete, `the victim's checkpoint is at epoch ${diedWith}, but it was seen completing epoch ${lastComplete}: an epoch was lost`);
  assert.equal(v.resumedFrom, diedWith, `resumed from ${v.resumedFrom}, not from the victim's last checkpoint (epoch ${diedWith}; victim last seen at ${JSON.stringify(lastOfVictim)})`);
  const redone = diedWith === lastOfVictim.epoch ? 0 : lastOfVictim.step;
  assert.equal(v.run.state, 'finished');
  assert.equal(v.run.epochsDone, epochs);
  // Nothing lost, nothing twice: one line per epoch; checkpoint of the last epoch; no lock left.
  const lines = epochsOf(runId);
  assert.deepEqual(lines.map((l) => l.epoch), Array.from({ length: epochs }, (_, i) => i + 1));
  assert.equal(readSafetensors(join(dir, 'checkpoint.safetensors')).metadata.epoch, String(epochs));
  assert.equal(runJson(runId).state, 'finished');
  assert.ok(!existsSync(join(dir, 'run.lock')), 'the run lock file is gone');
  const survivor = workers.get(v.worker)!;
  assert.match(survivor.output(), new RegExp(`resumed at epoch ${v.resumedFrom} with the optimizer state`));

  // The same training uninterrupted: per-epoch losses and final weights agree.
  const ref = await submit('gear', epochs, 1);
  const refEnd = await client.follow<TrainJobResult>(ref.jobId);
  assert.equal(refEnd.state, 'done');
  const a = epochsOf(runId);
  const b = epochsOf(ref.runId);
  for (let i = 0; i < epochs; i++) assert.ok(Math.abs(a[i]!.loss - b[i]!.loss) <= 1e-4 * Math.max(1, Math.abs(b[i]!.loss)), `epoch ${i + 1}: loss ${a[i]!.loss} vs ${b[i]!.loss}`);
  const wa = readSafetensors(join(dir, 'checkpoint.safetensors')).tensors;
  const wb = readSafetensors(join(runFolder(trainDir, ref.runId), 'checkpoint.safetensors')).tensors;
  let maxDiff = 0;
  for (const [k, t] of wb) {
    const o = wa.get(k)!.data;
    for (let i = 0; i < t.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(Number(o[i]) - Number(t.data[i])));
  }
  console.log(`# SIGKILL sent to ${victim} at epoch ${killedAt.epoch} step ${killedAt.step}/${lastOfVictim.steps} (its last step: epoch ${lastOfVictim.epoch} step ${lastOfVictim.step}); ${v.worker} resumed from epoch ${v.resumedFrom}: redone ${redone} step(s), lost 0 epochs; final weights vs uninterrupted: max |Δ| ${maxDiff.toExponential(2)}`);
  assert.ok(maxDiff < 1e-4, `weights differ by ${maxDiff}`);
});

test('two jobs for one run: the run lock keeps the second worker out; the run is trained once', { skip }, async () => {
  const { jobId, runId } = await submit('bolt', 6);
  const stored = JSON.parse(readFileSync(join(runFolder(trainDir, runId), 'run.json'), 'utf8'));
  const job = await client.job(jobId);
  const twin = await client.submit('train', { ...(job!.data as object), kind: 'train' } as never, `${jobId}-twin`);
  void stored;
  const [e1, e2] = await Promise.all([client.follow<TrainJobResult>(jobId), client.follow<TrainJobResult>(twin)]);
  assert.equal(e1.state, 'done');
  assert.equal(e2.state, 'done');
  const results = [(e1 as { value: TrainJobResult }).value, (e2 as { value: TrainJobResult }).value];
  // One trained all 6 epochs from 0; the other found the run finished.
  assert.deepEqual(results.map((r) => r.resumedFrom).sort(), [0, 6]);
  assert.deepEqual(epochsOf(runId).map((l) => l.epoch), [1, 2, 3, 4, 5, 6]);
  const logs = [...workers.values()].map((w) => w.output()).join('\n');
  assert.match(logs, new RegExp(`run ${runId} is being written by worker w[12] \\(its lock expires in \\d+ s\\): put back on the queue`));
});

test('the run lock: held keys refuse a second holder; a holder whose key is taken over is told', { skip }, async () => {
  const r = new Redis(redis.port, '127.0.0.1');
  try {
    const key = 'uflow:test:run-lock:x';
    const a = await RunLock.acquire(r, key, { worker: 'a', host: 'h', pid: 1 }, 1500);
    assert.ok(a instanceof RunLock);
    const b = await RunLock.acquire(r, key, { worker: 'b', host: 'h', pid: 2 }, 1500);
    assert.ok(!(b instanceof RunLock));
    assert.equal((b as { heldBy: { worker: string } }).heldBy.worker, 'a');
    await r.set(key, 'someone else', 'PX', 5000);
    await new Promise<void>((res) => a.lost.addEventListener('abort', () => res()));
    assert.match((a.lost.reason as Error).message, /taken over/);
    await a.release();
    assert.equal(await r.get(key), 'someone else', 'a lost lock is not deleted by its old holder');
  } finally {
    r.disconnect();
  }
});

test('cancel of a running remote job stops it within one training step; the last epoch is kept', { skip }, async () => {
  const { jobId, runId } = await submit('cable', 500);
  let cancelled = false;
  const end = await client.follow(jobId, {
    onUpdate: (u) => {
      if (!cancelled && u.phase === 'train' && u.epoch >= 2) {
        cancelled = true;
        void cli(['jobs', 'cancel', jobId, '--queue', redis.url]).then((r) => {
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stdout, /cancel sent; its worker stops it at its next training step/);
        });
      }
    },
  });
  assert.equal(end.state, 'cancelled', JSON.stringify(end));
  const msg = (end as { error: string }).error;
  const m = /stopped after (\d+) more training steps? on worker/.exec(msg);
  assert.ok(m, msg);
  assert.ok(Number(m![1]) <= 1, msg);
  assert.match(msg, /^cancelled: cancelled by uflow jobs cancel/);
  const run = runJson(runId);
  assert.equal(run.state, 'cancelled');
  assert.ok(run.epochsDone >= 1 && run.epochsDone < 500);
  assert.equal(readSafetensors(join(runFolder(trainDir, runId), 'checkpoint.safetensors')).metadata.epoch, String(run.epochsDone));
  const list = await cli(['jobs', '--queue', redis.url, '--json']);
  const mine = (JSON.parse(list.stdout) as Array<{ jobId: string; state: string }>).find((j) => j.jobId === jobId);
  assert.equal(mine?.state, 'cancelled');
  const again = await cli(['jobs', 'cancel', jobId, '--queue', redis.url]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /has already ended: nothing to cancel/);
});

test('bad jobs fail with their message and no retry; the workers go on serving evaluate and predict jobs', { skip }, async () => {
  const { jobId: goodId, runId } = await submit('tile', 2);
  assert.equal((await client.follow(goodId)).state, 'done');
  const good = (await client.job(goodId))!.data as Record<string, unknown>;
  const unmounted = await client.submit('train', { ...good, datasetPath: '/mnt/not-mounted/tile' } as never, 'bad-mount');
  const unknown = await client.submit('frobnicate' as never, { kind: 'frobnicate', trainDir } as never, 'bad-kind');
  const exp = await client.submit('export', { kind: 'export', trainDir, runId, format: 'tflite' } as never, 'bad-export');
  const e1 = await client.follow(unmounted);
  assert.equal(e1.state, 'failed');
  assert.match((e1 as { error: string }).error, /^worker w[12] cannot read the dataset \/mnt\/not-mounted\/tile \(ENOENT\): every worker must see the submitter's paths/);
  assert.equal((await client.job(unmounted))!.attemptsMade, 1, 'not retried');
  const e2 = await client.follow(unknown);
  assert.equal(e2.state, 'failed');
  assert.match((e2 as { error: string }).error, /unknown job kind 'frobnicate': worker w[12] serves train, evaluate, predict, export/);
  const e3 = await client.follow(exp);
  assert.equal(e3.state, 'failed');
  assert.match((e3 as { error: string }).error, /cannot export run \S+ as 'tflite': the export format is onnx/);
  assert.equal((await client.job(exp))!.attemptsMade, 1, 'not retried');
  // Still serving: an evaluation and a prediction of the good run.
  const ev = await client.submit('evaluate', { kind: 'evaluate', trainDir, runId, checkpoint: 'last' }, 'eval-after-bad');
  const evEnd = await client.follow<{ evaluation: { overall: { pixel_auroc: number } } }>(ev);
  assert.equal(evEnd.state, 'done', JSON.stringify(evEnd));
  const px = (evEnd as { value: { evaluation: { overall: { pixel_auroc: number } } } }).value.evaluation.overall.pixel_auroc;
  assert.ok(px > 0 && px <= 1);
  const image = join(data, 'tile', 'test', 'hole', '000.png');
  const out = join(tmp.dir, 'shared', 'maps');
  const pr = await client.submit('predict', { kind: 'predict', trainDir, runId, images: [image], outDir: out }, 'predict-after-bad');
  const prEnd = await client.follow<{ images: Array<{ score: number; files: string[] }> }>(pr);
  assert.equal(prEnd.state, 'done', JSON.stringify(prEnd));
  const img = (prEnd as { value: { images: Array<{ score: number; files: string[] }> } }).value.images[0]!;
  assert.ok(Number.isFinite(img.score));
  for (const f of img.files) assert.ok(existsSync(f), f);
  // And an export of it: one ONNX file on the shared path, its metadata naming the run.
  const onnxPath = join(tmp.dir, 'shared', 'tile.onnx');
  const ex = await client.submit('export', { kind: 'export', trainDir, runId, outPath: onnxPath }, 'export-after-bad');
  const exEnd = await client.follow<{ path: string; bytes: number; metadata: Record<string, string> }>(ex);
  assert.equal(exEnd.state, 'done', JSON.stringify(exEnd));
  const exported = (exEnd as { value: { path: string; bytes: number; metadata: Record<string, string> } }).value;
  assert.equal(exported.path, onnxPath);
  assert.equal(statSync(onnxPath).size, exported.bytes);
  assert.ok(exported.bytes > 10_000, `${exported.bytes} bytes`);
  assert.ok(JSON.stringify(exported.metadata).includes(runId), 'the metadata names the run');
  for (const w of workers.values()) assert.equal(w.child.exitCode, null, `${w.name} is still up`);
});

test('a Redis restart (append-only file) loses no submitted job; a worker then runs it', { skip }, async () => {
  const r2 = await startRedis(join(tmp.dir, 'redis-aof'), { appendonly: true });
  try {
    const c2 = await QueueClient.open(r2.url);
    const runs = await cli(['runs', '-train_dir', trainDir, '--json']);
    const done = (JSON.parse(runs.stdout) as Array<{ runId: string; state: string; category: string }>).find((x) => x.state === 'finished' && x.category === 'tile')!;
    const id = await c2.submit('evaluate', { kind: 'evaluate', trainDir, runId: done.runId, checkpoint: 'last' }, 'survives-restart');
    await c2.close();
    await r2.stop();
    await r2.start();
    const c3 = await QueueClient.open(r2.url);
    try {
      const listed = await c3.list();
      assert.deepEqual(listed.map((j) => [j.jobId, j.state]), [[id, 'queued']]);
      const w = await startWorkerProc(r2.url, 'w3');
      try {
        const end = await c3.follow(id);
        assert.equal(end.state, 'done', JSON.stringify(end));
      } finally {
        w.child.kill('SIGTERM');
        assert.equal(await w.exited, 0, w.output());
      }
    } finally {
      await c3.close();
    }
  } finally {
    await r2.stop();
  }
});
