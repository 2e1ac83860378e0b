/**
 * File downloads for pretrained weights: resumable (HTTP Range into `<dest>.part`, restarting when
 * the server ignores Range), verified (size, sha256: a mismatch removes the file), bounded (a stall
 * timeout: no bytes for `timeoutMs` aborts with an error naming the URL), proxy-aware
 * (HTTPS_PROXY / HTTP_PROXY / NO_PROXY, through undici's ProxyAgent), atomic (the final name
 * appears only when the file is complete and verified) and observable (progress callback).
 *
 * Redirects are followed here, hop by hop, so that each hop picks its own proxy and cookies set on
 * the way (Google Drive's confirmation flow) are sent on.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fetch, ProxyAgent, type Dispatcher, type Response } from 'undici';

export interface DownloadProgress {
  url: string;
  /** bytes of the file so far (including a resumed part) */
  bytes: number;
  /** expected size of the whole file, when known */
  total?: number;
  /** bytes per second over this transfer */
  rate: number;
}

export interface DownloadOptions {
  url: string;
  dest: string;
  /** expected sha256 (hex); a mismatch removes the file and throws */
  sha256?: string;
  /** expected size in bytes */
  expectedBytes?: number;
  /** stall timeout: abort when no byte arrives for this long (default 30 s) */
  timeoutMs?: number;
  onProgress?: (p: DownloadProgress) => void;
  signal?: AbortSignal;
  headers?: Record<string, string>;
  /** where proxy variables are read (default process.env) */
  env?: NodeJS.ProcessEnv;
  /** treat a text/html answer as an error (HtmlPageError) rather than as the file */
  rejectHtml?: boolean;
  /** minimum interval between progress events (default 100 ms) */
  progressIntervalMs?: number;
}

export interface DownloadResult {
  path: string;
  bytes: number;
  sha256: string;
  /** bytes that were already there (a resumed .part) and not fetched again */
  resumedFrom: number;
  /** the URL the file came from after redirects */
  finalUrl: string;
}

export type DownloadErrorKind = 'http' | 'network' | 'stall' | 'checksum' | 'size' | 'aborted' | 'html';

export class DownloadError extends Error {
  constructor(
    readonly url: string,
    readonly kind: DownloadErrorKind,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'DownloadError';
  }
}

/** The server answered with a web page instead of the file (`rejectHtml`). */
export class HtmlPageError extends DownloadError {
  constructor(
    url: string,
    readonly finalUrl: string,
    readonly html: string,
    /** cookies set on the way ('name=value'), to send on a follow-up request */
    readonly cookies: string[],
    status: number,
  ) {
    super(url, 'html', `${url} answered with a web page instead of the file (HTTP ${status})`, status);
    this.name = 'HtmlPageError';
  }
}

// ---------------------------------------------------------------------------------------------
// proxies

function envVar(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const v = env[name.toLowerCase()] ?? env[name.toUpperCase()];
  return v && v.trim() ? v.trim() : undefined;
}

/** Whether NO_PROXY exempts `url` (entries: '*', 'host', '.domain', '*.domain', 'host:port'). */
export function bypassesProxy(url: URL, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  for (let entry of noProxy.split(/[\s,]+/)) {
    entry = entry.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    let ePort: string | undefined;
    const m = /^(.*?)(?::(\d+))?$/.exec(entry.replace(/^\[|\](?=:|$)/g, ''));
    if (m && m[2] && !m[1]!.includes(':')) {
      entry = m[1]!;
      ePort = m[2];
    }
    if (ePort && ePort !== port) continue;
    const domain = entry.replace(/^\*?\./, '');
    if (host === domain || host.endsWith(`.${domain}`)) return true;
  }
  return false;
}

/** The proxy URL for `url` from HTTPS_PROXY / HTTP_PROXY / ALL_PROXY and NO_PROXY, or undefined. */
export function proxyFor(url: string | URL, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const u = typeof url === 'string' ? new URL(url) : url;
  const proxy = u.protocol === 'https:' ? envVar(env, 'https_proxy') ?? envVar(env, 'all_proxy') : envVar(env, 'http_proxy') ?? envVar(env, 'all_proxy');
  if (!proxy || bypassesProxy(u, envVar(env, 'no_proxy'))) return undefined;
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(proxy) ? proxy : `http://${proxy}`;
}

const agents = new Map<string, Dispatcher>();
function dispatcherFor(url: URL, env: NodeJS.ProcessEnv): Dispatcher | undefined {
  const proxy = proxyFor(url, env);
  if (!proxy) return undefined;
  let a = agents.get(proxy);
  if (!a) agents.set(proxy, (a = new ProxyAgent(proxy)));
  return a;
}

// ---------------------------------------------------------------------------------------------
// requests

export interface RequestOptions {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  /** follow redirects (default true); false returns the 3xx answer */
  follow?: boolean;
  /** cookies to send, updated with those the server sets */
  cookies?: Map<string, string>;
}

export interface FetchedResponse {
  res: Response;
  finalUrl: string;
  cookies: Map<string, string>;
}

/** One request (redirects followed hop by hop, each through its own proxy, cookies kept). */
export async function request(url: string, opts: RequestOptions = {}): Promise<FetchedResponse> {
  const env = opts.env ?? process.env;
  const cookies = opts.cookies ?? new Map<string, string>();
  let current = new URL(url);
  for (let hop = 0; hop < 10; hop++) {
    const headers: Record<string, string> = { 'accept-encoding': 'identity', 'user-agent': 'uflow-vscode', ...opts.headers };
    if (cookies.size) headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(current, {
      method: opts.method ?? 'GET',
      headers,
      redirect: 'manual',
      signal: opts.signal,
      dispatcher: dispatcherFor(current, env),
    });
    for (const c of res.headers.getSetCookie()) {
      const kv = c.split(';')[0]!;
      const i = kv.indexOf('=');
      if (i > 0) cookies.set(kv.slice(0, i).trim(), kv.slice(i + 1).trim());
    }
    const loc = res.headers.get('location');
    if (opts.follow !== false && res.status >= 300 && res.status < 400 && loc) {
      await res.body?.cancel().catch(() => {});
      current = new URL(loc, current);
      continue;
    }
    return { res, finalUrl: current.href, cookies };
  }
  throw new DownloadError(url, 'http', `download of ${url} failed: more than 10 redirects`);
}

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  410: 'Gone',
  416: 'Range Not Satisfiable',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

export function httpError(url: string, status: number, statusText?: string): DownloadError {
  const text = statusText || REASONS[status] || '';
  const hint =
    status === 404 || status === 410
      ? 'the file is not at that address (a wrong URL, or the file was moved or removed)'
      : status === 401 || status === 403
        ? 'the server refused access (the file may be private, or the host limits downloads): fetch it by hand in a browser'
        : status === 429
          ? 'the server is rate-limiting downloads: wait a while and run again'
          : status >= 500
            ? 'the server has a problem: try again later'
            : 'unexpected answer';
  return new DownloadError(url, 'http', `download of ${url} failed: HTTP ${status}${text ? ` ${text}` : ''}; ${hint}`, status);
}

function networkCode(e: unknown): string | undefined {
  let c: unknown = e;
  for (let i = 0; i < 4 && c; i++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    c = (c as { cause?: unknown }).cause;
  }
  return undefined;
}

function describeNetworkError(e: unknown): string {
  const code = networkCode(e);
  const cause = (e as { cause?: { message?: string } }).cause?.message;
  return code ?? cause ?? (e as Error).message ?? String(e);
}

async function hashFile(path: string, hash: Hash, limit: number): Promise<void> {
  if (limit <= 0) return;
  await new Promise<void>((resolve, reject) => {
    createReadStream(path, { start: 0, end: limit - 1 })
      .on('data', (c) => hash.update(c as Buffer))
      .on('end', () => resolve())
      .on('error', reject);
  });
}

/** sha256 (hex) of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await hashFile(path, h, (await stat(path)).size);
  return h.digest('hex');
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

function parseContentRange(v: string | null): { start: number; total?: number } | undefined {
  const m = v && /^bytes\s+(\d+)-(\d+)\/(\d+|\*)$/i.exec(v.trim());
  if (!m) return undefined;
  return { start: Number(m[1]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

/**
 * Downloads `url` to `dest` (atomically, through `<dest>.part`), resuming a previous `.part` with
 * an HTTP Range request. Throws DownloadError (kind 'http' | 'network' | 'stall' | 'checksum' |
 * 'size' | 'aborted', or HtmlPageError with `rejectHtml`), with a message naming the URL.
 */
export async function download(opts: DownloadOptions): Promise<DownloadResult> {
  const { url, dest } = opts;
  const part = `${dest}.part`;
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const interval = opts.progressIntervalMs ?? 100;
  await mkdir(dirname(dest), { recursive: true });
  let have = await sizeOf(part);
  if (opts.expectedBytes !== undefined && have > opts.expectedBytes) {
    await rm(part, { force: true });
    have = 0;
  }

  for (let attempt = 0; ; attempt++) {
    const stall = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, stall.signal]) : stall.signal;
    let stalled = false;
    const timer = setTimeout(() => {
      stalled = true;
      stall.abort();
    }, timeoutMs);
    const fail = (e: unknown): never => {
      if (e instanceof DownloadError) throw e;
      if (stalled) {
        throw new DownloadError(
          url,
          'stall',
          `download of ${url} stalled: no data for ${(timeoutMs / 1000).toFixed(1)} s; check the network connection (or the proxy, HTTPS_PROXY), then run again${have > 0 ? ' to resume' : ''}`,
        );
      }
      if (opts.signal?.aborted) throw new DownloadError(url, 'aborted', `download of ${url} was cancelled${have > 0 ? ' (run again to resume)' : ''}`);
      throw new DownloadError(
        url,
        'network',
        `download of ${url} failed: ${describeNetworkError(e)}; check the network connection (offline? behind a proxy: set HTTPS_PROXY), then run again${have > 0 ? ' to resume' : ''}`,
      );
    };
    try {
      const headers: Record<string, string> = { ...opts.headers };
      if (have > 0) headers.range = `bytes=${have}-`;
      let fetched: FetchedResponse;
      try {
        fetched = await request(url, { headers, env: opts.env, signal });
      } catch (e) {
        return fail(e);
      }
      const { res, finalUrl } = fetched;
      timer.refresh();

      if (res.status === 416 && have > 0) {
        await res.body?.cancel().catch(() => {});
        const cr = /\/(\d+)\s*$/.exec(res.headers.get('content-range') ?? '');
        const complete = (cr && Number(cr[1]) === have) || opts.expectedBytes === have;
        if (!complete) {
          // the part does not fit what the server has: start over
          await rm(part, { force: true });
          have = 0;
          if (attempt < 2) continue;
        }
        return await finish(opts, part, have, have, finalUrl);
      }
      if (res.status !== 200 && res.status !== 206) {
        await res.body?.cancel().catch(() => {});
        throw httpError(url, res.status, res.statusText);
      }
      const ctype = res.headers.get('content-type') ?? '';
      if (opts.rejectHtml && /text\/html/i.test(ctype)) {
        const html = await readBounded(res, 2 << 20).catch(fail);
        throw new HtmlPageError(url, finalUrl, html, [...fetched.cookies].map(([k, v]) => `${k}=${v}`), res.status);
      }
      let start = 0;
      if (have > 0 && res.status === 206) {
        const cr = parseContentRange(res.headers.get('content-range'));
        if (!cr || cr.start !== have) {
          await res.body?.cancel().catch(() => {});
          await rm(part, { force: true });
          have = 0;
          if (attempt < 2) continue;
          throw new DownloadError(url, 'http', `download of ${url} failed: the server answered a range request with the wrong range`);
        }
        start = have;
      } else if (res.status === 206) {
        throw new DownloadError(url, 'http', `download of ${url} failed: partial content (HTTP 206) to a request for the whole file`);
      }
      // with 200 the server ignored Range (or none was asked): the file starts over
      const len = res.headers.get('content-length');
      const bodyLen = len !== null && /^\d+$/.test(len) ? Number(len) : undefined;
      const total = bodyLen !== undefined ? start + bodyLen : parseContentRange(res.headers.get('content-range'))?.total ?? opts.expectedBytes;

      const hash = createHash('sha256');
      if (start > 0) await hashFile(part, hash, start);
      timer.refresh();
      const fh = await open(part, start > 0 ? 'r+' : 'w');
      let bytes = start;
      try {
        if (start > 0) await fh.truncate(start);
        const began = Date.now();
        let lastEmit = 0;
        const emit = (force: boolean) => {
          const now = Date.now();
          if (!opts.onProgress || (!force && now - lastEmit < interval)) return;
          lastEmit = now;
          const secs = Math.max((now - began) / 1000, 1e-3);
          opts.onProgress({ url, bytes, total, rate: (bytes - start) / secs });
        };
        emit(true);
        if (res.body) {
          const reader = res.body.getReader();
          for (;;) {
            let chunk: ReadableStreamReadResult<Uint8Array>;
            try {
              chunk = await reader.read();
            } catch (e) {
              have = bytes;
              return fail(e);
            }
            if (chunk.done) break;
            timer.refresh();
            const b = chunk.value;
            await fh.write(b, 0, b.byteLength, bytes);
            hash.update(b);
            bytes += b.byteLength;
            emit(false);
          }
        }
        emit(true);
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (bodyLen !== undefined && bytes !== start + bodyLen) {
        throw new DownloadError(url, 'size', `download of ${url} ended early: ${bytes} of ${start + bodyLen} bytes; run again to resume`);
      }
      return await finish(opts, part, bytes, start, finalUrl, hash);
    } finally {
      clearTimeout(timer);
    }
  }
}

async function readBounded(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.byteLength;
    if (n >= max) {
      await reader.cancel().catch(() => {});
      break;
    }
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function finish(opts: DownloadOptions, part: string, bytes: number, resumedFrom: number, finalUrl: string, hash?: Hash): Promise<DownloadResult> {
  const { url, dest } = opts;
  if (opts.expectedBytes !== undefined && bytes !== opts.expectedBytes) {
    await rm(part, { force: true });
    throw new DownloadError(url, 'size', `download of ${url} has ${bytes} bytes, ${opts.expectedBytes} were expected; the file was removed: run again`);
  }
  let digest: string;
  if (hash) digest = hash.digest('hex');
  else {
    const h = createHash('sha256');
    await hashFile(part, h, bytes);
    digest = h.digest('hex');
  }
  if (opts.sha256 && digest !== opts.sha256.toLowerCase()) {
    await rm(part, { force: true });
    throw new DownloadError(
      url,
      'checksum',
      `download of ${url} is corrupt: its sha256 is ${digest}, expected ${opts.sha256.toLowerCase()}; the file was removed: run again (if it keeps failing, the file at that address changed)`,
    );
  }
  await rename(part, dest);
  return { path: dest, bytes, sha256: digest, resumedFrom, finalUrl };
}
