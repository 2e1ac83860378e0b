/**
 * PyTorch-exact resizes of NHWC tensors, written as two separable matrix products
 * (`out = Wh · x · Wwᵀ` per channel) with weight matrices computed once per (in, out) size in
 * float64. This is exact up to float32 summation order and fast on every backend (two matMuls),
 * and the same code serves every linear interpolation:
 *
 * - bilinear, `align_corners` False (`F.interpolate(mode='bilinear')`) and True;
 * - bicubic, `align_corners` True and False (cubic convolution A = −0.75, border taps clamped,
 *   as `F.interpolate(mode='bicubic')`): MS-CaiT's scale-2 input;
 * - antialiased bilinear (PIL `Image.resize(BILINEAR)` / torchvision `antialias=True`): a
 *   triangle filter whose support grows with the downscale factor, for preprocessing images of
 *   any size to the model's input size.
 */
import * as tf from '@tensorflow/tfjs-core';

export type ResizeMode = 'bilinear' | 'bicubic' | 'bilinear-antialias';

/** A [outSize, inSize] row-major weight matrix, in float64. */
export type ResizeMatrix = Float64Array;

const CUBIC_A = -0.75;

/** Cubic convolution kernel for |x| ≤ 1. */
function cubic1(x: number): number {
  return ((CUBIC_A + 2) * x - (CUBIC_A + 3)) * x * x + 1;
}
/** Cubic convolution kernel for 1 < |x| < 2. */
function cubic2(x: number): number {
  return ((CUBIC_A * x - 5 * CUBIC_A) * x + 8 * CUBIC_A) * x - 4 * CUBIC_A;
}

/** PyTorch's source coordinate for output index `dst` (area_pixel_compute_source_index). */
function sourceIndex(dst: number, inSize: number, outSize: number, alignCorners: boolean, cubic: boolean): number {
  if (alignCorners) return outSize > 1 ? (dst * (inSize - 1)) / (outSize - 1) : 0;
  const scale = inSize / outSize;
  const src = (dst + 0.5) * scale - 0.5;
  // Linear modes clamp negative coordinates to 0; cubic does not.
  return !cubic && src < 0 ? 0 : src;
}

/** Weights of `F.interpolate(mode='bilinear', align_corners)` along one axis. */
export function bilinearMatrix(inSize: number, outSize: number, alignCorners: boolean): ResizeMatrix {
  const m = new Float64Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) {
    const src = sourceIndex(o, inSize, outSize, alignCorners, false);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = i0 < inSize - 1 ? i0 + 1 : i0;
    const l1 = src - i0;
    m[o * inSize + i0] += 1 - l1;
    m[o * inSize + i1] += l1;
  }
  return m;
}

/** Weights of `F.interpolate(mode='bicubic', align_corners)` along one axis (A = −0.75, taps clamped to the border). */
export function bicubicMatrix(inSize: number, outSize: number, alignCorners: boolean): ResizeMatrix {
  const m = new Float64Array(outSize * inSize);
  for (let o = 0; o < outSize; o++) {
    const src = sourceIndex(o, inSize, outSize, alignCorners, true);
    const i = Math.floor(src);
    const t = src - i;
    const w = [cubic2(t + 1), cubic1(t), cubic1(1 - t), cubic2(2 - t)];
    for (let k = 0; k < 4; k++) {
      const idx = Math.min(Math.max(i - 1 + k, 0), inSize - 1);
      m[o * inSize + idx] += w[k]!;
    }
  }
  return m;
}

/**
 * Weights of an antialiased bilinear resize (PIL's BILINEAR resampling, torchvision
 * `resize(antialias=True)`, `F.interpolate(mode='bilinear', antialias=True, align_corners=False)`):
 * a triangle filter of support `max(in/out, 1)` centred at `(o + 0.5)·in/out`, normalised to sum 1.
 * For upscaling it is the plain bilinear interpolation (clamped at the borders).
 */
export function antialiasBilinearMatrix(inSize: number, outSize: number): ResizeMatrix {
  const m = new Float64Array(outSize * inSize);
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterScale; // the triangle filter's support is 1
  const invScale = 1 / filterScale;
  for (let o = 0; o < outSize; o++) {
    const center = (o + 0.5) * scale;
    // PIL truncates toward zero (C cast), then clamps.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize);
    let total = 0;
    const ws: number[] = [];
    for (let x = xmin; x < xmax; x++) {
      const w = Math.max(0, 1 - Math.abs((x - center + 0.5) * invScale));
      ws.push(w);
      total += w;
    }
    for (let x = xmin; x < xmax; x++) m[o * inSize + x] = total !== 0 ? ws[x - xmin]! / total : 0;
  }
  return m;
}

export function resizeMatrix(mode: ResizeMode, inSize: number, outSize: number, alignCorners = false): ResizeMatrix {
  if (!(Number.isInteger(inSize) && inSize > 0 && Number.isInteger(outSize) && outSize > 0)) {
    throw new Error(`resize: sizes must be positive integers (got ${inSize} → ${outSize})`);
  }
  switch (mode) {
    case 'bilinear':
      return bilinearMatrix(inSize, outSize, alignCorners);
    case 'bicubic':
      return bicubicMatrix(inSize, outSize, alignCorners);
    case 'bilinear-antialias':
      if (alignCorners) throw new Error('resize: antialiased bilinear has no align_corners variant');
      return antialiasBilinearMatrix(inSize, outSize);
  }
}

const cache = new Map<string, Float32Array>();
function cachedMatrix(mode: ResizeMode, inSize: number, outSize: number, alignCorners: boolean): Float32Array {
  const key = `${mode}:${inSize}:${outSize}:${alignCorners}`;
  let m = cache.get(key);
  if (!m) {
    m = Float32Array.from(resizeMatrix(mode, inSize, outSize, alignCorners));
    if (cache.size > 64) cache.clear();
    cache.set(key, m);
  }
  return m;
}

/**
 * Resizes an NHWC tensor along H with `wh` ([outH, H]) and along W with `ww` ([outW, W]).
 * Identity axes (same size, identity matrix) are skipped by the callers below.
 */
export function separableResize(x: tf.Tensor4D, wh: tf.Tensor2D | null, ww: tf.Tensor2D | null): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    let y: tf.Tensor4D = x;
    let outH = h;
    if (wh) {
      outH = wh.shape[0];
      if (wh.shape[1] !== h) throw new Error(`separableResize: H weight matrix is for ${wh.shape[1]} rows, input has ${h}`);
      // [B,H,W,C] → [H, B·W·C] → Wh · (…) → [outH, B, W, C] → [B, outH, W, C]
      const t = tf.reshape(tf.transpose(y, [1, 0, 2, 3]), [h, b * w * c]);
      y = tf.transpose(tf.reshape(tf.matMul(wh, t), [outH, b, w, c]), [1, 0, 2, 3]);
    }
    if (ww) {
      const outW = ww.shape[0];
      if (ww.shape[1] !== w) throw new Error(`separableResize: W weight matrix is for ${ww.shape[1]} columns, input has ${w}`);
      // [B,outH,W,C] → [B·outH, W, C] → per batch Ww · (…) = [B·outH, outW, C]
      const t = tf.reshape(tf.transpose(y, [2, 0, 1, 3]), [w, b * outH * c]);
      y = tf.transpose(tf.reshape(tf.matMul(ww, t), [outW, b, outH, c]), [1, 2, 0, 3]);
    }
    return y === x ? tf.clone(x) : y;
  });
}

export interface ResizeOptions {
  alignCorners?: boolean;
}

/** Resizes NHWC `x` to [outH, outW] with PyTorch semantics for `mode`. */
export function resize(x: tf.Tensor4D, size: readonly [number, number], mode: ResizeMode, opts: ResizeOptions = {}): tf.Tensor4D {
  const alignCorners = opts.alignCorners ?? false;
  const [, h, w] = x.shape;
  const [outH, outW] = size;
  return tf.tidy(() => {
    // Same size: every mode above is the identity (source coordinates fall on the pixels).
    const wh = outH === h ? null : tf.tensor2d(cachedMatrix(mode, h, outH, alignCorners), [outH, h]);
    const ww = outW === w ? null : tf.tensor2d(cachedMatrix(mode, w, outW, alignCorners), [outW, w]);
    return separableResize(x, wh, ww);
  });
}

/** `F.interpolate(x, size, mode='bilinear', align_corners)` on NHWC. */
export function resizeBilinear(x: tf.Tensor4D, size: readonly [number, number], alignCorners = false): tf.Tensor4D {
  return resize(x, size, 'bilinear', { alignCorners });
}

/** `F.interpolate(x, size, mode='bicubic', align_corners)` on NHWC (A = −0.75, clamped borders). */
export function resizeBicubic(x: tf.Tensor4D, size: readonly [number, number], alignCorners = true): tf.Tensor4D {
  return resize(x, size, 'bicubic', { alignCorners });
}

/** PIL / torchvision antialiased bilinear resize on NHWC float images (any size → `size`). */
export function resizeAntialias(x: tf.Tensor4D, size: readonly [number, number]): tf.Tensor4D {
  return resize(x, size, 'bilinear-antialias');
}
