/**
 * What the jobs (train.ts, evaluate.ts, predict.ts, doctor.ts, demo.ts) share: the engine, the
 * errors, the dataset and the run a job means, the versions recorded.
 *
 * Everything a run makes lives under `<trainDir>/runs/<run-id>/` (see runs.ts). The daemon passes
 * `trainDir = <workspace>/.uflow`; the CLI's default is `./.uflow` so both see the same runs.
 *
 * Errors meant for a person are `PipelineError`s: their message names the file or option and the
 * fix, and `code` maps onto the protocol's ErrorCodes. Anything else is a bug.
 */
import type { RunInfo } from './protocol.js';
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { engineSettled, engineVersions, initEngine, type EngineInfo } from '../models/engine.js';
import { TensorFileError } from '../models/io/safetensors.js';
import { describeError } from '../models/io/fs-errors.js';
import { DatasetError, detectLayout, listSplit, type SplitItem } from '../models/data/dataset.js';
import { ImageError } from '../models/data/images.js';
import { ConfigError } from './config.js';
import { newestFinishedRun, newestUsableRun, PipelineError, readRun, type StoredRun } from './runs.js';

/** The message of an error for a person: ours as is, others with their kind. */
export function userMessage(e: unknown): string {
  if (e instanceof PipelineError || e instanceof DatasetError || e instanceof ImageError || e instanceof ConfigError || e instanceof TensorFileError) return e.message;
  return describeError(e);
}

/** Re-throws the errors of other modules that a person can act on as PipelineErrors. */
export function asPipelineError(e: unknown, code: PipelineError['code'] = 'BadDataset'): never {
  if (e instanceof PipelineError) throw e;
  if (e instanceof DatasetError || e instanceof ImageError) throw new PipelineError(e.message, 'BadDataset');
  if (e instanceof ConfigError) throw new PipelineError(e.message, /^overrides\b/.test(e.message) ? 'Usage' : 'JobFailed');
  if (e instanceof TensorFileError) throw new PipelineError(e.message, 'JobFailed');
  throw new PipelineError(describeError(e), code);
}

/** The engine in use, started on first need; a named backend other than the current one switches. */
export async function ensureEngine(backend?: string): Promise<EngineInfo> {
  const cur = await engineSettled();
  if (cur && (!backend || backend === cur.backend)) return cur;
  try {
    return await initEngine({ backend });
  } catch (e) {
    throw new PipelineError((e as Error).message, backend ? 'Usage' : 'NotAvailable');
  }
}

export interface ResolvedDataset {
  categoryDir: string;
  category: string;
}

/**
 * The category folder a (datasetPath, category) pair names: `<datasetPath>/<category>` for a root
 * of categories, the folder itself for a category or a plain folder of images.
 */
export function resolveDataset(datasetPath: string, category?: string): ResolvedDataset {
  const abs = resolve(datasetPath);
  if (category !== undefined) {
    if (!category || /[/\\]/.test(category) || category === '.' || category === '..') throw new PipelineError(`'${category}' is not a category name`, 'Usage');
    const sub = join(abs, category);
    if (existsSync(join(sub, 'train'))) return { categoryDir: sub, category };
  }
  let layout;
  try {
    layout = detectLayout(abs);
  } catch (e) {
    asPipelineError(e);
  }
  if (layout.layout === 'mvtec-root') {
    const names = layout.categories.map((c) => basename(c));
    if (category === undefined) {
      if (layout.categories.length === 1) return { categoryDir: layout.categories[0]!, category: names[0]! };
      throw new PipelineError(`${abs} holds several categories (${names.join(', ')}): choose one with -cat <category>`, 'Usage');
    }
    throw new PipelineError(`${abs} has no category '${category}' (a folder ${join(abs, category)}/train/good): categories found: ${names.join(', ')}`, 'BadDataset');
  }
  if (layout.categories.length === 0) {
    throw new PipelineError(`${abs}: no images: put normal images in <category>/train/good (MVTec layout) or directly in the folder`, 'BadDataset');
  }
  const dir = layout.categories[0]!;
  if (category !== undefined && category !== basename(dir)) {
    throw new PipelineError(`${abs} is the category '${basename(dir)}' itself, not a folder of categories: drop -cat ${category}, or point -data at the folder that holds ${category}/`, 'BadDataset');
  }
  if (layout.layout === 'mvtec-category' && !existsSync(join(dir, 'train', 'good'))) {
    throw new PipelineError(`${dir}: no train/good folder: an MVTec category needs ${basename(dir)}/train/good/*.png with the normal training images`, 'BadDataset');
  }
  return { categoryDir: dir, category: basename(dir) };
}

export function splitsOf(categoryDir: string): { train: SplitItem[]; test: SplitItem[] } {
  try {
    return { train: listSplit(categoryDir, 'train'), test: listSplit(categoryDir, 'test') };
  } catch (e) {
    asPipelineError(e);
  }
}

/** The run a command means: `runId`, else the newest finished (else usable) run of `category`. */
export function pickRun(trainDir: string, runId?: string, category?: string): StoredRun {
  if (runId) return readRun(trainDir, runId);
  const run = newestFinishedRun(trainDir, category) ?? newestUsableRun(trainDir, category);
  if (!run) {
    throw new PipelineError(
      `no trained run${category ? ` of '${category}'` : ''} in ${join(trainDir, 'runs')}: train one first (uflow train${category ? ` -cat ${category}` : ''} -data <dataset>), or pass -train_dir / --run`,
      'NotFound',
    );
  }
  return run;
}

/** The category folder to evaluate a run on: `datasetPath` (a root or the category itself) or the run's own. */
export function evaluationDataset(run: RunInfo, datasetPath?: string): string {
  if (!datasetPath) {
    if (!existsSync(run.datasetPath)) throw new PipelineError(`${run.datasetPath}: the dataset run ${run.runId} was trained on is gone: pass -data <folder>`, 'BadDataset');
    return run.datasetPath;
  }
  const abs = resolve(datasetPath);
  if (existsSync(join(abs, run.category, 'train')) || existsSync(join(abs, run.category, 'test'))) return join(abs, run.category);
  return resolveDataset(abs).categoryDir;
}

const PRODUCT_VERSION = '0.1.0';

/** The versions a run records (run.json) and `uflow doctor` prints. */
export function versions(): Record<string, string> {
  return { uflow: PRODUCT_VERSION, node: process.versions.node, ...engineVersions(), platform: `${process.platform}-${process.arch}` };
}
