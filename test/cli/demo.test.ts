/** `uflow demo`: generates the dataset, trains with the built-in backbone, evaluates, writes report.html. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir } from './cli-helpers.js';

const tmp = tempDir('uflow-cli-demo-');
after(() => tmp.cleanup());

test('demo trains, evaluates and writes a self-contained report', async () => {
  const dir = join(tmp.dir, 'demo');
  const r = await cli(['demo', '--dir', dir, '--epochs', '3']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /demo_tile \(all\)\s+\d\.\d{4}\s+\d\.\d{4}/);
  assert.match(r.stdout, /report: .*report\.html/);
  assert.ok(existsSync(join(dir, 'data', 'demo_tile', 'train', 'good')));
  const html = readFileSync(join(dir, 'report.html'), 'utf8');
  assert.match(html, /<table>/);
  assert.ok((html.match(/data:image\/png;base64,/g) ?? []).length >= 26 * 3, 'maps inlined');
  const m = /demo_tile \(all\)\s+(\d\.\d{4})\s+(\d\.\d{4})/.exec(r.stdout)!;
  assert.ok(Number(m[1]) >= 0.95 && Number(m[2]) >= 0.95, `image ${m[1]}, pixel ${m[2]} AUROC after 3 epochs`);
});
