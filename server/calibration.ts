/**
 * The calibration of a run's detection threshold, saved in its folder (`calibration.json`) and
 * reused by evaluate, predict, the hover and the daemon: fitted once per checkpoint file (keyed by
 * name, size and sha256, so a checkpoint rewritten by more training is refitted) on the
 * latents of the run's held-out normal images (run.holdout), never per request.
 *
 * Beside the fit it keeps a cross-fitted false-alarm estimate on the held-out images: each fold
 * of them is scored with a null fitted on the other folds, so the estimate is out of sample (and,
 * fitted on fewer images, if anything pessimistic). A dataset with no labelled test set gets it too.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { atomicWriteJson } from '../models/io/atomic.js';
import { CALIBRATION_VERSION, fitNull, negLogNfaCalibrated, type NullFit } from '../models/scores/nfa-calibrated.js';
import type { Latent } from '../models/scores/latent.js';
import { falseAlarmStats, type FalseAlarmStats } from '../models/metrics/false-alarms.js';
import type { CalibrationSummary } from './protocol.js';
import { toHW, type SizeInput } from '../models/size.js';

export const CALIBRATION_FILE = 'calibration.json';

export interface CalibrationEntry {
  checkpoint: string;
  size: number;
  /** sha256 of the checkpoint file: a copied or moved run keeps its calibration, a retrained checkpoint does not. */
  sha256: string;
  fittedAt: string;
  fit: NullFit;
  /** Cross-fitted false alarms at log NFA = 0 on the held-out images. */
  holdoutFalseAlarms: FalseAlarmStats & { folds: number };
}

interface CalibrationFile {
  version: number;
  holdout: string[];
  entries: Record<string, CalibrationEntry>;
}

function readFile(dir: string): CalibrationFile | undefined {
  const f = join(dir, CALIBRATION_FILE);
  if (!existsSync(f)) return undefined;
  try {
    const c = JSON.parse(readFileSync(f, 'utf8')) as CalibrationFile;
    return c && c.version === CALIBRATION_VERSION && typeof c.entries === 'object' ? c : undefined;
  } catch {
    return undefined; // unreadable: refitted and rewritten
  }
}

/** The saved calibration of `checkpoint` when it still matches the file. */
export function savedCalibration(runDir: string, checkpoint: string): CalibrationEntry | undefined {
  const c = readFile(runDir);
  const e = c?.entries[basename(checkpoint)];
  if (!e || !existsSync(checkpoint)) return undefined;
  return e.size === statSync(checkpoint).size && e.sha256 === fileSha256(checkpoint) ? e : undefined;
}

function fileSha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

/** Latents grouped per image (image → level), from per-level batches. */
export function latentsPerImage(levels: readonly Latent[][]): Latent[][] {
  const out: Latent[][] = [];
  levels.forEach((batches, s) => {
    let img = 0;
    for (const z of batches) {
      const [B, h, w, C] = z.shape;
      const per = h * w * C;
      for (let b = 0; b < B; b++, img++) (out[img] ??= [])[s] = { data: z.data.subarray(b * per, (b + 1) * per), shape: [1, h, w, C] };
    }
  });
  return out;
}

/** Cross-fitted false alarms: each of up to 5 folds scored with a null fitted on the others. */
export function crossFitFalseAlarms(images: readonly Latent[][], T: SizeInput = 256): FalseAlarmStats & { folds: number } {
  const [Th, Tw] = toHW(T, 'map size');
  const n = images.length;
  const K = Math.min(5, n);
  if (K < 2) return { ...falseAlarmStats([], Th, Tw), folds: 0 };
  const maps: Float32Array[] = [];
  for (let f = 0; f < K; f++) {
    const fitImgs = images.filter((_, i) => i % K !== f);
    const testImgs = images.filter((_, i) => i % K === f);
    const levels = images[0]!.map((_, s) => fitImgs.map((im) => im[s]!));
    const fit = fitNull(levels, T);
    for (const im of testImgs) maps.push(negLogNfaCalibrated(fit, im, T));
  }
  return { ...falseAlarmStats(maps, Th, Tw), folds: K };
}

/** Fits and saves the calibration of `checkpoint` from the held-out latents (per level, batched). */
export function fitAndSave(runDir: string, checkpoint: string, holdout: readonly string[], levels: Latent[][], T: SizeInput = 256): CalibrationEntry {
  const fit = fitNull(levels, T);
  const st = statSync(checkpoint);
  const entry: CalibrationEntry = {
    checkpoint: basename(checkpoint),
    size: st.size,
    sha256: fileSha256(checkpoint),
    fittedAt: new Date().toISOString(),
    fit,
    holdoutFalseAlarms: crossFitFalseAlarms(latentsPerImage(levels), T),
  };
  const prev = readFile(runDir);
  const file: CalibrationFile = { version: CALIBRATION_VERSION, holdout: [...holdout], entries: { ...(prev?.entries ?? {}), [entry.checkpoint]: entry } };
  atomicWriteJson(join(runDir, CALIBRATION_FILE), file);
  return entry;
}

/** What run.json and the views say of a calibration. */
export function summaryOf(entry: CalibrationEntry | undefined, holdoutImages: number): CalibrationSummary {
  if (!entry) {
    return {
      variant: 'tree',
      description: holdoutImages
        ? 'not calibrated yet: the paper’s tree NFA is used until the run is calibrated'
        : 'no held-out normal images (trainer.holdout is 0, or the run predates it): the paper’s tree NFA under N(0, I), not calibrated',
      images: 0,
    };
  }
  const f = entry.fit;
  const scales = f.levels.map((l) => l.scale.toFixed(2)).join('/');
  const guard = f.offset > 0 ? `; a held-out image was still detected, so the threshold was raised by ${f.offset.toFixed(1)} in −log NFA` : '';
  return {
    variant: 'calibrated',
    description:
      `${f.kind === 'tree' ? "the paper's tree NFA" : "the paper's tree and binomial-window NFAs together"} on latents scaled to the ${f.images} held-out normal images (σ per level ${scales}; ${entry.checkpoint}), Chernoff guard (no evidence where u ≤ 1)${guard}; ` +
      `chosen on ${f.why}; ` +
      `cross-fitted false alarms on the held-out images: ${entry.holdoutFalseAlarms.meanRegions.toFixed(2)} per image`,
    images: f.images,
    fittedAt: entry.fittedAt,
  };
}
