/**
 * `uflow/downloadModels`: the released U-Flow checkpoints (server/pretrained.ts) into
 * `<root>/models/<metric>/<category>.ckpt`, root defaulting to `<first folder>/.uflow`. Runs as a
 * job of the download lane (one at a time) with work-done progress; `$/cancelRequest` or
 * `uflow/cancel` stops it (a partial file is kept as `.part` and resumed next time).
 */
import { CHECKPOINT_METRICS, downloadModels as fetchModels, MVTEC_CATEGORIES, type CheckpointMetric, type ModelProgress } from '../pretrained.js';
import { RpcError, trainDirOf } from '../paths.js';
import { ErrorCodes, type DownloadModelsResult } from '../protocol.js';
import { answerWhenEnded } from './common.js';
import type { RequestContext } from './context.js';
import { invalid, optBool, optPath, optStringArray, optToken, paramsObject } from './params.js';

const mib = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;

export async function downloadModels(params: unknown, ctx: RequestContext): Promise<DownloadModelsResult> {
  const m = ctx.method;
  const p = paramsObject(m, params, true);
  const categories = optStringArray(m, p, 'categories');
  const overwrite = optBool(m, p, 'overwrite') ?? false;
  const workDoneToken = optToken(m, p, 'workDoneToken');
  const rootParam = optPath(m, p, 'root');
  const metrics = optStringArray(m, p, 'metrics') as CheckpointMetric[] | undefined;
  const unknown = (categories ?? []).filter((c) => !(MVTEC_CATEGORIES as readonly string[]).includes(c));
  if (unknown.length) throw invalid(m, 'categories', `MVTec categories (${MVTEC_CATEGORIES.join(', ')})`, unknown);
  if (metrics?.some((x) => !(CHECKPOINT_METRICS as readonly string[]).includes(x))) throw invalid(m, 'metrics', `a list of ${CHECKPOINT_METRICS.join(', ')}`, metrics);

  let root: string;
  if (rootParam) root = ctx.session.policy.check(rootParam, `${m}: params.root`).path;
  else {
    const first = ctx.session.policy.roots()[0];
    if (!first) throw new RpcError(ErrorCodes.PathOutsideWorkspace, `${m}: no folder to download into: declare a workspace folder, pass params.root, or start the daemon with --allow <dir>`);
    root = trainDirOf(first.path);
  }

  const jobs = ctx.daemon.jobs;
  const title = 'Download U-Flow models';
  const reporterP = ctx.session.progress(workDoneToken, () => jobs.cancel(job.id, 'cancelled from the progress notification'));
  const job = jobs.submit<DownloadModelsResult>({
    kind: 'download',
    title,
    owner: ctx.session.id,
    run: async ({ signal }) => {
      const reporter = await reporterP;
      const out = await fetchModels({
        root,
        categories,
        metrics,
        overwrite,
        signal,
        onProgress: (q: ModelProgress) => {
          const frac = q.total ? Math.min(1, q.bytes / q.total) : 0;
          reporter?.report(`${q.category} (${q.metric}) ${q.index}/${q.count} · ${mib(q.bytes)}${q.total ? ` of ${mib(q.total)}` : ''}`, (100 * (q.index - 1 + frac)) / q.count);
        },
      });
      return { files: out.files.map((f) => ({ path: f.path, sha256: f.sha256, bytes: f.bytes, skipped: f.skipped })) };
    },
    finalize: (end) => {
      void reporterP.then((r) => r?.end(end.state === 'done' ? 'done' : end.state === 'cancelled' ? 'cancelled' : `failed: ${end.error}`));
    },
  });
  void reporterP.then((r) => r?.begin(title, jobs.positionOf(job) > 0 ? 'queued' : 'starting', 0, true));
  return answerWhenEnded(ctx, jobs, job);
}
