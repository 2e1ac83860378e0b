/** `uflow train` prints one estimate line before the first epoch; `--no-estimate` skips it. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { cli, fastFlags, smallDataset, tempDir } from './cli-helpers.js';

const { dir, cleanup } = tempDir('uflow-cli-estimate-');
after(cleanup);
const data = join(dir, 'data');
smallDataset(data, { train: 8, testGood: 2, defects: { hole: 1, scratch: 1, stain: 1 } });

test('uflow train: the estimate line comes before the first epoch, once', async () => {
  const r = await cli(['train', '-cat', 'demo_tile', '-data', data, '-train_dir', join(dir, 'a'), ...fastFlags(2, ['--validate-every', '0'])]);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stderr.split('\n');
  const at = lines.findIndex((l) => l.startsWith('estimate: '));
  assert.ok(at >= 0, `no estimate line in:\n${r.stderr}`);
  assert.match(lines[at]!, /^estimate: about \d+ (s|min): features \d+ (s|min), [\d.]+ s\/epoch × 2 epochs, wasm [12] threads?$/);
  const firstEpoch = lines.findIndex((l) => /epoch 1\/2/.test(l));
  assert.ok(firstEpoch > at, `the estimate (line ${at}) must precede epoch 1 (line ${firstEpoch})`);
  assert.equal(lines.filter((l) => l.startsWith('estimate')).length, 1, 'printed once');
});

test('uflow train --no-estimate (and UFLOW_ESTIMATE=0): no estimate', async () => {
  const r = await cli(['train', '-cat', 'demo_tile', '-data', data, '-train_dir', join(dir, 'b'), '--no-estimate', ...fastFlags(1, ['--validate-every', '0'])]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /^estimate/m);
  const e = await cli(['train', '-cat', 'demo_tile', '-data', data, '-train_dir', join(dir, 'c'), ...fastFlags(1, ['--validate-every', '0'])], { env: { UFLOW_ESTIMATE: '0' } });
  assert.equal(e.code, 0, e.stderr);
  assert.doesNotMatch(e.stderr, /^estimate/m);
});
