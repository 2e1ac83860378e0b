/**
 * Daemon under load: a real daemon (dist/server.js over stdio) with a small trained run (tiny
 * generated dataset, builtin filter backbone, 2 epochs), then N `uflow/predict` requests sent at
 * once (default 200). Every one must be answered; prints p50 / p95 / max latency, throughput, the
 * daemon's peak RSS (VmHWM from /proc where there is one, else the largest RSS sampled) and its
 * tensor count before and after. Then the hover: one `uflow/predict` at a time (what a hover over an
 * image path sends), median of 10, on a loaded run at --hover-size (default 256: a second run,
 * builtin:filters, 4 flow steps, 1 epoch; the maps come back at 256², as in VS Code), judged against
 * the < 150 ms target; `--hover-size` equal to `--size` times it on the load test's run.
 *
 *   node esbuild.mjs && node --import tsx bench/daemon-load.bench.ts [--requests 200] [--size 32] [--hover-size 256] [--backend wasm]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Prediction, StatusResult, TrainResult, JobEnded } from '../server/protocol.js';
import { tinyConfig, writeTinyCategory } from '../test/daemon/fixtures.js';
import { startDaemon, tempDir } from '../test/daemon/harness.js';
import { record } from './report.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
};
const N = Number(opt('requests', '200'));
const size = Number(opt('size', '32'));
const hoverSize = Number(opt('hover-size', '256'));
const backend = opt('backend', process.env.UFLOW_BACKEND ?? 'wasm');

function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

function peakRssOf(pid: number): number | undefined {
  try {
    const m = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

const mib = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;

async function main(): Promise<void> {
  const { dir, cleanup } = tempDir('uflow-bench-');
  const cat = await writeTinyCategory(join(dir, 'data'), 'carpet', { size, trainGood: 6, testGood: 2, defects: 2 });
  const d = await startDaemon({ workspaceFolders: [dir], env: { UFLOW_BACKEND: backend } });
  try {
    const cfg = tinyConfig(2);
    (cfg.model as { input_size: number }).input_size = size;
    const t0 = Date.now();
    const res = (await d.conn.sendRequest('uflow/train', { datasetPath: cat, model: 'uflow', config: cfg })) as TrainResult;
    const job = res.jobs[0]!;
    const end = (await d.inbox.wait('uflow/jobEnded', (p: JobEnded) => p.jobId === job.jobId, 20 * 60_000)).params as JobEnded;
    if (end.state !== 'done') throw new Error(`training ${end.state}: ${end.error}`);
    console.log(`trained ${job.runId} (2 epochs, ${size}×${size}) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const images = ['test/good/000.png', 'test/good/001.png', 'test/spot/000.png', 'test/spot/001.png'].map((p) => join(cat, p));
    await d.conn.sendRequest('uflow/predict', { runId: job.runId, imagePath: images[0] }); // load the model once
    const before = (await d.conn.sendRequest('uflow/status')) as StatusResult;

    let sampledPeak = before.memory.rss;
    const sampler = setInterval(() => {
      const v = peakRssOf(d.proc.pid!);
      if (v === undefined) void d.conn.sendRequest('uflow/status').then((s) => (sampledPeak = Math.max(sampledPeak, (s as StatusResult).memory.rss)), () => undefined);
    }, 100);
    const lat: number[] = [];
    let failed = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: N }, (_, i) => {
        const s = performance.now();
        return d.conn.sendRequest('uflow/predict', { runId: job.runId, imagePath: images[i % images.length] }).then(
          (p) => {
            lat.push(performance.now() - s);
            if (typeof (p as Prediction).score !== 'number') failed++;
          },
          (e: Error) => {
            failed++;
            console.error(`request ${i}: ${e.message}`);
          },
        );
      }),
    );
    const wall = performance.now() - start;
    clearInterval(sampler);
    const after = (await d.conn.sendRequest('uflow/status')) as StatusResult;
    const peak = peakRssOf(d.proc.pid!) ?? Math.max(sampledPeak, after.memory.rss);
    lat.sort((a, b) => a - b);
    console.log(`backend ${after.engine.backend} (${after.engine.device})`);
    console.log(`${N} uflow/predict in flight at once: ${lat.length} answered, ${failed} failed, in ${(wall / 1000).toFixed(2)} s (${((lat.length / wall) * 1000).toFixed(1)} req/s)`);
    console.log(`latency p50 ${percentile(lat, 50).toFixed(0)} ms · p95 ${percentile(lat, 95).toFixed(0)} ms · max ${lat.at(-1)?.toFixed(0)} ms`);
    console.log(`daemon peak RSS ${mib(peak)} (${peakRssOf(d.proc.pid!) !== undefined ? 'VmHWM' : 'sampled'}); RSS now ${mib(after.memory.rss)}`);
    console.log(`tensors before ${before.memory.tensors}, after ${after.memory.tensors}`);
    // The hover: one request at a time on a loaded run (its model in the daemon's cache).
    let hoverRun = job.runId;
    let hoverImages = images;
    if (hoverSize !== size) {
      const hcat = await writeTinyCategory(join(dir, 'data'), 'tile', { size: hoverSize, trainGood: 4, testGood: 2, defects: 2 });
      const hcfg = tinyConfig(1);
      Object.assign(hcfg.model, { input_size: hoverSize, flow_steps: 4 });
      const t1 = Date.now();
      const hres = (await d.conn.sendRequest('uflow/train', { datasetPath: hcat, model: 'uflow', config: hcfg })) as TrainResult;
      const hjob = hres.jobs[0]!;
      const hend = (await d.inbox.wait('uflow/jobEnded', (p: JobEnded) => p.jobId === hjob.jobId, 20 * 60_000)).params as JobEnded;
      if (hend.state !== 'done') throw new Error(`training the hover run ${hend.state}: ${hend.error}`);
      console.log(`trained ${hjob.runId} for the hover (1 epoch, ${hoverSize}×${hoverSize}, 4 flow steps) in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
      hoverRun = hjob.runId;
      hoverImages = ['test/good/000.png', 'test/spot/000.png'].map((p) => join(hcat, p));
      await d.conn.sendRequest('uflow/predict', { runId: hoverRun, imagePath: hoverImages[0] }); // load it
    }
    const hover: number[] = [];
    let lastHover: Prediction | undefined;
    for (let i = 0; i < 10; i++) {
      const s = performance.now();
      lastHover = (await d.conn.sendRequest('uflow/predict', { runId: hoverRun, imagePath: hoverImages[i % hoverImages.length] })) as Prediction;
      hover.push(performance.now() - s);
    }
    const inf = lastHover?.inference;
    hover.sort((a, b) => a - b);
    const hoverMs = percentile(hover, 50);
    const mapShape = lastHover?.mapShape ?? [lastHover?.mapSize, lastHover?.mapSize];
    console.log(`hover (one uflow/predict at a time on the loaded ${hoverSize} px run, maps ${mapShape.join('×')}): median ${hoverMs.toFixed(1)} ms of 10, max ${hover.at(-1)!.toFixed(1)} ms`);
    const backendName = inf?.engine === 'onnx' ? `onnxruntime-node ${inf.providers?.join(', ') ?? ''}`.trim() : `tfjs ${after.engine.backend}`;
    record({ name: `daemon: ${N} uflow/predict in flight at once, p50 latency (tiny ${size} px run)`, ours: { value: percentile(lat, 50), unit: 'ms' }, backend: backendName, note: `p95 ${percentile(lat, 95).toFixed(0)} ms, ${failed} failed, peak RSS ${mib(peak)}, tensors ${before.memory.tensors} → ${after.memory.tensors}` });
    record({ name: `hover: one uflow/predict on a loaded run (${hoverSize} px, builtin:filters, ${hoverSize === size ? '1 flow step' : '4 flow steps'}, maps ${mapShape.join('×')}), median of 10`, ours: { value: hoverMs, unit: 'ms' }, target: 'hover', backend: backendName });
    if (failed || lat.length !== N) process.exitCode = 1;
    if (after.memory.tensors !== before.memory.tensors) {
      console.error('tensor count changed under load');
      process.exitCode = 1;
    }
  } finally {
    await d.close();
    cleanup();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
