/**
 * `backbone: auto` through the built CLI on a fresh machine offline: a train with the default
 * configuration (no backbone, no input size), an empty model cache and HF_ENDPOINT on a closed
 * local port trains on the bundled mobilenet_v2 at 256 (from dist/backbones, as a fresh install
 * has it), prints what auto chose and the one-line notice, and records both in the run.
 * `uflow doctor` says the same before any training.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, repoRoot, tempDir } from './cli-helpers.js';
import { generateDemoDataset } from '../../models/data/demo-dataset.js';
import { closedPort } from '../helpers/net.js';

const tmp = tempDir('uflow-cli-auto-');
after(() => tmp.cleanup());


test('offline with an empty cache: default config trains on the bundled mobilenet_v2 and says why, and what is stronger', { timeout: 300_000 }, async () => {
  for (const f of ['model.json', 'weights.bin', 'LICENSE', 'NOTICE']) assert.ok(existsSync(join(repoRoot, 'dist', 'backbones', 'mobilenet_v2_035_imagenet', f)), `dist/backbones/mobilenet_v2_035_imagenet/${f}`);
  const data = join(tmp.dir, 'data');
  generateDemoDataset(data, { counts: { train: 8, testGood: 2, defects: { hole: 2, scratch: 0, stain: 0 } }, size: 96, seed: 5 });
  const cache = join(tmp.dir, 'cache');
  const env = { UFLOW_CACHE_DIR: cache, HF_ENDPOINT: `http://127.0.0.1:${await closedPort()}`, UFLOW_TRAIN_WORKERS: '1' };

  const doc = await cli(['doctor'], { env });
  assert.equal(doc.code, 0, doc.stderr);
  assert.match(doc.stdout + doc.stderr, /backbone auto → mobilenet_v2 at 256: engine wasm \(CPU\): the bundled ImageNet MobileNetV2-0\.35 at 256, which trains a 200-image category in about 25 min on 2 cores/);

  const trainDir = join(tmp.dir, 'td');
  const t0 = Date.now();
  const r = await cli(['train', '-cat', 'demo_tile', '-data', data, '-train_dir', trainDir, '--epochs', '1', '--validate-every', '0'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(Date.now() - t0 < 200_000, 'the offline probe does not hold training up');
  const said = r.stdout + r.stderr;
  assert.match(said, /^backbone auto → mobilenet_v2 at 256: engine wasm \(CPU\): the bundled ImageNet MobileNetV2-0\.35 at 256, which trains a 200-image category in about 25 min on 2 cores \(ResNet-18 at 256: about 4\.5 h; MS-CaiT at 448: about an hour on the features alone\)$/m);
  const notice = said.split('\n').filter((l) => l.startsWith('notice: '));
  assert.equal(notice.length, 1, said);
  assert.match(notice[0]!, /^notice: training on the bundled MobileNetV2, the CPU choice \(about 25 min for a 200-image category on 2 cores\); stronger features: train on a GPU, or set backbone: resnet18 \(about 4\.5 h on 2 cores; `uflow download-backbone resnet18` fetches its weights\)$/);
  assert.match(said, /backbone mobilenet_v2 at 256, wasm on CPU/);
  const m = /run (\S+) finished: 1 epochs/.exec(r.stdout);
  assert.ok(m, r.stdout);
  const dir = join(trainDir, 'runs', m![1]!);
  const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
  assert.equal(run.state, 'finished');
  assert.deepEqual([run.config.model.backbone, run.config.model.input_size], ['mobilenet_v2', 256]);
  assert.equal(run.autoBackbone.inputSizeSet, false);
  assert.deepEqual([run.autoBackbone.chosen.backbone, run.autoBackbone.chosen.inputSize, run.autoBackbone.chosen.backend], ['mobilenet_v2', 256, 'wasm']);
  assert.equal(`notice: ${run.autoBackbone.chosen.notice}`, notice[0]);
  const yaml = readFileSync(join(dir, 'config.yaml'), 'utf8');
  assert.match(yaml, /^# backbone: auto chose mobilenet_v2 at 256 for wasm: /);
  assert.match(yaml, /\n  backbone: mobilenet_v2\n/);
  assert.ok(!existsSync(join(cache, 'hub')), 'nothing was downloaded into the cache');
});
