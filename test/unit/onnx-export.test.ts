// ONNX export of the models (models/export) run in onnxruntime-node (CPU) against the tfjs path,
// on image files (the demo generator's textures with defects, or UFLOW_EXPORT_IMAGES: a folder of
// PNGs such as an MVTec category's test/<defect>), for each supported model and backbone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initEngine } from '../../models/engine.js';
import { TfjsLayersExtractor } from '../../models/backbones/tfjs-layers.js';
import { reduceChannels } from '../../models/backbones/channel-select.js';
import type { UFlowModel } from '../../models/uflow-model.js';
import type { FastFlowModel } from '../../models/fastflow-model.js';
import { createExtractor } from '../../models/backbones/index.js';
import type { FeatureExtractor } from '../../models/backbones/types.js';
import { createModel, type ModelKind } from '../../models/model-factory.js';
import { exportOnnx, ExportUnsupportedError, unsupportedReason } from '../../models/export/onnx-export.js';
import { readModelInfo } from '../../models/export/graph.js';
import { generateDemoDataset } from '../../models/data/demo-dataset.js';
import { loadImageForModel } from '../../models/data/images.js';
import { evaluationSize, type HW, type SizeInput } from '../../models/size.js';
import { compareOutputs, runOnnx, runTfjs } from '../helpers/onnx.js';
import { resnetStateDict } from '../helpers/resnet-weights.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const weightsDir = resolve(repoRoot, process.env.UFLOW_WEIGHTS_DIR ?? join('..', 'shared', 'weights'));
const mobilenetDir = join(weightsDir, 'mobilenet_v2_035_imagenet');
const noMobilenet = existsSync(join(mobilenetDir, 'model.json'))
  ? undefined
  : `MobileNetV2 weights not found at ${mobilenetDir}: set UFLOW_WEIGHTS_DIR to the folder holding mobilenet_v2_035_imagenet/ to run this test`;
let tmp: string;
let imageFiles: string[];

before(async () => {
  await initEngine({ backend: process.env.UFLOW_TEST_BACKEND ?? 'wasm' });
  tmp = mkdtempSync(join(tmpdir(), 'uflow-onnx-'));
  const dir = process.env.UFLOW_EXPORT_IMAGES ?? join(generateDemoDataset(tmp, { size: 64, seed: 11, counts: { train: 2, testGood: 1, defects: { hole: 1, scratch: 1, stain: 1 } } }), 'test');
  const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : /\.png$/i.test(e.name) ? [join(d, e.name)] : []));
  imageFiles = walk(dir).sort().slice(0, 3);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

async function images(S: HW): Promise<Float32Array> {
  const n = S[0] * S[1] * 3;
  const out = new Float32Array(imageFiles.length * n);
  for (let i = 0; i < imageFiles.length; i++) out.set((await loadImageForModel(imageFiles[i]!, S)).data, i * n);
  return out;
}

/** A fresh model; its LayerNorm (if any) gets random weights so that their layout is checked too. */
async function roundTrip(kind: ModelKind, ex: FeatureExtractor, flowSteps: number, T: SizeInput = 256) {
  const model = createModel(kind, { flow_steps: flowSteps }, ex, { seed: 7 });
  const norm = (model as UFlowModel | FastFlowModel).norm;
  if (norm) {
    tf.tidy(() => {
      norm.weights.forEach((w, i) => w.assign(tf.randomUniform(w.shape, 0.5, 1.5, 'float32', 10 + i)));
      norm.biases.forEach((b, i) => b.assign(tf.randomUniform(b.shape, -0.2, 0.2, 'float32', 20 + i)));
    });
  }
  try {
    const S = ex.inputSize;
    const built = exportOnnx(model, { mapSize: T, producerVersion: 'test', metadata: { run_id: 'r1' } });
    const x = await images(S);
    const B = imageFiles.length;
    const ref = runTfjs(model, x, B, S, T);
    const got = await runOnnx(built.bytes, x, B, S, ex.channels.length);
    return { built, diffs: compareOutputs(got, ref), ref };
  } finally {
    model.dispose();
  }
}

for (const kind of ['uflow', 'fastflow'] as const) {
  test(`${kind} on builtin:filters: ONNX latents, map and score match tfjs`, async () => {
    const ex = await createExtractor({ backbone: 'builtin:filters', inputSize: 64 });
    try {
      const { built, diffs } = await roundTrip(kind, ex, 2);
      console.log(`  ${kind} builtin:filters 64 px, ${imageFiles.length} images: max |Δ| latents ${diffs.latents.toExponential(2)}, map ${diffs.map.toExponential(2)}, score ${diffs.score.toExponential(2)}`);
      assert.ok(diffs.latents <= 1e-4, `latents differ by ${diffs.latents}`);
      assert.ok(diffs.map <= 1e-5, `maps differ by ${diffs.map}`);
      assert.ok(diffs.score <= 1e-5, `scores differ by ${diffs.score}`);
      const info = readModelInfo(built.bytes);
      assert.equal(info.opset, 13);
      assert.equal(info.metadata.model, kind);
      assert.equal(info.metadata.input_size, '64');
      assert.equal(info.metadata.backbone, 'builtin:filters');
      assert.equal(info.metadata.run_id, 'r1');
      assert.deepEqual(JSON.parse(info.metadata.map_range!), kind === 'uflow' ? [0, 1] : [-1, 0]);
    } finally {
      ex.dispose();
    }
  });
}

for (const kind of ['uflow', 'fastflow'] as const) {
  test(`${kind} on builtin:filters at a non-square size (48×64): the graph's input, latents and map are [h, w]`, async () => {
    const ex = await createExtractor({ backbone: 'builtin:filters', inputSize: [48, 64] });
    try {
      const T = evaluationSize([48, 64]);
      const { built, diffs, ref } = await roundTrip(kind, ex, 2, T);
      console.log(`  ${kind} builtin:filters 48×64, map ${T.join('×')}, ${imageFiles.length} images: max |Δ| latents ${diffs.latents.toExponential(2)}, map ${diffs.map.toExponential(2)}`);
      assert.deepEqual(T, [192, 256]);
      assert.equal(ref.map.length, imageFiles.length * 192 * 256);
      assert.ok(diffs.latents <= 1e-4, `latents differ by ${diffs.latents}`);
      assert.ok(diffs.map <= 1e-5, `maps differ by ${diffs.map}`);
      const info = readModelInfo(built.bytes);
      assert.equal(info.metadata.input_size, '[48,64]');
      assert.equal(info.metadata.map_size, '[192,256]');
      assert.deepEqual(built.inputs[0]!.shape, ['batch', 3, 48, 64]);
      assert.deepEqual(built.outputs.find((o) => o.name === 'anomaly_map')!.shape, ['batch', 1, 192, 256]);
    } finally {
      ex.dispose();
    }
  });
}

for (const kind of ['uflow', 'fastflow'] as const) {
  test(`${kind} on a tfjs:<dir> backbone (MobileNetV2 0.35) with a LayerNorm: ONNX matches tfjs`, { skip: noMobilenet }, async () => {
    const ex = await createExtractor({ backbone: `tfjs:${mobilenetDir}`, inputSize: 64 });
    try {
      const { built, diffs } = await roundTrip(kind, ex, 2);
      console.log(`  ${kind} tfjs MobileNetV2 64 px, ${imageFiles.length} images: max |Δ| latents ${diffs.latents.toExponential(2)}, map ${diffs.map.toExponential(2)}, score ${diffs.score.toExponential(2)}`);
      assert.ok(diffs.latents <= 1e-4, `latents differ by ${diffs.latents}`);
      assert.ok(diffs.map <= 1e-5, `maps differ by ${diffs.map}`);
      const info = readModelInfo(built.bytes);
      assert.match(info.metadata.input_normalisation!, /mapped linearly onto \[-1, 1\]/);
      assert.ok((info.ops.get('BatchNormalization') ?? 0) > 0 && (info.ops.get('Clip') ?? 0) > 0);
    } finally {
      ex.dispose();
    }
  });
}

/** The toy model's level sizes at 64×64 (strides 4, 8, 16). */
const TOY_LEVELS: HW[] = [[16, 16], [8, 8], [4, 4]];

/** A small functional Keras model with the layers MobileNetV2 does not use (ResNet-50's: biased and strided 'same' convs, max pooling, Activation, Concatenate), random weights. */
function kerasToy(extra?: (x: tfl.SymbolicTensor) => tfl.SymbolicTensor): tfl.LayersModel {
  const init = (seed: number) => tfl.initializers.randomUniform({ minval: -0.3, maxval: 0.3, seed });
  const input = tfl.input({ shape: [64, 64, 3] });
  let x = tfl.layers.zeroPadding2d({ padding: [[1, 2], [2, 1]] }).apply(input) as tfl.SymbolicTensor;
  x = tfl.layers.conv2d({ filters: 6, kernelSize: 4, kernelInitializer: init(11), biasInitializer: init(12), name: 'c0' }).apply(x) as tfl.SymbolicTensor; // 67 → 64, 'valid'
  x = tfl.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', kernelInitializer: init(1), biasInitializer: init(2), name: 'c1' }).apply(x) as tfl.SymbolicTensor; // TF pads 0 before, 1 after
  x = tfl.layers.batchNormalization({ epsilon: 1e-3, gammaInitializer: init(3), betaInitializer: init(4), movingMeanInitializer: init(5), movingVarianceInitializer: tfl.initializers.ones(), name: 'bn1' }).apply(x) as tfl.SymbolicTensor;
  x = tfl.layers.activation({ activation: 'relu', name: 'a1' }).apply(x) as tfl.SymbolicTensor;
  const tap1 = tfl.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'tap1' }).apply(x) as tfl.SymbolicTensor; // stride 4
  const y = tfl.layers.conv2d({ filters: 8, kernelSize: 1, strides: 2, activation: 'relu', kernelInitializer: init(6), biasInitializer: init(7), name: 'c2' }).apply(tap1) as tfl.SymbolicTensor;
  const z = tfl.layers.averagePooling2d({ poolSize: 3, strides: 2, padding: 'same', name: 'p2' }).apply(tap1) as tfl.SymbolicTensor;
  let tap2 = tfl.layers.concatenate({ name: 'tap2' }).apply([y, z]) as tfl.SymbolicTensor; // stride 8, 16 channels
  if (extra) tap2 = extra(tap2);
  const w = tfl.layers.depthwiseConv2d({ kernelSize: 3, strides: 2, padding: 'same', depthMultiplier: 2, useBias: true, depthwiseInitializer: init(8), biasInitializer: init(9), name: 'd3' }).apply(tap2) as tfl.SymbolicTensor;
  const tap3 = tfl.layers.add({ name: 'tap3' }).apply([w, tfl.layers.reLU({ maxValue: 6, name: 'r3' }).apply(w) as tfl.SymbolicTensor]) as tfl.SymbolicTensor; // stride 16, 32 channels
  return tfl.model({ inputs: input, outputs: [tap1, tap2, tap3] });
}

test('tfjs backbone layers beyond MobileNetV2 (strided same convs with bias, pooling, Activation, Concatenate, caffe input): ONNX matches tfjs', async () => {
  const ex = new TfjsLayersExtractor('tfjs:toy', [64, 64], ['tap1', 'tap2', 'tap3'], [0, 1], [8, 16, 32], [4, 8, 16], kerasToy(), 'caffe', TOY_LEVELS);
  try {
    const { built, diffs } = await roundTrip('uflow', ex, 1);
    console.log(`  uflow on a toy Keras model (caffe input): max |Δ| latents ${diffs.latents.toExponential(2)}, map ${diffs.map.toExponential(2)}`);
    assert.ok(diffs.latents <= 1e-4, `latents differ by ${diffs.latents}`);
    assert.ok(diffs.map <= 1e-5, `maps differ by ${diffs.map}`);
    assert.match(readModelInfo(built.bytes).metadata.input_normalisation!, /caffe/);
  } finally {
    ex.dispose();
  }
});

test('a channel-reduced backbone (a random subset per level after the taps): ONNX keeps the same channels as tfjs', async () => {
  const inner = new TfjsLayersExtractor('tfjs:toy', [64, 64], ['tap1', 'tap2', 'tap3'], [0, 1], [8, 16, 32], [4, 8, 16], kerasToy(), 'caffe', TOY_LEVELS);
  const ex = reduceChannels(inner, { keep: [3, 9, 12], method: 'random', seed: 4 });
  try {
    assert.deepEqual(ex.channels, [3, 9, 12]);
    const { built, diffs } = await roundTrip('uflow', ex, 1);
    console.log(`  uflow on a toy Keras model reduced to 3/9/12 channels: max |Δ| latents ${diffs.latents.toExponential(2)}, map ${diffs.map.toExponential(2)}`);
    assert.ok(diffs.latents <= 1e-4, `latents differ by ${diffs.latents}`);
    assert.ok(diffs.map <= 1e-5, `maps differ by ${diffs.map}`);
    assert.match(readModelInfo(built.bytes).metadata.input_normalisation!, /random channel subset \(seed 4\) keeps 3\/9\/12 of its 8\/16\/32 channels/);
  } finally {
    ex.dispose();
  }
});

test('a Keras layer without an exporter is refused in one sentence naming it', () => {
  const model = kerasToy((x) => tfl.layers.upSampling2d({ size: [1, 1], name: 'odd_one' }).apply(x) as tfl.SymbolicTensor);
  const ex = new TfjsLayersExtractor('tfjs:toy', [64, 64], ['tap1', 'tap2', 'tap3'], [0, 1], [8, 16, 32], [4, 8, 16], model, 'range', TOY_LEVELS);
  const m = createModel('uflow', { flow_steps: 1 }, ex);
  try {
    assert.match(unsupportedReason(m) ?? '', /^ONNX export does not support the Keras layer 'odd_one' \(UpSampling2D\) of this tfjs backbone yet \(supported: [^)]*\)\.$/);
  } finally {
    m.dispose();
    ex.dispose();
  }
});

const RESNETS = [
  // resnet18: its real shapes (layers 1–3, 2.8 M parameters); wide_resnet50_2: its real widths (128/256/512 inside, 256/512/1024 out) with one block per stage instead of 3/4/6
  { name: 'resnet18', sd: () => resnetStateDict('basic', [2, 2, 2], [64, 128, 256], (p) => p, 5) },
  { name: 'wide_resnet50_2', sd: () => resnetStateDict('bottleneck', [1, 1, 1], [64, 128, 256], (p) => 2 * p, 6) },
] as const;

for (const r of RESNETS) {
  for (const kind of ['uflow', 'fastflow'] as const) {
    test(`${kind} on ${r.name} (random weights) with its LayerNorm: ONNX matches tfjs`, async () => {
      const ex = await createExtractor({ backbone: r.name, inputSize: 64, weights: r.sd() });
      try {
        const { diffs, ref } = await roundTrip(kind, ex, 1);
        const zMax = Math.max(...ref.z.map((z) => z.reduce((m, v) => Math.max(m, Math.abs(v)), 0)));
        console.log(`  ${kind} ${r.name} 64 px, ${imageFiles.length} images: max |Δ| latents ${diffs.latents.toExponential(2)} (max |z| ${zMax.toFixed(1)}), map ${diffs.map.toExponential(2)}, score ${diffs.score.toExponential(2)}`);
        // wide_resnet50_2's 1×1/3×3 convs sum up to 4608 products: with these random weights its
        // features (up to ~40) differ between onnxruntime and tfjs wasm by ~5e-5, as much as tfjs's own
        // cpu and wasm backends differ from each other, and the latents by ~1.5e-5 of their range.
        const tol = r.name === 'wide_resnet50_2' ? 2e-5 * zMax : 1e-4;
        assert.ok(diffs.latents <= tol, `latents differ by ${diffs.latents} (tolerance ${tol})`);
        assert.ok(diffs.map <= 1e-5, `maps differ by ${diffs.map}`);
      } finally {
        ex.dispose();
      }
    });
  }
}

test('what is not supported is refused with one sentence naming it', () => {
  const fake = { name: 'cait', inputSize: [64, 64], featureSizes: TOY_LEVELS, channels: [64, 128, 256], scaleFactors: [4, 8, 16], layerNormLevels: true, extract: () => [], dispose: () => {} } as unknown as FeatureExtractor;
  const model = createModel('uflow', { flow_steps: 1 }, fake);
  try {
    const why = unsupportedReason(model);
    assert.match(why ?? '', /^ONNX export does not support the backbone 'cait' yet \(supported: builtin:filters, tfjs:<dir>, mobilenet_v2, resnet18, wide_resnet50_2, resnet50\)\.$/);
    assert.throws(() => exportOnnx(model, { mapSize: 256, producerVersion: 'test' }), (e: unknown) => e instanceof ExportUnsupportedError && e.message === why);
  } finally {
    model.dispose();
  }
});
