/**
 * A non-square input size through the whole CLI (issue 12, item 3): train (1 epoch, built-in
 * backbone at 48×64 from `--input-size 48x64`) → evaluate → predict. The run records the size as
 * [h, w], the evaluation keeps the aspect ratio (192×256 maps), the predictions carry the map shape.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, smallDataset, tempDir } from './cli-helpers.js';
import { readSafetensors } from '../../models/io/safetensors.js';

const tmp = tempDir('uflow-cli-shape-');
after(() => tmp.cleanup());

test('train → evaluate → predict at 48×64 (height × width)', async () => {
  const data = join(tmp.dir, 'data');
  const trainDir = join(tmp.dir, 'td');
  smallDataset(data, { train: 6, testGood: 2, defects: { hole: 2 } } as never);
  const flags = ['--backbone', 'builtin:filters', '--input-size', '48x64', '--epochs', '1', '--batch', '4', '--validate-every', '0'];
  const t = await cli(['train', '-cat', 'demo_tile', '-data', data, '-train_dir', trainDir, ...flags]);
  assert.equal(t.code, 0, t.stderr);
  const runId = /run (\S+) finished: 1 epochs?/.exec(t.stdout)?.[1];
  assert.ok(runId, t.stdout);
  assert.match(t.stdout + t.stderr, /backbone builtin:filters at 48×64/);
  const dir = join(trainDir, 'runs', runId!);
  const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
  assert.deepEqual(run.config.model.input_size, [48, 64]);
  const ck = JSON.parse(readSafetensors(join(dir, 'checkpoint.safetensors')).metadata.config!);
  assert.deepEqual(ck.inputSize, [48, 64]);
  assert.deepEqual(ck.levelSizes, [[12, 16], [6, 8], [3, 4]]);

  const e = await cli(['evaluate', '-cat', 'demo_tile', '-train_dir', trainDir, '--json']);
  assert.equal(e.code, 0, e.stderr);
  const ev = JSON.parse(e.stdout);
  assert.deepEqual(ev.targetShape, [192, 256]);
  assert.equal(ev.targetSize, 256);
  assert.ok(ev.overall.pixel_auroc !== null && ev.overall.image_auroc !== null);

  const holes = join(data, 'demo_tile', 'test', 'hole');
  const img = join(holes, readdirSync(holes).sort()[0]!);
  const p = await cli(['predict', '-cat', 'demo_tile', '-train_dir', trainDir, '--image', img, '--json']);
  assert.equal(p.code, 0, p.stderr);
  const pr = JSON.parse(p.stdout);
  assert.equal(pr.images.length, 1);
  assert.ok(Number.isFinite(pr.images[0].score), p.stdout.slice(0, 400));
});

test('--input-size refuses what is not a size, and U-Flow names sizes that work', async () => {
  const bad = await cli(['train', '-cat', 'demo_tile', '-data', tmp.dir, '-train_dir', join(tmp.dir, 'x'), '--backbone', 'builtin:filters', '--input-size', '48by64']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--input-size takes one integer \(square\) or height×width, e.g. 256, 96x128 or 96,128; got '48by64'/);
  const data2 = join(tmp.dir, 'data2');
  smallDataset(data2, { train: 2, testGood: 1, defects: { hole: 1 } } as never);
  const odd = await cli(['train', '-cat', 'demo_tile', '-data', data2, '-train_dir', join(tmp.dir, 'x'), '--backbone', 'builtin:filters', '--input-size', '100,70']);
  assert.notEqual(odd.code, 0);
  assert.match(odd.stderr, /U-Flow cannot use input size 100×70 with backbone builtin:filters: its feature levels are 25×17, 12×8, 6×4; .*Sizes that work near it: /);
});
