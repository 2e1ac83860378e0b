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
 *
 * Two evaluation paths, the same points:
 *
 * - `exact: true` replays the reference in float32: every ROC value, x, slope, interpolated value
 *   and the per-region accumulation is rounded with Math.fround in the reference's order (the
 *   golden curve is reproduced bit for bit). It costs O(K) per region, K ≈ 30 % of the background
 *   pixels for float maps (≈ 1.8 M for 100 maps of 256²), so it is for tests and small sets.
 *
 * - default (sparse): the background scores are sorted once and reduced to their distinct values
 *   with counts; the background part of every region's ROC is shared. Region ℓ's ROC is that
 *   shared list with the region's own values inserted, so with x_i = i·s (s = (K−1)/max I) its
 *   resampled FPR is the straight line q/(N_bg·s) plus corrections that only change at "events":
 *   the region's own points (a flat FPR step and a TPR jump) and tied background values (an FPR
 *   step of c/N_bg instead of 1/N_bg). Each event adds a one-segment ramp and a constant from
 *   there on (difference arrays, float64), so a region costs O(its size + background ties) instead
 *   of O(K). The interp1d arithmetic is the same (the eps32 term included); the results differ
 *   from the float32 replay only by float32 rounding (≲ 1e-6 on AUPRO). The edge case (no
 *   background point with 0 < f ≤ limit) falls back to the float32 replay.
 */
import { label8 } from './components.js';
import { argsortFloat32, sortFloat32, sortTopFloat32 } from './sort.js';

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

export interface AuproOptions {
  /** Replay the reference's float32 arithmetic for every region (O(K) per region). */
  exact?: boolean;
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

/** The sorted inputs shared by every region. */
interface Shared {
  nBg: number;
  nBgF: number; // float32 N_bg
  lim: number; // float32 limit
  /** Background distinct values, descending, and #bg ≥ value (cumulative), as far as needed. */
  bgVal: Float32Array;
  bgCnt: Int32Array;
  /** float32 FPR of each background distinct value. */
  bgF: Float32Array;
  /** Background distinct values with fpr ≤ limit. */
  kLim: number;
  /** Region ℓ's scores: fg[start[ℓ] … start[ℓ+1]) ascending. */
  fg: Float32Array;
  start: Int32Array;
  K: number;
}

/**
 * maps: anomaly scores [n·h·w]; masks: ground truth [n·h·w] (non-zero = defect).
 */
export function aupro(
  maps: ArrayLike<number>,
  masks: ArrayLike<number>,
  n: number,
  h: number,
  w: number,
  fprLimit = 0.3,
  options: AuproOptions = {},
): AuproResult {
  const N = n * h * w;
  if (maps.length !== N) throw new RangeError(`aupro: ${maps.length} scores for ${n}×${h}×${w}`);
  const lim = f32(fprLimit);
  const { labels, count: R, sizes } = label8(masks, n, h, w);
  const nBg = sizes[0]!;

  // Background scores sorted once; region scores sorted once and grouped by label (stable).
  const bgRaw = new Float32Array(nBg);
  const fgRaw = new Float32Array(N - nBg);
  const fgLab = new Int32Array(N - nBg);
  let ib = 0;
  let iff = 0;
  for (let i = 0; i < N; i++) {
    const v = maps[i]!;
    if (v !== v) throw new RangeError(`aupro: score ${i} is NaN`);
    const l = labels[i]!;
    if (l === 0) bgRaw[ib++] = v;
    else {
      fgRaw[iff] = v;
      fgLab[iff++] = l;
    }
  }
  // Only the top of the background is read (down to two FPR levels past the limit): sort that part.
  let bg = sortTopFloat32(bgRaw, Math.min(nBg, Math.ceil(fprLimit * nBg * (1 + 1e-6)) + 2));
  const fgOrder = argsortFloat32(fgRaw);
  const start = new Int32Array(R + 2);
  for (let r = 1; r <= R; r++) start[r + 1] = start[r]! + sizes[r]!;
  const fg = new Float32Array(N - nBg);
  const fgAll = new Float32Array(N - nBg);
  {
    const fill = start.slice();
    for (let k = 0; k < fgOrder.length; k++) {
      const i = fgOrder[k]!;
      fgAll[k] = fgRaw[i]!;
      fg[fill[fgLab[i]!]!++] = fgRaw[i]!;
    }
  }
  const nBgF = f32(nBg);

  // Background distinct values (descending) with cumulative counts, until two FPR levels past the
  // limit (the furthest any region's ROC is read).
  let bgValAll = new Float32Array(bg.length);
  let bgCntAll = new Int32Array(bg.length);
  let nBgD = 0;
  for (let attempt = 0; attempt < 2; attempt++) {
    let firstOver = NaN;
    let reached = false;
    nBgD = 0;
    const top = bg.length - 1;
    let k = top;
    while (k >= 0) {
      const v = bg[k]!;
      while (k >= 0 && bg[k] === v) k--;
      const c = top - k;
      bgValAll[nBgD] = v;
      bgCntAll[nBgD++] = c;
      const f = f32(f32(c) / nBgF);
      if (f > lim) {
        if (firstOver !== firstOver) firstOver = f;
        else if (f > firstOver) {
          reached = true;
          break;
        }
      }
    }
    if (reached || bg.length === nBg) break;
    // the partial sort stopped short (pathological value distribution): sort everything
    bg = sortFloat32(bgRaw);
    bgValAll = new Float32Array(nBg);
    bgCntAll = new Int32Array(nBg);
  }
  const bgVal = bgValAll.subarray(0, nBgD);
  const bgCnt = bgCntAll.subarray(0, nBgD);
  const bgF = new Float32Array(nBgD);
  for (let k = 0; k < nBgD; k++) bgF[k] = f32(f32(bgCnt[k]!) / nBgF);
  let kLim = 0;
  while (kLim < bgF.length && bgF[kLim]! <= lim) kLim++;

  // Global K: distinct values of all pixels with fpr = #bg ≥ v / N_bg ≤ limit, plus the (0, 0) point.
  let K = 1;
  {
    let ia = fgAll.length - 1;
    let kb = 0;
    let fps = 0;
    while (ia >= 0 || kb < nBgD) {
      const va = ia >= 0 ? fgAll[ia]! : -Infinity;
      const vb = kb < nBgD ? bgVal[kb]! : -Infinity;
      const v = va > vb ? va : vb;
      if (kb < nBgD && vb === v) fps = bgCnt[kb++]!;
      while (ia >= 0 && fgAll[ia] === v) ia--;
      if (f32(f32(fps) / nBgF) > lim) break;
      K++;
    }
  }
  if (R === 0 || nBg === 0 || K < 2) {
    return { aupro: NaN, fpr: new Float32Array(K), pro: new Float32Array(K), regions: R, points: K };
  }

  const sh: Shared = { nBg, nBgF, lim, bgVal, bgCnt, bgF, kLim, fg, start, K };
  const useExact = options.exact === true || kLim === 0 || kLim >= bgVal.length;
  const accF32 = new Float32Array(K);
  const accT32 = new Float32Array(K);
  let sumF: Float64Array | undefined;
  let sumT: Float64Array | undefined;
  if (useExact) {
    const replay = new Replay(sh, sizes);
    for (let r = 1; r <= R; r++) replay.region(r, sizes[r]!, accF32, accT32);
  } else {
    const sparse = new Sparse(sh, R);
    sparse.run();
    ({ sumF, sumT } = sparse.finish());
  }

  const RF = f32(R);
  const fpr = new Float32Array(K);
  const pro = new Float32Array(K);
  for (let q = 0; q < K; q++) {
    fpr[q] = f32(f32(sumF ? sumF[q]! : accF32[q]!) / RF);
    pro[q] = f32(f32(sumT ? sumT[q]! : accT32[q]!) / RF);
  }
  let area = 0;
  for (let q = 1; q < K; q++) area += (fpr[q]! - fpr[q - 1]!) * (pro[q]! + pro[q - 1]!);
  area /= 2;
  return { aupro: f32(f32(area) / fpr[K - 1]!), fpr, pro, regions: R, points: K };
}

/** The reference's float32 per-region loop (materialised ROC, interp1d at every q). */
class Replay {
  private F: Float32Array;
  private T: Float32Array;
  private X: Float32Array;
  constructor(
    private sh: Shared,
    sizes: Int32Array,
  ) {
    let maxSize = 0;
    for (let r = 1; r < sizes.length; r++) maxSize = Math.max(maxSize, sizes[r]!);
    const cap = sh.bgVal.length + maxSize + 2;
    this.F = new Float32Array(cap);
    this.T = new Float32Array(cap);
    this.X = new Float32Array(cap);
  }

  region(r: number, m: number, accF: Float32Array, accT: Float32Array): void {
    const { bgVal, bgCnt, nBgF, lim, fg, start, K } = this.sh;
    const { F, T: Tt, X } = this;
    const nBgD = bgVal.length;
    const s0 = start[r]!;
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
    let limR = lim;
    if (F[M - 1]! === 0) {
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
    if (L < 2) return; // F[0] = 0 is never allclose to a positive limit, so L ≥ 2
    const maxIdxF = f32(interp ? Math.max(M - 1, j) : M - 1);
    const Km1 = f32(K - 1);
    for (let i = 0; i < M; i++) X[i] = f32(f32(i / maxIdxF) * Km1);
    if (interp) {
      X[M] = f32(f32(j / maxIdxF) * Km1);
      F[M] = F[j]!;
      Tt[M] = Tt[j]!;
    }
    const qLast = interp ? f32(X[L - 2]! + f32(f32(X[L - 1]! - X[L - 2]!) * slope)) : Km1;
    const sorted = !interp || X[L - 1]! >= X[L - 2]!;
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
      accF[q] = f32(accF[q]! + f32(f0 + f32(f32(f32(F[idx + 1]! - f0) / den) * dq)));
      accT[q] = f32(accT[q]! + f32(t0 + f32(f32(f32(Tt[idx + 1]! - t0) / den) * dq)));
    }
  }
}

/**
 * The sparse path: per region, events only (see the module header). Events are applied block by
 * block over q (each region keeps a cursor), so the difference arrays being written stay in cache.
 */
class Sparse {
  /** Difference arrays over q = 0 … K−2 (index K−1 is accumulated separately). */
  private dF: Float64Array;
  private dT: Float64Array;
  private base = 0; // Σ_r 1/(N_bg·s_r): coefficient of q
  private lastF = 0;
  private lastT = 0;
  /** Background ties among the distinct values 0..kLim: index and extra count (c − 1). */
  private tieK: Int32Array;
  private tieX: Int32Array;
  /** tieX / N_bg, and its prefix sums (tieCum[i] = Σ_{t<i} tieX[t]). */
  private tieDF: Float64Array;
  private tieCum: Float64Array;
  // Distinct region values of every region (descending within a region), flat: bg position,
  // pixel count, tied-to-background flag; region r at [rOff[r], rOff[r+1]).
  private rOff: Int32Array;
  private rNg: Int32Array;
  private rCnt: Int32Array;
  private rTied: Uint8Array;
  // per-region parameters and cursors
  private pS: Float64Array;
  private pL: Int32Array;
  private pInterp: Uint8Array;
  private pInvM: Float64Array;
  private cO: Int32Array;
  private cTi: Int32Array;
  private cRi: Int32Array;
  private cDone: Uint8Array;
  private cCumF: Float64Array;
  private cCumT: Float64Array;
  private cLastDF: Float64Array;
  private cLastDT: Float64Array;

  constructor(
    private sh: Shared,
    private R: number,
  ) {
    const { K, bgCnt, kLim, bgVal, fg, start } = sh;
    this.dF = new Float64Array(K + 2);
    this.dT = new Float64Array(K + 2);
    const top = Math.min(kLim + 1, bgCnt.length);
    const tk = new Int32Array(top);
    const tx = new Int32Array(top);
    let nTies = 0;
    let prevCnt = 0;
    for (let k = 0; k < top; k++) {
      const cnt = bgCnt[k]!;
      if (cnt - prevCnt > 1) {
        tk[nTies] = k;
        tx[nTies++] = cnt - prevCnt - 1;
      }
      prevCnt = cnt;
    }
    this.tieK = tk.subarray(0, nTies);
    this.tieX = tx.subarray(0, nTies);
    this.tieDF = new Float64Array(nTies);
    this.tieCum = new Float64Array(nTies + 1);
    const invNbgC = 1 / sh.nBg;
    for (let t = 0; t < nTies; t++) {
      this.tieDF[t] = tx[t]! * invNbgC;
      this.tieCum[t + 1] = this.tieCum[t]! + tx[t]!;
    }
    const nFg = fg.length;
    this.rOff = new Int32Array(R + 2);
    this.rNg = new Int32Array(nFg);
    this.rCnt = new Int32Array(nFg);
    this.rTied = new Uint8Array(nFg);
    this.pS = new Float64Array(R + 1);
    this.pL = new Int32Array(R + 1);
    this.pInterp = new Uint8Array(R + 1);
    this.pInvM = new Float64Array(R + 1);
    this.cO = new Int32Array(R + 1);
    this.cTi = new Int32Array(R + 1);
    this.cRi = new Int32Array(R + 1);
    this.cDone = new Uint8Array(R + 1);
    this.cCumF = new Float64Array(R + 1);
    this.cCumT = new Float64Array(R + 1);
    this.cLastDF = new Float64Array(R + 1);
    this.cLastDT = new Float64Array(R + 1);
    const nBgD = bgVal.length;
    const { lim, bgF, nBg } = sh;
    const maxF = bgF[kLim - 1]!;
    const interp = !(Math.abs(maxF - lim) <= 1e-8 + 1e-5 * Math.abs(lim));
    let nd = 0;
    for (let r = 1; r <= R; r++) {
      this.rOff[r] = nd;
      const s0 = start[r]!;
      const m = start[r + 1]! - s0;
      let regionOnlyInPrefix = 0;
      for (let k = s0 + m - 1; k >= s0; ) {
        const v = fg[k]!;
        let c = 0;
        while (k >= s0 && fg[k] === v) {
          c++;
          k--;
        }
        let lo = 0;
        let hi = nBgD;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (bgVal[mid]! > v) lo = mid + 1;
          else hi = mid;
        }
        const tied = lo < nBgD && bgVal[lo] === v ? 1 : 0;
        if (!tied && lo <= kLim) regionOnlyInPrefix++;
        this.rNg[nd] = lo;
        this.rCnt[nd] = c;
        this.rTied[nd] = tied;
        nd++;
      }
      // Prefix I = union points with f ≤ limit: (0,0), bg points k < kLim, region-only values
      // above bg point kLim; with interpolation, j = M (the background point kLim) is appended.
      const M = 1 + kLim + regionOnlyInPrefix;
      const L = interp ? M + 1 : M;
      this.pL[r] = L;
      this.pInterp[r] = interp ? 1 : 0;
      this.pS[r] = (K - 1) / (L - 1);
      this.pInvM[r] = 1 / m;
      this.cRi[r] = this.rOff[r]!;
      this.base += 1 / nBg / this.pS[r]!;
    }
    this.rOff[R + 1] = nd;
  }

  /** All regions, block by block over q. */
  run(): void {
    const Kreg = this.sh.K - 2;
    const BLOCK = 16384;
    for (let q0 = 0; q0 <= Kreg; q0 += BLOCK) {
      const q1 = Math.min(q0 + BLOCK, Kreg + 1);
      for (let r = 1; r <= this.R; r++) this.advance(r, q1);
    }
    // events past the regular samples still move the last sample
    for (let r = 1; r <= this.R; r++) this.advance(r, Infinity);
    for (let r = 1; r <= this.R; r++) this.lastSample(r);
  }

  /** Applies region r's events whose first affected sample is below qStop. */
  private advance(r: number, qStop: number): void {
    if (this.cDone[r]) return;
    const { nBg, K } = this.sh;
    const { dF, dT, tieK, tieDF, tieCum, rNg, rCnt, rTied } = this;
    const s = this.pS[r]!;
    const invDen = 1 / (EPS32 + s);
    const invNbg = 1 / nBg;
    const Kreg = K - 2;
    const Lm1 = this.pL[r]! - 1;
    const invM = this.pInvM[r]!;
    const riEnd = this.rOff[r + 1]!;
    const nTies = tieK.length;
    let o = this.cO[r]!;
    let ti = this.cTi[r]!;
    let ri = this.cRi[r]!;
    let cumF = this.cCumF[r]!;
    let cumT = this.cCumT[r]!;
    let lastDF = this.cLastDF[r]!;
    let lastDT = this.cLastDT[r]!;
    let done = false;
    let paused = false;
    while (!done && !paused) {
      const rk = ri < riEnd ? rNg[ri]! : 0x7fffffff;
      // Ties strictly before the next region event: F-only events. The bulk (points ≤ L−2, first
      // sample before the block end) runs in a tight loop; the block bound may be off by one
      // event either way, which only moves that event to the neighbouring block.
      if (ti < nTies && tieK[ti]! < rk) {
        let kMax = rk - 1;
        if (Lm1 - 2 - o < kMax) kMax = Lm1 - 2 - o;
        if (qStop !== Infinity) {
          const kq = Math.floor((qStop - 1) / s) - o;
          if (kq < kMax) kMax = kq;
        }
        // tEnd = first tie with tieK > kMax
        let lo = ti;
        let hi = nTies;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (tieK[mid]! <= kMax) lo = mid + 1;
          else hi = mid;
        }
        const tEnd = lo;
        cumF += (tieCum[tEnd]! - tieCum[ti]!) * invNbg;
        for (; ti < tEnd; ti++) {
          const xa = (tieK[ti]! + o) * s;
          const qa = (xa | 0) + 1;
          const fb = (xa + s) | 0;
          const dFv = tieDF[ti]!;
          if (fb < Kreg && fb >= qa && fb <= qa + 1) {
            // s ≥ 1: one or two samples on the ramp, then the step (the common case)
            const v1 = dFv * (qa - xa) * invDen;
            dF[qa]! += v1;
            if (fb === qa) dF[qa + 1]! += dFv - v1;
            else {
              const v2 = dFv * (qa + 1 - xa) * invDen;
              dF[qa + 1]! += v2 - v1;
              dF[qa + 2]! += dFv - v2;
            }
          } else if (qa <= Kreg) {
            const qEnd = fb < Kreg ? fb : Kreg;
            for (let q = qa; q <= qEnd; q++) {
              const v = dFv * (q - xa) * invDen;
              dF[q]! += v;
              dF[q + 1]! -= v;
            }
            if (fb < Kreg) dF[fb + 1]! += dFv;
          }
        }
        if (ti < nTies && tieK[ti]! < rk) {
          // stopped by the block bound or at the last point L−1
          const p = 1 + tieK[ti]! + o;
          if (p > Lm1) {
            done = true;
            break;
          }
          if (p < Lm1) {
            paused = true;
            break;
          }
          // the tie at the last point L−1
          const xa = (p - 1) * s;
          const qa = Math.floor(xa) + 1;
          if (qa >= qStop) {
            paused = true;
            break;
          }
          const dFv = tieDF[ti]!;
          ti++;
          lastDF = dFv;
          if (qa <= Kreg) {
            const fb = Math.floor(xa + s);
            const qEnd = fb < Kreg ? fb : Kreg;
            for (let q = qa; q <= qEnd; q++) {
              const v = dFv * (q - xa) * invDen;
              dF[q]! += v;
              dF[q + 1]! -= v;
            }
            if (fb < Kreg) dF[fb + 1]! += dFv;
          }
          continue;
        }
      }
      if (done || paused) break;
      if (ri >= riEnd) {
        done = true;
        break;
      }
      // the region event at bg position rk (region-only values come before the background point
      // rk, tied ones coincide with it and carry its tie)
      const p = 1 + rk + o;
      if (p > Lm1) {
        done = true;
        break;
      }
      const xa = (p - 1) * s;
      const qa = Math.floor(xa) + 1;
      if (qa >= qStop) {
        paused = true;
        break;
      }
      let dFv: number;
      if (rTied[ri]) {
        dFv = 0;
        if (ti < nTies && tieK[ti] === rk) dFv = tieDF[ti++]!;
      } else {
        dFv = -invNbg;
        o++;
      }
      const dTv = rCnt[ri]! * invM;
      ri++;
      if (p === Lm1) {
        lastDF = dFv;
        lastDT = dTv;
      } else {
        cumF += dFv;
        cumT += dTv;
      }
      if (qa > Kreg) continue;
      const fb = Math.floor(xa + s);
      const qEnd = fb < Kreg ? fb : Kreg;
      for (let q = qa; q <= qEnd; q++) {
        const wgt = (q - xa) * invDen;
        dF[q]! += dFv * wgt;
        dF[q + 1]! -= dFv * wgt;
        dT[q]! += dTv * wgt;
        dT[q + 1]! -= dTv * wgt;
      }
      if (fb < Kreg) {
        dF[fb + 1]! += dFv;
        dT[fb + 1]! += dTv;
      }
    }
    this.cO[r] = o;
    this.cTi[r] = ti;
    this.cRi[r] = ri;
    this.cCumF[r] = cumF;
    this.cCumT[r] = cumT;
    this.cLastDF[r] = lastDF;
    this.cLastDT[r] = lastDT;
    if (done) this.cDone[r] = 1;
  }

  /** Region r's value at the last sample (position qLast, in segment L−2). */
  private lastSample(r: number): void {
    const { nBg, K, bgF, kLim, lim } = this.sh;
    const s = this.pS[r]!;
    const L = this.pL[r]!;
    const invNbg = 1 / nBg;
    const FL2 = (L - 2) * invNbg + this.cCumF[r]!;
    const TL2 = this.cCumT[r]!;
    let qLast: number;
    if (this.pInterp[r]) {
      const maxF = bgF[kLim - 1]!;
      const Fj = bgF[kLim]!;
      const slope = f32(1 - f32(f32(Fj - lim) / f32(Fj - maxF)));
      qLast = (L - 2) * s + s * slope;
    } else qLast = K - 1;
    const dq = (qLast - (L - 2) * s) / (EPS32 + s);
    this.lastF += FL2 + (invNbg + this.cLastDF[r]!) * dq;
    this.lastT += TL2 + this.cLastDT[r]! * dq;
  }

  finish(): { sumF: Float64Array; sumT: Float64Array } {
    const { K } = this.sh;
    const sumF = new Float64Array(K);
    const sumT = new Float64Array(K);
    let aF = 0;
    let aT = 0;
    for (let q = 0; q < K - 1; q++) {
      aF += this.dF[q]!;
      aT += this.dT[q]!;
      sumF[q] = this.base * q + aF;
      sumT[q] = aT;
    }
    sumF[K - 1] = this.lastF;
    sumT[K - 1] = this.lastT;
    return { sumF, sumT };
  }
}
