/**
 * `uflow/export` through the real daemon, on a tiny run trained by the CLI (builtin:filters at
 * 32 px, one epoch): the default file (<run>/model.onnx) and a named one, each with the byte size
 * the daemon answered and the run's metadata; an output outside the client's folders refused with
 * nothing written; an unknown run; a backbone the exporter does not support refused with
 * exportRefusal's sentence before a job is queued.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, type ExportResult } from '../../server/protocol.js';
import { cli } from '../cli/cli-helpers.js';
import { writeTinyCategory } from './fixtures.js';
import { rejectsWith, startDaemon, tempDir, type DaemonProcess } from './harness.js';

let ws: string;
let outside: string;
let runId: string;
let d: DaemonProcess;
const cleanups: Array<() => void> = [];

before(async () => {
  for (const name of ['ws', 'outside']) {
    const t = tempDir(`uflow-export-${name}-`);
    cleanups.push(t.cleanup);
    if (name === 'ws') ws = t.dir;
    else outside = t.dir;
  }
  const cat = await writeTinyCategory(join(ws, 'data'), 'grid', { size: 32, trainGood: 4, testGood: 1, defects: 1 });
  const r = await cli(['train', '-data', cat, '-train_dir', join(ws, '.uflow'), '--backbone', 'builtin:filters', '--input-size', '32', '--epochs', '1', '--batch', '2', '--validate-every', '0']);
  assert.equal(r.code, 0, r.stderr);
  runId = /run (\S+) finished/.exec(r.stdout)![1]!;
  d = await startDaemon({ workspaceFolders: [ws] });
});

after(async () => {
  await d?.close();
  for (const c of cleanups) c();
});

test('uflow/export: the default file is <run>/model.onnx, of the size answered, with the run metadata', async () => {
  const res = (await d.conn.sendRequest('uflow/export', { runId })) as ExportResult;
  const file = join(ws, '.uflow', 'runs', runId, 'model.onnx');
  assert.equal(res.runId, runId);
  assert.equal(res.path, file);
  assert.ok(existsSync(file));
  assert.equal(statSync(file).size, res.bytes);
  assert.ok(res.bytes > 1000, `${res.bytes} bytes`);
  assert.equal(res.metadata.run_id, runId);
  assert.equal(res.metadata.format, 'uflow-onnx/1');
  assert.equal(res.metadata.backbone, 'builtin:filters');
  assert.ok(res.inputs.length === 1 && res.outputs.some((o) => o.name === 'anomaly_map'));
  assert.ok(res.nodes > 0 && res.parameters > 0);
});

test('uflow/export: params.out names the file (inside the workspace)', async () => {
  const file = join(ws, 'exports', 'grid.onnx');
  const res = (await d.conn.sendRequest('uflow/export', { runId, out: file })) as ExportResult;
  assert.equal(res.path, file);
  assert.equal(readFileSync(file).length, res.bytes);
});

test('uflow/export: an output outside the client folders is refused and nothing is written', async () => {
  const file = join(outside, 'model.onnx');
  await rejectsWith(d.conn.sendRequest('uflow/export', { runId, out: file }), ErrorCodes.PathOutsideWorkspace, /params\.out .* is outside the folders/);
  await rejectsWith(d.conn.sendRequest('uflow/export', { runId, out: `${ws}/../${outside.split('/').pop()}/x.onnx` }), ErrorCodes.PathOutsideWorkspace, /params\.out/);
  assert.equal(existsSync(file), false);
  await rejectsWith(d.conn.sendRequest('uflow/export', { runId, out: 'relative.onnx' }), ErrorCodes.InvalidParams, /params\.out must be an absolute path/);
});

test('uflow/export: an unknown run is NotFound; an unsupported backbone is refused with one sentence', async () => {
  await rejectsWith(d.conn.sendRequest('uflow/export', { runId: 'grid-uflow-20200101-000000-abcd' }), ErrorCodes.NotFound, /no run 'grid-uflow-20200101-000000-abcd'/);
  const id = `${runId}-vgg`;
  const dst = join(ws, '.uflow', 'runs', id);
  cpSync(join(ws, '.uflow', 'runs', runId), dst, { recursive: true });
  const run = JSON.parse(readFileSync(join(dst, 'run.json'), 'utf8'));
  run.runId = id;
  run.config.model.backbone = 'vgg16';
  writeFileSync(join(dst, 'run.json'), JSON.stringify(run, null, 2));
  const err = await rejectsWith(
    d.conn.sendRequest('uflow/export', { runId: id, out: join(ws, 'vgg.onnx') }),
    ErrorCodes.NotAvailable,
    /^uflow\/export: ONNX export does not support the backbone 'vgg16' yet \(supported: .*\)\.$/,
  );
  assert.ok(err.message);
  assert.equal(existsSync(join(ws, 'vgg.onnx')), false);
});
