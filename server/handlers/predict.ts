/**
 * `uflow/predict`: anomaly map, -log NFA map and segmentation of one image. Served while a model
 * trains: predictions wait in their own lane (one at a time, between the trainer's steps), the
 * model is loaded once per run and kept in an LRU (PredictorCache). `$/cancelRequest` removes a
 * waiting prediction or stops a running one before its model pass.
 */
import { existsSync, statSync } from 'node:fs';
import { newestFinishedRun, newestUsableRun } from '../runs.js';
import { RpcError, trainDirOf } from '../paths.js';
import { ErrorCodes, type Prediction } from '../protocol.js';
import { JobCancelledError } from '../jobs.js';
import { answerWhenEnded, locateRun } from './common.js';
import type { RequestContext } from './context.js';
import { optBool, optEnum, optString, paramsObject, reqPath } from './params.js';
import { guardRunPaths } from '../path-guard.js';

export async function predict(params: unknown, ctx: RequestContext): Promise<Prediction> {
  const m = ctx.method;
  const p = paramsObject(m, params);
  const imagePath = reqPath(m, p, 'imagePath');
  const runIdParam = optString(m, p, 'runId');
  const includeRaw = optBool(m, p, 'includeRaw') ?? false;
  const engine = optEnum(m, p, 'engine', ['onnx', 'tfjs', 'auto'] as const);
  const policy = ctx.session.policy;
  const image = policy.check(imagePath, `${m}: params.imagePath`);
  let st;
  try {
    st = statSync(image.path);
  } catch {
    throw new RpcError(ErrorCodes.NotFound, `${m}: params.imagePath '${imagePath}' does not exist`);
  }
  if (!st.isFile()) throw new RpcError(ErrorCodes.NotFound, `${m}: params.imagePath '${imagePath}' is not a file`);

  let trainDir: string;
  let runId: string;
  let runDirPath: string;
  if (runIdParam) {
    const located = locateRun(ctx, runIdParam);
    trainDir = located.trainDir;
    runId = located.run.runId;
    runDirPath = located.run.dir;
    guardRunPaths(policy, located.run, m, { dataset: false });
  } else {
    // The newest finished run of the image's folder, then of the other folders.
    const roots = [image.root, ...policy.roots().filter((r) => r !== image.root)];
    let found: { trainDir: string; runId: string; dir: string } | undefined;
    for (const r of roots) {
      const td = trainDirOf(r.path);
      if (!existsSync(td)) continue;
      ctx.daemon.adoptTrainDir(td);
      const run = newestFinishedRun(td) ?? newestUsableRun(td);
      if (run) {
        guardRunPaths(policy, run, m, { dataset: false });
        found = { trainDir: td, runId: run.runId, dir: run.dir };
        break;
      }
    }
    if (!found) throw new RpcError(ErrorCodes.NotFound, `${m}: no trained run in ${roots.map((r) => r.path + '/.uflow/runs').join(', ')}: train one first, or pass params.runId`);
    ({ trainDir, runId } = found);
    runDirPath = found.dir;
  }
  if (ctx.token.isCancellationRequested) throw new RpcError(ErrorCodes.Cancelled, `${m}: cancelled`);

  const daemon = ctx.daemon;
  const job = daemon.jobs.submit<Prediction>({
    kind: 'predict',
    title: `Predict ${imagePath}`,
    runId,
    listed: false,
    owner: ctx.session.id,
    run: async ({ signal }) => {
      // The cache measures tf.memory() before loading: a request that arrives while the tensor
      // backend still initialises (wasm, at start-up) must wait for it, as uflow/status does.
      await daemon.engine();
      return daemon.predictors.use(trainDir, runId, runDirPath, async (predictor) => {
        if (signal.aborted) throw new JobCancelledError();
        const out = await predictor.predict(image.path, { includeRaw });
        return { ...out, imagePath };
      }, engine === 'auto' ? '' : (engine ?? ''));
    },
  });
  return answerWhenEnded(ctx, daemon.jobs, job);
}
