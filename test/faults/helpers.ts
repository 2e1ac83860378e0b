/** Building blocks of the fault catalogue: the CLI as a child process, tiny images, a base workspace. */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { zlibSync } from 'fflate';
import { CLI, ensureBuilt } from '../cli/cli-helpers.js';
import { writeTinyCategory } from '../daemon/fixtures.js';
import type { Observed } from './catalogue.js';

export const HERE = dirname(fileURLToPath(import.meta.url));
/** Preload that makes writes to matching files fail with ENOSPC (FAULT_ENOSPC_MATCH, a regex on the path). */
export const ENOSPC_PRELOAD = join(HERE, 'enospc-preload.mjs');

export interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const BASE_ENV = { ...process.env, UFLOW_BACKEND: 'wasm', NO_COLOR: '1', UFLOW_TRAIN_WORKERS: '1' };

export function runCli(args: string[], o: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliRun> {
  ensureBuilt();
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: o.cwd, env: { ...BASE_ENV, ...o.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 120_000);
    child.on('error', rej);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderr });
    });
  });
}

/** refuse: exit ≠ 0; warn: exit 0 with a "warning:" line; accept: exit 0 without. */
export function observe(r: CliRun): Observed {
  const text = `${r.stdout}\n${r.stderr}`;
  const outcome = r.code !== 0 ? 'refuse' : /^\s*warning:/m.test(r.stderr) ? 'warn' : 'accept';
  return { outcome, text, detail: r };
}

export const FAST = ['--backbone', 'builtin:filters', '--input-size', '32', '--epochs', '1', '--batch', '2', '--validate-every', '0', '--seed', '0'];

export async function cliTrain(dir: string, extra: string[] = [], env?: Record<string, string>): Promise<Observed> {
  return observe(await runCli(['train', '-data', join(dir, 'data', 'grid'), '-train_dir', join(dir, '.uflow'), ...FAST, ...extra], { cwd: dir, env }));
}

export async function cliEvaluate(dir: string, extra: string[] = [], env?: Record<string, string>): Promise<Observed> {
  return observe(await runCli(['evaluate', '-data', join(dir, 'data', 'grid'), '-train_dir', join(dir, '.uflow'), '--checkpoint', 'last', ...extra], { cwd: dir, env }));
}

/** The dataset used everywhere: data/grid, 32 px, 4 train, 2 test good, 2 defects (spot) with masks. */
export async function baseDataset(dir: string): Promise<string> {
  return writeTinyCategory(join(dir, 'data'), 'grid', { size: 32, trainGood: 4, testGood: 2, defects: 2, seed: 5 });
}

/** baseDataset plus a trained run in .uflow; returns the run id. */
export async function baseWithRun(dir: string): Promise<string> {
  await baseDataset(dir);
  const r = await cliTrain(dir);
  if (r.outcome === 'refuse') throw new Error(`base training failed:\n${r.text}`);
  return onlyRun(dir);
}

export function onlyRun(dir: string): string {
  const ids = readdirSync(join(dir, '.uflow', 'runs'));
  if (ids.length !== 1) throw new Error(`expected one run in ${dir}, got ${ids.join(', ')}`);
  return ids[0]!;
}

export function runJson(dir: string, id = onlyRun(dir)): Record<string, any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  return JSON.parse(readFileSync(join(dir, '.uflow', 'runs', id, 'run.json'), 'utf8'));
}

/** The run created last (by run.json createdAt). */
export function newestRun(dir: string): string {
  const ids = readdirSync(join(dir, '.uflow', 'runs'));
  const at = (id: string) => String(runJson(dir, id).createdAt);
  return ids.sort((a, b) => (at(a) < at(b) ? -1 : at(a) > at(b) ? 1 : a < b ? -1 : 1))[ids.length - 1]!;
}

export function report(dir: string, purpose: 'train' | 'evaluate', id?: string): Record<string, any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const rid = id ?? newestRun(dir);
  return JSON.parse(readFileSync(join(dir, '.uflow', 'runs', rid, `dataset-report.${purpose}.json`), 'utf8'));
}

/** A noise PNG (RGB) of w×h. */
export async function png(path: string, w: number, h: number, seed = 1): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const px = Buffer.alloc(w * h * 3);
  let s = seed * 2654435761;
  for (let i = 0; i < px.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    px[i] = s >>> 24;
  }
  await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(path);
}

/** A grey mask PNG: `fn(x, y)` gives the value. */
export async function maskPng(path: string, w: number, h: number, fn: (x: number, y: number) => number): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const px = Buffer.alloc(w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px[y * w + x] = fn(x, y);
  await sharp(px, { raw: { width: w, height: h, channels: 1 } }).png().toFile(path);
}

function crc32(b: Uint8Array): number {
  let c = ~0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return ~c >>> 0;
}

let hugeCache: Buffer | undefined;
/** A valid 1-bit grey PNG of 30000×30000 (110 kB compressed, 900 megapixels). */
export function hugePng(): Buffer {
  if (hugeCache) return hugeCache;
  const W = 30000;
  const H = 30000;
  const chunk = (t: string, d: Uint8Array) => {
    const o = Buffer.alloc(12 + d.length);
    o.writeUInt32BE(d.length, 0);
    o.write(t, 4, 'ascii');
    Buffer.from(d).copy(o, 8);
    o.writeUInt32BE(crc32(o.subarray(4, 8 + d.length)), 8 + d.length);
    return o;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(W, 0);
  ihdr.writeUInt32BE(H, 4);
  ihdr[8] = 1;
  ihdr[9] = 0;
  const raw = new Uint8Array((1 + Math.ceil(W / 8)) * H);
  hugeCache = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', zlibSync(raw, { level: 9 })), chunk('IEND', new Uint8Array())]);
  return hugeCache;
}

export function write(path: string, data: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
}
