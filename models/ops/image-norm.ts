/**
 * Input normalisations of the backbones, on NHWC RGB images in [0, 1].
 */
import * as tf from '@tensorflow/tfjs-core';

/** torchvision / timm ImageNet statistics (RGB). */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/** `(x − mean) / std` per channel (torchvision `Normalize`), x NHWC with 3 channels. */
export function normalizeImagenet(x: tf.Tensor4D, mean: readonly number[] = IMAGENET_MEAN, std: readonly number[] = IMAGENET_STD): tf.Tensor4D {
  const c = x.shape[3];
  if (mean.length !== c || std.length !== c) {
    throw new Error(`normalizeImagenet: the image has ${c} channels, the statistics have ${mean.length}/${std.length}`);
  }
  return tf.tidy(() => tf.div(tf.sub(x, tf.tensor1d(mean as number[])), tf.tensor1d(std as number[])));
}

/** Maps [0, 1] linearly onto [lo, hi] (e.g. [-1, 1] for Keras MobileNet, [0, 255] for Caffe-style models). */
export function mapRange(x: tf.Tensor4D, range: readonly [number, number]): tf.Tensor4D {
  const [lo, hi] = range;
  if (!(Number.isFinite(lo) && Number.isFinite(hi)) || hi === lo) throw new Error(`mapRange: invalid input range [${lo}, ${hi}]`);
  if (lo === 0 && hi === 1) return tf.clone(x);
  return tf.tidy(() => tf.add(tf.mul(x, hi - lo), lo));
}
