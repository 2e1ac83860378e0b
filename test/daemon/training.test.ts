/**
 * Jobs through the real daemon, on a tiny generated dataset (32×32 PNGs, builtin filter backbone,
 * one flow step, a few epochs): training with work-done progress and trainingUpdate notifications,
 * evaluation (and its cache), prediction while another training runs, cancelling a training
 * mid-epoch and using its last checkpoint, a queued training's position and cancellation, a
 * corrupt image failing only its job, $/cancelRequest of a waiting request, and the tensor count
 * after 50 predictions; predictions on onnxruntime by default, tfjs when asked. The tests share one daemon and run in order.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CancellationTokenSource } from 'vscode-jsonrpc/node.js';
import {
  ErrorCodes,
  type EvaluateResult,
  type JobEnded,
  type Prediction,
  type RunInfo,
  type StatusResult,
  type TrainResult,
  type TrainingUpdate,
} from '../../server/protocol.js';
import { tinyConfig, writeTinyCategory } from './fixtures.js';
import { rejectsWith, startDaemon, tempDir, type DaemonProcess } from './harness.js';

const MIN = 60_000;
let d: DaemonProcess;
let ws: string;
let carpet: string;
let grid: string;
let firstRun: RunInfo;
const cleanups: Array<() => void> = [];

before(async () => {
  const t = tempDir('uflow-train-');
  cleanups.push(t.cleanup);
  ws = t.dir;
  const data = join(ws, 'data');
  carpet = await writeTinyCategory(data, 'carpet', { size: 32, trainGood: 6, testGood: 2, defects: 2, seed: 1 });
  grid = await writeTinyCategory(join(ws, 'broken'), 'grid', { size: 32, trainGood: 4, testGood: 1, defects: 1, seed: 2, corruptTrainImage: true });
  d = await startDaemon({ workspaceFolders: [ws], workDoneProgress: true });
});

after(async () => {
  if (d) {
    const code = await d.close();
    if (code !== 0) process.stderr.write(d.stderr());
  }
  for (const c of cleanups) c();
});

function ended(jobId: string, ms = 10 * MIN): Promise<JobEnded> {
  return d.inbox.wait('uflow/jobEnded', (p: JobEnded) => p.jobId === jobId, ms, `jobEnded of ${jobId}`).then((n) => n.params as JobEnded);
}

function updates(jobId: string): TrainingUpdate[] {
  return d.inbox.all('uflow/trainingUpdate', (p: TrainingUpdate) => p.jobId === jobId).map((n) => n.params as TrainingUpdate);
}

test('train: answers at once, then $/progress begin/report/end with rising epochs, trainingUpdate, jobEnded', { timeout: 15 * MIN }, async () => {
  const t0 = Date.now();
  const res = (await d.conn.sendRequest('uflow/train', { datasetPath: carpet, model: 'uflow', config: tinyConfig(3), workDoneToken: 'tok-train-1' })) as TrainResult;
  assert.ok(Date.now() - t0 < 10_000, 'the request is answered before the training runs');
  assert.equal(res.jobs.length, 1);
  const job = res.jobs[0]!;
  assert.equal(job.category, 'carpet');
  assert.equal(job.position, 0);
  assert.match(job.runId, /^carpet-uflow-/);

  const end = await ended(job.jobId);
  assert.equal(end.state, 'done', end.error);
  assert.equal(end.kind, 'train');
  assert.equal(end.runId, job.runId);
  assert.equal(end.run?.state, 'finished');
  assert.equal(end.run?.epochsDone, 3);
  firstRun = end.run!;
  assert.ok(existsSync(join(ws, '.uflow', 'runs', job.runId, 'checkpoint.safetensors')));

  const prog = d.progress('tok-train-1');
  assert.equal(prog[0]?.kind, 'begin', JSON.stringify(prog.slice(0, 3)));
  assert.equal(prog[0]?.title, 'U-Flow carpet');
  assert.equal(prog.at(-1)?.kind, 'end');
  assert.match(prog.at(-1)?.message ?? '', /finished: 3 epochs/);
  const reports = prog.filter((v) => v.kind === 'report');
  const epochs = reports.map((v) => /^epoch (\d+)\/3 · loss -?[\d.e+-]+/.exec(v.message ?? '')).filter(Boolean).map((m) => Number(m![1]));
  assert.ok(epochs.length >= 2, `epoch reports: ${JSON.stringify(reports.map((r) => r.message))}`);
  for (let i = 1; i < epochs.length; i++) assert.ok(epochs[i]! >= epochs[i - 1]!, 'epochs never go back');
  assert.ok(new Set(epochs).size >= 2 && epochs.at(-1) === 3, `epochs rise to 3: ${epochs}`);
  const pct = reports.map((v) => v.percentage).filter((p) => p !== undefined) as number[];
  for (let i = 1; i < pct.length; i++) assert.ok(pct[i]! >= pct[i - 1]!, 'percentages never go back');
  assert.ok(reports.some((v) => /img\/s/.test(v.message ?? '')), 'throughput shown');

  const ups = updates(job.jobId).filter((u) => u.phase === 'train');
  assert.ok(ups.length >= 3, `trainingUpdate count ${ups.length}`);
  for (let i = 1; i < ups.length; i++) assert.ok(ups[i]!.epoch >= ups[i - 1]!.epoch);
  assert.equal(ups.at(-1)!.epochs, 3);
  assert.equal(ups[0]!.runId, job.runId);

  const status = (await d.conn.sendRequest('uflow/status')) as StatusResult;
  assert.ok(status.jobs.some((j) => j.jobId === job.jobId && j.state === 'done'));
  const runs = (await d.conn.sendRequest('uflow/runs', { workspace: ws })) as RunInfo[];
  assert.equal(runs[0]?.runId, job.runId);
  assert.equal(runs[0]?.state, 'finished');
});

test('evaluate: metrics on the test split, then the cached evaluation.json while the run is unchanged', { timeout: 10 * MIN }, async () => {
  const ev = (await d.conn.sendRequest('uflow/evaluate', { runId: firstRun.runId })) as EvaluateResult;
  assert.equal(ev.runId, firstRun.runId);
  assert.equal(ev.overall.images, 4);
  assert.equal(typeof ev.overall.image_auroc, 'number');
  assert.ok(!ev.cached);
  const again = (await d.conn.sendRequest('uflow/evaluate', { runId: firstRun.runId })) as EvaluateResult;
  assert.equal(again.cached, true);
  assert.equal(again.evaluatedAt, ev.evaluatedAt);
});

test('predict runs on onnxruntime by default and says so; engine tfjs gives the same regions and verdict', { timeout: 5 * MIN }, async () => {
  const imagePath = join(carpet, 'test', 'spot', '000.png');
  const onnx = (await d.conn.sendRequest('uflow/predict', { runId: firstRun.runId, imagePath })) as Prediction;
  assert.equal(onnx.inference?.engine, 'onnx', JSON.stringify(onnx.inference));
  assert.deepEqual(onnx.inference?.providers, ['cpu']);
  assert.match(onnx.inference!.reason, /^default: onnxruntime-node loaded and the model exports/);
  const tfjs = (await d.conn.sendRequest('uflow/predict', { runId: firstRun.runId, imagePath, engine: 'tfjs' })) as Prediction;
  assert.deepEqual(tfjs.inference, { engine: 'tfjs', reason: 'asked for (engine tfjs)' });
  assert.equal(onnx.maxNegLogNfa > 0, tfjs.maxNegLogNfa > 0);
  assert.ok(Math.abs(onnx.score - tfjs.score) <= 1e-3, `scores ${onnx.score} / ${tfjs.score}`);
  assert.deepEqual(onnx.regions?.map((r) => [r.box, r.area]), tfjs.regions?.map((r) => [r.box, r.area]));
  const st = (await d.conn.sendRequest('uflow/status')) as StatusResult;
  assert.equal(st.predictCache?.runIds.filter((r) => r === firstRun.runId).length, 2, 'one cached predictor per engine');
  await rejectsWith(d.conn.sendRequest('uflow/predict', { runId: firstRun.runId, imagePath, engine: 'torch' }), ErrorCodes.InvalidParams, /params\.engine/);
});

test('predict while another training runs; cancel that training mid-epoch; its last checkpoint predicts', { timeout: 15 * MIN }, async () => {
  const res = (await d.conn.sendRequest('uflow/train', { datasetPath: carpet, model: 'uflow', config: tinyConfig(200) })) as TrainResult;
  const long = res.jobs[0]!;
  // Server-created progress (the client declared window.workDoneProgress and gave no token).
  await d.inbox.wait('uflow/trainingUpdate', (u: TrainingUpdate) => u.jobId === long.jobId && u.phase === 'train' && u.epoch >= 2, 10 * MIN, 'epoch 2 of the long training');

  // A second training queues behind it, with its position.
  const queued = (await d.conn.sendRequest('uflow/train', { datasetPath: carpet, model: 'uflow', config: tinyConfig(2) })) as TrainResult;
  assert.equal(queued.jobs[0]!.position, 1);
  const st = (await d.conn.sendRequest('uflow/status')) as StatusResult;
  assert.deepEqual(
    st.jobs.filter((j) => j.kind === 'train' && (j.state === 'running' || j.state === 'queued')).map((j) => [j.jobId, j.state, j.position]),
    [
      [long.jobId, 'running', 0],
      [queued.jobs[0]!.jobId, 'queued', 1],
    ],
  );

  // Predict with the finished run while the long one trains.
  const p = (await d.conn.sendRequest('uflow/predict', { runId: firstRun.runId, imagePath: join(carpet, 'test', 'spot', '000.png') })) as Prediction;
  assert.equal(typeof p.score, 'number');
  assert.match(p.anomalyMapPng, /^data:image\/png;base64,/);
  assert.equal(d.inbox.all('uflow/jobEnded', (e: JobEnded) => e.jobId === long.jobId).length, 0, 'the training was still running when the prediction was answered');

  // Evaluations run alongside a training (not behind it): here the training run's own last checkpoint.
  const evLive = (await d.conn.sendRequest('uflow/evaluate', { runId: long.runId })) as EvaluateResult;
  assert.equal(evLive.runId, long.runId);
  assert.ok(!evLive.cached, 'a run that is training is never served from the cache');
  assert.equal(d.inbox.all('uflow/jobEnded', (e: JobEnded) => e.jobId === long.jobId).length, 0, 'the training was still running when the evaluation was answered');

  // Cancel the queued one: it ends at once, its run says so.
  assert.equal(await d.conn.sendRequest('uflow/cancel', { jobId: queued.jobs[0]!.jobId }), null);
  const qEnd = await ended(queued.jobs[0]!.jobId, MIN);
  assert.equal(qEnd.state, 'cancelled');
  assert.equal(qEnd.run?.state, 'cancelled');

  // Cancel the long one mid-epoch.
  await d.inbox.wait('uflow/trainingUpdate', (u: TrainingUpdate) => u.jobId === long.jobId && u.phase === 'train' && u.step < u.steps, 10 * MIN, 'a step inside an epoch');
  assert.equal(await d.conn.sendRequest('uflow/cancel', { jobId: long.jobId }), null);
  const lEnd = await ended(long.jobId, 5 * MIN);
  assert.equal(lEnd.state, 'cancelled');
  assert.equal(lEnd.run?.state, 'cancelled');
  assert.ok((lEnd.run?.epochsDone ?? 0) >= 1 && (lEnd.run?.epochsDone ?? 0) < 200, `epochsDone ${lEnd.run?.epochsDone}`);
  assert.ok(d.createdTokens.length >= 1, 'the daemon created a progress token for the long training');
  const prog = d.progress(d.createdTokens[0]!);
  assert.equal(prog[0]?.kind, 'begin');
  assert.equal(prog.at(-1)?.kind, 'end');

  // The last checkpoint of the cancelled run loads and predicts.
  const p2 = (await d.conn.sendRequest('uflow/predict', { runId: long.runId, imagePath: join(carpet, 'test', 'good', '000.png') })) as Prediction;
  assert.equal(p2.runId, long.runId);
  assert.equal(typeof p2.maxNegLogNfa, 'number');
});

test('a corrupt image or a diverging loss fails only its job; the daemon goes on serving', { timeout: 10 * MIN }, async () => {
  const res = (await d.conn.sendRequest('uflow/train', { datasetPath: grid, model: 'uflow', config: tinyConfig(2) })) as TrainResult;
  const end = await ended(res.jobs[0]!.jobId);
  assert.equal(end.state, 'failed');
  assert.match(end.error ?? '', /900_corrupt\.png/);
  assert.equal(end.run?.state, 'failed');
  // A diverging training (infinite / NaN loss) fails the same way.
  const cfg = tinyConfig(3);
  cfg.trainer.learning_rate = 1e9;
  const div = (await d.conn.sendRequest('uflow/train', { datasetPath: carpet, model: 'uflow', config: cfg })) as TrainResult;
  const dEnd = await ended(div.jobs[0]!.jobId);
  assert.equal(dEnd.state, 'failed');
  assert.match(dEnd.error ?? '', /diverged|NaN|Infinity/);
  assert.equal(dEnd.run?.state, 'failed');
  const st = (await d.conn.sendRequest('uflow/status')) as StatusResult;
  assert.equal(st.jobs.find((j) => j.jobId === res.jobs[0]!.jobId)?.state, 'failed');
  assert.equal(st.jobs.find((j) => j.jobId === div.jobs[0]!.jobId)?.state, 'failed');
  const p = (await d.conn.sendRequest('uflow/predict', { runId: firstRun.runId, imagePath: join(carpet, 'test', 'good', '001.png') })) as Prediction;
  assert.equal(typeof p.score, 'number');
});

test('a dataset root without category queues one job per category; window/workDoneProgress/cancel cancels one', { timeout: 10 * MIN }, async () => {
  const root = join(ws, 'multi');
  await writeTinyCategory(root, 'bottle', { size: 32, trainGood: 4, testGood: 1, defects: 1, seed: 3 });
  await writeTinyCategory(root, 'tile', { size: 32, trainGood: 4, testGood: 1, defects: 1, seed: 4 });
  const tokensBefore = d.createdTokens.length;
  const res = (await d.conn.sendRequest('uflow/train', { datasetPath: root, model: 'uflow', config: tinyConfig(1), workDoneToken: 'multi-tok' })) as TrainResult;
  assert.deepEqual(res.jobs.map((j) => [j.category, j.position]), [
    ['bottle', 0],
    ['tile', 1],
  ]);
  // The first job reports on the client's token, the second on one the daemon creates.
  const created = await d.inbox.wait('$/progress', (p: { token: string | number; value: { kind: string } }) => d.createdTokens.indexOf(p.token) >= tokensBefore && p.value.kind === 'begin', MIN, 'begin on a created token');
  assert.match(created.params.value.message, /queued \(position 1\)|starting/);
  await d.conn.sendNotification('window/workDoneProgress/cancel', { token: created.params.token });
  const [a, b] = await Promise.all([ended(res.jobs[0]!.jobId), ended(res.jobs[1]!.jobId)]);
  assert.equal(a.state, 'done', a.error);
  assert.equal(a.run?.category, 'bottle');
  assert.equal(b.state, 'cancelled');
  assert.equal(b.run?.state, 'cancelled');
  assert.equal(d.progress('multi-tok')[0]?.title, 'U-Flow bottle');
});

test('$/cancelRequest removes waiting predictions; 50 predictions leave the tensor count where it was', { timeout: 10 * MIN }, async () => {
  const img = join(carpet, 'test', 'spot', '001.png');
  await d.conn.sendRequest('uflow/predict', { runId: firstRun.runId, imagePath: img }); // model cached
  const before = ((await d.conn.sendRequest('uflow/status')) as StatusResult).memory.tensors;

  // 12 in flight, the last 6 cancelled at once: they are still waiting in the predict lane.
  const sources = Array.from({ length: 12 }, () => new CancellationTokenSource());
  const calls = sources.map((s) => d.conn.sendRequest('uflow/predict', { runId: firstRun.runId, imagePath: img }, s.token));
  for (const s of sources.slice(6)) s.cancel();
  const settled = await Promise.allSettled(calls);
  const cancelled = settled.filter((r) => r.status === 'rejected' && (r.reason as { code: number }).code === ErrorCodes.Cancelled).length;
  const ok = settled.filter((r) => r.status === 'fulfilled').length;
  assert.equal(ok + cancelled, 12, JSON.stringify(settled.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason?.message)));
  assert.ok(cancelled >= 1 && ok >= 6, `ok ${ok}, cancelled ${cancelled}`);

  for (let i = 0; i < 50; i++) {
    const r = (await d.conn.sendRequest('uflow/predict', { runId: firstRun.runId, imagePath: img, includeRaw: i % 2 === 0 })) as Prediction;
    assert.equal(r.runId, firstRun.runId);
  }
  const afterStatus = (await d.conn.sendRequest('uflow/status')) as StatusResult;
  assert.equal(afterStatus.memory.tensors, before, 'tf.memory().numTensors back to its value after 50 predictions');
  assert.deepEqual(afterStatus.jobs.filter((j) => j.state === 'running' || j.state === 'queued'), []);
});

test('an evaluation waiting behind another is cancelled by $/cancelRequest', { timeout: 10 * MIN }, async () => {
  const first = d.conn.sendRequest('uflow/evaluate', { runId: firstRun.runId, highPrecision: true });
  const src = new CancellationTokenSource();
  const second = d.conn.sendRequest('uflow/evaluate', { runId: firstRun.runId, highPrecision: true, datasetPath: carpet }, src.token);
  src.cancel();
  await rejectsWith(second, ErrorCodes.Cancelled, /uflow\/evaluate: cancelled/);
  const ev = (await first) as EvaluateResult;
  assert.equal(ev.highPrecision, true);
});

test('$/cancelRequest stops a running evaluation at its next image', { timeout: 10 * MIN }, async () => {
  const many = await writeTinyCategory(join(ws, 'data-many'), 'carpet', { size: 32, trainGood: 1, testGood: 4, defects: 16, seed: 5 });
  const src = new CancellationTokenSource();
  const call = d.conn.sendRequest('uflow/evaluate', { runId: firstRun.runId, datasetPath: many, workDoneToken: 'ev-tok' }, src.token);
  await d.inbox.wait('$/progress', (p: { token: string; value: { kind: string; percentage?: number } }) => p.token === 'ev-tok' && p.value.kind === 'report' && (p.value.percentage ?? 0) > 0, 5 * MIN, 'the evaluation to be under way');
  src.cancel();
  await rejectsWith(call, ErrorCodes.Cancelled, /uflow\/evaluate: cancelled/);
  const prog = d.progress('ev-tok');
  assert.equal(prog.at(-1)?.kind, 'end');
  assert.equal(prog.at(-1)?.message, 'cancelled');
  assert.ok((prog.filter((v) => v.kind === 'report').at(-1)?.percentage ?? 100) < 100, 'stopped before the last image');
  const st = (await d.conn.sendRequest('uflow/status')) as StatusResult;
  const job = st.jobs.filter((j) => j.kind === 'evaluate').at(-1);
  assert.equal(job?.state, 'cancelled');
});

test('the predict model cache is an LRU: --predict-cache 1 evicts and disposes the older model', { timeout: 10 * MIN }, async () => {
  const runs = ((await d.conn.sendRequest('uflow/runs', { workspace: ws })) as RunInfo[]).filter((r) => r.epochsDone > 0 && r.runId !== firstRun.runId);
  assert.ok(runs.length >= 1);
  const other = runs[0]!.runId;
  // On tfjs, whose models are tensors this daemon counts (an onnxruntime session holds none).
  const e = await startDaemon({ workspaceFolders: [ws], args: ['--predict-cache', '1'], env: { UFLOW_INFERENCE_ENGINE: 'tfjs' } });
  try {
    const img = join(carpet, 'test', 'good', '000.png');
    const tensors = async () => ((await e.conn.sendRequest('uflow/status')) as StatusResult);
    const t0 = (await tensors()).memory.tensors;
    await e.conn.sendRequest('uflow/predict', { runId: firstRun.runId, imagePath: img });
    const sa = await tensors();
    assert.deepEqual(sa.predictCache?.runIds, [firstRun.runId]);
    assert.ok((sa.predictCache?.bytes ?? 0) > 0, 'the model size is measured');
    assert.ok(sa.memory.tensors > t0);
    await e.conn.sendRequest('uflow/predict', { runId: other, imagePath: img });
    const sb = await tensors();
    assert.deepEqual(sb.predictCache?.runIds, [other]);
    assert.equal(sb.predictCache?.entries, 1);
    await e.conn.sendRequest('uflow/predict', { runId: firstRun.runId, imagePath: img });
    const sa2 = await tensors();
    assert.deepEqual(sa2.predictCache?.runIds, [firstRun.runId]);
    assert.equal(sa2.memory.tensors, sa.memory.tensors, 'the evicted model was disposed: same tensors as with only the first model loaded');
  } finally {
    await e.close();
  }
});
