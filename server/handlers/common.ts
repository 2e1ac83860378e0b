/** Helpers shared by the handlers: finding a run among the client's folders, mapping errors. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ResponseError } from 'vscode-languageserver/node.js';
import { JobCancelledError, type Job, type JobQueue } from '../jobs.js';
import { isSafeRunId, RpcError, trainDirOf } from '../paths.js';
import { ErrorCodes } from '../protocol.js';
import { PipelineError, readRun, runsRoot, type StoredRun } from '../runs.js';
import type { RequestContext } from './context.js';
import { invalid } from './params.js';
import { describeError } from '../../models/io/fs-errors.js';

export interface LocatedRun {
  trainDir: string;
  run: StoredRun;
}

/** Finds `runId` in the `.uflow/runs` of the client's folders (workspace folders first). */
export function locateRun(ctx: RequestContext, runId: string, paramName = 'runId'): LocatedRun {
  if (!isSafeRunId(runId)) throw invalid(ctx.method, paramName, 'a run id (letters, digits, . _ -), as uflow/runs lists them', runId);
  const roots = ctx.session.policy.roots();
  for (const root of roots) {
    const trainDir = trainDirOf(root.path);
    if (existsSync(join(runsRoot(trainDir), runId, 'run.json'))) {
      ctx.daemon.adoptTrainDir(trainDir);
      return { trainDir, run: readRun(trainDir, runId) };
    }
  }
  throw new RpcError(
    ErrorCodes.NotFound,
    `${ctx.method}: no run '${runId}' in ${roots.length ? roots.map((r) => join(r.path, '.uflow', 'runs')).join(', ') : 'any folder (the client declared no workspace folders)'}; uflow/runs lists the runs there`,
  );
}

function pipelineCode(e: PipelineError): number {
  return e.code === 'Usage' ? ErrorCodes.InvalidParams : ErrorCodes[e.code];
}

/** The JSON-RPC error a thrown value becomes. */
export function toResponseError(method: string, e: unknown): ResponseError<unknown> {
  if (e instanceof ResponseError) return e;
  if (e instanceof RpcError) return new ResponseError(e.code, e.message, e.data);
  if (e instanceof PipelineError) return new ResponseError(pipelineCode(e), prefixed(method, e.message));
  if (e instanceof JobCancelledError || (e as Error)?.name === 'AbortError') return new ResponseError(ErrorCodes.Cancelled, `${method}: cancelled`);
  const msg = describeError(e);
  return new ResponseError(ErrorCodes.JobFailed, prefixed(method, msg || 'failed'));
}

function prefixed(method: string, msg: string): string {
  return msg.startsWith(method) ? msg : `${method}: ${msg}`;
}

/** The error code a failed job reports (for a PipelineError, its own). */
export function errorCodeOf(e: unknown): number {
  if (e instanceof RpcError) return e.code;
  if (e instanceof PipelineError) return pipelineCode(e);
  return ErrorCodes.JobFailed;
}

/**
 * A request answered by its job: the job's value, or its end as an RPC error (Cancelled, or the
 * failure's code and message prefixed with the method). Cancelling the request cancels the job.
 */
export async function answerWhenEnded<T>(ctx: RequestContext, jobs: JobQueue, job: Job<T>): Promise<T> {
  const m = ctx.method;
  const sub = ctx.token.onCancellationRequested(() => jobs.cancel(job.id, 'request cancelled'));
  try {
    const end = await job.ended;
    if (end.state === 'done' && end.value) return end.value;
    if (end.state === 'cancelled') throw new RpcError(ErrorCodes.Cancelled, `${m}: cancelled`);
    throw new RpcError(errorCodeOf(end.thrown), end.error?.startsWith(m) ? end.error : `${m}: ${end.error ?? 'failed'}`);
  } finally {
    sub.dispose();
  }
}
