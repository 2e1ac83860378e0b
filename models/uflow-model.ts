/**
 * The whole U-Flow model: a frozen FeatureExtractor (its outputs are what the feature cache
 * stores), the optional trainable per-level LayerNorm (ResNet variants), and the U-shaped flow.
 * Training runs `fromFeatures` on cached features. The state dict holds the trainable parts with
 * the reference names (`feature_extractor.feature_normalizations.<i>.*`, `flow.module_list.<i>.*`);
 * the backbone's own weights (`feature_extractor.*` otherwise) are handed back to the caller.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorMap } from './io/safetensors.js';
import { uflowSizeError, type HW } from './size.js';
import { assertExtractorFits, extractWith, ownLevelConfig, levelSizes, type FeatureExtractor } from './backbones/types.js';
import { FeatureNorm, FEATURE_NORM_PREFIX } from './backbones/feature-norm.js';
import { UFlowGraph, normalizeReferenceKeys } from './flows/uflow-graph.js';
import type { NamedVariable } from './flows/allinone-block.js';
import { validateState } from './flows/state.js';

export interface UFlowModelConfig {
  /** Backbone name (metadata; e.g. 'resnet18', 'mcait'). */
  backbone: string;
  /** [height, width] (one integer in configs written before non-square sizes: square). */
  inputSize: HW | number;
  /** Channels of each feature level, finest first. */
  channels: number[];
  /** Nominal stride of each level, finest first. */
  scaleFactors: number[];
  /** [h, w] of each level, finest first, as the backbone computes them; absent in old configs: ⌊H/stride⌋ × ⌊W/stride⌋. */
  levelSizes?: HW[];
  flowSteps: number;
  /** Trainable LayerNorm([C,H,W]) after each level (ResNet variants). */
  layerNorm: boolean;
  /** Seed of a fresh model's weights and permutations. */
  seed?: number;
}

export function configFromExtractor(extractor: FeatureExtractor, flowSteps: number, seed?: number): UFlowModelConfig {
  return {
    backbone: extractor.name,
    inputSize: [extractor.inputSize[0], extractor.inputSize[1]],
    levelSizes: extractor.featureSizes.map(([h, w]) => [h, w] as HW),
    channels: [...extractor.channels],
    scaleFactors: [...extractor.scaleFactors],
    flowSteps,
    layerNorm: extractor.layerNormLevels,
    ...(seed !== undefined ? { seed } : {}),
  };
}

/** Keys that belong to the frozen backbone (state dict of an official checkpoint). */
export function isBackboneKey(key: string): boolean {
  return key.startsWith('feature_extractor.') && !key.startsWith(FEATURE_NORM_PREFIX);
}

export class UFlowModel {
  readonly config: Readonly<UFlowModelConfig & { inputSize: HW }>;
  readonly norm?: FeatureNorm;
  readonly flow: UFlowGraph;

  constructor(config: UFlowModelConfig, readonly extractor?: FeatureExtractor) {
    assertExtractorFits('UFlowModel', config, extractor);
    this.config = ownLevelConfig(config);
    const sizes = this.featureSizes();
    const bad = uflowSizeError(config.backbone, this.config.inputSize, config.scaleFactors, sizes);
    if (bad) throw new Error(bad);
    if (config.layerNorm) this.norm = new FeatureNorm(sizes.map(([h, w], i) => [h, w, config.channels[i]!] as const));
    this.flow = new UFlowGraph({ channels: config.channels, sizes, flowSteps: config.flowSteps, seed: config.seed ?? 0 });
  }

  static fromExtractor(extractor: FeatureExtractor, opts: { flowSteps?: number; seed?: number } = {}): UFlowModel {
    return new UFlowModel(configFromExtractor(extractor, opts.flowSteps ?? 4, opts.seed), extractor);
  }

  /** [h, w] of each feature level, finest first. */
  featureSizes(): Array<[number, number]> {
    return levelSizes(this.config);
  }

  /** Frozen backbone features (what the cache stores). */
  extract(images: tf.Tensor4D): tf.Tensor4D[] {
    return extractWith('UFlowModel', this.extractor, images);
  }

  /** Normalisation (if any) + flow on backbone features (NHWC, finest first). */
  fromFeatures(features: readonly tf.Tensor4D[]): { z: tf.Tensor4D[]; logdet: tf.Tensor1D } {
    return tf.tidy(() => this.flow.forward(this.norm ? this.norm.apply(features) : features));
  }

  /** images [B,H,W,3] RGB in [0,1] → latents and logdet. */
  forward(images: tf.Tensor4D): { z: tf.Tensor4D[]; logdet: tf.Tensor1D } {
    return tf.tidy(() => this.fromFeatures(this.extract(images)));
  }

  trainableVariables(): NamedVariable[] {
    return [...(this.norm?.trainableVariables() ?? []), ...this.flow.trainableVariables()];
  }

  /** Expected keys and PyTorch shapes of the trainable parts (plus w_perm, w_perm_inv, downsample_kernel). */
  stateSpec(): Array<{ key: string; shape: number[] }> {
    return [...(this.norm?.stateSpec() ?? []), ...this.flow.stateSpec()];
  }

  /** Reference names and layouts: feature normalisations first (as in UFlow.state_dict()), then the flow. */
  stateDict(): TensorMap {
    const out: TensorMap = new Map(this.norm?.state() ?? []);
    for (const [k, t] of this.flow.stateDict()) out.set(k, t);
    return out;
  }

  /**
   * Loads a state dict with the reference names, `model.`-prefixed or not; training leftovers are
   * dropped. Backbone keys are not this model's: they are returned for the backbone's loader. One
   * error lists every missing key, unexpected key and wrong shape, naming `source`.
   */
  loadStateDict(map: TensorMap, source: string): { backbone: TensorMap } {
    const clean = normalizeReferenceKeys(map, source);
    const get = validateState(clean, this.stateSpec(), source, isBackboneKey);
    this.norm?.loadValidated(get);
    this.flow.loadValidated(get, source);
    return { backbone: new Map([...clean].filter(([k]) => isBackboneKey(k))) };
  }

  dispose(): void {
    this.norm?.dispose();
    this.flow.dispose();
  }
}
