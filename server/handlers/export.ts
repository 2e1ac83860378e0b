/**
 * `uflow/export`: a run's model as one ONNX file, as `uflow export` writes it (server/export.ts):
 * the run's checkpoint with its metadata (input size, normalisation, threshold and calibration).
 * The run is found among the client's folders and the paths its run.json names are guarded like
 * predict's; the output (default `<run folder>/model.onnx`) must lie inside the client's folders.
 * Runs as a job of the evaluate lane (one at a time, alongside a training); a run whose model or
 * backbone the exporter does not support is refused (NotAvailable) with exportRefusal's sentence.
 * `$/cancelRequest` removes a waiting export; one that has started finishes.
 */
import { join } from 'node:path';
import { DEFAULT_EXPORT_FILE, exportRefusal, exportRun } from '../export.js';
import { JobCancelledError } from '../jobs.js';
import { RpcError } from '../paths.js';
import { guardRunPaths } from '../path-guard.js';
import { ErrorCodes, type ExportResult } from '../protocol.js';
import { answerWhenEnded, locateRun } from './common.js';
import type { RequestContext } from './context.js';
import { optPath, paramsObject, reqString } from './params.js';

export async function exportModel(params: unknown, ctx: RequestContext): Promise<ExportResult> {
  const m = ctx.method;
  const p = paramsObject(m, params);
  const runId = reqString(m, p, 'runId');
  const outParam = optPath(m, p, 'out');
  const policy = ctx.session.policy;
  const { trainDir, run } = locateRun(ctx, runId);
  guardRunPaths(policy, run, m, { dataset: false });
  const out = policy.check(outParam ?? join(run.dir, DEFAULT_EXPORT_FILE), outParam ? `${m}: params.out` : `${m}: the default output`).path;
  // Refused before a job is queued (exportRun refuses too, before the backbone is built).
  const refusal = exportRefusal(run.model, run.config);
  if (refusal) throw new RpcError(ErrorCodes.NotAvailable, `${m}: ${refusal}`);
  if (ctx.token.isCancellationRequested) throw new RpcError(ErrorCodes.Cancelled, `${m}: cancelled`);

  const daemon = ctx.daemon;
  const job = daemon.jobs.submit<ExportResult>({
    kind: 'export',
    lane: 'evaluate',
    title: `Export ${run.category} (${run.runId}) to ONNX`,
    runId,
    owner: ctx.session.id,
    run: async ({ signal }) => {
      await daemon.engine();
      if (signal.aborted) throw new JobCancelledError();
      return exportRun({ trainDir, runId, out, backend: daemon.backend });
    },
  });
  return answerWhenEnded(ctx, daemon.jobs, job);
}
