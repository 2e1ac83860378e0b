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
 *        [--channels 8,16,32] [--input 256] [--flow-steps 4] [--backend wasm]
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
const backend = arg('backend', 'wasm');
const scaleFactors = [4, 8, 16].slice(0, channels.length);
const sizes = scaleFactors.map((f) => inputSize / f);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function benchTfjs(): Promise<{ seconds: number; cpuSeconds: number; losses: number[] }> {
  const engine = await initEngine({ backend });
  console.log(`engine: ${engine.backend} on ${engine.device}`);
  const model = new UFlowModel({ backbone: 'bench', inputSize, channels, scaleFactors, flowSteps, layerNorm: true, seed: 0 });
  const rng = mulberry32(1);
  const levels = sizes.map((s, i) => {
    const d = new Float32Array(images * s * s * channels[i]!);
    for (let j = 0; j < d.length; j++) d[j] = (rng() + rng() + rng() - 1.5) * 2;
    return tf.tensor4d(d, [images, s, s, channels[i]!]);
  });
  const features: FeatureSet = { paths: Array.from({ length: images }, (_, i) => `img${i}`), levels, computed: 0, dispose: () => tf.dispose(levels) };
  const times: number[] = [];
  const cpu: number[] = [];
  const losses: number[] = [];
  let c0 = process.cpuUsage();
  let t0 = performance.now();
  await runTraining(
    { model, features, epochs: warmup + epochs, batchSize: batch, learningRate: 1e-4, weightDecay: 1e-5, seed: 0 },
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
  features.dispose();
  model.dispose();
  return { seconds: median(times), cpuSeconds: median(cpu), losses };
}

function reference(): { seconds: number; cpuSeconds: number; version: string; threads: number } | string {
  const py = '/usr/bin/python3';
  const probe = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return 'reference unavailable (/usr/bin/python3 cannot import torch)';
  const script = join(dirname(fileURLToPath(import.meta.url)), 'reference', 'epoch.py');
  const r = spawnSync(py, [script, '--channels', channels.join(','), '--sizes', sizes.join(','), '--flow-steps', String(flowSteps), '--images', String(images), '--batch', String(batch), '--epochs', String(epochs), '--warmup', String(warmup), '--threads', '2'], { encoding: 'utf8' });
  if (r.status !== 0) return `reference unavailable (epoch.py failed: ${r.stderr.trim().split('\n').pop()})`;
  const o = JSON.parse(r.stdout.trim().split('\n').pop()!);
  return { seconds: o.seconds_per_epoch, cpuSeconds: o.cpu_seconds_per_epoch, version: o.torch, threads: o.threads };
}

console.log(`U-Flow epoch on cached features: ${images} images, batch ${batch}, features ${channels.map((c, i) => `${c}@${sizes[i]}²`).join(', ')}, ${flowSteps} flow steps, LayerNorm; median of ${epochs} epochs after ${warmup} warm-up`);
console.log(`load average before: ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores (wall times grow when other processes share the cores; CPU times do not)`);
const mine = await benchTfjs();
console.log(`tfjs ${backend}: ${mine.seconds.toFixed(2)} s/epoch wall (${(images / mine.seconds).toFixed(1)} images/s), ${mine.cpuSeconds.toFixed(2)} s CPU/epoch  loss ${mine.losses[0]!.toFixed(0)} → ${mine.losses.at(-1)!.toFixed(0)}`);
const ref = reference();
if (typeof ref === 'string') console.log(ref);
else {
  console.log(`PyTorch ${ref.version} CPU (${ref.threads} threads): ${ref.seconds.toFixed(2)} s/epoch wall (${(images / ref.seconds).toFixed(1)} images/s), ${ref.cpuSeconds.toFixed(2)} s CPU/epoch`);
  console.log(`ratio tfjs / PyTorch: ${(mine.seconds / ref.seconds).toFixed(2)}× wall, ${(mine.cpuSeconds / ref.cpuSeconds).toFixed(2)}× CPU time`);
}
