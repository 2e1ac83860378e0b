/**
 * The daemon's trainings on the Redis queue (`uflow serve --queue URL`, VS Code's `uflow.queue`):
 * a drop-in for train (server/train.ts) that submits the prepared run to the queue and follows the job,
 * turning its progress events into the same TrainingUpdates and log lines a local training
 * gives, so the status bar, the Training panel's curves, cancel and jobEnded work unchanged.
 * Cancelling the daemon's job cancels the remote one (its worker stops at its next step).
 */
import { resolve } from 'node:path';
import type { TrainHooks, TrainOptions } from '../train.js';
import type { RunInfo } from '../protocol.js';
import { readRun, writeRun } from '../runs.js';
import type { QueueClient } from './client.js';
import type { TrainJobResult } from './types.js';

export function remoteTrainer(open: () => Promise<QueueClient>): (opts: TrainOptions, hooks?: TrainHooks) => Promise<RunInfo> {
  return async (opts, hooks = {}) => {
    const trainDir = resolve(opts.trainDir);
    if (!opts.runId) throw new Error('remoteTrainer: the run must be prepared first (opts.runId)');
    const client = await open();
    const jobId = await client.submitTrain(trainDir, readRun(trainDir, opts.runId));
    hooks.onLog?.(`run ${opts.runId}: queued as job ${jobId} on ${client.display}`);
    const onAbort = (): void => void client.cancel(jobId, 'cancelled from the editor').catch(() => undefined);
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const end = await client.follow<TrainJobResult>(jobId, { onUpdate: hooks.onUpdate, onLog: hooks.onLog });
      if (end.state === 'done') return end.value.run;
      const run = readRun(trainDir, opts.runId);
      // A job that failed before its worker touched the run (an unreadable dataset): say so in run.json.
      if (run.state === 'queued' || run.state === 'running') {
        return writeRun({ ...run, state: end.state === 'cancelled' ? 'cancelled' : 'failed', error: end.error, pid: undefined, host: undefined });
      }
      return { ...run, state: end.state === 'cancelled' ? 'cancelled' : run.state === 'finished' ? 'failed' : run.state, error: run.error ?? end.error };
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  };
}
