/**
 * `uflow train-all`: trains and evaluates every category of an MVTec-layout root, one job per
 * category — in this process one after the other, or on the Redis queue (`--queue`) where as many
 * workers as there are take them in parallel — and writes one summary table (per category and the
 * mean, like the paper's tables) with an HTML report, under `<train_dir>/train-all/<time>/`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { DatasetError, detectLayout } from '../models/data/dataset.js';
import { atomicWriteFile, atomicWriteJson } from '../models/io/atomic.js';
import { evaluate } from './evaluate.js';
import { prepareRun, train, type ConfigOverrides } from './train.js';
import type { Evaluation, MetricSet, ModelKind, RunInfo, TrainingUpdate } from './protocol.js';
import { writeHtmlReport } from './report.js';
import { PipelineError, readRun, RUN_FILES } from './runs.js';
import type { QueueClient } from './queue/client.js';
import type { TrainJobResult } from './queue/types.js';

export interface TrainAllOptions {
  /** A folder of categories (<root>/<category>/train/good). */
  root: string;
  trainDir: string;
  model?: ModelKind;
  configPath?: string;
  config?: ConfigOverrides;
  /** Only these categories (default: all). */
  categories?: string[];
  /** Submit to this queue instead of training here. */
  queue?: QueueClient;
  backend?: string;
  signal?: AbortSignal;
  onLog?(line: string): void;
  onUpdate?(category: string, u: TrainingUpdate): void;
}

export interface TrainAllRow {
  category: string;
  runId: string;
  state: 'done' | 'failed' | 'cancelled';
  error?: string;
  overall?: MetricSet;
  epochs: number;
  /** Wall time of the category's job (training + evaluation). */
  seconds: number;
  worker?: string;
  jobId?: string;
}

export type MeanRow = Record<'image_auroc' | 'pixel_auroc' | 'aupro' | 'miou', number | null>;

export interface TrainAllResult {
  rows: TrainAllRow[];
  mean: MeanRow;
  /** Where summary.md, summary.json and report.html are. */
  dir: string;
  table: string;
  seconds: number;
}

const METRICS = ['image_auroc', 'pixel_auroc', 'aupro', 'miou'] as const;

export function categoriesOfRoot(root: string): string[] {
  let layout;
  try {
    layout = detectLayout(root);
  } catch (e) {
    if (e instanceof DatasetError) throw new PipelineError(e.message, 'BadDataset');
    throw e;
  }
  if (layout.layout !== 'mvtec-root' || layout.categories.length === 0) {
    throw new PipelineError(`${root} is not a folder of categories (MVTec layout: <root>/<category>/train/good): train-all needs the root; for one category use uflow train`, 'BadDataset');
  }
  return layout.categories.map((c) => basename(c)).sort();
}

function stamp(d = new Date()): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '-');
}

export function meanOf(rows: TrainAllRow[]): MeanRow {
  const out = {} as MeanRow;
  for (const m of METRICS) {
    const v = rows.map((r) => r.overall?.[m]).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
    out[m] = v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  }
  return out;
}

function f(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(4);
}

/** The summary as a Markdown table: one row per category, then the mean over the categories that finished. */
export function summaryTable(rows: TrainAllRow[], mean: MeanRow): string {
  const head = '| category | image AUROC | pixel AUROC | AUPRO | mIoU@logNFA=0 | epochs | time (s) | state | run |';
  const lines = [head, '|---|---|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const o = r.overall;
    lines.push(`| ${r.category} | ${f(o?.image_auroc)} | ${f(o?.pixel_auroc)} | ${f(o?.aupro)} | ${f(o?.miou)} | ${r.epochs} | ${r.seconds.toFixed(1)} | ${r.state}${r.error ? `: ${r.error.replace(/\|/g, '/')}` : ''} | ${r.runId} |`);
  }
  const n = rows.filter((r) => r.overall).length;
  lines.push(`| **mean** (${n} of ${rows.length}) | ${f(mean.image_auroc)} | ${f(mean.pixel_auroc)} | ${f(mean.aupro)} | ${f(mean.miou)} | | | | |`);
  return lines.join('\n');
}

async function trainHere(trainDir: string, run: RunInfo, opts: TrainAllOptions): Promise<TrainAllRow> {
  const t0 = Date.now();
  const row: TrainAllRow = { category: run.category, runId: run.runId, state: 'failed', epochs: 0, seconds: 0 };
  try {
    const fin = await train(
      { datasetPath: run.datasetPath, category: run.category, model: run.model, trainDir, runId: run.runId, backend: opts.backend, signal: opts.signal },
      { onUpdate: (u) => opts.onUpdate?.(run.category, u), onLog: (l) => opts.onLog?.(`${run.category}: ${l}`) },
    );
    row.epochs = fin.epochsDone;
    if (fin.state !== 'finished') {
      row.state = fin.state === 'cancelled' ? 'cancelled' : 'failed';
      row.error = fin.error ?? fin.state;
    } else {
      const ev = await evaluate({ trainDir, runId: run.runId, backend: opts.backend, signal: opts.signal });
      row.overall = ev.overall;
      row.state = 'done';
    }
  } catch (e) {
    row.error = (e as Error).message;
    row.state = opts.signal?.aborted ? 'cancelled' : 'failed';
  }
  row.seconds = (Date.now() - t0) / 1000;
  return row;
}

async function trainOnQueue(q: QueueClient, trainDir: string, run: RunInfo, jobId: string, opts: TrainAllOptions): Promise<TrainAllRow> {
  const row: TrainAllRow = { category: run.category, runId: run.runId, state: 'failed', epochs: 0, seconds: 0, jobId };
  const end = await q.follow<TrainJobResult>(jobId, {
    onUpdate: (u) => opts.onUpdate?.(run.category, u),
    onLog: (l) => opts.onLog?.(`${run.category}: ${l}`),
  });
  if (end.state === 'done') {
    row.state = 'done';
    row.overall = end.value.evaluation?.overall;
    row.epochs = end.value.run.epochsDone;
    row.seconds = end.value.seconds;
    row.worker = end.value.worker;
  } else {
    row.state = end.state;
    row.error = end.error;
    try {
      row.epochs = readRun(trainDir, run.runId).epochsDone;
    } catch {
      /* not visible */
    }
  }
  return row;
}

export async function trainAll(opts: TrainAllOptions): Promise<TrainAllResult> {
  const t0 = Date.now();
  const root = resolve(opts.root);
  const trainDir = resolve(opts.trainDir);
  const all = categoriesOfRoot(root);
  const unknown = (opts.categories ?? []).filter((c) => !all.includes(c));
  if (unknown.length) throw new PipelineError(`${root} has no categor${unknown.length > 1 ? 'ies' : 'y'} ${unknown.join(', ')}: it holds ${all.join(', ')}`, 'BadDataset');
  const cats = opts.categories?.length ? all.filter((c) => opts.categories!.includes(c)) : all;
  // Every run is prepared first: a bad config fails the command before any job starts.
  const runs = cats.map((c) => prepareRun({ datasetPath: root, category: c, model: opts.model ?? 'uflow', trainDir, configPath: opts.configPath, config: opts.config }));
  let rows: TrainAllRow[];
  if (opts.queue) {
    const q = opts.queue;
    const ids: string[] = [];
    for (const r of runs) {
      const id = await q.submitTrain(trainDir, r, { evaluate: true });
      ids.push(id);
      opts.onLog?.(`${r.category}: queued job ${id} (run ${r.runId})`);
    }
    const onAbort = () => void Promise.all(ids.map((id) => q.cancel(id, 'train-all was interrupted').catch(() => undefined)));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      rows = await Promise.all(runs.map((r, i) => trainOnQueue(q, trainDir, r, ids[i]!, opts)));
    } finally {
      opts.signal?.removeEventListener('abort', onAbort);
    }
  } else {
    rows = [];
    for (const r of runs) {
      if (opts.signal?.aborted) rows.push({ category: r.category, runId: r.runId, state: 'cancelled', epochs: 0, seconds: 0, error: 'not started' });
      else rows.push(await trainHere(trainDir, r, opts));
    }
  }
  const mean = meanOf(rows);
  const table = summaryTable(rows, mean);
  const dir = join(trainDir, 'train-all', `${stamp()}-${process.pid}`);
  const seconds = (Date.now() - t0) / 1000;
  atomicWriteJson(join(dir, 'summary.json'), { root, trainDir, model: opts.model ?? 'uflow', queue: opts.queue?.display, seconds, rows, mean });
  atomicWriteFile(join(dir, 'summary.md'), `# U-Flow train-all: ${root}\n\n${table}\n\n${rows.length} categories in ${seconds.toFixed(1)} s${opts.queue ? ` on ${opts.queue.display}` : ' in one process'}.\n`);
  const evals: Array<{ run: RunInfo; evaluation: Evaluation }> = [];
  for (const r of rows) {
    if (r.state !== 'done') continue;
    try {
      const run = readRun(trainDir, r.runId);
      const file = join(run.dir, RUN_FILES.evaluation);
      if (existsSync(file)) evals.push({ run, evaluation: JSON.parse(readFileSync(file, 'utf8')) as Evaluation });
    } catch {
      /* the report leaves it out; the table has it */
    }
  }
  writeHtmlReport(join(dir, 'report.html'), evals, { title: `U-Flow train-all: ${basename(root)}`, notes: [`Mean over ${rows.filter((r) => r.overall).length} of ${rows.length} categories: image AUROC ${f(mean.image_auroc)}, pixel AUROC ${f(mean.pixel_auroc)}, AUPRO ${f(mean.aupro)}, mIoU ${f(mean.miou)}.`], galleryLimit: 16 });
  return { rows, mean, dir, table, seconds };
}
