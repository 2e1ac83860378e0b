/**
 * FrEIA's IRevNetUpsampling (legacy_backend False): the exact inverse of a 2×2 space-to-depth
 * with channel-major order, out[b, 2i+dy, 2j+dx, c] = in[b, i, j, 4c + 2dy + dx] (NHWC here).
 * log|det J| = 0. Its state is the non-trainable `downsample_kernel` [4·C_out, 1, 2, 2], accepted
 * (shape-checked) and ignored on load, and written on save exactly as FrEIA holds it.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RawTensor } from '../io/safetensors.js';
import { f32, type StateSpec, type Stateful } from './state.js';

/** [B, h, w, 4C] → [B, 2h, 2w, C]. */
export function irevnetUpsample(x: tf.Tensor4D): tf.Tensor4D {
  const [b, h, w, c4] = x.shape;
  if (c4 % 4 !== 0) throw new Error(`IRevNetUpsampling needs a multiple of 4 channels (got ${c4})`);
  const c = c4 / 4;
  return tf.tidy(() => {
    const t = tf.reshape(x, [b * h, w, c, 2, 2]); // (bi, j, c, dy, dx)
    return tf.reshape(tf.transpose(t, [0, 3, 1, 4, 2]), [b, 2 * h, 2 * w, c]) as tf.Tensor4D; // (bi, dy, j, dx, c)
  });
}

/** The inverse: [B, 2h, 2w, C] → [B, h, w, 4C]. */
export function irevnetDownsample(x: tf.Tensor4D): tf.Tensor4D {
  const [b, h2, w2, c] = x.shape;
  if (h2 % 2 !== 0 || w2 % 2 !== 0) throw new Error(`IRevNet downsampling needs an even height and width (got ${h2}×${w2})`);
  const h = h2 / 2;
  const w = w2 / 2;
  return tf.tidy(() => {
    const t = tf.reshape(x, [b * h, 2, w, 2, c]); // (bi, dy, j, dx, c)
    return tf.reshape(tf.transpose(t, [0, 2, 4, 1, 3]), [b, h, w, 4 * c]) as tf.Tensor4D; // (bi, j, c, dy, dx)
  });
}

/** FrEIA's downsample_kernel for `inChannels` = 4·C_out: kernel[4c + 2dy + dx, 0, dy, dx] = 1. */
export function downsampleKernel(inChannels: number): Float32Array {
  const k = new Float32Array(inChannels * 4);
  for (let i = 0; i < inChannels; i++) k[i * 4 + (i % 4)] = 1;
  return k;
}

export class IRevNetUpsampling implements Stateful {
  /** Input channels (a multiple of 4); the output has a quarter of them. */
  constructor(readonly inChannels: number) {
    if (inChannels % 4 !== 0) throw new Error(`IRevNetUpsampling needs a multiple of 4 channels (got ${inChannels})`);
  }

  forward(x: tf.Tensor4D): tf.Tensor4D {
    return irevnetUpsample(x);
  }

  inverse(y: tf.Tensor4D): tf.Tensor4D {
    return irevnetDownsample(y);
  }

  stateSpec(): StateSpec[] {
    return [{ name: 'downsample_kernel', shape: [this.inChannels, 1, 2, 2] }];
  }

  state(): Array<[string, RawTensor]> {
    return [['downsample_kernel', f32([this.inChannels, 1, 2, 2], downsampleKernel(this.inChannels))]];
  }

  /** Accepted and ignored: the kernel is a fixed function of the shape. */
  loadState(): void {}
}

/** Splits the channel axis of an NHWC tensor into consecutive parts of the given sizes. */
export function splitChannels(x: tf.Tensor4D, sizes: readonly number[]): tf.Tensor4D[] {
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total !== x.shape[3]) throw new Error(`cannot split ${x.shape[3]} channels into [${sizes.join(', ')}]`);
  const [b, h, w] = x.shape;
  let off = 0;
  return sizes.map((c) => {
    const part = tf.slice(x, [0, 0, 0, off], [b, h, w, c]) as tf.Tensor4D;
    off += c;
    return part;
  });
}

/** Concatenates NHWC tensors along channels, in the given order. */
export function concatChannels(xs: readonly tf.Tensor4D[]): tf.Tensor4D {
  return tf.concat(xs as tf.Tensor4D[], 3) as tf.Tensor4D;
}
