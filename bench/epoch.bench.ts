/**
 * Images/s for full U-Flow training epochs on cached features (models/train/trainer.ts: seeded
 * shuffle, batches gathered from the feature tensors, official loss, Adam + weight decay, LR
 * schedule), beside the same epochs in PyTorch (bench/reference/epoch.py) where /usr/bin/python3
 * has torch ("reference unavailable" otherwise).
 *
 * Default shapes: metal_plate with the offline MobileNetV2 x0.35 at input 256 (features 8@64²,
 * 16@32², 32@16², trainable LayerNorm), 60 images, batch 8, 4 flow steps: the configuration of
 * configs/mobilenet-metal_plate.yaml. The official code takes about 0.4 s per metal_plate epoch
 * on a GPU (with MS-CaiT features).
 *
 *   node --import tsx bench/epoch.bench.ts [--images 60] [--batch 8] [--epochs 3] [--warmup 1]
 *        [--channels 8,16,32] [--input 256] [--flow-steps 4] [--backend wasm] [--workers 2]
 *
 * `--workers N` (N ≥ 2) also times the epochs on N worker threads (models/train/parallel.ts), as
 * `uflow train` does on wasm with two or more cores: the default there (2), `--workers 1` skips it.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../models/engine.js';
import { UFlowModel } from '../models/uflow-model.js';
import { mulberry32 } from '../models/flows/rng.js';
import { runTraining } from '../models/train/trainer.js';
import type { FeatureSet } from '../models/train/feature-cache.js';
import { ParallelTrainer } from '../models/train/parallel.js';
import { record } from './report.js';
import { PYTHON, TORCH_DEVICE, pooledReference, torchWhat } from './python.js';
import { median } from './stats.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : dflt;
};
const images = Number(arg('images', '60'));
const batch = Number(arg('batch', '8'));
const epochs = Number(arg('epochs', '3'));
const warmup = Number(arg('warmup', '1'));
const channels = arg('channels', '8,16,32').split(',').map(Number);
const inputSize = Number(arg('input', '256'));
const flowSteps = Number(arg('flow-steps', '4'));
const backend = arg('backend', process.env.UFLOW_BACKEND ?? 'wasm');
// What `uflow train` uses: two worker threads on wasm/cpu with ≥ 2 cores (models/train/parallel.ts).
const workers = Number(arg('workers', String((backend === 'wasm' || backend === 'cpu') && availableParallelism() >= 2 ? 2 : 1)));
const scaleFactors = [4, 8, 16].slice(0, channels.length);
const sizes = scaleFactors.map((f) => inputSize / f);

async function benchTfjs(nWorkers: number): Promise<{ seconds: number; cpuSeconds: number; losses: number[] }> {
  await initEngine({ backend });
  const model = new UFlowModel({ backbone: 'bench', inputSize, channels, scaleFactors, flowSteps, layerNorm: true, seed: 0 });
  const rng = mulberry32(1);
  const levels = sizes.map((s, i) => {
    const d = new Float32Array(images * s * s * channels[i]!);
    for (let j = 0; j < d.length; j++) d[j] = (rng() + rng() + rng() - 1.5) * 2;
    return tf.tensor4d(d, [images, s, s, channels[i]!]);
  });
  const features: FeatureSet = { paths: Array.from({ length: images }, (_, i) => `img${i}`), levels, computed: 0, dispose: () => tf.dispose(levels) };
  const parallel = nWorkers > 1 ? await ParallelTrainer.create(model, { workers: nWorkers, backend }) : undefined;
  const times: number[] = [];
  const cpu: number[] = [];
  const losses: number[] = [];
  let c0 = process.cpuUsage();
  let t0 = performance.now();
  await runTraining(
    { model, features, epochs: warmup + epochs, batchSize: batch, learningRate: 1e-4, weightDecay: 1e-5, seed: 0, step: parallel ? (f, a) => parallel.step(f, a) : undefined },
    {
      onEpochEnd: (r) => {
        const c = process.cpuUsage(c0);
        if (r.epoch > warmup) {
          times.push((performance.now() - t0) / 1000);
          cpu.push((c.user + c.system) / 1e6);
          losses.push(r.loss);
        }
        c0 = process.cpuUsage();
        t0 = performance.now();
      },
    },
  );
  await parallel?.dispose();
  features.dispose();
  model.dispose();
  return { seconds: median(times), cpuSeconds: median(cpu), losses };
}

function reference(): { times: number[]; cpu: number[]; version: string; threads: number } | string {
  const py = PYTHON;
  const probe = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return `reference unavailable (${py} cannot import torch)`;
  const script = join(dirname(fileURLToPath(import.meta.url)), 'reference', 'epoch.py');
  const r = spawnSync(py, [script, '--channels', channels.join(','), '--sizes', sizes.join(','), '--flow-steps', String(flowSteps), '--images', String(images), '--batch', String(batch), '--epochs', String(epochs), '--warmup', String(warmup), '--threads', '2', '--device', TORCH_DEVICE], { encoding: 'utf8' });
  if (r.status !== 0) return `reference unavailable (epoch.py failed: ${r.stderr.trim().split('\n').pop()})`;
  const o = JSON.parse(r.stdout.trim().split('\n').pop()!);
  return { times: o.times, cpu: o.cpu_times, version: o.torch, threads: o.threads };
}

console.log(`U-Flow epoch on cached features: ${images} images, batch ${batch}, features ${channels.map((c, i) => `${c}@${sizes[i]}²`).join(', ')}, ${flowSteps} flow steps, LayerNorm; median of ${epochs} epochs after ${warmup} warm-up`);
console.log(`load average before: ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores (wall times grow when other processes share the cores; CPU times do not)`);
// The reference runs before and after ours (pooledReference: the machine's state on both sides).
const refBefore = reference();
const mine = await benchTfjs(1);
console.log(`tfjs ${backend}, one thread: ${mine.seconds.toFixed(2)} s/epoch wall (${(images / mine.seconds).toFixed(1)} images/s), ${mine.cpuSeconds.toFixed(2)} s CPU/epoch  loss ${mine.losses[0]!.toFixed(0)} → ${mine.losses.at(-1)!.toFixed(0)}`);
let par: Awaited<ReturnType<typeof benchTfjs>> | undefined;
if (workers > 1) {
  par = await benchTfjs(workers);
  console.log(`tfjs ${backend}, ${workers} worker threads: ${par.seconds.toFixed(2)} s/epoch wall (${(images / par.seconds).toFixed(1)} images/s), ${par.cpuSeconds.toFixed(2)} s CPU/epoch (all threads)  loss ${par.losses[0]!.toFixed(0)} → ${par.losses.at(-1)!.toFixed(0)}`);
}
const pooled = pooledReference([refBefore, reference()]);
const ref = typeof pooled === 'string' ? pooled : { ...pooled, seconds: pooled.wall, cpuSeconds: pooled.cpuMedian };
if (typeof ref === 'string') console.log(ref);
else {
  console.log(`${torchWhat(ref.version, ref.threads)}: ${ref.seconds.toFixed(2)} s/epoch wall (${(images / ref.seconds).toFixed(1)} images/s; median of its runs before and after ours: ${ref.runMedians.map((m) => m.toFixed(2)).join(' / ')} s), ${ref.cpuSeconds.toFixed(2)} s CPU/epoch`);
  console.log(`ratio tfjs one thread / PyTorch: ${(mine.seconds / ref.seconds).toFixed(2)}× wall, ${(mine.cpuSeconds / ref.cpuSeconds).toFixed(2)}× CPU time`);
  if (par) console.log(`ratio tfjs ${workers} workers / PyTorch: ${(par.seconds / ref.seconds).toFixed(2)}× wall`);
}

// Figures for bench/results.json (npm run bench): the epoch target is judged on what training runs
// (the worker threads where there are ≥ 2 cores).
const shapes = `${images} images, batch ${batch}, features ${channels.map((c, i) => `${c}@${sizes[i]}²`).join(', ')}, ${flowSteps} flow steps`;
const epochRef = typeof ref === 'string' ? null : { value: ref.seconds, unit: 's', what: `${torchWhat(ref.version, ref.threads)}, run before and after ours (${ref.runMedians.map((m) => m.toFixed(2)).join(' / ')} s)` };
record({ name: `U-Flow epoch on cached features (${shapes}), one thread`, ours: { value: mine.seconds, unit: 's' }, reference: epochRef, target: par ? undefined : 'epoch', backend: `tfjs ${backend}`, note: `${(images / mine.seconds).toFixed(1)} images/s; CPU ${mine.cpuSeconds.toFixed(2)} s/epoch` });
if (par) record({ name: `U-Flow epoch on cached features (${shapes}), ${workers} worker threads`, ours: { value: par.seconds, unit: 's' }, reference: epochRef, target: 'epoch', backend: `tfjs ${backend}`, note: `${(images / par.seconds).toFixed(1)} images/s; CPU ${par.cpuSeconds.toFixed(2)} s/epoch (all threads)` });
