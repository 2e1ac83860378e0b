/**
 * The run store: `<trainDir>/runs/<run-id>/` holds everything a run makes.
 *
 *   run.json                      RunInfo (+ the owning pid/host while it runs)
 *   checkpoint.safetensors        the last complete epoch (reference PyTorch state_dict names)
 *   best-<metric>.safetensors     the epoch best on pixel_auroc / aupro / miou (official models/auc|pro|miou)
 *                                 and on image_auroc
 *   train-state.safetensors       optimizer moments of the last complete epoch (for --resume)
 *   metrics.jsonl                 one JSON line per epoch
 *   evaluation.json, maps/        the last evaluation and its PNG maps
 *
 * Every file is written atomically (temporary sibling + fsync + rename), so a crash or a kill
 * leaves the previous complete version. Run ids sort by time:
 * `<category>-<model>-<YYYYMMDD-HHMMSS>-<4 hex>`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { atomicWriteFile, atomicWriteJson } from '../models/io/atomic.js';
import type { ErrorCodes, ModelKind, RunInfo, RunState, ValidationMetrics } from './protocol.js';

export type PipelineErrorCode = keyof typeof ErrorCodes | 'Usage';

/** An error a person can act on (bad dataset, unknown run, …). `code` maps onto protocol ErrorCodes. */
export class PipelineError extends Error {
  constructor(
    message: string,
    readonly code: PipelineErrorCode = 'JobFailed',
    /** For 'NotAvailable': true when trying again cannot help (an export the format cannot express), so a queue worker does not retry it. */
    readonly permanent = false,
  ) {
    super(message);
    this.name = 'PipelineError';
  }
}

/** run.json as stored: RunInfo plus who is running it. */
export type StoredRun = RunInfo & { pid?: number; host?: string };

/** Metrics a checkpoint is selected on (official models/auc|pro|miou, plus image AUROC). */
export const METRIC_NAMES = ['pixel_auroc', 'aupro', 'miou', 'image_auroc'] as const;
export type SelectionMetric = (typeof METRIC_NAMES)[number];

export const RUN_FILES = {
  info: 'run.json',
  checkpoint: 'checkpoint.safetensors',
  trainState: 'train-state.safetensors',
  metrics: 'metrics.jsonl',
  evaluation: 'evaluation.json',
  maps: 'maps',
  best: (m: SelectionMetric) => `best-${m}.safetensors`,
} as const;

export function runsRoot(trainDir: string): string {
  return join(resolve(trainDir), 'runs');
}

export function runDir(trainDir: string, runId: string): string {
  if (!/^[A-Za-z0-9._-]+$/.test(runId) || runId.startsWith('.')) {
    throw new PipelineError(`'${runId}' is not a run id (run ids look like carpet-uflow-20240101-120000-ab12)`, 'Usage');
  }
  return join(runsRoot(trainDir), runId);
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

/** `<category>-<model>-<YYYYMMDD-HHMMSS>-<4 hex>` (UTC), sortable by creation time. */
export function newRunId(category: string, model: ModelKind, now = new Date()): string {
  const safe = category.replace(/[^A-Za-z0-9_.]+/g, '_').replace(/^\.+/, '') || 'dataset';
  const stamp = `${now.getUTCFullYear()}${pad(now.getUTCMonth() + 1)}${pad(now.getUTCDate())}-${pad(now.getUTCHours())}${pad(now.getUTCMinutes())}${pad(now.getUTCSeconds())}`;
  return `${safe}-${model}-${stamp}-${randomBytes(2).toString('hex')}`;
}

/** The timestamp part of a run id, for ordering runs of different categories by time. */
function idTime(runId: string): string {
  const m = /-(\d{8}-\d{6})-[0-9a-f]{4}$/.exec(runId);
  return m ? m[1]! : '';
}

export function compareRunsNewestFirst(a: RunInfo, b: RunInfo): number {
  const ta = idTime(a.runId) || a.createdAt;
  const tb = idTime(b.runId) || b.createdAt;
  if (ta !== tb) return ta < tb ? 1 : -1;
  return a.runId < b.runId ? 1 : a.runId > b.runId ? -1 : 0;
}

/** Writes run.json atomically, stamping updatedAt. Returns the stored value. */
export function writeRun(run: StoredRun): StoredRun {
  const stored: StoredRun = { ...run, updatedAt: new Date().toISOString() };
  atomicWriteJson(join(run.dir, RUN_FILES.info), stored);
  return stored;
}

/** Reads `<trainDir>/runs/<runId>/run.json`; PipelineError NotFound when absent. */
export function readRun(trainDir: string, runId: string): StoredRun {
  const dir = runDir(trainDir, runId);
  const file = join(dir, RUN_FILES.info);
  if (!existsSync(file)) {
    const known = listRuns(trainDir).slice(0, 5).map((r) => r.runId);
    throw new PipelineError(
      `no run '${runId}' in ${runsRoot(trainDir)}` + (known.length ? ` (recent runs: ${known.join(', ')})` : ' (there are no runs there yet: train one first)'),
      'NotFound',
    );
  }
  return readRunFile(file, dir);
}

function readRunFile(file: string, dir: string): StoredRun {
  let run: StoredRun;
  try {
    run = JSON.parse(readFileSync(file, 'utf8')) as StoredRun;
  } catch (e) {
    throw new PipelineError(`${file} cannot be read (${(e as Error).message}); delete the run folder or restore the file`, 'JobFailed');
  }
  if (typeof run !== 'object' || run === null || typeof run.runId !== 'string') {
    throw new PipelineError(`${file} is not a run description (no runId); delete the run folder`, 'JobFailed');
  }
  // The folder may have moved (a copied workspace): trust where it is now.
  run.dir = dir;
  return run;
}

/** All runs under trainDir, newest first. Unreadable run folders are skipped (and told to `problems` when given). */
export function listRuns(trainDir: string, problems?: Array<{ path: string; message: string }>): StoredRun[] {
  const root = runsRoot(trainDir);
  if (!existsSync(root)) return [];
  const runs: StoredRun[] = [];
  for (const name of readdirSync(root)) {
    if (name.startsWith('.')) continue;
    const dir = join(root, name);
    const file = join(dir, RUN_FILES.info);
    if (!existsSync(file)) continue;
    try {
      runs.push(readRunFile(file, dir));
    } catch (e) {
      // A foreign or broken folder: not a run.
      problems?.push({ path: file, message: `${(e as Error)?.message ?? String(e)}` });
    }
  }
  return runs.sort(compareRunsNewestFirst);
}

/** The newest run in state 'finished' (of `category` and `model` when given). */
export function newestFinishedRun(trainDir: string, category?: string, model?: ModelKind): StoredRun | undefined {
  return listRuns(trainDir).find((r) => r.state === 'finished' && (!category || r.category === category) && (!model || r.model === model));
}

/** The newest run with a usable checkpoint (finished first, then cancelled/interrupted/failed with epochs done). */
export function newestUsableRun(trainDir: string, category?: string, model?: ModelKind): StoredRun | undefined {
  const runs = listRuns(trainDir).filter((r) => (!category || r.category === category) && (!model || r.model === model));
  return runs.find((r) => r.state === 'finished') ?? runs.find((r) => r.epochsDone > 0 && existsSync(join(r.dir, RUN_FILES.checkpoint)));
}

/** Categories that have at least one run with a checkpoint, sorted. */
export function categoriesWithRuns(trainDir: string): string[] {
  return [...new Set(listRuns(trainDir).filter((r) => r.epochsDone > 0).map((r) => r.category))].sort();
}

export function isPidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs left 'running' or 'queued' by a process that is gone (on this host) become 'interrupted'.
 * Returns the runs it changed. Call at start-up (daemon) and before listing (CLI).
 */
export function markInterrupted(trainDir: string): StoredRun[] {
  const changed: StoredRun[] = [];
  const host = hostname();
  for (const run of listRuns(trainDir)) {
    if (run.state !== 'running' && run.state !== 'queued') continue;
    if (run.host && run.host !== host) continue;
    if (run.pid !== undefined && run.pid !== process.pid && isPidAlive(run.pid)) continue;
    if (run.pid === process.pid) continue;
    changed.push(writeRun({ ...run, state: 'interrupted', pid: undefined, error: run.error ?? 'the process running it stopped before it finished; resume it to continue' }));
  }
  return changed;
}

/** Marks the run as owned by this process with the given state. */
export function claimRun(run: StoredRun, state: RunState): StoredRun {
  return writeRun({ ...run, state, pid: process.pid, host: hostname() });
}

// ---------------------------------------------------------------------------------------------
// metrics.jsonl

export interface EpochRecord {
  epoch: number;
  loss: number;
  lr: number;
  seconds: number;
  imagesPerSecond: number;
  metrics?: ValidationMetrics;
  time: string;
}

export function readMetrics(dir: string): EpochRecord[] {
  const file = join(dir, RUN_FILES.metrics);
  if (!existsSync(file)) return [];
  const out: EpochRecord[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as EpochRecord);
    } catch {
      /* a torn line can only come from a foreign writer: skip it */
    }
  }
  return out;
}

/**
 * Appends one epoch line. The file is rewritten whole through a temporary file and a rename, so
 * it always holds complete lines; lines of epochs ≥ this one (left by a run resumed from an
 * earlier checkpoint) are dropped first.
 */
export function appendMetrics(dir: string, rec: EpochRecord): void {
  const kept = readMetrics(dir).filter((r) => r.epoch < rec.epoch);
  kept.push(rec);
  atomicWriteFile(join(dir, RUN_FILES.metrics), kept.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** Keeps only the lines of epochs ≤ `epoch` (resume from a checkpoint older than the last line). */
export function truncateMetrics(dir: string, epoch: number): void {
  const all = readMetrics(dir);
  const kept = all.filter((r) => r.epoch <= epoch);
  if (kept.length !== all.length) atomicWriteFile(join(dir, RUN_FILES.metrics), kept.map((r) => JSON.stringify(r)).join('\n') + (kept.length ? '\n' : ''));
}
