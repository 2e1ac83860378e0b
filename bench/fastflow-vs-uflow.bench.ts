/**
 * FastFlow vs U-Flow on the same cached features: training throughput (forward + backward + Adam,
 * images/s) and inference time (norm + flow + anomaly map at the input size, ms/image; the NFA is
 * left out: it is the same code for both and depends on the latents' sizes only), side by side.
 *
 * Feature sets (input 256, strides 4/8/16, each with the trainable LayerNorm):
 *   mobilenet — the offline MobileNetV2-0.35 taps: 8@64², 16@32², 32@16²
 *   resnet18  — ResNet-18 layer1..3: 64@64², 128@32², 256@16²
 * Models: U-Flow with its default 4 flow steps; FastFlow with anomalib's defaults (8 steps, 1×1
 * subnets on odd steps, hidden ratio 1.0). Random features; timings are medians after warm-up.
 *
 *   node --import tsx bench/fastflow-vs-uflow.bench.ts [--sets mobilenet,resnet18] [--batch 8]
 *        [--steps 3] [--warmup 1] [--backend wasm] [--uflow-steps 4] [--fastflow-steps 8] [--conv3x3-only]
 */
import * as tf from '@tensorflow/tfjs-core';
import { initEngine, describeEngine } from '../models/engine.js';
import { createModel, type AnomalyModel, type ExtractorInfo, type ModelKind } from '../models/model-factory.js';
import { Adam } from '../models/train/adam.js';
import { trainStep } from '../models/train/step.js';
import { mulberry32 } from '../models/flows/rng.js';
import { record } from './report.js';
import { median } from './stats.js';

const args = process.argv.slice(2);
const str = (name: string, dflt: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
};
const num = (name: string, dflt: number): number => Number(str(name, String(dflt)));
const batch = num('batch', 8);
const steps = num('steps', 3);
const warmup = num('warmup', 1);
const backend = str('backend', process.env.UFLOW_BACKEND ?? 'wasm');
const sets = str('sets', 'mobilenet,resnet18').split(',');
const uflowSteps = num('uflow-steps', 4);
const fastflowSteps = num('fastflow-steps', 8);
const conv3x3Only = args.includes('--conv3x3-only');

const FEATURE_SETS: Record<string, ExtractorInfo> = {
  mobilenet: { name: 'mobilenet_v2_035 (8@64², 16@32², 32@16²)', inputSize: [256, 256], featureSizes: [[64, 64], [32, 32], [16, 16]], channels: [8, 16, 32], scaleFactors: [4, 8, 16], layerNormLevels: true },
  resnet18: { name: 'resnet18 (64@64², 128@32², 256@16²)', inputSize: [256, 256], featureSizes: [[64, 64], [32, 32], [16, 16]], channels: [64, 128, 256], scaleFactors: [4, 8, 16], layerNormLevels: true },
};

function randomFeatures(model: AnomalyModel, info: ExtractorInfo, seed: number): tf.Tensor4D[] {
  const rng = mulberry32(seed);
  return model.featureSizes().map(([h, w], i) => {
    const c = info.channels[i]!;
    const d = new Float32Array(batch * h * w * c);
    for (let j = 0; j < d.length; j++) d[j] = (rng() + rng() + rng() - 1.5) * 2;
    return tf.tensor4d(d, [batch, h, w, c]);
  });
}

interface Row {
  set: string;
  model: string;
  params: number;
  trainMsPerStep: number;
  trainImagesPerSecond: number;
  inferMsPerImage: number;
  loss0: number;
  lossN: number;
}

function paramCount(m: AnomalyModel): number {
  return m.trainableVariables().reduce((s, v) => s + v.variable.size, 0);
}

async function benchOne(setName: string, info: ExtractorInfo, kind: ModelKind): Promise<Row> {
  const settings = kind === 'fastflow' ? { flow_steps: fastflowSteps, hidden_ratio: 1.0, conv3x3_only: conv3x3Only } : { flow_steps: uflowSteps };
  const model = createModel(kind, settings, info, { seed: 0 });
  const feats = randomFeatures(model, info, 1);
  try {
    // inference: norm + flow + map at the input size, read back (what prediction does, minus NFA)
    const infer = () => {
      const t0 = performance.now();
      const map = tf.tidy(() => model.anomalyMap(model.fromFeatures(feats).z, info.inputSize));
      map.dataSync();
      map.dispose();
      return performance.now() - t0;
    };
    for (let i = 0; i < warmup; i++) infer();
    const inferTimes = Array.from({ length: steps }, infer);
    // training
    const adam = new Adam(model.trainableVariables(), { lr: 1e-3, weightDecay: 1e-5 });
    const losses: number[] = [];
    for (let i = 0; i < warmup; i++) losses.push(trainStep(model, feats, adam));
    const times: number[] = [];
    for (let i = 0; i < steps; i++) {
      const t0 = performance.now();
      losses.push(trainStep(model, feats, adam));
      times.push(performance.now() - t0);
    }
    adam.dispose();
    const ms = median(times);
    const name = kind === 'fastflow' ? `FastFlow ${fastflowSteps} steps${conv3x3Only ? ' 3×3' : ''}` : `U-Flow ${uflowSteps} steps`;
    return { set: setName, model: name, params: paramCount(model), trainMsPerStep: ms, trainImagesPerSecond: (1000 * batch) / ms, inferMsPerImage: median(inferTimes) / batch, loss0: losses[0]!, lossN: losses[losses.length - 1]! };
  } finally {
    tf.dispose(feats);
    model.dispose();
  }
}

const engine = await initEngine({ backend });
console.log(`${describeEngine(engine)}`);
console.log(`batch ${batch}, ${warmup} warm-up + ${steps} timed steps (median)\n`);
const rows: Row[] = [];
for (const s of sets) {
  const info = FEATURE_SETS[s];
  if (!info) throw new Error(`unknown feature set '${s}': choose from ${Object.keys(FEATURE_SETS).join(', ')}`);
  for (const kind of ['uflow', 'fastflow'] as const) {
    const r = await benchOne(s, info, kind);
    rows.push(r);
    console.log(`  done: ${s} ${r.model} (${r.trainMsPerStep.toFixed(0)} ms/step)`);
  }
}
const pad = (x: string, n: number) => x.padEnd(n);
const lpad = (x: string, n: number) => x.padStart(n);
console.log(`\n${pad('features', 11)}${pad('model', 24)}${lpad('params', 10)}${lpad('train ms/step', 15)}${lpad('train img/s', 13)}${lpad('infer ms/img', 14)}   loss first→last`);
for (const r of rows) {
  console.log(
    `${pad(r.set, 11)}${pad(r.model, 24)}${lpad(r.params.toLocaleString('en-US'), 10)}${lpad(r.trainMsPerStep.toFixed(0), 15)}${lpad(r.trainImagesPerSecond.toFixed(2), 13)}${lpad(r.inferMsPerImage.toFixed(1), 14)}   ${r.loss0.toFixed(0)} → ${r.lossN.toFixed(0)}`,
  );
}
for (const s of sets) {
  const u = rows.find((r) => r.set === s && r.model.startsWith('U-Flow'));
  const f = rows.find((r) => r.set === s && r.model.startsWith('FastFlow'));
  if (u && f) console.log(`${s}: FastFlow/U-Flow training time ×${(f.trainMsPerStep / u.trainMsPerStep).toFixed(2)}, inference ×${(f.inferMsPerImage / u.inferMsPerImage).toFixed(2)}`);
}

// Figures for bench/results.json (npm run bench): U-Flow alone, FastFlow beside U-Flow on the same features.
for (const r of rows) {
  const u = r.model.startsWith('FastFlow') ? rows.find((x) => x.set === r.set && x.model.startsWith('U-Flow')) : undefined;
  const b = `tfjs ${engine.backend}`;
  record({ name: `${r.model} training step, ${r.set} features, batch ${batch}`, ours: { value: r.trainMsPerStep, unit: 'ms' }, reference: u ? { value: u.trainMsPerStep, unit: 'ms', what: `${u.model}, same features` } : null, backend: b, note: `${r.trainImagesPerSecond.toFixed(2)} images/s, ${r.params} parameters` });
  record({ name: `${r.model} inference per image (flow + map, no backbone), ${r.set} features`, ours: { value: r.inferMsPerImage, unit: 'ms' }, reference: u ? { value: u.inferMsPerImage, unit: 'ms', what: `${u.model}, same features` } : null, backend: b });
}
