/**
 * AUPRO@fprLimit, the official U-Flow `src/aupro.py` (anomalib-2022 algorithm), spec/metrics.md:
 *
 *  1. 8-connected components of the masks, per image, labels unique over the set (raster order).
 *  2. Global ROC (torchmetrics binary: every distinct score a threshold, descending, plus a leading
 *     (0, 0)); K = #{points with fpr ≤ limit}.
 *  3. For each region ℓ: the ROC (f, t) on background ∪ region ℓ (region ℓ positive); the edge
 *     case (lim = min f[f > limit] when max f[f ≤ limit] = 0); I = {i : f_i ≤ lim}; if max f[I] is
 *     not allclose to the limit, j = searchsorted(f, limit) is appended and the last sample moves to
 *     x[−2] + (x[−1] − x[−2])·(1 − (f_j − limit)/(f_j − f_{j−1})); x = I / max(I) · (K − 1);
 *     t and f are resampled at 0 … K−1 with the code's interp1d (eps32 in the slope) and summed.
 *  4. Averages over regions; AUPRO = trapz(pro, fpr) / fpr[−1].
 * Float32 arithmetic where the reference is float32 (every ROC value, x, slope, interpolation and
 * the per-region accumulation are rounded with Math.fround in the reference's order); the final
 * trapezoid sum is float64 (PyTorch sums with a cascade, so this is the closer choice).
 *
 * Speed: the reference sorts background ∪ region for every region. Here the background scores are
 * sorted once and reduced to their distinct values with cumulative counts; a region's ROC is the
 * merge of that shared list with the region's own (small) sorted scores, so each region costs
 * O(K + its size) instead of O(N log N), with the identical points.
 */
import { label8 } from './components.js';

const EPS32 = 1.1920928955078125e-7;
const f32 = Math.fround;

export interface AuproResult {
  /** AUPRO normalised by the last averaged FPR; NaN without any region. */
  aupro: number;
  /** Averaged per-region FPR at the K resampled positions (float32, ascending). */
  fpr: Float32Array;
  /** Averaged per-region overlap (TPR) at the same positions. */
  pro: Float32Array;
  /** Number of connected regions. */
  regions: number;
  /** K: global ROC points with fpr ≤ the limit. */
  points: number;
}

/** torch.searchsorted(left) as PyTorch's CPU kernel does it (a plain binary search). */
function lowerBound(a: Float32Array, len: number, v: number): number {
  let lo = 0;
  let hi = len;
  while (lo < hi) {
    const mid = lo + ((hi - lo) >> 1);
    if (!(a[mid]! >= v)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * maps: anomaly scores [n·h·w]; masks: ground truth [n·h·w] (non-zero = defect).
 */
export function aupro(maps: ArrayLike<number>, masks: ArrayLike<number>, n: number, h: number, w: number, fprLimit = 0.3): AuproResult {
  const N = n * h * w;
  if (maps.length !== N) throw new RangeError(`aupro: ${maps.length} scores for ${n}×${h}×${w}`);
  const lim = f32(fprLimit);
  const { labels, count: R, sizes } = label8(masks, n, h, w);
  const nBg = sizes[0]!;
  const empty = (K: number): AuproResult => ({ aupro: NaN, fpr: new Float32Array(K), pro: new Float32Array(K), regions: R, points: K });

  // Background scores, sorted once; region scores grouped by label, each group sorted.
  const bg = new Float32Array(nBg);
  const start = new Int32Array(R + 2);
  for (let r = 1; r <= R; r++) start[r + 1] = start[r]! + sizes[r]!;
  const fg = new Float32Array(N - nBg);
  const fill = start.slice();
  let ib = 0;
  for (let i = 0; i < N; i++) {
    const v = maps[i]!;
    if (v !== v) throw new RangeError(`aupro: score ${i} is NaN`);
    const l = labels[i]!;
    if (l === 0) bg[ib++] = v;
    else fg[fill[l]!++] = v;
  }
  bg.sort();
  for (let r = 1; r <= R; r++) fg.subarray(start[r]!, start[r + 1]!).sort();
  const nBgF = f32(nBg);

  // Background distinct values, descending, with #bg ≥ value; kept until two f levels past the
  // limit (what the edge case can reach).
  const bgV: number[] = [];
  const bgC: number[] = [];
  {
    let firstOver = NaN;
    let k = nBg - 1;
    while (k >= 0) {
      const v = bg[k]!;
      while (k >= 0 && bg[k] === v) k--;
      const c = nBg - 1 - k;
      bgV.push(v);
      bgC.push(c);
      const f = f32(f32(c) / nBgF);
      if (f > lim) {
        if (firstOver !== firstOver) firstOver = f;
        else if (f > firstOver) break;
      }
    }
  }
  const nBgD = bgV.length;
  const bgVal = Float32Array.from(bgV);
  const bgCnt = Int32Array.from(bgC);

  // Global K: distinct values of all pixels, fps = #bg ≥ v.
  let K = 1;
  {
    const all = fg.slice().sort();
    let ia = all.length - 1;
    let kb = 0;
    let fps = 0;
    while (ia >= 0 || kb < nBgD) {
      const va = ia >= 0 ? all[ia]! : -Infinity;
      const vb = kb < nBgD ? bgVal[kb]! : -Infinity;
      const v = va > vb ? va : vb;
      if (kb < nBgD && vb === v) fps = bgCnt[kb++]!;
      while (ia >= 0 && all[ia] === v) ia--;
      if (f32(f32(fps) / nBgF) > lim) break;
      K++;
      if (kb >= nBgD && ia < 0) break;
    }
  }
  if (R === 0 || nBg === 0 || K < 2) return empty(Math.max(K, 0));

  const accF = new Float32Array(K);
  const accT = new Float32Array(K);
  const cap = nBgD + (fg.length > 0 ? Math.max(...sizes.subarray(1)) : 0) + 2;
  const F = new Float32Array(cap);
  const Tt = new Float32Array(cap);
  const X = new Float32Array(cap);
  const Km1 = f32(K - 1);

  for (let r = 1; r <= R; r++) {
    const s0 = start[r]!;
    const m = sizes[r]!;
    const mF = f32(m);
    // ROC of background ∪ region r, generated until f passes the first level above the limit.
    F[0] = 0;
    Tt[0] = 0;
    let P = 1;
    let kb = 0;
    let kr = s0 + m - 1;
    let fps = 0;
    let tps = 0;
    let firstOver = NaN;
    while (kb < nBgD || kr >= s0) {
      const vb = kb < nBgD ? bgVal[kb]! : -Infinity;
      const vr = kr >= s0 ? fg[kr]! : -Infinity;
      const v = vb > vr ? vb : vr;
      if (kb < nBgD && vb === v) fps = bgCnt[kb++]!;
      while (kr >= s0 && fg[kr] === v) {
        tps++;
        kr--;
      }
      const f = f32(f32(fps) / nBgF);
      F[P] = f;
      Tt[P] = f32(f32(tps) / mF);
      P++;
      if (f > lim) {
        if (firstOver !== firstOver) firstOver = f;
        else if (f > firstOver) break;
      }
    }
    // I = prefix with f ≤ limR (f is non-decreasing).
    let M = 0;
    while (M < P && F[M]! <= lim) M++;
    const maxLe = F[M - 1]!;
    let limR = lim;
    if (maxLe === 0) {
      limR = firstOver === firstOver ? firstOver : lim;
      while (M < P && F[M]! <= limR) M++;
    }
    const maxF = F[M - 1]!;
    const interp = !(Math.abs(maxF - lim) <= 1e-8 + 1e-5 * Math.abs(lim));
    let j = -1;
    let slope = 0;
    if (interp) {
      j = lowerBound(F, P, lim);
      slope = f32(1 - f32(f32(F[j]! - lim) / f32(F[j]! - F[j - 1]!)));
    }
    const L = interp ? M + 1 : M;
    if (L < 2) continue; // cannot happen (F[0] = 0 is never allclose to a positive limit)
    const maxIdx = interp ? Math.max(M - 1, j) : M - 1;
    const maxIdxF = f32(maxIdx);
    for (let i = 0; i < M; i++) X[i] = f32(f32(i / maxIdxF) * Km1);
    if (interp) {
      X[M] = f32(f32(j / maxIdxF) * Km1);
      F[M] = F[j]!; // y values of the appended sample (F, Tt are not read past M again)
      Tt[M] = Tt[j]!;
    }
    const qLast = interp ? f32(X[L - 2]! + f32(f32(X[L - 1]! - X[L - 2]!) * slope)) : Km1;
    const sorted = !interp || X[L - 1]! >= X[L - 2]!;

    // Resample at q = 0 … K−2 (monotone walk when x is sorted) and at qLast.
    let ptr = 0;
    for (let q = 0; q < K; q++) {
      const qv = q === K - 1 ? qLast : q;
      let idx: number;
      if (sorted && q < K - 1) {
        while (ptr < L && X[ptr]! < qv) ptr++;
        idx = ptr - 1;
      } else {
        idx = lowerBound(X, L, qv) - 1;
      }
      if (idx < 0) idx = 0;
      else if (idx > L - 2) idx = L - 2;
      const x0 = X[idx]!;
      const den = f32(EPS32 + f32(X[idx + 1]! - x0));
      const dq = f32(qv - x0);
      const f0 = F[idx]!;
      const t0 = Tt[idx]!;
      const yf = f32(f0 + f32(f32(f32(F[idx + 1]! - f0) / den) * dq));
      const yt = f32(t0 + f32(f32(f32(Tt[idx + 1]! - t0) / den) * dq));
      accF[q] = f32(accF[q]! + yf);
      accT[q] = f32(accT[q]! + yt);
    }
  }

  const RF = f32(R);
  for (let q = 0; q < K; q++) {
    accF[q] = f32(accF[q]! / RF);
    accT[q] = f32(accT[q]! / RF);
  }
  let area = 0;
  for (let q = 1; q < K; q++) area += (accF[q]! - accF[q - 1]!) * (accT[q]! + accT[q - 1]!);
  area /= 2;
  return { aupro: f32(f32(area) / accF[K - 1]!), fpr: accF, pro: accT, regions: R, points: K };
}
