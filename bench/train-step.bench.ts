/**
 * One U-Flow training step (forward + backward + Adam) on cached features 64@64², 128@32²,
 * 256@16² (ResNet-18 at 256 with its trainable LayerNorm), 4 flow steps, batch 8, on the wasm
 * backend; then the same step in PyTorch (bench/reference/train_step.py) where /usr/bin/python3
 * has torch. Prints ms/step (median after warm-up), one thread and two worker threads (what
 * training uses on ≥ 2 cores), one inference (one image → anomaly map), and the ratios.
 *
 *   node --import tsx bench/train-step.bench.ts [--steps 5] [--warmup 1] [--batch 8] [--backend wasm] [--no-parallel]
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { availableParallelism, loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../models/engine.js';
import { Adam } from '../models/train/adam.js';
import { trainStep } from '../models/train/step.js';
import { benchModelAndFeatures } from './synthetic.js';
import { anomalyMap } from '../models/scores/anomaly-map.js';
import { record, type Reference } from './report.js';
import { PYTHON, TORCH_DEVICE, pooledReference, torchWhat } from './python.js';
import { median } from './stats.js';

const args = process.argv.slice(2);
const opt = (name: string, dflt: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const steps = opt('steps', 5);
const warmup = opt('warmup', 1);
const batch = opt('batch', 8);
const backendIdx = args.indexOf('--backend');
const backend = backendIdx >= 0 ? args[backendIdx + 1]! : (process.env.UFLOW_BACKEND ?? 'wasm');
// Two wasm workers (what training uses on wasm with ≥ 2 cores) are measured unless --no-parallel
// or another backend is asked for (training on a GPU or native backend runs on one thread).
const parallel = !args.includes('--no-parallel') && availableParallelism() >= 2 && backend === 'wasm';

const channels = [64, 128, 256];
const scaleFactors = [4, 8, 16];
const inputSize = 256;
const flowSteps = 4;

interface Timing {
  ms: number;
  times: number[];
  losses: number[];
  /** Process CPU time per step (all threads), median: robust to other processes sharing the cores. */
  cpuMs?: number;
  /** One image: features → latents → anomaly map at the input size (median). */
  inferenceMs?: number;
}

/**
 * `warmup` untimed steps, then `steps` timed ones: wall time and process CPU time (all threads,
 * the workers' included) per step, and the losses.
 */
async function timeSteps(step: () => number | Promise<number>): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await step();
  const times: number[] = [];
  const cpu: number[] = [];
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    losses.push(await step());
    times.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { ms: median(times), times, losses, cpuMs: median(cpu) };
}

async function benchSingle(): Promise<Timing> {
  await initEngine({ backend });
  const { model, feats } = benchModelAndFeatures({ inputSize, channels, scaleFactors, flowSteps, batch });
  const adam = new Adam(model.trainableVariables(), { lr: 1e-3, weightDecay: 1e-5 });
  const timed = await timeSteps(() => trainStep(model, feats, adam));
  // One inference: one image's features → latents → anomaly map at the input size.
  const one = feats.map((f) => tf.slice(f, 0, 1));
  const infer = () => {
    const m = tf.tidy(() => anomalyMap(model.fromFeatures(one).z, inputSize));
    m.dataSync();
    m.dispose();
  };
  for (let i = 0; i < warmup; i++) infer();
  const inf: number[] = [];
  for (let i = 0; i < Math.max(steps, 5); i++) {
    const t0 = performance.now();
    infer();
    inf.push(performance.now() - t0);
  }
  tf.dispose(one);
  adam.dispose();
  tf.dispose(feats);
  model.dispose();
  return { ...timed, inferenceMs: median(inf) };
}

async function benchParallel(): Promise<Timing | undefined> {
  let mod: typeof import('../models/train/parallel.js');
  try {
    mod = await import('../models/train/parallel.js');
  } catch (e) {
    console.log(`parallel trainer unavailable: ${(e as Error).message.split('\n')[0]}`);
    return undefined;
  }
  const { model, feats } = benchModelAndFeatures({ inputSize, channels, scaleFactors, flowSteps, batch });
  const adam = new Adam(model.trainableVariables(), { lr: 1e-3, weightDecay: 1e-5 });
  const trainer = await mod.ParallelTrainer.create(model, { workers: 2 });
  try {
    return await timeSteps(() => trainer.step(feats, adam));
  } finally {
    await trainer.dispose();
    adam.dispose();
    tf.dispose(feats);
    model.dispose();
  }
}

function torchReference(): { times: number[]; cpu: number[]; inferenceMs: number; version: string; threads: number } | string {
  const py = PYTHON;
  const probe = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return `PyTorch reference unavailable (${py} -c 'import torch' failed${probe.stderr ? `: ${probe.stderr.trim().split('\n').pop()}` : ''})`;
  const script = join(dirname(fileURLToPath(import.meta.url)), 'reference', 'train_step.py');
  const r = spawnSync(py, [script, '--channels', channels.join(','), '--sizes', scaleFactors.map((f) => inputSize / f).join(','), '--flow-steps', String(flowSteps), '--batch', String(batch), '--layer-norm', '1', '--warmup', String(warmup), '--steps', String(steps), '--threads', '2', '--input-size', String(inputSize), '--device', TORCH_DEVICE], { encoding: 'utf8' });
  if (r.status !== 0) return `PyTorch reference unavailable (the reference script failed: ${r.stderr.trim().split('\n').pop()})`;
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  return { times: out.times_ms, cpu: out.cpu_ms ?? [out.cpu_ms_per_step], inferenceMs: out.ms_per_inference, version: out.torch, threads: out.threads };
}

const shape = `features ${channels.map((c, i) => `${c}@${inputSize / scaleFactors[i]!}²`).join(', ')}, ${flowSteps} flow steps, LayerNorm, batch ${batch}`;
console.log(`U-Flow training step (${shape}); median of ${steps} after ${warmup} warm-up`);
const load = () => loadavg()[0]!.toFixed(1);
console.log(`load average before: ${load()} on ${availableParallelism()} cores (wall times are inflated when other processes share the cores; CPU times are not)`);
// The reference runs before and after ours (pooledReference: the machine's state on both sides).
const refBefore = torchReference();
const single = await benchSingle();
console.log(`tfjs ${backend} one inference (1 image → anomaly map ${inputSize}²): ${single.inferenceMs!.toFixed(1)} ms`);
console.log(`tfjs ${backend} (one thread): ${single.ms.toFixed(0)} ms/step wall, ${single.cpuMs!.toFixed(0)} ms CPU  [${single.times.map((t) => t.toFixed(0)).join(', ')}]  loss ${single.losses[0]!.toFixed(1)} → ${single.losses.at(-1)!.toFixed(1)}`);
let par: Awaited<ReturnType<typeof benchParallel>>;
if (parallel) {
  par = await benchParallel();
  if (par) {
    console.log(`tfjs wasm, 2 workers × half batch: ${par.ms.toFixed(0)} ms/step wall, ${par.cpuMs!.toFixed(0)} ms CPU (all threads)  [${par.times.map((t) => t.toFixed(0)).join(', ')}]  loss ${par.losses[0]!.toFixed(1)} → ${par.losses.at(-1)!.toFixed(1)}`);
    console.log(`  speed-up over one thread: ×${(single.ms / par.ms).toFixed(2)} wall; on two idle cores about ×${((2 * single.cpuMs!) / par.cpuMs!).toFixed(2)} (2 × single CPU / parallel CPU)`);
  }
}
const pooled = pooledReference([refBefore, torchReference()]);
const ref = typeof pooled === 'string' ? pooled : { ...pooled, ms: pooled.wall, cpuMs: pooled.cpuMedian };
if (typeof ref === 'string') console.log(ref);
else {
  console.log(`${torchWhat(ref.version, ref.threads)}: ${ref.ms.toFixed(0)} ms/step wall (median of its runs before and after ours: ${ref.runMedians.map((m) => m.toFixed(0)).join(' / ')} ms), ${ref.cpuMs.toFixed(0)} ms CPU (all threads)`);
  console.log(`ratio tfjs ${backend} / PyTorch: ${(single.ms / ref.ms).toFixed(2)}× wall, ${(single.cpuMs! / ref.cpuMs).toFixed(2)}× CPU time`);
  if (par) console.log(`ratio tfjs 2 workers / PyTorch: ${(par.ms / ref.ms).toFixed(2)}× wall`);
  console.log(`inference: PyTorch ${ref.inferenceMs.toFixed(1)} ms, ratio tfjs ${backend} / PyTorch ${(single.inferenceMs! / ref.inferenceMs).toFixed(2)}×`);
}
console.log(`load average after: ${load()}`);

// Figures for bench/results.json (npm run bench). The step target is judged on what training runs
// (two workers on ≥ 2 cores), the one-thread step is recorded beside it.
// Steps pool both reference runs; the inference figure is the first run's.
const refOf = (value: number, unit: string, pooledSteps = true): Reference | null =>
  typeof ref === 'string' ? null : { value, unit, what: pooledSteps ? `${torchWhat(ref.version, ref.threads)}, run before and after ours (${ref.runMedians.map((m) => m.toFixed(0)).join(' / ')} ms/step)` : torchWhat(ref.version, ref.threads) };
const tfName = `tfjs ${backend}`;
record({ name: `U-Flow training step (${shape}), one thread`, ours: { value: single.ms, unit: 'ms' }, reference: typeof ref === 'string' ? null : refOf(ref.ms, 'ms'), target: par ? undefined : 'train-step', backend: tfName, note: `CPU ${single.cpuMs!.toFixed(0)} ms/step` });
if (par) record({ name: `U-Flow training step (${shape}), 2 workers × half batch`, ours: { value: par.ms, unit: 'ms' }, reference: typeof ref === 'string' ? null : refOf(ref.ms, 'ms'), target: 'train-step', backend: tfName, note: `CPU ${par.cpuMs!.toFixed(0)} ms/step (all threads)` });
record({
  name: `U-Flow inference, one image's features → anomaly map ${inputSize}² (flow + map, no backbone)`,
  ours: { value: single.inferenceMs!, unit: 'ms' },
  reference: typeof ref === 'string' ? null : refOf(ref.inferenceMs, 'ms', false),
  // no target: the inference target is judged on the whole image (backbone included) on the engine
  // predict uses, in onnx-vs-tfjs
  backend: tfName,
});
