/**
 * Know the cost before paying it: before a training starts, a few real steps are timed (the
 * backbone on the first batch of training images that are not cached yet, and a few flow steps at
 * the config's batch size on those features) and extrapolated to the whole run.
 *
 * The measuring changes nothing the training computes: the images it runs through the backbone are
 * the first feature batch the training would compute anyway, in the same grouping, and they go to
 * the feature cache (so they are not paid twice); the flow steps compute gradients only (no
 * optimizer, no parameter update, no random number drawn).
 */
import * as tf from '@tensorflow/tfjs-core';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { FeatureExtractor } from '../models/backbones/index.js';
import { cacheDir, hashFile, loadFeatures, type FeatureSet, type ImageLoader } from '../models/train/feature-cache.js';
import type { TrainingEstimate } from './protocol.js';

export type { TrainingEstimate };

/** Images per backbone call of the feature cache (loadFeatures' default): the timed batch uses the same grouping. */
export const FEATURE_BATCH = 4;

/** What the arithmetic needs: counts from the dataset and config, times from the measuring. */
export interface EstimateInputs {
  /** Images the flow trains on (one epoch sees each once). */
  trainImages: number;
  /** Images whose features are not cached yet (training, held-out and test images). */
  uncachedImages: number;
  /** Backbone seconds per image (decoding and caching included). */
  featureSecondsPerImage: number;
  batchSize: number;
  /** Seconds of one flow step on a full batch. */
  stepSeconds: number;
  /** Epochs still to train (the config's epochs minus those done when resuming). */
  epochs: number;
  /** Validate every N epochs (0: never); the last epoch is always validated when N > 0. */
  validateEvery: number;
  /** Seconds of one validation (0 when there is none). */
  validationSeconds: number;
  /** Early stopping may end the run sooner: the figure is then an upper bound. */
  earlyStopping: boolean;
  /** Total epochs of the run and epochs already done (for the count of validations). */
  totalEpochs?: number;
  startEpoch?: number;
}

/** Seconds of one epoch's training: full batches and the last partial one in proportion. */
export function secondsPerTrainEpoch(trainImages: number, batchSize: number, stepSeconds: number): number {
  const bs = Math.max(1, Math.min(batchSize, trainImages));
  const full = Math.floor(trainImages / bs);
  const rest = trainImages - full * bs;
  return full * stepSeconds + (rest / bs) * stepSeconds;
}

/** Validations in epochs start+1..total (every N-th, and the last). */
export function validationsIn(startEpoch: number, totalEpochs: number, validateEvery: number): number {
  if (validateEvery <= 0 || totalEpochs <= startEpoch) return 0;
  const every = Math.floor(totalEpochs / validateEvery) - Math.floor(startEpoch / validateEvery);
  return every + (totalEpochs % validateEvery === 0 ? 0 : 1);
}

/** The whole run from the measured pieces (pure: the unit tests check it). */
export function extrapolate(i: EstimateInputs): Omit<TrainingEstimate, 'line' | 'backend' | 'threads' | 'measuredSeconds' | 'alternative'> {
  const featureSeconds = Math.max(0, i.uncachedImages) * i.featureSecondsPerImage;
  const trainEpoch = secondsPerTrainEpoch(i.trainImages, i.batchSize, i.stepSeconds);
  const start = i.startEpoch ?? 0;
  const total = i.totalEpochs ?? start + i.epochs;
  const validations = validationsIn(start, total, i.validateEvery);
  const validationTotal = validations * i.validationSeconds;
  const epochs = Math.max(0, i.epochs);
  const secondsPerEpoch = epochs > 0 ? trainEpoch + validationTotal / epochs : trainEpoch;
  return {
    totalSeconds: featureSeconds + epochs * secondsPerEpoch,
    featureSeconds,
    secondsPerEpoch,
    epochs,
    atMost: i.earlyStopping,
    uncachedImages: Math.max(0, i.uncachedImages),
  };
}

/** '45 s', '3 min', '1 h 20 min' */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 90) return `${Math.max(1, Math.round(s))} s`;
  const min = Math.round(s / 60);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  const m = min - h * 60;
  return m ? `${h} h ${m} min` : `${h} h`;
}

function perEpochText(s: number): string {
  if (s < 10) return `${s < 1 ? s.toFixed(2) : s.toFixed(1)} s`;
  return formatSeconds(s);
}

/** `about 42 min: features 3 min, 9 s/epoch × 260 epochs, wasm 2 threads` */
export function formatEstimate(e: Omit<TrainingEstimate, 'line'>): string {
  const head = `${e.atMost ? 'at most about' : 'about'} ${formatSeconds(e.totalSeconds)}`;
  const features = e.uncachedImages > 0 ? `features ${formatSeconds(e.featureSeconds)}` : 'features cached';
  const threads = e.threads > 0 ? ` ${e.threads} thread${e.threads === 1 ? '' : 's'}` : '';
  return `${head}: ${features}, ${perEpochText(e.secondsPerEpoch)}/epoch × ${e.epochs} epoch${e.epochs === 1 ? '' : 's'}, ${e.backend}${threads}`;
}

/** Features of `paths` that are not in the cache yet (by file, as loadFeatures looks them up). */
export function uncachedIndices(paths: readonly string[], trainDir: string, extractor: FeatureExtractor, extractorId: string): number[] {
  const dir = cacheDir(trainDir, extractor, extractorId);
  const out: number[] = [];
  paths.forEach((p, i) => {
    if (!existsSync(join(dir, `${hashFile(p)}.safetensors`))) out.push(i);
  });
  return out;
}

export interface MeasureOptions {
  extractor: FeatureExtractor;
  trainDir: string;
  extractorId: string;
  loadImage: ImageLoader;
  /** The image sets the training will run through the backbone, in the order it does (training, held-out, test). */
  imageSets: ReadonlyArray<readonly string[]>;
  batchSize: number;
  /** One flow step's work on a batch, without changing any parameter (gradients only). */
  gradients(batch: readonly tf.Tensor4D[]): unknown | Promise<unknown>;
  /** One validation's work on these images' features, when the run validates (timed per image). */
  validate?(levels: readonly tf.Tensor4D[]): Promise<unknown>;
  /**
   * The measuring's time scale (default 3 s): flow steps are timed warm for about this long; a
   * first image, flow step or validation slower than 5× this is the figure (one call, warm-up
   * included) instead of being timed again warm.
   */
  budgetSeconds?: number;
  signal?: AbortSignal;
}

export interface Measured {
  featureSecondsPerImage: number;
  uncachedImages: number;
  /** Images the measuring ran through the backbone (now cached). */
  measuredImages: number;
  stepSeconds: number;
  /** Seconds of validation per test image (0 without validate). */
  validationSecondsPerImage: number;
  /** Wall time the measuring took. */
  measuredSeconds: number;
}

const now = () => performance.now() / 1000;

/** A warm-up call slower than SLOW × the budget is the figure itself (the measuring stays bounded). */
const SLOW = 5;

function checkAbort(signal?: AbortSignal): void {
  if (signal?.aborted) throw new DOMException('cancelled', 'AbortError');
}

/**
 * Times the backbone on the first feature batch the training would compute (cached as it would be)
 * and a few gradient-only flow steps on a batch of the config's size built from those features.
 */
export async function measureTraining(o: MeasureOptions): Promise<Measured> {
  const t0 = now();
  const uncached = o.imageSets.map((paths) => uncachedIndices(paths, o.trainDir, o.extractor, o.extractorId));
  const uncachedImages = uncached.reduce((a, u) => a + u.length, 0);
  const cacheOpts = { trainDir: o.trainDir, extractor: o.extractor, extractorId: o.extractorId, loadImage: o.loadImage, signal: o.signal, batchSize: FEATURE_BATCH };
  let featureSecondsPerImage = 0;
  let measuredImages = 0;
  let sample: FeatureSet | undefined;
  try {
    const setIndex = uncached.findIndex((u) => u.length > 0);
    const budget = o.budgetSeconds ?? 3;
    // Past SLOW × the budget of measuring, every later part takes its first (warm-up) call as the
    // figure: pessimistic, but the measuring stays near that plus one call of each part.
    const spare = () => now() - t0 < SLOW * budget;
    if (setIndex >= 0) {
      const paths = o.imageSets[setIndex]!;
      const first = uncached[setIndex]!.slice(0, FEATURE_BATCH).map((i) => paths[i]!);
      // One image alone first, not cached (the training computes it again in its own batch): it
      // warms the backbone up, and for a very slow backbone it is the figure (bounded to one image).
      const t1 = now();
      const single = await loadFeatures(first.slice(0, 1), { ...cacheOpts, persist: false });
      const singleSeconds = now() - t1;
      checkAbort(o.signal);
      if (singleSeconds > SLOW * budget || first.length === 1 || !spare()) {
        featureSecondsPerImage = singleSeconds;
        sample = single;
      } else {
        single.dispose();
        // The first batches the training's loadFeatures would compute for this set (same images,
        // same grouping), cached so that the training does not pay them again: the first warms the
        // batch shape up, the second (when full and the first was quick) is the figure.
        const tb = now();
        sample = await loadFeatures(first, cacheOpts);
        const firstSeconds = now() - tb;
        featureSecondsPerImage = firstSeconds / first.length;
        measuredImages = first.length;
        const second = uncached[setIndex]!.slice(FEATURE_BATCH, 2 * FEATURE_BATCH).map((i) => paths[i]!);
        if (second.length === FEATURE_BATCH && firstSeconds <= budget && spare()) {
          checkAbort(o.signal);
          const t2 = now();
          const warm = await loadFeatures(second, cacheOpts);
          featureSecondsPerImage = (now() - t2) / second.length;
          measuredImages += second.length;
          warm.dispose();
        }
      }
    } else {
      const trainPaths = o.imageSets[0] ?? [];
      sample = await loadFeatures(trainPaths.slice(0, FEATURE_BATCH), cacheOpts);
    }
    checkAbort(o.signal);
    const k = sample.paths.length;
    if (k === 0) throw new Error('no image to measure the training on');
    const bs = Math.max(1, o.batchSize);
    const idx = tf.tensor1d(Array.from({ length: bs }, (_, i) => i % k), 'int32');
    const batch = sample.levels.map((l) => tf.gather(l, idx) as tf.Tensor4D);
    idx.dispose();
    let stepSeconds: number;
    try {
      const w0 = now();
      await o.gradients(batch); // warm-up: kernels compile, workers start their engines
      const warm = now() - w0;
      const times: number[] = [];
      if (warm > SLOW * budget || !spare()) times.push(warm); // a very slow step: the warm-up one is the figure (bounded)
      else {
        // The warm-up step is several times slower (kernels compile in every worker): up to 5
        // warm steps within the budget, at least 2 (a slow one alone is enough).
        const ts = now();
        while (times.length < 5 && (times.length < 2 || now() - ts < budget)) {
          checkAbort(o.signal);
          const s0 = now();
          await o.gradients(batch);
          times.push(now() - s0);
          if (times.length === 1 && times[0]! > budget) break;
        }
      }
      stepSeconds = median(times);
    } finally {
      tf.dispose(batch);
    }
    let validationSecondsPerImage = 0;
    if (o.validate) {
      checkAbort(o.signal);
      const v0 = now();
      await o.validate(sample.levels); // warm-up; when slow, the figure
      let v = now() - v0;
      if (v <= SLOW * budget && spare()) {
        const v1 = now();
        await o.validate(sample.levels);
        v = now() - v1;
      }
      validationSecondsPerImage = v / k;
    }
    return { featureSecondsPerImage, uncachedImages, measuredImages, stepSeconds, validationSecondsPerImage, measuredSeconds: now() - t0 };
  } finally {
    sample?.dispose();
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * Estimated seconds left for the ETA while features are computed: the features still to compute
 * and every epoch (the trainer's own measured ETA takes over once the first epoch has ended).
 */
export function etaFromEstimate(e: TrainingEstimate, featuresLeft: number): number {
  const perImage = e.uncachedImages > 0 ? e.featureSeconds / e.uncachedImages : 0;
  return Math.max(0, featuresLeft) * perImage + e.epochs * e.secondsPerEpoch;
}

/**
 * The faster choice offered above a time limit: fewer epochs when the features fit in the limit,
 * else half the input size (backbone and flow cost scale with the pixels: an extrapolation, not a
 * measurement). Undefined when the run already fits or nothing faster makes sense.
 */
export function fasterAlternative(
  e: Omit<TrainingEstimate, 'line' | 'alternative'>,
  limitSeconds: number,
  current: { epochs: number; inputSize: number | [number, number]; startEpoch?: number },
  sizeAllowed: (size: number | [number, number]) => boolean = () => true,
): TrainingEstimate['alternative'] {
  if (e.totalSeconds <= limitSeconds) return undefined;
  const start = current.startEpoch ?? 0;
  const room = limitSeconds - e.featureSeconds;
  if (room >= e.secondsPerEpoch && e.secondsPerEpoch > 0) {
    const epochs = Math.max(1, Math.min(e.epochs - 1, Math.floor(room / e.secondsPerEpoch)));
    if (epochs >= 1 && epochs < e.epochs) {
      return {
        label: `${start + epochs} epochs instead of ${start + e.epochs}`,
        config: { trainer: { epochs: start + epochs } },
        totalSeconds: e.featureSeconds + epochs * e.secondsPerEpoch,
      };
    }
  }
  const [h, w] = typeof current.inputSize === 'number' ? [current.inputSize, current.inputSize] : current.inputSize;
  const half = (x: number) => Math.max(32, Math.round(x / 2 / 32) * 32);
  const size: number | [number, number] = h === w ? half(h) : [half(h), half(w)];
  const [nh, nw] = typeof size === 'number' ? [size, size] : size;
  if (nh >= h && nw >= w) return undefined;
  if (!sizeAllowed(size)) return undefined;
  const ratio = (nh * nw) / (h * w);
  return {
    label: `input size ${typeof size === 'number' ? size : `${nh}×${nw}`} instead of ${h === w ? h : `${h}×${w}`}`,
    config: { model: { input_size: size } },
    totalSeconds: e.totalSeconds * ratio,
  };
}
