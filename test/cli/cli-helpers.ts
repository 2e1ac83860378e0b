/** Helpers for the CLI tests: run the built dist/cli.js as a child process, make small datasets. */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateDemoDataset } from '../../models/data/demo-dataset.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI = join(repoRoot, 'dist', 'cli.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const ENV = { ...process.env, UFLOW_BACKEND: process.env.UFLOW_TEST_BACKEND ?? 'wasm', NO_COLOR: '1' };

export function ensureBuilt(): void {
  if (!existsSync(CLI)) {
    const r = spawnSync(process.execPath, ['esbuild.mjs'], { cwd: repoRoot, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('build failed');
  }
}

/** Runs `node dist/cli.js ...args` to the end. */
export function cli(args: string[], opts: { cwd?: string; timeoutMs?: number; env?: Record<string, string> } = {}): Promise<CliResult> {
  ensureBuilt();
  return new Promise((res, rej) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? repoRoot, env: { ...ENV, ...opts.env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 240_000);
    child.on('error', rej);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      res({ code, signal, stdout, stderr });
    });
  });
}

/** Starts the CLI without waiting; the caller watches stderr and signals it. */
export function cliStart(args: string[], opts: { cwd?: string } = {}): { child: ChildProcess; output: () => string; done: Promise<CliResult> } {
  ensureBuilt();
  const child = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? repoRoot, env: ENV });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<CliResult>((res) => child.on('close', (code, signal) => res({ code, signal, stdout, stderr })));
  return { child, output: () => stdout + stderr, done };
}

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A small demo dataset (woven texture with holes, scratches, stains) under `root`; returns the category folder. */
export function smallDataset(root: string, counts = { train: 16, testGood: 6, defects: { hole: 3, scratch: 3, stain: 3 } }): string {
  return generateDemoDataset(root, { counts, size: 128, seed: 3 });
}

/** Config flags for fast tests: the built-in backbone at 64 px. */
export function fastFlags(epochs: number, extra: string[] = []): string[] {
  return ['--backbone', 'builtin:filters', '--input-size', '64', '--epochs', String(epochs), '--batch', '4', '--lr', '2e-3', ...extra];
}

/** Polls `pred`; fails early (with its output) when the watched process has exited. */
export async function waitFor(pred: () => boolean, timeoutMs: number, what: string, proc?: { child: ChildProcess; output: () => string }): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (proc && proc.child.exitCode !== null) throw new Error(`the process exited (${proc.child.exitCode}) before ${what}:\n${proc.output()}`);
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}${proc ? `:\n${proc.output()}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
