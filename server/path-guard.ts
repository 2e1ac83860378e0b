/**
 * The daemon's one path guard beyond request parameters: paths that arrive inside a config
 * (`model.backbone: tfjs:<dir>`), and paths a run's metadata (run.json) names — the dataset it
 * was trained on and its backbone folder — go through the same PathPolicy.check as request
 * paths, so a config or a run.json cannot make the daemon read outside the client's folders
 * (workspace folders, --allow folders: the extension passes its storage and the user's
 * `uflow.allowedFolders`; and the model cache).
 */
import { isAbsolute, resolve } from 'node:path';
import { defaultCacheDir } from './pretrained.js';
import { makeRoot, type PathPolicy, type Root } from './paths.js';

/** The folder of a `tfjs:<dir>` backbone, else undefined. */
export function backboneDir(backbone: unknown): string | undefined {
  if (typeof backbone !== 'string' || !backbone.startsWith('tfjs:')) return undefined;
  const dir = backbone.slice('tfjs:'.length);
  return dir ? (isAbsolute(dir) ? dir : resolve(dir)) : undefined;
}

/** Checks the paths inside config overrides (`{ model: { backbone: 'tfjs:<dir>' } }`). */
export function guardConfigPaths(policy: PathPolicy, config: { model?: Record<string, unknown> } | undefined, what: string): void {
  const dir = backboneDir(config?.model?.backbone);
  if (dir !== undefined) policy.check(dir, `${what}.model.backbone (tfjs:)`);
}

export interface RunPaths {
  runId: string;
  datasetPath?: string;
  config?: { model?: { backbone?: unknown } };
}

/** Checks the paths a run's metadata names: its dataset (unless `dataset: false`) and its backbone folder. */
export function guardRunPaths(policy: PathPolicy, run: RunPaths, what: string, opts: { dataset?: boolean } = {}): void {
  const where = `${what}: run ${run.runId} (run.json)`;
  if (opts.dataset !== false && run.datasetPath) policy.check(run.datasetPath, `${where} datasetPath`);
  const dir = backboneDir(run.config?.model?.backbone);
  if (dir !== undefined) policy.check(dir, `${where} model.backbone (tfjs:)`);
}

/** The model cache (UFLOW_CACHE_DIR, default ~/.cache/uflow) as a root the daemon may use. */
export function modelCacheRoot(env: NodeJS.ProcessEnv = process.env): Root {
  return makeRoot(defaultCacheDir(env), 'allowed');
}
