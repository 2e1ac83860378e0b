import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine, parseBackend } from '../../models/engine.js';

test('auto selection reports why the native backends were skipped', async () => {
  const saved = process.env.UFLOW_BACKEND;
  delete process.env.UFLOW_BACKEND;
  try {
    const info = await initEngine();
    assert.ok(['tensorflow-gpu', 'tensorflow', 'webgpu', 'wasm', 'cpu'].includes(info.backend));
    const order = ['tensorflow-gpu', 'tensorflow', 'webgpu', 'wasm', 'cpu'];
    assert.deepEqual(info.skipped.map((s) => s.backend), order.slice(0, order.indexOf(info.backend)));
    for (const s of info.skipped) assert.ok(s.why.length > 5, s.why);
  } finally {
    if (saved !== undefined) process.env.UFLOW_BACKEND = saved;
  }
});

test('a forced backend is used, an unknown one is a clear error', async () => {
  for (const b of ['wasm', 'cpu'] as const) {
    const info = await initEngine({ backend: b });
    assert.equal(info.backend, b);
    assert.equal(tf.getBackend(), b);
    assert.match(info.reason, /forced/);
    const y = tf.conv2d(tf.ones([1, 4, 4, 2]) as tf.Tensor4D, tf.ones([3, 3, 2, 1]) as tf.Tensor4D, 1, 'same');
    assert.equal((await y.data())[5], 18);
  }
  assert.throws(() => parseBackend('cuda'), /unknown backend 'cuda': choose one of/);
});
