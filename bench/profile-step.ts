/**
 * Where a U-Flow training step spends its kernel time: the train-step bench's workload (features
 * 64@64², 128@32², 256@16², 4 flow steps, LayerNorm, batch 8, one thread) run under tf.profile,
 * kernel times summed per kernel name and printed as a share of the step. Not a benchmark (no
 * reference, nothing recorded): the breakdown bench/NOTES.md's attempts start from.
 *
 *   node --import tsx bench/profile-step.ts [--backend wasm] [--batch 8] [--steps 2] [--channels 64,128,256] [--size 256]
 */
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../models/engine.js';
import { Adam } from '../models/train/adam.js';
import { trainStep } from '../models/train/step.js';
import { benchModelAndFeatures } from './synthetic.js';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'wasm' },
    batch: { type: 'string', default: '8' },
    steps: { type: 'string', default: '2' },
    channels: { type: 'string', default: '64,128,256' },
    size: { type: 'string', default: '256' },
  },
});
const batch = Number(values.batch);
const steps = Number(values.steps);
const channels = values.channels!.split(',').map(Number);
const inputSize = Number(values.size);
const scaleFactors = [4, 8, 16];

await initEngine({ backend: values.backend });
const { model, feats } = benchModelAndFeatures({ inputSize, channels, scaleFactors, flowSteps: 4, batch });
const adam = new Adam(model.trainableVariables(), { lr: 1e-3, weightDecay: 1e-5 });
trainStep(model, feats, adam); // warm-up

const perKernel = new Map<string, { ms: number; calls: number; bytes: number }>();
let wall = 0;
for (let s = 0; s < steps; s++) {
  const t0 = performance.now();
  const info = await tf.profile(() => {
    trainStep(model, feats, adam);
  });
  wall += performance.now() - t0;
  for (const k of info.kernels) {
    const e = perKernel.get(k.name) ?? { ms: 0, calls: 0, bytes: 0 };
    e.ms += typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    e.calls += 1;
    e.bytes += k.bytesAdded > 0 ? k.bytesAdded : 0;
    perKernel.set(k.name, e);
  }
}
// tf.customGrad ops (conv2dSame, the permutations) are profiled as 'unnamed scope' with the time of
// the kernels they run, which are also listed on their own: left out of the total.
const SCOPE = 'unnamed scope';
const total = [...perKernel.entries()].filter(([n]) => n !== SCOPE).reduce((a, [, e]) => a + e.ms, 0);
const rows = [...perKernel.entries()].sort((a, b) => b[1].ms - a[1].ms);
console.log(`U-Flow training step on ${values.backend}: features ${channels.map((c, i) => `${c}@${inputSize / scaleFactors[i]!}²`).join(', ')}, batch ${batch}, ${steps} profiled steps, load ${loadavg()[0]!.toFixed(1)}`);
console.log(`wall ${(wall / steps).toFixed(0)} ms/step under the profiler; kernel time ${(total / steps).toFixed(0)} ms/step (the rest: JS, autodiff bookkeeping, profiler; '${SCOPE}' rows are custom-gradient ops whose kernels are counted on their own rows, not in the total)`);
console.log('kernel'.padEnd(24) + 'ms/step'.padStart(10) + 'share'.padStart(8) + 'calls/step'.padStart(12) + 'MB out/step'.padStart(13));
const memoryMoves = new Set(['Slice', 'SplitV', 'Concat', 'Pad', 'Transpose', 'Reshape', 'Identity', 'Cast', 'Reverse', 'StridedSlice', 'GatherV2', 'Tile']);
let moves = 0;
for (const [name, e] of rows) {
  if (memoryMoves.has(name)) moves += e.ms;
  console.log(
    name.padEnd(24) +
      (e.ms / steps).toFixed(1).padStart(10) +
      `${((100 * e.ms) / total).toFixed(1)}%`.padStart(8) +
      String(Math.round(e.calls / steps)).padStart(12) +
      (e.bytes / steps / 1e6).toFixed(1).padStart(13),
  );
}
console.log(`memory moves (${[...memoryMoves].filter((n) => perKernel.has(n)).join(', ')}): ${((100 * moves) / total).toFixed(1)}% of kernel time`);
adam.dispose();
tf.dispose(feats);
model.dispose();
