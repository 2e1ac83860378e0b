/**
 * Any image shape (issue 12, item 3): sizes as [h, w], the CLI / config spellings, level sizes by
 * PyTorch's floor rules for odd sizes, U-Flow's nesting check, evaluation sizes and mask resizing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convOut, evaluationSize, formatSize, parseSize, ruleLevelSizes, sizeForConfig, toHW, uflowNestingProblem, uflowSizeError } from '../../models/size.js';
import { resnetLevelSize } from '../../models/backbones/resnet.js';
import { createBuiltinExtractor } from '../../models/backbones/builtin.js';
import { nominalStride } from '../../models/backbones/tfjs-layers.js';
import { levelSizes } from '../../models/backbones/types.js';
import { resizeMask } from '../../models/data/images.js';
import { loadConfig } from '../../server/config.js';
import { FastFlowModel } from '../../models/fastflow-model.js';
import { UFlowModel } from '../../models/uflow-model.js';
import { initEngine } from '../../models/engine.js';
import * as tf from '@tensorflow/tfjs-core';

test('sizes: an integer is square; [h, w] pairs; CLI spellings; configs write squares as one integer', () => {
  assert.deepEqual(toHW(128), [128, 128]);
  assert.deepEqual(toHW([96, 128]), [96, 128]);
  assert.throws(() => toHW([96]), /input size must be a positive integer or \[height, width\]/);
  assert.throws(() => toHW(0), /positive integer/);
  assert.throws(() => toHW([96, 1.5]), /positive integer/);
  for (const s of ['96x128', '96×128', '96,128', '96 x 128', '[96, 128]', '96X128']) assert.deepEqual(parseSize(s), [96, 128], s);
  assert.deepEqual(parseSize('128'), [128, 128]);
  assert.throws(() => parseSize('96by128'), /--input-size takes one integer \(square\) or height×width/);
  assert.throws(() => parseSize('0x5'), /positive/);
  assert.equal(sizeForConfig([128, 128]), 128);
  assert.deepEqual(sizeForConfig([96, 128]), [96, 128]);
  assert.equal(formatSize(96), '96');
  assert.equal(formatSize([96, 128]), '96×128');
});

test('level sizes follow PyTorch floor rules for odd sizes', () => {
  assert.equal(convOut(100, 7, 2, 3), 50);
  assert.equal(convOut(25, 3, 2, 1), 13);
  assert.equal(convOut(7, 3, 2, 1), 4);
  // ResNet: conv 7/2 p3, pool 3/2 p1, then 3/2 p1 per stage: ⌈n/2⌉ each step
  assert.deepEqual([1, 2, 3].map((l) => resnetLevelSize([100, 70], l)), [[25, 18], [13, 9], [7, 5]]);
  assert.deepEqual([1, 2, 3].map((l) => resnetLevelSize([97, 33], l)), [[25, 9], [13, 5], [7, 3]]);
  assert.deepEqual(ruleLevelSizes('ceil', [97, 33], [4, 8, 16]), [[25, 9], [13, 5], [7, 3]]);
  // builtin:filters: valid poolings, ⌊n/s⌋
  assert.deepEqual(ruleLevelSizes('floor', [100, 70], [4, 8, 16]), [[25, 17], [12, 8], [6, 4]]);
  // old configs (no recorded sizes): ⌊H/s⌋ × ⌊W/s⌋
  assert.deepEqual(levelSizes({ inputSize: 64, scaleFactors: [4, 8, 16] }), [[16, 16], [8, 8], [4, 4]]);
  assert.deepEqual(levelSizes({ inputSize: [48, 64], scaleFactors: [4, 8], levelSizes: [[12, 16], [6, 8]] }), [[12, 16], [6, 8]]);
  // tfjs: nominal strides of probed sizes
  assert.equal(nominalStride([100, 70], [13, 9]), 8);
  assert.equal(nominalStride([96, 128], [24, 32]), 4);
  assert.equal(nominalStride([99, 99], [33, 33]), 3);
});

test('builtin:filters takes any shape ≥ 32 a side and gives ⌊H/s⌋ × ⌊W/s⌋ maps', async () => {
  await initEngine({ backend: 'cpu' });
  const ex = createBuiltinExtractor('builtin:filters', [50, 75]);
  try {
    assert.deepEqual(ex.featureSizes, [[12, 18], [6, 9], [3, 4]]);
    const outs = ex.extract(tf.zeros([1, 50, 75, 3]) as tf.Tensor4D);
    assert.deepEqual(outs.map((o) => o.shape.slice(1, 3)), ex.featureSizes);
    tf.dispose(outs);
    assert.throws(() => ex.extract(tf.zeros([1, 75, 50, 3]) as tf.Tensor4D), /expected images \[B, 50, 75, 3\]/);
  } finally {
    ex.dispose();
  }
  assert.throws(() => createBuiltinExtractor('builtin:filters', [31, 64]), /at least 32 a side \(got 31×64\)/);
});

test('U-Flow needs nested levels (as the reference graph); FastFlow takes any levels', async () => {
  await initEngine({ backend: 'cpu' });
  assert.equal(uflowNestingProblem([[28, 20], [14, 10], [7, 5]]), undefined);
  assert.match(uflowNestingProblem([[25, 18], [13, 9], [7, 5]])!, /level 2 is 7×5, upsampled ×2 it is 14×10, but level 1 is 13×9/);
  assert.equal(uflowSizeError('resnet18', [110, 78], [4, 8, 16], [[28, 20], [14, 10], [7, 5]]), undefined);
  const base = { backbone: 'builtin:filters', channels: [8, 8, 16], scaleFactors: [4, 8, 16], flowSteps: 1, layerNorm: true };
  const sizes: Array<[number, number]> = [[25, 17], [12, 8], [6, 4]];
  assert.throws(() => new UFlowModel({ ...base, inputSize: [100, 70], levelSizes: sizes }), /U-Flow cannot use input size 100×70 with backbone builtin:filters: .*level 1 is 12×8, upsampled ×2 it is 24×16, but level 0 is 25×17.*Sizes that work near it: 99×67 or 112×80/);
  const ff = new FastFlowModel({ ...base, inputSize: [100, 70], levelSizes: sizes, conv3x3Only: false, hiddenRatio: 1 });
  try {
    const f = sizes.map(([h, w], i) => tf.randomNormal([1, h, w, base.channels[i]!]) as tf.Tensor4D);
    const { z } = ff.fromFeatures(f);
    const map = ff.anomalyMap(z, [100, 70]);
    assert.deepEqual(map.shape, [1, 100, 70, 1]);
    tf.dispose([...f, ...z, map]);
  } finally {
    ff.dispose();
  }
});

test('evaluation size: 256² for square inputs, else the aspect ratio with the longer side 256', () => {
  assert.deepEqual(evaluationSize(448), [256, 256]);
  assert.deepEqual(evaluationSize([96, 128]), [192, 256]);
  assert.deepEqual(evaluationSize([100, 70]), [256, 179]);
});

test('masks: PIL-resized to the input size, then torch-bilinear to the evaluation size, > 0.5', () => {
  // 4×4 mask with one defect pixel: at the input size 2×2 (PIL antialiased) its quarter is 64/255 < 0.5
  const m = new Uint8Array(16);
  m[5] = 1;
  assert.deepEqual([...resizeMask(m, 4, 4, [2, 2])], [0, 0, 0, 0]);
  // a 2×4 (h×w) block mask on the left half keeps its shape through 2×4 → 4×8
  const half = Uint8Array.from([1, 1, 0, 0, 1, 1, 0, 0]);
  const up = resizeMask(half, 4, 2, [2, 4], [4, 8]);
  assert.equal(up.length, 32);
  for (let y = 0; y < 4; y++) assert.deepEqual([...up.subarray(y * 8, y * 8 + 8)], [1, 1, 1, 1, 0, 0, 0, 0]);
});

test('configs: input_size [h, w] is read, a square pair becomes one integer, bad ones are refused', () => {
  const dir = mkdtempSync(join(tmpdir(), 'uflow-shape-cfg-'));
  try {
    const f = (name: string, text: string) => {
      const p = join(dir, name);
      writeFileSync(p, text);
      return p;
    };
    const c1 = loadConfig({ category: 'carpet', path: f('a.yaml', 'model:\n  backbone: builtin:filters\n  input_size: [96, 128]\n') });
    assert.deepEqual(c1.model.input_size, [96, 128]);
    const c2 = loadConfig({ category: 'carpet', path: f('b.yaml', 'model:\n  backbone: builtin:filters\n  input_size: [64, 64]\n') });
    assert.equal(c2.model.input_size, 64);
    const c3 = loadConfig({ category: 'carpet', overrides: { model: { backbone: 'resnet18', input_size: [110, 78] } } });
    assert.deepEqual(c3.model.input_size, [110, 78]);
    // FastFlow takes sizes U-Flow refuses
    const c4 = loadConfig({ category: 'carpet', model: 'fastflow', overrides: { model: { backbone: 'resnet18', input_size: [100, 70] } } });
    assert.deepEqual(c4.model.input_size, [100, 70]);
    assert.throws(() => loadConfig({ category: 'carpet', path: f('c.yaml', 'model:\n  input_size: [96, 128, 3]\n') }), /model.input_size must be a positive integer or \[height, width\] \(two positive integers\)/);
    assert.throws(() => loadConfig({ category: 'carpet', overrides: { model: { backbone: 'mcait', input_size: [448, 224] } } }), /must be 448 with backbone mcait .*got 448×224/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
