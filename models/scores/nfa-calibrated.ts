/**
 * Calibrated a-contrario detection: the paper's tree NFA (spec/nfa.md §2) under a null hypothesis
 * fitted to this model on held-out normal images, instead of N(0, I).
 *
 * Why. The paper's NFA assumes the flow's latents are i.i.d. N(0, 1). An undertrained flow breaks
 * that: latents wider than N(0, 1) give every large region of the image Chernoff evidence, and the
 * whole image is "detected" (measured: an 8-epoch demo model flags 100 % of every good image's
 * pixels). The bound is also used where it is not valid (u ≤ 1, §2.3), so a region of unusually
 * *low* energy counts as evidence too.
 *
 * The fit, per level s:
 *  - scale: σ_s² = the mean of z² over the held-out images' latents of that level (all positions
 *    and channels: one number, so that a handful of held-out images estimates it well; per-channel
 *    moments were measured and gave the same mIoU on the shared datasets, with C parameters to
 *    estimate per level instead of one). The tree then runs on z / σ_s: under the fitted null the
 *    latents are N(0, 1) again in the sense the bound needs;
 *  - guard: ℓ(R) = 0 where u ≤ 1 (no evidence from low energy; where the bound is not valid).
 * The number of tests, the Chernoff bound and the prune/merge procedure are the paper's, so
 * log NFA keeps the paper's meaning: a bound on the expected number of false detections per image.
 *
 * Then an empirical check on the same held-out images: if, even so, a held-out (known normal)
 * image has a detection, the threshold moves past it: `offset` = the largest −log NFA seen on the
 * held-out images (0 when none is detected, the usual case), subtracted from every map. The fit
 * records it, so a user sees when the theory needed the correction.
 */
import { latentDims, type Latent } from './latent.js';
import { negLogNfaTree, TreeNfaWorkspace } from './nfa-tree.js';

export const CALIBRATION_VERSION = 5;

export interface LevelFit {
  h: number;
  w: number;
  channels: number;
  /** σ_s: the RMS of the held-out latents of this level. */
  scale: number;
}

export interface NullFit {
  version: number;
  method: 'tree-held-out-scale';
  /** Held-out images it was fitted on. */
  images: number;
  levels: LevelFit[];
  /** Per held-out image, its largest −log10 NFA after scaling (before the offset). */
  heldOutMax: number[];
  /** Subtracted from −log10 NFA: max(0, max heldOutMax). */
  offset: number;
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

/** Latents divided by their level's fitted scale. */
export function standardiseLatents(fit: Pick<NullFit, 'levels'>, z: readonly Latent[]): Latent[] {
  return z.map((zi, s) => {
    const inv = 1 / fit.levels[s]!.scale;
    return { data: zi.data.map((v) => v * inv), shape: [...zi.shape] as Latent['shape'] };
  });
}

/** −log10 NFA of the tree variant on scaled latents with the guard, before the offset: [B·T·T]. */
function scaledTree(fit: Pick<NullFit, 'levels'>, z: readonly Latent[], T: number, ws: TreeNfaWorkspace): Float32Array {
  return negLogNfaTree(standardiseLatents(fit, z), T, ws, true);
}

/**
 * Fits the null on the latents of held-out normal images: `levels[s]` holds that level's latents
 * (any number of batches of [B, h_s, w_s, C_s]).
 */
export function fitNull(levels: readonly (readonly Latent[])[], targetSize = 256): NullFit {
  if (!levels.length || levels.some((l) => l.length === 0)) throw new RangeError('calibration: no held-out latents');
  const fits: LevelFit[] = levels.map((zs, s) => {
    const [, h, w, C] = latentDims(zs[0]!, `level ${s}`);
    let sq = 0;
    let n = 0;
    for (const z of zs) {
      const [, h2, w2, c2] = latentDims(z, `level ${s}`);
      if (h2 !== h || w2 !== w || c2 !== C) throw new RangeError(`calibration: level ${s} latents of different shapes (${h}×${w}×${C} and ${h2}×${w2}×${c2})`);
      for (let i = 0; i < z.data.length; i++) sq += z.data[i]! * z.data[i]!;
      n += z.data.length;
    }
    return { h, w, channels: C, scale: Math.sqrt(Math.max(sq / n, 1e-12)) };
  });
  const ws = new TreeNfaWorkspace();
  const heldOutMax: number[] = [];
  const T = targetSize;
  const batches = levels[0]!.length;
  for (let k = 0; k < batches; k++) {
    const z = levels.map((l) => l[k]!);
    const m = scaledTree({ levels: fits }, z, T, ws);
    for (let b = 0; b < z[0]!.shape[0]; b++) {
      let mx = -Infinity;
      for (let i = b * T * T; i < (b + 1) * T * T; i++) if (m[i]! > mx) mx = m[i]!;
      heldOutMax.push(mx);
    }
  }
  const offset = Math.max(0, ...heldOutMax.filter((v) => Number.isFinite(v)));
  return { version: CALIBRATION_VERSION, method: 'tree-held-out-scale', images: heldOutMax.length, levels: fits, heldOutMax, offset };
}

/** −log10 NFA of the calibrated detection: [B·T·T] float32 (row-major per image). Detection: > 0. */
export function negLogNfaCalibrated(fit: NullFit, z: readonly Latent[], targetSize = 256): Float32Array {
  checkFit(fit, z);
  const m = scaledTree(fit, z, targetSize, new TreeNfaWorkspace());
  if (fit.offset > 0) for (let i = 0; i < m.length; i++) m[i] = m[i]! - fit.offset;
  return m;
}
