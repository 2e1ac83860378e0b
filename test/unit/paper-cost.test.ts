// `uflow doctor`'s verdict on the paper's configuration: the bench's per-image figures scaled by the
// speed probe, features once per image plus 200 epochs of training steps, against free memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { estimatePaperCost, probeGflops, type PaperCostFigures } from '../../server/paper-cost.js';
import { initEngine } from '../../models/engine.js';

const figures: PaperCostFigures = { measured: 'test', backend: 'wasm', featuresSecPerImage: 90, trainSecPerImage: 6, evalSecPerImage: 95, peakRssGiB: 4.5, probeGflops: 20 };
const GiB = 2 ** 30;

test('minutes per 200-image category: features once + 200 epochs of steps, scaled by the probe', () => {
  const same = estimatePaperCost(20, 16 * GiB, figures);
  assert.equal(same.featuresMinutes, (200 * 90) / 60);
  assert.equal(same.trainMinutes, (200 * 200 * 6) / 60);
  assert.equal(same.minutes, 300 + 4000);
  assert.equal(same.verdict, 'slow');
  assert.match(same.text, /^MS-CaiT 448 \(paper\): about 72 h per 200-image category here \(features 5\.0 h, 200 epochs 67 h; .*needs 4\.5 GiB: slow — it fits in memory \(16\.0 GiB free\)/);
  // A machine 100× faster (a GPU) trains it in 43 min: yes.
  const fast = estimatePaperCost(2000, 16 * GiB, figures);
  assert.ok(Math.abs(fast.minutes - 43) < 0.01, String(fast.minutes));
  assert.equal(fast.verdict, 'yes');
  assert.match(fast.text, /about 43 min per 200-image category .*: yes — 16\.0 GiB free/);
  // Not enough free memory: no, whatever the speed.
  const small = estimatePaperCost(2000, 3 * GiB, figures);
  assert.equal(small.verdict, 'no');
  assert.match(small.text, /needs 4\.5 GiB: no — not enough free memory \(3\.0 GiB free\)/);
});

test('the probe measures a positive speed on the engine', async () => {
  await initEngine({ backend: 'wasm' });
  const g = await probeGflops(1);
  assert.ok(g > 0.1 && g < 1e5, String(g));
});
