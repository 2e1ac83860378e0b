/**
 * Pretrained weights:
 * (a) the released U-Flow checkpoints (spec/pretrained.md): one Lightning checkpoint per MVTec
 *     category and per selection metric (auc, pro, miou; all three are fetched, unlike the original
 *     script whose 'iou' key missed the 'miou' table), from a Google Drive that answers large files
 *     with a confirmation page (followed here) and refuses after too many downloads (then the error
 *     names the by-hand route and the exact place to put each file: `<root>/models/<metric>/<category>.ckpt`);
 * (b) backbone weights (`model.safetensors`) from the Hugging Face hub's timm repositories, cached in
 *     UFLOW_CACHE_DIR (default ~/.cache/uflow), with HF_ENDPOINT honoured and a local file usable in
 *     place of any download.
 */
import { existsSync } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { download, DownloadError, HtmlPageError, httpError, request, sha256File, type DownloadProgress } from './download.js';

// ---------------------------------------------------------------------------------------------
// (a) released U-Flow checkpoints

export const MVTEC_CATEGORIES = [
  'bottle',
  'cable',
  'capsule',
  'carpet',
  'grid',
  'hazelnut',
  'leather',
  'metal_nut',
  'pill',
  'screw',
  'tile',
  'toothbrush',
  'transistor',
  'wood',
  'zipper',
] as const;
export type MvtecCategory = (typeof MVTEC_CATEGORIES)[number];

export const CHECKPOINT_METRICS = ['auc', 'pro', 'miou'] as const;
export type CheckpointMetric = (typeof CHECKPOINT_METRICS)[number];

/** Google Drive file ids of the released checkpoints (spec/pretrained.md). */
export const RELEASED_CHECKPOINTS: Record<MvtecCategory, Record<CheckpointMetric, string>> = {
  bottle: { auc: '1yBElaUsDq9TVxlbLixIQimvpPmXszArz', miou: '1mf9_AggYGHVypWa5Tx3K1_oISn-0jP1w', pro: '1m2Kq3A03ClyqZ3So8c4uMHORSo1oxRf1' },
  cable: { auc: '1oOM1WUmI0SrcKWz_S5WgX9eBj62gY4v3', miou: '166Q7pHqUWw5Pi3q93llFpPt7vyLI7z2f', pro: '1iiqviSrZrN7YsIkdiIfFLTivtuDjaBfj' },
  capsule: { auc: '1IVAzH8NbLRA2h6fvjrgRM1QiQx1wrtns', miou: '1H3Mg0--ZvD6ifbVf5wWdnAI6tvxAyTgI', pro: '1uA81ONAbdIN_tr0p0aqY9YipqvMW8LxE' },
  carpet: { auc: '1fvT-X4FWx8XWowekFj7bVoCdkAE7MGbD', miou: '15Mjno37Wojm0SX6kxbVFuQk9HHo3vatT', pro: '1UFCcHnbvsXrL-6xFHVB13tCyeGuSiFip' },
  grid: { auc: '1sQCm2sxYaooYh2jBQw3EZw8HgaDmvKlp', miou: '1-Cx1q0YQ8VtS42CivAjxFR_cL9CkjiAF', pro: '1c-pp8y71sSfLAyHS_Yzz-lfFBJM_3Wg8' },
  hazelnut: { auc: '1pqHLwZ2MRLEBjMCNRPy3nOLhS0YZ_1lu', miou: '1xgQsGew5gOK-YjSH77dxW6V_2Uv9MyrC', pro: '1W7c4qd8Tnkops3QIxiSd5RYYPqWHsg8V' },
  leather: { auc: '1yjh_7vSC44bc9fxbUmWKRTlKeipfeb6r', miou: '1XVqgFD1DBgFLgAYAlvHMNXuReDHYQqdp', pro: '14a8sCu-BjsCV-i4ZiaZ1OcdPGNUppg9L' },
  metal_nut: { auc: '1IKXy7WpeMnV4gfK4GZIYVww_RVHYLV_x', miou: '1cl7_N9EagjdX7Nc_vQCrHwYfvBWhx5-L', pro: '1AeMdEbE6Rfqs6d9liEfQEGogz5jYz7On' },
  pill: { auc: '1B9UxInnrv2OsToUW94ocvhZr8ZbLJcO-', miou: '1qGEza9BLN8kX-Ec1l5054SnUMjvECcTE', pro: '1I3UlQ4yvlF0n8i9o2ehN0VM0UytTE1ms' },
  screw: { auc: '1h2uGLVFkXMJETsmVqfReooml6nKOZHMJ', miou: '16BoX81QCBpZs3AmTa0TYXO0uKzfTFFM1', pro: '1R4rqWd9p75OEFy97nVaWD67EDW4wX-ye' },
  tile: { auc: '1QWSvhtVfk1b_pOhaIFKE6rKSnAMhhG9H', miou: '1ehcF-66zfi8Z0q9dYxnlGC4HS2U8xm9c', pro: '1jeeF-IqzPrbViJlMtt6YlrqkR94uamMZ' },
  toothbrush: { auc: '1bCIKvCeU45dinzvGZPOpn7Jgf3LVkkwS', miou: '1K8na1UvWYrKje262cBpS-cfspa1GzWPX', pro: '1Pss1slIfDaxmycr9FOXRT-QyDLeLLhye' },
  transistor: { auc: '1I8yeuTpUJPNHy0ToY8ZM3qv-Y4VFKOr2', miou: '1LgW47tSttt3qcAnJNTJwp76G3HhUrCOB', pro: '1UlRHOqe7yQJjHVDxa60WuET6eZ9Junzm' },
  wood: { auc: '10W39Zk6c2MKb4CLgx9ksco1GfqC4m8JS', miou: '1j_fJhkmPu8JBTYX9-u1JfcSdt8HKisst', pro: '1USqJsJmaSZQDPb7qrXVuuRMScSJY4oTK' },
  zipper: { auc: '1zbISk4lD5FUr0B5hE1zOw9_GwzaGofp5', miou: '1n_oflm6b3MiF0mGysO9Ejs4S7D8nowqX', pro: '1UpKGT6JB-zk1NAfJFhD337Y6E0LgId7x' },
};

export const RELEASE_PAGE = 'https://github.com/mtailanian/uflow/releases/tag/trained-models-for-all-mvtec-categories';
export const DEFAULT_DRIVE_BASE = 'https://drive.google.com';

/** `https://drive.google.com/uc?id=<ID>&export=download` (base injectable for tests and mirrors). */
export function driveDownloadUrl(id: string, base = DEFAULT_DRIVE_BASE): string {
  return `${base.replace(/\/+$/, '')}/uc?id=${encodeURIComponent(id)}&export=download`;
}

/** Where a released checkpoint goes: `<root>/models/<metric>/<category>.ckpt` (the original tools' layout). */
export function modelPath(root: string, metric: CheckpointMetric, category: string): string {
  return join(root, 'models', metric, `${category}.ckpt`);
}

/** Google Drive refused (too many downloads of the file recently). */
export class DriveQuotaError extends Error {
  constructor(
    message: string,
    readonly url: string,
  ) {
    super(message);
    this.name = 'DriveQuotaError';
  }
}

const QUOTA_RE = /too many (users|accesses|requests)|quota (has been )?exceeded|download quota|many accesses|access denied/i;

const decodeEntities = (s: string) =>
  s
    .replace(/&amp;/g, '&')
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCharCode(Number(d)))
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/\\u003d/g, '=')
    .replace(/\\u0026/g, '&');

export type DrivePage = { kind: 'confirm'; url: string } | { kind: 'quota'; text: string } | { kind: 'unknown'; text: string };

/** Reads a Drive answer page: a confirmation to follow (form or link), a quota refusal, or something else. */
export function parseDrivePage(html: string, pageUrl: string): DrivePage {
  const text = html.replace(/<script[\s\S]*?<\/script>/gi, ' ').replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim();
  const errorCaption = /class="uc-error-subcaption"[^>]*>([\s\S]*?)<\//i.exec(html)?.[1];
  if (QUOTA_RE.test(errorCaption ?? '') || (QUOTA_RE.test(text) && !/id="download-form"/.test(html))) {
    return { kind: 'quota', text: decodeEntities(errorCaption ?? text).slice(0, 300) };
  }
  // current form: <form id="download-form" action="https://drive.usercontent.google.com/download"> + hidden inputs
  const form = /<form[^>]*id="download-form"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (form) {
    const action = /action="([^"]+)"/i.exec(form[0])?.[1];
    if (action) {
      const u = new URL(decodeEntities(action), pageUrl);
      for (const m of form[1]!.matchAll(/<input[^>]*>/gi)) {
        const tag = m[0];
        if (!/type="hidden"/i.test(tag)) continue;
        const name = /name="([^"]*)"/i.exec(tag)?.[1];
        const value = /value="([^"]*)"/i.exec(tag)?.[1] ?? '';
        if (name) u.searchParams.set(decodeEntities(name), decodeEntities(value));
      }
      return { kind: 'confirm', url: u.href };
    }
  }
  // older forms: a link with confirm=<token>, or a downloadUrl in page data
  const link = /href="(\/uc\?export=download[^"]*confirm=[^"]*)"/i.exec(html) ?? /href="([^"]*[?&]confirm=[^"]+)"/i.exec(html);
  if (link) return { kind: 'confirm', url: new URL(decodeEntities(link[1]!), pageUrl).href };
  const dl = /"downloadUrl":"([^"]+)"/.exec(html);
  if (dl) return { kind: 'confirm', url: new URL(decodeEntities(dl[1]!), pageUrl).href };
  return { kind: 'unknown', text: decodeEntities(errorCaption ?? text).slice(0, 300) };
}

export interface DriveDownloadOptions {
  id: string;
  dest: string;
  driveBase?: string;
  timeoutMs?: number;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  /** extra words for the refusal message (how to fetch by hand and where to put the file) */
  byHand?: string;
}

/** Downloads one Drive file, following the large-file confirmation page. */
export async function downloadFromDrive(o: DriveDownloadOptions): Promise<{ path: string; bytes: number; sha256: string }> {
  const url = driveDownloadUrl(o.id, o.driveBase);
  const common = { dest: o.dest, timeoutMs: o.timeoutMs, onProgress: o.onProgress, signal: o.signal, env: o.env, rejectHtml: true };
  const byHand = o.byHand ?? `open ${url} in a browser and save the file as ${o.dest}`;
  const quota = (detail: string) =>
    new DriveQuotaError(
      `Google Drive refused the download of ${url}: too many accesses to this file recently (${detail}). ` +
        `Wait a few hours and run again (files already fetched are kept), or fetch it by hand: ${byHand}`,
      url,
    );
  let page: HtmlPageError;
  try {
    return await download({ ...common, url });
  } catch (e) {
    if (e instanceof DownloadError && (e.status === 403 || e.status === 429)) throw quota(`HTTP ${e.status}`);
    if (!(e instanceof HtmlPageError)) throw e;
    page = e;
  }
  for (let step = 0; step < 2; step++) {
    const p = parseDrivePage(page.html, page.finalUrl);
    if (p.kind === 'quota') throw quota(p.text);
    if (p.kind === 'unknown') {
      throw new DownloadError(url, 'html', `Google Drive answered ${url} with a page this tool does not understand ("${p.text.slice(0, 120)}"); fetch the file by hand: ${byHand}`);
    }
    try {
      return await download({ ...common, url: p.url, headers: page.cookies.length ? { cookie: page.cookies.join('; ') } : undefined });
    } catch (e) {
      if (e instanceof DownloadError && (e.status === 403 || e.status === 429)) throw quota(`HTTP ${e.status}`);
      if (!(e instanceof HtmlPageError)) throw e;
      page = e;
    }
  }
  throw new DownloadError(url, 'html', `Google Drive keeps answering ${url} with confirmation pages; fetch the file by hand: ${byHand}`);
}

export interface ModelProgress extends DownloadProgress {
  category: string;
  metric: CheckpointMetric;
  path: string;
  /** 1-based position among the files to fetch, and their count */
  index: number;
  count: number;
}

export interface DownloadModelsOptions {
  /** MVTec categories (default all 15) */
  categories?: string[];
  /** default all three: auc, pro, miou */
  metrics?: CheckpointMetric[];
  /** fetch again even when the file is there */
  overwrite?: boolean;
  /** the folder under which `models/<metric>/<category>.ckpt` go */
  root: string;
  onProgress?: (p: ModelProgress) => void;
  signal?: AbortSignal;
  driveBase?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface DownloadedModel {
  category: string;
  metric: CheckpointMetric;
  path: string;
  sha256: string;
  bytes: number;
  /** already there (not fetched, `overwrite` off) */
  skipped: boolean;
}

function looksLikeCheckpoint(head: Buffer): boolean {
  return (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) || head[0] === 0x80;
}

async function readHead(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const b = Buffer.alloc(4);
    await fh.read(b, 0, 4, 0);
    return b;
  } finally {
    await fh.close();
  }
}

/**
 * Fetches the released checkpoints into `<root>/models/<metric>/<category>.ckpt`, skipping files
 * that are there unless `overwrite`. Returns every file with its sha256. When the drive refuses,
 * throws DriveQuotaError naming the by-hand route and every file still missing.
 */
export async function downloadModels(o: DownloadModelsOptions): Promise<{ files: DownloadedModel[] }> {
  const cats = o.categories?.length ? o.categories : [...MVTEC_CATEGORIES];
  const unknown = cats.filter((c) => !(MVTEC_CATEGORIES as readonly string[]).includes(c));
  if (unknown.length) {
    throw new Error(`unknown categor${unknown.length > 1 ? 'ies' : 'y'} ${unknown.map((c) => `'${c}'`).join(', ')}: released models exist for ${MVTEC_CATEGORIES.join(', ')}`);
  }
  const metrics = o.metrics?.length ? o.metrics : [...CHECKPOINT_METRICS];
  const todo = cats.flatMap((category) => metrics.map((metric) => ({ category: category as MvtecCategory, metric, path: modelPath(o.root, metric, category) })));
  const files: DownloadedModel[] = [];
  for (let i = 0; i < todo.length; i++) {
    const { category, metric, path } = todo[i]!;
    if (!o.overwrite && existsSync(path)) {
      files.push({ category, metric, path, sha256: await sha256File(path), bytes: (await stat(path)).size, skipped: true });
      continue;
    }
    if (o.overwrite) await rm(`${path}.part`, { force: true });
    const id = RELEASED_CHECKPOINTS[category][metric];
    const missing = todo.slice(i).map((t) => t.path);
    const byHand =
      `open ${driveDownloadUrl(id)} (or the assets of the GitHub release ${RELEASE_PAGE}) in a browser and save each file as ` +
      `${join(o.root, 'models', '<metric>', '<category>.ckpt')} (metric: auc, pro or miou); still missing: ${missing.join(', ')}`;
    const got = await downloadFromDrive({
      id,
      dest: path,
      driveBase: o.driveBase,
      timeoutMs: o.timeoutMs,
      signal: o.signal,
      env: o.env,
      byHand,
      onProgress: o.onProgress && ((p) => o.onProgress!({ ...p, category, metric, path, index: i + 1, count: todo.length })),
    });
    if (!looksLikeCheckpoint(await readHead(path))) {
      await rm(path, { force: true });
      throw new DownloadError(driveDownloadUrl(id, o.driveBase), 'html', `the file fetched for ${category} (${metric}) is not a PyTorch checkpoint; it was removed. Fetch it by hand: ${byHand}`);
    }
    files.push({ category, metric, path, sha256: got.sha256, bytes: got.bytes, skipped: false });
  }
  return { files };
}

// ---------------------------------------------------------------------------------------------
// (b) backbone weights from the Hugging Face hub

/** timm's default pretrained tag (timm 0.9.16, the version U-Flow pins) for each backbone U-Flow / FastFlow use. */
export const BACKBONE_REPOS: Record<string, string> = {
  resnet18: 'timm/resnet18.a1_in1k',
  wide_resnet50_2: 'timm/wide_resnet50_2.racm_in1k',
  cait_m48_448: 'timm/cait_m48_448.fb_dist_in1k',
  cait_s24_224: 'timm/cait_s24_224.fb_dist_in1k',
  deit_base_distilled_patch16_384: 'timm/deit_base_distilled_patch16_384.fb_in1k',
};

/** The hub repository of a backbone: a known name, a timm tag ('resnet18.tv_in1k') or a repo id ('org/name'). */
export function backboneRepo(name: string): string {
  if (BACKBONE_REPOS[name]) return BACKBONE_REPOS[name]!;
  if (name.includes('/')) return name;
  if (name.includes('.')) return `timm/${name}`;
  throw new Error(`unknown backbone '${name}': use one of ${Object.keys(BACKBONE_REPOS).join(', ')}, a timm tag such as 'resnet18.tv_in1k', or a hub repository id`);
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.UFLOW_CACHE_DIR || join(homedir(), '.cache', 'uflow');
}

export function backboneCachePath(name: string, cacheDir: string): string {
  return join(cacheDir, 'hub', backboneRepo(name).replace(/\//g, '--'), 'model.safetensors');
}

export function backboneUrl(name: string, endpoint: string, revision = 'main'): string {
  return `${endpoint.replace(/\/+$/, '')}/${backboneRepo(name)}/resolve/${encodeURIComponent(revision)}/model.safetensors`;
}

export class BackboneUnavailableError extends Error {
  constructor(
    message: string,
    readonly url: string,
    readonly cachePath: string,
  ) {
    super(message);
    this.name = 'BackboneUnavailableError';
  }
}

export interface ResolveBackboneOptions {
  /** default UFLOW_CACHE_DIR or ~/.cache/uflow */
  cacheDir?: string;
  /** default HF_ENDPOINT or https://huggingface.co */
  endpoint?: string;
  /** a local safetensors file used in place of any download */
  localPath?: string;
  revision?: string;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface ResolvedWeights {
  path: string;
  source: 'local' | 'cache' | 'download';
  url?: string;
  sha256?: string;
}

/**
 * The path of a backbone's `model.safetensors`: `localPath` when given, else the cached copy, else
 * downloaded from the hub (sha256 and size checked against the hub's LFS metadata when it gives
 * them). Offline, throws BackboneUnavailableError with the URL to fetch by hand and where to put it.
 */
export async function resolveBackboneWeights(name: string, o: ResolveBackboneOptions = {}): Promise<ResolvedWeights> {
  const env = o.env ?? process.env;
  if (o.localPath) {
    if (!existsSync(o.localPath)) {
      throw new Error(`${o.localPath}: no such file (given as the local weights of backbone '${name}'); check the path, or leave it empty to download the weights`);
    }
    return { path: o.localPath, source: 'local' };
  }
  const cacheDir = o.cacheDir ?? defaultCacheDir(env);
  const path = backboneCachePath(name, cacheDir);
  if (existsSync(path)) return { path, source: 'cache' };
  const endpoint = o.endpoint ?? env.HF_ENDPOINT ?? 'https://huggingface.co';
  const url = backboneUrl(name, endpoint, o.revision);
  const headers: Record<string, string> = env.HF_TOKEN ? { authorization: `Bearer ${env.HF_TOKEN}` } : {};
  const byHand = `fetch ${url} by hand (a browser, or another machine) and put it at ${path}, or give the path of a local copy (localPath / the backbone weights setting)`;
  const unavailable = (why: string) => new BackboneUnavailableError(`cannot download the '${name}' backbone weights: ${why}. To work offline, ${byHand}`, url, path);
  try {
    // LFS metadata (sha256 and size) from the hub's answer before its redirect to the file store
    let sha256: string | undefined;
    let expectedBytes: number | undefined;
    const head = await request(url, { method: 'HEAD', follow: false, headers, env, signal: o.signal });
    if (head.res.status >= 400) throw httpError(url, head.res.status, head.res.statusText);
    const etag = (head.res.headers.get('x-linked-etag') ?? '').replace(/^W\//, '').replace(/"/g, '');
    if (/^[0-9a-f]{64}$/i.test(etag)) sha256 = etag.toLowerCase();
    const size = head.res.headers.get('x-linked-size');
    if (size && /^\d+$/.test(size)) expectedBytes = Number(size);
    const got = await download({ url, dest: path, sha256, expectedBytes, headers, env, signal: o.signal, timeoutMs: o.timeoutMs, onProgress: o.onProgress });
    return { path, source: 'download', url, sha256: got.sha256 };
  } catch (e) {
    if (e instanceof DownloadError) {
      if (e.kind === 'aborted' || e.kind === 'checksum' || e.kind === 'size') throw e;
      throw unavailable(e.message);
    }
    if (o.signal?.aborted) throw e;
    const code = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message;
    throw unavailable(`${url} cannot be reached (${code}); you may be offline or behind a proxy (set HTTPS_PROXY)`);
  }
}
