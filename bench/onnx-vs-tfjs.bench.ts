/**
 * Inference per image on onnxruntime-node (the model exported in memory, CPU provider unless
 * UFLOW_ORT_PROVIDERS says otherwise) against tfjs, on the same model in the same process: backbone
 * + feature normalisation + flow + anomaly map at the evaluation size (256² for a square input, else
 * the longer side 256), read back (what predict runs before the
 * NFA; the NFA is the same TypeScript for both). Batch 1, medians after warm-up; the ratio is
 * tfjs time / onnx time.
 *
 * The default model is U-Flow on resnet18 (random weights of its real shapes: the time does not depend
 * on them) at 256², beside the same work in PyTorch (bench/reference/inference.py: torchvision
 * resnet18 to layer3, the same flow and map) where /usr/bin/python3 has torch and torchvision: the
 * issue-13 inference target (≤ 1.5× PyTorch CPU).
 *
 *   node --import tsx bench/onnx-vs-tfjs.bench.ts [--model uflow|fastflow] [--backbone resnet18|builtin:filters|…]
 *        [--input-size 256|96x128] [--steps 10] [--warmup 2] [--backend wasm]
 *        [--train-dir DIR --run RUN_ID]   # a trained run's checkpoint instead of a fresh model
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine, describeEngine } from '../models/engine.js';
import { createExtractor, type FeatureExtractor } from '../models/backbones/index.js';
import { createModel, type AnomalyModel, type ModelKind } from '../models/model-factory.js';
import { inferenceFor } from '../server/onnx-engine.js';
import { pickRun } from '../server/job-common.js';
import { buildExtractor, loadCheckpointChecked, predictorCheckpoint } from '../server/run-model.js';
import { evaluationSize, formatSize, parseSize, toHW } from '../models/size.js';
import { record, type Reference } from './report.js';
import { PYTHON, TORCH_DEVICE, torchWhat } from './python.js';
import { resnet18StateDict } from '../test/helpers/resnet-weights.js';
import { median } from './stats.js';

const args = process.argv.slice(2);
const str = (name: string, dflt: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
};
const num = (name: string, dflt: number): number => Number(str(name, String(dflt)));
const steps = num('steps', 10);
const warmup = num('warmup', 2);

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
  const backbone = str('backbone', 'resnet18');
  const random = backbone === 'resnet18' && !args.includes('--weights');
  extractor = await createExtractor({ backbone, inputSize: parseSize(str('input-size', '256')), ...(random ? { weights: resnet18StateDict() } : {}) });
  model = createModel(kind, {}, extractor, { seed: 0 });
  what = `fresh ${kind} on ${backbone}${random ? ' (random weights)' : ''} at ${formatSize(extractor.inputSize)} px`;
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
/** PyTorch's time for the same work (U-Flow on resnet18, square input), or why there is none. */
function torchReference(): { ms: number; what: string } | string {
  const kind = str('model', 'uflow');
  if (runId || kind !== 'uflow' || str('backbone', 'resnet18') !== 'resnet18' || H !== W) return 'PyTorch reference only for the default model (fresh U-Flow on resnet18, square input)';
  const probe = spawnSync(PYTHON, ['-c', 'import torch, torchvision'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return `PyTorch reference unavailable (${PYTHON} cannot import torch and torchvision)`;
  const script = join(dirname(fileURLToPath(import.meta.url)), 'reference', 'inference.py');
  const flowSteps = (model.config as { flowSteps?: number }).flowSteps ?? 4;
  const r = spawnSync(PYTHON, [script, '--input-size', String(H), '--flow-steps', String(flowSteps), '--warmup', String(warmup), '--steps', String(steps), '--threads', '2', '--device', TORCH_DEVICE], { encoding: 'utf8' });
  if (r.status !== 0) return `PyTorch reference unavailable (inference.py failed: ${r.stderr.trim().split('\n').pop()})`;
  const o = JSON.parse(r.stdout.trim().split('\n').pop()!);
  return { ms: o.ms_per_image, what: torchWhat(o.torch, o.threads) };
}
const torch = torchReference();
if (typeof torch === 'string') console.log(torch);
else console.log(`${torch.what}: ${torch.ms.toFixed(1)} ms per image; ratio onnxruntime / PyTorch ×${(onnxMs / torch.ms).toFixed(2)}, tfjs / PyTorch ×${(tfjsMs / torch.ms).toFixed(2)}`);
const torchRef: Reference | null = typeof torch === 'string' ? null : { value: torch.ms, unit: 'ms', what: torch.what };
record({
  name: `inference per image, ${what}, backbone + flow + ${T[0]}×${T[1]} map, batch 1`,
  ours: { value: onnxMs, unit: 'ms' },
  reference: torchRef,
  target: torchRef ? 'inference' : undefined,
  backend: `onnxruntime-node ${session.providers.join(', ')}`,
});
record({
  name: `inference per image on the fallback engine, ${what}, backbone + flow + ${T[0]}×${T[1]} map, batch 1`,
  ours: { value: tfjsMs, unit: 'ms' },
  reference: torchRef,
  backend: `tfjs ${engine.backend}`,
});
record({
  name: `onnxruntime against tfjs, ${what}, backbone + flow + ${T[0]}×${T[1]} map, batch 1`,
  ours: { value: onnxMs, unit: 'ms' },
  reference: { value: tfjsMs, unit: 'ms', what: `tfjs ${engine.backend} (the same model; the fallback engine)` },
  backend: `onnxruntime-node ${session.providers.join(', ')}`,
});
await session.release();
model.dispose();
extractor.dispose();
