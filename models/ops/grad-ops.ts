/**
 * Differentiable ops that train on every backend, including wasm, whose stock kernels lack
 * `Conv2DBackpropFilter` (needed by tf.conv2d's filter gradient) and `UnsortedSegmentSum`
 * (needed by tf.gather's gradient). Gradients are written with forward kernels only (see
 * notes/engine.md for why these forms are the fast ones on wasm).
 */
import * as tf from '@tensorflow/tfjs-core';
// tfjs-core's Node bundle registers no gradients; tfjs-layers' bundle registers all of core's
// (into the shared global registry) as a side effect of loading. Without it tf.grads fails with
// "gradient function not found for Sum".
import '@tensorflow/tfjs-layers';

/**
 * im2col for a stride-1 'same' convolution with an odd kernel k: returns [B·H·W, k·k·Cin], column
 * order (kh, kw, cin), matching a row-major HWIO filter reshaped to [k·k·Cin, Cout].
 */
export function patches(x: tf.Tensor4D, k: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    if (k === 1) return tf.reshape(x, [b * h * w, c]) as tf.Tensor2D;
    const r = (k - 1) / 2;
    const xp = tf.pad(x, [
      [0, 0],
      [r, r],
      [r, r],
      [0, 0],
    ]);
    const cols: tf.Tensor[] = [];
    for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) cols.push(tf.slice(xp, [0, i, j, 0], [b, h, w, c]));
    return tf.reshape(tf.concat(cols, 3), [b * h * w, k * k * c]) as tf.Tensor2D;
  });
}

function checkOddSquare(filter: tf.Tensor4D): number {
  const [kh, kw] = filter.shape;
  if (kh !== kw || kh % 2 !== 1) {
    throw new Error(`conv2dSame supports odd square kernels only (got ${kh}×${kw}): 'same' padding is asymmetric for even kernels`);
  }
  return kh;
}

/** Gradient of a stride-1 'same' conv w.r.t. its input: a 'same' conv of dy with the filter rotated 180° and I/O swapped. */
export function conv2dSameInputGrad(dy: tf.Tensor4D, filter: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const rot = filter.shape[0] === 1 ? filter : tf.reverse(filter, [0, 1]);
    return tf.conv2d(dy, tf.transpose(rot, [0, 1, 3, 2]) as tf.Tensor4D, 1, 'same');
  });
}

/**
 * Gradient of a stride-1 'same' conv w.r.t. its HWIO filter, one kernel tap at a time:
 * dW[i, j] = X_ijᵀ · dy with X_ij [Cin, B·H·W] the input shifted by tap (i, j), taken from one
 * transposed copy of the padded input, and dy [B·H·W, Cout] as it is. This is the im2col product
 * matMul(transpose(dy), P) of notes/engine.md split by tap: the same sums (bit-identical here), but
 * without the concatenated patch matrix and the transposes of dy and of the result; on wasm it is
 * 1.4–2.6× faster (64² maps: 290 → 150 ms and 570 → 215 ms CPU at batch 8).
 */
export function conv2dSameFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, k: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, cin] = x.shape;
    const cout = dy.shape[3];
    const n = b * h * w;
    const d2 = tf.reshape(dy, [n, cout]);
    if (k === 1) return tf.reshape(tf.matMul(tf.reshape(tf.transpose(x, [3, 0, 1, 2]), [cin, n]), d2), [1, 1, cin, cout]) as tf.Tensor4D;
    const r = (k - 1) / 2;
    const xt = tf.transpose(
      tf.pad(x, [
        [0, 0],
        [r, r],
        [r, r],
        [0, 0],
      ]),
      [3, 0, 1, 2],
    ); // [Cin, B, H+2r, W+2r]
    const taps: tf.Tensor[] = [];
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < k; j++) taps.push(tf.matMul(tf.reshape(tf.slice(xt, [0, 0, i, j], [cin, b, h, w]), [cin, n]), d2));
    }
    return tf.reshape(tf.stack(taps), [k, k, cin, cout]) as tf.Tensor4D;
  });
}

/**
 * y = conv2d(x, filter, stride 1, 'same') + bias, NHWC / HWIO, odd square kernels. Its gradients
 * use forward kernels only, so it trains on wasm; on cpu they equal tf's stock gradients.
 */
export function conv2dSame(x: tf.Tensor4D, filter: tf.Tensor4D, bias: tf.Tensor1D): tf.Tensor4D {
  const k = checkOddSquare(filter);
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [x4, f4, bi] = args as [tf.Tensor4D, tf.Tensor4D, tf.Tensor1D];
    const save = args[3] as tf.GradSaveFunc;
    save([x4, f4]);
    const value = tf.add(tf.conv2d(x4, f4, 1, 'same'), bi) as tf.Tensor4D;
    const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, fs] = saved as [tf.Tensor4D, tf.Tensor4D];
      const dy4 = dy as tf.Tensor4D;
      return [conv2dSameInputGrad(dy4, fs), conv2dSameFilterGrad(xs, dy4, k), tf.sum(dy4, [0, 1, 2])];
    };
    return { value, gradFunc };
  });
  return op(x, filter, bias) as tf.Tensor4D;
}

/**
 * y[..., i] = x[..., perm[i]] (gather on the last axis). Its gradient is the same gather with the
 * inverse permutation, so no UnsortedSegmentSum is needed. `perm`/`invPerm` are int32 [C].
 */
export function permuteChannels<T extends tf.Tensor>(x: T, perm: tf.Tensor1D, invPerm: tf.Tensor1D): T {
  const axis = x.rank - 1;
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const value = tf.gather(args[0] as tf.Tensor, perm, axis);
    return { value, gradFunc: (dy: tf.Tensor) => tf.gather(dy, invPerm, axis) };
  });
  return op(x) as T;
}

/**
 * Per-sample sum over all non-batch axes, reduced one axis at a time from the last to the second
 * (NHWC: C, then W, then H), so that no backend sums more than max(H, W, C) floats in one run
 * (wasm's Sum accumulates sequentially in float32).
 */
export function sumPerSample(x: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => {
    let t = x;
    if (t.rank === 4) {
      // reduce W, then H, then C, as notes/engine.md suggests.
      t = tf.sum(t, 2); // [B,H,C]
      t = tf.sum(t, 1); // [B,C]
      return tf.sum(t, 1) as tf.Tensor1D;
    }
    while (t.rank > 1) t = tf.sum(t, t.rank - 1);
    return t as tf.Tensor1D;
  });
}

/**
 * The permutation matrix of `perm` as a [C, C] float tensor M with M[perm[i], i] = 1, so that
 * matMul(x, M)[:, i] = x[:, perm[i]].
 */
export function permutationMatrix(perm: readonly number[]): tf.Tensor2D {
  const c = perm.length;
  const m = new Float32Array(c * c);
  perm.forEach((p, i) => (m[p * c + i] = 1));
  return tf.tensor2d(m, [c, c]);
}

/**
 * The same map as permuteChannels, y[..., i] = x[..., perm[i]], computed as a product with the
 * permutation matrix (`pm` = permutationMatrix(perm), `pmInv` = its transpose). Every output is
 * one x value times 1 plus exact zeros, so the result is bit-identical to the gather for finite x;
 * on wasm it is about 3.5× faster than GatherV2 on the last axis. Gradient: the product with pmInv.
 */
export function permuteChannelsMatMul<T extends tf.Tensor>(x: T, pm: tf.Tensor2D, pmInv: tf.Tensor2D): T {
  const op = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const xi = args[0] as tf.Tensor;
    const c = xi.shape[xi.rank - 1]!;
    const value = tf.reshape(tf.matMul(tf.reshape(xi, [-1, c]), pm), xi.shape);
    return { value, gradFunc: (dy: tf.Tensor) => tf.reshape(tf.matMul(tf.reshape(dy, [-1, c]), pmInv), dy.shape) };
  });
  return op(x) as T;
}
