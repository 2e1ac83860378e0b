/** The `predict` job: scores, and PNG maps in `outDir` (a shared path), for images the worker can read. */
import { dirname } from 'node:path';
import { predictFolder, type PredictFolderResult } from '../../predict.js';
import type { PredictJobData } from '../types.js';
import { mustRead, mustWriteRun, type JobContext } from './context.js';

export async function predictJob(data: PredictJobData, ctx: JobContext): Promise<PredictFolderResult & { worker: string }> {
  mustWriteRun(data.trainDir, data.runId, ctx.worker);
  for (const d of new Set(data.images.map((p) => dirname(p)))) mustRead(d, 'image folder', ctx.worker);
  const res = await predictFolder({ trainDir: data.trainDir, runId: data.runId, images: data.images, outDir: data.outDir, backend: ctx.backend });
  return { ...res, worker: ctx.worker };
}
