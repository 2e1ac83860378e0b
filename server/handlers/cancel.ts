/** `uflow/cancel`: a queued job ends at once; a running one stops at its next step. */
import { RpcError } from '../paths.js';
import { ErrorCodes } from '../protocol.js';
import type { RequestContext } from './context.js';
import { paramsObject, reqString } from './params.js';

export async function cancel(params: unknown, ctx: RequestContext): Promise<null> {
  const p = paramsObject(ctx.method, params);
  const jobId = reqString(ctx.method, p, 'jobId');
  if (!ctx.daemon.jobs.cancel(jobId, 'cancelled by the client')) {
    const live = ctx.daemon.jobs.list().filter((j) => j.state === 'queued' || j.state === 'running');
    throw new RpcError(
      ErrorCodes.NotFound,
      `${ctx.method}: no queued or running job '${jobId}'` + (live.length ? ` (jobs now: ${live.map((j) => j.jobId).join(', ')})` : ' (no job is queued or running)'),
    );
  }
  return null;
}
