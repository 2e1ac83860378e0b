/**
 * Per-layer ONNX emitters, NCHW (ONNX's layout; the tfjs models are NHWC, so weights are
 * transposed here, once, at export). Each mirrors one tfjs computation of models/ and uses the
 * same constants, so the exported graph computes what the tfjs model computes.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GraphBuilder } from './graph.js';

/** A tfjs HWIO filter as ONNX OIHW data (transposed in plain JS: tfjs-wasm's 4-D Transpose takes ~1 s on a 3×3×256×256 filter). */
export function hwioToOihwData(filter: tf.Tensor): { data: Float32Array; dims: [number, number, number, number] } {
  const [h, w, i, o] = filter.shape as [number, number, number, number];
  const src = filter.dataSync() as Float32Array;
  const data = new Float32Array(src.length);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let ic = 0; ic < i; ic++) {
        const s = ((y * w + x) * i + ic) * o;
        for (let oc = 0; oc < o; oc++) data[((oc * i + ic) * h + y) * w + x] = src[s + oc]!;
      }
  return { data, dims: [o, i, h, w] };
}

/** A tfjs depthwise filter [H, W, Cin, mult] as a grouped ONNX filter [Cin·mult, 1, H, W] (output channel c·mult + j, as TensorFlow orders them). */
export function depthwiseToOihwData(filter: tf.Tensor): { data: Float32Array; dims: [number, number, number, number] } {
  const [h, w, c, m] = filter.shape as [number, number, number, number];
  const flat = tf.reshape(filter, [h, w, 1, c * m]);
  try {
    return { data: hwioToOihwData(flat).data, dims: [c * m, 1, h, w] };
  } finally {
    flat.dispose();
  }
}

export function readData(t: tf.Tensor): Float32Array {
  return Float32Array.from(t.dataSync() as Float32Array);
}

export interface ConvOptions {
  strides?: number;
  /** [top, left, bottom, right]; default 0. */
  pads?: readonly [number, number, number, number];
  group?: number;
  dilation?: number;
}

/** Conv with an OIHW filter and an optional bias. */
export function conv(
  g: GraphBuilder,
  x: string,
  filter: { data: Float32Array; dims: readonly number[] },
  bias: Float32Array | undefined,
  name: string,
  opts: ConvOptions = {},
): string {
  const w = g.weight(`${name}.weight`, filter.data, filter.dims);
  const inputs = [x, w];
  if (bias) inputs.push(g.weight(`${name}.bias`, bias, [bias.length]));
  const [, , kh, kw] = filter.dims as [number, number, number, number];
  const p = opts.pads ?? [0, 0, 0, 0];
  return g.op(
    'Conv',
    inputs,
    {
      kernel_shape: [kh, kw],
      strides: [opts.strides ?? 1, opts.strides ?? 1],
      pads: [p[0], p[1], p[2], p[3]],
      dilations: [opts.dilation ?? 1, opts.dilation ?? 1],
      group: { int: opts.group ?? 1 },
    },
    name,
  );
}

/** The symmetric pads of a stride-1 'same' convolution with an odd kernel. */
export function samePads(k: number): [number, number, number, number] {
  const r = (k - 1) / 2;
  return [r, r, r, r];
}

/**
 * TensorFlow's 'same' padding for a stride-s convolution or pooling on an n×n input (the extra
 * pixel of an odd total goes to the bottom/right), as [top, left, bottom, right].
 */
export function tfSamePads(n: number, k: number, s: number, dilation = 1): [number, number, number, number] {
  const ke = (k - 1) * dilation + 1;
  const out = Math.ceil(n / s);
  const total = Math.max((out - 1) * s + ke - n, 0);
  const lo = Math.floor(total / 2);
  return [lo, lo, total - lo, total - lo];
}

/** AveragePool with a square window, stride, no padding ('valid'). */
export function avgPool(g: GraphBuilder, x: string, k: number, s: number, name: string): string {
  return g.op('AveragePool', [x], { kernel_shape: [k, k], strides: [s, s] }, name);
}

/** x · c (a float scalar). */
export function mulScalar(g: GraphBuilder, x: string, c: number, name: string): string {
  return g.op('Mul', [x, g.scalar(c)], {}, name);
}

/** x + c (a float scalar). */
export function addScalar(g: GraphBuilder, x: string, c: number, name: string): string {
  return g.op('Add', [x, g.scalar(c)], {}, name);
}

/** x − c (a float scalar). */
export function subScalar(g: GraphBuilder, x: string, c: number, name: string): string {
  return g.op('Sub', [x, g.scalar(c)], {}, name);
}

/** Splits the channel axis (1) into consecutive parts. */
export function splitChannels(g: GraphBuilder, x: string, sizes: readonly number[], name: string): string[] {
  return g.node('Split', [x, g.int64(sizes)], { axis: 1 }, name, sizes.length);
}

export function concatChannels(g: GraphBuilder, xs: readonly string[], name: string): string {
  return g.op('Concat', xs, { axis: 1 }, name);
}

/** Reflect padding of H and W by r (tf.mirrorPad 'reflect'). */
export function reflectPad(g: GraphBuilder, x: string, r: number, name: string): string {
  return g.op('Pad', [x, g.int64([0, 0, r, r, 0, 0, r, r])], { mode: 'reflect' }, name);
}

/** Zero padding of H and W: [top, left, bottom, right]. */
export function zeroPad(g: GraphBuilder, x: string, p: readonly [number, number, number, number], name: string): string {
  return g.op('Pad', [x, g.int64([0, 0, p[0], p[1], 0, 0, p[2], p[3]])], { mode: 'constant' }, name);
}

/**
 * LayerNorm over C·H·W per sample (feature-norm.ts layerNormHWC): mean, biased variance,
 * (x − mean)·rsqrt(var + eps)·weight + bias. weight/bias as NCHW [1, C, H, W] data.
 */
export function layerNormCHW(g: GraphBuilder, x: string, weight: Float32Array, bias: Float32Array, dims: readonly [number, number, number], eps: number, name: string): string {
  const mean = g.op('ReduceMean', [x], { axes: [1, 2, 3], keepdims: 1 }, `${name}.mean`);
  const d = g.op('Sub', [x, mean], {}, `${name}.centred`);
  const variance = g.op('ReduceMean', [g.op('Mul', [d, d], {}, `${name}.sq`)], { axes: [1, 2, 3], keepdims: 1 }, `${name}.var`);
  const rstd = g.op('Reciprocal', [g.op('Sqrt', [addScalar(g, variance, eps, `${name}.var_eps`)], {}, `${name}.std`)], {}, `${name}.rstd`);
  const w = g.weight(`${name}.weight`, weight, [1, ...dims]);
  const b = g.weight(`${name}.bias`, bias, [1, ...dims]);
  return g.op('Add', [g.op('Mul', [g.op('Mul', [d, rstd], {}, `${name}.normed`), w], {}, `${name}.scaled`), b], {}, name);
}

/**
 * Bilinear resize with half-pixel centres and no corner alignment (tf.image.resizeBilinear with
 * halfPixelCenters, PyTorch's align_corners=False) to size×size; the batch and channel sizes are
 * read from the input at run time.
 */
export function resizeBilinear(g: GraphBuilder, x: string, size: readonly [number, number], name: string): string {
  const nc = g.op('Slice', [g.op('Shape', [x], {}, `${name}.shape`), g.int64([0]), g.int64([2])], {}, `${name}.nc`);
  const sizes = g.op('Concat', [nc, g.int64([size[0], size[1]])], { axis: 0 }, `${name}.sizes`);
  return g.op('Resize', [x, '', '', sizes], { mode: 'linear', coordinate_transformation_mode: 'half_pixel' }, name);
}
