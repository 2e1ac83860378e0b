/**
 * The trainable per-level LayerNorm of U-Flow's ResNet variants (spec/uflow.md §3.2):
 * nn.LayerNorm([C, H, W], eps 1e-5, elementwise affine) — mean and (biased) variance over all of
 * C·H·W per sample, weight and bias of the full shape. It runs after the frozen backbone (whose
 * outputs are cached) and trains with the flow. NHWC inside; state in PyTorch [C, H, W] with the
 * official names `feature_extractor.feature_normalizations.<i>.{weight,bias}`.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RawTensor } from '../io/safetensors.js';
import { chwToHwc, hwcToChw } from '../layout.js';
import { sumPerSample } from '../ops/grad-ops.js';
import type { NamedVariable } from '../flows/allinone-block.js';
import { f32, owned, values } from '../flows/state.js';

export const LAYER_NORM_EPS = 1e-5;
export const FEATURE_NORM_PREFIX = 'feature_extractor.feature_normalizations.';

/** LayerNorm over [H, W, C] per sample (NHWC). weight/bias: [H, W, C]. Staged sums (wasm-safe). */
export function layerNormHWC(x: tf.Tensor4D, weight: tf.Tensor, bias: tf.Tensor, eps = LAYER_NORM_EPS): tf.Tensor4D {
  return tf.tidy(() => {
    const [b, h, w, c] = x.shape;
    const n = h * w * c;
    const mean = tf.reshape(tf.div(sumPerSample(x), n), [b, 1, 1, 1]);
    const d = tf.sub(x, mean);
    const variance = tf.reshape(tf.div(sumPerSample(tf.square(d)), n), [b, 1, 1, 1]);
    return tf.add(tf.mul(tf.mul(d, tf.rsqrt(tf.add(variance, eps))), weight), bias) as tf.Tensor4D;
  });
}

export class FeatureNorm {
  readonly weights: Array<tf.Variable<tf.Rank.R3>>;
  readonly biases: Array<tf.Variable<tf.Rank.R3>>;

  /** shapes: [H, W, C] per level, finest first. A fresh norm is the identity (weight 1, bias 0), as PyTorch initialises it. */
  constructor(readonly shapes: ReadonlyArray<readonly [number, number, number]>) {
    this.weights = shapes.map((s) => owned(tf.ones([...s]) as tf.Tensor3D));
    this.biases = shapes.map((s) => owned(tf.zeros([...s]) as tf.Tensor3D));
  }

  apply(features: readonly tf.Tensor4D[]): tf.Tensor4D[] {
    if (features.length !== this.shapes.length) throw new Error(`FeatureNorm: expected ${this.shapes.length} levels, got ${features.length}`);
    return features.map((f, i) => layerNormHWC(f, this.weights[i]!, this.biases[i]!));
  }

  trainableVariables(): NamedVariable[] {
    return this.shapes.flatMap((_, i) => [
      { name: `${FEATURE_NORM_PREFIX}${i}.weight`, variable: this.weights[i]! },
      { name: `${FEATURE_NORM_PREFIX}${i}.bias`, variable: this.biases[i]! },
    ]);
  }

  stateSpec(): Array<{ key: string; shape: number[] }> {
    return this.shapes.flatMap(([h, w, c], i) => [
      { key: `${FEATURE_NORM_PREFIX}${i}.weight`, shape: [c, h, w] },
      { key: `${FEATURE_NORM_PREFIX}${i}.bias`, shape: [c, h, w] },
    ]);
  }

  state(): Array<[string, RawTensor]> {
    return this.shapes.flatMap((_, i) =>
      (['weight', 'bias'] as const).map((n): [string, RawTensor] => {
        const t = hwcToChw((n === 'weight' ? this.weights : this.biases)[i]!);
        return [`${FEATURE_NORM_PREFIX}${i}.${n}`, f32(t.shape, t.data)];
      }),
    );
  }

  loadValidated(get: (key: string) => RawTensor): void {
    tf.tidy(() => {
      this.shapes.forEach((_, i) => {
        for (const [n, vars] of [['weight', this.weights], ['bias', this.biases]] as const) {
          const t = get(`${FEATURE_NORM_PREFIX}${i}.${n}`);
          vars[i]!.assign(chwToHwc(values(t), t.shape));
        }
      });
    });
  }

  dispose(): void {
    for (const v of [...this.weights, ...this.biases]) v.dispose();
  }
}
