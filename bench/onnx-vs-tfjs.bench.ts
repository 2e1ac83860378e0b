/**
 * Inference per image on onnxruntime-node (the model exported in memory, CPU provider unless
 * UFLOW_ORT_PROVIDERS says otherwise) against tfjs, on the same model in the same process: backbone
 * + feature normalisation + flow + anomaly map at the evaluation size (256² for a square input, else
 * the longer side 256), read back (what predict runs before the
 * NFA; the NFA is the same TypeScript for both). Batch 1, medians after warm-up; the ratio is
 * tfjs time / onnx time.
 *
 *   node --import tsx bench/onnx-vs-tfjs.bench.ts [--model uflow|fastflow] [--backbone builtin:filters]
 *        [--input-size 256|96x128] [--steps 10] [--warmup 2] [--backend wasm]
 *        [--train-dir DIR --run RUN_ID]   # a trained run's checkpoint instead of a fresh model
 */
import * as tf from '@tensorflow/tfjs-core';
import { initEngine, describeEngine } from '../models/engine.js';
import { createExtractor, type FeatureExtractor } from '../models/backbones/index.js';
import { createModel, type AnomalyModel, type ModelKind } from '../models/model-factory.js';
import { inferenceFor } from '../server/onnx-engine.js';
import { pickRun } from '../server/job-common.js';
import { buildExtractor, loadCheckpointChecked, predictorCheckpoint } from '../server/run-model.js';
import { evaluationSize, formatSize, parseSize, toHW } from '../models/size.js';
import { record } from './report.js';

const args = process.argv.slice(2);
const str = (name: string, dflt: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
};
const num = (name: string, dflt: number): number => Number(str(name, String(dflt)));
const steps = num('steps', 10);
const warmup = num('warmup', 2);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

const engine = await initEngine({ backend: str('backend', process.env.UFLOW_BACKEND ?? 'wasm') });
console.log(describeEngine(engine));
let extractor: FeatureExtractor;
let model: AnomalyModel;
let what: string;
const runId = str('run', '');
if (runId) {
  const run = pickRun(str('train-dir', '.uflow'), runId);
  extractor = await buildExtractor(run.config, undefined, () => {});
  model = loadCheckpointChecked(predictorCheckpoint(run), extractor).model;
  what = `run ${run.runId} (${run.model}, ${run.config.model.backbone}, ${formatSize(run.config.model.input_size)} px)`;
} else {
  const kind = str('model', 'uflow') as ModelKind;
  const backbone = str('backbone', 'builtin:filters');
  extractor = await createExtractor({ backbone, inputSize: parseSize(str('input-size', '256')) });
  model = createModel(kind, {}, extractor, { seed: 0 });
  what = `fresh ${kind} on ${backbone} at ${formatSize(extractor.inputSize)} px`;
}
const [H, W] = toHW(model.config.inputSize);
const T = evaluationSize([H, W]);
const image = new Float32Array(H * W * 3);
for (let i = 0; i < image.length; i++) image[i] = ((i * 2654435761) % 1000) / 1000;

const { session, info } = await inferenceFor(model, { mapSize: T, engine: 'onnx', warn: (l) => console.log(`note: ${l}`) });
if (!session) {
  console.log(`onnx not available: ${info.reason}`);
  process.exit(1);
}
const tfjsMs = await timed(async () => {
  const out = tf.tidy(() => {
    const { z } = model.forward(tf.tensor4d(image, [1, H, W, 3]));
    return [...z, model.anomalyMap(z, T)];
  });
  await Promise.all(out.map((t) => t.data()));
  tf.dispose(out);
});
const onnxMs = await timed(async () => {
  await session.run(image, 1);
});
console.log(`${what}, batch 1, ${warmup} warm-up + ${steps} timed (median); latents and the ${T[0]}×${T[1]} map read back, NFA excluded`);
console.log(`inference per image: tfjs (${engine.backend}) ${tfjsMs.toFixed(1)} ms, onnxruntime-node (${session.providers.join(', ')}) ${onnxMs.toFixed(1)} ms, ratio tfjs/onnx ×${(tfjsMs / onnxMs).toFixed(2)}`);
record({
  name: `inference per image, ${what}, backbone + flow + ${T[0]}×${T[1]} map, batch 1`,
  ours: { value: onnxMs, unit: 'ms' },
  reference: { value: tfjsMs, unit: 'ms', what: `tfjs ${engine.backend} (the same model; the fallback engine)` },
  backend: `onnxruntime-node ${session.providers.join(', ')}`,
});
await session.release();
model.dispose();
extractor.dispose();
