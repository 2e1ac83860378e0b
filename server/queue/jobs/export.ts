/**
 * The `export` job kind is reserved: this build has no model export yet. When the export
 * pipeline lands (a `uflow export` command), its job handler goes here: read the run (its folder
 * on the shared train dir, checked with mustWriteRun), write `data.outPath` atomically, and
 * return what `uflow export` prints. Until then a worker answers such a job with this message
 * instead of leaving it waiting.
 */
import type { ExportJobData } from '../types.js';
import { BadJobError, type JobContext } from './context.js';

export async function exportJob(data: ExportJobData, ctx: JobContext): Promise<never> {
  throw new BadJobError(`worker ${ctx.worker} cannot export run ${data.runId}: this version of uflow has no export job yet; upgrade the workers to a version with 'uflow export'`);
}
