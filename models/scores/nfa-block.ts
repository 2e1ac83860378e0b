/**
 * Block (binomial-window) a-contrario NFA: official `src/nfa_block.py`
 * (`compute_log_nfa_anomaly_score`), spec/nfa.md §1. Pure float64 TypeScript on NHWC typed arrays.
 *
 * For each scale s (0 = finest) with z_s of shape [B, h, w, C]:
 *   τ = chi2.ppf(p, 1); r = max(⌊(win/2^s) / 2⌋, 1); K = # of window entries (reflect-padded z²,
 *   (2r+1)² window, every channel) with z² ≥ τ; x = ΣK / C (real); n = (2r+1)²;
 *   L_s = log10 P(Bin(n, 1−p) > ⌊x⌋)   (scipy `binom.logsf(x, n, 1−p)/ln 10`),
 * then every L_s is upsampled (bicubic, align_corners=True, float64) to T×T and summed;
 * logNT = log10(Σ_s h_s w_s) (PyTorch takes log10 of an int64 sum, which is float32: we round
 * it the same way); score = −(logNT + Σ_s L_s↑). Detection: score > 0.
 *
 * Precision notes:
 * - The reference compares the float32 z² with τ in float32 (NumPy 1.x casts the float64 scalar
 *   to the array's dtype), so the comparison here is fround(z·z) ≥ fround(τ).
 * - ⌊x⌋ = ⌊ΣK / C⌋ is exact (an integer quotient); the tail is a table of n+1 log-space values.
 * - A window where every entry passes gives x = n and L_s = log10 P(X > n) = −∞ (score +∞),
 *   exactly as scipy does.
 *
 * High precision (`highPrecision: true`). The official code integrates a continuous relaxation
 * of the pmf, ∫_x^n Γ-binomial(n,k) (1−p)^k p^(n−k) dk, numerically (mpmath + quad). That is not a
 * probability of anything and it is slow. We use instead the standard continuous extension of the
 * binomial tail, computed exactly in log space:
 *   T(x) = I_{1−p}(x, n − x + 1)   (regularised incomplete beta; T(0) = 1),
 * the identity P(Bin(n, q) ≥ k) = I_q(k, n − k + 1) extended to real k. Properties (tested):
 *   - at every integer k, T(k) = P(Bin(n, 1−p) ≥ k) exactly (the a-contrario "at least k
 *     observed" tail, without scipy's off-by-one of P(X > k));
 *   - T is continuous and strictly decreasing in x, so a fractional x = ΣK/C is not floored;
 *   - bracket with the low-precision value: LP(x) ≤ log10 T(x) ≤ LP(x − 1) for x ≥ 1, and
 *     LP(x) ≤ log10 T(x) ≤ 0 for x < 1 (LP(x) = log10 P(X ≥ ⌊x⌋+1));
 *   - the reference's integral lies in the same bracket (checked by quadrature in the unit test).
 * It is computed by a continued fraction in log space, so values far below 1e-300 are exact.
 */
import { chi2Ppf1, log10BinomSfTable, log10BinomTailReal } from './binomial.js';
import { bicubicAlignCorners } from './resize64.js';
import { latentDims, type Latent } from './latent.js';
import { toHW, type SizeInput } from '../size.js';

export type { Latent } from './latent.js';

export interface BlockNfaOptions {
  /** Window size at the finest scale (official default 5). */
  winSize?: number;
  /** Binomial probability threshold p (official default 0.9). */
  p?: number;
  /** Output size: T (maps are T×T) or [Th, Tw]; default 256. */
  targetSize?: SizeInput;
  /** Continuous exact tail instead of scipy's discrete logsf (see the module header). */
  highPrecision?: boolean;
}

/** r = max(int((winSize / 2^scale) // 2), 1). */
export function blockHalfWindow(winSize: number, scale: number): number {
  const win = winSize / 2 ** scale;
  return Math.max(Math.floor(win / 2), 1);
}

/** τ = chi2.ppf(p, 1) (float64; accurate to an ulp or so). */
export function blockTau(p: number): number {
  return chi2Ppf1(p);
}

function reflect(i: number, size: number): number {
  if (i < 0) return -i;
  if (i >= size) return 2 * (size - 1) - i;
  return i;
}

/**
 * ΣK per pixel: over the (2r+1)² reflect-padded window and all channels, the number of entries
 * with z² ≥ τ (compared in float32). Returns [B·h·w] integers.
 */
export function blockCandidateCounts(z: Latent, halfWin: number, tau: number): Int32Array {
  const [B, h, w, C] = latentDims(z);
  if (halfWin >= h || halfWin >= w) {
    throw new RangeError(`block NFA: reflect padding ${halfWin} needs a latent larger than ${halfWin}×${halfWin}, got ${h}×${w}`);
  }
  const tau32 = Math.fround(tau);
  const data = z.data;
  const perPixel = new Int32Array(h * w);
  const out = new Int32Array(B * h * w);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < h * w; i++) {
      const base = (b * h * w + i) * C;
      let cnt = 0;
      for (let c = 0; c < C; c++) {
        const v = data[base + c]!;
        if (Math.fround(v * v) >= tau32) cnt++;
      }
      perPixel[i] = cnt;
    }
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let s = 0;
        for (let dy = -halfWin; dy <= halfWin; dy++) {
          const row = reflect(y + dy, h) * w;
          for (let dx = -halfWin; dx <= halfWin; dx++) s += perPixel[row + reflect(x + dx, w)]!;
        }
        out[(b * h + y) * w + x] = s;
      }
    }
  }
  return out;
}

const sfTables = new Map<string, Float64Array>();
function sfTable(n: number, q: number): Float64Array {
  const key = `${n}:${q}`;
  let t = sfTables.get(key);
  if (!t) {
    t = log10BinomSfTable(n, q);
    sfTables.set(key, t);
  }
  return t;
}

/**
 * L_s for one scale: [B·h·w] float64, log10 of the binomial tail (before upsampling).
 * `scale` is the scale index (0 = finest); it sets the window.
 */
export function blockLog10ProbScale(z: Latent, scale: number, opts: BlockNfaOptions = {}): Float64Array {
  const winSize = opts.winSize ?? 5;
  const p = opts.p ?? 0.9;
  const C = latentDims(z)[3];
  const r = blockHalfWindow(winSize, scale);
  const n = (2 * r + 1) ** 2;
  const counts = blockCandidateCounts(z, r, blockTau(p));
  const q = 1 - p;
  const out = new Float64Array(counts.length);
  if (!opts.highPrecision) {
    const table = sfTable(n, q);
    for (let i = 0; i < counts.length; i++) out[i] = table[Math.floor(counts[i]! / C)]!;
  } else {
    const cache = new Map<number, number>();
    for (let i = 0; i < counts.length; i++) {
      const k = counts[i]!;
      let v = cache.get(k);
      if (v === undefined) {
        v = log10BinomTailReal(k / C, n, q);
        cache.set(k, v);
      }
      out[i] = v;
    }
  }
  return out;
}

/** log10(Σ_s h_s w_s), rounded to float32 as the reference (log10 of an int64 tensor). */
export function blockLogNT(z: Latent[]): number {
  let total = 0;
  for (const zi of z) total += zi.shape[1] * zi.shape[2];
  return Math.fround(Math.log10(total));
}

/**
 * −log10 NFA of the block variant: [B·Th·Tw] float64 (row-major per image). Detection: > 0.
 */
export function negLogNfaBlock(z: Latent[], opts: BlockNfaOptions = {}): Float64Array {
  if (z.length === 0) throw new RangeError('block NFA: no latents');
  const [Th, Tw] = toHW(opts.targetSize ?? 256, 'block NFA target size');
  const B = latentDims(z[0]!, 'z[0]')[0];
  const sum = new Float64Array(B * Th * Tw);
  z.forEach((zi, s) => {
    const [b, h, w] = latentDims(zi, `z[${s}]`);
    if (b !== B) throw new RangeError(`block NFA: z[${s}] has batch ${b}, z[0] has ${B}`);
    const L = blockLog10ProbScale(zi, s, opts);
    const up = bicubicAlignCorners(L, B, h, w, Th, Tw);
    for (let i = 0; i < sum.length; i++) sum[i]! += up[i]!;
  });
  const logNT = blockLogNT(z);
  for (let i = 0; i < sum.length; i++) sum[i] = -(logNT + sum[i]!);
  return sum;
}
