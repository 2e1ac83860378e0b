/**
 * `uflow train-all` in one process (no queue): every category of a root trained and evaluated,
 * one summary table with the mean, summary.json and report.html; and the queue commands' input
 * errors (a wrong URL, a Redis that is not there), which need no Redis.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateDemoDataset } from '../../models/data/demo-dataset.js';
import { cli, tempDir } from './cli-helpers.js';

const tmp = tempDir('uflow-cli-train-all-');
after(() => tmp.cleanup());
const data = join(tmp.dir, 'data');
for (const [i, c] of ['alpha', 'beta'].entries()) generateDemoDataset(data, { category: c, size: 64, seed: 5 + i, counts: { train: 8, testGood: 3, defects: { hole: 1, scratch: 1, stain: 1 } } });
const flags = ['--backbone', 'builtin:filters', '--input-size', '32', '--epochs', '2', '--batch', '4', '--validate-every', '0'];

test('train-all trains and evaluates every category here and writes one table with the mean', async () => {
  const td = join(tmp.dir, 'td');
  const r = await cli(['train-all', '-data', data, '-train_dir', td, ...flags]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const rows = r.stdout.split('\n').filter((l) => /^\| (alpha|beta) \|/.test(l));
  assert.equal(rows.length, 2, r.stdout);
  const pixel = rows.map((l) => Number(l.split('|')[3]));
  for (const p of pixel) assert.ok(p > 0 && p <= 1, String(p));
  const mean = /^\| \*\*mean\*\* \(2 of 2\) \| [\d.]+ \| ([\d.]+) \|/m.exec(r.stdout);
  assert.ok(mean, r.stdout);
  assert.ok(Math.abs(Number(mean![1]) - (pixel[0]! + pixel[1]!) / 2) < 1e-4);
  const dir = /summary: (\S+)\/summary\.md/.exec(r.stdout)![1]!;
  const s = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
  assert.deepEqual(s.rows.map((x: { category: string; state: string }) => [x.category, x.state]), [['alpha', 'done'], ['beta', 'done']]);
  assert.ok(existsSync(join(dir, 'report.html')));
  assert.match(readFileSync(join(dir, 'report.html'), 'utf8'), /alpha[\s\S]*beta/);
});

test('train-all on a single category folder, and queue URLs that cannot work, are one clear sentence', async () => {
  const one = await cli(['train-all', '-data', join(data, 'alpha'), '-train_dir', join(tmp.dir, 'td2'), ...flags]);
  assert.equal(one.code, 1);
  assert.match(one.stderr, /is not a folder of categories \(MVTec layout: <root>\/<category>\/train\/good\): train-all needs the root; for one category use uflow train/);
  const scheme = await cli(['worker', '--queue', 'http://localhost:6379']);
  assert.equal(scheme.code, 2);
  assert.match(scheme.stderr, /the scheme must be redis:\/\/ or rediss:\/\/ \(TLS\), not http:\/\//);
  const down = await cli(['jobs', '--queue', 'redis://127.0.0.1:1']);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /cannot reach Redis at redis:\/\/127\.0\.0\.1:1 \(.*ECONNREFUSED.*\): start it \(redis-server --port 1 --appendonly yes\) or correct --queue/);
  const noQueue = await cli(['jobs'], { cwd: tmp.dir });
  assert.equal(noQueue.code, 2);
  assert.match(noQueue.stderr, /name the queue: --queue redis:\/\/host:6379 \(or set UFLOW_QUEUE\)/);
  for (const r of [one, scheme, down, noQueue]) assert.doesNotMatch(r.stderr, /internal error|at .*\.js:\d+/);
});
