/**
 * The calibrated detection (models/scores/nfa-calibrated.ts) on synthetic latents: an undertrained
 * flow (z ~ N(0, σ²I), σ = 1.3) makes the paper's tree NFA flag nearly every normal image, while
 * the null fitted on held-out normal images keeps the false alarms under one per image; a planted
 * 6×6 anomaly at 3σ is still detected; the fit survives JSON (what calibration.json holds).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitNull, negLogNfaCalibrated, type NullFit } from '../../models/scores/nfa-calibrated.js';
import { negLogNfaTree } from '../../models/scores/nfa-tree.js';
import { falseAlarmStats } from '../../models/metrics/false-alarms.js';
import { regionsOf } from '../../models/train/threshold-report.js';
import { mulberry32 } from '../../models/flows/rng.js';
import type { Latent } from '../../models/scores/latent.js';

const SHAPES: Array<[number, number, number]> = [
  [16, 16, 128],
  [8, 8, 256],
  [4, 4, 512],
];
const T = 64;

function latents(B: number, sigma: number, seed: number): Latent[] {
  const rnd = mulberry32(seed);
  const gauss = () => {
    let u = 0;
    while (u === 0) u = rnd();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
  };
  return SHAPES.map(([h, w, C]) => {
    const d = new Float32Array(B * h * w * C);
    for (let i = 0; i < d.length; i++) d[i] = sigma * gauss();
    return { data: d, shape: [B, h, w, C] };
  });
}

const perImage = (a: Float32Array, B: number) => Array.from({ length: B }, (_, b) => a.subarray(b * T * T, (b + 1) * T * T));
const SIGMA = 1.3;
const held = latents(20, SIGMA, 1);
const fit = fitNull(held.map((z) => [z]));

test('undertrained latents (σ = 1.3): the paper’s tree flags nearly every normal image, the calibrated NFA under one false alarm per image', () => {
  const B = 40;
  const z = latents(B, SIGMA, 2);
  const tree = falseAlarmStats(perImage(negLogNfaTree(z, T), B), T, T);
  const cal = falseAlarmStats(perImage(negLogNfaCalibrated(fit, z, T), B), T, T);
  assert.ok(tree.imagesWithDetections >= 0.9, `tree flagged ${tree.imagesWithDetections} of the images`);
  assert.ok(cal.meanRegions <= 1, `calibrated: ${cal.meanRegions} false alarms per image`);
  assert.ok(cal.imagesWithDetections <= 0.1, `calibrated flagged ${cal.imagesWithDetections} of the images`);
  assert.ok(cal.pixelFraction <= 0.01, `calibrated flagged ${cal.pixelFraction} of the pixels`);
});

test('a planted 6×6 anomaly at 3σ is detected where it is', () => {
  const B = 10;
  const z = latents(B, SIGMA, 3);
  const [, h, w, C] = z[0]!.shape;
  for (let b = 0; b < B; b++) for (let y = 5; y < 11; y++) for (let x = 5; x < 11; x++) for (let c = 0; c < C; c++) z[0]!.data[((b * h + y) * w + x) * C + c]! *= 3;
  const maps = perImage(negLogNfaCalibrated(fit, z, T), B);
  for (const m of maps) {
    const r = regionsOf(m, T, T);
    assert.ok(r.length >= 1, 'no detection');
    // The planted patch is latent pixels 5..10 of 16, i.e. 20..43 of 64.
    const [x0, y0, bw, bh] = r[0]!.box;
    assert.ok(x0 <= 30 && x0 + bw >= 30 && y0 <= 30 && y0 + bh >= 30, `largest region at ${r[0]!.box} misses the patch`);
    assert.ok(r[0]!.maxNegLogNfa > 0);
    assert.ok(r[0]!.area < 0.25 * T * T, `a region of ${r[0]!.area} pixels is not the planted patch`);
  }
});

test('the fit: one scale per level from the held-out latents; no held-out image detected, so no offset', () => {
  assert.equal(fit.images, 20);
  for (const L of fit.levels) assert.ok(Math.abs(L.scale - SIGMA) < 0.01, `scale ${L.scale}`);
  assert.equal(fit.heldOutMax.length, 20);
  assert.ok(fit.heldOutMax.every((v) => v <= 0));
  assert.equal(fit.offset, 0);
});

test('a held-out image that is still detected raises the threshold past it (the empirical check)', () => {
  const z = latents(6, 1, 6);
  const [, h, w, C] = z[0]!.shape;
  // A strong blob in one "normal" held-out image (a mislabelled or unusual good).
  for (let y = 2; y < 8; y++) for (let x = 2; x < 8; x++) for (let c = 0; c < C; c++) z[0]!.data[((0 * h + y) * w + x) * C + c]! *= 4;
  const f = fitNull(z.map((l) => [l]), T);
  assert.ok(f.offset > 0, 'offset');
  assert.equal(f.offset, Math.max(...f.heldOutMax));
  const m = negLogNfaCalibrated(f, z, T);
  for (let b = 0; b < 6; b++) assert.ok(Math.max(...m.subarray(b * T * T, (b + 1) * T * T)) <= 1e-6, `held-out image ${b} still detected`);
});

test('a fit survives JSON (calibration.json) and gives the same maps', () => {
  const z = latents(2, SIGMA, 4);
  const back = JSON.parse(JSON.stringify(fit)) as NullFit;
  assert.deepEqual(negLogNfaCalibrated(back, z, T), negLogNfaCalibrated(fit, z, T));
});

test('latents of another shape than the fit are refused with a sentence', () => {
  const z = latents(1, 1, 5).slice(0, 2);
  assert.throws(() => negLogNfaCalibrated(fit, z, T), /fitted on 3 levels, got 2/);
});
