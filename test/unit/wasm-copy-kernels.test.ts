import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
// registers core's gradients (tfjs-core's Node bundle has none)
import '@tensorflow/tfjs-layers';
import { initEngine } from '../../models/engine.js';
import { mulberry32 } from '../../models/flows/rng.js';

const MARK = Symbol.for('uflow.wasmCopyKernel');

function data(n: number, seed: number, dtype: 'float32' | 'int32'): Float32Array | Int32Array {
  const rng = mulberry32(seed);
  if (dtype === 'int32') return Int32Array.from({ length: n }, () => Math.floor(rng() * 2 ** 31) - 2 ** 30);
  return Float32Array.from({ length: n }, () => rng() * 2 - 1);
}

/** The box [begin, begin + size) of a row-major array, by index arithmetic. */
function naiveSlice(x: ArrayLike<number>, shape: number[], begin: number[], size: number[]): number[] {
  const out: number[] = [];
  const strides = shape.map((_, a) => shape.slice(a + 1).reduce((p, s) => p * s, 1));
  const n = size.reduce((p, s) => p * s, 1);
  for (let i = 0; i < n; i++) {
    let rest = i;
    let off = 0;
    for (let a = shape.length - 1; a >= 0; a--) {
      const c = rest % size[a]!;
      rest = Math.floor(rest / size[a]!);
      off += (begin[a]! + c) * strides[a]!;
    }
    out.push(x[off]!);
  }
  return out;
}

const sliceCases: Array<{ shape: number[]; begin: number[]; size: number[] }> = [
  { shape: [10], begin: [3], size: [5] },
  { shape: [4, 7], begin: [1, 2], size: [2, 4] },
  { shape: [2, 5, 6, 64], begin: [0, 0, 0, 0], size: [2, 5, 6, 32] }, // the coupling's x1 (short rows)
  { shape: [2, 5, 6, 64], begin: [0, 0, 0, 32], size: [2, 5, 6, 32] }, // its x2
  { shape: [3, 2, 9, 34], begin: [0, 0, 1, 2], size: [3, 2, 7, 30] }, // a filter-gradient tap (rows of 30 ≥ the loop cutoff)
  { shape: [3, 2, 9, 10], begin: [0, 0, 2, 0], size: [3, 2, 7, 8] }, // a tap with short rows
  { shape: [4, 3, 5, 6], begin: [1, 0, 0, 0], size: [2, 3, 5, 6] }, // contiguous
  { shape: [2, 3, 4, 5, 6], begin: [1, 1, 0, 2, 1], size: [1, 2, 4, 3, 5] }, // rank 5
  { shape: [3, 4], begin: [1, 1], size: [0, 2] }, // empty
];

test('wasm: initEngine replaces Slice, SplitV, Concat, GatherV2, Identity and Cast with ours', async () => {
  await initEngine({ backend: 'wasm' });
  for (const name of ['Slice', 'SplitV', 'Concat', 'GatherV2', 'Identity', 'Cast']) {
    const k = tf.getKernel(name, 'wasm');
    assert.ok(k && (k.kernelFunc as unknown as Record<symbol, boolean>)[MARK], `${name} is the stock kernel`);
  }
});

for (const dtype of ['float32', 'int32'] as const) {
  test(`wasm Slice (${dtype}) copies exactly the box asked for, rank 1–5, short and long rows`, async () => {
    await initEngine({ backend: 'wasm' });
    sliceCases.forEach(({ shape, begin, size }, i) => {
      const xs = data(shape.reduce((p, s) => p * s, 1), 10 + i, dtype);
      const x = tf.tensor(xs, shape, dtype);
      const y = tf.slice(x, begin, size);
      assert.deepEqual(y.shape, size);
      assert.deepEqual(Array.from(y.dataSync()), naiveSlice(xs, shape, begin, size), `case ${i}: ${JSON.stringify({ shape, begin, size })}`);
      tf.dispose([x, y]);
    });
  });
}

test('wasm Slice keeps NaN payloads and -0 (a byte copy, not arithmetic)', async () => {
  await initEngine({ backend: 'wasm' });
  const bits = new Uint32Array([0x7fc00001, 0x80000000, 0xffc01234, 0x3f800000, 0x7f800000, 0x00000001]);
  const x = tf.tensor(new Float32Array(bits.buffer), [2, 3]);
  const y = tf.slice(x, [0, 1], [2, 2]);
  assert.deepEqual(Array.from(new Uint32Array(y.dataSync().buffer)), [0x80000000, 0xffc01234, 0x7f800000, 0x00000001]);
  tf.dispose([x, y]);
});

test('wasm SplitV and Concat: channel splits round-trip, uneven sizes, every axis', async () => {
  await initEngine({ backend: 'wasm' });
  const shape = [2, 3, 4, 10];
  const xs = data(240, 99, 'float32');
  const x = tf.tensor(xs, shape);
  for (let axis = 0; axis < 4; axis++) {
    const n = shape[axis]!;
    const sizes = n === 2 ? [1, 1] : [1, n - 3, 2];
    const parts = tf.split(x, sizes, axis);
    let at = 0;
    parts.forEach((p, i) => {
      const begin = [0, 0, 0, 0];
      begin[axis] = at;
      const size = [...shape];
      size[axis] = sizes[i]!;
      assert.deepEqual(Array.from(p.dataSync()), naiveSlice(xs, shape, begin, size), `split axis ${axis} part ${i}`);
      at += sizes[i]!;
    });
    const back = tf.concat(parts, axis);
    assert.deepEqual(Array.from(back.dataSync()), Array.from(xs), `concat axis ${axis}`);
    tf.dispose([...parts, back]);
  }
  // a concat with an empty part, and of int32
  const e = tf.concat([tf.zeros([2, 0]), tf.ones([2, 3])], 1);
  assert.deepEqual(Array.from(e.dataSync()), [1, 1, 1, 1, 1, 1]);
  const ints = tf.concat([tf.tensor([[1, 2]], [1, 2], 'int32'), tf.tensor([[3]], [1, 1], 'int32')], 1);
  assert.equal(ints.dtype, 'int32');
  assert.deepEqual(Array.from(ints.dataSync()), [1, 2, 3]);
  tf.dispose([x, e, ints]);
});

test('wasm Slice and Concat of bool go to the stock kernels and stay right', async () => {
  await initEngine({ backend: 'wasm' });
  const b = tf.tensor([true, false, true, true, false, false], [2, 3], 'bool');
  assert.deepEqual(Array.from(tf.slice(b, [0, 1], [2, 2]).dataSync()), [0, 1, 0, 0]);
  assert.deepEqual(Array.from(tf.concat([b, b], 0).dataSync()), [1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 0]);
});

test('wasm: gradients through slice and concat are unchanged (a coupling-like graph)', async () => {
  await initEngine({ backend: 'wasm' });
  const x = tf.tensor(data(2 * 3 * 3 * 6, 5, 'float32'), [2, 3, 3, 6]);
  const f = (v: tf.Tensor) => {
    const a = tf.slice(v, [0, 0, 0, 0], [2, 3, 3, 3]);
    const b = tf.slice(v, [0, 0, 0, 3], [2, 3, 3, 3]);
    return tf.sum(tf.mul(tf.concat([tf.mul(a, 2), tf.exp(b)], 3), tf.concat([b, a], 3)));
  };
  const g = tf.grad(f)(x).dataSync();
  await initEngine({ backend: 'cpu' });
  const xc = tf.tensor(Array.from(x.dataSync()), [2, 3, 3, 6]);
  const gc = tf.grad(f)(xc).dataSync();
  for (let i = 0; i < g.length; i++) assert.ok(Math.abs(g[i]! - gc[i]!) <= 1e-5 * (1 + Math.abs(gc[i]!)), `grad ${i}: ${g[i]} vs ${gc[i]}`);
});

test('wasm GatherV2 on the last axis: a channel permutation or selection, exact; other axes and bad indices as before', async () => {
  await initEngine({ backend: 'wasm' });
  for (const dtype of ['float32', 'int32'] as const) {
    const shape = [2, 3, 4, 7];
    const xs = data(168, 3, dtype);
    const x = tf.tensor(xs, shape, dtype);
    const perm = [6, 0, 5, 1, 4, 2, 3];
    const sel = [2, 2, 0];
    for (const idx of [perm, sel]) {
      const y = tf.gather(x, tf.tensor1d(idx, 'int32'), 3);
      assert.deepEqual(y.shape, [2, 3, 4, idx.length]);
      const want: number[] = [];
      for (let o = 0; o < 24; o++) for (const i of idx) want.push(xs[o * 7 + i]!);
      assert.deepEqual(Array.from(y.dataSync()), want, `${dtype} ${JSON.stringify(idx)}`);
    }
    // axis 1 (stock kernel)
    const y1 = tf.gather(x, tf.tensor1d([2, 0], 'int32'), 1);
    assert.deepEqual(Array.from(y1.dataSync()), [...naiveSlice(xs, shape, [0, 2, 0, 0], [1, 1, 4, 7]), ...naiveSlice(xs, shape, [0, 0, 0, 0], [1, 1, 4, 7]), ...naiveSlice(xs, shape, [1, 2, 0, 0], [1, 1, 4, 7]), ...naiveSlice(xs, shape, [1, 0, 0, 0], [1, 1, 4, 7])]);
  }
  assert.throws(() => tf.gather(tf.ones([2, 3]), tf.tensor1d([0, 3], 'int32'), 1), /index value 3 is not in \[0, 2\]/);
});

test('wasm Identity and same-dtype Cast share the data instead of copying it; disposal and variables stay right', async () => {
  await initEngine({ backend: 'wasm' });
  const buffers = () => tf.backend().numDataIds();
  const before = buffers();
  const x = tf.tensor(data(1000, 7, 'float32'), [10, 100]);
  const want = Array.from(x.dataSync());
  const c = tf.clone(x); // Identity
  const k = tf.cast(x, 'float32');
  assert.ok(c.dataId === x.dataId && k.dataId === x.dataId, 'the clone and the cast share the data of x');
  assert.equal(buffers() - before, 1, 'one buffer for the three tensors');
  x.dispose();
  assert.deepEqual(Array.from(c.dataSync()), want, 'the clone outlives its source');
  c.dispose();
  assert.deepEqual(Array.from(k.dataSync()), want);
  k.dispose();
  assert.equal(buffers(), before, 'the shared data is freed with its last tensor');
  // a variable assigned after a clone of it was taken: the clone keeps the old values
  const v = tf.variable(tf.tensor1d([1, 2, 3]));
  const snap = tf.clone(v);
  v.assign(tf.tensor1d([7, 8, 9]));
  assert.deepEqual(Array.from(snap.dataSync()), [1, 2, 3]);
  assert.deepEqual(Array.from(v.dataSync()), [7, 8, 9]);
  // a real conversion still converts
  const b = tf.cast(tf.tensor1d([0.6, -1.7, 0]), 'int32');
  assert.equal(b.dtype, 'int32');
  assert.deepEqual(Array.from(b.dataSync()), [0, -1, 0]);
  assert.deepEqual(Array.from(tf.cast(tf.tensor1d([true, false], 'bool'), 'float32').dataSync()), [1, 0]);
  tf.dispose([snap, v, b]);
});
