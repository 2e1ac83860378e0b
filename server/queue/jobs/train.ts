/**
 * The `train` job: trains the run the submitter prepared, on the shared train dir, under the
 * run's lock. A retry (the first worker was killed, or stopped) resumes from the run's last
 * complete epoch: checkpoint.safetensors + train-state.safetensors (the optimizer moments),
 * exactly as `uflow train --resume` does, so only the epoch in progress is redone. A run that an
 * earlier attempt already finished is not trained again. With `evaluate`, the run is then
 * evaluated on its test split (evaluation.json in the run folder; the headline numbers return).
 */
import { evaluate } from '../../evaluate.js';
import { train } from '../../train.js';
import { readRun } from '../../runs.js';
import { configHash } from '../config-hash.js';
import type { TrainJobData, TrainJobResult } from '../types.js';
import { BadJobError, mustRead, mustWriteRun, publicRun, type JobContext } from './context.js';

export async function trainJob(data: TrainJobData, ctx: JobContext): Promise<TrainJobResult> {
  const t0 = Date.now();
  mustRead(data.datasetPath, 'dataset', ctx.worker);
  const dir = mustWriteRun(data.trainDir, data.runId, ctx.worker);
  const before = readRun(data.trainDir, data.runId);
  const hash = configHash(before.config);
  if (hash !== data.configHash) {
    throw new BadJobError(`run ${data.runId}: its run.json configuration (${hash.slice(0, 19)}…) is not the one submitted (${data.configHash.slice(0, 19)}…): the run folder was changed after submission; submit the training again`);
  }
  const lock = await ctx.lockRun(data.runId, dir);
  try {
    let run = before;
    const done = run.state === 'finished' || run.epochsDone >= run.config.trainer.epochs;
    if (done) {
      ctx.log(`run ${run.runId} was already trained (${run.epochsDone} epochs) by an earlier attempt: not training it again`);
    } else {
      if (run.epochsDone > 0) ctx.log(`run ${run.runId}: ${run.epochsDone} epoch(s) complete on the shared folder; resuming from the checkpoint of epoch ${run.epochsDone}`);
      run = (await train(
        { datasetPath: run.datasetPath, category: run.category, model: run.model, trainDir: data.trainDir, runId: run.runId, jobId: ctx.jobId, backend: ctx.backend, signal: ctx.signal },
        { onUpdate: (u) => ctx.progress({ update: u }), onLog: (l) => ctx.log(l) },
      )) as typeof run;
      if (run.state === 'cancelled' || ctx.signal.aborted) throw ctx.signal.reason ?? new Error('stopped');
      if (run.state !== 'finished') throw new BadJobError(`run ${run.runId} ${run.state}: ${run.error ?? 'the training did not finish'}`);
    }
    const result: TrainJobResult = { run: publicRun(run), worker: ctx.worker, resumedFrom: before.epochsDone, seconds: 0 };
    if (data.evaluate) {
      const ev = await evaluate({
        trainDir: data.trainDir,
        runId: run.runId,
        backend: ctx.backend,
        signal: ctx.signal,
        onProgress: (d, t, message) => ctx.progress({ evaluation: { done: d, total: t, message } }),
      });
      result.evaluation = { overall: ev.overall, perDefect: ev.perDefect };
    }
    result.seconds = (Date.now() - t0) / 1000;
    return result;
  } finally {
    await lock.release();
  }
}
