/**
 * The training loop on cached features (official src/train.py semantics): shuffled batches
 * (seeded, the last partial batch kept), the official loss, PyTorch Adam with L2 weight decay,
 * LinearLR stepped once per epoch, validation every N epochs, early stopping on pixel AUROC.
 *
 * Persistence is the caller's: `hooks.onEpochEnd` runs after every complete epoch (the pipeline
 * writes the checkpoint, the metrics line and run.json there), so a cancel or a crash loses at most
 * the epoch in progress. A non-finite loss stops the loop before anything of that epoch is saved.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorMap } from '../io/safetensors.js';
import { mulberry32, randomPermutation } from '../flows/rng.js';
import { Adam } from './adam.js';
import { LinearLR } from './lr-schedule.js';
import { trainStep, type Trainable } from './step.js';
import { gatherBatch, type FeatureSet } from './feature-cache.js';

export interface ValidationResult {
  image_auroc?: number;
  pixel_auroc?: number;
  aupro?: number;
  miou?: number;
}

export interface TrainerOptions {
  /** U-Flow or FastFlow (models/model-factory.ts); both train on the same loss form. */
  model: Trainable;
  features: FeatureSet;
  /** Total epochs of the run. */
  epochs: number;
  /** Epochs already done (resume): training continues at startEpoch + 1. */
  startEpoch?: number;
  batchSize: number;
  learningRate: number;
  weightDecay: number;
  seed: number;
  /** Adam moments and step count saved by `optimizerState` (resume). */
  optimizerState?: TensorMap;
  /** Validate every N epochs (0: never); the last epoch is always validated when N > 0. */
  validateEvery?: number;
  validate?: (epoch: number) => Promise<ValidationResult>;
  /** Early-stopping patience on pixel AUROC, in validations (0: off). */
  patience?: number;
  /** Best pixel AUROC so far and validations since it improved (resume). */
  earlyStopState?: { best: number; bad: number };
  signal?: AbortSignal;
  /**
   * One optimisation step (default: trainStep on this thread). The pipeline passes a
   * ParallelTrainer's step to spread each batch over worker threads.
   */
  step?: (features: readonly tf.Tensor4D[], optimizer: Adam) => number | Promise<number>;
  /**
   * Seconds per epoch (validation included) measured before training (server/estimate.ts): the
   * ETA uses it until the first epoch has ended, then the measured epochs.
   */
  estimatedSecondsPerEpoch?: number;
}

export interface StepProgress {
  epoch: number;
  epochs: number;
  step: number;
  steps: number;
  /** Mean loss of the epoch so far. */
  loss: number;
  imagesPerSecond: number;
  etaSeconds: number;
}

export interface EpochResult {
  epoch: number;
  loss: number;
  lr: number;
  seconds: number;
  imagesPerSecond: number;
  metrics?: ValidationResult;
}

export interface TrainerHooks {
  onStep?(p: StepProgress): void;
  onValidationStart?(epoch: number): void;
  /** After every complete epoch; awaited before the next one starts. `optimizer()` gives its state (optimizerState). */
  onEpochEnd?(r: EpochResult, optimizer: () => TensorMap): void | Promise<void>;
  onLog?(line: string): void;
}

export interface TrainerOutcome {
  state: 'finished' | 'cancelled' | 'failed';
  epochsDone: number;
  /** Why it failed, or 'early stopping' when it finished before `epochs`. */
  message?: string;
  earlyStopped?: boolean;
}

/** Batches of one epoch: a seeded permutation of 0..n−1 cut into chunks (the last may be smaller). */
export function epochBatches(n: number, batchSize: number, seed: number, epoch: number): number[][] {
  const perm = randomPermutation(n, mulberry32((seed * 1_000_003 + epoch * 7919) >>> 0));
  const out: number[][] = [];
  for (let i = 0; i < n; i += batchSize) out.push(perm.slice(i, i + batchSize));
  return out;
}

type NamedVars = ReadonlyArray<{ name: string; variable: tf.Variable }>;

/**
 * The optimizer's moments keyed by the parameters' reference names (`m.<name>`, `v.<name>`, as
 * held: NHWC/HWIO) and its step count (`__step__`). tfjs variable names differ from process to
 * process, the reference names do not.
 */
export function optimizerState(adam: Adam, params: NamedVars): TensorMap {
  const tensors: TensorMap = new Map();
  for (const kind of ['m', 'v'] as const) {
    for (const { name, variable } of params) {
      const v = adam.moment(kind, variable.name);
      if (v) tensors.set(`${kind}.${name}`, { dtype: 'F32', shape: v.shape, data: v.data });
    }
  }
  tensors.set('__step__', { dtype: 'F64', shape: [1], data: Float64Array.of(adam.stepCount) });
  return tensors;
}

/** Restores what optimizerState saved; returns false (and keeps fresh moments) when it does not match these parameters. */
export function restoreOptimizerState(adam: Adam, params: NamedVars, tensors: TensorMap): boolean {
  const step = Number(tensors.get('__step__')?.data[0] ?? NaN);
  if (!Number.isFinite(step)) return false;
  const pairs: Array<['m' | 'v', string, Float32Array]> = [];
  for (const kind of ['m', 'v'] as const) {
    for (const { name, variable } of params) {
      // A moment has its parameter's shape: checked without copying the moment out
      const t = tensors.get(`${kind}.${name}`);
      if (!adam.tracks(variable.name) || !t || t.shape.join() !== variable.shape.join() || !(t.data instanceof Float32Array)) return false;
      pairs.push([kind, variable.name, t.data]);
    }
  }
  for (const [kind, name, d] of pairs) adam.setMoment(kind, name, d);
  adam.stepCount = step;
  return true;
}

function aborted(signal?: AbortSignal): boolean {
  return Boolean(signal?.aborted);
}

/** Lets timers, signals and I/O run between steps (the steps themselves are synchronous). */
function yieldToEventLoop(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** Variable names are global in tfjs: a second model in the process gets suffixed names. Adam keys by name. */
export async function runTraining(opts: TrainerOptions, hooks: TrainerHooks = {}): Promise<TrainerOutcome> {
  const { model, features } = opts;
  const n = features.paths.length;
  if (n === 0) return { state: 'failed', epochsDone: opts.startEpoch ?? 0, message: 'no training images' };
  const start = opts.startEpoch ?? 0;
  const bs = Math.max(1, Math.min(opts.batchSize, n));
  const adam = new Adam(model.trainableVariables(), { lr: opts.learningRate, weightDecay: opts.weightDecay });
  const sched = new LinearLR(adam, opts.learningRate);
  sched.setEpoch(start);
  const optimizerRestored = Boolean(opts.optimizerState && start > 0 && restoreOptimizerState(adam, model.trainableVariables(), opts.optimizerState));
  if (start > 0) hooks.onLog?.(optimizerRestored ? `resumed at epoch ${start} with the optimizer state` : `resumed at epoch ${start} with fresh optimizer moments (no matching train-state file)`);
  const stepsPerEpoch = Math.ceil(n / bs);
  const validateEvery = opts.validateEvery ?? 0;
  const early = { best: opts.earlyStopState?.best ?? -Infinity, bad: opts.earlyStopState?.bad ?? 0 };
  let epochsDone = start;
  // Time per epoch (train + amortised validation), for the ETA.
  let secondsPerEpoch = 0;
  let secondsPerValidation = 0;
  try {
    for (let epoch = start + 1; epoch <= opts.epochs; epoch++) {
      const t0 = performance.now();
      const batches = epochBatches(n, bs, opts.seed, epoch);
      let lossSum = 0;
      let seen = 0;
      for (let s = 0; s < batches.length; s++) {
        await yieldToEventLoop();
        if (aborted(opts.signal)) return { state: 'cancelled', epochsDone };
        const idx = batches[s]!;
        const batch = gatherBatch(features, idx);
        let loss: number;
        try {
          loss = opts.step ? await opts.step(batch, adam) : trainStep(model, batch, adam);
        } finally {
          tf.dispose(batch);
        }
        if (!Number.isFinite(loss)) {
          return {
            state: 'failed',
            epochsDone,
            message: `the loss became ${loss} at epoch ${epoch}, step ${s + 1}: training diverged. ${epochsDone > 0 ? `The checkpoint of epoch ${epochsDone} is kept` : 'No epoch had completed, so nothing was saved'}; lower the learning rate (trainer.learning_rate, now ${adam.lr.toExponential(3)}) and train again`,
          };
        }
        lossSum += loss * idx.length;
        seen += idx.length;
        const elapsed = (performance.now() - t0) / 1000;
        const ips = seen / Math.max(elapsed, 1e-9);
        const remainingEpochs = opts.epochs - epoch;
        const validationsLeft = validateEvery > 0 ? Math.floor(opts.epochs / validateEvery) - Math.floor(epoch / validateEvery) + 1 : 0;
        const estimated = opts.estimatedSecondsPerEpoch;
        const measuredEta = () => (n - seen) / Math.max(ips, 1e-9) + remainingEpochs * (secondsPerEpoch || (elapsed / seen) * n) + validationsLeft * secondsPerValidation;
        // Before the first epoch has ended: the pre-training estimate (its per-epoch time includes validation).
        const etaSeconds = !secondsPerEpoch && estimated !== undefined && estimated > 0 ? Math.max(0, estimated - elapsed) + remainingEpochs * estimated : measuredEta();
        hooks.onStep?.({
          epoch,
          epochs: opts.epochs,
          step: s + 1,
          steps: stepsPerEpoch,
          loss: lossSum / seen,
          imagesPerSecond: ips,
          etaSeconds: Math.max(0, etaSeconds),
        });
      }
      const trainSeconds = (performance.now() - t0) / 1000;
      secondsPerEpoch = secondsPerEpoch ? 0.7 * secondsPerEpoch + 0.3 * trainSeconds : trainSeconds;
      const lr = adam.lr;
      const result: EpochResult = { epoch, loss: lossSum / seen, lr, seconds: trainSeconds, imagesPerSecond: n / trainSeconds };
      const doValidate = Boolean(opts.validate) && validateEvery > 0 && (epoch % validateEvery === 0 || epoch === opts.epochs);
      if (doValidate) {
        if (aborted(opts.signal)) return { state: 'cancelled', epochsDone };
        hooks.onValidationStart?.(epoch);
        const tv = performance.now();
        result.metrics = await opts.validate!(epoch);
        secondsPerValidation = (performance.now() - tv) / 1000;
      }
      sched.step();
      await hooks.onEpochEnd?.(result, () => optimizerState(adam, model.trainableVariables()));
      epochsDone = epoch;
      if (doValidate && (opts.patience ?? 0) > 0 && result.metrics?.pixel_auroc !== undefined) {
        if (result.metrics.pixel_auroc > early.best) {
          early.best = result.metrics.pixel_auroc;
          early.bad = 0;
        } else if (++early.bad >= opts.patience!) {
          return { state: 'finished', epochsDone, earlyStopped: true, message: `early stopping: pixel AUROC did not improve for ${opts.patience} validations` };
        }
      }
    }
    return { state: 'finished', epochsDone };
  } finally {
    adam.dispose();
  }
}
