/**
 * Special functions for the a-contrario NFA, in float64, written out by hand (no numeric library):
 *
 * - `lgamma(x)`: ln Γ(x) for x > 0 (recurrence up to x ≥ 10, then the Stirling series; about
 *   1e-15 relative).
 * - `erfc(x)`: complementary error function, relative error < 1e-14 on [−3, 26] (checked against
 *   40-digit mpmath): 1 − (positive-term erf series) below 1, the incomplete-gamma continued
 *   fraction Q(1/2, x²) above, with e^{−x²} split so x² adds no rounding error.
 * - `normInv(q)` / `normInvUpper(t)`: Φ⁻¹ (Acklam's rational approximation plus one Halley step on
 *   the exact erfc, so the result is accurate to a few ulp).
 * - `chi2Ppf1(p)`: the p-quantile of χ²₁, = Φ⁻¹((1+p)/2)², computed from the upper tail (1−p)/2.
 * - `logBinomTail(n, q, k)`: ln P(Bin(n, q) ≥ k) for integer k, as a log-sum-exp of the log pmf
 *   (exact log-factorials), so tails far below 1e-300 stay exact in log space; tails above 1/2 go
 *   through log1p(−head) instead.
 * - `log10BinomSf(x, n, q)`: scipy's `binom.logsf(x, n, q) / ln 10` for a real x, i.e.
 *   log10 P(X > floor(x)) = log10 P(X ≥ floor(x)+1).
 * - `logBetaInc(z, a, b)`: ln I_z(a, b), the regularised incomplete beta function (continued
 *   fraction, evaluated in log space).
 * - `log10BinomTailReal(x, n, q)`: the continuous binomial tail used by the NFA "high precision"
 *   mode, log10 I_q(x, n − x + 1). See nfa-block.ts for why this definition.
 */

const LN10 = Math.LN10;
const LN_SQRT_2PI = 0.9189385332046728; // ln √(2π)

/** Cached ln k! for k = 0..; extended on demand (sum of logs: error ≲ k·1e-16 relative to ln k!). */
const logFactCache: number[] = [0, 0];
export function logFactorial(k: number): number {
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`logFactorial: k must be a non-negative integer, got ${k}`);
  if (k > 2000) return lgamma(k + 1);
  while (logFactCache.length <= k) {
    const j = logFactCache.length;
    logFactCache.push(logFactCache[j - 1]! + Math.log(j));
  }
  return logFactCache[k]!;
}

/** ln Γ(x) for x > 0. */
export function lgamma(x: number): number {
  if (!(x > 0)) {
    if (x === 0) return Infinity;
    return NaN;
  }
  if (Number.isInteger(x) && x <= 2001) return logFactorial(x - 1);
  // Shift up to x ≥ 10 with Γ(x) = Γ(x+k) / (x (x+1) ... (x+k−1)).
  let shift = 0;
  let prod = 1;
  while (x < 10) {
    prod *= x;
    x += 1;
    shift++;
  }
  const inv = 1 / x;
  const inv2 = inv * inv;
  // Stirling series: Σ B_2k / (2k (2k−1) x^(2k−1)).
  const series =
    inv *
    (1 / 12 +
      inv2 *
        (-1 / 360 +
          inv2 *
            (1 / 1260 +
              inv2 * (-1 / 1680 + inv2 * (1 / 1188 + inv2 * (-691 / 360360 + inv2 * (1 / 156 + inv2 * (-3617 / 122400))))))));
  const lg = (x - 0.5) * Math.log(x) - x + LN_SQRT_2PI + series;
  return shift > 0 ? lg - Math.log(prod) : lg;
}

/** ln B(a, b). */
export function lbeta(a: number, b: number): number {
  return lgamma(a) + lgamma(b) - lgamma(a + b);
}

const TWO_OVER_SQRT_PI = 1.1283791670955126;
const ONE_OVER_SQRT_PI = 0.5641895835477563;

/** erfc(x) = 1 − erf(x), about 1e-15 relative. */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x < 0) return 2 - erfc(-x);
  if (x === Infinity) return 0;
  // Crossover at 1 (measured against 40-digit mpmath): below it 1 − erf loses < 0.8 digits of a
  // series that is exact to rounding; above it the continued fraction converges in < 200 steps.
  if (x < 1) return 1 - erfSeries(x);
  return erfcGammaCf(x);
}

/** erf(x) = 2/√π · e^{−x²} · Σ_{n≥0} 2ⁿ x^{2n+1} / (1·3·…·(2n+1)) (positive terms). */
function erfSeries(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n < 200; n++) {
    term *= (2 * x2) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return TWO_OVER_SQRT_PI * Math.exp(-x2) * sum;
}

/**
 * erfc(x) = Q(1/2, x²), the regularised upper incomplete gamma function, by its Legendre
 * continued fraction (modified Lentz): Q(a, y) = e^{−y} y^a / Γ(a) · 1/(y+1−a − 1(1−a)/(y+3−a − …)).
 * With a = 1/2: y^a / Γ(a) = x / √π. Converges for every x > 0, quickly once x ≳ 1.
 */
function erfcGammaCf(x: number): number {
  const tiny = 1e-300;
  const a = 0.5;
  const y = x * x;
  let b = y + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 5000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return expMinusSquare(x) * x * ONE_OVER_SQRT_PI * h;
}

/** e^{−x²} without the rounding error of x² (x = xh + xl with xh² exact). */
function expMinusSquare(x: number): number {
  const xh = Math.round(x * 65536) / 65536;
  return Math.exp(-xh * xh) * Math.exp(-(x - xh) * (x + xh));
}

/** Upper normal tail Φ̄(x) = P(N(0,1) > x). */
export function normSf(x: number): number {
  return 0.5 * erfc(x / Math.SQRT2);
}

/** Normal CDF Φ(x). */
export function normCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

// Acklam's coefficients for the inverse normal CDF (relative error < 1.15e-9 before refinement).
const A = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
const B = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
const Cc = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
const D = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];

function acklam(q: number): number {
  const plow = 0.02425;
  if (q < plow) {
    const s = Math.sqrt(-2 * Math.log(q));
    return (((((Cc[0]! * s + Cc[1]!) * s + Cc[2]!) * s + Cc[3]!) * s + Cc[4]!) * s + Cc[5]!) / ((((D[0]! * s + D[1]!) * s + D[2]!) * s + D[3]!) * s + 1);
  }
  if (q > 1 - plow) return -acklam(1 - q);
  const u = q - 0.5;
  const r = u * u;
  return (
    ((((((A[0]! * r + A[1]!) * r + A[2]!) * r + A[3]!) * r + A[4]!) * r + A[5]!) * u) /
    (((((B[0]! * r + B[1]!) * r + B[2]!) * r + B[3]!) * r + B[4]!) * r + 1)
  );
}

/** x with Φ̄(x) = t (upper-tail quantile), t in (0, 1); accurate in the far tail too. */
export function normInvUpper(t: number): number {
  if (!(t > 0 && t < 1)) {
    if (t === 0) return Infinity;
    if (t === 1) return -Infinity;
    return NaN;
  }
  let x = -acklam(t);
  // Halley steps on f(x) = Φ̄(x) − t: f' = −φ, f'' = xφ ⇒ x ← x + u / (1 − x u / 2), u = f/φ.
  for (let it = 0; it < 2; it++) {
    const e = normSf(x) - t;
    const phi = Math.exp(-0.5 * x * x - LN_SQRT_2PI);
    const u = e / phi;
    x = x + u / (1 - (x * u) / 2);
  }
  return x;
}

/** Φ⁻¹(q). */
export function normInv(q: number): number {
  return q > 0.5 ? normInvUpper(1 - q) : -normInvUpper(q);
}

/** p-quantile of the χ² distribution with 1 degree of freedom: Φ⁻¹((1+p)/2)². */
export function chi2Ppf1(p: number): number {
  if (p === 0) return 0;
  const x = normInvUpper((1 - p) / 2);
  return x * x;
}

/** ln of the Bin(n, q) pmf at integer k. */
export function logBinomPmf(n: number, q: number, k: number): number {
  if (k < 0 || k > n) return -Infinity;
  const lq = k === 0 ? 0 : Math.log(q);
  const l1q = n - k === 0 ? 0 : Math.log1p(-q);
  return logFactorial(n) - logFactorial(k) - logFactorial(n - k) + k * lq + (n - k) * l1q;
}

/**
 * ln P(Bin(n, q) ≥ k) for integer k, in log space. When the tail holds most of the mass the
 * head P(X < k) is summed instead and the result is log1p(−head), so small |ln| stay exact too.
 */
export function logBinomTail(n: number, q: number, k: number): number {
  if (k <= 0) return 0;
  if (k > n) return -Infinity;
  const mean = n * q;
  if (k <= mean) {
    // Head P(X ≤ k−1) is at most ~1/2 here (k ≤ mean): sum it directly (no cancellation).
    let head = 0;
    for (let j = 0; j < k; j++) head += Math.exp(logBinomPmf(n, q, j));
    if (head < 0.5) return Math.log1p(-head);
  }
  let max = -Infinity;
  for (let j = k; j <= n; j++) max = Math.max(max, logBinomPmf(n, q, j));
  if (max === -Infinity) return -Infinity;
  let s = 0;
  for (let j = k; j <= n; j++) s += Math.exp(logBinomPmf(n, q, j) - max);
  return max + Math.log(s);
}

/** scipy `binom.logsf(x, n, q) / ln 10` for real x ≥ 0: log10 P(X ≥ floor(x) + 1). */
export function log10BinomSf(x: number, n: number, q: number): number {
  return logBinomTail(n, q, Math.floor(x) + 1) / LN10;
}

/**
 * Table of `log10BinomSf` at the integers k = 0..n (so at real x, use table[floor(x)]).
 * The block NFA only needs these n + 1 values per (window, p).
 */
export function log10BinomSfTable(n: number, q: number): Float64Array {
  const t = new Float64Array(n + 1);
  for (let k = 0; k <= n; k++) t[k] = logBinomTail(n, q, k + 1) / LN10;
  return t;
}

/** Continued fraction for I_z(a, b) (Numerical-Recipes form), modified Lentz. */
function betaCf(z: number, a: number, b: number): number {
  const tiny = 1e-300;
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * z) / qap;
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * z) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * z) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 2e-16) break;
  }
  return h;
}

/** ln I_z(a, b), the regularised incomplete beta function, a, b > 0, z in [0, 1]. */
export function logBetaInc(z: number, a: number, b: number): number {
  if (!(a > 0 && b > 0) || !(z >= 0 && z <= 1)) return NaN;
  if (z === 0) return -Infinity;
  if (z === 1) return 0;
  const lnFront = a * Math.log(z) + b * Math.log1p(-z) - lbeta(a, b);
  if (z < (a + 1) / (a + b + 2)) {
    return lnFront + Math.log(betaCf(z, a, b)) - Math.log(a);
  }
  // I_z(a, b) = 1 − I_{1−z}(b, a); the subtracted term is < ~1/2 here.
  const lnComp = lnFront + Math.log(betaCf(1 - z, b, a)) - Math.log(b);
  return Math.log1p(-Math.exp(lnComp));
}

/**
 * log10 of the continuous binomial tail T(x) = I_q(x, n − x + 1) for real x in [0, n]
 * (T(0) = 1, T(k) = P(Bin(n, q) ≥ k) at every integer k, strictly decreasing, smooth).
 */
export function log10BinomTailReal(x: number, n: number, q: number): number {
  if (!(x > 0)) return 0;
  if (x > n) return -Infinity;
  return logBetaInc(q, x, n - x + 1) / LN10;
}
