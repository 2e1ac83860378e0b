/**
 * The dataset report (models/data/dataset-report.ts), the JSON-RPC message check
 * (server/rpc-guard.ts) and the file-system sentences (models/io/fs-errors.ts) as units; the fault
 * catalogue (test/faults) drives them end to end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { encodePng } from '../../models/data/render.js';
import { buildDatasetReport, minImageSide } from '../../models/data/dataset-report.js';
import { listSplit } from '../../models/data/dataset.js';
import { fsErrorSentence, isErrnoError } from '../../models/io/fs-errors.js';
import { invalidReason } from '../../server/rpc-guard.js';
import { formatDatasetReport } from '../../server/dataset-report.js';

const base = mkdtempSync(join(tmpdir(), 'uflow-report-'));
process.on('exit', () => rmSync(base, { recursive: true, force: true }));
let n = 0;

function png(path: string, w = 16, h = 16, value = 120, channels: 1 | 3 = 3): void {
  mkdirSync(dirname(path), { recursive: true });
  const px = new Uint8Array(w * h * channels);
  for (let i = 0; i < px.length; i++) px[i] = (value + i * 7) & 0xff;
  writeFileSync(path, encodePng(px, w, h, channels));
}
function mask(path: string, w: number, h: number, f: (i: number) => number): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, encodePng(Uint8Array.from({ length: w * h }, (_, i) => f(i)), w, h, 1));
}
function category(): string {
  const c = join(base, `c${n++}`, 'cat');
  for (let i = 0; i < 3; i++) png(join(c, 'train', 'good', `00${i}.png`), 16, 16, 10 + i);
  png(join(c, 'test', 'good', '000.png'), 16, 16, 50);
  for (let i = 0; i < 2; i++) {
    png(join(c, 'test', 'hole', `00${i}.png`), 16, 16, 90 + i);
    mask(join(c, 'ground_truth', 'hole', `00${i}_mask.png`), 16, 16, (k) => (k % 16 < 4 ? 255 : 0));
  }
  return c;
}

test('a clean category: every image used, in listSplit order, no issue', async () => {
  const c = category();
  const r = await buildDatasetReport(c, { purpose: 'evaluate', inputSize: 32, train: true });
  assert.deepEqual(r.report.issues, []);
  assert.equal(r.report.refused, false);
  assert.deepEqual(r.train, listSplit(c, 'train'));
  assert.deepEqual(r.test, listSplit(c, 'test'));
  assert.deepEqual(r.report.used, { train: { good: 3 }, test: { good: 1, hole: 2 } });
  assert.equal(r.report.masks.checked, 2);
});

test('skips are warnings and leave the image out; corrupt images refuse', async () => {
  const c = category();
  const g = join(c, 'train', 'good');
  writeFileSync(join(g, 'notes.md'), 'x');
  symlinkSync('loop.png', join(g, 'loop.png'));
  copyFileSync(join(g, '000.png'), join(g, '009.png'));
  png(join(g, 'tiny.png'), 2, 2);
  const r = await buildDatasetReport(c, { purpose: 'train', inputSize: 32 });
  assert.deepEqual(r.report.skipped, { 'not-image': 1, 'symlink-loop': 1, duplicate: 1, 'too-small': 1 });
  assert.equal(r.train.length, 3);
  assert.equal(r.report.refused, false);
  writeFileSync(join(g, 'bad.png'), 'not a png');
  const r2 = await buildDatasetReport(c, { purpose: 'train', inputSize: 32 });
  assert.equal(r2.report.refused, true);
  assert.deepEqual(r2.report.issues.filter((i) => i.action === 'refuse').map((i) => i.path), [join(g, 'bad.png')]);
});

test('mask problems: refuse in evaluate, excluded with allowMaskProblems, left out of validation in train', async () => {
  const c = category();
  rmSync(join(c, 'ground_truth', 'hole', '000_mask.png'));
  mask(join(c, 'ground_truth', 'hole', '001_mask.png'), 8, 8, () => 255);
  const ev = await buildDatasetReport(c, { purpose: 'evaluate', inputSize: 32 });
  assert.equal(ev.report.refused, true);
  assert.deepEqual(ev.report.issues.map((i) => [i.kind, i.action]), [['mask-missing', 'refuse'], ['mask-size', 'refuse']]);
  const allowed = await buildDatasetReport(c, { purpose: 'evaluate', inputSize: 32, allowMaskProblems: true });
  assert.equal(allowed.report.refused, false);
  assert.deepEqual(allowed.test.map((t) => t.defect), ['good']);
  assert.deepEqual(allowed.report.issues.map((i) => i.effect), ['excluded', 'excluded']);
  const tr = await buildDatasetReport(c, { purpose: 'train', inputSize: 32, test: true });
  assert.equal(tr.report.refused, false);
  assert.equal(tr.test.length, 1);
});

test('masks that are not binary, empty, or given for a good image are warned about and used', async () => {
  const c = category();
  mask(join(c, 'ground_truth', 'hole', '000_mask.png'), 16, 16, (k) => (k % 16 < 4 ? 255 : 1 + (k % 40)));
  mask(join(c, 'ground_truth', 'hole', '001_mask.png'), 16, 16, () => 0);
  mask(join(c, 'ground_truth', 'good', '000_mask.png'), 16, 16, () => 255);
  const r = await buildDatasetReport(c, { purpose: 'evaluate', inputSize: 32 });
  assert.deepEqual(r.report.issues.map((i) => i.kind).sort(), ['mask-empty', 'mask-for-good', 'mask-not-binary']);
  assert.ok(r.report.issues.every((i) => i.action === 'warn'));
  assert.equal(r.test.length, 3);
});

test('minImageSide: at least 4 px, an eighth of the input size', () => {
  assert.deepEqual([32, 64, 256, 448].map(minImageSide), [4, 8, 32, 56]);
});

test('invalidReason follows JSON-RPC 2.0', () => {
  const ok = [
    { jsonrpc: '2.0', id: 1, method: 'm' },
    { jsonrpc: '2.0', id: 'x', method: 'm', params: [] },
    { jsonrpc: '2.0', method: 'n', params: {} },
    { jsonrpc: '2.0', id: null, error: { code: 1, message: 'e' } },
    { jsonrpc: '2.0', id: 3, result: null },
  ];
  for (const m of ok) assert.equal(invalidReason(m), undefined, JSON.stringify(m));
  const bad = [[], [{}], null, 5, 'x', {}, { jsonrpc: '2.0' }, { jsonrpc: '1.0', id: 1, method: 'm' }, { jsonrpc: '2.0', id: {}, method: 'm' }, { jsonrpc: '2.0', id: 1, method: '' }, { jsonrpc: '2.0', method: 'm', params: 1 }, { jsonrpc: '2.0', method: 'm', params: null }, { jsonrpc: '2.0', id: 1, result: 1, error: { code: 1, message: '' } }, { jsonrpc: '2.0', id: 1, error: 'x' }];
  for (const m of bad) assert.equal(typeof invalidReason(m), 'string', JSON.stringify(m));
});

test('file-system errors become sentences with the path and a fix', () => {
  const mk = (code: string, syscall: string, path?: string) => Object.assign(new Error(`${code}: raw`), { code, syscall, path });
  assert.match(fsErrorSentence(mk('EACCES', 'open', '/x/y')), /^\/x\/y: permission denied: make it readable/);
  assert.match(fsErrorSentence(mk('EACCES', 'mkdir', '/x/y')), /make it writable/);
  assert.match(fsErrorSentence(mk('ENOENT', 'open', '/a')), /^\/a: no such file or folder/);
  assert.match(fsErrorSentence(mk('ENOTDIR', 'mkdir', '/f/runs')), /a part of this path is a file, not a folder/);
  assert.match(fsErrorSentence(mk('ENOSPC', 'write'), '/t/ck.safetensors'), /^\/t\/ck\.safetensors: no space left on the device \(disk full\)/);
  assert.equal(isErrnoError(mk('ENOSPC', 'write')), true);
  assert.equal(isErrnoError(new Error('plain')), false);
});

test('the text lists at most 5 warnings of a kind and counts the rest; errors are all listed', async () => {
  const c = category();
  for (let i = 0; i < 8; i++) {
    png(join(c, 'test', 'scratch', `00${i}.png`), 16, 16, 30 + i);
    mask(join(c, 'ground_truth', 'scratch', `00${i}_mask.png`), 16, 16, (k) => (k % 16 < 4 ? 255 : 1 + (k % 40)));
  }
  for (let i = 0; i < 7; i++) writeFileSync(join(c, 'train', 'good', `notes${i}.txt`), 'x');
  const r = await buildDatasetReport(c, { purpose: 'evaluate', inputSize: 32, train: true, test: true });
  const text = formatDatasetReport(r.report);
  const warnLines = text.split('\n').filter((l) => l.startsWith('  warning:'));
  assert.equal(warnLines.filter((l) => l.includes('mask is not binary')).length, 5);
  assert.equal(warnLines.filter((l) => l.includes('not an image')).length, 5);
  assert.match(text, /… and 3 more warnings of this kind \(mask not binary\): all are in the run's dataset-report\.evaluate\.json/);
  assert.match(text, /… and 2 more warnings of this kind \(not an image\)/);
  assert.equal(r.report.issues.filter((i) => i.kind === 'mask-not-binary').length, 8, 'the report itself keeps every issue');
  // an error (a corrupt image) is never folded away
  writeFileSync(join(c, 'test', 'scratch', '009.png'), 'not a png at all');
  const r2 = await buildDatasetReport(c, { purpose: 'evaluate', inputSize: 32, train: true, test: true });
  const errs = r2.report.issues.filter((i) => i.action === 'refuse');
  assert.ok(errs.length >= 1);
  for (const e of errs) assert.ok(formatDatasetReport(r2.report).includes(`error: ${e.message}`));
});
