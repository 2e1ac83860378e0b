/**
 * `backbone: auto` through the daemon offline (empty model cache, HF_ENDPOINT on a closed port):
 * uflow/status says what auto would choose and why; a uflow/train with no backbone trains on the
 * bundled mobilenet_v2 (at the config's input size, which auto keeps), its training updates carry
 * the backbone line and the notice, the log says it, and the run records the choice.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { JobEnded, LogParams, StatusResult, TrainResult, TrainingUpdate } from '../../server/protocol.js';
import { writeTinyCategory } from './fixtures.js';
import { startDaemon, tempDir, type DaemonProcess } from './harness.js';
import { closedPort } from '../helpers/net.js';

const MIN = 60_000;
let d: DaemonProcess;
let ws: string;
const t = tempDir('uflow-auto-');


before(async () => {
  ws = t.dir;
  const env = { UFLOW_CACHE_DIR: join(ws, 'cache'), HF_ENDPOINT: `http://127.0.0.1:${await closedPort()}`, UFLOW_TRAIN_WORKERS: '1' };
  d = await startDaemon({ workspaceFolders: [ws], env });
});

after(async () => {
  if (d) await d.close();
  t.cleanup();
});

test('status and a default training offline: the bundled mobilenet_v2, said in updates, log and run', { timeout: 5 * MIN }, async () => {
  const status = (await d.conn.sendRequest('uflow/status')) as StatusResult;
  assert.equal(status.autoBackbone?.backbone, 'mobilenet_v2', JSON.stringify(status.autoBackbone));
  assert.equal(status.autoBackbone?.inputSize, 256);
  assert.match(status.autoBackbone?.reason ?? '', /^engine wasm \(CPU\): the bundled ImageNet MobileNetV2-0\.35 at 256, which trains a 200-image category in about 25 min on 2 cores/);
  assert.match(status.autoBackbone?.notice ?? '', /uflow download-backbone resnet18/);

  const carpet = await writeTinyCategory(join(ws, 'data'), 'carpet', { size: 64, trainGood: 6, testGood: 1, defects: 1, seed: 4 });
  const config = { model: { input_size: 64, flow_steps: 1 }, trainer: { epochs: 1, batch_train: 2, validate_every: 0, patience: 0 } };
  const res = (await d.conn.sendRequest('uflow/train', { datasetPath: carpet, model: 'uflow', config })) as TrainResult;
  const job = res.jobs[0]!;
  const end = (await d.inbox.wait('uflow/jobEnded', (p: JobEnded) => p.jobId === job.jobId, 4 * MIN, 'the training to end')).params as JobEnded;
  assert.equal(end.state, 'done', end.error);
  const run = end.run!;
  assert.deepEqual([run.config.model.backbone, run.config.model.input_size], ['mobilenet_v2', 64]);
  assert.equal(run.autoBackbone?.inputSizeSet, true);
  assert.equal(run.autoBackbone?.chosen?.backbone, 'mobilenet_v2');
  assert.match(run.autoBackbone?.chosen?.reason ?? '', /input_size 64 from the config/);

  const ups = d.inbox.all('uflow/trainingUpdate', (u: TrainingUpdate) => u.jobId === job.jobId).map((n) => n.params as TrainingUpdate);
  assert.ok(ups.length > 0);
  for (const u of ups) {
    assert.match(u.backbone ?? '', /^mobilenet_v2 at 64 \(backbone auto: engine wasm \(CPU\): /);
    assert.equal(u.notice, run.autoBackbone?.chosen?.notice);
  }
  const logs = d.inbox.all('uflow/log', (l: LogParams) => /backbone auto → mobilenet_v2 at 64/.test(l.message) || /^notice: training on the bundled MobileNetV2/.test(l.message));
  assert.equal(logs.length, 2, 'the choice and the notice are logged once each');
});
