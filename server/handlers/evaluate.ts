/**
 * `uflow/evaluate`: metrics of a run on its test split. Cached per run: evaluation.json is reused
 * when it was made for the same dataset and precision after the run's last checkpoint, and the
 * run is not training. Evaluations run one at a time, alongside a training (not behind it).
 * `$/cancelRequest` (or `uflow/cancel` with the job id listed in status) stops it at its next image.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { evaluate as runEvaluation } from '../evaluate.js';
import { realpathLoose, RpcError } from '../paths.js';
import { ErrorCodes, type Evaluation, type EvaluateResult } from '../protocol.js';
import { RUN_FILES, type StoredRun } from '../runs.js';
import { answerWhenEnded, locateRun } from './common.js';
import type { RequestContext } from './context.js';
import { optBool, optEnum, optPath, optToken, paramsObject, reqString } from './params.js';
import { parseEngine } from '../onnx-engine.js';
import { guardRunPaths } from '../path-guard.js';
import { DATASET_REPORT_METHOD, type DatasetReportNotification } from '../dataset-report.js';

function newestCheckpointMtime(dir: string): number {
  let t = 0;
  try {
    for (const f of readdirSync(dir)) if (f.endsWith('.safetensors')) t = Math.max(t, statSync(join(dir, f)).mtimeMs);
  } catch {
    /* none */
  }
  return t;
}

/** evaluation.json when it still describes the run as it is, else undefined. */
export function cachedEvaluation(run: StoredRun, datasetPath: string, highPrecision: boolean, engine?: 'onnx' | 'tfjs'): Evaluation | undefined {
  if (run.state === 'running' || run.state === 'queued') return undefined;
  const file = join(run.dir, RUN_FILES.evaluation);
  if (!existsSync(file)) return undefined;
  try {
    const ev = JSON.parse(readFileSync(file, 'utf8')) as Evaluation;
    if (ev.runId !== run.runId || Boolean(ev.highPrecision) !== highPrecision || !ev.threshold) return undefined;
    // An engine asked for by name: only an evaluation made on it.
    if (engine && ev.inference?.engine !== engine) return undefined;
    if (realpathLoose(ev.datasetPath) !== realpathLoose(datasetPath)) return undefined;
    // Strictly newer than every checkpoint (an equal time on a coarse clock is not proof).
    if (statSync(file).mtimeMs <= newestCheckpointMtime(run.dir)) return undefined;
    return ev;
  } catch {
    return undefined;
  }
}

export async function evaluate(params: unknown, ctx: RequestContext): Promise<EvaluateResult> {
  const m = ctx.method;
  const p = paramsObject(m, params);
  const runId = reqString(m, p, 'runId');
  const datasetParam = optPath(m, p, 'datasetPath');
  const highPrecision = optBool(m, p, 'highPrecision') ?? false;
  const allowMaskProblems = optBool(m, p, 'allowMaskProblems') ?? false;
  const engine = parseEngine(optEnum(m, p, 'engine', ['onnx', 'tfjs', 'auto'] as const));
  const workDoneToken = optToken(m, p, 'workDoneToken');
  const policy = ctx.session.policy;
  const datasetPath = datasetParam ? policy.check(datasetParam, `${m}: params.datasetPath`).path : undefined;
  const { trainDir, run } = locateRun(ctx, runId);
  const effectiveDataset = datasetPath ?? run.datasetPath;
  guardRunPaths(policy, run, m, { dataset: datasetPath === undefined });

  const hit = cachedEvaluation(run, effectiveDataset, highPrecision, engine);
  if (hit) return { ...hit, cached: true };
  if (ctx.token.isCancellationRequested) throw new RpcError(ErrorCodes.Cancelled, `${m}: cancelled`);

  const jobs = ctx.daemon.jobs;
  const title = `Evaluate ${run.category} (${run.runId})`;
  let cached = false;
  const reporterP = ctx.session.progress(workDoneToken, () => jobs.cancel(job.id, 'cancelled from the progress notification'));
  const job = jobs.submit<Evaluation>({
    kind: 'evaluate',
    title,
    runId,
    owner: ctx.session.id,
    run: async ({ signal }) => {
      // An identical evaluation queued before this one may have just written the file.
      const again = cachedEvaluation(run, effectiveDataset, highPrecision, engine);
      if (again) {
        cached = true;
        return again;
      }
      const reporter = await reporterP;
      reporter?.report('starting', 0, true);
      return runEvaluation({
        trainDir,
        runId,
        datasetPath,
        highPrecision,
        allowMaskProblems,
        onDatasetReport: (report, text) => {
          const note: DatasetReportNotification = { runId, jobId: job.id, report, text };
          ctx.daemon.broadcast(DATASET_REPORT_METHOD, note);
        },
        backend: ctx.daemon.backend,
        engine,
        warn: (line) => ctx.daemon.log('warn', `evaluate ${runId}: ${line}`, job.id),
        signal,
        onProgress: (done, total, message) => reporter?.report(message || `${done}/${total} images`, total > 0 ? (100 * done) / total : undefined),
      });
    },
    finalize: (end) => {
      void reporterP.then((r) => r?.end(end.state === 'done' ? (cached ? 'reused the last evaluation' : 'done') : end.state === 'cancelled' ? 'cancelled' : `failed: ${end.error}`));
    },
  });
  void reporterP.then((r) => r?.begin(title, jobs.positionOf(job) > 0 ? 'queued' : 'starting', 0, true));
  const value = await answerWhenEnded(ctx, jobs, job);
  return cached ? { ...value, cached: true } : value;
}
