/**
 * The paper's configuration executed at full size on this machine's engine: U-Flow on MS-CaiT 448
 * (cait_m48_448 with 41 of its 48 blocks + cait_s24_224 with 21 of 24) and the 4-step flow, with
 * random weights of the released shapes (no download).
 *
 * 1. writes a synthetic released checkpoint (Lightning .ckpt, 1.6 GB, test/helpers/released-mscait.ts)
 *    and opens it as `uflow predict --checkpoint` does (Predictor.openFile);
 * 2. features of `--images` 448² images (the MS-CaiT forward, ~330 GFLOPs each);
 * 3. one training step on those cached features (batch = --images, official loss, Adam);
 * 4. `--eval` evaluations (Predictor.predict: features, flow, anomaly map 256², tree NFA, PNGs).
 * Each prints wall and CPU seconds per image, the peak tfjs memory (tf.profile) and the process's
 * peak RSS so far. Then the same forward and training step in PyTorch (bench/reference/
 * mscait_full.py and train_step.py, one thread as our wasm backend is) with the ratios, and the
 * figures line for server/paper-cost.ts (what `uflow doctor` scales).
 *
 *   node --import tsx bench/mscait-full.bench.ts [--images 2] [--eval 1] [--backend wasm] [--torch-images 1] [--no-torch]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../models/engine.js';
import type { FeatureExtractor } from '../models/backbones/index.js';
import type { AnomalyModel } from '../models/model-factory.js';
import { Adam } from '../models/train/adam.js';
import { trainStep } from '../models/train/step.js';
import { loadImageForModel } from '../models/data/images.js';
import { Predictor } from '../server/predict.js';
import { probeGflops, type PaperCostFigures } from '../server/paper-cost.js';
import { writeReleasedCheckpoint } from '../test/helpers/released-mscait.js';
import { record } from './report.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : dflt;
};
const nImages = Number(arg('images', '2'));
const nEval = Number(arg('eval', '1'));
const backend = arg('backend', 'wasm');
const torchImages = Number(arg('torch-images', '1'));
const withTorch = !args.includes('--no-torch');

const mib = (b: number) => b / 2 ** 20;
const peakRssMiB = () => process.resourceUsage().maxRSS / 1024;
const load = () => loadavg().map((l) => l.toFixed(1)).join(' ');

interface Phase {
  wallS: number;
  cpuS: number;
  tfPeakMiB: number;
  rssMiB: number;
}

/** Runs `f` under tf.profile: wall and process CPU seconds, peak tfjs bytes, peak RSS so far. */
async function measure<T>(f: () => Promise<T> | T): Promise<{ value: T; phase: Phase }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  let value!: T;
  const prof = await tf.profile(async () => {
    value = await f();
    return [] as tf.Tensor[];
  });
  const wallS = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { value, phase: { wallS, cpuS: (c.user + c.system) / 1e6, tfPeakMiB: mib(prof.peakBytes), rssMiB: peakRssMiB() } };
}

const show = (what: string, p: Phase, per = 1) =>
  console.log(
    `${what.padEnd(34)} ${(p.wallS / per).toFixed(1).padStart(7)} s wall/image  ${(p.cpuS / per).toFixed(1).padStart(7)} s CPU/image  tfjs peak ${p.tfPeakMiB.toFixed(0).padStart(6)} MiB  peak RSS so far ${p.rssMiB.toFixed(0).padStart(6)} MiB`,
  );

function python(script: string, pyArgs: string[]): Record<string, unknown> | string {
  const py = '/usr/bin/python3';
  const probe = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return `PyTorch reference unavailable (${py} -c 'import torch' failed)`;
  const r = spawnSync(py, [join(dirname(fileURLToPath(import.meta.url)), 'reference', script), ...pyArgs], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) return `PyTorch reference failed (${script}: ${r.stderr.trim().split('\n').pop()})`;
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
}

console.log(`MS-CaiT 448 (cait_m48_448 ×41 blocks + cait_s24_224 ×21) + 4-step U-Flow, random weights of the released shapes`);
console.log(`load average before: ${load()} on ${availableParallelism()} cores (wall times inflate when other processes share the cores; CPU times much less)`);
const engine = await initEngine({ backend });
console.log(`engine: ${engine.backend} (${engine.device})`);
const gflops = await probeGflops();
console.log(`probe: ${gflops.toFixed(2)} GFLOP/s (784×768·768×2304 matMul, server/paper-cost.ts)`);

const dir = mkdtempSync(join(tmpdir(), 'uflow-mscait-bench-'));
try {
  const file = join(dir, 'bench.ckpt');
  const w = await measure(() => writeReleasedCheckpoint(file, 1));
  console.log(`synthetic released checkpoint: ${(w.value.bytes / 2 ** 30).toFixed(2)} GiB, ${w.value.entries.length} tensors, written in ${w.phase.wallS.toFixed(1)} s`);
  w.value.flow.dispose();

  const opened = await measure(() => Predictor.openFile(file));
  const p = opened.value;
  show('open (read .ckpt, build 41+21 blocks)', opened.phase);
  const { extractor, model } = (p as unknown as { tfjs: { extractor: FeatureExtractor; model: AnomalyModel } }).tfjs;
  console.log(`  tfjs holds ${mib(tf.memory().numBytes).toFixed(0)} MiB of weights; levels ${extractor.channels.map((c, i) => `${c}@${extractor.featureSizes[i]!.join('×')}`).join(', ')}`);

  // A few 448² images (smooth random patterns, as PNG files the predictor reads).
  const paths: string[] = [];
  for (let k = 0; k < Math.max(nImages, nEval); k++) {
    const px = Buffer.alloc(448 * 448 * 3);
    for (let i = 0; i < px.length; i++) px[i] = (128 + 100 * Math.sin(i * (0.001 + k * 0.0003)) + ((i * 7919) % 23)) & 255;
    const path = join(dir, `img${k}.png`);
    await sharp(px, { raw: { width: 448, height: 448, channels: 3 } }).png().toFile(path);
    paths.push(path);
  }
  const inputs = await Promise.all(paths.slice(0, nImages).map(async (q) => (await loadImageForModel(q, 448)).data));

  const feats = await measure(() => {
    const per = inputs.map((x) => extractor.extract(tf.tensor4d(x, [1, 448, 448, 3])));
    for (const f of per) for (const l of f) l.dataSync();
    const levels = per[0]!.map((_, s) => tf.concat(per.map((f) => f[s]!)) as tf.Tensor4D);
    tf.dispose(per);
    return levels;
  });
  show(`features (${nImages} image${nImages > 1 ? 's' : ''})`, feats.phase, nImages);

  const adam = new Adam(model.trainableVariables(), { lr: 1e-4, weightDecay: 1e-5 });
  const step = await measure(() => trainStep(model, feats.value, adam));
  show(`training step (batch ${nImages})`, step.phase, nImages);
  console.log(`  loss ${step.value.toFixed(1)}; one step = ${step.phase.wallS.toFixed(1)} s`);
  adam.dispose();
  tf.dispose(feats.value);

  const ev = await measure(async () => {
    const out = [];
    for (const q of paths.slice(0, nEval)) out.push(await p.predict(q));
    return out;
  });
  show(`evaluation (${nEval} image${nEval > 1 ? 's' : ''}: map + NFA)`, ev.phase, nEval);
  console.log(`  score ${ev.value[0]!.score.toFixed(4)}, max −log10 NFA ${ev.value[0]!.maxNegLogNfa.toFixed(2)}, map ${(ev.value[0]!.mapShape ?? []).join('×')}`);
  p.dispose();

  let torchLine = '';
  let torchFeatures: number | undefined;
  let torchStep: number | undefined;
  if (withTorch) {
    const f = python('mscait_full.py', ['--images', String(torchImages), '--threads', '1']);
    const t = python('train_step.py', ['--channels', '768,384', '--sizes', '28,14', '--flow-steps', '4', '--batch', String(nImages), '--layer-norm', '0', '--warmup', '1', '--steps', '2', '--threads', '1', '--input-size', '256']);
    if (typeof f === 'string') console.log(f);
    else {
      const s = f.s_per_image as number;
      const cs = f.cpu_s_per_image as number;
      console.log(`PyTorch ${f.torch} CPU, ${f.threads} thread: features ${s.toFixed(1)} s wall/image, ${cs.toFixed(1)} s CPU, peak RSS ${(f.peak_rss_mib as number).toFixed(0)} MiB`);
      console.log(`  its GEMM: BLAS ${f.blas}, ${(f.gemm_gflops as number).toFixed(1)} GFLOP/s on the probe's product (ours ${gflops.toFixed(1)}): the ratio below measures this build, not PyTorch with MKL`);
      console.log(`ratio features tfjs ${backend} / PyTorch: ${(feats.phase.wallS / nImages / s).toFixed(2)}× wall, ${(feats.phase.cpuS / nImages / cs).toFixed(2)}× CPU`);
      torchLine += `torch features ${cs.toFixed(1)} s CPU/image; `;
      torchFeatures = s;
    }
    if (typeof t === 'string') console.log(t);
    else {
      const ms = t.ms_per_step as number;
      const cms = t.cpu_ms_per_step as number;
      console.log(`PyTorch training step (batch ${nImages}, flow only): ${(ms / 1000).toFixed(2)} s wall, ${(cms / 1000).toFixed(2)} s CPU`);
      console.log(`ratio training step tfjs ${backend} / PyTorch: ${(step.phase.wallS / (ms / 1000)).toFixed(2)}× wall, ${(step.phase.cpuS / (cms / 1000)).toFixed(2)}× CPU`);
      torchLine += `torch step ${(cms / 1000).toFixed(2)} s CPU`;
      torchStep = ms / 1000;
    }
  }
  // CPU seconds are what the machine would spend unloaded (one thread): the figures doctor scales.
  const figures: PaperCostFigures = {
    measured: `npm run bench -- mscait-full, ${availableParallelism()} cores, ${engine.backend}, load ${load()}${torchLine ? `; ${torchLine}` : ''}`,
    backend: engine.backend,
    featuresSecPerImage: +(feats.phase.cpuS / nImages).toFixed(1),
    trainSecPerImage: +(step.phase.cpuS / nImages).toFixed(2),
    evalSecPerImage: +(ev.phase.cpuS / nEval).toFixed(1),
    peakRssGiB: +(peakRssMiB() / 1024).toFixed(2),
    probeGflops: +gflops.toFixed(2),
  };
  console.log(`figures for server/paper-cost.ts: ${JSON.stringify(figures)}`);
  const be = `tfjs ${engine.backend}, one thread`;
  const torchWhat = 'PyTorch 1.13 CPU, one thread (Debian build, generic BLAS)';
  record({
    name: 'MS-CaiT 448 features (cait_m48_448 ×41 + cait_s24_224 ×21), per image',
    ours: { value: +(feats.phase.wallS / nImages).toFixed(2), unit: 's' },
    reference: torchFeatures !== undefined ? { value: +torchFeatures.toFixed(2), unit: 's', what: torchWhat } : null,
    backend: be,
    note: `peak RSS ${figures.peakRssGiB} GiB`,
  });
  record({
    name: `MS-CaiT 448 U-Flow training step, flow 816@28² + 192@14², 4 steps, batch ${nImages}`,
    ours: { value: +step.phase.wallS.toFixed(2), unit: 's' },
    reference: torchStep !== undefined ? { value: +torchStep.toFixed(2), unit: 's', what: torchWhat } : null,
    backend: be,
  });
  record({
    name: 'MS-CaiT 448 evaluation per image (features, flow, map 256², tree NFA, PNGs)',
    ours: { value: +(ev.phase.wallS / nEval).toFixed(2), unit: 's' },
    reference: null,
    backend: be,
  });
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`load average after: ${load()}`);
