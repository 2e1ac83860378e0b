/**
 * Hand-checkable tests of the NFA building blocks: special functions, binomial tails (low and high
 * precision), PyTorch resampling, block counts with reflect padding, the tree NFA's prune / merge /
 * equal-ℓ rules on tiny maps, logNT, and a detection test on a latent with one strong blob.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  chi2Ppf1,
  erfc,
  lgamma,
  log10BinomSf,
  log10BinomTailReal,
  logBinomTail,
  logFactorial,
  normInv,
} from '../../models/scores/binomial.js';
import { bicubicAlignCorners, bilinearHalfPixel } from '../../models/scores/resize64.js';
import { blockCandidateCounts, blockHalfWindow, blockLog10ProbScale, blockLogNT, negLogNfaBlock } from '../../models/scores/nfa-block.js';
import { chernoffLog10Prob, negLogNfaTree, treeLog10ProbMap, treeLogNT, TreeNfaWorkspace, type TreeNfaStats } from '../../models/scores/nfa-tree.js';
import { nfaDetections, type Latent } from '../../models/scores/latent.js';

const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (|Δ| = ${Math.abs(a - b)} > ${tol})`);

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
}
function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r())) * Math.cos(2 * Math.PI * r());
}

test('special functions: known values', () => {
  close(lgamma(0.5), Math.log(Math.sqrt(Math.PI)), 4e-15, 'lgamma(1/2)');
  close(lgamma(10), Math.log(362880), 1e-13, 'lgamma(10)');
  close(lgamma(7.5), Math.log(1871.254305797788346), 1e-13, 'lgamma(7.5)'); // Γ(7.5) = 135135/128 √π
  close(lgamma(3.3) - lgamma(2.3), Math.log(2.3), 1e-14, 'Γ recurrence');
  close(lgamma(30.25) - lgamma(29.25), Math.log(29.25), 1e-13, 'Γ recurrence (Stirling side)');
  assert.equal(erfc(0), 1);
  close(erfc(1) / 0.15729920705028513 - 1, 0, 1e-14, 'erfc(1)');
  close(erfc(3) / 2.209049699858544e-5 - 1, 0, 1e-14, 'erfc(3)');
  close(erfc(-1) + erfc(1), 2, 1e-15, 'erfc symmetry');
  close(normInv(0.975), 1.959963984540054, 2e-15, 'Φ⁻¹(0.975)');
  close(normInv(0.5), 0, 0, 'Φ⁻¹(1/2)');
  close(normInv(1e-20), -9.262340089798408, 1e-13, 'Φ⁻¹(1e-20)');
  // χ²₁ quantiles against 40-digit mpmath for the float64 p (within a few ulp; for p = 0.9 ours is
  // the correctly rounded 2.705543454095415, scipy returns ...404).
  close(chi2Ppf1(0.9), 2.7055434540954149, 1e-14, 'chi2.ppf(0.9, 1)');
  close(chi2Ppf1(0.95), 3.8414588206941245, 1e-14, 'chi2.ppf(0.95, 1)');
  close(chi2Ppf1(0.999), 10.827566170662731, 1e-13, 'chi2.ppf(0.999, 1)');
});

test('binomial tail: log-space sum vs direct summation, scipy logsf semantics', () => {
  for (const [n, q] of [
    [25, 0.1],
    [9, 0.1],
    [49, 0.5],
    [9, 0.3],
  ] as const) {
    for (let k = 0; k <= n + 1; k++) {
      // direct summation of the pmf with exact binomial coefficients (n ≤ 49: exact in float64)
      let direct = 0;
      for (let j = Math.max(k, 0); j <= n; j++) {
        let c = 1;
        for (let i = 1; i <= j; i++) c = (c * (n - j + i)) / i;
        direct += c * q ** j * (1 - q) ** (n - j);
      }
      const got = logBinomTail(n, q, k);
      if (direct === 0) assert.equal(got, -Infinity);
      else close(got, Math.log(direct), 1e-12 * Math.max(1, Math.abs(Math.log(direct))), `ln P(Bin(${n},${q}) ≥ ${k})`);
    }
  }
  // scipy: logsf(x) = log P(X > floor(x)); at x = 0, log10(1 − p^n).
  close(log10BinomSf(0, 25, 0.1), Math.log10(1 - 0.9 ** 25), 1e-15, 'logsf(0)');
  assert.equal(log10BinomSf(2.7, 25, 0.1), log10BinomSf(2, 25, 0.1));
  assert.equal(log10BinomSf(25, 25, 0.1), -Infinity);
  close(log10BinomSf(24, 25, 0.1), -25, 1e-12, 'P(X = 25) = 0.1^25');
  // a tail far below the float64 range stays exact in log space
  close(logBinomTail(2000, 0.01, 2000), 2000 * Math.log(0.01), 1e-9, 'P(X = n) = q^n (n = 2000)');
  assert.equal(logFactorial(5), Math.log(120));
});

test('high precision: the continuous tail I_q(x, n−x+1)', () => {
  for (const [n, p] of [
    [25, 0.9],
    [9, 0.9],
    [49, 0.5],
  ] as const) {
    const q = 1 - p;
    // exact at integers: T(k) = P(Bin(n, q) ≥ k)
    for (let k = 0; k <= n; k++) close(log10BinomTailReal(k, n, q), logBinomTail(n, q, k) / Math.LN10, 1e-12, `T(${k}) n=${n}`);
    let prev = Infinity;
    for (let x = 0; x <= n; x += 0.125) {
      const hp = log10BinomTailReal(x, n, q);
      assert.ok(hp < prev || x === 0, `strictly decreasing at x = ${x}`);
      prev = hp;
      // bracket with the low-precision (scipy) value
      const lp = log10BinomSf(x, n, q);
      const up = x >= 1 ? log10BinomSf(x - 1, n, q) : 0;
      assert.ok(hp >= lp - 1e-12 && hp <= up + 1e-12, `LP(x) ≤ HP(x) ≤ LP(x−1) at x = ${x}: ${lp} ≤ ${hp} ≤ ${up}`);
    }
  }
  // the official integral relaxation ∫_x^n Γ-binomial dk (Simpson): within 0.75 in log10 for
  // x ≤ n − 1 (it vanishes as x → n, where the exact tail stays at P(X = n)).
  const n = 25;
  const q = 0.1;
  const b = (k: number) => Math.exp(lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1) + k * Math.log(q) + (n - k) * Math.log1p(-q));
  let worst = 0;
  for (let x = 0; x <= n - 1; x += 0.25) {
    const M = 4000;
    const h = (n - x) / M;
    let s = b(x) + b(n);
    for (let i = 1; i < M; i++) s += (i % 2 ? 4 : 2) * b(x + i * h);
    worst = Math.max(worst, Math.abs(Math.log10((s * h) / 3) - log10BinomTailReal(x, n, q)));
  }
  assert.ok(worst < 0.75 && worst > 0.1, `|HP − log10 ∫| max ${worst}`);
});

test('bilinear align_corners=False and bicubic align_corners=True on hand examples', () => {
  const up = bilinearHalfPixel([0, 1, 2, 3], 1, 2, 2, 4, 4);
  assert.deepEqual(Array.from(up.subarray(0, 4)), [0, 0.25, 0.75, 1]);
  assert.deepEqual(Array.from(up.subarray(12, 16)), [2, 2.25, 2.75, 3]);
  const bc = bicubicAlignCorners([0, 1, 2, 3], 1, 2, 2, 3, 3);
  // corners are exact; the centre is the mean; a linear ramp stays linear with 2 taps + clamping
  assert.deepEqual([bc[0], bc[2], bc[6], bc[8]], [0, 1, 2, 3]);
  close(bc[4]!, 1.5, 1e-15, 'bicubic centre');
  // constant planes stay constant
  const c = bicubicAlignCorners(new Float64Array(20).fill(-3.25), 1, 4, 5, 7, 9);
  assert.ok(c.every((v) => Math.abs(v + 3.25) < 1e-14));
  // PyTorch cubic weights at t = 0.5: (−0.09375, 0.59375, 0.59375, −0.09375): 1D check on 4 samples
  const r = bicubicAlignCorners([0, 0, 1, 0, 0, 0, 0], 1, 1, 7, 1, 13);
  close(r[3]!, 0.59375, 1e-15, 'cubic weight at t = 1/2');
  close(r[5]!, 0.59375, 1e-15, 'cubic weight at t = 1/2 (right)');
  close(r[1]!, -0.09375, 1e-15, 'cubic outer weight');
});

test('block NFA: reflect-padded counts and the x = 0 value', () => {
  assert.deepEqual([0, 1, 2, 3].map((s) => blockHalfWindow(5, s)), [2, 1, 1, 1]);
  assert.deepEqual([0, 1, 2].map((s) => blockHalfWindow(7, s)), [3, 1, 1]);
  // 5×5, C = 1, one strong pixel at (1, 1); r = 2. Reflect padding (edge not repeated) puts
  // row/col 1 twice in the window at (0, 0): count 4. At (3, 3) the window spans rows 1..5 → 1.
  const z: Latent = { data: new Float32Array(25), shape: [1, 5, 5, 1] };
  z.data[1 * 5 + 1] = 10;
  const k = blockCandidateCounts(z, 2, 2.7);
  assert.equal(k[0], 4);
  assert.equal(k[3 * 5 + 3], 1);
  assert.equal(k[4 * 5 + 4], 0); // rows 2..6 → 2,3,4,3,2: row 1 absent
  assert.equal(k[2 * 5 + 2], 1);
  assert.equal(k[4 * 5 + 0], 0);
  // x = 0 everywhere → log10(1 − p^n); with one hit in 25 entries and C = 1: floor(x) = 1.
  const L = blockLog10ProbScale(z, 0, { p: 0.9 });
  close(L[4 * 5 + 4]!, Math.log10(1 - 0.9 ** 25), 1e-15, 'L at x = 0');
  close(L[3 * 5 + 3]!, logBinomTail(25, 1 - 0.9, 2) / Math.LN10, 1e-15, 'L at x = 1');
  close(L[0]!, logBinomTail(25, 1 - 0.9, 5) / Math.LN10, 1e-15, 'L at x = 4');
  // x is ΣK / C, not rounded: C = 2 with the same hit → x = 1/2 → floor 0 (low precision),
  // the high-precision tail is evaluated at 0.5 and lies between.
  const z2: Latent = { data: new Float32Array(50), shape: [1, 5, 5, 2] };
  z2.data[(1 * 5 + 1) * 2] = 10;
  const lp = blockLog10ProbScale(z2, 0)[3 * 5 + 3]!;
  const hp = blockLog10ProbScale(z2, 0, { highPrecision: true })[3 * 5 + 3]!;
  close(lp, Math.log10(1 - 0.9 ** 25), 1e-15, 'x = 1/2 low precision');
  close(hp, log10BinomTailReal(0.5, 25, 1 - 0.9), 1e-15, 'x = 1/2 high precision');
  assert.ok(hp > lp && hp < 0);
  // logNT and the full map: a quiet latent is not detected anywhere.
  assert.equal(blockLogNT([z, z]), Math.fround(Math.log10(50)));
  const s = negLogNfaBlock([z], { targetSize: 8 });
  assert.equal(s.length, 64);
  assert.ok(s.every((v) => v < 0), 'one pixel over τ is not significant');
});

test('block NFA: a strong blob is detected there and nowhere else', () => {
  const r = rng(3);
  const [H, W, C] = [16, 16, 24];
  const z: Latent = { data: new Float32Array(H * W * C), shape: [1, H, W, C] };
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++)
      for (let c = 0; c < C; c++) z.data[(y * W + x) * C + c] = gaussian(r) * (y >= 6 && y < 10 && x >= 6 && x < 10 ? 4 : 1);
  const s = negLogNfaBlock([z], { targetSize: 16 });
  assert.ok(s[8 * 16 + 8]! > 2, `blob centre score ${s[8 * 16 + 8]}`);
  for (let y = 0; y < 16; y++)
    for (let x = 0; x < 16; x++) if (Math.max(Math.abs(y - 7.5), Math.abs(x - 7.5)) > 6) assert.ok(s[y * 16 + x]! < 0, `false detection at ${y},${x}: ${s[y * 16 + x]}`);
});

/** A 1×N latent with C = 1 and the given per-pixel values (E = fround(v²)). */
function row(values: number[]): Latent {
  return { data: Float32Array.from(values), shape: [1, 1, values.length, 1] };
}
const ell = (area: number, v: number) => chernoffLog10Prob(area, Math.fround(Math.fround(v) * Math.fround(v)), 1);

test('tree NFA: Chernoff ℓ, prune keeps the branch minimum, merge, equal-ℓ overwrite', () => {
  // ℓ(u = 1) = 0; ℓ(m = 9, C = 1) = −(8 − ln 9)/(2 ln 10) to float32 precision in (u − 1 − ln u).
  assert.equal(chernoffLog10Prob(5, 3, 3), -0);
  close(chernoffLog10Prob(1, 9, 1), -(8 - Math.log(9)) / (2 * Math.LN10), 1e-6, 'ℓ(9)');

  // Three peaks over a floor at 1: root ℓ = 0 is not ≤ the leaves' ℓ → no merge, three clusters.
  let m = treeLog10ProbMap(row([3, 1, 4, 1, 2]), 0);
  assert.ok(Number.isNaN(m[1]!) && Number.isNaN(m[3]!));
  assert.deepEqual([m[0], m[2], m[4]], [ell(1, 3), ell(1, 4), ell(1, 2)].map(Math.fround));

  // Chain 1 < 2 < 3: branch = [leaf{2}, {1,2}, root]; the leaf has the minimum.
  m = treeLog10ProbMap(row([1, 2, 3]), 0);
  assert.deepEqual(Array.from(m), [NaN, NaN, Math.fround(ell(1, 3))]);
  // Chain 1 < 3 < 3.08: the 2-pixel node {1,2} beats the leaf → both pixels get 2·ℓ(9).
  m = treeLog10ProbMap(row([1, 3, 3.08]), 0);
  assert.ok(2 * ell(1, 3) < ell(1, 3.08));
  assert.deepEqual(Array.from(m), [NaN, Math.fround(2 * ell(1, 3)), Math.fround(2 * ell(1, 3))]);

  // Merge: root at 1.95 holds both leaves (2, 2); 3·ℓ(1.95²) ≤ ℓ(4) → merged into one cluster.
  const stats: TreeNfaStats = { nodes: 0, merges: 0, clusters: 0 };
  m = treeLog10ProbMap(row([2, 1.95, 2]), 0, undefined, stats);
  assert.ok(3 * ell(1, 1.95) <= ell(1, 2));
  assert.deepEqual(Array.from(m), new Array(3).fill(Math.fround(3 * ell(1, 1.95))));
  assert.deepEqual(stats, { nodes: 3, merges: 1, clusters: 1 });

  // Equal ℓ: two identical leaves over a floor at 1 (ℓ = 0, no merge). The clusters are keyed by
  // ℓ, so the later leaf (pixel order) replaces the earlier one: only pixel 2 is painted.
  m = treeLog10ProbMap(row([2, 1, 2]), 0, undefined, stats);
  assert.deepEqual(Array.from(m), [NaN, NaN, Math.fround(ell(1, 2))]);
  assert.equal(stats.clusters, 1);

  // A flat latent is one node: the whole image is one cluster.
  m = treeLog10ProbMap({ data: new Float32Array(12).fill(2), shape: [1, 2, 3, 2] }, 0);
  assert.ok(m.every((v) => v === Math.fround(chernoffLog10Prob(6, 8, 2))));
});

test('tree NFA: 4-connectivity (diagonal peaks are separate components)', () => {
  // 2×2 with the two high pixels on a diagonal: two leaves, not one 2-pixel region.
  const z: Latent = { data: Float32Array.from([3, 1, 1, 3.5]), shape: [1, 2, 2, 1] };
  const m = treeLog10ProbMap(z, 0);
  assert.deepEqual(Array.from(m), [Math.fround(ell(1, 3)), NaN, NaN, Math.fround(ell(1, 3.5))]);
});

test('tree NFA: logNT by the polyomino formula', () => {
  const a = 0.316915;
  const b = 4.06257;
  assert.equal(treeLogNT([1]), Math.fround(Math.log10(a * b)));
  assert.equal(treeLogNT([2]), Math.fround(Math.log10(2 * (a * b + (a * b * b) / 2))));
  assert.equal(treeLogNT([3, 1]), Math.fround(Math.log10(3 * (a * b + (a * b * b) / 2 + (a * b ** 3) / 3) + a * b)));
  // 64×64 (β^4096 overflows float64): Σ_r α β^r / r ≈ α β^N / N · β/(β−1), so
  // log10 ≈ log10 α + N log10 β + log10(β/(β−1)) up to O(1/N).
  const big = treeLogNT([4096]);
  close(big, Math.log10(a) + 4096 * Math.log10(b) + Math.log10(b / (b - 1)), 2e-3, 'logNT(64×64)');
});

test('tree NFA: one strong blob is detected, nothing elsewhere; workspace reuse is stable', () => {
  const r = rng(11);
  // logNT(24×24) ≈ 350, so a detection needs ℓ < −350: 25 pixels at 4σ over 32 channels.
  const [H, W, C] = [24, 24, 32];
  const z: Latent = { data: new Float32Array(2 * H * W * C), shape: [2, H, W, C] };
  for (let b = 0; b < 2; b++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const blob = b === 0 && y >= 8 && y < 13 && x >= 14 && x < 19;
        for (let c = 0; c < C; c++) z.data[((b * H + y) * W + x) * C + c] = gaussian(r) * (blob ? 4 : 1);
      }
  const T = 48;
  const ws = new TreeNfaWorkspace();
  const s = negLogNfaTree([z], T, ws);
  const det = nfaDetections(s);
  let inBlob = 0;
  for (let y = 0; y < T; y++)
    for (let x = 0; x < T; x++) {
      const yy = y / 2;
      const xx = x / 2;
      const inside = yy >= 8 && yy < 13 && xx >= 14 && xx < 19;
      const near = yy >= 6 && yy < 15 && xx >= 12 && xx < 21;
      if (inside && det[y * T + x]) inBlob++;
      if (!near) assert.equal(det[y * T + x], 0, `false detection at ${y},${x} (score ${s[y * T + x]})`);
    }
  assert.ok(inBlob > 0.8 * 100, `blob pixels detected: ${inBlob}/100`);
  // image 1 has no blob: no detection at all
  assert.ok(det.subarray(T * T).every((v) => v === 0), 'clean image must have no detection');
  // same result with a fresh workspace (no state leaks between calls)
  assert.deepEqual(negLogNfaTree([z], T), s);
});
