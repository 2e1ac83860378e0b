/** Exit codes and messages: --help 0, usage errors 2, bad input 1 with a message naming the file and the fix, never a stack trace. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, smallDataset, tempDir } from './cli-helpers.js';

const tmp = tempDir('uflow-cli-usage-');
after(() => tmp.cleanup());

function noStack(s: string): void {
  assert.doesNotMatch(s, /\n\s+at .+:\d+:\d+\)?\n/, `a stack trace was printed:\n${s}`);
}

test('--help for the program and every command exits 0 and names the original flags', async () => {
  const top = await cli(['--help']);
  assert.equal(top.code, 0);
  for (const c of ['train', 'evaluate', 'predict', 'doctor', 'demo', 'download-models', 'serve']) assert.match(top.stdout, new RegExp(`uflow ${c}`));
  const t = await cli(['train', '--help']);
  assert.equal(t.code, 0);
  for (const f of ['--cat, --category', '--config, --config_path', '--data', '--train_dir, --training_dir', '--resume', '--backend']) assert.ok(t.stdout.includes(f), `${f} in train --help`);
  assert.match(t.stdout, /\.\/\.uflow/);
  const e = await cli(['evaluate', '--help']);
  assert.equal(e.code, 0);
  for (const f of ['--cat, --categories', '--hp, --high-precision', '--run', '--json']) assert.ok(e.stdout.includes(f), `${f} in evaluate --help`);
  const d = await cli(['download-models', '--help']);
  assert.ok(d.stdout.includes('--overwrite, --force-overwrite'));
});

test('usage errors exit 2 with a hint', async () => {
  for (const args of [[], ['bogus'], ['train', '--nope', '1'], ['train', '-model', 'gan'], ['evaluate', '--checkpoint', 'middle'], ['train', '--epochs', 'many'], ['train', '--epochs'], ['evaluate', '-cat'], ['download-models', '-cat', 'foo']]) {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /uflow/);
    noStack(r.stderr);
  }
});

test('the original single-dash flags parse (-cat, -data, -train_dir, -config, -hp)', async () => {
  const r = await cli(['evaluate', '-cat', 'carpet', 'grid', '-hp', '-data', join(tmp.dir, 'none'), '-train_dir', join(tmp.dir, 'td')]);
  // Parsed fine (not 2): fails because there is no run for those categories.
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /no trained run of 'carpet'/);
  noStack(r.stderr);
});

test('bad datasets and configs exit 1 with a message that names the path and the fix', async () => {
  const td = join(tmp.dir, 'td');
  const missing = await cli(['train', '-data', join(tmp.dir, 'nowhere'), '-cat', 'carpet', '-train_dir', td]);
  assert.equal(missing.code, 1, missing.stderr);
  assert.match(missing.stderr, /nowhere: no such folder: check the dataset path/);
  noStack(missing.stderr);

  const empty = join(tmp.dir, 'empty');
  mkdirSync(empty);
  const e = await cli(['train', '-data', empty, '-train_dir', td]);
  assert.equal(e.code, 1, e.stderr);
  assert.match(e.stderr, /empty: no images/);

  const data = join(tmp.dir, 'data');
  smallDataset(data, { train: 4, testGood: 1, defects: { hole: 1, scratch: 1, stain: 1 } });
  const wrongCat = await cli(['train', '-data', data, '-cat', 'carpet', '-train_dir', td]);
  assert.equal(wrongCat.code, 1, wrongCat.stderr);
  assert.match(wrongCat.stderr, /has no category 'carpet'.*categories found: demo_tile/);

  const cfg = join(tmp.dir, 'bad.yaml');
  writeFileSync(cfg, 'model:\n  input_sise: 64\n');
  const c = await cli(['train', '-data', data, '-cat', 'demo_tile', '-config', cfg, '-train_dir', td]);
  assert.equal(c.code, 1, c.stderr);
  assert.ok(c.stderr.includes(cfg), c.stderr);
  assert.match(c.stderr, /input_sise/);
  noStack(c.stderr);

  const notImage = join(data, 'demo_tile', 'train', 'good', 'zz-broken.png');
  writeFileSync(notImage, 'not a png');
  const b = await cli(['train', '-data', data, '-cat', 'demo_tile', '-train_dir', td, '--backbone', 'builtin:filters', '--input-size', '64', '--epochs', '1']);
  assert.equal(b.code, 1, b.stderr);
  assert.ok(b.stderr.includes('zz-broken.png'), b.stderr);
  noStack(b.stderr);

  const noRun = await cli(['evaluate', '--run', 'demo_tile-uflow-20200101-000000-abcd', '-train_dir', td]);
  assert.equal(noRun.code, 1);
  assert.match(noRun.stderr, /no run 'demo_tile-uflow-20200101-000000-abcd'/);
});

test('doctor reports the engine, a self-test, and onnxruntime-node (version and providers, or why it does not load)', async () => {
  const r = await cli(['doctor']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /backend: wasm/);
  assert.match(r.stdout, /self-test: conv2d ok/);
  assert.match(r.stdout, /^onnxruntime-node \d+\.\d+\.\d+ · execution providers in this build: .*\bcpu\b/m);
  assert.match(r.stdout, /^MS-CaiT 448 \(paper\): about \d+(\.\d)? (min|h) per 200-image category here .*needs \d+\.\d GiB: (yes|no|slow) — /m);
  const off = await cli(['doctor'], { env: { UFLOW_ORT_DISABLE: '1' } });
  assert.equal(off.code, 0, off.stderr);
  assert.match(off.stdout, /^onnxruntime-node: not available: onnxruntime-node is disabled \(UFLOW_ORT_DISABLE=1\)/m);
});
