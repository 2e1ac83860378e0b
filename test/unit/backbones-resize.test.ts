// PyTorch-exact resizes (models/ops/resize.ts) against independent references: tfjs's own
// bilinear kernels, a direct 4×4-tap bicubic, and PIL's antialias weights worked by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { antialiasBilinearMatrix, bicubicMatrix, resize, resizeAntialias, resizeBicubic, resizeBilinear } from '../../models/ops/resize.js';
import { assertClose } from '../helpers/assert-close.js';

function rand(n: number, seed = 1): Float32Array {
  let s = seed;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) % 2147483648;
    out[i] = (s / 2147483648) * 4 - 2;
  }
  return out;
}

/** PyTorch's bicubic written as loops over the 4×4 taps (upsample_bicubic2d), on NHWC data. */
function bicubicRef(x: Float32Array, [b, h, w, c]: number[], oh: number, ow: number, alignCorners: boolean): Float32Array {
  const A = -0.75;
  const k = (d: number) => {
    const t = Math.abs(d);
    return t <= 1 ? ((A + 2) * t - (A + 3)) * t * t + 1 : t < 2 ? ((A * t - 5 * A) * t + 8 * A) * t - 4 * A : 0;
  };
  const src = (o: number, inS: number, outS: number) => (alignCorners ? (outS > 1 ? (o * (inS - 1)) / (outS - 1) : 0) : (o + 0.5) * (inS / outS) - 0.5);
  const out = new Float32Array(b * oh * ow * c);
  for (let n = 0; n < b; n++)
    for (let oy = 0; oy < oh; oy++)
      for (let ox = 0; ox < ow; ox++)
        for (let ch = 0; ch < c; ch++) {
          const sy = src(oy, h, oh);
          const sx = src(ox, w, ow);
          const iy = Math.floor(sy);
          const ix = Math.floor(sx);
          let acc = 0;
          for (let dy = -1; dy <= 2; dy++)
            for (let dx = -1; dx <= 2; dx++) {
              const yy = Math.min(Math.max(iy + dy, 0), h - 1);
              const xx = Math.min(Math.max(ix + dx, 0), w - 1);
              acc += k(sy - (iy + dy)) * k(sx - (ix + dx)) * x[((n * h + yy) * w + xx) * c + ch]!;
            }
          out[((n * oh + oy) * ow + ox) * c + ch] = acc;
        }
  return out;
}

for (const backend of ['wasm', 'cpu'] as const) {
  test(`bilinear matches tfjs's half-pixel and align-corners kernels on ${backend}`, async () => {
    await initEngine({ backend });
    const before = tf.memory().numTensors;
    const x = tf.tensor4d(rand(2 * 7 * 9 * 3), [2, 7, 9, 3]);
    for (const size of [[14, 5], [3, 17], [7, 9], [1, 4]] as Array<[number, number]>) {
      for (const ac of [false, true]) {
        if (ac && (size[0] === 1 || size[1] === 1)) continue; // tf's align-corners differs for 1-pixel outputs
        const ours = resizeBilinear(x, size, ac);
        const ref = tf.image.resizeBilinear(x, size, ac, !ac);
        assert.deepEqual(ours.shape, [2, ...size, 3]);
        assertClose(ours.dataSync(), ref.dataSync(), { rtol: 1e-5, atol: 1e-5, what: `bilinear ${size} align_corners=${ac}` });
        tf.dispose([ours, ref]);
      }
    }
    x.dispose();
    assert.equal(tf.memory().numTensors, before);
  });

  test(`bicubic matches a direct 4×4-tap PyTorch formula on ${backend}`, async () => {
    await initEngine({ backend });
    const shape = [2, 10, 12, 3];
    const data = rand(2 * 10 * 12 * 3, 7);
    const x = tf.tensor4d(data, shape as [number, number, number, number]);
    for (const [oh, ow] of [[5, 6], [20, 7], [4, 4], [13, 25]]) {
      for (const ac of [true, false]) {
        const y = resizeBicubic(x, [oh!, ow!], ac);
        assertClose(y.dataSync(), bicubicRef(data, shape, oh!, ow!, ac), { rtol: 1e-5, atol: 1e-5, what: `bicubic ${oh}x${ow} ac=${ac}` });
        y.dispose();
      }
    }
    x.dispose();
  });
}

test('bicubic weights: rows sum to 1, end points exact with align_corners', () => {
  const m = bicubicMatrix(448, 224, true);
  for (let o = 0; o < 224; o++) {
    let s = 0;
    for (let i = 0; i < 448; i++) s += m[o * 448 + i]!;
    assert.ok(Math.abs(s - 1) < 1e-12);
  }
  assert.equal(m[0], 1);
  assert.equal(m[223 * 448 + 447], 1);
});

test('antialiased bilinear: PIL triangle weights (1,3,3,1)/8 for a 2× downscale, renormalised at the borders', () => {
  const m = antialiasBilinearMatrix(8, 4);
  const row = (o: number) => Array.from(m.subarray(o * 8, o * 8 + 8));
  // Output 0 (center 1.0): taps 0,1,2 with weights 0.75, 0.75, 0.25 → / 1.75.
  assertClose(row(0), [3 / 7, 3 / 7, 1 / 7, 0, 0, 0, 0, 0], { rtol: 1e-12, atol: 1e-12 });
  assertClose(row(1), [0, 1 / 8, 3 / 8, 3 / 8, 1 / 8, 0, 0, 0], { rtol: 1e-12, atol: 1e-12 });
  assertClose(row(3), [0, 0, 0, 0, 0, 1 / 7, 3 / 7, 3 / 7], { rtol: 1e-12, atol: 1e-12 });
  // A 4× downscale widens the support to 4 input pixels either side.
  const m4 = antialiasBilinearMatrix(16, 4);
  const r1 = Array.from(m4.subarray(16, 32));
  assert.equal(r1.filter((v) => v > 0).length, 8);
  assertClose(r1.slice(2, 10), [1, 3, 5, 7, 7, 5, 3, 1].map((v) => v / 32), { rtol: 1e-12, atol: 1e-12 });
});

test('antialiased resize keeps constants, equals plain bilinear when upscaling, and does not leak', async () => {
  await initEngine({ backend: 'cpu' });
  const before = tf.memory().numTensors;
  const c = tf.fill([1, 37, 50, 3], 0.3) as tf.Tensor4D;
  const y = resizeAntialias(c, [16, 16]);
  assertClose(y.dataSync(), new Float32Array(16 * 16 * 3).fill(0.3), { rtol: 1e-6, atol: 1e-6 });
  const x = tf.tensor4d(rand(1 * 5 * 6 * 2, 3), [1, 5, 6, 2]);
  const up = resizeAntialias(x, [11, 13]);
  const bil = resize(x, [11, 13], 'bilinear');
  assertClose(up.dataSync(), bil.dataSync(), { rtol: 1e-6, atol: 1e-6 });
  tf.dispose([c, y, x, up, bil]);
  assert.equal(tf.memory().numTensors, before);
  assert.throws(() => resize(x, [0, 3], 'bicubic'), /positive integers/);
});
