/**
 * The oracle of the threshold report (models/train/threshold-report.ts): the best threshold in
 * hindsight, and whether detecting nothing is what it found, as the evaluate table says it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { thresholdSummary } from '../../models/train/threshold-report.js';
import type { EvalItem } from '../../models/train/evaluate.js';
import { thresholdLines } from '../../server/report.js';
import type { Evaluation } from '../../server/protocol.js';

const S = 16;

/** A −log NFA map: −50 everywhere, `v` on the square [y, y + k) × [x, x + k). */
function map(v: number, y = 4, x = 4, k = 4): Float32Array {
  const m = new Float32Array(S * S).fill(-50);
  for (let i = y; i < y + k; i++) for (let j = x; j < x + k; j++) m[i * S + j] = v;
  return m;
}

function mask(y = 4, x = 4, k = 4): Uint8Array {
  const m = new Uint8Array(S * S);
  for (let i = y; i < y + k; i++) for (let j = x; j < x + k; j++) m[i * S + j] = 1;
  return m;
}

const items: EvalItem[] = [
  { path: 'good/0.png', defect: 'good', label: 0 },
  { path: 'good/1.png', defect: 'good', label: 0 },
  { path: 'scratch/0.png', defect: 'scratch', label: 1 },
  { path: 'scratch/1.png', defect: 'scratch', label: 1 },
];
const empty = new Uint8Array(S * S);

test('a model that separates: the oracle is a threshold between the good maxima and the defects, and detects something', () => {
  // good images peak at 5, defects at 40 exactly on their masks
  const s = thresholdSummary(items, [empty, empty, mask(), mask(8, 8)], [map(5), map(5, 0, 0), map(40), map(40, 8, 8)], S);
  const o = s.miou.oracle!;
  assert.equal(o.detectsNothing, false);
  assert.ok(o.threshold >= 5 && o.threshold < 40, `threshold ${o.threshold}`);
  assert.ok(Math.abs(o.miou - 1) < 1e-6, `mIoU ${o.miou}`);
  assert.equal(s.perDefect.scratch!.oracle.detectsNothing, false);
});

test('a model whose good images score as high as its defects: detecting nothing is best, and the table says so', () => {
  // good images peak at 60 over a large area, defects at 40 on half their masks
  const s = thresholdSummary(items, [empty, empty, mask(), mask(8, 8)], [map(60, 0, 0, 12), map(60, 2, 2, 12), map(40, 4, 4, 2), map(40, 8, 8, 2)], S);
  const o = s.miou.oracle!;
  assert.equal(o.detectsNothing, true);
  assert.ok(Math.abs(o.miou - 0.5) < 1e-6, `mIoU ${o.miou}: the good images' share`);
  const ev = {
    threshold: {
      variant: 'calibrated',
      calibration: { description: 'test' },
      automatic: 0,
      falseAlarms: { testGood: { images: 2, meanRegions: 1, worst: { regions: 1 }, pixelFraction: 0.5 } },
      miou: s.miou,
      perDefect: s.perDefect,
      curve: s.curve,
    },
  } as unknown as Evaluation;
  const text = thresholdLines(ev).join('\n');
  assert.match(text, /oracle \(best threshold, labels used\): 0\.5000 \(detecting nothing is best\)/);
  assert.match(text, /no threshold beats detecting nothing/);
  assert.doesNotMatch(text, /−log NFA > -400/);
});
