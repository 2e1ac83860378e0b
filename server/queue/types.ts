/**
 * What travels through the queue: job data (every job names the locations a worker must see: the
 * train dir holding the run folder, the dataset), progress events, results, and the job listing.
 * Paths are absolute and must mean the same on the submitter and on every worker (a shared
 * NFS/SMB mount at the same path); a worker that cannot read them fails the job with that message.
 */
import type { MetricSet, ModelKind, RunInfo, TrainingUpdate } from '../protocol.js';

export const QUEUE_JOB_KINDS = ['train', 'evaluate', 'predict', 'export'] as const;
export type QueueJobKind = (typeof QUEUE_JOB_KINDS)[number];

interface JobBase {
  /** Folder holding runs/ (and the feature cache): the submitter's -train_dir. */
  trainDir: string;
  /** Who submitted (user@host, pid), for the listing. */
  submittedBy?: string;
}

/** Train the run the submitter prepared (run.json, state queued); optionally evaluate it after. */
export interface TrainJobData extends JobBase {
  kind: 'train';
  runId: string;
  /** The category folder (train/good, test/…). */
  datasetPath: string;
  category: string;
  model: ModelKind;
  /** configHash(run.config) at submission: the worker refuses a run whose config has changed. */
  configHash: string;
  /** Evaluate the run on its test split when training finishes (train-all). */
  evaluate?: boolean;
}

export interface EvaluateJobData extends JobBase {
  kind: 'evaluate';
  runId: string;
  /** Default: the run's own dataset. */
  datasetPath?: string;
  highPrecision?: boolean;
  checkpoint?: 'best' | 'last';
}

export interface PredictJobData extends JobBase {
  kind: 'predict';
  runId: string;
  images: string[];
  /** Where the PNG maps go (a shared path). */
  outDir?: string;
}

/** Reserved: the export job (a run's model to another format) plugs in at server/queue/jobs/export.ts. */
export interface ExportJobData extends JobBase {
  kind: 'export';
  runId: string;
  format?: string;
  outPath?: string;
}

export type QueueJobData = TrainJobData | EvaluateJobData | PredictJobData | ExportJobData;

/** A BullMQ progress value: the latest training update, plus a log line when `log` is set. */
export interface QueueProgress {
  worker: string;
  update?: TrainingUpdate;
  /** Set on a progress event that carries a log line (the update then repeats the latest one). */
  log?: string;
  /** Evaluation progress. */
  evaluation?: { done: number; total: number; message: string };
}

/** Evaluation headline numbers (the full evaluation.json is in the run folder). */
export interface EvaluationSummary {
  overall: MetricSet;
  perDefect: Record<string, MetricSet>;
}

export interface TrainJobResult {
  run: RunInfo;
  worker: string;
  /** Epochs already complete when this attempt started (> 0: resumed from the checkpoint). */
  resumedFrom: number;
  evaluation?: EvaluationSummary;
  seconds: number;
}

export interface EvaluateJobResult {
  runId: string;
  worker: string;
  evaluation: EvaluationSummary;
}

export type QueueJobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

/** One line of `uflow jobs`. */
export interface QueueJobSummary {
  jobId: string;
  kind: string;
  state: QueueJobState;
  runId?: string;
  category?: string;
  /** The worker that ran (or runs) it. */
  worker?: string;
  attempts: number;
  /** The latest training update's text, e.g. `epoch 3/10 step 2/4`. */
  progress?: string;
  error?: string;
  createdAt: string;
}

/** Failure reasons of cancelled jobs start with this (BullMQ has no 'cancelled' state). */
export const CANCELLED_PREFIX = 'cancelled';

/** Redis keys besides BullMQ's own. */
export function queueKeys(queueName: string): { cancelChannel: string; cancelKey: (jobId: string) => string; runLock: (runId: string) => string } {
  const base = `uflow:${queueName}`;
  return {
    cancelChannel: `${base}:cancel`,
    cancelKey: (jobId) => `${base}:cancel:${jobId}`,
    runLock: (runId) => `${base}:run-lock:${runId}`,
  };
}
