/**
 * Hand-checkable tests of the metrics: AUROC with ties (and against the O(P·N) Mann–Whitney
 * definition), radix sorts, ROC curve points, 8-connected labelling, AUPRO (perfect and chance
 * detectors, sparse path vs the float32 replay, the edge case, no region), mIoU (official
 * semantics: batch label threshold, strict >, float32 thresholds, good images) and its oracle,
 * and pixel F1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { downsampleIndices, imageAuroc, imageMaxScores, rocAuc, rocCurve } from '../../models/metrics/roc.js';
import { argsortFloat32, sortFloat32, sortFloat64, sortTopFloat32 } from '../../models/metrics/sort.js';
import { label8 } from '../../models/metrics/components.js';
import { aupro } from '../../models/metrics/aupro.js';
import { iouFloat32, MeanIoU, miou, miouOracle } from '../../models/metrics/miou.js';
import { pixelF1 } from '../../models/metrics/f1.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
}

/** AUROC by definition: P(score_pos > score_neg) + ½ P(equal), over all pairs. */
function bruteAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  let num = 0;
  let pairs = 0;
  for (let i = 0; i < scores.length; i++) {
    if (!labels[i]) continue;
    for (let j = 0; j < scores.length; j++) {
      if (labels[j]) continue;
      pairs++;
      num += scores[i]! > scores[j]! ? 1 : scores[i] === scores[j] ? 0.5 : 0;
    }
  }
  return num / pairs;
}

test('AUROC: separated, reversed, tied and sklearn example values', () => {
  assert.equal(rocAuc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]), 1);
  assert.equal(rocAuc([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]), 0);
  assert.equal(rocAuc([0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1]), 0.5);
  assert.equal(rocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75); // sklearn docstring example
  // ties across classes count ½: pos {0.5, 0.5} vs neg {0.5, 0.2} → (½+1+½+1)/4
  assert.equal(rocAuc(Float32Array.from([0.5, 0.5, 0.5, 0.2]), [1, 1, 0, 0]), 0.75);
  assert.ok(Number.isNaN(rocAuc([0.1, 0.2], [1, 1])), 'one class only → NaN');
  assert.throws(() => rocAuc([NaN, 1], [0, 1]), /NaN/);
  // random data on a coarse grid (many ties), float32 and float64 inputs, negative values
  const r = rng(7);
  for (const Arr of [Float32Array, Float64Array]) {
    const n = 1500;
    const s = new Arr(n);
    const l = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      l[i] = r() < 0.3 ? 1 : 0;
      s[i] = Math.round((r() - 0.5 + 0.3 * l[i]!) * 40) / 16;
    }
    assert.ok(Math.abs(rocAuc(s, l) - bruteAuc(s, l)) < 1e-12, `${Arr.name}: ${rocAuc(s, l)} vs ${bruteAuc(s, l)}`);
  }
  // image AUROC = AUROC of the per-image maxima
  const maps = Float32Array.from([0, 0.2, 0.1, 0.3, 0.9, 0, 0, 0.25, 0]); // 3 images of 3 pixels
  assert.deepEqual(Array.from(imageMaxScores(maps, 3)), [Math.fround(0.2), Math.fround(0.9), Math.fround(0.25)]);
  assert.equal(imageAuroc(maps, 3, [0, 1, 1]), 1);
  assert.equal(imageAuroc(maps, 3, [1, 1, 0]), 0.5); // 0.2 < 0.25 < 0.9
});

test('radix sorts: order, −0/+0, infinities, stability, top selection', () => {
  const r = rng(3);
  const v = new Float32Array(5000);
  for (let i = 0; i < v.length; i++) v[i] = Math.round((r() - 0.5) * 200) / 8;
  v[10] = -0;
  v[11] = 0;
  v[12] = Infinity;
  v[13] = -Infinity;
  v[14] = -1e-40; // subnormal
  const expect = Float32Array.from(v).sort();
  const got = sortFloat32(v);
  for (let i = 0; i < v.length; i++) assert.ok(got[i] === expect[i], `sortFloat32[${i}] ${got[i]} vs ${expect[i]}`);
  const d = Float64Array.from(v, (x, i) => x + i * 1e-12);
  const ed = Float64Array.from(d).sort();
  const gd = sortFloat64(d);
  for (let i = 0; i < d.length; i++) assert.ok(gd[i] === ed[i], `sortFloat64[${i}]`);
  const idx = argsortFloat32(v);
  for (let i = 1; i < idx.length; i++) {
    const a = v[idx[i - 1]!]!;
    const b = v[idx[i]!]!;
    assert.ok(a < b || (a === b && idx[i - 1]! < idx[i]!) || (Object.is(a, -0) && b === 0), `argsort stable at ${i}`);
  }
  const top = sortTopFloat32(v, 700);
  assert.ok(top.length >= 700);
  const tail = expect.subarray(expect.length - top.length);
  assert.deepEqual(Array.from(top), Array.from(tail), 'top selection is the sorted tail');
  assert.ok(tail[0]! < expect[expect.length - 700]! || top.length === v.length, 'reaches past the need-th largest');
});

test('ROC curve points: endpoints, monotone, downsampled, same area', () => {
  const r = rng(5);
  const n = 4000;
  const s = new Float32Array(n);
  const l = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    l[i] = r() < 0.2 ? 1 : 0;
    s[i] = r() + 0.4 * l[i]!;
  }
  const c = rocCurve(s, l, 100);
  assert.ok(c.fpr.length <= 100 && c.fpr.length >= 2);
  assert.deepEqual([c.fpr[0], c.tpr[0], c.thresholds[0]], [0, 0, Infinity]);
  assert.deepEqual([c.fpr[c.fpr.length - 1], c.tpr[c.tpr.length - 1]], [1, 1]);
  for (let i = 1; i < c.fpr.length; i++) assert.ok(c.fpr[i]! >= c.fpr[i - 1]! && c.tpr[i]! >= c.tpr[i - 1]! && c.thresholds[i]! < c.thresholds[i - 1]!);
  assert.equal(c.auc, rocAuc(s, l));
  assert.deepEqual(Array.from(downsampleIndices(5, 3)), [0, 2, 4]);
  assert.deepEqual(Array.from(downsampleIndices(3, 512)), [0, 1, 2]);
});

test('8-connected components: diagonals join, raster order, unique over images', () => {
  // image 0: a diagonal pair (one component) and an isolated pixel; image 1: one pixel
  const m = [1, 0, 0, 0, 1, 0, 0, 0, 1, /* img 1 */ 0, 0, 0, 0, 0, 1, 0, 0, 0];
  const c = label8(m, 2, 3, 3);
  assert.equal(c.count, 2);
  assert.deepEqual(Array.from(c.labels), [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
  assert.deepEqual(Array.from(c.sizes), [14, 3, 1]);
  const c2 = label8([1, 0, 1, 0, 0, 0, 1, 1, 1], 1, 3, 3);
  assert.equal(c2.count, 3, 'two corners and the bottom row, separated by an empty row');
  assert.deepEqual(Array.from(c2.labels), [1, 0, 2, 0, 0, 0, 3, 3, 3]);
});

/** n maps of h×w with one square defect each (side a at (y0, x0)); scores from `score`. */
function squares(n: number, h: number, w: number, a: number, score: (inside: boolean, r: () => number) => number, seed = 1) {
  const r = rng(seed);
  const maps = new Float32Array(n * h * w);
  const masks = new Uint8Array(n * h * w);
  for (let b = 0; b < n; b++) {
    const y0 = 3 + b;
    const x0 = 5 + 2 * b;
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const inside = y >= y0 && y < y0 + a && x >= x0 && x < x0 + a;
        masks[(b * h + y) * w + x] = inside ? 1 : 0;
        maps[(b * h + y) * w + x] = score(inside, r);
      }
  }
  return { maps, masks };
}

test('AUPRO: perfect detector → 1, chance detector → 0.15 (area under PRO = FPR up to 0.3)', () => {
  const perfect = squares(3, 40, 40, 6, (inside, r) => (inside ? 0.9 + 0.1 * r() : 0.8 * r()));
  for (const exact of [false, true]) {
    const p = aupro(perfect.maps, perfect.masks, 3, 40, 40, 0.3, { exact });
    assert.equal(p.regions, 3);
    assert.ok(Math.abs(p.fpr[p.fpr.length - 1]! - 0.3) < 1e-3, `last FPR ${p.fpr[p.fpr.length - 1]}`);
    assert.equal(p.pro[p.pro.length - 1], 1);
    // the only loss is the first resampling step (PRO jumps 0 → 1 at FPR ≈ 0): ½·fpr[1]/fpr[−1]
    assert.ok(p.aupro > 0.999 && p.aupro <= 1, `perfect AUPRO ${p.aupro}`);
  }
  const chance = squares(4, 64, 64, 12, (_, r) => r(), 9);
  const c = aupro(chance.maps, chance.masks, 4, 64, 64, 0.3);
  assert.ok(Math.abs(c.aupro - 0.15) < 0.03, `chance AUPRO ${c.aupro}`);
  // the global K: (0, 0) plus every distinct score whose fpr = #bg ≥ v / N_bg (float32) is ≤ 0.3
  const all = Array.from(chance.maps, (v, i) => [v, chance.masks[i]!] as const).sort((a, b) => b[0] - a[0]);
  const nBg = all.filter(([, m]) => !m).length;
  let K = 1;
  let bgAbove = 0;
  for (let i = 0; i < all.length; ) {
    const v = all[i]![0];
    while (i < all.length && all[i]![0] === v) if (!all[i++]![1]) bgAbove++;
    if (Math.fround(bgAbove / nBg) > Math.fround(0.3)) break;
    K++;
  }
  assert.equal(c.points, K);
});

test('AUPRO: sparse path equals the float32 replay (ties, several regions, other limits)', () => {
  const r = rng(21);
  for (let t = 0; t < 40; t++) {
    const [n, h, w] = [1 + (t % 3), 12 + (t % 7), 15 + (t % 5)];
    const q = [0, 8, 64, 512][t % 4]!;
    const maps = new Float32Array(n * h * w);
    const masks = new Uint8Array(n * h * w);
    for (let i = 0; i < maps.length; i++) {
      const y = Math.floor(i / w) % h;
      const x = i % w;
      const inside = (y - 5) ** 2 + (x - 6 - t % 4) ** 2 < 6 || (y > h - 4 && x > w - 5 && t % 2 === 0);
      masks[i] = inside ? 1 : 0;
      const v = r() + (inside ? 0.5 * r() : 0);
      maps[i] = q ? Math.round(v * q) / q : v;
    }
    const lim = [0.3, 0.1, 0.5][t % 3]!;
    const a = aupro(maps, masks, n, h, w, lim, { exact: true });
    const b = aupro(maps, masks, n, h, w, lim);
    assert.equal(b.points, a.points);
    assert.ok(Math.abs(a.aupro - b.aupro) < 1e-5, `trial ${t}: ${a.aupro} vs ${b.aupro}`);
    for (let k = 0; k < a.points; k++) {
      assert.ok(Math.abs(a.fpr[k]! - b.fpr[k]!) < 1e-4 && Math.abs(a.pro[k]! - b.pro[k]!) < 1e-4, `trial ${t} point ${k}`);
    }
  }
});

test('AUPRO: edge case (every background score equal) and no region', () => {
  // background all 0 → the first background point has fpr 1 > 0.3: lim = 1 (reference edge case)
  const { maps, masks } = squares(1, 10, 10, 3, (inside, r) => (inside ? r() : 0));
  const p = aupro(maps, masks, 1, 10, 10);
  assert.equal(p.points, 10, 'K = (0,0) + the 9 distinct region scores at fpr 0');
  assert.ok(Number.isFinite(p.aupro));
  assert.deepEqual(p, aupro(maps, masks, 1, 10, 10, 0.3, { exact: true }));
  const none = aupro(new Float32Array(16), new Uint8Array(16), 1, 4, 4);
  assert.equal(none.regions, 0);
  assert.ok(Number.isNaN(none.aupro));
});

test('mIoU: official semantics (good images, strict >, float32 thresholds, batch label threshold)', () => {
  // two 2×2 images: image 0 has a 2-pixel defect predicted exactly; image 1 is good with a FP
  const preds = Float32Array.from([0.9, 0.8, 0.1, 0.1, /* good */ 0.7, 0, 0, 0]);
  const masks = [1, 1, 0, 0, 0, 0, 0, 0];
  const r = miou(preds, masks, 2, [0.5, 0.95]);
  assert.deepEqual(r.intersections, [[2, 0], [0, 0]]);
  assert.deepEqual(r.unions, [[2, 2], [1, 0]]);
  // (I+ε)/(U+ε) in float32: 1; ε/(1+ε) ≈ 2.2e-16; mean 0.5. At 0.95: 0 and (ε/ε = 1) → 0.5
  assert.deepEqual(r.iou, [[1, iouFloat32(0, 2)], [iouFloat32(0, 1), 1]]);
  assert.ok(r.iou[1]![0]! > 0 && r.iou[1]![0]! < 1e-15);
  assert.deepEqual(r.miou, [0.5, 0.5]);
  // strict >, with the threshold as float32: a score equal to fround(0.3) is not above 0.3
  const edge = miou(Float32Array.from([0.3, 0.31]), [0, 1], 1, [0.3]);
  assert.deepEqual(edge.intersections, [[1]]);
  assert.deepEqual(edge.unions, [[1]]);
  // label threshold = (max − min)/2 over the batch: masks in {0, 255} work; an all-good batch
  // has an empty target (0 > 0 is false)
  assert.deepEqual(miou(Float32Array.from([1, 0]), [255, 0], 1, [0.5]).miou, [1]);
  assert.deepEqual(miou(Float32Array.from([0, 0]), [0, 0], 1, [0.5]).miou, [1]);
  // per-batch threshold: two updates keep their own label thresholds
  const m = new MeanIoU([0.5]);
  m.update(Float32Array.from([1, 0]), [2, 0], 1); // threshold 1: target = {0}
  m.update(Float32Array.from([1, 0]), [1, 0], 1); // threshold 0.5: target = {0}
  assert.deepEqual(m.compute(), [1]);
});

test('mIoU oracle over −400…1000 equals the threshold-by-threshold loop', () => {
  const r = rng(4);
  const n = 3;
  const per = 50;
  const preds = new Float32Array(n * per);
  const masks = new Uint8Array(n * per);
  for (let i = 0; i < preds.length; i++) {
    masks[i] = i % per < 10 && i >= per ? 1 : 0; // image 0 is good
    preds[i] = Math.round((r() - 0.5) * 30 + (masks[i] ? 12 : 0));
  }
  const o = miouOracle(preds, masks, n);
  assert.equal(o.thresholds.length, 1401);
  for (const t of [-400, -3, 0, 2, 7, 999]) {
    const k = o.thresholds.indexOf(t);
    let s = 0;
    for (let b = 0; b < n; b++) {
      let I = 0;
      let U = 0;
      for (let i = b * per; i < (b + 1) * per; i++) {
        const p = preds[i]! > t;
        const g = masks[i]! > 0.5;
        if (p && g) I++;
        if (p || g) U++;
      }
      s += iouFloat32(I, U);
    }
    assert.equal(o.miou[k], Math.fround(s / n), `mIoU@${t}`);
  }
  assert.equal(o.best, Math.max(...o.miou));
  assert.equal(o.miou[o.thresholds.indexOf(o.bestThreshold)], o.best);
  assert.equal(o.atZero, o.miou[400]);
  assert.ok(o.best > o.miou[0]!, 'a useful threshold beats −400 (everything predicted)');
});

test('pixel F1', () => {
  // TP 2, FP 1, FN 1 → 2·2/(2·2 + 1 + 1)
  assert.equal(pixelF1(Float32Array.from([0.9, 0.8, 0.7, 0.1, 0.2]), [1, 1, 0, 1, 0], 0.5), 4 / 6);
  assert.equal(pixelF1([0, 0], [0, 0], 0.5), 0, 'no positive and no prediction → 0');
  assert.equal(pixelF1(Float32Array.from([0.3]), [1], 0.3), 0, 'strict > with a float32 threshold');
});
