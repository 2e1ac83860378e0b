/**
 * The whole FastFlow model (anomalib layout, spec/fastflow.md part A): a frozen FeatureExtractor
 * (whose outputs the feature cache stores), a trainable LayerNorm([C,H,W]) per level for CNN
 * backbones (none for ViT features), and one independent flow per level (flows/fastflow.ts).
 *
 * It presents the same interface as UFlowModel (fromFeatures → latents + Σ log-det, trainable
 * variables with reference names, stateDict / loadStateDict, dispose), plus FastFlow's own loss
 * and anomaly map. The state dict uses anomalib's names: `norms.<level>.{weight,bias}`
 * ([C,H,W]) and `fast_flow_blocks.<level>.module_list.<step>.*`; Lightning's `model.` prefix is
 * accepted on load; backbone keys (`feature_extractor.*`) are handed back to the caller.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RawTensor, TensorMap } from './io/safetensors.js';
import type { HW } from './size.js';
import { assertExtractorFits, extractWith, ownLevelConfig, levelSizes, type FeatureExtractor } from './backbones/types.js';
import { FeatureNorm, FEATURE_NORM_PREFIX } from './backbones/feature-norm.js';
import type { NamedVariable } from './flows/allinone-block.js';
import { FastFlowFlows } from './flows/fastflow.js';
import { normalizeReferenceKeys } from './flows/uflow-graph.js';
import { validateState } from './flows/state.js';
import { sumPerSample } from './ops/grad-ops.js';
import { fastflowAnomalyMap, fastflowImageScore, FASTFLOW_MAP_RANGE } from './scores/fastflow-map.js';
import type { Size } from './scores/anomaly-map.js';

export const FASTFLOW_NORM_PREFIX = 'norms.';

export interface FastFlowModelConfig {
  /** Backbone name (metadata; e.g. 'resnet18', 'cait', 'tfjs:<dir>'). */
  backbone: string;
  /** [height, width] (one integer in configs written before non-square sizes: square). */
  inputSize: HW | number;
  /** Channels of each feature level, finest first. */
  channels: number[];
  /** Nominal stride of each level, finest first. */
  scaleFactors: number[];
  /** [h, w] of each level, finest first, as the backbone computes them; absent in old configs: ⌊H/stride⌋ × ⌊W/stride⌋. */
  levelSizes?: HW[];
  /** AllInOneBlocks per level (anomalib default 8). */
  flowSteps: number;
  /** Trainable LayerNorm([C,H,W]) per level (CNN backbones; not for ViT features). */
  layerNorm: boolean;
  /** 3×3 subnet convs on every step (default false: 1×1 on odd steps). */
  conv3x3Only: boolean;
  /** Subnet hidden width = int(C1 · hiddenRatio) (default 1.0). */
  hiddenRatio: number;
  /** Seed of a fresh model's weights and permutations. */
  seed?: number;
}

export interface FastFlowOptions {
  flowSteps?: number;
  conv3x3Only?: boolean;
  hiddenRatio?: number;
  seed?: number;
}

/** anomalib's defaults: 8 steps, 1×1 on odd steps, hidden ratio 1.0. */
export const FASTFLOW_DEFAULTS = { flowSteps: 8, conv3x3Only: false, hiddenRatio: 1.0 } as const;

export function fastflowConfigFromExtractor(
  extractor: Pick<FeatureExtractor, 'name' | 'inputSize' | 'featureSizes' | 'channels' | 'scaleFactors' | 'layerNormLevels'>,
  opts: FastFlowOptions = {},
): FastFlowModelConfig {
  return {
    backbone: extractor.name,
    inputSize: [extractor.inputSize[0], extractor.inputSize[1]],
    levelSizes: extractor.featureSizes.map(([h, w]) => [h, w] as HW),
    channels: [...extractor.channels],
    scaleFactors: [...extractor.scaleFactors],
    flowSteps: opts.flowSteps ?? FASTFLOW_DEFAULTS.flowSteps,
    // anomalib: LayerNorm after CNN levels, none for ViT features (the same rule as U-Flow's extractors report).
    layerNorm: extractor.layerNormLevels,
    conv3x3Only: opts.conv3x3Only ?? FASTFLOW_DEFAULTS.conv3x3Only,
    hiddenRatio: opts.hiddenRatio ?? FASTFLOW_DEFAULTS.hiddenRatio,
    ...(opts.seed !== undefined ? { seed: opts.seed } : {}),
  };
}

/** Keys of the frozen backbone in an anomalib state dict. */
export function isFastflowBackboneKey(key: string): boolean {
  return key.startsWith('feature_extractor.');
}

const toAnomalib = (key: string) => (key.startsWith(FEATURE_NORM_PREFIX) ? FASTFLOW_NORM_PREFIX + key.slice(FEATURE_NORM_PREFIX.length) : key);

/**
 * FastFlow's loss, Σ_levels mean_b( 0.5·Σ_{h,w,c} z_l[b]² − logdet_l[b] ), with the per-sample
 * sums staged (W, H, then C) so they hold on wasm's sequential float32 Sum. A scalar.
 */
export function fastflowLoss(z: readonly tf.Tensor[], logdets: readonly tf.Tensor1D[]): tf.Scalar {
  if (z.length === 0 || z.length !== logdets.length) throw new Error(`fastflowLoss: ${z.length} latents but ${logdets.length} log-dets`);
  return tf.tidy(() => {
    const per = z.map((zl, l) => tf.mean(tf.sub(tf.mul(sumPerSample(tf.square(zl)), 0.5), logdets[l]!)));
    return (per.length === 1 ? per[0]! : tf.addN(per)) as tf.Scalar;
  });
}

export class FastFlowModel {
  readonly kind = 'fastflow' as const;
  readonly config: Readonly<FastFlowModelConfig & { inputSize: HW }>;
  readonly norm?: FeatureNorm;
  readonly flows: FastFlowFlows;

  constructor(config: FastFlowModelConfig, readonly extractor?: FeatureExtractor) {
    assertExtractorFits('FastFlowModel', config, extractor);
    this.config = ownLevelConfig(config);
    const sizes = this.featureSizes();
    this.flows = new FastFlowFlows({
      channels: config.channels,
      sizes,
      flowSteps: config.flowSteps,
      conv3x3Only: config.conv3x3Only,
      hiddenRatio: config.hiddenRatio,
      seed: config.seed ?? 0,
    });
    if (config.layerNorm) this.norm = new FeatureNorm(sizes.map(([h, w], i) => [h, w, config.channels[i]!] as const));
  }

  static fromExtractor(extractor: FeatureExtractor, opts: FastFlowOptions = {}): FastFlowModel {
    return new FastFlowModel(fastflowConfigFromExtractor(extractor, opts), extractor);
  }

  /** [h, w] of each feature level, finest first. */
  featureSizes(): Array<[number, number]> {
    return levelSizes(this.config);
  }

  /** Frozen backbone features (what the cache stores). */
  extract(images: tf.Tensor4D): tf.Tensor4D[] {
    return extractWith('FastFlowModel', this.extractor, images);
  }

  /** Norm (if any) + per-level flows: latents (finest first), per-level log-dets [B] and their sum [B]. */
  forwardLevels(features: readonly tf.Tensor4D[]): { z: tf.Tensor4D[]; logdets: tf.Tensor1D[]; logdet: tf.Tensor1D } {
    return tf.tidy(() => {
      const { z, logdets } = this.flows.forward(this.norm ? this.norm.apply(features) : features);
      const logdet = (logdets.length === 1 ? tf.clone(logdets[0]!) : tf.addN(logdets)) as tf.Tensor1D;
      return { z, logdets, logdet };
    });
  }

  /** Same contract as UFlowModel.fromFeatures: latents and Σ_levels log|det J| per sample. */
  fromFeatures(features: readonly tf.Tensor4D[]): { z: tf.Tensor4D[]; logdet: tf.Tensor1D } {
    return tf.tidy(() => {
      const { z, logdet } = this.forwardLevels(features);
      return { z, logdet };
    });
  }

  /** images [B,H,W,3] RGB in [0,1] → latents and logdet. */
  forward(images: tf.Tensor4D): { z: tf.Tensor4D[]; logdet: tf.Tensor1D } {
    return tf.tidy(() => this.fromFeatures(this.extract(images)));
  }

  /**
   * The training loss from fromFeatures' outputs: mean_b(Σ_l 0.5·Σ z_l² − Σ_l logdet_l), which is
   * FastFlow's Σ_l mean_b(0.5·Σ z_l² − logdet_l) (the mean is linear). A scalar.
   */
  loss(z: readonly tf.Tensor[], logdet: tf.Tensor1D): tf.Scalar {
    return tf.tidy(() => {
      let lpz: tf.Tensor | undefined;
      for (const zl of z) {
        const t = tf.mul(sumPerSample(tf.square(zl)), 0.5);
        lpz = lpz ? tf.add(lpz, t) : t;
      }
      if (!lpz) throw new Error('FastFlowModel.loss: no latents');
      return tf.mean(tf.sub(lpz, logdet)) as tf.Scalar;
    });
  }

  /** FastFlow's map at `size`: [B,H,W,1] in [−1, 0], higher = more anomalous. */
  anomalyMap(z: readonly tf.Tensor4D[], size: Size): tf.Tensor4D {
    return fastflowAnomalyMap(z, size);
  }

  /** pred_score = max of the map: [B]. */
  imageScore(map: tf.Tensor4D): tf.Tensor1D {
    return fastflowImageScore(map);
  }

  /** The range of anomalyMap's values. */
  mapRange(): readonly [number, number] {
    return FASTFLOW_MAP_RANGE;
  }

  trainableVariables(): NamedVariable[] {
    const norm = (this.norm?.trainableVariables() ?? []).map((v) => ({ name: toAnomalib(v.name), variable: v.variable }));
    return [...norm, ...this.flows.trainableVariables()];
  }

  /** Expected keys and PyTorch shapes (anomalib names), in state_dict order. */
  stateSpec(): Array<{ key: string; shape: number[] }> {
    // anomalib's FastflowModel registers norms (after the backbone) before fast_flow_blocks.
    return [...(this.norm?.stateSpec() ?? []).map((s) => ({ key: toAnomalib(s.key), shape: s.shape })), ...this.flows.stateSpec()];
  }

  /** anomalib's FastflowModel.state_dict() without the backbone: names, layouts and order. */
  stateDict(): TensorMap {
    const out: TensorMap = new Map((this.norm?.state() ?? []).map(([k, t]) => [toAnomalib(k), t]));
    for (const [k, t] of this.flows.stateDict()) out.set(k, t);
    return out;
  }

  /**
   * Loads a state dict with anomalib's names, `model.`-prefixed or not. Backbone keys
   * (`feature_extractor.*`) are returned for the backbone's loader. One error lists every missing
   * key, unexpected key and wrong shape, naming `source`.
   */
  loadStateDict(map: TensorMap, source: string): { backbone: TensorMap } {
    const clean = normalizeReferenceKeys(map, source);
    const get = validateState(clean, this.stateSpec(), source, isFastflowBackboneKey);
    this.flows.loadValidated(get, source);
    this.norm?.loadValidated((k: string): RawTensor => get(toAnomalib(k)));
    return { backbone: new Map([...clean].filter(([k]) => isFastflowBackboneKey(k))) };
  }

  dispose(): void {
    this.norm?.dispose();
    this.flows.dispose();
  }
}
