/**
 * Request checks of the real daemon: missing / wrong-typed parameters answer InvalidParams naming
 * the parameter; paths outside the workspace folders (also through a symlink) are refused.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes } from '../../server/protocol.js';
import { rejectsWith, startDaemon, tempDir, type DaemonProcess } from './harness.js';

let d: DaemonProcess;
let ws: string;
let outside: string;
const cleanups: Array<() => void> = [];

before(async () => {
  const a = tempDir('uflow-ws-');
  const b = tempDir('uflow-outside-');
  cleanups.push(a.cleanup, b.cleanup);
  ws = a.dir;
  outside = b.dir;
  mkdirSync(join(outside, 'data', 'train', 'good'), { recursive: true });
  writeFileSync(join(outside, 'img.png'), 'not really a png');
  mkdirSync(join(ws, 'data'));
  symlinkSync(outside, join(ws, 'link-out'));
  d = await startDaemon({ workspaceFolders: [ws] });
});

after(async () => {
  await d?.close();
  for (const c of cleanups) c();
});

const INVALID = ErrorCodes.InvalidParams;

test('missing or wrong-typed parameters: InvalidParams (-32602) naming the parameter', async () => {
  const c = d.conn;
  assert.equal(INVALID, -32602);
  await rejectsWith(c.sendRequest('uflow/train', {}), INVALID, /^uflow\/train: params\.datasetPath must be an absolute path \(string\)/);
  await rejectsWith(c.sendRequest('uflow/train', { datasetPath: 'data/carpet', model: 'uflow' }), INVALID, /params\.datasetPath must be an absolute path \(string\); got the string "data\/carpet"/);
  await rejectsWith(c.sendRequest('uflow/train', { datasetPath: join(ws, 'data') }), INVALID, /^uflow\/train: params\.model must be one of 'uflow', 'fastflow'; got nothing/);
  await rejectsWith(c.sendRequest('uflow/train', { datasetPath: join(ws, 'data'), model: 'uflow', category: 7 }), INVALID, /params\.category must be a non-empty string/);
  await rejectsWith(c.sendRequest('uflow/train', { datasetPath: join(ws, 'data'), model: 'uflow', config: { trainer: 5 } }), INVALID, /params\.config\.trainer must be an object/);
  await rejectsWith(c.sendRequest('uflow/train', { datasetPath: join(ws, 'data'), model: 'uflow', workDoneToken: { a: 1 } }), INVALID, /params\.workDoneToken must be a string or an integer/);
  await rejectsWith(c.sendRequest('uflow/train', [join(ws, 'data')]), INVALID, /^uflow\/train: params must be an object; got an array/);
  await rejectsWith(c.sendRequest('uflow/evaluate', {}), INVALID, /^uflow\/evaluate: params\.runId must be a non-empty string; got nothing/);
  await rejectsWith(c.sendRequest('uflow/evaluate', { runId: 'r', highPrecision: 'yes' }), INVALID, /params\.highPrecision must be true or false/);
  await rejectsWith(c.sendRequest('uflow/evaluate', { runId: '../../etc' }), INVALID, /params\.runId must be a run id/);
  await rejectsWith(c.sendRequest('uflow/predict', { runId: 'r' }), INVALID, /^uflow\/predict: params\.imagePath must be an absolute path \(string\); got nothing/);
  await rejectsWith(c.sendRequest('uflow/predict', { imagePath: join(ws, 'a.png'), includeRaw: 1 }), INVALID, /params\.includeRaw must be true or false/);
  await rejectsWith(c.sendRequest('uflow/inspectDataset', { path: 5 }), INVALID, /^uflow\/inspectDataset: params\.path must be an absolute path \(string\); got number 5/);
  await rejectsWith(c.sendRequest('uflow/inspectDataset'), INVALID, /^uflow\/inspectDataset: params(\.path)? must be/);
  await rejectsWith(c.sendRequest('uflow/cancel', {}), INVALID, /^uflow\/cancel: params\.jobId must be a non-empty string/);
  await rejectsWith(c.sendRequest('uflow/runs', { workspace: 'rel' }), INVALID, /^uflow\/runs: params\.workspace must be an absolute path/);
  await rejectsWith(c.sendRequest('uflow/downloadModels', { categories: 'carpet' }), INVALID, /params\.categories must be an array of non-empty strings/);
  await rejectsWith(c.sendRequest('uflow/downloadModels', { categories: ['carpet', 'nope'] }), INVALID, /params\.categories must be MVTec categories \(bottle, cable/);
  await rejectsWith(c.sendRequest('uflow/downloadModels', { root: outside }), ErrorCodes.PathOutsideWorkspace, /params\.root/);
});

test('paths outside the workspace folders are refused, symlinks resolved first', async () => {
  const c = d.conn;
  const OUT = ErrorCodes.PathOutsideWorkspace;
  const e1 = await rejectsWith(c.sendRequest('uflow/inspectDataset', { path: join(outside, 'data') }), OUT, /params\.path '.*' is outside the folders this daemon may use/);
  assert.ok(e1.message.includes(ws), 'the message lists the allowed folders');
  assert.match(e1.message, /--allow <dir>/);
  // A link inside the workspace that points outside it.
  await rejectsWith(c.sendRequest('uflow/inspectDataset', { path: join(ws, 'link-out', 'data') }), OUT, /resolves to .*uflow-outside-/);
  await rejectsWith(c.sendRequest('uflow/train', { datasetPath: join(ws, 'link-out', 'data'), model: 'uflow' }), OUT, /^uflow\/train: params\.datasetPath/);
  // `..` that climbs out.
  await rejectsWith(c.sendRequest('uflow/train', { datasetPath: join(ws, '..', 'x', 'data'), model: 'fastflow' }), OUT, /outside/);
  await rejectsWith(c.sendRequest('uflow/predict', { imagePath: join(outside, 'img.png') }), OUT, /^uflow\/predict: params\.imagePath/);
  await rejectsWith(c.sendRequest('uflow/evaluate', { runId: 'x', datasetPath: '/etc' }), OUT, /params\.datasetPath '\/etc'/);
  await rejectsWith(c.sendRequest('uflow/runs', { workspace: outside }), OUT, /params\.workspace/);
  await rejectsWith(c.sendRequest('uflow/train', { datasetPath: join(ws, 'data'), model: 'uflow', workspace: outside }), OUT, /params\.workspace/);
});

test('unknown run, unknown job, unknown method', async () => {
  const c = d.conn;
  await rejectsWith(c.sendRequest('uflow/evaluate', { runId: 'carpet-uflow-20240101-000000-abcd' }), ErrorCodes.NotFound, /no run 'carpet-uflow-20240101-000000-abcd' in .*\.uflow\/runs/);
  await rejectsWith(c.sendRequest('uflow/cancel', { jobId: 'train-99' }), ErrorCodes.NotFound, /no queued or running job 'train-99'/);
  await rejectsWith(c.sendRequest('uflow/predict', { imagePath: join(ws, 'missing.png') }), ErrorCodes.NotFound, /does not exist/);
  await rejectsWith(c.sendRequest('uflow/frobnicate', {}), -32601, /frobnicate/);
  assert.deepEqual(await c.sendRequest('uflow/runs', {}), []);
});
