/** The `evaluate` job: a run's metrics on its test split; evaluation.json and maps/ go to the shared run folder. */
import { evaluate } from '../../evaluate.js';
import { readRun } from '../../runs.js';
import type { EvaluateJobData, EvaluateJobResult } from '../types.js';
import { mustRead, mustWriteRun, type JobContext } from './context.js';

export async function evaluateJob(data: EvaluateJobData, ctx: JobContext): Promise<EvaluateJobResult> {
  mustWriteRun(data.trainDir, data.runId, ctx.worker);
  mustRead(data.datasetPath ?? readRun(data.trainDir, data.runId).datasetPath, 'dataset', ctx.worker);
  const ev = await evaluate({
    trainDir: data.trainDir,
    runId: data.runId,
    datasetPath: data.datasetPath,
    highPrecision: data.highPrecision,
    checkpoint: data.checkpoint,
    backend: ctx.backend,
    signal: ctx.signal,
    onProgress: (d, t, message) => ctx.progress({ evaluation: { done: d, total: t, message } }),
  });
  return { runId: data.runId, worker: ctx.worker, evaluation: { overall: ev.overall, perDefect: ev.perDefect } };
}
