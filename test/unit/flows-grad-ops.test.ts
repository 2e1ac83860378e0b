import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { conv2dSame, permutationMatrix, permuteChannels, permuteChannelsMatMul, sumPerSample } from '../../models/ops/grad-ops.js';
import { assertClose } from '../helpers/assert-close.js';
import { mulberry32 } from '../../models/flows/rng.js';

function randn(shape: number[], seed: number): tf.Tensor {
  const rng = mulberry32(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = rng() * 2 - 1;
  return tf.tensor(d, shape);
}

for (const k of [1, 3, 5]) {
  test(`conv2dSame k=${k}: value and gradients equal tf's stock conv2d on cpu`, async () => {
    await initEngine({ backend: 'cpu' });
    const x = randn([2, 7, 5, 3], 1 + k) as tf.Tensor4D;
    const f = randn([k, k, 3, 4], 2 + k) as tf.Tensor4D;
    const b = randn([4], 3 + k) as tf.Tensor1D;
    const dy = randn([2, 7, 5, 4], 4 + k);
    const mine = tf.grads((a, w, c) => tf.mul(conv2dSame(a as tf.Tensor4D, w as tf.Tensor4D, c as tf.Tensor1D), dy));
    const stock = tf.grads((a, w, c) => tf.mul(tf.add(tf.conv2d(a as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'), c), dy));
    const gm = mine([x, f, b]);
    const gs = stock([x, f, b]);
    assertClose(conv2dSame(x, f, b).dataSync(), tf.add(tf.conv2d(x, f, 1, 'same'), b).dataSync(), { rtol: 1e-6, atol: 1e-6, what: 'value' });
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(gm[i]!.shape, gs[i]!.shape);
      assertClose(gm[i]!.dataSync(), gs[i]!.dataSync(), { rtol: 1e-5, atol: 1e-5, what: ['dx', 'dW', 'db'][i] });
    }
    // a wrong rotation would fail this: the gradient must not be symmetric by accident
    if (k > 1) assert.ok(Math.abs(gm[0]!.dataSync()[0]! - gm[0]!.dataSync()[1]!) > 1e-6);
  });
}

test('conv2dSame rejects even kernels', async () => {
  await initEngine({ backend: 'cpu' });
  assert.throws(() => conv2dSame(tf.zeros([1, 4, 4, 1]) as tf.Tensor4D, tf.zeros([2, 2, 1, 1]) as tf.Tensor4D, tf.zeros([1]) as tf.Tensor1D), /odd square kernels/);
});

test('permuteChannels: value and gradient equal tf.gather on cpu', async () => {
  await initEngine({ backend: 'cpu' });
  const permArr = [3, 0, 4, 1, 2];
  const inv = new Array<number>(5);
  permArr.forEach((p, i) => (inv[p] = i));
  const perm = tf.tensor1d(permArr, 'int32');
  const invPerm = tf.tensor1d(inv, 'int32');
  const x = randn([2, 3, 2, 5], 9);
  const dy = randn([2, 3, 2, 5], 10);
  const gm = tf.grad((a) => tf.mul(permuteChannels(a, perm, invPerm), dy))(x);
  const gs = tf.grad((a) => tf.mul(tf.gather(a, perm, 3), dy))(x);
  assert.deepEqual(Array.from(permuteChannels(x, perm, invPerm).dataSync()), Array.from(tf.gather(x, perm, 3).dataSync()));
  assert.deepEqual(Array.from(gm.dataSync()), Array.from(gs.dataSync()));
});

test('custom-grad ops train on wasm (no missing kernels) and match cpu', async () => {
  const run = () => {
    const x = randn([2, 6, 6, 3], 11) as tf.Tensor4D;
    const f = randn([3, 3, 3, 4], 12) as tf.Tensor4D;
    const b = randn([4], 13) as tf.Tensor1D;
    const perm = tf.tensor1d([2, 0, 3, 1], 'int32');
    const inv = tf.tensor1d([1, 3, 0, 2], 'int32');
    const g = tf.grads((a, w, c) => tf.sum(tf.square(permuteChannels(conv2dSame(a as tf.Tensor4D, w as tf.Tensor4D, c as tf.Tensor1D), perm, inv))));
    return g([x, f, b]).map((t) => Float32Array.from(t.dataSync()));
  };
  await initEngine({ backend: 'wasm' });
  const w = run();
  await initEngine({ backend: 'cpu' });
  const c = run();
  for (let i = 0; i < 3; i++) assertClose(w[i]!, c[i]!, { rtol: 1e-4, atol: 1e-4, what: `grad ${i}` });
});

test('sumPerSample reduces per sample', async () => {
  for (const backend of ['wasm', 'cpu']) {
    await initEngine({ backend });
    const x = tf.ones([3, 4, 5, 6]);
    assert.deepEqual(Array.from(sumPerSample(x).dataSync()), [120, 120, 120]);
  }
});

test('permuteChannelsMatMul is bit-identical to the gather, value and gradient, on wasm and cpu', async () => {
  for (const backend of ['wasm', 'cpu']) {
    await initEngine({ backend });
    const permArr = [3, 0, 4, 1, 2, 6, 5];
    const inv = new Array<number>(permArr.length);
    permArr.forEach((p, i) => (inv[p] = i));
    const x = randn([2, 3, 4, 7], 21);
    const dy = randn([2, 3, 4, 7], 22);
    const pm = permutationMatrix(permArr);
    const pmInv = permutationMatrix(inv);
    const y = permuteChannelsMatMul(x, pm, pmInv);
    assert.deepEqual(Array.from(y.dataSync()), Array.from(tf.gather(x, tf.tensor1d(permArr, 'int32'), 3).dataSync()), backend);
    const g = tf.grad((a) => tf.mul(permuteChannelsMatMul(a, pm, pmInv), dy))(x);
    assert.deepEqual(Array.from(g.dataSync()), Array.from(tf.gather(dy, tf.tensor1d(inv, 'int32'), 3).dataSync()), `${backend} gradient`);
  }
});
