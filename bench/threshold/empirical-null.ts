/**
 * A measured alternative to the product's calibration (models/scores/nfa-calibrated.ts), kept
 * for bench/threshold/variants.ts so that its figures can be reproduced: an empirical null for
 * the tree's region statistic. It was not chosen: with ε = 1 it allows about one false detection
 * per normal image, as it promises, and each good image with one costs mIoU a whole image
 * (README, "How the threshold is set").
 *
 * Below, the design as it was written for it.
 *
 * Why. The paper's NFA assumes the flow's latents are i.i.d. N(0, 1). An undertrained flow, or a
 * backbone with few channels, breaks that in both directions: latents wider than N(0, 1) make the
 * whole image "significant" (false alarms everywhere), and the tree variant's number of tests
 * (~10^2493 candidate regions at 64×64) cannot be beaten by 8–32 channels (no detection at all).
 *
 * The candidates. The tree variant's own regions (spec/nfa.md §2): per level s, the clusters that
 * its prune/merge procedure keeps from the component tree of the per-pixel energy, each with its
 * Chernoff log-probability ℓ(R) ≤ 0, computed on latents standardised with the held-out images'
 * per-channel moments, and with the guard ℓ = 0 where u ≤ 1 (the bound is invalid there, and low
 * energy is no evidence of an anomaly). The regions follow the level sets of the energy, so a
 * detection has the shape of what is unusual (a window statistic instead dilates every strong
 * defect by its window: measured, see the README).
 *
 * The null. ℓ is used as a statistic only, not as a probability. For a cluster of evidence
 * y = −ℓ at level s, λ_s(y) = (1 + #{level-s clusters of the n held-out images with evidence
 * ≥ y}) / (n + 1): the expected number of clusters at least this extreme on a normal image,
 * counted as a conformal p-value counts (the tested image's own cluster included), with no model
 * of the latents at all. Beyond every held-out cluster, λ_s = 1/(n + 1) times the decay of
 * the rate λ_s(y) of clusters per normal image from there (fitted on all held-out clusters: a
 * generalised Pareto tail in ln y, method of moments, shape ξ clamped to [0, 0.45]), so that the
 * −log NFA map keeps ranking the strongest detections.
 *
 * The NFA. NFA(R) = S · λ_s(−ℓ(R)) over the S levels: at NFA < 1 each level allows 1/S false
 * detection per normal image in expectation, one in all. Per level it is painted on the
 * cluster's pixels (elsewhere λ_s(0)), upsampled to T×T (bilinear, as the tree variant) and the
 * minimum over levels taken. A detection is log NFA < 0, as in the paper: under the fitted null a
 * normal image has on average at most one falsely detected region. The count rests only on the
 * fit; no Gaussian, independence or χ² assumption remains.
 */
import { bilinearHalfPixel } from '../../models/scores/resize64.js';
import { latentDims, type Latent } from '../../models/scores/latent.js';
import { treeLog10ProbMap, TreeNfaWorkspace } from '../../models/scores/nfa-tree.js';

export const CALIBRATION_VERSION = 4;

/**
 * The null of one level's cluster statistic −ℓ > 0: λ(−ℓ) = mean clusters per normal image at least
 * as extreme. Values, u and the tail are in y = ln(−ℓ).
 */
export interface TailFit {
  /** Clusters with −ℓ > 0 on the held-out images. */
  n: number;
  /** Ascending y values and log10 λ at them (the empirical part). */
  values: number[];
  logRate: number[];
  /** The tail starts at u, where log10 λ(u) = logTail. */
  u: number;
  logTail: number;
  /** Generalised Pareto tail of the excesses y − u: shape ξ ≥ 0 and scale σ. */
  xi: number;
  sigma: number;
}

export interface LevelFit {
  h: number;
  w: number;
  channels: number;
  /** Channels standardised one by one (else one pooled scale). */
  perChannel: boolean;
  mean: number[];
  std: number[];
  /** The decay of the cluster evidence beyond the held-out images' maxima. */
  clusters: TailFit;
  /** The held-out images' clusters' −ℓ, descending (the most extreme 64 per image at most). */
  extremes: number[];
}

export interface NullFit {
  version: number;
  method: 'tree-regions-empirical-null';
  /** Held-out images it was fitted on. */
  images: number;
  levels: LevelFit[];
  /** log10 S (the union over levels). */
  logNT: number;
}

/**
 * The scale of a level's latents over all images, positions and channels (no centring): z is
 * divided by it before the tree's regions are computed.
 */
function channelMoments(zs: readonly Latent[]): { mean: Float64Array; std: Float64Array; perChannel: boolean } {
  const C = zs[0]!.shape[3];
  const sum = new Float64Array(C);
  const sq = new Float64Array(C);
  let n = 0;
  for (const z of zs) {
    const d = z.data;
    for (let i = 0; i < d.length; i += C) {
      for (let c = 0; c < C; c++) {
        const v = d[i + c]!;
        sum[c] += v;
        sq[c] += v * v;
      }
      n++;
    }
  }
  const mean = new Float64Array(C);
  const std = new Float64Array(C);
  // Per-channel moments would be fitted on the very images whose maxima set the p-values, which
  // breaks their exchangeability with unseen images (measured: up to 1.9 false alarms per image
  // on synthetic latents where the pooled scale gives 0.6); one pooled scale per level is
  // practically free of that bias.
  const perChannel = false;
  if (!perChannel) {
    let all = 0;
    for (let c = 0; c < C; c++) all += sq[c]!;
    std.fill(Math.sqrt(Math.max(all / (n * C), 1e-12)));
    return { mean, std, perChannel };
  }
  for (let c = 0; c < C; c++) {
    mean[c] = sum[c]! / n;
    const v = sq[c]! / n - mean[c]! * mean[c]!;
    std[c] = Math.sqrt(Math.max(v, 1e-12));
  }
  return { mean, std, perChannel };
}

/** Latents standardised with a level's moments. */
function standardise(z: Latent, L: Pick<LevelFit, 'mean' | 'std' | 'channels'>): Latent {
  const C = L.channels;
  const d = new Float32Array(z.data.length);
  for (let i = 0; i < d.length; i++) {
    const c = i % C;
    d[i] = (z.data[i]! - L.mean[c]!) / L.std[c]!;
  }
  return { data: d, shape: [...z.shape] as Latent['shape'] };
}

/** The guarded tree's ℓ map of every image of a (standardised) level batch: [B][h·w], NaN off the clusters. */
function clusterMaps(z: Latent, ws: TreeNfaWorkspace): Float32Array[] {
  const B = z.shape[0];
  return Array.from({ length: B }, (_, b) => Float32Array.from(treeLog10ProbMap(z, b, ws, undefined, true)));
}

/** The clusters' y = −ℓ > 0 of one map (a cluster is painted with its own ℓ). */
function clusterValues(map: Float32Array): number[] {
  const seen = new Set<number>();
  for (let i = 0; i < map.length; i++) {
    const v = map[i]!;
    if (v < 0) seen.add(-v);
  }
  return [...seen];
}

/** Fits λ(y) from the clusters of `images` normal images. */
export function fitClusterTail(ys: number[], images: number): TailFit {
  const n = ys.length;
  // In log y: the clusters' evidence (area × energy) is heavy-tailed; its logarithm is not.
  const desc = ys.map((y) => Math.log(y)).sort((a, b) => b - a);
  if (n < 3) {
    // Hardly any cluster on normal images: anything with evidence is rarer than 1/images per image.
    const u = desc[n - 1] ?? 0;
    return { n, values: [], logRate: [], u, logTail: Math.log10((n + 1) / images), xi: 0, sigma: 1 };
  }
  const k = Math.min(n, Math.max(10, Math.round(0.1 * n)));
  const u = desc[k - 1]!;
  let m = 0;
  for (let i = 0; i < k - 1; i++) m += desc[i]! - u;
  m /= Math.max(1, k - 1);
  let v = 0;
  for (let i = 0; i < k - 1; i++) v += (desc[i]! - u - m) ** 2;
  v /= Math.max(1, k - 2);
  let xi = v > 0 ? 0.5 * (1 - (m * m) / v) : 0;
  xi = Math.min(Math.max(xi, 0), 0.45);
  const sigma = Math.max(m * (1 - xi), 1e-3);
  // Empirical part, ascending in y: λ(desc[i]) = (i + 2)/images, thinned to ~64 points. The
  // count is the held-out clusters at least as extreme plus one (the test image's own, as a
  // conformal p-value counts it): with few held-out images the threshold then sits beyond what
  // they showed rather than at it.
  const values: number[] = [];
  const logRate: number[] = [];
  const step = Math.max(1, Math.floor((n - k) / 64));
  const idx: number[] = [];
  for (let i = n - 1; i > k - 1; i -= step) idx.push(i);
  idx.push(k - 1);
  for (const i of idx) {
    values.push(desc[i]!);
    logRate.push(Math.log10((i + 2) / images));
  }
  return { n, values, logRate, u, logTail: Math.log10((k + 1) / images), xi, sigma };
}

/** log10 λ(y): the mean number of clusters per normal image at least as extreme. */
export function log10Rate(f: TailFit, evidence: number): number {
  const y = evidence > 0 ? Math.log(evidence) : -Infinity;
  if (y > f.u) {
    const t = (y - f.u) / f.sigma;
    return f.logTail + (f.xi > 1e-9 ? -(1 / f.xi) * Math.log10(1 + f.xi * t) : -t / Math.LN10);
  }
  const v = f.values;
  if (!v.length) return f.logTail;
  if (y <= v[0]!) return f.logRate[0]!;
  let lo = 0;
  let hi = v.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (v[mid]! <= y) lo = mid;
    else hi = mid;
  }
  const a = v[lo]!;
  const b = v[hi]!;
  const t = b > a ? (y - a) / (b - a) : 1;
  return f.logRate[lo]! + t * (f.logRate[hi]! - f.logRate[lo]!);
}

/**
 * Fits the null on the latents of held-out normal images: `levels[s]` holds that level's latents
 * (any number of batches of [B, h_s, w_s, C_s]).
 */
export function fitNull(levels: readonly (readonly Latent[])[]): NullFit {
  if (!levels.length || levels.some((l) => l.length === 0)) throw new RangeError('calibration: no held-out latents');
  let images = 0;
  for (const z of levels[0]!) images += z.shape[0];
  const ws = new TreeNfaWorkspace();
  const fits: LevelFit[] = levels.map((zs, s) => {
    const [, h, w, C] = latentDims(zs[0]!, `level ${s}`);
    for (const z of zs) {
      const [, h2, w2, c2] = latentDims(z, `level ${s}`);
      if (h2 !== h || w2 !== w || c2 !== C) throw new RangeError(`calibration: level ${s} latents of different shapes (${h}×${w}×${C} and ${h2}×${w2}×${c2})`);
    }
    const { mean, std, perChannel } = channelMoments(zs);
    const L = { h, w, channels: C, perChannel, mean: Array.from(mean), std: Array.from(std) };
    const ys: number[] = [];
    const extremes: number[] = [];
    for (const z of zs) {
      for (const map of clusterMaps(standardise(z, L), ws)) {
        const v = clusterValues(map).sort((a, b) => b - a);
        ys.push(...v);
        extremes.push(...v.slice(0, 64));
      }
    }
    extremes.sort((a, b) => b - a);
    return { ...L, clusters: fitClusterTail(ys, images), extremes };
  });
  return { version: CALIBRATION_VERSION, method: 'tree-regions-empirical-null', images, levels: fits, logNT: Math.log10(fits.length) };
}

/** Checks that latents fit a null's levels (shape per level). */
function checkFit(fit: NullFit, z: readonly Latent[]): void {
  if (z.length !== fit.levels.length) throw new RangeError(`calibration: fitted on ${fit.levels.length} levels, got ${z.length}`);
  z.forEach((zi, s) => {
    const [, h, w, C] = latentDims(zi, `z[${s}]`);
    const L = fit.levels[s]!;
    if (h !== L.h || w !== L.w || C !== L.channels) throw new RangeError(`calibration: level ${s} was fitted at ${L.h}×${L.w}×${L.channels}, got ${h}×${w}×${C}: recalibrate the run`);
  });
}

/**
 * log10 of the expected number of clusters at least this extreme on a normal image, counted as a
 * conformal p-value counts: (1 + #{held-out clusters ≥ it}) / (n + 1) for n held-out images;
 * beyond every held-out cluster, 1/(n + 1) times the decay of the cluster rate λ from there.
 */
export function log10PValue(L: LevelFit, evidence: number, images: number): number {
  const M = L.extremes;
  let c = 0;
  while (c < M.length && M[c]! >= evidence) c++;
  if (c > 0 || !(evidence > 0)) return Math.log10((1 + (evidence > 0 ? c : Math.max(c, images))) / (images + 1));
  const top = M[0] ?? 0;
  const decay = top > 0 ? log10Rate(L.clusters, evidence) - log10Rate(L.clusters, top) : log10Rate(L.clusters, evidence) - L.clusters.logTail;
  return Math.log10(1 / (images + 1)) + Math.min(0, decay);
}

/** log10 NFA per latent pixel of one level: [B·h·w] (log10 S + log10 p_s(−ℓ)). */
export function calibratedLog10NfaLevel(fit: NullFit, s: number, z: Latent, ws = new TreeNfaWorkspace()): Float64Array {
  const L = fit.levels[s]!;
  const maps = clusterMaps(standardise(z, L), ws);
  const per = L.h * L.w;
  const out = new Float64Array(maps.length * per);
  const off = fit.logNT + log10PValue(L, 0, fit.images);
  maps.forEach((m, b) => {
    const cache = new Map<number, number>();
    for (let i = 0; i < per; i++) {
      const v = m[i]!;
      if (!(v < 0)) {
        out[b * per + i] = off;
        continue;
      }
      let r = cache.get(v);
      if (r === undefined) {
        r = fit.logNT + log10PValue(L, -v, fit.images);
        cache.set(v, r);
      }
      out[b * per + i] = r;
    }
  });
  return out;
}

/** −log10 NFA of the calibrated detection: [B·T·T] float32 (row-major per image). Detection: > 0. */
export function negLogNfaCalibrated(fit: NullFit, z: readonly Latent[], targetSize = 256): Float32Array {
  checkFit(fit, z);
  const B = z[0]!.shape[0];
  const T = targetSize;
  const TT = T * T;
  const min = new Float64Array(B * TT).fill(Infinity);
  const ws = new TreeNfaWorkspace();
  z.forEach((zi, s) => {
    const [, h, w] = zi.shape;
    const up = bilinearHalfPixel(calibratedLog10NfaLevel(fit, s, zi, ws), B, h, w, T, T);
    for (let i = 0; i < up.length; i++) if (up[i]! < min[i]!) min[i] = up[i]!;
  });
  const out = new Float32Array(B * TT);
  for (let i = 0; i < out.length; i++) out[i] = -min[i]!;
  return out;
}
