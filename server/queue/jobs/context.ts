/** What a queue job handler gets from the worker, and the errors that decide how a job ends. */
import { accessSync, constants, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RunInfo } from '../../protocol.js';
import { runDir, RUN_FILES, type StoredRun } from '../../runs.js';
import type { RunLock } from '../run-lock.js';
import type { QueueJobData, QueueProgress } from '../types.js';

export interface JobContext {
  /** This worker's name (host:pid unless --name). */
  worker: string;
  jobId: string;
  /** Aborted on cancel, on worker shutdown, or when the run lock is lost. */
  signal: AbortSignal;
  backend?: string;
  /** A progress event to the submitter (in order; fire and forget). */
  progress(p: Omit<QueueProgress, 'worker'>): void;
  /** A log line: stored with the job (`uflow jobs follow`) and sent live. */
  log(line: string): void;
  /** Takes the run's lock (RequeueError when another worker holds it); release it when done. */
  lockRun(runId: string, runFolder: string): Promise<RunLock>;
}

export type JobHandler<D extends QueueJobData = QueueJobData> = (data: D, ctx: JobContext) => Promise<unknown>;

/** The job cannot succeed as submitted (unreadable dataset, unknown run, a training that diverged): failed at once, not retried. */
export class BadJobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BadJobError';
  }
}

/** Put the job back on the queue without counting an attempt (the run is locked by another worker). */
export class RequeueError extends Error {
  constructor(
    message: string,
    readonly delayMs: number,
  ) {
    super(message);
    this.name = 'RequeueError';
  }
}

/** The folder must be readable here; otherwise the job fails with the path and the fix. */
export function mustRead(path: string, what: string, worker: string): void {
  try {
    accessSync(path, constants.R_OK);
    readdirSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new BadJobError(
      `worker ${worker} cannot read the ${what} ${path} (${code}): every worker must see the submitter's paths — mount the shared folder (NFS/SMB) at the same path on this machine, or submit from a path the workers see`,
    );
  }
}

/** The run folder of a job must exist and be writable here. */
export function mustWriteRun(trainDir: string, runId: string, worker: string): string {
  const dir = runDir(trainDir, runId);
  try {
    accessSync(join(dir, RUN_FILES.info), constants.R_OK);
    accessSync(dir, constants.W_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new BadJobError(
      `worker ${worker} cannot use the run folder ${dir} (${code}): -train_dir must be on a shared path (NFS/SMB) mounted at the same place and writable on every worker`,
    );
  }
  return dir;
}

/** run.json without the owning process (what travels back to the submitter). */
export function publicRun(run: RunInfo): RunInfo {
  const { pid: _p, host: _h, ...pub } = run as StoredRun;
  void _p;
  void _h;
  return pub;
}
