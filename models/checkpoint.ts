/**
 * U-Flow checkpoints: `checkpoint.safetensors` with the reference PyTorch state_dict names (so a
 * file moves between this product and PyTorch both ways) and the model configuration as JSON in
 * the safetensors metadata. Writes are atomic; a save → load → save round trip is bit-identical.
 * Files without our metadata (converted official checkpoints, `model.`-prefixed) load given a config.
 */
import { readSafetensors, TensorFileError, writeSafetensors, type TensorMap } from './io/safetensors.js';
import type { FeatureExtractor } from './backbones/types.js';
import { UFlowModel, type UFlowModelConfig } from './uflow-model.js';

export const CHECKPOINT_FORMAT = 'uflow-vscode/uflow-checkpoint@1';
export const CHECKPOINT_FILE = 'checkpoint.safetensors';

export interface CheckpointContents {
  state: TensorMap;
  /** The model configuration if the file carries one (ours do; converted reference files may not). */
  config?: UFlowModelConfig;
  /** Every metadata entry, as stored. */
  metadata: Record<string, string>;
}

/** Writes the model's state and config (plus `extra` string metadata) atomically. */
export function saveCheckpoint(path: string, model: UFlowModel, extra: Record<string, string> = {}): void {
  writeSafetensors(path, model.stateDict(), { ...extra, format: CHECKPOINT_FORMAT, model: 'uflow', config: JSON.stringify(model.config) });
}

export function readCheckpoint(path: string): CheckpointContents {
  const { tensors, metadata } = readSafetensors(path);
  let config: UFlowModelConfig | undefined;
  if (metadata.config !== undefined) {
    try {
      config = JSON.parse(metadata.config) as UFlowModelConfig;
    } catch (e) {
      throw new TensorFileError(path, `its metadata 'config' is not valid JSON (${(e as Error).message}); the file is damaged: save it again`);
    }
    if (metadata.model !== undefined && metadata.model !== 'uflow') {
      throw new TensorFileError(path, `this is a '${metadata.model}' checkpoint, not a U-Flow one`);
    }
  }
  return { state: tensors, config, metadata };
}

/**
 * Builds a model from a checkpoint. The config comes from the file, or from `opts.config` for
 * reference-named files that carry none (e.g. a converted official checkpoint). With an extractor,
 * its shapes must match. Returns the model and the backbone keys found in the file.
 */
export function loadCheckpoint(path: string, opts: { extractor?: FeatureExtractor; config?: UFlowModelConfig } = {}): { model: UFlowModel; backbone: TensorMap; metadata: Record<string, string> } {
  const { state, config, metadata } = readCheckpoint(path);
  const cfg = config ?? opts.config;
  if (!cfg) {
    throw new TensorFileError(path, 'the file carries no model configuration (not saved by this product): give the backbone, input size and flow_steps it was trained with');
  }
  const model = new UFlowModel(cfg, opts.extractor);
  try {
    const { backbone } = model.loadStateDict(state, path);
    return { model, backbone, metadata };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** Loads a checkpoint file's weights into an existing model (reference names, `model.` prefix accepted). */
export function loadCheckpointInto(model: UFlowModel, path: string): { backbone: TensorMap; metadata: Record<string, string> } {
  const { state, metadata } = readCheckpoint(path);
  return { ...model.loadStateDict(state, path), metadata };
}
