/**
 * Layout conversion between PyTorch (NCHW activations, OIHW conv weights) and TensorFlow.js
 * (NHWC activations, HWIO conv weights). Every tensor inside the engine is NHWC; conversion
 * happens only where data enters or leaves (golden files, checkpoints, PyTorch interop).
 */
import * as tf from '@tensorflow/tfjs-core';

/** NCHW float data → an NHWC tensor. */
export function nchwToNhwc(data: Float32Array, shape: readonly number[]): tf.Tensor4D {
  const [n, c, h, w] = shape as [number, number, number, number];
  return tf.tidy(() => tf.transpose(tf.tensor4d(data, [n, c, h, w]), [0, 2, 3, 1]));
}

/** An NHWC tensor → NCHW float data (a copy). */
export async function nhwcToNchw(t: tf.Tensor): Promise<{ data: Float32Array; shape: [number, number, number, number] }> {
  const [n, h, w, c] = t.shape as [number, number, number, number];
  const x = tf.transpose(t, [0, 3, 1, 2]);
  const data = (await x.data()) as Float32Array;
  x.dispose();
  return { data: Float32Array.from(data), shape: [n, c, h, w] };
}

export function nhwcToNchwSync(t: tf.Tensor): { data: Float32Array; shape: [number, number, number, number] } {
  const [n, h, w, c] = t.shape as [number, number, number, number];
  const x = tf.transpose(t, [0, 3, 1, 2]);
  const data = x.dataSync() as Float32Array;
  x.dispose();
  return { data: Float32Array.from(data), shape: [n, c, h, w] };
}

/** Plain-array NCHW → NHWC (no engine). */
export function nchwToNhwcArray(data: ArrayLike<number>, shape: readonly number[]): Float32Array {
  const [n, c, h, w] = shape as [number, number, number, number];
  const out = new Float32Array(n * c * h * w);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) out[((b * h + y) * w + x) * c + ch] = data[((b * c + ch) * h + y) * w + x]!;
  return out;
}

/** Plain-array NHWC → NCHW (no engine). */
export function nhwcToNchwArray(data: ArrayLike<number>, shape: readonly number[]): Float32Array {
  const [n, h, w, c] = shape as [number, number, number, number];
  const out = new Float32Array(n * c * h * w);
  for (let b = 0; b < n; b++)
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) out[((b * c + ch) * h + y) * w + x] = data[((b * h + y) * w + x) * c + ch]!;
  return out;
}

/** OIHW conv weight data → an HWIO tensor (tf.conv2d's filter layout). */
export function oihwToHwio(data: Float32Array, shape: readonly number[]): tf.Tensor4D {
  const [o, i, h, w] = shape as [number, number, number, number];
  return tf.tidy(() => tf.transpose(tf.tensor4d(data, [o, i, h, w]), [2, 3, 1, 0]));
}

/** HWIO tensor → OIHW data (for saving in PyTorch naming). */
export function hwioToOihw(t: tf.Tensor): { data: Float32Array; shape: [number, number, number, number] } {
  const [h, w, i, o] = t.shape as [number, number, number, number];
  const x = tf.transpose(t, [3, 2, 0, 1]);
  const data = Float32Array.from(x.dataSync() as Float32Array);
  x.dispose();
  return { data, shape: [o, i, h, w] };
}

/** [C,H,W] data (PyTorch LayerNorm affine) → [H,W,C] tensor. */
export function chwToHwc(data: Float32Array, shape: readonly number[]): tf.Tensor3D {
  const [c, h, w] = shape as [number, number, number];
  return tf.tidy(() => tf.transpose(tf.tensor3d(data, [c, h, w]), [1, 2, 0]));
}

export function hwcToChw(t: tf.Tensor): { data: Float32Array; shape: [number, number, number] } {
  const [h, w, c] = t.shape as [number, number, number];
  const x = tf.transpose(t, [2, 0, 1]);
  const data = Float32Array.from(x.dataSync() as Float32Array);
  x.dispose();
  return { data, shape: [c, h, w] };
}
