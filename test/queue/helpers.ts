/**
 * Queue test helpers: a real redis-server on a free loopback port (its own folder, stopped at the
 * end), real worker processes (the built dist/cli.js), tiny MVTec-layout categories.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { generateDemoDataset } from '../../models/data/demo-dataset.js';
import { CLI, ensureBuilt } from '../cli/cli-helpers.js';

/** Why the queue tests are skipped here, or undefined when redis-server is installed. */
export function redisMissing(): string | undefined {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? undefined : 'redis-server is not installed (Debian: apt-get install redis-server): the queue tests need a real Redis, skipped';
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

export interface RedisServer {
  port: number;
  url: string;
  dir: string;
  /** SIGTERM (Redis flushes its append-only file) and wait for the exit. */
  stop(): Promise<void>;
  /** Starts again on the same port and folder. */
  start(): Promise<void>;
}

/** redis-server on 127.0.0.1:<free port>, data in `dir`; `appendonly` as the docs require for no lost jobs. */
export async function startRedis(dir: string, opts: { appendonly?: boolean } = {}): Promise<RedisServer> {
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = (): Promise<void> =>
    new Promise((res, rej) => {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', opts.appendonly ? 'yes' : 'no', '--appendfsync', 'always', '--protected-mode', 'yes'];
      const c = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      child = c;
      let log = '';
      const timer = setTimeout(() => rej(new Error(`redis-server did not start:\n${log}`)), 15_000);
      c.stdout!.on('data', (d) => {
        log += d;
        if (/Ready to accept connections/.test(log)) {
          clearTimeout(timer);
          res();
        }
      });
      c.stderr!.on('data', (d) => (log += d));
      c.once('exit', (code) => {
        clearTimeout(timer);
        rej(new Error(`redis-server exited (${code}):\n${log}`));
      });
    });
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    start,
    stop: () =>
      new Promise((res) => {
        const c = child;
        if (!c || c.exitCode !== null) return res();
        c.removeAllListeners('exit');
        c.once('exit', () => res());
        c.kill('SIGTERM');
      }),
  };
}

export const WORKER_ENV = { ...process.env, UFLOW_BACKEND: process.env.UFLOW_TEST_BACKEND ?? 'wasm', UFLOW_TRAIN_WORKERS: '1', NO_COLOR: '1' };

export interface WorkerProc {
  name: string;
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

/**
 * A real `uflow worker` process; resolves once it serves. Its job and run locks expire after
 * `lockMs` (30 s by default in use): short here so that a killed worker's job is taken over
 * quickly, yet long enough that a worker whose event loop a loaded 2-core machine holds up for
 * a few seconds keeps its locks.
 */
export async function startWorkerProc(url: string, name: string, lockMs = 5000): Promise<WorkerProc> {
  ensureBuilt();
  const child = spawn(process.execPath, [CLI, 'worker', '--queue', url, '--name', name, '--lock-ms', String(lockMs)], { env: WORKER_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const t0 = Date.now();
  while (!/serving train/.test(out)) {
    if (child.exitCode !== null) throw new Error(`worker ${name} exited (${child.exitCode}):\n${out}`);
    if (Date.now() - t0 > 60_000) throw new Error(`worker ${name} did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { name, child, output: () => out, exited };
}

/** A tiny category (8 training images at 64 px, 6 test images): a few seconds per training. */
export function tinyCategory(root: string, category: string, seed: number): string {
  return generateDemoDataset(root, { category, size: 64, seed, counts: { train: 8, testGood: 3, defects: { hole: 1, scratch: 1, stain: 1 } } });
}

/** Fast training flags: built-in backbone at 32 px, batch 2 (4 steps per epoch of 8 images), no validation. */
export function tinyFlags(epochs: number, batch = 2): string[] {
  return ['--backbone', 'builtin:filters', '--input-size', '32', '--epochs', String(epochs), '--batch', String(batch), '--lr', '2e-3', '--validate-every', '0'];
}

export function runFolder(trainDir: string, runId: string): string {
  return join(trainDir, 'runs', runId);
}
