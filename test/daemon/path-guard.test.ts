/**
 * The daemon's path guard beyond request parameters (server/path-guard.ts), one case per entry
 * point: a `tfjs:<dir>` backbone inside `uflow/train`'s config, and the paths a run.json names
 * (dataset, backbone folder) when `uflow/train` resumes, `uflow/evaluate` evaluates and
 * `uflow/predict` loads that run. Folders given with --allow and the model cache (UFLOW_CACHE_DIR)
 * pass. Nothing refused may leave a run behind or change the run's files.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes } from '../../server/protocol.js';
import { cli } from '../cli/cli-helpers.js';
import { writeTinyCategory } from './fixtures.js';
import { rejectsWith, startDaemon, tempDir, type DaemonProcess } from './harness.js';

let ws: string;
let allowed: string;
let cache: string;
let outside: string;
let cat: string;
let runId: string;
let d: DaemonProcess;
const cleanups: Array<() => void> = [];

/** A copy of the trained run with run.json edited by `patch`; returns its id. */
function tamperedRun(name: string, patch: (run: Record<string, any>) => void, newest = false): string { // eslint-disable-line @typescript-eslint/no-explicit-any
  // `newest`: an id whose time sorts after every other run (run ids carry their creation time).
  const id = newest ? runId.replace(/-\d{8}-\d{6}-/, '-29991231-235959-') : `${runId}-${name}`;
  const src = join(ws, '.uflow', 'runs', runId);
  const dst = join(ws, '.uflow', 'runs', id);
  cpSync(src, dst, { recursive: true });
  const run = JSON.parse(readFileSync(join(dst, 'run.json'), 'utf8'));
  run.runId = id;
  patch(run);
  writeFileSync(join(dst, 'run.json'), JSON.stringify(run, null, 2));
  return id;
}

const snapshot = (dir: string) => readdirSync(dir, { recursive: true }).map(String).sort().join('\n');

before(async () => {
  for (const name of ['ws', 'allowed', 'cache', 'outside']) {
    const t = tempDir(`uflow-guard-${name}-`);
    cleanups.push(t.cleanup);
    if (name === 'ws') ws = t.dir;
    if (name === 'allowed') allowed = t.dir;
    if (name === 'cache') cache = t.dir;
    if (name === 'outside') outside = t.dir;
  }
  mkdirSync(join(outside, 'model'), { recursive: true });
  writeFileSync(join(outside, 'model', 'model.json'), '{}');
  cat = await writeTinyCategory(join(ws, 'data'), 'grid', { size: 32, trainGood: 4, testGood: 1, defects: 1 });
  const r = await cli(['train', '-data', cat, '-train_dir', join(ws, '.uflow'), '--backbone', 'builtin:filters', '--input-size', '32', '--epochs', '1', '--batch', '2', '--validate-every', '0']);
  assert.equal(r.code, 0, r.stderr);
  runId = /run (\S+) finished/.exec(r.stdout)![1]!;
  d = await startDaemon({ workspaceFolders: [ws], args: ['--allow', allowed], env: { UFLOW_CACHE_DIR: cache } });
});

after(async () => {
  await d?.close();
  for (const c of cleanups) c();
});

const OUT = ErrorCodes.PathOutsideWorkspace;

test('uflow/train: a tfjs: backbone folder in params.config outside the folders is refused, no run is created', async () => {
  const runsBefore = snapshot(join(ws, '.uflow', 'runs'));
  for (const dir of ['/etc', join(outside, 'model'), `${ws}/../${outside.split('/').pop()}/model`]) {
    await rejectsWith(d.conn.sendRequest('uflow/train', { datasetPath: cat, model: 'uflow', config: { model: { backbone: `tfjs:${dir}`, backbone_layers: ['a'], backbone_input_range: [0, 1] } } }), OUT, /params\.config\.model\.backbone/);
  }
  assert.equal(snapshot(join(ws, '.uflow', 'runs')), runsBefore, 'no run folder was created');
});

test('uflow/train: a tfjs: folder in an --allow folder or in the model cache passes the guard (and fails later for its own reason)', async () => {
  for (const root of [allowed, cache]) {
    mkdirSync(join(root, 'model'), { recursive: true });
    writeFileSync(join(root, 'model', 'model.json'), '{}');
    const res = (await d.conn.sendRequest('uflow/train', {
      datasetPath: cat,
      model: 'uflow',
      config: { model: { backbone: `tfjs:${join(root, 'model')}`, backbone_layers: ['a'], backbone_input_range: [0, 1], input_size: 32 }, trainer: { epochs: 1 } },
    })) as { jobs: Array<{ jobId: string }> };
    const end = await d.inbox.wait('uflow/jobEnded', (p) => p.jobId === res.jobs[0]!.jobId, 60_000);
    assert.equal(end.params.state, 'failed');
    assert.match(end.params.error, /model\.json|backbone/);
  }
});

test('uflow/train resumeRunId: a run.json whose datasetPath lies outside is refused before the run is touched', async () => {
  const id = tamperedRun('resume-out', (run) => {
    run.datasetPath = outside;
    run.state = 'interrupted';
    run.config.trainer.epochs = 3;
  });
  const before = readFileSync(join(ws, '.uflow', 'runs', id, 'run.json'), 'utf8');
  await rejectsWith(d.conn.sendRequest('uflow/train', { datasetPath: cat, model: 'uflow', resumeRunId: id }), OUT, /run\.json\) datasetPath/);
  assert.equal(readFileSync(join(ws, '.uflow', 'runs', id, 'run.json'), 'utf8'), before, 'run.json unchanged');
});

test('uflow/evaluate: a run.json whose datasetPath or tfjs: backbone lies outside is refused', async () => {
  const a = tamperedRun('eval-data-out', (run) => (run.datasetPath = outside));
  await rejectsWith(d.conn.sendRequest('uflow/evaluate', { runId: a }), OUT, /run\.json\) datasetPath/);
  assert.equal(existsSync(join(ws, '.uflow', 'runs', a, 'evaluation.json')), false);
  const b = tamperedRun('eval-bb-out', (run) => (run.config.model.backbone = `tfjs:${join(outside, 'model')}`));
  await rejectsWith(d.conn.sendRequest('uflow/evaluate', { runId: b }), OUT, /model\.backbone \(tfjs:\)/);
  // The run's own dataset given explicitly replaces run.json's: the guard checks that one instead.
  const ok = (await d.conn.sendRequest('uflow/evaluate', { runId: a, datasetPath: cat, allowMaskProblems: false })) as { runId: string };
  assert.equal(ok.runId, a);
});

test('uflow/predict: a run whose tfjs: backbone lies outside is refused (named run and newest run)', async () => {
  const img = join(cat, 'test', 'good', '000.png');
  const id = tamperedRun('predict-bb-out', (run) => (run.config.model.backbone = 'tfjs:/etc'), true);
  await rejectsWith(d.conn.sendRequest('uflow/predict', { imagePath: img, runId: id }), OUT, /model\.backbone \(tfjs:\)/);
  // Without runId the newest finished run is chosen: that is the tampered one.
  await rejectsWith(d.conn.sendRequest('uflow/predict', { imagePath: img }), OUT, /model\.backbone \(tfjs:\)/);
  const good = (await d.conn.sendRequest('uflow/predict', { imagePath: img, runId })) as { runId: string };
  assert.equal(good.runId, runId);
});
