/**
 * `uflow/estimate` through the real daemon: the estimate of a tiny category (one line, the
 * figures it is made of), the faster choice under a low limit (fewer epochs, with its smaller
 * estimate), no run created; a dataset outside the client's folders refused.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, type EstimateResult } from '../../server/protocol.js';
import { writeTinyCategory } from './fixtures.js';
import { rejectsWith, startDaemon, tempDir, type DaemonProcess } from './harness.js';

let ws: string;
let cat: string;
let d: DaemonProcess;
const cleanups: Array<() => void> = [];

before(async () => {
  const t = tempDir('uflow-estimate-ws-');
  cleanups.push(t.cleanup);
  ws = t.dir;
  cat = await writeTinyCategory(join(ws, 'data'), 'grid', { size: 32, trainGood: 6, testGood: 1, defects: 1 });
  // A generous budget: the first batch is measured warm and cached, however loaded the machine.
  d = await startDaemon({ workspaceFolders: [ws], env: { UFLOW_ESTIMATE_SECONDS: '30' } });
});

after(async () => {
  await d?.close();
  for (const c of cleanups) c();
});

const config = { model: { backbone: 'builtin:filters', input_size: 32, flow_steps: 2 }, trainer: { epochs: 400, batch_train: 2, validate_every: 0, holdout: 0 } };

test('uflow/estimate: the run’s cost in one line; under a low limit a faster choice with fewer epochs', async () => {
  const e = (await d.conn.sendRequest('uflow/estimate', { datasetPath: cat, model: 'uflow', config })) as EstimateResult;
  assert.match(e.line, /^about \S+ (s|min|h)\b.*: features \d+ s, [\d.]+ s\/epoch × 400 epochs, wasm [12] threads?$/);
  assert.equal(e.epochs, 400);
  assert.equal(e.uncachedImages, 6);
  assert.ok(e.secondsPerEpoch > 0 && e.featureSeconds > 0);
  assert.ok(Math.abs(e.totalSeconds - (e.featureSeconds + 400 * e.secondsPerEpoch)) < 1e-6 * e.totalSeconds);
  assert.equal(e.alternative, undefined, 'no limit, no alternative');
  const { readdirSync } = await import('node:fs');
  assert.ok(!existsSync(join(ws, '.uflow', 'runs')) || readdirSync(join(ws, '.uflow', 'runs')).length === 0, 'no run created');
  // A limit that holds the features and about 100 epochs: fewer epochs, within the limit.
  const limitMinutes = (e.featureSeconds + 100 * e.secondsPerEpoch) / 60;
  const low = (await d.conn.sendRequest('uflow/estimate', { datasetPath: cat, model: 'uflow', config, limitMinutes })) as EstimateResult;
  assert.equal(low.uncachedImages, 6 - 4, 'the first batch of 4 went to the cache');
  const alt = low.alternative;
  assert.ok(alt?.config.trainer?.epochs, `fewer epochs offered: ${JSON.stringify(low)}`);
  assert.ok(alt.config.trainer.epochs! >= 1 && alt.config.trainer.epochs! < 400, alt.label);
  assert.match(alt.label, new RegExp(`^${alt.config.trainer.epochs} epochs instead of 400$`));
  assert.ok(alt.totalSeconds <= limitMinutes * 60 + 1e-9 && alt.totalSeconds < low.totalSeconds);
  const fits = (await d.conn.sendRequest('uflow/estimate', { datasetPath: cat, model: 'uflow', config, limitMinutes: 600 })) as EstimateResult;
  assert.equal(fits.alternative, undefined);
});

test('uflow/estimate: a dataset outside the client’s folders is refused', async () => {
  await rejectsWith(d.conn.sendRequest('uflow/estimate', { datasetPath: '/etc', model: 'uflow' }), ErrorCodes.PathOutsideWorkspace, /params\.datasetPath/);
  await rejectsWith(d.conn.sendRequest('uflow/estimate', { datasetPath: cat, model: 'uflow', limitMinutes: -1 }), ErrorCodes.InvalidParams, /limitMinutes/);
});
