/**
 * Throughput of `uflow train-all` on the Redis queue with 1, 2 and 4 worker processes, and the
 * scaling ratio against one worker; beside it the same train-all in one process (no queue, two
 * training threads on wasm). Each run trains and evaluates the same categories from scratch
 * (fresh train dir: features are extracted again).
 *
 * Categories: the demo's (`uflow demo`'s generator, models/data/demo-dataset.ts: woven texture,
 * 40 training and 26 test images at 128 px), four of them with different seeds. Each worker trains
 * on one thread (UFLOW_TRAIN_WORKERS=1), so N workers use N cores.
 *
 *   node --import tsx bench/queue-scaling.bench.ts [--categories 4] [--epochs 10] [--input 64] [--workers 1,2,4] [--no-local]
 *
 * Needs redis-server (Debian package) and the built dist/cli.js (npm run bench builds it).
 */
import { spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateDemoDataset } from '../models/data/demo-dataset.js';
import { CLI, ensureBuilt } from '../test/cli/cli-helpers.js';
import { redisMissing, startRedis, startWorkerProc, WORKER_ENV, type WorkerProc } from '../test/queue/helpers.js';
import { record } from './report.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : dflt;
};
const nCats = Number(arg('categories', '4'));
const epochs = arg('epochs', '10');
const input = arg('input', '64');
const counts = arg('workers', '1,2,4').split(',').map(Number);
const local = !args.includes('--no-local');

const missing = redisMissing();
if (missing) {
  console.log(`queue-scaling: ${missing}`);
  process.exit(0);
}
ensureBuilt();
const tmp = mkdtempSync(join(tmpdir(), 'uflow-bench-queue-'));
const data = join(tmp, 'data');
const cats: string[] = [];
for (let i = 0; i < nCats; i++) {
  const c = `demo_tile_${i + 1}`;
  generateDemoDataset(data, { category: c, seed: 7 + i });
  cats.push(c);
}
const flags = ['--backbone', 'builtin:filters', '--input-size', input, '--epochs', epochs, '--batch', '8', '--lr', '2e-3', '--validate-every', '0', '--seed', '0'];

function trainAll(trainDir: string, queue?: string, env: NodeJS.ProcessEnv = WORKER_ENV): Promise<{ seconds: number; summary: { rows: Array<{ category: string; worker?: string; seconds: number; overall?: { pixel_auroc: number | null } }> } }> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const c = spawn(process.execPath, [CLI, 'train-all', '-data', data, '-train_dir', trainDir, ...flags, ...(queue ? ['--queue', queue] : [])], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('close', (code) => {
      const seconds = (performance.now() - t0) / 1000;
      if (code !== 0) return rej(new Error(`train-all exited ${code}:\n${out}`));
      const dir = /summary: (\S+)\/summary\.md/.exec(out)![1]!;
      res({ seconds, summary: JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) });
    });
  });
}

const redis = await startRedis(join(tmp, 'redis'));
console.log(`queue-scaling: ${nCats} demo categories (40 train + 26 test images at 128 px), builtin:filters at ${input}, ${epochs} epochs, batch 8; train + evaluate each`);
console.log(`machine: ${availableParallelism()} cores, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at start`);
const rows: Array<{ what: string; seconds: number; perMin: number }> = [];
try {
  if (local) {
    const r = await trainAll(join(tmp, 'td-local'), undefined, { ...WORKER_ENV, UFLOW_TRAIN_WORKERS: String(Math.min(2, availableParallelism())) });
    rows.push({ what: `one process, no queue (${Math.min(2, availableParallelism())} training threads)`, seconds: r.seconds, perMin: (60 * nCats) / r.seconds });
  }
  for (const n of counts) {
    const workers: WorkerProc[] = [];
    for (let i = 0; i < n; i++) workers.push(await startWorkerProc(redis.url, `b${n}-${i + 1}`, 30_000));
    try {
      const r = await trainAll(join(tmp, `td-${n}`), redis.url);
      const used = new Set(r.summary.rows.map((x) => x.worker)).size;
      rows.push({ what: `${n} worker${n > 1 ? 's' : ''} (1 thread each; ${used} took jobs)`, seconds: r.seconds, perMin: (60 * nCats) / r.seconds });
    } finally {
      for (const w of workers) w.child.kill('SIGTERM');
      await Promise.all(workers.map((w) => w.exited));
    }
  }
} finally {
  await redis.stop();
  rmSync(tmp, { recursive: true, force: true });
}
const base = rows.find((r) => r.what.startsWith('1 worker'));
console.log('');
console.log('| train-all | wall s | categories/min | vs 1 worker |');
console.log('|---|---|---|---|');
for (const r of rows) console.log(`| ${r.what} | ${r.seconds.toFixed(1)} | ${r.perMin.toFixed(2)} | ${base ? (r.perMin / base.perMin).toFixed(2) + '×' : '-'} |`);
console.log(`load average at the end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
// Figures for bench/results.json (npm run bench): wall time of each setup beside one worker's.
for (const r of rows)
  record({
    name: `train-all of ${nCats} demo categories (${input} px, ${epochs} epochs, train + evaluate), ${r.what}`,
    ours: { value: r.seconds, unit: 's' },
    reference: base && r !== base ? { value: base.seconds, unit: 's', what: 'the same on 1 queue worker' } : null,
    backend: 'tfjs wasm',
    note: `${r.perMin.toFixed(2)} categories/min`,
  });
