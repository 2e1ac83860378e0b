/**
 * The train job (the `uflow train` CLI, the daemon's `uflow/train`, the queue's train job):
 * prepares a run (or resumes one), caches features, trains, validates, checkpoints every epoch and
 * calibrates the detection threshold at the end.
 */
import type { EstimateResult, ModelConfig, ModelKind, RunConfig, RunInfo, TrainerConfig, TrainingEstimate, TrainingUpdate, RunState } from './protocol.js';
import * as tf from '@tensorflow/tfjs-core';
import { availableParallelism } from 'node:os';
import { existsSync, mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { engineInfo, type EngineInfo } from '../models/engine.js';
import { atomicWriteFile } from '../models/io/atomic.js';
import { readSafetensors, writeSafetensors, type TensorMap } from '../models/io/safetensors.js';
import type { FeatureExtractor } from '../models/backbones/index.js';
import { createModel, loadModelFromCheckpoint, saveModelCheckpoint, type AnomalyModel } from '../models/model-factory.js';
import { loadFeatures, type FeatureSet } from '../models/train/feature-cache.js';
import { ParallelTrainer } from '../models/train/parallel.js';
import { runTraining, type ValidationResult } from '../models/train/trainer.js';
import { computeMaps, computeMetricSet, latentsOf, sameMaps } from '../models/train/evaluate.js';
import { splitByNames, splitHoldout } from '../models/data/holdout.js';
import { fitNull } from '../models/scores/nfa-calibrated.js';
import { fitAndSave, savedCalibration, summaryOf, type CalibrationEntry } from './calibration.js';
import { datasetForJob, type DatasetReportHooks } from './dataset-report.js';
import { preflightConfig } from './preflight.js';
import { describeError } from '../models/io/fs-errors.js';
import { datasetFingerprint } from '../models/data/dataset.js';
import { configToYaml, loadConfigDetailed } from './config.js';
import { AUTO_BACKBONE, configWithAutoBackbone, describeChoice } from './backbone-policy.js';
import { appendMetrics, claimRun, isPidAlive, METRIC_NAMES, newRunId, PipelineError, readMetrics, readRun, RUN_FILES, runDir, truncateMetrics, writeRun, type SelectionMetric, type StoredRun } from './runs.js';
import { userMessage, asPipelineError, ensureEngine, resolveDataset, versions } from './job-common.js';
import { extractorId, buildExtractor, tensorImageLoader, type ValidationData, targetSizeOf, loadValidationData, checkpointFiles, predictorCheckpoint, loadCheckpointChecked } from './run-model.js';
import { formatSize } from '../models/size.js';
import { computeGradients } from '../models/train/step.js';
import { listSplit, type SplitItem } from '../models/data/dataset.js';
import { etaFromEstimate, extrapolate, fasterAlternative, formatEstimate, measureTraining, uncachedIndices, type Measured } from './estimate.js';
import { buildDatasetReport } from '../models/data/dataset-report.js';

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
  /**
   * Time a few real steps first and log the estimate of the whole run (server/estimate.ts);
   * default true, false skips it (`--no-estimate`; UFLOW_ESTIMATE=0 turns the default off).
   */
  estimate?: boolean;
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
  const { config, inputSizeSet } = resolveConfig(ds.category, model, opts.configPath, opts.config);
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
    ...(config.model.backbone === AUTO_BACKBONE ? { autoBackbone: { inputSizeSet } } : {}),
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
  const base: Pick<TrainingUpdate, 'runId' | 'jobId' | 'category' | 'model' | 'backbone' | 'notice'> = { runId: run.runId, jobId: opts.jobId ?? '', category: run.category, model: run.model };
  let tensorsBefore = -1;
  const disposables: Array<{ dispose(): void }> = [];
  try {
    run = claimRun({ ...run, error: undefined }, 'running');
    hooks.onRun?.(run);
    const engine = await ensureEngine(opts.backend);
    tensorsBefore = tf.memory().numTensors;
    save({ engine: { backend: engine.backend, device: engine.device } });
    if (run.config.model.backbone === AUTO_BACKBONE) {
      const { config, chosen } = await configWithAutoBackbone(run.config, run.model, engine.backend, run.autoBackbone?.inputSizeSet ?? false, { signal: opts.signal });
      atomicWriteFile(join(run.dir, 'config.yaml'), `# backbone: auto chose ${chosen.backbone} at ${formatSize(chosen.inputSize)} for ${chosen.backend}: ${chosen.reason}\n${configToYaml(config)}`);
      save({ config, autoBackbone: { inputSizeSet: run.autoBackbone?.inputSizeSet ?? false, chosen } });
    }
    const cfg = run.config;
    const chosen = run.autoBackbone?.chosen;
    base.backbone = `${cfg.model.backbone} at ${formatSize(cfg.model.input_size)}${chosen ? ` (backbone auto: ${chosen.reason})` : ''}`;
    if (chosen?.notice) base.notice = chosen.notice;
    if (chosen) log(describeChoice(chosen));
    if (chosen?.notice) log(`notice: ${chosen.notice}`);
    const ds = await datasetForJob({ purpose: 'train', categoryDir: run.datasetPath, inputSize: cfg.model.input_size, runDir: run.dir, withTest: cfg.trainer.validate_every > 0, onDatasetReport: hooks.onDatasetReport });
    if (ds.train.length === 0) throw new PipelineError(`${run.datasetPath}: no training images (train/good is empty)`, 'BadDataset');
    const split = run.holdout
      ? splitByNames(ds.train, run.holdout.images)
      : splitHoldout(ds.train, { fraction: cfg.trainer.holdout ?? 0, min: cfg.trainer.holdout_min ?? 5, seed: cfg.trainer.seed });
    if (!run.holdout) save({ holdout: { images: split.holdout.map((i) => basename(i.path)), fraction: cfg.trainer.holdout ?? 0, seed: cfg.trainer.seed } });
    log(
      `run ${run.runId}: ${split.train.length} training images, ${split.holdout.length} held out for calibration, ${ds.test.length} test images; backbone ${cfg.model.backbone} at ${formatSize(cfg.model.input_size)}, ${engine.backend} on ${engine.device}`,
    );
    if (!split.holdout.length) log('no held-out images (trainer.holdout 0 or fewer than 4 training images): detection will use the paper’s uncalibrated tree NFA');
    const extractor = await buildExtractor(cfg, opts.signal, log);
    disposables.push(extractor);
    const validateEvery = cfg.trainer.validate_every;
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
    const estimate = estimateWanted(opts) ? await estimateInRun({ cfg, engine, trainDir, extractor, model, parallel, startEpoch, split, test: validateEvery > 0 ? ds.test : [], signal: opts.signal }) : undefined;
    if (estimate) {
      log(`estimate: ${estimate.line}`);
      if (process.env.UFLOW_DEBUG) log(`estimate measured in ${estimate.measuredSeconds.toFixed(1)} s: ${JSON.stringify(estimate.measured)}`);
      hooks.onUpdate?.({ ...base, phase: 'features', epoch: startEpoch, epochs: cfg.trainer.epochs, step: 0, steps: 0, etaSeconds: estimate.totalSeconds, estimate, message: `estimate: ${estimate.line}` });
    }
    let featuresLeft = estimate ? estimate.uncachedImages - estimate.measuredImages : 0;
    const featureProgress = (what: string) => (done: number, total: number, computed: boolean) => {
      if (computed) featuresLeft = Math.max(0, featuresLeft - 1);
      const etaSeconds = estimate ? etaFromEstimate(estimate, featuresLeft) : undefined;
      if (computed || done === total) hooks.onUpdate?.({ ...base, phase: 'features', epoch: run.epochsDone, epochs: cfg.trainer.epochs, step: done, steps: total, etaSeconds, message: what });
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
    let validation: ValidationData | undefined;
    if (validateEvery > 0 && ds.test.length > 0) {
      validation = await loadValidationData(ds.test, trainDir, extractor, cfg, opts.signal, featureProgress('test images'));
      disposables.push(validation.features);
    }
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
        estimatedSecondsPerEpoch: estimate?.secondsPerEpoch,
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

/** UFLOW_ESTIMATE_SECONDS: the seconds the measuring may spend on flow steps (default 3; 0: one step, one image). */
function budgetFromEnv(): number | undefined {
  const v = Number(process.env.UFLOW_ESTIMATE_SECONDS);
  return process.env.UFLOW_ESTIMATE_SECONDS !== undefined && Number.isFinite(v) && v >= 0 ? v : undefined;
}

function estimateWanted(opts: TrainOptions): boolean {
  if (opts.estimate !== undefined) return opts.estimate;
  return !/^(0|false|no|off)$/i.test(process.env.UFLOW_ESTIMATE ?? '');
}

interface EstimateContext {
  cfg: RunConfig;
  engine: EngineInfo;
  trainDir: string;
  extractor: FeatureExtractor;
  model: AnomalyModel;
  parallel: ParallelTrainer | undefined;
  startEpoch: number;
  split: { train: SplitItem[]; holdout: SplitItem[] };
  /** Test images the run validates on (empty when it does not validate). */
  test: SplitItem[];
  signal?: AbortSignal;
}

/**
 * Measures this run's cost (server/estimate.ts) on its own extractor, model and workers: the first
 * feature batch goes to the cache, the flow steps compute gradients only, so the training that
 * follows computes exactly what it would have without the estimate.
 */
async function estimateInRun(c: EstimateContext): Promise<TrainingEstimate & { measuredImages: number; measured: Measured }> {
  const { cfg, model, parallel } = c;
  const epochsLeft = Math.max(0, cfg.trainer.epochs - c.startEpoch);
  const validates = cfg.trainer.validate_every > 0 && c.test.length > 0;
  const imageSets = [c.split.train, c.split.holdout, c.test].map((s) => s.map((i) => i.path));
  const m = await measureTraining({
    extractor: c.extractor,
    trainDir: c.trainDir,
    extractorId: extractorId(cfg),
    loadImage: tensorImageLoader,
    imageSets,
    batchSize: Math.min(cfg.trainer.batch_train, c.split.train.length),
    gradients: parallel
      ? async (batch) => tf.dispose((await parallel.gradients(batch)).grads)
      : (batch) => tf.dispose(computeGradients(model, batch).grads),
    validate: validates ? (levels) => computeMaps(model, levels, { targetSize: targetSizeOf(cfg), nfa: 'tree', signal: c.signal }) : undefined,
    budgetSeconds: budgetFromEnv(),
    signal: c.signal,
  });
  const parts = extrapolate({
    trainImages: c.split.train.length,
    uncachedImages: m.uncachedImages,
    featureSecondsPerImage: m.featureSecondsPerImage,
    batchSize: cfg.trainer.batch_train,
    stepSeconds: m.stepSeconds,
    epochs: epochsLeft,
    validateEvery: validates ? cfg.trainer.validate_every : 0,
    validationSeconds: m.validationSecondsPerImage * (c.test.length + c.split.holdout.length),
    earlyStopping: validates && cfg.trainer.patience > 0,
    totalEpochs: cfg.trainer.epochs,
    startEpoch: c.startEpoch,
  });
  const cpuLike = c.engine.backend === 'wasm' || c.engine.backend === 'cpu';
  const e = { ...parts, backend: c.engine.backend, threads: cpuLike ? (parallel?.size ?? 1) : 0, measuredSeconds: m.measuredSeconds };
  return { ...e, line: formatEstimate(e), measuredImages: m.measuredImages, measured: m };
}

export interface EstimateOptions extends Omit<TrainOptions, 'resumeRunId' | 'runId' | 'jobId' | 'estimate'> {
  /** Several categories of a root: measured on the first, the others extrapolated from their own image counts and configs. */
  categories?: string[];
  /** Above this, `alternative` proposes a faster run. */
  limitSeconds?: number;
}

/**
 * `uflow/estimate`: what `train` with the same options would cost, measured as train measures it
 * (its first feature batch goes to the cache; nothing else is written, no run is created).
 */
export async function estimateTraining(opts: EstimateOptions, log: (l: string) => void = () => undefined): Promise<EstimateResult> {
  const trainDir = resolve(opts.trainDir);
  const kind = opts.model ?? 'uflow';
  const cats = opts.categories?.length ? opts.categories : [opts.category];
  const declared = cats.map((c) => {
    const ds = resolveDataset(opts.datasetPath, c);
    const { config, inputSizeSet } = resolveConfig(ds.category, kind, opts.configPath, opts.config);
    preflightConfig(config, opts.configPath);
    return { ...ds, config, inputSizeSet };
  });
  const engine = await ensureEngine(opts.backend);
  // `backbone: auto` is estimated as the training will resolve it (server/backbone-policy.ts).
  const resolved: Array<{ categoryDir: string; category: string; config: RunConfig }> = [];
  for (const d of declared) {
    if (d.config.model.backbone !== AUTO_BACKBONE) resolved.push(d);
    else resolved.push({ ...d, config: (await configWithAutoBackbone(d.config, kind, engine.backend, d.inputSizeSet, { signal: opts.signal })).config });
  }
  const first = resolved[0]!;
  const cfg = first.config;
  const disposables: Array<{ dispose(): void }> = [];
  try {
    const validates = cfg.trainer.validate_every > 0;
    const { train: items, test, report } = await buildDatasetReport(first.categoryDir, { purpose: 'train', inputSize: cfg.model.input_size, train: true, test: validates });
    if (report.refused || items.length === 0) throw new PipelineError(`${first.categoryDir}: ${items.length ? 'the dataset report refuses the training' : 'no training images (train/good is empty)'}: train it to see why`, 'BadDataset');
    const split = splitHoldout(items, { fraction: cfg.trainer.holdout ?? 0, min: cfg.trainer.holdout_min ?? 5, seed: cfg.trainer.seed });
    const extractor = await buildExtractor(cfg, opts.signal, log);
    disposables.push(extractor);
    const model = createModel(kind, cfg.model, extractor, { seed: cfg.trainer.seed });
    disposables.push(model);
    const parallel = await startWorkers(model, engine, () => undefined);
    if (parallel) disposables.push({ dispose: () => void parallel.dispose() });
    const one = await estimateInRun({ cfg, engine, trainDir, extractor, model, parallel, startEpoch: 0, split, test: validates ? test : [], signal: opts.signal });
    const { measuredImages: _mi, measured: m, ...firstEstimate } = one;
    void _mi;
    let total: Omit<TrainingEstimate, 'line' | 'alternative'> = firstEstimate;
    const perCategory = [{ category: first.category, totalSeconds: one.totalSeconds }];
    for (const r of resolved.slice(1)) {
      // Other categories: the same per-image and per-step times, their own counts and configs.
      const c = r.config;
      const v = c.trainer.validate_every > 0;
      const all = listSplit(r.categoryDir, 'train');
      const sp = splitHoldout(all, { fraction: c.trainer.holdout ?? 0, min: c.trainer.holdout_min ?? 5, seed: c.trainer.seed });
      const tst = v ? listSplit(r.categoryDir, 'test') : [];
      const sets = [sp.train, sp.holdout, tst].map((x) => x.map((i) => i.path));
      const e = extrapolate({
        trainImages: sp.train.length,
        uncachedImages: sets.reduce((a, x) => a + uncachedIndices(x, trainDir, extractor, extractorId(c)).length, 0),
        featureSecondsPerImage: m.featureSecondsPerImage, // 0 when the first category was all cached: not measured
        batchSize: c.trainer.batch_train,
        stepSeconds: m.stepSeconds * (Math.min(c.trainer.batch_train, sp.train.length) / Math.max(1, Math.min(cfg.trainer.batch_train, split.train.length))),
        epochs: c.trainer.epochs,
        validateEvery: v ? c.trainer.validate_every : 0,
        validationSeconds: m.validationSecondsPerImage * (tst.length + sp.holdout.length),
        earlyStopping: v && c.trainer.patience > 0,
      });
      perCategory.push({ category: r.category, totalSeconds: e.totalSeconds });
      total = {
        ...total,
        totalSeconds: total.totalSeconds + e.totalSeconds,
        featureSeconds: total.featureSeconds + e.featureSeconds,
        uncachedImages: total.uncachedImages + e.uncachedImages,
        atMost: total.atMost || e.atMost,
      };
    }
    const alternative =
      opts.limitSeconds !== undefined && resolved.length === 1
        ? fasterAlternative(total, opts.limitSeconds, { epochs: cfg.trainer.epochs, inputSize: cfg.model.input_size }, (size) => {
            try {
              preflightConfig({ ...cfg, model: { ...cfg.model, input_size: size } }, opts.configPath);
              return true;
            } catch {
              return false;
            }
          })
        : undefined;
    const line = resolved.length > 1 ? `${formatEstimate(total).replace(/^(at most )?about [^:]+/, (h) => `${h} for ${resolved.length} categories`)}` : formatEstimate(total);
    return { ...total, line, ...(alternative ? { alternative } : {}), ...(resolved.length > 1 ? { categories: perCategory } : {}) };
  } finally {
    for (const d of disposables.reverse()) d.dispose();
  }
}

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

function resolveConfig(category: string, model: 'uflow' | 'fastflow', configPath?: string, overrides?: ConfigOverrides): { config: RunConfig; inputSizeSet: boolean } {
  try {
    return loadConfigDetailed({ category, model, path: configPath, overrides });
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

/** Fits the calibration of every checkpoint of the run; returns the one predict uses. */
async function calibrateCheckpoints(run: StoredRun, extractor: FeatureExtractor, holdout: FeatureSet, signal?: AbortSignal): Promise<CalibrationEntry | undefined> {
  const names = run.holdout?.images ?? [];
  let main: CalibrationEntry | undefined;
  for (const file of checkpointFiles(run)) {
    let entry = savedCalibration(run.dir, file);
    if (!entry) {
      const { model } = loadCheckpointChecked(file, extractor);
      try {
        entry = fitAndSave(run.dir, file, names, await latentsOf(model, holdout.levels, 8, signal), targetSizeOf(run.config));
      } finally {
        model.dispose();
      }
    }
    if (file === predictorCheckpoint(run)) main = entry;
  }
  return main;
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
