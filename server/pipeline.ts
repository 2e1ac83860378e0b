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
  ModelConfig,
  ModelKind,
  Prediction,
  RunConfig,
  RunInfo,
  TrainerConfig,
  TrainingUpdate,
} from './protocol.js';
import { ErrorCodes } from './protocol.js';
import * as tf from '@tensorflow/tfjs-core';
import { cpus, totalmem } from 'node:os';
import { describeEngine, initEngine, type EngineInfo } from '../models/engine.js';
import { listRuns } from './runs.js';

import { version_cpu } from '@tensorflow/tfjs-backend-cpu';
import { version_wasm } from '@tensorflow/tfjs-backend-wasm';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const PRODUCT_VERSION = '0.1.0';

// Bundling adapters (models/engine.ts is shared; these make it work inside the ES-module bundles):
// - the cpu backend registers itself as a side effect that esbuild drops ("sideEffects" in its
//   package.json) unless one of its exports is used: versions() uses version_cpu;
// - the wasm backend's Emscripten loader reads `__dirname` under Node, which ES modules lack.
{
  const g = globalThis as { __dirname?: string };
  if (g.__dirname === undefined && import.meta.url.startsWith('file:')) g.__dirname = dirname(fileURLToPath(import.meta.url));
}

import { PipelineError } from './runs.js';

export { PipelineError, type PipelineErrorCode } from './runs.js';
export { listRuns, readRun, newestFinishedRun, newestUsableRun, markInterrupted, runDir, runsRoot } from './runs.js';

/** The JSON-RPC error code for a PipelineError ('Usage' answers InvalidParams, -32602). */
export function rpcErrorCode(e: PipelineError): number {
  return e.code === 'Usage' ? -32602 : ErrorCodes[e.code];
}

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

export interface TrainHooks {
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
  void opts;
  throw new PipelineError('prepareRun: not implemented yet', 'NotAvailable');
}

/**
 * Trains (creating the run unless `opts.runId`/`opts.resumeRunId` names one). Resolves with the
 * final RunInfo whatever the outcome: state 'finished', 'cancelled' (signal), or 'failed' (e.g.
 * NaN loss; `error` says why). Rejects only for errors before the run starts (PipelineError).
 */
export async function train(opts: TrainOptions, hooks: TrainHooks = {}): Promise<RunInfo> {
  void opts;
  void hooks;
  throw new PipelineError('train: not implemented yet', 'NotAvailable');
}

// ---------------------------------------------------------------------------------------------
// Evaluation

export interface EvaluateOptions {
  trainDir: string;
  /** Default: the newest finished run of `category`. */
  runId?: string;
  category?: string;
  /** Default: the run's dataset. */
  datasetPath?: string;
  /** Exact (continuous-relaxation) tail probabilities in the NFA; slower. */
  highPrecision?: boolean;
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

/** Evaluates a run on its test split; writes evaluation.json (atomically) and returns it. */
export async function evaluate(opts: EvaluateOptions): Promise<Evaluation> {
  void opts;
  throw new PipelineError('evaluate: not implemented yet', 'NotAvailable');
}

// ---------------------------------------------------------------------------------------------
// Prediction

export interface PredictorOptions {
  trainDir: string;
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
  protected constructor(readonly run: RunInfo) {}

  static async open(opts: PredictorOptions): Promise<Predictor> {
    void opts;
    throw new PipelineError('Predictor: not implemented yet', 'NotAvailable');
  }

  async predict(imagePath: string, opts: PredictOptions = {}): Promise<Prediction> {
    void imagePath;
    void opts;
    throw new PipelineError('predict: not implemented yet', 'NotAvailable');
  }

  /** Frees the model's tensors. */
  dispose(): void {}
}

/** Resolved configuration of a run (for display). */
export type { RunConfig };

// ---------------------------------------------------------------------------------------------
// Batch prediction (CLI `uflow predict`)

export interface PredictFolderOptions extends PredictorOptions {
  /** Images to predict; empty: the test images of the run's dataset (or `datasetPath`). */
  images: string[];
  datasetPath?: string;
  /** Write `<name>.overlay.png`, `<name>.nfa.png`, `<name>.segmentation.png` here. */
  outDir?: string;
}

export interface PredictFolderResult {
  runId: string;
  outDir?: string;
  images: Array<{ imagePath: string; score: number; maxNegLogNfa: number; anomalous: boolean; files?: string[] }>;
}

export async function predictFolder(opts: PredictFolderOptions): Promise<PredictFolderResult> {
  void opts;
  throw new PipelineError('predict: not implemented yet', 'NotAvailable');
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
  return { uflow: PRODUCT_VERSION, node: process.versions.node, tfjs: tf.version_core, 'tfjs-backend-cpu': version_cpu, 'tfjs-backend-wasm': version_wasm, platform: `${process.platform}-${process.arch}` };
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

export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  void opts;
  throw new PipelineError('demo: not implemented yet', 'NotAvailable');
}
