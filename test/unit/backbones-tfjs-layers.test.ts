// TensorFlow.js layers models as backbones, on the offline MobileNetV2 (0.35) weights
// (UFLOW_WEIGHTS_DIR, default ../shared/weights relative to the repo root).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { initEngine } from '../../models/engine.js';
import { caffePreprocess, createTfjsLayersExtractor, loadLayersModelFromDir, MOBILENET_V2_TAPS, prepareTopology, readLayersModelDir } from '../../models/backbones/tfjs-layers.js';
import { assertClose } from '../helpers/assert-close.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const weightsDir = resolve(repoRoot, process.env.UFLOW_WEIGHTS_DIR ?? join('..', 'shared', 'weights'));
const modelDir = join(weightsDir, 'mobilenet_v2_035_imagenet');
const skip = existsSync(join(modelDir, 'model.json'))
  ? undefined
  : `MobileNetV2 weights not found at ${modelDir}: set UFLOW_WEIGHTS_DIR to the folder holding mobilenet_v2_035_imagenet/ to run this test`;

/** A smooth, non-trivial test image in [0, 1]. */
function testImage(b: number, s: number): tf.Tensor4D {
  const data = new Float32Array(b * s * s * 3);
  for (let n = 0; n < b; n++)
    for (let y = 0; y < s; y++)
      for (let x = 0; x < s; x++)
        for (let c = 0; c < 3; c++) data[((n * s + y) * s + x) * 3 + c] = 0.5 + 0.45 * Math.sin((x * (c + 1) + y * (n + 2)) / 17 + c);
  return tf.tensor4d(data, [b, s, s, 3]);
}

for (const backend of ['wasm', 'cpu'] as const) {
  test(`MobileNetV2 taps at 256: shapes, determinism, equal to the full model's intermediates on ${backend}`, { skip }, async () => {
    await initEngine({ backend });
    const before = tf.memory().numTensors;
    const ex = await createTfjsLayersExtractor({ dir: modelDir, inputSize: 256 });
    assert.equal(ex.name, `tfjs:${modelDir}`);
    assert.deepEqual(ex.layers, [...MOBILENET_V2_TAPS]);
    assert.deepEqual(ex.inputRange, [-1, 1]);
    assert.deepEqual(ex.channels, [8, 16, 32]);
    assert.deepEqual(ex.scaleFactors, [4, 8, 16]);
    const img = testImage(2, 256);
    const a = ex.extract(img);
    const b = ex.extract(img);
    assert.deepEqual(a.map((t) => t.shape), [[2, 64, 64, 8], [2, 32, 32, 16], [2, 16, 16, 32]]);
    for (let i = 0; i < a.length; i++) {
      const da = a[i]!.dataSync();
      assert.ok(da.every(Number.isFinite), `level ${i} finite`);
      assert.deepEqual(da, b[i]!.dataSync(), `level ${i} deterministic`);
      let ss = 0;
      for (const v of da) ss += v * v;
      assert.ok(ss / da.length > 1e-4, `level ${i} is not all zeros (mean square ${ss / da.length})`);
    }
    // The unpruned model (all 150+ layers, input as exported but rebuilt at 256), with the taps
    // read as intermediate outputs, must give the same numbers.
    const full = await loadLayersModelFromDir(modelDir, { inputSize: 256 });
    assert.ok(full.layers.length > 100);
    // The weights really are the file's: Conv1/kernel is the first tensor of weights.bin.
    const files = readLayersModelDir(modelDir);
    assert.equal(files.weightSpecs[0]!.name, 'Conv1/kernel');
    const kernel = full.getLayer('Conv1').getWeights()[0]!;
    assert.deepEqual(kernel.dataSync(), new Float32Array(files.weightData, 0, 3 * 3 * 3 * 16));
    const probe = tfl.model({
      inputs: full.inputs,
      outputs: [...MOBILENET_V2_TAPS.map((n) => full.getLayer(n).output as tfl.SymbolicTensor), full.outputs[0]!],
    });
    const ref = tf.tidy(() => probe.predict(tf.sub(tf.mul(img, 2), 1)) as tf.Tensor[]);
    assert.deepEqual(ref[3]!.shape, [2, 8, 8, 1280]);
    for (let i = 0; i < 3; i++) assertClose(a[i]!.dataSync(), ref[i]!.dataSync(), { rtol: 1e-6, atol: 1e-6, what: `tap ${MOBILENET_V2_TAPS[i]}` });
    tf.dispose([img, ...a, ...b, ...ref]);
    full.dispose();
    ex.dispose();
    assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
  });
}

test('explicit taps and input range, and clear errors', { skip }, async () => {
  await initEngine({ backend: 'wasm' });
  const ex = await createTfjsLayersExtractor({ dir: modelDir, inputSize: 128, layers: ['block_5_add', 'block_12_add'], inputRange: [0, 1] });
  assert.deepEqual(ex.channels, [16, 32]);
  assert.deepEqual(ex.scaleFactors, [8, 16]);
  const img = testImage(1, 128);
  const outs = ex.extract(img);
  assert.deepEqual(outs.map((t) => t.shape), [[1, 16, 16, 16], [1, 8, 8, 32]]);
  assert.throws(() => ex.extract(testImage(1, 64)), /images must be \[B, 128, 128, 3\]/);
  tf.dispose([img, ...outs]);
  ex.dispose();
  await assert.rejects(createTfjsLayersExtractor({ dir: modelDir, inputSize: 128, layers: ['block_2_add', 'nope'] }), /no layer named 'nope'/);
  await assert.rejects(createTfjsLayersExtractor({ dir: modelDir, inputSize: 128, layers: ['block_12_add', 'block_2_add'] }), /finest first/);
  await assert.rejects(createTfjsLayersExtractor({ dir: join(modelDir, 'missing'), inputSize: 128 }), /no TensorFlow.js layers model at .*model\.json/);
});

test('pruning keeps only the ancestors of the taps', { skip }, () => {
  const files = readLayersModelDir(modelDir);
  const { topology, keptLayers } = prepareTopology(files.json.modelTopology, { inputSize: 96, outputs: ['block_2_add'] });
  assert.ok(keptLayers!.has('input_1') && keptLayers!.has('Conv1') && keptLayers!.has('block_2_add'));
  assert.ok(!keptLayers!.has('block_3_expand'));
  assert.deepEqual(topology.config.output_layers, [['block_2_add', 0, 0]]);
  assert.deepEqual(topology.config.layers[0].config.batch_input_shape, [null, 96, 96, 3]);
});

test('Keras "caffe" preprocessing: 0–255, RGB → BGR, ImageNet means subtracted', async () => {
  await initEngine({ backend: 'cpu' });
  const x = tf.tensor4d([1, 0.5, 0, 0, 0, 0], [1, 1, 2, 3]);
  const y = caffePreprocess(x);
  assertClose(await y.data(), [0 - 103.939, 127.5 - 116.779, 255 - 123.68, -103.939, -116.779, -123.68], { atol: 1e-3, what: 'caffe' });
  tf.dispose([x, y]);
});
