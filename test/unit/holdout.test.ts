/**
 * The held-out split of train/good (models/data/holdout.ts) and the calibration's round trip
 * through the run folder (server/calibration.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { holdoutCount, splitByNames, splitHoldout } from '../../models/data/holdout.js';
import { fitAndSave, savedCalibration } from '../../server/calibration.js';
import { mulberry32 } from '../../models/flows/rng.js';
import type { Latent } from '../../models/scores/latent.js';

const items = Array.from({ length: 60 }, (_, i) => ({ path: `/data/cat/train/good/${String(i).padStart(3, '0')}.png` }));

test('held-out size: 10 %, at least 5, at most half, none below 4 images', () => {
  const o = { fraction: 0.1, min: 5 };
  assert.equal(holdoutCount(60, o), 6);
  assert.equal(holdoutCount(762, o), 76);
  assert.equal(holdoutCount(20, o), 5);
  assert.equal(holdoutCount(6, o), 3);
  assert.equal(holdoutCount(3, o), 0);
  assert.equal(holdoutCount(60, { fraction: 0, min: 5 }), 0);
});

test('the split is disjoint from training, covers every image, and is stable under the seed (not the listing order)', () => {
  const a = splitHoldout(items, { fraction: 0.1, min: 5, seed: 0 });
  assert.equal(a.holdout.length, 6);
  assert.equal(a.train.length + a.holdout.length, items.length);
  const train = new Set(a.train.map((i) => i.path));
  for (const h of a.holdout) assert.ok(!train.has(h.path));
  const shuffled = [...items].reverse();
  const b = splitHoldout(shuffled, { fraction: 0.1, min: 5, seed: 0 });
  assert.deepEqual(b.holdout.map((i) => i.path).sort(), a.holdout.map((i) => i.path).sort());
  const c = splitHoldout(items, { fraction: 0.1, min: 5, seed: 1 });
  assert.notDeepEqual(c.holdout.map((i) => i.path), a.holdout.map((i) => i.path));
  const names = a.holdout.map((i) => i.path.split('/').pop()!);
  assert.deepEqual(splitByNames(items, names).holdout, a.holdout);
});

function latents(B: number, seed: number): Latent[][] {
  const rnd = mulberry32(seed);
  return [
    [16, 16, 8],
    [8, 8, 16],
  ].map(([h, w, C]) => {
    const d = new Float32Array(B * h! * w! * C!);
    for (let i = 0; i < d.length; i++) d[i] = (rnd() - 0.5) * 3;
    return [{ data: d, shape: [B, h!, w!, C!] as Latent['shape'] }];
  });
}

test('calibration round-trips through the run folder and goes stale when the checkpoint changes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'uflow-cal-'));
  try {
    const ckpt = join(dir, 'checkpoint.safetensors');
    writeFileSync(ckpt, 'weights v1');
    const entry = fitAndSave(dir, ckpt, ['a.png', 'b.png'], latents(6, 1), 64);
    assert.equal(entry.fit.images, 6);
    assert.equal(entry.holdoutFalseAlarms.folds, 5);
    const back = savedCalibration(dir, ckpt);
    assert.deepEqual(back?.fit, entry.fit);
    const copy = join(dir, 'copy');
    mkdirSync(copy);
    copyFileSync(ckpt, join(copy, 'checkpoint.safetensors'));
    copyFileSync(join(dir, 'calibration.json'), join(copy, 'calibration.json'));
    utimesSync(join(copy, 'checkpoint.safetensors'), new Date(), new Date(Date.now() + 5000));
    assert.deepEqual(savedCalibration(copy, join(copy, 'checkpoint.safetensors'))?.fit, entry.fit, 'a copied run keeps its calibration');
    writeFileSync(ckpt, 'weights v2!');
    assert.equal(savedCalibration(dir, ckpt), undefined, 'a rewritten checkpoint needs a new fit');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
