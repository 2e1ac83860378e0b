/**
 * The `export` job: a run's model as one ONNX file (`uflow export`, server/export.ts), written
 * atomically to `outPath` (default `<run>/model.onnx` on the shared train dir). A run whose model
 * or backbone the exporter does not support fails at once with the exporter's sentence (not
 * retried: another worker would refuse it the same way).
 */
import { exportRefusal, exportRun, type ExportResult } from '../../export.js';
import { readRun } from '../../runs.js';
import type { ExportJobData } from '../types.js';
import { BadJobError, mustWriteRun, type JobContext } from './context.js';

export async function exportJob(data: ExportJobData, ctx: JobContext): Promise<ExportResult & { worker: string }> {
  mustWriteRun(data.trainDir, data.runId, ctx.worker);
  if (data.format && data.format !== 'onnx') throw new BadJobError(`worker ${ctx.worker} cannot export run ${data.runId} as '${data.format}': the export format is onnx`);
  const run = readRun(data.trainDir, data.runId);
  const refusal = exportRefusal(run.model, run.config);
  if (refusal) throw new BadJobError(`run ${data.runId}: ${refusal}`);
  const res = await exportRun({ trainDir: data.trainDir, runId: data.runId, out: data.outPath, backend: ctx.backend });
  ctx.log(`exported run ${data.runId} to ${res.path} (${res.bytes} bytes)`);
  return { ...res, worker: ctx.worker };
}
