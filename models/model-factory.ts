/**
 * One entry point for both flow models, so the trainer, evaluation and prediction use either:
 * `createModel('uflow' | 'fastflow', settings, extractor)` and the checkpoint functions below
 * return an `AnomalyModel`.
 *
 * - U-Flow: `UFlowAnomalyModel` is a UFlowModel (same class, so everything that takes a UFlowModel,
 *   e.g. checkpoint.ts, still does) with the common additions: kind, loss (official HEAD), anomaly
 *   map 1 − P in [0, 1].
 * - FastFlow: FastFlowModel (anomalib layout); anomaly map −P in [−1, 0].
 * In both, higher map values mean more anomalous and the image score is the map's max. Both
 * produce Gaussian latents, so the a-contrario NFA (tree or block) applies to either's `z`.
 *
 * Checkpoints: safetensors with reference state names (U-Flow: official U-Flow names; FastFlow:
 * anomalib's) and the model kind + config in the metadata. U-Flow files are exactly what
 * checkpoint.ts writes. Files without our metadata (converted reference checkpoints) are
 * recognised by their keys and need a config from the caller.
 */
import * as tf from '@tensorflow/tfjs-core';
import { readSafetensors, TensorFileError, writeSafetensors, type TensorMap } from './io/safetensors.js';
import type { FeatureExtractor } from './backbones/types.js';
import type { NamedVariable } from './flows/allinone-block.js';
import { normalizeReferenceKeys } from './flows/uflow-graph.js';
import { UFlowModel, configFromExtractor, type UFlowModelConfig } from './uflow-model.js';
import { CHECKPOINT_FORMAT, saveCheckpoint } from './checkpoint.js';
import { FastFlowModel, fastflowConfigFromExtractor, FASTFLOW_DEFAULTS, type FastFlowModelConfig } from './fastflow-model.js';
import { FASTFLOW_PREFIX } from './flows/fastflow.js';
import { anomalyMap as uflowAnomalyMap, imageScore, type Size } from './scores/anomaly-map.js';
import { uflowLoss } from './train/loss.js';
import { readTorchCheckpoint, uflowStateDict } from './io/torch-checkpoint.js';

export type ModelKind = 'uflow' | 'fastflow';
export const MODEL_KINDS: readonly ModelKind[] = ['uflow', 'fastflow'];

/** What every flow model offers the trainer, evaluation and prediction. */
export interface AnomalyModel {
  readonly kind: ModelKind;
  readonly config: Readonly<UFlowModelConfig> | Readonly<FastFlowModelConfig>;
  readonly extractor?: FeatureExtractor;
  /** [h, w] of each feature level, finest first. */
  featureSizes(): Array<[number, number]>;
  /** Frozen backbone features (what the feature cache stores). */
  extract(images: tf.Tensor4D): tf.Tensor4D[];
  /** Trainable norm (if any) + flow on cached features: latents (finest first, NHWC) and Σ log|det J| per sample [B]. */
  fromFeatures(features: readonly tf.Tensor4D[]): { z: tf.Tensor4D[]; logdet: tf.Tensor1D };
  forward(images: tf.Tensor4D): { z: tf.Tensor4D[]; logdet: tf.Tensor1D };
  /** The model's training loss from fromFeatures' outputs (both: mean_b(0.5·Σ z² − logdet)). */
  loss(z: readonly tf.Tensor[], logdet: tf.Tensor1D): tf.Scalar;
  /** Anomaly map [B,H,W,1] at `size`; higher = more anomalous. */
  anomalyMap(z: readonly tf.Tensor4D[], size: Size): tf.Tensor4D;
  /** Image score (max of the map), [B]. */
  imageScore(map: tf.Tensor4D): tf.Tensor1D;
  /** The range anomalyMap's values lie in (U-Flow [0, 1], FastFlow [−1, 0]). */
  mapRange(): readonly [number, number];
  trainableVariables(): NamedVariable[];
  stateSpec(): Array<{ key: string; shape: number[] }>;
  /** Reference names and PyTorch layouts (no backbone weights). */
  stateDict(): TensorMap;
  /** Loads reference-named weights (`model.` prefix accepted); returns the backbone's keys found. */
  loadStateDict(map: TensorMap, source: string): { backbone: TensorMap };
  dispose(): void;
}

const UFLOW_MAP_RANGE: readonly [number, number] = [0, 1];

/** A UFlowModel with the AnomalyModel additions (still `instanceof UFlowModel`). */
export class UFlowAnomalyModel extends UFlowModel implements AnomalyModel {
  readonly kind = 'uflow' as const;

  loss(z: readonly tf.Tensor[], logdet: tf.Tensor1D): tf.Scalar {
    return uflowLoss(z, logdet);
  }

  anomalyMap(z: readonly tf.Tensor4D[], size: Size): tf.Tensor4D {
    return uflowAnomalyMap(z, size);
  }

  imageScore(map: tf.Tensor4D): tf.Tensor1D {
    return imageScore(map);
  }

  mapRange(): readonly [number, number] {
    return UFLOW_MAP_RANGE;
  }
}

/**
 * The model settings of a run config (the YAML `model:` keys; structurally the protocol's
 * ModelConfig). U-Flow reads flow_steps; FastFlow also hidden_ratio and conv3x3_only.
 */
export interface ModelSettings {
  flow_steps?: number;
  hidden_ratio?: number;
  conv3x3_only?: boolean;
}

/** The extractor, or just its shapes (a model built from this cannot `extract`). */
export type ExtractorInfo = Pick<FeatureExtractor, 'name' | 'inputSize' | 'featureSizes' | 'channels' | 'scaleFactors' | 'layerNormLevels'>;

function isExtractor(e: ExtractorInfo): e is FeatureExtractor {
  return typeof (e as Partial<FeatureExtractor>).extract === 'function';
}

export function isModelKind(s: unknown): s is ModelKind {
  return s === 'uflow' || s === 'fastflow';
}

function checkKind(kind: string): ModelKind {
  if (!isModelKind(kind)) throw new Error(`unknown model '${kind}': choose one of ${MODEL_KINDS.join(', ')}`);
  return kind;
}

/** The range of a kind's anomaly map (for colour scales): U-Flow 1 − P in [0, 1], FastFlow −P in [−1, 0]. */
export function mapRangeOf(kind: ModelKind): [number, number] {
  return kind === 'fastflow' ? [-1, 0] : [0, 1];
}

/** Default flow steps: U-Flow 4 (official configs), FastFlow 8 (anomalib). */
export function defaultFlowSteps(kind: ModelKind): number {
  return kind === 'fastflow' ? FASTFLOW_DEFAULTS.flowSteps : 4;
}

/** The full model configuration a fresh model of `kind` gets for this extractor and these settings. */
export function modelConfigFor(kind: ModelKind, settings: ModelSettings, extractor: ExtractorInfo, seed?: number): UFlowModelConfig | FastFlowModelConfig {
  const flowSteps = settings.flow_steps ?? defaultFlowSteps(kind);
  if (checkKind(kind) === 'fastflow') {
    return fastflowConfigFromExtractor(extractor, {
      flowSteps,
      hiddenRatio: settings.hidden_ratio ?? FASTFLOW_DEFAULTS.hiddenRatio,
      conv3x3Only: settings.conv3x3_only ?? FASTFLOW_DEFAULTS.conv3x3Only,
      seed,
    });
  }
  return configFromExtractor(extractor as FeatureExtractor, flowSteps, seed);
}

/** Builds a model from a full configuration (e.g. a checkpoint's). */
export function modelFromConfig(kind: ModelKind, config: UFlowModelConfig | FastFlowModelConfig, extractor?: FeatureExtractor): AnomalyModel {
  if (checkKind(kind) === 'fastflow') {
    const c = config as Partial<FastFlowModelConfig> & UFlowModelConfig;
    return new FastFlowModel(
      { ...c, conv3x3Only: c.conv3x3Only ?? FASTFLOW_DEFAULTS.conv3x3Only, hiddenRatio: c.hiddenRatio ?? FASTFLOW_DEFAULTS.hiddenRatio },
      extractor,
    );
  }
  return new UFlowAnomalyModel(config as UFlowModelConfig, extractor);
}

/**
 * A fresh model of `kind` for this extractor. `settings` are the run config's model keys;
 * `seed` draws the initial weights and permutations.
 */
export function createModel(kind: ModelKind, settings: ModelSettings, extractor: ExtractorInfo, opts: { seed?: number } = {}): AnomalyModel {
  const config = modelConfigFor(kind, settings, extractor, opts.seed);
  return modelFromConfig(kind, config, isExtractor(extractor) ? extractor : undefined);
}

// ---------------------------------------------------------------------------------------------
// Checkpoints

/** Writes the model's state (reference names) and kind + config in the metadata, atomically. */
export function saveModelCheckpoint(path: string, model: AnomalyModel, extra: Record<string, string> = {}): void {
  if (model instanceof UFlowModel) {
    saveCheckpoint(path, model, extra);
    return;
  }
  writeSafetensors(path, model.stateDict(), { ...extra, format: CHECKPOINT_FORMAT, model: model.kind, config: JSON.stringify(model.config) });
}

export interface ModelCheckpointContents {
  kind: ModelKind;
  state: TensorMap;
  /** The model configuration if the file carries one (ours do; converted reference files may not). */
  config?: UFlowModelConfig | FastFlowModelConfig;
  metadata: Record<string, string>;
}

/** The kind of a reference-named state dict without our metadata: anomalib FastFlow or U-Flow keys. */
export function kindOfState(state: TensorMap, source: string): ModelKind | undefined {
  const keys = [...normalizeReferenceKeys(state, source).keys()];
  if (keys.some((k) => k.startsWith(FASTFLOW_PREFIX))) return 'fastflow';
  if (keys.some((k) => k.startsWith('flow.module_list.'))) return 'uflow';
  return undefined;
}

/** PyTorch files (torch.save / Lightning): the released U-Flow checkpoints are `.ckpt`. */
export function isTorchCheckpointPath(path: string): boolean {
  return /\.(ckpt|pt|pth)$/i.test(path);
}

function readTorchState(path: string): { tensors: TensorMap; metadata: Record<string, string> } {
  const ck = readTorchCheckpoint(path);
  if (!ck.stateDict) throw new TensorFileError(path, 'no state_dict (nor a dict of tensors) was found in this PyTorch file: is it a model checkpoint?');
  // The official loader keeps what follows the last `model.` and drops the training leftovers.
  return { tensors: uflowStateDict(ck.stateDict), metadata: {} };
}

export function readModelCheckpoint(path: string): ModelCheckpointContents {
  const { tensors, metadata } = isTorchCheckpointPath(path) ? readTorchState(path) : readSafetensors(path);
  let config: UFlowModelConfig | FastFlowModelConfig | undefined;
  if (metadata.config !== undefined) {
    try {
      config = JSON.parse(metadata.config) as UFlowModelConfig | FastFlowModelConfig;
    } catch (e) {
      throw new TensorFileError(path, `its metadata 'config' is not valid JSON (${(e as Error).message}); the file is damaged: save it again`);
    }
  }
  const stored = metadata.model;
  if (stored !== undefined && !isModelKind(stored)) throw new TensorFileError(path, `this is a '${stored}' checkpoint; this product reads ${MODEL_KINDS.join(' and ')} checkpoints`);
  const kind = (stored as ModelKind | undefined) ?? kindOfState(tensors, path);
  if (!kind) {
    throw new TensorFileError(path, 'neither U-Flow (flow.module_list.*) nor FastFlow (fast_flow_blocks.*) weights were found in it: is it a checkpoint of a flow model?');
  }
  return { kind, state: tensors, config, metadata };
}

/**
 * Builds the model a checkpoint holds (U-Flow or FastFlow). The config comes from the file, or from
 * `opts.config` for reference-named files that carry none. `opts.kind`, when given, must match the
 * file's. With an extractor, its shapes must match the config. Returns the model, the backbone keys
 * found in the file and the file's metadata.
 */
export function loadModelFromCheckpoint(
  path: string,
  opts: { extractor?: FeatureExtractor; kind?: ModelKind; config?: UFlowModelConfig | FastFlowModelConfig } = {},
): { model: AnomalyModel; backbone: TensorMap; metadata: Record<string, string> } {
  const { kind, state, config, metadata } = readModelCheckpoint(path);
  if (opts.kind && opts.kind !== kind) throw new TensorFileError(path, `this is a ${kind} checkpoint, but a ${opts.kind} model was asked for`);
  const cfg = config ?? opts.config;
  if (!cfg) {
    throw new TensorFileError(path, 'the file carries no model configuration (not saved by this product): give the backbone, input size and flow_steps it was trained with');
  }
  const model = modelFromConfig(kind, cfg, opts.extractor);
  try {
    const { backbone } = model.loadStateDict(state, path);
    return { model, backbone, metadata };
  } catch (e) {
    model.dispose();
    throw e;
  }
}
