/**
 * The contract between backbones (frozen feature extractors) and the flows.
 *
 * Images enter as RGB in [0, 1], NHWC, at the extractor's input size; each extractor applies its
 * own input normalisation (ImageNet mean/std for the timm models, a range mapping for a
 * TensorFlow.js layers model). Outputs are NHWC feature maps, finest first. Backbones are frozen:
 * their outputs are what the feature cache stores. The trainable per-level LayerNorm of U-Flow's
 * ResNet variants and of FastFlow is NOT part of the extractor (see `feature-norm.ts`): it is a
 * trainable part of the model and runs after the cache.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { formatHW, toHW, type HW, type SizeInput } from '../size.js';

export interface FeatureExtractor {
  /** e.g. 'resnet18', 'wide_resnet50_2', 'mcait', 'tfjs:/path/to/model'. */
  readonly name: string;
  /** [height, width] of the images it takes. */
  readonly inputSize: HW;
  /** [h, w] of each output level, finest first, as its layers compute them (PyTorch's floor rules). */
  readonly featureSizes: readonly HW[];
  /** Channels of each output level, finest first. */
  readonly channels: readonly number[];
  /** Stride of each output level relative to the input (e.g. 4, 8, 16). */
  readonly scaleFactors: readonly number[];
  /** Whether the model applies the trainable LayerNorm([C,H,W]) after each level (ResNet variants: yes; MS-CaiT: no). */
  readonly layerNormLevels: boolean;
  /** images: [B, H, W, 3] RGB in [0, 1] with [H, W] = inputSize. Returns one NHWC map per level, finest first. */
  extract(images: tf.Tensor4D): tf.Tensor4D[];
  dispose(): void;
}

/** A model's own copy of its level configuration: the input size as [h, w], the arrays copied. */
export function ownLevelConfig<C extends { channels: readonly number[]; scaleFactors: readonly number[]; inputSize: SizeInput; levelSizes?: readonly (readonly [number, number])[] }>(
  config: C,
): C & { inputSize: HW } {
  return {
    ...config,
    inputSize: toHW(config.inputSize),
    channels: [...config.channels],
    scaleFactors: [...config.scaleFactors],
    ...(config.levelSizes ? { levelSizes: config.levelSizes.map(([h, w]) => [h, w] as HW) } : {}),
  };
}

/** Throws when a model configured for `config`'s levels is given a backbone that produces others. */
export function assertExtractorFits(
  model: string,
  config: { channels: readonly number[]; scaleFactors: readonly number[]; inputSize: SizeInput; levelSizes?: readonly (readonly [number, number])[] },
  extractor: FeatureExtractor | undefined,
): void {
  if (config.channels.length !== config.scaleFactors.length) {
    throw new Error(`${model}: ${config.channels.length} channel counts but ${config.scaleFactors.length} scale factors`);
  }
  if (config.levelSizes && config.levelSizes.length !== config.channels.length) {
    throw new Error(`${model}: ${config.channels.length} channel counts but ${config.levelSizes.length} level sizes`);
  }
  if (!extractor) return;
  const [h, w] = toHW(config.inputSize);
  const sizes = levelSizes(config).map((s) => formatHW(s)).join(', ');
  const exSizes = extractor.featureSizes.map((s) => formatHW(s)).join(', ');
  if (
    extractor.channels.join() !== config.channels.join() ||
    extractor.scaleFactors.join() !== config.scaleFactors.join() ||
    extractor.inputSize[0] !== h ||
    extractor.inputSize[1] !== w ||
    exSizes !== sizes
  ) {
    throw new Error(
      `${model}: the backbone '${extractor.name}' gives channels [${extractor.channels}] at strides [${extractor.scaleFactors}] (${exSizes}) for input ${formatHW(extractor.inputSize)}, but the model was configured for [${config.channels}] at [${config.scaleFactors}] (${sizes}) for input ${formatHW([h, w])}`,
    );
  }
}

/**
 * [h, w] of each feature level, finest first: the sizes the config records (what its backbone's
 * layers compute), else ⌊H/stride⌋ × ⌊W/stride⌋ (configs written before sizes were recorded: square
 * inputs that every stride divides, where all rules agree).
 */
export function levelSizes(config: { inputSize: SizeInput; scaleFactors: readonly number[]; levelSizes?: readonly (readonly [number, number])[] }): HW[] {
  if (config.levelSizes) return config.levelSizes.map(([a, b]) => [a, b]);
  const [h, w] = toHW(config.inputSize);
  return config.scaleFactors.map((f) => [Math.floor(h / f), Math.floor(w / f)]);
}

/** A model's frozen backbone features (what the feature cache stores); `model` names it in the error. */
export function extractWith(model: string, extractor: FeatureExtractor | undefined, images: tf.Tensor4D): tf.Tensor4D[] {
  if (!extractor) throw new Error(`${model}.extract: this model was built without a feature extractor`);
  return extractor.extract(images);
}
