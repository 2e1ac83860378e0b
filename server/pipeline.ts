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
