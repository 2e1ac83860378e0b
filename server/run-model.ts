/**
 * A run's model as the jobs load it: the backbone (weights resolved, downloaded when needed), the
 * checkpoints (which one each use takes), the test split's features and masks, and the calibration
 * of the detection threshold on the held-out images.
 */
import type { RunConfig, RunInfo } from './protocol.js';
import * as tf from '@tensorflow/tfjs-core';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createExtractor, backboneNeedsWeights, type FeatureExtractor } from '../models/backbones/index.js';
import { loadModelFromCheckpoint, type AnomalyModel } from '../models/model-factory.js';
import { loadFeatures, type FeatureSet } from '../models/train/feature-cache.js';
import { latentsOf } from '../models/train/evaluate.js';
import { splitByNames } from '../models/data/holdout.js';
import { fitAndSave, savedCalibration, type CalibrationEntry } from './calibration.js';
import { describeError } from '../models/io/fs-errors.js';
import { listSplit, type SplitItem } from '../models/data/dataset.js';
import { loadImageForModel, loadMask } from '../models/data/images.js';
import { resolveBackboneWeights } from './pretrained.js';
import { reduceChannels } from '../models/backbones/channel-select.js';
import { isNpmBackbone, resolveNpmBackbone } from './npm-backbone.js';
import type { DownloadProgress } from './download.js';
import { METRIC_NAMES, PipelineError, RUN_FILES, type SelectionMetric } from './runs.js';
import { asPipelineError } from './job-common.js';
import { EVALUATION_SIDE, evaluationSize, toHW, type HW, type SizeInput } from '../models/size.js';

/** What, besides name and size, identifies an extractor's output (folded into the feature-cache key). */
export function extractorId(cfg: RunConfig): string {
  const m = cfg.model;
  const pre = m.backbone_preprocessing === 'caffe' ? { pre: 'caffe' } : {};
  // Written only when set, so the keys of caches made before channel reduction stay the same.
  const red = m.backbone_channels ? { reduce: [m.channel_reduction ?? 'random', m.channel_seed ?? 0, ...m.backbone_channels] } : {};
  return JSON.stringify({ layers: m.backbone_layers ?? null, range: m.backbone_input_range ?? null, ...pre, ...red });
}

/** Logs a download's progress every 10 %. */
function progressLogger(name: string, log: (l: string) => void): (p: DownloadProgress) => void {
  let next = 0;
  return (p) => {
    if (!p.total) return;
    const pct = Math.floor((100 * p.bytes) / p.total);
    if (pct < next) return;
    next = pct - (pct % 10) + 10;
    log(`downloading the ${name} backbone: ${pct} % of ${(p.total / 1e6).toFixed(0)} MB`);
  };
}

/** The model config's channel reduction, applied to a built backbone (or the backbone unchanged). */
function withReduction(cfg: RunConfig, ex: FeatureExtractor): FeatureExtractor {
  const m = cfg.model;
  if (!m.backbone_channels) return ex;
  return reduceChannels(ex, { keep: m.backbone_channels, method: m.channel_reduction ?? 'random', seed: m.channel_seed ?? 0 });
}

export async function buildExtractor(cfg: RunConfig, signal: AbortSignal | undefined, log: (l: string) => void): Promise<FeatureExtractor> {
  const m = cfg.model;
  if (m.backbone === 'auto') throw new PipelineError('backbone auto is chosen when the run starts training, and this run has not started: train it first', 'NotAvailable');
  try {
    let weights: string | string[] | undefined;
    if (isNpmBackbone(m.backbone)) {
      const r = await resolveNpmBackbone(m.backbone, {
        signal,
        onProgress: progressLogger(m.backbone, log),
      });
      if (r.source === 'download') log(`downloaded the ${m.backbone} backbone from ${r.registry} to ${r.path}`);
      weights = r.path;
    } else if (backboneNeedsWeights(m.backbone)) {
      const names = m.backbone === 'mcait' ? ['cait_m48_448', 'cait_s24_224'] : m.backbone === 'cait' ? ['cait_m48_448'] : m.backbone === 'deit' ? ['deit_base_distilled_patch16_384'] : [m.backbone];
      const paths: string[] = [];
      for (const n of names) {
        const r = await resolveBackboneWeights(n, { signal });
        if (r.source === 'download') log(`downloaded the ${n} weights to ${r.path}`);
        paths.push(r.path);
      }
      weights = paths.length === 1 ? paths[0] : paths;
    }
    try {
      const ex = await createExtractor({ backbone: m.backbone, inputSize: m.input_size, layers: m.backbone_layers, inputRange: m.backbone_input_range, preprocessing: m.backbone_preprocessing, weights });
      return withReduction(cfg, ex);
    } catch (e) {
      // Name the weights file(s) the backbone was built from, unless the message already does.
      const files = weights === undefined ? [] : Array.isArray(weights) ? weights : [weights];
      const msg = describeError(e);
      if (files.length && !files.some((f) => msg.includes(f))) throw new Error(`${files.join(', ')}: ${msg}`);
      throw e;
    }
  } catch (e) {
    if (e instanceof PipelineError) throw e;
    throw new PipelineError(`backbone ${m.backbone}: ${describeError(e)}`, 'NotAvailable');
  }
}

/** The feature cache's loader: RGB [0,1] at the input size [h, w]. */
export async function tensorImageLoader(path: string, size: SizeInput): Promise<tf.Tensor3D> {
  const [h, w] = toHW(size);
  const img = await loadImageForModel(path, [h, w]);
  return tf.tensor3d(img.data, [h, w, 3]);
}

/** Test split with features and masks at the evaluation size, for validation and evaluation. */
export interface ValidationData {
  items: SplitItem[];
  features: FeatureSet;
  masks: Uint8Array[];
  /** [h, w] of the maps and masks. */
  targetSize: HW;
}

/** The side of the evaluation maps of a square input (the official 256). */
export const TARGET_SIZE = EVALUATION_SIDE;

/** [h, w] a run's maps are evaluated at: 256×256 for a square input, else its aspect ratio with the longer side 256. */
export function targetSizeOf(cfg: RunConfig): HW {
  return evaluationSize(cfg.model.input_size);
}

/** The test masks at the evaluation size [Th, Tw] of a run whose input size is `input` (empty for good images). */
export function loadTestMasks(items: SplitItem[], input: SizeInput, T: HW): Promise<Uint8Array[]> {
  return loadMasks(items, input, T);
}

/** Ground-truth masks at the evaluation size, resized as the reference resizes them (images.ts `loadMask`). */
async function loadMasks(items: SplitItem[], input: SizeInput, T: HW): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const it of items) out.push(it.maskPath ? await loadMask(it.maskPath, input, T) : new Uint8Array(T[0] * T[1]));
  return out;
}

export async function loadValidationData(
  items: SplitItem[],
  trainDir: string,
  extractor: FeatureExtractor,
  cfg: RunConfig,
  signal: AbortSignal | undefined,
  onProgress?: (done: number, total: number, computed: boolean) => void,
): Promise<ValidationData> {
  const features = await loadFeatures(items.map((i) => i.path), { trainDir, extractor, extractorId: extractorId(cfg), loadImage: tensorImageLoader, signal, onProgress });
  try {
    const T = targetSizeOf(cfg);
    return { items, features, masks: await loadMasks(items, cfg.model.input_size, T), targetSize: T };
  } catch (e) {
    features.dispose();
    throw e;
  }
}

/** The checkpoint files of a run that exist (last first). */
export function checkpointFiles(run: RunInfo): string[] {
  return [RUN_FILES.checkpoint, ...METRIC_NAMES.map((m) => RUN_FILES.best(m))].map((f) => join(run.dir, f)).filter((f) => existsSync(f));
}

/** The held-out images of a run that still exist in its dataset. */
export function holdoutItems(run: RunInfo, categoryDir = run.datasetPath): SplitItem[] {
  if (!run.holdout?.images.length || !existsSync(categoryDir)) return [];
  try {
    return splitByNames(listSplit(categoryDir, 'train'), run.holdout.images).holdout;
  } catch {
    return [];
  }
}

/**
 * The calibration of one checkpoint: saved in the run, else fitted now on the held-out images (and
 * saved); undefined when the run has none (made with trainer.holdout 0, or before it existed).
 */
export async function calibrationFor(run: RunInfo, file: string, model: AnomalyModel, extractor: FeatureExtractor, trainDir: string, signal?: AbortSignal): Promise<CalibrationEntry | undefined> {
  const saved = savedCalibration(run.dir, file);
  if (saved) return saved;
  const items = holdoutItems(run);
  if (items.length < 2) return undefined;
  const feats = await loadFeatures(items.map((i) => i.path), { trainDir, extractor, extractorId: extractorId(run.config), loadImage: tensorImageLoader, signal });
  try {
    return fitAndSave(run.dir, file, run.holdout!.images, await latentsOf(model, feats.levels, 8, signal), targetSizeOf(run.config));
  } finally {
    feats.dispose();
  }
}

/** The checkpoint predict and the hover use: best-pixel_auroc when training validated, else the last. */
export function predictorCheckpoint(run: RunInfo): string {
  const best = join(run.dir, RUN_FILES.best('pixel_auroc'));
  return existsSync(best) ? best : join(run.dir, RUN_FILES.checkpoint);
}

/** The checkpoint each metric is computed from. */
export function checkpointsFor(run: RunInfo, mode: 'best' | 'last'): Record<SelectionMetric, string> {
  const last = join(run.dir, RUN_FILES.checkpoint);
  const out = {} as Record<SelectionMetric, string>;
  for (const m of METRIC_NAMES) {
    const best = join(run.dir, RUN_FILES.best(m));
    out[m] = mode === 'best' && existsSync(best) ? best : last;
  }
  if (!existsSync(last) && Object.values(out).some((f) => f === last)) {
    throw new PipelineError(`run ${run.runId} has no checkpoint yet (${last}): it has not completed an epoch`, 'NotFound');
  }
  return out;
}

export function loadCheckpointChecked(file: string, extractor: FeatureExtractor): { model: AnomalyModel } {
  try {
    return loadModelFromCheckpoint(file, { extractor });
  } catch (e) {
    asPipelineError(e, 'JobFailed');
  }
}

/** The −log NFA colour scale: 0 (the detection threshold) to at least 10. */
export function nfaRange(m: ArrayLike<number>): [number, number] {
  let hi = 10;
  for (let i = 0; i < m.length; i++) if (Number.isFinite(m[i]!) && m[i]! > hi) hi = m[i]!;
  return [0, hi];
}
