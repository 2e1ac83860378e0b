/**
 * `uflow/estimate`: what a `uflow/train` with the same params would cost on this machine
 * (server/estimate.ts), so that a client can ask before paying it: the backbone on the first
 * feature batch (which goes to the feature cache, as the training would write it) and a few
 * gradient-only flow steps, extrapolated. With `limitMinutes`, a faster choice when above it.
 * Runs as a job of the evaluate lane (one at a time, alongside a training: a training that runs
 * meanwhile makes the figure pessimistic); `$/cancelRequest` stops it.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { detectLayout } from '../../models/data/dataset.js';
import { estimateTraining, type ConfigOverrides } from '../train.js';
import { RpcError, trainDirOf } from '../paths.js';
import { ErrorCodes, type EstimateResult } from '../protocol.js';
import { guardConfigPaths } from '../path-guard.js';
import { answerWhenEnded } from './common.js';
import type { RequestContext } from './context.js';
import { invalid, optObject, optPath, optString, optStringArray, paramsObject, reqEnum, reqPath } from './params.js';

export async function estimate(params: unknown, ctx: RequestContext): Promise<EstimateResult> {
  const m = ctx.method;
  const p = paramsObject(m, params);
  const datasetPath = reqPath(m, p, 'datasetPath');
  const category = optString(m, p, 'category');
  let categories = optStringArray(m, p, 'categories');
  const model = reqEnum(m, p, 'model', ['uflow', 'fastflow'] as const);
  const config = optObject(m, p, 'config', ['model', 'trainer']) as ConfigOverrides | undefined;
  const workspace = optPath(m, p, 'workspace');
  const limit = p.limitMinutes;
  if (limit !== undefined && (typeof limit !== 'number' || !Number.isFinite(limit) || limit < 0)) throw invalid(m, 'limitMinutes', 'a number of minutes ≥ 0', limit);

  const policy = ctx.session.policy;
  const dataset = policy.check(datasetPath, `${m}: params.datasetPath`);
  const trainDir = trainDirOf(workspace ? policy.check(workspace, `${m}: params.workspace`).path : dataset.root.path);
  if (!existsSync(dataset.path)) throw new RpcError(ErrorCodes.BadDataset, `${m}: params.datasetPath '${datasetPath}' does not exist`);
  guardConfigPaths(policy, config as { model?: Record<string, unknown> } | undefined, `${m}: params.config`);
  if (category === undefined && !categories?.length) {
    // A dataset root without a category trains every category: estimate them all.
    try {
      const { layout, categories: all } = detectLayout(dataset.path);
      if (layout === 'mvtec-root' && all.length) categories = all.map((c) => basename(c));
    } catch {
      /* estimateTraining says what is wrong with the dataset */
    }
  }

  const daemon = ctx.daemon;
  const job = daemon.jobs.submit<EstimateResult>({
    kind: 'estimate',
    lane: 'evaluate',
    title: `Estimate the training of ${category ?? categories?.join(', ') ?? basename(dataset.path)}`,
    owner: ctx.session.id,
    run: async ({ signal }) => {
      await daemon.engine();
      return estimateTraining(
        { datasetPath: dataset.path, category, categories, model, trainDir, config, backend: daemon.backend, signal, limitSeconds: typeof limit === 'number' && limit > 0 ? limit * 60 : undefined },
        (line) => daemon.log('info', line),
      );
    },
  });
  return answerWhenEnded(ctx, daemon.jobs, job);
}
