/**
 * The CLI's queue commands (loaded only when used, so the other commands never load BullMQ):
 * `uflow worker`, `uflow jobs [list|cancel|follow]`, `uflow train --queue`, `uflow train-all`.
 */
import { resolve } from 'node:path';
import { prepareRun, type ConfigOverrides } from '../train.js';
import type { ModelKind, RunInfo, TrainingUpdate } from '../protocol.js';
import { PipelineError } from '../runs.js';
import { trainAll } from '../train-all.js';
import { QueueClient } from './client.js';
import type { QueueJobSummary, TrainJobResult } from './types.js';
import { startWorker } from './worker.js';

/** What the CLI lends these commands (cli.ts keeps its progress display and end report). */
export interface CliKit {
  parseOverrides(argv: Record<string, unknown>): ConfigOverrides;
  progress(): { update(u: TrainingUpdate): void; finishLine(): void };
  reportTrainEnd(run: RunInfo): number;
  trainDir: string;
  datasetPath: string;
  category?: string;
}

function out(line = ''): void {
  process.stdout.write(line + '\n');
}
function err(line: string): void {
  process.stderr.write(line + '\n');
}

function queueUrl(argv: Record<string, unknown>): string {
  const u = argv.queue ?? process.env.UFLOW_QUEUE;
  if (u === undefined || u === '') throw new PipelineError('name the queue: --queue redis://host:6379 (or set UFLOW_QUEUE)', 'Usage');
  return String(u);
}

/** Ctrl-C while following: `onFirst` (e.g. cancel the remote job), a second one leaves at once. */
function onInterrupt(onFirst: () => void): () => void {
  let n = 0;
  const h = (): void => {
    if (++n > 1) process.exit(130);
    onFirst();
  };
  process.on('SIGINT', h);
  process.on('SIGTERM', h);
  return () => {
    process.off('SIGINT', h);
    process.off('SIGTERM', h);
  };
}

async function followTraining(q: QueueClient, jobId: string, kit: CliKit, cancelOnInterrupt: boolean): Promise<number> {
  const progress = kit.progress();
  let asked = false;
  const off = onInterrupt(() => {
    asked = true;
    if (cancelOnInterrupt) {
      err(`\nCtrl-C: cancelling job ${jobId} (the last complete epoch is kept)…`);
      void q.cancel(jobId, 'cancelled by Ctrl-C of the submitter').catch((e) => err(`cancel failed: ${(e as Error).message}`));
    } else {
      err(`\nstopped following job ${jobId}; it goes on (uflow jobs cancel ${jobId} to stop it)`);
      process.exit(0);
    }
  });
  try {
    const end = await q.follow<TrainJobResult>(jobId, {
      onUpdate: (u) => progress.update(u),
      onLog: (l) => {
        progress.finishLine();
        err(l);
      },
    });
    progress.finishLine();
    if (end.state === 'done') {
      const v = end.value;
      if (v.resumedFrom > 0) err(`job ${jobId}: resumed from epoch ${v.resumedFrom} by worker ${v.worker}`);
      return kit.reportTrainEnd(v.run);
    }
    err(`job ${jobId} ${end.state}: ${end.error}`);
    return end.state === 'cancelled' || asked ? 130 : 1;
  } finally {
    off();
  }
}

/** `uflow train … --queue URL [--detach]`. */
export async function trainOnQueue(argv: Record<string, unknown>, kit: CliKit): Promise<number> {
  const q = await QueueClient.open(queueUrl(argv));
  try {
    const run = prepareRun({
      datasetPath: kit.datasetPath,
      category: kit.category,
      model: (argv.model as ModelKind) ?? 'uflow',
      trainDir: kit.trainDir,
      configPath: argv.config === undefined ? undefined : resolve(String(argv.config)),
      config: kit.parseOverrides(argv),
      resumeRunId: argv.resume === undefined ? undefined : String(argv.resume),
    });
    const jobId = await q.submitTrain(kit.trainDir, run);
    out(`queued job ${jobId}: run ${run.runId} on ${q.display}`);
    if (argv.detach) {
      out(`  follow: uflow jobs follow ${jobId} --queue ${q.display}`);
      return 0;
    }
    return await followTraining(q, jobId, kit, true);
  } finally {
    await q.close();
  }
}

/** `uflow worker --queue URL`. */
export async function cmdWorker(argv: Record<string, unknown>): Promise<number> {
  const lockMs = argv['lock-ms'] === undefined ? undefined : Number(argv['lock-ms']);
  if (lockMs !== undefined && (!Number.isInteger(lockMs) || lockMs < 1000)) throw new PipelineError(`--lock-ms must be an integer ≥ 1000, got ${argv['lock-ms']}`, 'Usage');
  const concurrency = argv.concurrency === undefined ? 1 : Number(argv.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new PipelineError(`--concurrency must be a positive integer, got ${argv.concurrency}`, 'Usage');
  const w = await startWorker({
    url: queueUrl(argv),
    name: argv.name === undefined ? undefined : String(argv.name),
    concurrency,
    lockMs,
    backend: argv.backend as string | undefined,
    log: (l) => err(`${new Date().toISOString()} ${l}`),
  });
  let n = 0;
  const h = (sig: string): void => {
    if (++n > 1) process.exit(130);
    void w.close(`received ${sig}`);
  };
  process.on('SIGINT', () => h('SIGINT'));
  process.on('SIGTERM', () => h('SIGTERM'));
  await w.done;
  return 0;
}

function jobLine(j: QueueJobSummary): string {
  const what = [j.kind, j.category, j.runId].filter(Boolean).join(' ');
  const tail = j.state === 'running' ? (j.progress ?? '') : j.error ?? '';
  return `${j.jobId.padEnd(52)} ${j.state.padEnd(9)} ${what}${j.worker ? `  [${j.worker}]` : ''}${tail ? `  ${tail}` : ''}`;
}

/** `uflow jobs [list|cancel ID|follow ID] --queue URL`. */
export async function cmdJobs(argv: Record<string, unknown>, kit: CliKit): Promise<number> {
  const action = String(argv.action ?? 'list');
  const id = argv.id === undefined ? undefined : String(argv.id);
  if (action !== 'list' && !id) throw new PipelineError(`uflow jobs ${action} needs a job id (uflow jobs lists them)`, 'Usage');
  const q = await QueueClient.open(queueUrl(argv));
  try {
    if (action === 'list') {
      const jobs = await q.list();
      if (argv.json) out(JSON.stringify(jobs, null, 2));
      else if (!jobs.length) out(`no jobs on ${q.display}`);
      else for (const j of jobs) out(jobLine(j));
      return 0;
    }
    if (action === 'cancel') {
      const r = await q.cancel(id!, `cancelled by uflow jobs cancel (${process.env.USER ?? 'user'})`);
      if (r === 'unknown') throw new PipelineError(`no job '${id}' on ${q.display} (uflow jobs lists them)`, 'NotFound');
      if (r === 'ended') throw new PipelineError(`job ${id} has already ended: nothing to cancel`, 'Usage');
      out(r === 'removed' ? `job ${id} removed from the queue (it had not started)` : `job ${id}: cancel sent; its worker stops it at its next training step`);
      return 0;
    }
    const job = await q.job(id!);
    if (!job) throw new PipelineError(`no job '${id}' on ${q.display} (uflow jobs lists them)`, 'NotFound');
    if (job.name === 'train') return await followTraining(q, id!, kit, false);
    const end = await q.follow(id!, { onLog: (l) => err(l) });
    if (end.state === 'done') {
      out(JSON.stringify(end.value, null, 2));
      return 0;
    }
    err(`job ${id} ${end.state}: ${end.error}`);
    return end.state === 'cancelled' ? 130 : 1;
  } finally {
    await q.close();
  }
}

/** `uflow train-all -data ROOT [--queue URL]`. */
export async function cmdTrainAll(argv: Record<string, unknown>, kit: CliKit): Promise<number> {
  const url = argv.queue === undefined ? undefined : String(argv.queue);
  const q = url ? await QueueClient.open(url) : undefined;
  const ac = new AbortController();
  const off = onInterrupt(() => {
    err('\nCtrl-C: stopping train-all (finished categories and the last complete epochs are kept)…');
    ac.abort();
  });
  try {
    const lastEpoch = new Map<string, number>();
    const res = await trainAll({
      root: kit.datasetPath,
      trainDir: kit.trainDir,
      model: (argv.model as ModelKind) ?? 'uflow',
      configPath: argv.config === undefined ? undefined : resolve(String(argv.config)),
      config: kit.parseOverrides(argv),
      categories: (argv.cat as string[] | undefined)?.map(String),
      queue: q,
      backend: argv.backend as string | undefined,
      signal: ac.signal,
      onLog: (l) => {
        if (/queued job|resum|failed|cancel/i.test(l)) err(l);
      },
      onUpdate: (cat, u) => {
        if (u.phase === 'train' && u.step === u.steps && lastEpoch.get(cat) !== u.epoch) {
          lastEpoch.set(cat, u.epoch);
          err(`${cat}: epoch ${u.epoch}/${u.epochs} loss ${u.loss?.toFixed(3) ?? '-'}`);
        }
      },
    });
    out(res.table);
    out();
    out(`${res.rows.length} categories in ${res.seconds.toFixed(1)} s${q ? ` on ${q.display}` : ''}`);
    out(`summary: ${res.dir}/summary.md`);
    out(`report: ${res.dir}/report.html`);
    return res.rows.every((r) => r.state === 'done') ? 0 : ac.signal.aborted ? 130 : 1;
  } finally {
    off();
    await q?.close();
  }
}
