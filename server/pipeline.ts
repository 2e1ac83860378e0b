/**
 * The job pipeline: train, evaluate, predict, shared by the `uflow` CLI and the daemon.
 *
 * Everything a run makes lives under `<trainDir>/runs/<run-id>/` (see runs.ts). The daemon passes
 * `trainDir = <workspace>/.uflow`; the CLI's default is `./.uflow` so both see the same runs.
 *
 * Errors meant for a person are `PipelineError`s: their message names the file or option and the
 * fix, and `code` maps onto the protocol's ErrorCodes. Anything else is a bug.
 */
import type {
  Evaluation,
  FalseAlarms,
  NfaVariant,
  ThresholdEvaluation,
  ImageResult,
  ModelConfig,
  ModelKind,
  Prediction,
  RunConfig,
  RunInfo,
  TrainerConfig,
  TrainingUpdate,
} from './protocol.js';
import type { RunState } from './protocol.js';
import * as tf from '@tensorflow/tfjs-core';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { existsSync, mkdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { describeEngine, engineInfo, engineSettled, engineVersions, initEngine, type EngineInfo } from '../models/engine.js';
import { atomicWriteFile, atomicWriteJson } from '../models/io/atomic.js';
import { readSafetensors, writeSafetensors, TensorFileError, type TensorMap } from '../models/io/safetensors.js';
import { createExtractor, backboneNeedsWeights, type FeatureExtractor } from '../models/backbones/index.js';
import { createModel, loadModelFromCheckpoint, mapRangeOf, modelFromConfig, readModelCheckpoint, saveModelCheckpoint, type AnomalyModel } from '../models/model-factory.js';
import { createMsCaitExtractor } from '../models/backbones/cait.js';
import { configFromExtractor } from '../models/uflow-model.js';
import { loadFeatures, type FeatureSet } from '../models/train/feature-cache.js';
import { ParallelTrainer } from '../models/train/parallel.js';
import { runTraining, type ValidationResult } from '../models/train/trainer.js';
import { computeMaps, computeMetricSet, latentsOf, mapsOfLatents, sameMaps, type MapSet, type NfaMode } from '../models/train/evaluate.js';
import { generateDemoDataset } from '../models/data/demo-dataset.js';
import { splitByNames, splitHoldout } from '../models/data/holdout.js';
import { fitNull, type NullFit } from '../models/scores/nfa-calibrated.js';
import type { Latent } from '../models/scores/latent.js';
import { falseAlarmStats } from '../models/metrics/false-alarms.js';
import { regionsOf, thresholdSummary } from '../models/train/threshold-report.js';
import { fitAndSave, savedCalibration, summaryOf, type CalibrationEntry } from './calibration.js';
import { writeHtmlReport } from './report.js';
import { datasetForJob, type DatasetReportHooks } from './dataset-report.js';
import { preflightConfig } from './preflight.js';
import { describeError } from '../models/io/fs-errors.js';
import { DatasetError, datasetFingerprint, detectLayout, listSplit, type SplitItem } from '../models/data/dataset.js';
import {
  decodeImage,
  drawContour,
  encodePng,
  heatmapPng,
  ImageError,
  loadImageForModel,
  loadMask,
  overlayHeatmap,
  pngDataUri,
  resizeBilinearFloat,
  type RawImage,
} from '../models/data/images.js';
import { ConfigError, configToYaml, defaultConfig, loadConfig } from './config.js';
import { resolveBackboneWeights } from './pretrained.js';
import {
  appendMetrics,
  claimRun,
  isPidAlive,
  listRuns,
  METRIC_NAMES,
  newestFinishedRun,
  newestUsableRun,
  newRunId,
  PipelineError,
  readMetrics,
  readRun,
  RUN_FILES,
  runDir,
  truncateMetrics,
  writeRun,
  type SelectionMetric,
  type StoredRun,
} from './runs.js';

const PRODUCT_VERSION = '0.1.0';

export { PipelineError, type PipelineErrorCode } from './runs.js';
export { listRuns, readRun, newestFinishedRun, newestUsableRun, markInterrupted, runDir, runsRoot } from './runs.js';

// ---------------------------------------------------------------------------------------------
// Training

export interface ConfigOverrides {
  model?: Partial<ModelConfig>;
  trainer?: Partial<TrainerConfig>;
}

export interface TrainOptions {
  /** A category folder (with train/good), a root of categories (`category` picks one), or a plain folder of normal images. */
  datasetPath: string;
  category?: string;
  /** Default 'uflow'. */
  model?: ModelKind;
  /** Folder holding runs/ and cache/ (daemon: `<workspace>/.uflow`; CLI default `./.uflow`). */
  trainDir: string;
  /** YAML config with the official keys; default: the category's official config. */
  configPath?: string;
  /** Applied on top of the config file / defaults. */
  config?: ConfigOverrides;
  /** Continue this run (its config is kept; `config.trainer.epochs` may raise the epoch count). */
  resumeRunId?: string;
  /** Use the run already created by `prepareRun` (state 'queued'). */
  runId?: string;
  /** Passed through into TrainingUpdate.jobId. */
  jobId?: string;
  /** Tensor backend to force ('wasm', 'cpu', 'tensorflow', …); default: the best that loads. */
  backend?: string;
  /** Cancels at the next step; the last complete epoch's checkpoint stays, state 'cancelled'. */
  signal?: AbortSignal;
}

export interface TrainHooks extends DatasetReportHooks {
  /** Progress: feature caching, every step, every validation, the end. */
  onUpdate?(update: TrainingUpdate): void;
  /** run.json was rewritten (state, epochsDone, best). */
  onRun?(run: RunInfo): void;
  /** A line for a log / Output channel. */
  onLog?(line: string): void;
}

/**
 * Resolves dataset, category and config, creates the run folder and writes run.json with state
 * 'queued' (or, with `resumeRunId`, returns that run). Synchronous checks only: the daemon calls it
 * to answer `uflow/train` with the run id at once. Throws PipelineError for a bad dataset/config.
 */
export function prepareRun(opts: TrainOptions): RunInfo {
  const trainDir = resolve(opts.trainDir);
  if (opts.resumeRunId) return prepareResume(trainDir, opts);
  const model = opts.model ?? 'uflow';
  const ds = resolveDataset(opts.datasetPath, opts.category);
  const config = resolveConfig(ds.category, model, opts.configPath, opts.config);
  preflightConfig(config, opts.configPath);
  const runId = newRunId(ds.category, model);
  const now = new Date().toISOString();
  const dir = runDir(trainDir, runId);
  const run: StoredRun = {
    runId,
    dir,
    model,
    category: ds.category,
    datasetPath: ds.categoryDir,
    datasetFingerprint: safeFingerprint(ds.categoryDir),
    config,
    state: 'queued',
    createdAt: now,
    updatedAt: now,
    epochsDone: 0,
    engine: { backend: engineInfo()?.backend ?? 'pending', device: engineInfo()?.device ?? '' },
    versions: versions(),
    best: {},
  };
  mkdirSync(dir, { recursive: true });
  atomicWriteFile(join(dir, 'config.yaml'), configToYaml(config));
  return claimRun(run, 'queued');
}

function prepareResume(trainDir: string, opts: TrainOptions): StoredRun {
  const run = readRun(trainDir, opts.resumeRunId!);
  if ((run.state === 'running' || run.state === 'queued') && run.pid !== undefined && run.pid !== process.pid && isPidAlive(run.pid)) {
    throw new PipelineError(`run ${run.runId} is ${run.state} in process ${run.pid}: stop it first (or wait for it)`, 'Usage');
  }
  const epochs = opts.config?.trainer?.epochs;
  let config = run.config;
  if (epochs !== undefined) {
    if (!Number.isInteger(epochs) || epochs < 1) throw new PipelineError(`epochs must be a positive integer, got ${epochs}`, 'Usage');
    config = { ...config, trainer: { ...config.trainer, epochs } };
  }
  const others = Object.keys(opts.config?.trainer ?? {}).filter((k) => k !== 'epochs');
  if (others.length || Object.keys(opts.config?.model ?? {}).length || opts.configPath) {
    throw new PipelineError(`a resumed run keeps its configuration (only the number of epochs may change); start a new run to change ${[...others, ...Object.keys(opts.config?.model ?? {})].join(', ') || 'the config file'}`, 'Usage');
  }
  if (run.epochsDone >= config.trainer.epochs) {
    throw new PipelineError(`run ${run.runId} has already trained ${run.epochsDone} of ${config.trainer.epochs} epochs: pass --epochs N (more than ${run.epochsDone}) to train it further`, 'Usage');
  }
  return claimRun({ ...run, config, state: 'queued', error: undefined }, 'queued');
}

/**
 * Trains (creating the run unless `opts.runId`/`opts.resumeRunId` names one). Resolves with the
 * final RunInfo whatever the outcome: state 'finished', 'cancelled' (signal), or 'failed' (e.g.
 * NaN loss; `error` says why). Rejects only for errors before the run starts (PipelineError).
 */
export async function train(opts: TrainOptions, hooks: TrainHooks = {}): Promise<RunInfo> {
  const trainDir = resolve(opts.trainDir);
  let run: StoredRun = opts.runId ? readRun(trainDir, opts.runId) : prepareRun(opts);
  if (opts.runId && (run.state === 'finished' || run.epochsDone >= run.config.trainer.epochs)) {
    throw new PipelineError(`run ${run.runId} is already ${run.state} (${run.epochsDone}/${run.config.trainer.epochs} epochs)`, 'Usage');
  }
  const log = (line: string) => hooks.onLog?.(line);
  const save = (patch: Partial<StoredRun>): StoredRun => {
    run = writeRun({ ...run, ...patch });
    hooks.onRun?.(run);
    return run;
  };
  const base = { runId: run.runId, jobId: opts.jobId ?? '', category: run.category, model: run.model } as const;
  let tensorsBefore = -1;
  const disposables: Array<{ dispose(): void }> = [];
  try {
    run = claimRun({ ...run, error: undefined }, 'running');
    hooks.onRun?.(run);
    const engine = await ensureEngine(opts.backend);
    tensorsBefore = tf.memory().numTensors;
    save({ engine: { backend: engine.backend, device: engine.device } });
    const cfg = run.config;
    const ds = await datasetForJob({ purpose: 'train', categoryDir: run.datasetPath, inputSize: cfg.model.input_size, runDir: run.dir, withTest: cfg.trainer.validate_every > 0, onDatasetReport: hooks.onDatasetReport });
    if (ds.train.length === 0) throw new PipelineError(`${run.datasetPath}: no training images (train/good is empty)`, 'BadDataset');
    const split = run.holdout
      ? splitByNames(ds.train, run.holdout.images)
      : splitHoldout(ds.train, { fraction: cfg.trainer.holdout ?? 0, min: cfg.trainer.holdout_min ?? 5, seed: cfg.trainer.seed });
    if (!run.holdout) save({ holdout: { images: split.holdout.map((i) => basename(i.path)), fraction: cfg.trainer.holdout ?? 0, seed: cfg.trainer.seed } });
    log(
      `run ${run.runId}: ${split.train.length} training images, ${split.holdout.length} held out for calibration, ${ds.test.length} test images; backbone ${cfg.model.backbone} at ${cfg.model.input_size}, ${engine.backend} on ${engine.device}`,
    );
    if (!split.holdout.length) log('no held-out images (trainer.holdout 0 or fewer than 4 training images): detection will use the paper’s uncalibrated tree NFA');
    const extractor = await buildExtractor(cfg, opts.signal, log);
    disposables.push(extractor);
    const featureProgress = (what: string) => (done: number, total: number, computed: boolean) => {
      if (computed || done === total) hooks.onUpdate?.({ ...base, phase: 'features', epoch: run.epochsDone, epochs: cfg.trainer.epochs, step: done, steps: total, message: what });
    };
    const trainFeatures = await loadFeatures(split.train.map((i) => i.path), {
      trainDir,
      extractor,
      extractorId: extractorId(cfg),
      loadImage: tensorImageLoader,
      signal: opts.signal,
      onProgress: featureProgress('training images'),
    });
    disposables.push(trainFeatures);
    let holdoutFeatures: FeatureSet | undefined;
    if (split.holdout.length) {
      holdoutFeatures = await loadFeatures(split.holdout.map((i) => i.path), { trainDir, extractor, extractorId: extractorId(cfg), loadImage: tensorImageLoader, signal: opts.signal, onProgress: featureProgress('held-out images') });
      disposables.push(holdoutFeatures);
    }
    const validateEvery = cfg.trainer.validate_every;
    let validation: ValidationData | undefined;
    if (validateEvery > 0 && ds.test.length > 0) {
      validation = await loadValidationData(ds.test, trainDir, extractor, cfg, opts.signal, featureProgress('test images'));
      disposables.push(validation.features);
    }
    // Model: fresh, or the last complete epoch of this run.
    const ckpt = join(run.dir, RUN_FILES.checkpoint);
    let startEpoch = 0;
    let model: AnomalyModel;
    let optimizerTensors: TensorMap | undefined;
    if (run.epochsDone > 0 && existsSync(ckpt)) {
      const loaded = loadModelFromCheckpoint(ckpt, { extractor, kind: run.model });
      model = loaded.model;
      startEpoch = Number(loaded.metadata.epoch ?? run.epochsDone) || run.epochsDone;
      truncateMetrics(run.dir, startEpoch);
      const ts = join(run.dir, RUN_FILES.trainState);
      if (existsSync(ts)) {
        try {
          const f = readSafetensors(ts);
          if (f.metadata.epoch === String(startEpoch)) optimizerTensors = f.tensors;
        } catch (e) {
          log(`warning: ${describeError(e)}: the optimizer state is not used (Adam starts again from zero moments)`);
        }
      }
      if (startEpoch !== run.epochsDone) save({ epochsDone: startEpoch });
    } else {
      model = createModel(run.model, cfg.model, extractor, { seed: cfg.trainer.seed });
    }
    disposables.push(model);
    const parallel = await startWorkers(model, engine, log);
    if (parallel) disposables.push({ dispose: () => void parallel.dispose() });
    const best: StoredRun['best'] = { ...run.best };
    const bestOf = (m: SelectionMetric) => (best as Record<string, number | undefined>)[m];
    const outcome = await runTraining(
      {
        model,
        features: trainFeatures,
        epochs: cfg.trainer.epochs,
        startEpoch,
        batchSize: cfg.trainer.batch_train,
        learningRate: cfg.trainer.learning_rate,
        weightDecay: cfg.trainer.weight_decay,
        seed: cfg.trainer.seed,
        optimizerState: optimizerTensors,
        validateEvery,
        validate: validation ? (epoch) => validateModel(model, validation!, epoch, opts.signal, holdoutFeatures) : undefined,
        patience: cfg.trainer.patience,
        earlyStopState: earlyStopStateOf(run.dir, startEpoch),
        signal: opts.signal,
        step: parallel ? (f, adam) => parallel.step(f, adam) : undefined,
      },
      {
        onLog: log,
        onStep: (p) => hooks.onUpdate?.({ ...base, phase: 'train', ...p, best: { ...best } }),
        onValidationStart: (epoch) => hooks.onUpdate?.({ ...base, phase: 'validate', epoch, epochs: cfg.trainer.epochs, step: 0, steps: validation?.items.length ?? 0, message: 'validating on the test split' }),
        onEpochEnd: (r, optimizer) => {
          const meta = { epoch: String(r.epoch), runId: run.runId };
          saveModelCheckpoint(ckpt, model, meta);
          writeSafetensors(join(run.dir, RUN_FILES.trainState), optimizer(), meta);
          const improved: SelectionMetric[] = [];
          if (r.metrics) {
            for (const m of METRIC_NAMES) {
              const v = r.metrics[m];
              if (v !== undefined && Number.isFinite(v) && (bestOf(m) === undefined || v > bestOf(m)!)) {
                improved.push(m);
                (best as Record<string, number>)[m] = v;
                saveModelCheckpoint(join(run.dir, RUN_FILES.best(m)), model, { ...meta, metric: m, value: String(v) });
              }
            }
            if (improved.includes('pixel_auroc')) best.epoch = r.epoch;
          }
          appendMetrics(run.dir, { epoch: r.epoch, loss: r.loss, lr: r.lr, seconds: r.seconds, imagesPerSecond: r.imagesPerSecond, metrics: r.metrics, time: new Date().toISOString() });
          save({ epochsDone: r.epoch, best: { ...best } });
          if (r.metrics) {
            hooks.onUpdate?.({ ...base, phase: 'validate', epoch: r.epoch, epochs: cfg.trainer.epochs, step: validation?.items.length ?? 0, steps: validation?.items.length ?? 0, loss: r.loss, metrics: { ...r.metrics }, best: { ...best } });
          }
        },
      },
    );
    const state: RunState = outcome.state;
    if (holdoutFeatures && outcome.state !== 'failed' && outcome.epochsDone > 0) {
      try {
        const entry = await calibrateCheckpoints(run, extractor, holdoutFeatures, opts.signal);
        save({ calibration: summaryOf(entry, split.holdout.length) });
        if (entry) log(`calibrated the detection threshold: ${summaryOf(entry, split.holdout.length).description}`);
      } catch (e) {
        log(`calibration failed (${userMessage(e)}): evaluate and predict will calibrate again`);
      }
    } else if (!split.holdout.length) save({ calibration: summaryOf(undefined, 0) });
    save({ state, pid: undefined, error: outcome.state === 'failed' ? outcome.message : undefined, epochsDone: outcome.epochsDone });
    if (outcome.message && outcome.state !== 'failed') log(outcome.message);
    hooks.onUpdate?.({ ...base, phase: 'done', epoch: run.epochsDone, epochs: cfg.trainer.epochs, step: 0, steps: 0, best: { ...run.best }, message: outcome.state === 'failed' ? outcome.message : outcome.state });
    return run;
  } catch (e) {
    const cancelled = opts.signal?.aborted && ((e as Error)?.name === 'AbortError' || /cancel/i.test((e as Error)?.message ?? ''));
    const msg = userMessage(e);
    if (!cancelled && process.env.UFLOW_DEBUG) log(`training error: ${(e as Error)?.stack ?? msg}`);
    save({ state: cancelled ? 'cancelled' : 'failed', pid: undefined, error: cancelled ? undefined : msg });
    return run;
  } finally {
    for (const d of disposables.reverse()) d.dispose();
    const leaked = tensorsBefore < 0 ? 0 : tf.memory().numTensors - tensorsBefore;
    if (leaked > 0) log(`warning: ${leaked} tensors were not freed by the training of ${run.runId}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/**
 * Worker threads for data-parallel steps (models/train/parallel.ts): the wasm and cpu backends use
 * one core per thread, so with ≥ 2 cores two workers each take half of every batch (×2 measured in
 * bench/train-step.bench.ts). UFLOW_TRAIN_WORKERS=N overrides (1: train on this thread). U-Flow and FastFlow.
 */
async function startWorkers(model: AnomalyModel, engine: EngineInfo, log: (l: string) => void): Promise<ParallelTrainer | undefined> {
  const env = process.env.UFLOW_TRAIN_WORKERS;
  const auto = (engine.backend === 'wasm' || engine.backend === 'cpu') && availableParallelism() >= 2 ? 2 : 1;
  const n = env !== undefined && /^\d+$/.test(env) ? Number(env) : auto;
  if (n < 2) return undefined;
  try {
    const p = await ParallelTrainer.create(model, { workers: n, backend: engine.tfBackend });
    log(`training on ${p.size} worker threads (${engine.backend}); set UFLOW_TRAIN_WORKERS=1 to use one`);
    return p;
  } catch (e) {
    log(`worker threads unavailable (${(e as Error).message}); training on one thread`);
    return undefined;
  }
}

/** The message of an error for a person: ours as is, others with their kind. */
function userMessage(e: unknown): string {
  if (e instanceof PipelineError || e instanceof DatasetError || e instanceof ImageError || e instanceof ConfigError || e instanceof TensorFileError) return e.message;
  return describeError(e);
}

/** Re-throws the errors of other modules that a person can act on as PipelineErrors. */
function asPipelineError(e: unknown, code: PipelineError['code'] = 'BadDataset'): never {
  if (e instanceof PipelineError) throw e;
  if (e instanceof DatasetError || e instanceof ImageError) throw new PipelineError(e.message, 'BadDataset');
  if (e instanceof ConfigError) throw new PipelineError(e.message, /^overrides\b/.test(e.message) ? 'Usage' : 'JobFailed');
  if (e instanceof TensorFileError) throw new PipelineError(e.message, 'JobFailed');
  throw new PipelineError(describeError(e), code);
}

/** The engine in use, started on first need; a named backend other than the current one switches. */
async function ensureEngine(backend?: string): Promise<EngineInfo> {
  const cur = await engineSettled();
  if (cur && (!backend || backend === cur.backend)) return cur;
  try {
    return await initEngine({ backend });
  } catch (e) {
    throw new PipelineError((e as Error).message, backend ? 'Usage' : 'NotAvailable');
  }
}

interface ResolvedDataset {
  categoryDir: string;
  category: string;
}

/**
 * The category folder a (datasetPath, category) pair names: `<datasetPath>/<category>` for a root
 * of categories, the folder itself for a category or a plain folder of images.
 */
export function resolveDataset(datasetPath: string, category?: string): ResolvedDataset {
  const abs = resolve(datasetPath);
  if (category !== undefined) {
    if (!category || /[/\\]/.test(category) || category === '.' || category === '..') throw new PipelineError(`'${category}' is not a category name`, 'Usage');
    const sub = join(abs, category);
    if (existsSync(join(sub, 'train'))) return { categoryDir: sub, category };
  }
  let layout;
  try {
    layout = detectLayout(abs);
  } catch (e) {
    asPipelineError(e);
  }
  if (layout.layout === 'mvtec-root') {
    const names = layout.categories.map((c) => basename(c));
    if (category === undefined) {
      if (layout.categories.length === 1) return { categoryDir: layout.categories[0]!, category: names[0]! };
      throw new PipelineError(`${abs} holds several categories (${names.join(', ')}): choose one with -cat <category>`, 'Usage');
    }
    throw new PipelineError(`${abs} has no category '${category}' (a folder ${join(abs, category)}/train/good): categories found: ${names.join(', ')}`, 'BadDataset');
  }
  if (layout.categories.length === 0) {
    throw new PipelineError(`${abs}: no images: put normal images in <category>/train/good (MVTec layout) or directly in the folder`, 'BadDataset');
  }
  const dir = layout.categories[0]!;
  if (category !== undefined && category !== basename(dir)) {
    throw new PipelineError(`${abs} is the category '${basename(dir)}' itself, not a folder of categories: drop -cat ${category}, or point -data at the folder that holds ${category}/`, 'BadDataset');
  }
  if (layout.layout === 'mvtec-category' && !existsSync(join(dir, 'train', 'good'))) {
    throw new PipelineError(`${dir}: no train/good folder: an MVTec category needs ${basename(dir)}/train/good/*.png with the normal training images`, 'BadDataset');
  }
  return { categoryDir: dir, category: basename(dir) };
}

function resolveConfig(category: string, model: 'uflow' | 'fastflow', configPath?: string, overrides?: ConfigOverrides) {
  try {
    return loadConfig({ category, model, path: configPath, overrides });
  } catch (e) {
    asPipelineError(e, 'JobFailed');
  }
}

function safeFingerprint(dir: string): string {
  try {
    return datasetFingerprint(dir);
  } catch (e) {
    asPipelineError(e);
  }
}

function splitsOf(categoryDir: string): { train: SplitItem[]; test: SplitItem[] } {
  try {
    return { train: listSplit(categoryDir, 'train'), test: listSplit(categoryDir, 'test') };
  } catch (e) {
    asPipelineError(e);
  }
}

/** What, besides name and size, identifies an extractor's output (folded into the feature-cache key). */
function extractorId(cfg: RunConfig): string {
  const pre = cfg.model.backbone_preprocessing === 'caffe' ? { pre: 'caffe' } : {};
  return JSON.stringify({ layers: cfg.model.backbone_layers ?? null, range: cfg.model.backbone_input_range ?? null, ...pre });
}

async function buildExtractor(cfg: RunConfig, signal: AbortSignal | undefined, log: (l: string) => void): Promise<FeatureExtractor> {
  const m = cfg.model;
  try {
    let weights: string | string[] | undefined;
    if (backboneNeedsWeights(m.backbone)) {
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
      return await createExtractor({ backbone: m.backbone, inputSize: m.input_size, layers: m.backbone_layers, inputRange: m.backbone_input_range, preprocessing: m.backbone_preprocessing, weights });
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

/** The feature cache's loader: RGB [0,1] at size×size. */
async function tensorImageLoader(path: string, size: number): Promise<tf.Tensor3D> {
  const img = await loadImageForModel(path, size);
  return tf.tensor3d(img.data, [size, size, 3]);
}

/** Test split with features and masks at the evaluation size, for validation and evaluation. */
interface ValidationData {
  items: SplitItem[];
  features: FeatureSet;
  masks: Uint8Array[];
  targetSize: number;
}

const TARGET_SIZE = 256;

async function loadMasks(items: SplitItem[], T: number): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (const it of items) out.push(it.maskPath ? await loadMask(it.maskPath, T) : new Uint8Array(T * T));
  return out;
}

async function loadValidationData(
  items: SplitItem[],
  trainDir: string,
  extractor: FeatureExtractor,
  cfg: RunConfig,
  signal: AbortSignal | undefined,
  onProgress?: (done: number, total: number, computed: boolean) => void,
): Promise<ValidationData> {
  const features = await loadFeatures(items.map((i) => i.path), { trainDir, extractor, extractorId: extractorId(cfg), loadImage: tensorImageLoader, signal, onProgress });
  try {
    return { items, features, masks: await loadMasks(items, TARGET_SIZE), targetSize: TARGET_SIZE };
  } catch (e) {
    features.dispose();
    throw e;
  }
}

async function validateModel(model: AnomalyModel, v: ValidationData, epoch: number, signal?: AbortSignal, holdout?: FeatureSet): Promise<ValidationResult> {
  void epoch;
  // mIoU at the threshold the run will use: calibrated on the held-out images of this epoch's model.
  const calibration = holdout ? fitNull(await latentsOf(model, holdout.levels, 8, signal)) : undefined;
  const maps = await computeMaps(model, v.features.levels, { targetSize: v.targetSize, nfa: calibration ? 'calibrated' : 'tree', calibration, signal });
  const m = computeMetricSet(v.items, v.masks, sameMaps(maps), { curves: false }).overall;
  const r: ValidationResult = {};
  for (const k of ['image_auroc', 'pixel_auroc', 'aupro', 'miou'] as const) if (m[k] !== null) r[k] = m[k]!;
  return r;
}

/** The checkpoint files of a run that exist (last first). */
function checkpointFiles(run: RunInfo): string[] {
  return [RUN_FILES.checkpoint, ...METRIC_NAMES.map((m) => RUN_FILES.best(m))].map((f) => join(run.dir, f)).filter((f) => existsSync(f));
}

/** Fits the calibration of every checkpoint of the run; returns the one predict uses. */
async function calibrateCheckpoints(run: StoredRun, extractor: FeatureExtractor, holdout: FeatureSet, signal?: AbortSignal): Promise<CalibrationEntry | undefined> {
  const names = run.holdout?.images ?? [];
  let main: CalibrationEntry | undefined;
  for (const file of checkpointFiles(run)) {
    let entry = savedCalibration(run.dir, file);
    if (!entry) {
      const { model } = loadCheckpointChecked(file, extractor);
      try {
        entry = fitAndSave(run.dir, file, names, await latentsOf(model, holdout.levels, 8, signal), TARGET_SIZE);
      } finally {
        model.dispose();
      }
    }
    if (file === predictorCheckpoint(run)) main = entry;
  }
  return main;
}

/** The held-out images of a run that still exist in its dataset. */
function holdoutItems(run: RunInfo, categoryDir = run.datasetPath): SplitItem[] {
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
async function calibrationFor(run: RunInfo, file: string, model: AnomalyModel, extractor: FeatureExtractor, trainDir: string, signal?: AbortSignal): Promise<CalibrationEntry | undefined> {
  const saved = savedCalibration(run.dir, file);
  if (saved) return saved;
  const items = holdoutItems(run);
  if (items.length < 2) return undefined;
  const feats = await loadFeatures(items.map((i) => i.path), { trainDir, extractor, extractorId: extractorId(run.config), loadImage: tensorImageLoader, signal });
  try {
    return fitAndSave(run.dir, file, run.holdout!.images, await latentsOf(model, feats.levels, 8, signal), TARGET_SIZE);
  } finally {
    feats.dispose();
  }
}

/** The checkpoint predict and the hover use: best-pixel_auroc when training validated, else the last. */
function predictorCheckpoint(run: RunInfo): string {
  const best = join(run.dir, RUN_FILES.best('pixel_auroc'));
  return existsSync(best) ? best : join(run.dir, RUN_FILES.checkpoint);
}

/** Early-stopping position after `epoch` from metrics.jsonl (resume). */
function earlyStopStateOf(dir: string, epoch: number): { best: number; bad: number } | undefined {
  let best = -Infinity;
  let bad = 0;
  for (const r of readMetrics(dir)) {
    if (r.epoch > epoch || r.metrics?.pixel_auroc === undefined) continue;
    if (r.metrics.pixel_auroc > best) {
      best = r.metrics.pixel_auroc;
      bad = 0;
    } else bad++;
  }
  return Number.isFinite(best) ? { best, bad } : undefined;
}

// ---------------------------------------------------------------------------------------------
// Evaluation

export interface EvaluateOptions extends DatasetReportHooks {
  /** Evaluate without the test images whose mask is missing, mis-sized or unreadable (listed in the report) instead of refusing. */
  allowMaskProblems?: boolean;
  trainDir: string;
  /** Default: the newest finished run of `category`. */
  runId?: string;
  category?: string;
  /** Default: the run's dataset. */
  datasetPath?: string;
  /** Exact (continuous-relaxation) tail probabilities in the NFA; slower. The same as nfa 'block-hp'. */
  highPrecision?: boolean;
  /**
   * The detection: 'calibrated' (default: the null fitted on the run's held-out normal images; the
   * paper's tree when the run has none) or the paper's computation ('tree', 'block', 'block-hp').
   */
  nfa?: NfaVariant;
  /**
   * 'best' (default, as the official evaluate.py): each metric from the checkpoint selected on it
   * during training (best-<metric>.safetensors), falling back to the last; 'last': checkpoint.safetensors.
   */
  checkpoint?: 'best' | 'last';
  /** Write per-image PNG maps under maps/ (default true). */
  writeMaps?: boolean;
  backend?: string;
  signal?: AbortSignal;
  onProgress?(done: number, total: number, message: string): void;
}

/** The run a command means: `runId`, else the newest finished (else usable) run of `category`. */
function pickRun(trainDir: string, runId?: string, category?: string): StoredRun {
  if (runId) return readRun(trainDir, runId);
  const run = newestFinishedRun(trainDir, category) ?? newestUsableRun(trainDir, category);
  if (!run) {
    throw new PipelineError(
      `no trained run${category ? ` of '${category}'` : ''} in ${join(trainDir, 'runs')}: train one first (uflow train${category ? ` -cat ${category}` : ''} -data <dataset>), or pass -train_dir / --run`,
      'NotFound',
    );
  }
  return run;
}

/** The category folder to evaluate a run on: `datasetPath` (a root or the category itself) or the run's own. */
function evaluationDataset(run: RunInfo, datasetPath?: string): string {
  if (!datasetPath) {
    if (!existsSync(run.datasetPath)) throw new PipelineError(`${run.datasetPath}: the dataset run ${run.runId} was trained on is gone: pass -data <folder>`, 'BadDataset');
    return run.datasetPath;
  }
  const abs = resolve(datasetPath);
  if (existsSync(join(abs, run.category, 'train')) || existsSync(join(abs, run.category, 'test'))) return join(abs, run.category);
  return resolveDataset(abs).categoryDir;
}

/** The checkpoint each metric is computed from. */
function checkpointsFor(run: RunInfo, mode: 'best' | 'last'): Record<SelectionMetric, string> {
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

/** Evaluates a run on its test split; writes evaluation.json (atomically) and returns it. */
export async function evaluate(opts: EvaluateOptions): Promise<Evaluation> {
  const trainDir = resolve(opts.trainDir);
  const run = pickRun(trainDir, opts.runId, opts.category);
  const categoryDir = evaluationDataset(run, opts.datasetPath);
  const items = (await datasetForJob({ purpose: 'evaluate', categoryDir, inputSize: run.config.model.input_size, runDir: run.dir, allowMaskProblems: opts.allowMaskProblems, onDatasetReport: opts.onDatasetReport })).test;
  if (!items.length) throw new PipelineError(`${categoryDir}: no test images (test/good and test/<defect> with ground_truth masks): nothing to evaluate`, 'BadDataset');
  if (!items.some((i) => i.label === 0) || !items.some((i) => i.label === 1)) {
    throw new PipelineError(`${categoryDir}: the test split needs both good images (test/good) and defective ones (test/<defect>) for AUROC`, 'BadDataset');
  }
  const ckpts = checkpointsFor(run, opts.checkpoint ?? 'best');
  const engine = await ensureEngine(opts.backend);
  void engine;
  const before = tf.memory().numTensors;
  const progress = (msg: string) => (done: number, total: number) => opts.onProgress?.(done, total, msg);
  const extractor = await buildExtractor(run.config, opts.signal, () => {});
  const T = TARGET_SIZE;
  let nfaMode: NfaVariant = opts.highPrecision ? 'block-hp' : (opts.nfa ?? 'calibrated');
  let calibration: CalibrationEntry | undefined;
  let holdoutAlarms: FalseAlarms | undefined;
  const holdout = holdoutItems(run);
  try {
    const data = await loadValidationData(items, trainDir, extractor, run.config, opts.signal, (d, t) => progress('features')(d, t));
    try {
      // One pass per distinct checkpoint; the NFA only where mIoU is taken from.
      const byFile = new Map<string, SelectionMetric[]>();
      for (const m of METRIC_NAMES) byFile.set(ckpts[m], [...(byFile.get(ckpts[m]) ?? []), m]);
      const mapsOf = new Map<SelectionMetric, MapSet>();
      for (const [file, metrics] of byFile) {
        const { model } = loadCheckpointChecked(file, extractor);
        try {
          const withNfa = metrics.includes('miou');
          if (withNfa && nfaMode === 'calibrated') {
            calibration = await calibrationFor(run, file, model, extractor, trainDir, opts.signal);
            if (!calibration) nfaMode = 'tree';
            else holdoutAlarms = calibration.holdoutFalseAlarms;
          }
          if (withNfa && nfaMode !== 'calibrated' && holdout.length) holdoutAlarms = await officialHoldoutAlarms(model, holdout, nfaMode, trainDir, extractor, run.config, opts.signal);
          const maps = await computeMaps(model, data.features.levels, {
            targetSize: T,
            batchSize: run.config.trainer.batch_val,
            nfa: withNfa ? nfaMode : 'none',
            calibration: calibration?.fit,
            signal: opts.signal,
            onProgress: progress(`maps (${basename(file)})`),
          });
          for (const m of metrics) mapsOf.set(m, maps);
        } finally {
          model.dispose();
        }
      }
      const aurocMaps = mapsOf.get('pixel_auroc')!;
      const nfaMaps = mapsOf.get('miou')!;
      const result = computeMetricSet(items, data.masks, { image: mapsOf.get('image_auroc')!, pixel: aurocMaps, pro: mapsOf.get('aupro')!, nfa: nfaMaps }, { curves: true, perDefect: true });
      opts.onProgress?.(0, 1, 'threshold evidence');
      const ts = thresholdSummary(items, data.masks, nfaMaps.negLogNfa!, T, 0);
      const goodIdx = items.map((it, i) => (it.label === 0 ? i : -1)).filter((i) => i >= 0);
      const worstPath = (w: FalseAlarms['worst'], paths: string[]) => (w ? { ...w, path: paths[w.index] } : null);
      const threshold: ThresholdEvaluation = {
        variant: nfaMode,
        calibration:
          nfaMode === 'calibrated'
            ? summaryOf(calibration, holdout.length)
            : { variant: nfaMode, description: calibrationSummaryOfficial(nfaMode, opts.nfa, holdout.length), images: 0 },
        automatic: 0,
        falseAlarms: {
          testGood: { ...ts.falseAlarms.testGood, worst: worstPath(ts.falseAlarms.testGood.worst, goodIdx.map((i) => items[i]!.path)) },
          ...(holdoutAlarms ? { holdout: { ...holdoutAlarms, worst: worstPath(holdoutAlarms.worst, holdout.map((i) => i.path)) } } : {}),
        },
        miou: ts.miou,
        perDefect: ts.perDefect,
        curve: ts.curve,
      };
      const images: ImageResult[] = [];
      const writeMaps = opts.writeMaps !== false;
      for (let i = 0; i < items.length; i++) {
        if (opts.signal?.aborted) throw new DOMException('cancelled', 'AbortError');
        const it = items[i]!;
        const r: ImageResult = {
          path: it.path,
          defect: it.defect,
          label: it.label,
          score: mapsOf.get('image_auroc')!.scores[i]!,
          maxNegLogNfa: nfaMaps.maxNegLogNfa[i]!,
          detectedPixels: result.perImage[i]!.detectedPixels,
          iou: result.perImage[i]!.iou,
          ...(it.maskPath ? { maskPath: it.maskPath } : {}),
          regions: regionsOf(nfaMaps.negLogNfa![i]!, T, T),
        };
        if (writeMaps) r.maps = await writeImageMaps(run.dir, it, aurocMaps.anomaly[i]!, nfaMaps.negLogNfa![i]!, T, mapRangeOf(run.model));
        images.push(r);
        if (writeMaps && (i % 8 === 7 || i === items.length - 1)) opts.onProgress?.(i + 1, items.length, 'PNG maps');
      }
      const ev: Evaluation & { checkpoints: Record<string, string>; nfa: string } = {
        runId: run.runId,
        category: run.category,
        model: run.model,
        datasetPath: categoryDir,
        highPrecision: Boolean(opts.highPrecision),
        evaluatedAt: new Date().toISOString(),
        targetSize: T,
        overall: result.overall,
        perDefect: result.perDefect,
        curves: result.curves,
        images,
        checkpoints: Object.fromEntries(METRIC_NAMES.map((m) => [m, basename(ckpts[m])])),
        nfa: nfaMode,
        threshold,
      };
      atomicWriteJson(join(run.dir, RUN_FILES.evaluation), ev);
      return ev;
    } finally {
      data.features.dispose();
    }
  } catch (e) {
    if ((e as Error)?.name === 'AbortError') throw new PipelineError('evaluation cancelled', 'Cancelled');
    throw asPipelineError(e, 'JobFailed');
  } finally {
    extractor.dispose();
    const leaked = tf.memory().numTensors - before;
    if (leaked > 0) process.emitWarning(`uflow evaluate: ${leaked} tensors left behind`);
  }
}

/** Why an official variant is in use, for the record. */
function calibrationSummaryOfficial(used: NfaVariant, asked: NfaVariant | undefined, holdout: number): string {
  if (asked === undefined || asked === 'calibrated') {
    return holdout ? 'calibration asked for but the held-out images could not be read: the paper’s tree NFA under N(0, I)' : 'no held-out normal images in this run: the paper’s tree NFA under N(0, I), not calibrated';
  }
  return `the paper’s ${used} NFA under N(0, I), as asked (--nfa ${used}); not calibrated`;
}

/** False alarms of an official variant on the held-out normal images (measured directly: nothing was fitted on them). */
async function officialHoldoutAlarms(model: AnomalyModel, items: SplitItem[], nfa: NfaMode, trainDir: string, extractor: FeatureExtractor, cfg: RunConfig, signal?: AbortSignal): Promise<FalseAlarms> {
  const feats = await loadFeatures(items.map((i) => i.path), { trainDir, extractor, extractorId: extractorId(cfg), loadImage: tensorImageLoader, signal });
  try {
    const maps = await computeMaps(model, feats.levels, { targetSize: TARGET_SIZE, nfa, signal });
    return { ...falseAlarmStats(maps.negLogNfa!, TARGET_SIZE, TARGET_SIZE, 0), folds: 0 };
  } finally {
    feats.dispose();
  }
}

/** Flow steps of a U-Flow state dict with `levels` scales: stage j, step k is module j·(steps+3)+k, so the last block is (levels−1)·(steps+3)+steps−1. */
function flowStepsOf(state: TensorMap, levels: number, file: string): number {
  let last = -1;
  for (const k of state.keys()) {
    const m = /(?:^|\.)flow\.module_list\.(\d+)\.global_scale$/.exec(k);
    if (m) last = Math.max(last, Number(m[1]));
  }
  const steps = (last + 1 - 3 * (levels - 1)) / levels;
  if (last < 0 || !Number.isInteger(steps) || steps < 1) throw new PipelineError(`${file}: its flow (flow.module_list.*) does not fit a U-Flow with ${levels} scales`, 'JobFailed');
  return steps;
}

function loadCheckpointChecked(file: string, extractor: FeatureExtractor): { model: AnomalyModel } {
  try {
    return loadModelFromCheckpoint(file, { extractor });
  } catch (e) {
    asPipelineError(e, 'JobFailed');
  }
}

/** Image bytes at T×T (RGB), as the model saw it. */
async function imageAt(path: string, T: number): Promise<RawImage> {
  const img = await loadImageForModel(path, T);
  const data = new Uint8Array(T * T * 3);
  for (let i = 0; i < data.length; i++) data[i] = Math.round(img.data[i]! * 255);
  return { data, width: T, height: T, channels: 3 };
}

/** The −log NFA colour scale: 0 (the detection threshold) to at least 10. */
function nfaRange(m: ArrayLike<number>): [number, number] {
  let hi = 10;
  for (let i = 0; i < m.length; i++) if (Number.isFinite(m[i]!) && m[i]! > hi) hi = m[i]!;
  return [0, hi];
}

/** Writes the four PNGs of one test image under maps/ and returns their paths relative to the run. */
async function writeImageMaps(dir: string, it: SplitItem, anomaly: Float32Array, nfa: Float32Array, T: number, range: [number, number] = [0, 1]): Promise<NonNullable<ImageResult['maps']>> {
  const stem = basename(it.path).replace(/\.[^.]+$/, '').replace(/[^A-Za-z0-9_.-]+/g, '_');
  const rel = (kind: string) => join(RUN_FILES.maps, it.defect.replace(/[^A-Za-z0-9_.-]+/g, '_'), `${stem}.${kind}.png`);
  const img = await imageAt(it.path, T);
  const det = new Uint8Array(T * T);
  for (let i = 0; i < det.length; i++) det[i] = nfa[i]! > 0 ? 1 : 0;
  const files = {
    anomaly: rel('anomaly'),
    nfa: rel('nfa'),
    segmentation: rel('segmentation'),
    overlay: rel('overlay'),
  };
  atomicWriteFile(join(dir, files.anomaly), heatmapPng(anomaly, T, T, { range }));
  atomicWriteFile(join(dir, files.nfa), heatmapPng(nfa, T, T, { range: nfaRange(nfa) }));
  atomicWriteFile(join(dir, files.segmentation), encodePng(drawContour(img, det, { thickness: 1 }), T, T, 3));
  atomicWriteFile(join(dir, files.overlay), encodePng(overlayHeatmap(img, anomaly, T, T, { range, alpha: 0.5 }), T, T, 3));
  return files;
}

// ---------------------------------------------------------------------------------------------
// Prediction

export interface PredictorOptions {
  trainDir: string;
  /** 'tree': the paper's NFA even when the run is calibrated; default: the run's calibration. */
  nfa?: 'calibrated' | 'tree';
  /** Default: the newest finished run (of `category` when given). */
  runId?: string;
  category?: string;
  backend?: string;
}

export interface PredictOptions {
  /** Include the raw maps (for values under the cursor). */
  includeRaw?: boolean;
}

/** Loads a run once (model kept in memory) and predicts image after image. */
export class Predictor {
  private disposed = false;

  private constructor(
    readonly run: RunInfo,
    private readonly extractor: FeatureExtractor,
    private readonly model: AnomalyModel,
    /** Bytes of the tensors it holds. */
    readonly bytes: number,
    /** The checkpoint file used. */
    readonly checkpoint: string,
    /** The null fitted on the run's held-out images (absent: the paper's tree NFA). */
    readonly calibration?: NullFit,
  ) {}

  /** The detection in use. */
  get nfaVariant(): NfaVariant {
    return this.calibration ? 'calibrated' : 'tree';
  }

  /**
   * Opens the run's model: best-pixel_auroc.safetensors when training validated, else the last
   * checkpoint.
   */
  static async open(opts: PredictorOptions): Promise<Predictor> {
    const trainDir = resolve(opts.trainDir);
    const run = pickRun(trainDir, opts.runId, opts.category);
    const file = predictorCheckpoint(run);
    if (!existsSync(file)) throw new PipelineError(`run ${run.runId} has no checkpoint yet (${file}): it has not completed an epoch`, 'NotFound');
    await ensureEngine(opts.backend);
    const before = tf.memory().numBytes;
    const extractor = await buildExtractor(run.config, undefined, () => {});
    let model: AnomalyModel | undefined;
    try {
      model = loadCheckpointChecked(file, extractor).model;
      const bytes = Math.max(0, tf.memory().numBytes - before);
      // Saved with the run (fitted once, at the end of training, or here on first use and saved).
      const cal = opts.nfa === 'tree' ? undefined : await calibrationFor(run, file, model, extractor, trainDir);
      return new Predictor(run, extractor, model, bytes, file, cal?.fit);
    } catch (e) {
      model?.dispose();
      extractor.dispose();
      throw e;
    }
  }

  /**
   * Opens a U-Flow checkpoint file that is not one of our runs: a released checkpoint
   * (`models/<metric>/<category>.ckpt`, Lightning, MS-CaiT at 448) or any file in the reference
   * naming that holds the MS-CaiT backbone weights (`feature_extractor.extractor1.` / `extractor2.`)
   * beside the flow. The number of flow steps is read from the flow's module indices.
   */
  static async openFile(file: string, opts: { backend?: string } = {}): Promise<Predictor> {
    const path = resolve(file);
    if (!existsSync(path)) throw new PipelineError(`${path}: no such checkpoint file: check the path`, 'NotFound');
    await ensureEngine(opts.backend);
    const before = tf.memory().numBytes;
    let state: TensorMap;
    try {
      state = readModelCheckpoint(path).state;
    } catch (e) {
      asPipelineError(e, 'JobFailed');
    }
    if (![...state.keys()].some((k) => /extractor1\.patch_embed\./.test(k))) {
      throw new PipelineError(`${path}: holds no MS-CaiT backbone weights (feature_extractor.extractor1/2): for a run of this product use --run RUN_ID instead of --checkpoint`, 'Usage');
    }
    let extractor: FeatureExtractor | undefined;
    let model: AnomalyModel | undefined;
    try {
      extractor = createMsCaitExtractor(state);
      const flowSteps = flowStepsOf(state, extractor.channels.length, path);
      model = modelFromConfig('uflow', configFromExtractor(extractor, flowSteps), extractor);
      model.loadStateDict(state, path);
      const now = new Date().toISOString();
      const category = basename(path).replace(/\.[^.]+$/, '');
      const config = defaultConfig(category, 'uflow');
      config.model = { ...config.model, backbone: 'mcait', input_size: extractor.inputSize, flow_steps: flowSteps };
      const run: RunInfo = {
        runId: basename(path),
        dir: dirname(path),
        model: 'uflow',
        category,
        datasetPath: '',
        datasetFingerprint: '',
        config,
        state: 'finished',
        createdAt: now,
        updatedAt: now,
        epochsDone: 0,
        engine: { backend: tf.getBackend(), device: '' },
        versions: {},
        best: {},
      };
      return new Predictor(run, extractor, model, Math.max(0, tf.memory().numBytes - before), path);
    } catch (e) {
      model?.dispose();
      extractor?.dispose();
      if (e instanceof PipelineError) throw e;
      throw new PipelineError(`${path}: ${(e as Error).message}`, 'JobFailed');
    }
  }

  async predict(imagePath: string, opts: PredictOptions = {}): Promise<Prediction> {
    if (this.disposed) throw new PipelineError('the predictor was disposed', 'JobFailed');
    const T = TARGET_SIZE;
    const S = this.run.config.model.input_size;
    let original: RawImage;
    let input: Float32Array;
    try {
      original = await decodeImage(imagePath);
      input = (await loadImageForModel(imagePath, S)).data;
    } catch (e) {
      asPipelineError(e);
    }
    const z = tf.tidy(() => this.model.forward(tf.tensor4d(input, [1, S, S, 3])).z);
    let maps: { anomaly: Float32Array[]; negLogNfa?: Float32Array[] };
    try {
      maps = await mapsOfLatents(z, T, this.nfaVariant, undefined, (zz, s) => this.model.anomalyMap(zz, s), this.calibration);
    } finally {
      tf.dispose(z);
    }
    const anomaly = maps.anomaly[0]!;
    const nfa = maps.negLogNfa![0]!;
    const { width: w, height: h } = original;
    const nfaFull = w === T && h === T ? nfa : resizeBilinearFloat(nfa, T, T, w, h);
    const det = new Uint8Array(w * h);
    for (let i = 0; i < det.length; i++) det[i] = nfaFull[i]! > 0 ? 1 : 0;
    const thickness = Math.max(1, Math.round(Math.max(w, h) / 256));
    let score = -Infinity;
    for (const v of anomaly) if (v > score) score = v;
    let maxNfa = -Infinity;
    for (const v of nfa) if (v > maxNfa) maxNfa = v;
    return {
      runId: this.run.runId,
      imagePath,
      score,
      maxNegLogNfa: maxNfa,
      width: w,
      height: h,
      anomalyMapPng: pngDataUri(encodePng(overlayHeatmap(original, anomaly, T, T, { range: mapRangeOf(this.model.kind), alpha: 0.5 }), w, h, 3)),
      nfaMapPng: pngDataUri(heatmapPng(nfaFull, w, h, { range: nfaRange(nfa) })),
      segmentationPng: pngDataUri(encodePng(drawContour(original, det, { thickness }), w, h, 3)),
      mapSize: T,
      regions: regionsOf(nfa, T, T),
      nfaVariant: this.nfaVariant,
      ...(opts.includeRaw ? { anomalyMap: Array.from(anomaly), negLogNfaMap: Array.from(nfa) } : {}),
    };
  }

  /** Frees the model's tensors. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.model.dispose();
    this.extractor.dispose();
  }
}

/** Resolved configuration of a run (for display). */
export type { RunConfig };

// ---------------------------------------------------------------------------------------------
// Batch prediction (CLI `uflow predict`)

export interface PredictFolderOptions extends PredictorOptions {
  /** A checkpoint file to use instead of a run (a released U-Flow .ckpt): see Predictor.openFile. */
  checkpoint?: string;
  /** Images to predict; empty: the test images of the run's dataset (or `datasetPath`). */
  images: string[];
  datasetPath?: string;
  /** Write `<name>.overlay.png`, `<name>.nfa.png`, `<name>.segmentation.png` here. */
  outDir?: string;
}

export interface PredictFolderResult {
  runId: string;
  outDir?: string;
  /** 'calibrated' or the paper's variant used. */
  nfaVariant: NfaVariant;
  images: Array<{
    imagePath: string;
    score: number;
    maxNegLogNfa: number;
    anomalous: boolean;
    /** One line: 'defect: 2 regions, strongest −log NFA 14.2 at (120, 40, 18×9)' or 'no defect (max −log NFA −1.3)'. */
    verdict: string;
    /** Detected regions in the image's own pixels: bounding box, area and −log NFA. */
    regions: Array<{ box: [number, number, number, number]; area: number; maxNegLogNfa: number }>;
    files?: string[];
  }>;
}

/** A prediction's regions in the image's own pixels (they are found at the map size). */
function regionsInImage(pr: Prediction): PredictFolderResult['images'][number]['regions'] {
  const sx = pr.width / pr.mapSize;
  const sy = pr.height / pr.mapSize;
  return (pr.regions ?? []).map((r) => ({
    box: [Math.floor(r.box[0] * sx), Math.floor(r.box[1] * sy), Math.max(1, Math.round(r.box[2] * sx)), Math.max(1, Math.round(r.box[3] * sy))],
    area: Math.round(r.area * sx * sy),
    maxNegLogNfa: r.maxNegLogNfa,
  }));
}

/** The one-line verdict of a prediction. */
export function verdictOf(maxNegLogNfa: number, regions: PredictFolderResult['images'][number]['regions']): string {
  if (!regions.length) return `no defect (max −log NFA ${maxNegLogNfa.toFixed(1)} ≤ 0)`;
  const r = regions.reduce((a, b) => (b.maxNegLogNfa > a.maxNegLogNfa ? b : a));
  return `defect: ${regions.length} region${regions.length > 1 ? 's' : ''}, strongest −log NFA ${r.maxNegLogNfa.toFixed(1)} at (${r.box[0]}, ${r.box[1]}) ${r.box[2]}×${r.box[3]} px`;
}

export async function predictFolder(opts: PredictFolderOptions): Promise<PredictFolderResult> {
  if (opts.checkpoint && !opts.images.length && !opts.datasetPath) throw new PipelineError('with --checkpoint, name the images (--image <file>) or a dataset (-data <folder>)', 'Usage');
  const predictor = opts.checkpoint ? await Predictor.openFile(opts.checkpoint, { backend: opts.backend }) : await Predictor.open(opts);
  try {
    let images = opts.images;
    if (!images.length) {
      const dir = evaluationDataset(predictor.run, opts.datasetPath);
      images = splitsOf(dir).test.map((i) => i.path);
      if (!images.length) throw new PipelineError(`${dir}: no test images to predict: pass --image <file>`, 'BadDataset');
    }
    for (const p of images) if (!existsSync(p)) throw new PipelineError(`${p}: no such image file`, 'BadDataset');
    const out: PredictFolderResult = { runId: predictor.run.runId, outDir: opts.outDir, nfaVariant: predictor.nfaVariant, images: [] };
    if (opts.outDir) mkdirSync(opts.outDir, { recursive: true });
    const used = new Set<string>();
    for (const p of images) {
      const pr = await predictor.predict(p);
      const regions = regionsInImage(pr);
      const r: PredictFolderResult['images'][number] = { imagePath: p, score: pr.score, maxNegLogNfa: pr.maxNegLogNfa, anomalous: pr.maxNegLogNfa > 0, verdict: verdictOf(pr.maxNegLogNfa, regions), regions };
      if (opts.outDir) {
        let stem = basename(p).replace(/\.[^.]+$/, '');
        if (used.has(stem)) stem = `${basename(join(p, '..'))}_${stem}`;
        used.add(stem);
        r.files = [];
        for (const [kind, uri] of [['overlay', pr.anomalyMapPng], ['nfa', pr.nfaMapPng], ['segmentation', pr.segmentationPng]] as const) {
          const f = join(opts.outDir, `${stem}.${kind}.png`);
          atomicWriteFile(f, Buffer.from(uri.slice(uri.indexOf(',') + 1), 'base64'));
          r.files.push(f);
        }
      }
      out.images.push(r);
    }
    return out;
  } finally {
    predictor.dispose();
  }
}

/** Categories that have at least one run with a checkpoint, sorted. */
export function categoriesWithRuns(trainDir: string): string[] {
  return [...new Set(listRuns(trainDir).filter((r) => r.epochsDone > 0).map((r) => r.category))].sort();
}

// ---------------------------------------------------------------------------------------------
// Doctor

export interface DoctorReport {
  ok: boolean;
  text: string;
  engine?: EngineInfo;
  versions: Record<string, string>;
  error?: string;
}

export function versions(): Record<string, string> {
  return { uflow: PRODUCT_VERSION, node: process.versions.node, ...engineVersions(), platform: `${process.platform}-${process.arch}` };
}

export async function doctor(opts: { backend?: string } = {}): Promise<DoctorReport> {
  const v = versions();
  const lines = [`uflow ${v.uflow} · node ${v.node} · tfjs ${v.tfjs} · ${v.platform} · ${cpus().length} CPU cores · ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`];
  try {
    const engine = await initEngine({ backend: opts.backend });
    lines.push(describeEngine(engine));
    // A tiny computation proves the backend works (and that training ops exist there).
    const t0 = performance.now();
    const y = tf.tidy(() => tf.sum(tf.conv2d(tf.ones([1, 16, 16, 4]) as tf.Tensor4D, tf.ones([3, 3, 4, 4]) as tf.Tensor4D, 1, 'same')));
    const val = (await y.data())[0];
    y.dispose();
    lines.push(`self-test: conv2d ok (${val}) in ${(performance.now() - t0).toFixed(1)} ms`);
    return { ok: true, text: lines.join('\n'), engine, versions: v };
  } catch (e) {
    const msg = (e as Error).message;
    lines.push(`engine: ${msg}`);
    return { ok: false, text: lines.join('\n'), versions: v, error: msg };
  }
}

// ---------------------------------------------------------------------------------------------
// Demo

export interface DemoOptions {
  /** Dataset, runs and report go here. */
  dir: string;
  epochs?: number;
  backend?: string;
  signal?: AbortSignal;
  onUpdate?(u: TrainingUpdate): void;
  onLog?(line: string): void;
}

export interface DemoResult {
  run: RunInfo;
  evaluation: Evaluation;
  reportPath: string;
  seconds: number;
  trainSeconds: number;
  evaluateSeconds: number;
}

/** The demo's configuration: the built-in filter backbone at 128 px (runs anywhere, no download). */
export const DEMO_CONFIG: ConfigOverrides = {
  model: { backbone: 'builtin:filters', input_size: 128, flow_steps: 4 },
  trainer: { epochs: 30, batch_train: 8, batch_val: 8, learning_rate: 2e-3, validate_every: 0, patience: 0, seed: 0 },
};

export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const t0 = performance.now();
  const dir = resolve(opts.dir);
  const dataRoot = join(dir, 'data');
  opts.onLog?.(`demo dataset: ${dataRoot}`);
  let categoryDir: string;
  try {
    categoryDir = generateDemoDataset(dataRoot);
  } catch (e) {
    throw new PipelineError((e as Error).message, 'BadDataset');
  }
  const trainDir = join(dir, '.uflow');
  const config: ConfigOverrides = { model: { ...DEMO_CONFIG.model }, trainer: { ...DEMO_CONFIG.trainer, ...(opts.epochs !== undefined ? { epochs: opts.epochs } : {}) } };
  const run = await train({ datasetPath: categoryDir, trainDir, config, backend: opts.backend, signal: opts.signal }, { onUpdate: opts.onUpdate, onLog: opts.onLog });
  const t1 = performance.now();
  if (run.state !== 'finished') throw new PipelineError(`demo training ${run.state}: ${run.error ?? 'stopped'} (run ${run.runId})`, run.state === 'cancelled' ? 'Cancelled' : 'JobFailed');
  const evaluation = await evaluate({ trainDir, runId: run.runId, checkpoint: 'last', backend: opts.backend, signal: opts.signal });
  const t2 = performance.now();
  const reportPath = writeHtmlReport(join(dir, 'report.html'), [{ run, evaluation }], {
    title: 'U-Flow demo',
    notes: [
      `Generated dataset ${categoryDir} (woven texture with planted holes, scratches and stains); backbone builtin:filters (fixed colour, Gabor and LoG filters, no download); ${run.epochsDone} epochs.`,
      `Training took ${((t1 - t0) / 1000).toFixed(1)} s and evaluation ${((t2 - t1) / 1000).toFixed(1)} s on ${run.engine.backend} (${run.engine.device}).`,
    ],
  });
  return { run, evaluation, reportPath, seconds: (performance.now() - t0) / 1000, trainSeconds: (t1 - t0) / 1000, evaluateSeconds: (t2 - t1) / 1000 };
}

// ---------------------------------------------------------------------------------------------
// Threshold studies (bench/threshold-variants.ts)

/**
 * The latents of a run's test images (with masks) and of its held-out normal images, from one
 * checkpoint (default: the one mIoU is evaluated with): what the detection variants are compared on.
 */
export async function runLatents(opts: { trainDir: string; runId: string; checkpoint?: string; backend?: string }): Promise<{
  run: RunInfo;
  items: SplitItem[];
  masks: Uint8Array[];
  test: Latent[][];
  holdout: Latent[][];
}> {
  const trainDir = resolve(opts.trainDir);
  const run = readRun(trainDir, opts.runId);
  await ensureEngine(opts.backend);
  const file = opts.checkpoint ?? checkpointsFor(run, 'best').miou;
  const extractor = await buildExtractor(run.config, undefined, () => {});
  try {
    const items = splitsOf(run.datasetPath).test;
    const data = await loadValidationData(items, trainDir, extractor, run.config, undefined);
    const { model } = loadCheckpointChecked(file, extractor);
    try {
      const test = await latentsOf(model, data.features.levels, 8);
      const hItems = holdoutItems(run);
      let holdout: Latent[][] = [];
      if (hItems.length) {
        const feats = await loadFeatures(hItems.map((i) => i.path), { trainDir, extractor, extractorId: extractorId(run.config), loadImage: tensorImageLoader });
        holdout = await latentsOf(model, feats.levels, 8);
        feats.dispose();
      }
      return { run, items, masks: data.masks, test, holdout };
    } finally {
      model.dispose();
      data.features.dispose();
    }
  } finally {
    extractor.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// Export (server/export.ts)

/**
 * A run's model as predict opens it (the same checkpoint, backbone and engine), for `uflow export`.
 * The caller disposes `model` and `extractor`.
 */
export async function openRunModel(opts: PredictorOptions): Promise<{ run: StoredRun; checkpoint: string; model: AnomalyModel; extractor: FeatureExtractor; metadata: Record<string, string> }> {
  const run = pickRun(resolve(opts.trainDir), opts.runId, opts.category);
  const checkpoint = predictorCheckpoint(run);
  if (!existsSync(checkpoint)) throw new PipelineError(`run ${run.runId} has no checkpoint yet (${checkpoint}): it has not completed an epoch`, 'NotFound');
  await ensureEngine(opts.backend);
  const extractor = await buildExtractor(run.config, undefined, () => {});
  try {
    const { model } = loadCheckpointChecked(checkpoint, extractor);
    return { run, checkpoint, model, extractor, metadata: readModelCheckpoint(checkpoint).metadata };
  } catch (e) {
    extractor.dispose();
    throw e;
  }
}
