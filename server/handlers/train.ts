/**
 * `uflow/train`: answers at once with one { runId, jobId, position } per category queued (a
 * dataset root without `category` queues every category), then reports through `$/progress`
 * (the client's workDoneToken, else a daemon-created token when the client supports it),
 * `uflow/trainingUpdate` notifications (to every client) and `uflow/jobEnded`.
 *
 * A training that throws, or ends failed (NaN loss, a bad image, out of memory), ends its job
 * 'failed' with the reason and its run marked failed; the daemon goes on serving.
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { DatasetError, detectLayout } from '../../models/data/dataset.js';
import { prepareRun, train as localTraining, type ConfigOverrides } from '../train.js';
import { remoteTrainer } from '../queue/remote-train.js';
import { RpcError, trainDirOf } from '../paths.js';
import { ErrorCodes, Methods, type JobEnded, type ModelKind, type RunInfo, type TrainResult, type TrainingUpdate } from '../protocol.js';
import { readRun, writeRun, type StoredRun } from '../runs.js';
import type { JobEnd } from '../jobs.js';
import type { RequestContext } from './context.js';
import { optObject, optPath, optString, optToken, paramsObject, reqEnum, reqPath } from './params.js';
import { trainingMessage, trainingPercentage, type WorkDoneReporter } from './progress.js';
import { guardConfigPaths, guardRunPaths } from '../path-guard.js';
import { DATASET_REPORT_METHOD, type DatasetReportNotification } from '../dataset-report.js';

const MODEL_TITLES: Record<ModelKind, string> = { uflow: 'U-Flow', fastflow: 'FastFlow' };

/** trainingUpdate notifications: at most one per job this often, except phase/epoch changes. */
const UPDATE_INTERVAL_MS = 200;

/**
 * The categories a request trains: the one named; for an MVTec root every category; otherwise
 * the dataset itself (a category folder or a plain folder of images).
 */
function categoriesOf(datasetPath: string, category: string | undefined): Array<string | undefined> {
  if (category !== undefined) return [category];
  try {
    const { layout, categories } = detectLayout(datasetPath);
    if (layout === 'mvtec-root' && categories.length) return categories.map((c) => basename(c));
  } catch (e) {
    if (e instanceof DatasetError) throw new RpcError(ErrorCodes.BadDataset, `uflow/train: ${e.message}`);
    throw e;
  }
  return [undefined];
}

/** Writes a terminal state into run.json when the trainer could not (it threw, or never started). */
function settleRun(trainDir: string, runId: string, state: 'failed' | 'cancelled', error: string): StoredRun | undefined {
  try {
    const run = readRun(trainDir, runId);
    if (run.state !== 'queued' && run.state !== 'running') return run;
    if (run.pid !== undefined && run.pid !== process.pid) return run;
    return writeRun({ ...run, state, error, pid: undefined });
  } catch {
    return undefined;
  }
}

export async function train(params: unknown, ctx: RequestContext): Promise<TrainResult> {
  const m = ctx.method;
  const p = paramsObject(m, params);
  const datasetPath = reqPath(m, p, 'datasetPath');
  const category = optString(m, p, 'category');
  const model = reqEnum(m, p, 'model', ['uflow', 'fastflow'] as const);
  const config = optObject(m, p, 'config', ['model', 'trainer']) as ConfigOverrides | undefined;
  const workspace = optPath(m, p, 'workspace');
  const resumeRunId = optString(m, p, 'resumeRunId');
  const workDoneToken = optToken(m, p, 'workDoneToken');

  const policy = ctx.session.policy;
  const dataset = policy.check(datasetPath, `${m}: params.datasetPath`);
  const trainDir = trainDirOf(workspace ? policy.check(workspace, `${m}: params.workspace`).path : dataset.root.path);
  ctx.daemon.adoptTrainDir(trainDir);
  if (!existsSync(dataset.path)) throw new RpcError(ErrorCodes.BadDataset, `${m}: params.datasetPath '${datasetPath}' does not exist`);
  guardConfigPaths(policy, config as { model?: Record<string, unknown> } | undefined, `${m}: params.config`);
  if (resumeRunId) {
    let stored: StoredRun | undefined;
    try {
      stored = readRun(trainDir, resumeRunId);
    } catch {
      /* prepareRun says what is wrong with the id */
    }
    if (stored) guardRunPaths(policy, stored, m);
  }

  // Prepare every run first (synchronous checks): a bad category fails the request, not a job.
  const cats = resumeRunId ? [category] : categoriesOf(dataset.path, category);
  const prepared: RunInfo[] = [];
  try {
    for (const cat of cats) {
      prepared.push(prepareRun({ datasetPath: dataset.path, category: cat, model, trainDir, config, resumeRunId, backend: ctx.daemon.backend }));
    }
  } catch (e) {
    for (const r of prepared) settleRun(trainDir, r.runId, 'cancelled', `not started: another category of the same request could not be prepared (${(e as Error).message})`);
    throw e;
  }

  // With `--queue` (uflow.queue) the run is trained by a worker; progress comes back the same way.
  const runTraining = ctx.daemon.queue ? remoteTrainer(ctx.daemon.queue) : localTraining;
  const result: TrainResult = { jobs: [] };
  let clientToken = workDoneToken;
  for (const run of prepared) {
    const title = `${MODEL_TITLES[run.model] ?? run.model} ${run.category}`;
    let reporter: WorkDoneReporter | undefined;
    let lastSent = 0;
    let lastKey = '';
    const jobs = ctx.daemon.jobs;
    const job = jobs.submit<RunInfo>({
      kind: 'train',
      title,
      runId: run.runId,
      owner: ctx.session.id,
      run: async ({ jobId, signal }) => {
        reporter?.report('starting', 0, true);
        try {
          return await runTraining(
            { datasetPath: run.datasetPath || dataset.path, category: run.category, model: run.model, trainDir, config, runId: run.runId, jobId, signal, backend: ctx.daemon.backend },
            {
              onUpdate: (u: TrainingUpdate) => {
                const key = `${u.phase}:${u.epoch}`;
                const force = key !== lastKey || u.step === u.steps;
                const now = Date.now();
                if (force || now - lastSent >= UPDATE_INTERVAL_MS) {
                  lastSent = now;
                  ctx.daemon.broadcast(Methods.trainingUpdate, { ...u, jobId, runId: u.runId || run.runId });
                }
                reporter?.report(trainingMessage(u), trainingPercentage(u), key !== lastKey);
                lastKey = key;
              },
              onLog: (line: string) => ctx.daemon.log('info', line, jobId),
              onDatasetReport: (report, text) => {
                const note: DatasetReportNotification = { runId: run.runId, jobId, report, text };
                ctx.daemon.broadcast(DATASET_REPORT_METHOD, note);
              },
            },
          );
        } catch (e) {
          // The trainer rejects only before the run starts; make the run say so.
          settleRun(trainDir, run.runId, signal.aborted ? 'cancelled' : 'failed', (e as Error)?.message ?? String(e));
          throw e;
        }
      },
      outcome: (final) => {
        if (final.state === 'finished') return { state: 'done' };
        if (final.state === 'cancelled') return { state: 'cancelled', error: final.error };
        return { state: 'failed', error: final.error ?? `the training ended in state '${final.state}'` };
      },
      finalize: (end: JobEnd<RunInfo>): Partial<JobEnded> => {
        offPositions();
        let final: RunInfo | undefined = end.value;
        if (!final || final.state === 'queued' || final.state === 'running') {
          final = settleRun(trainDir, run.runId, end.state === 'cancelled' ? 'cancelled' : 'failed', end.error ?? (end.state === 'cancelled' ? 'cancelled before it started' : 'failed')) ?? final;
        }
        const msg = end.state === 'done' ? `finished: ${final?.epochsDone ?? '?'} epochs` : end.state === 'cancelled' ? 'cancelled' : `failed: ${end.error ?? 'unknown error'}`;
        reporter?.end(msg);
        if (final) {
          const { pid: _p, host: _h, ...pub } = final as StoredRun;
          void _p;
          void _h;
          return { run: pub };
        }
        return {};
      },
    });
    const offPositions = jobs.on({
      positions: (_lane, list) => {
        const me = list.find((x) => x.job === job);
        if (me) reporter?.report(`queued (position ${me.position})`, 0, true);
      },
    });
    if (job.endedAt !== undefined) offPositions();
    const position = jobs.positionOf(job);
    result.jobs.push({ runId: run.runId, jobId: job.id, category: run.category, position });

    // Progress: begun before the answer goes out would race it; start it right after.
    const token = clientToken;
    clientToken = undefined; // one client token carries one progress: the other jobs get their own
    void ctx.session
      .progress(token, () => jobs.cancel(job.id, 'cancelled from the progress notification'))
      .then((r) => {
        if (!r) return;
        reporter = r;
        const pos = jobs.positionOf(job);
        r.begin(title, job.endedAt !== undefined ? 'ended' : pos > 0 ? `queued (position ${pos})` : 'starting', 0, true);
        if (job.endedAt !== undefined) {
          r.end(job.state);
        }
      });
  }
  return result;
}
