/**
 * `uflow export`: a run's model as one ONNX file (models/export), with the run's metadata — input
 * size and normalisation, the detection threshold and its calibration (calibration.json), the
 * model's name and version — in the model's metadata_props. The run is found as predict finds it
 * (--run, else the newest finished run of -cat) and the same checkpoint is exported
 * (best-pixel_auroc when training validated, else the last). Nothing in the run folder changes
 * unless the output is written there (the default: <run>/model.onnx).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { atomicWriteFile } from '../models/io/atomic.js';
import { backboneSupported, exportOnnx, ExportUnsupportedError, ONNX_EXPORT_FORMAT, SUPPORTED_BACKBONES, type OnnxIo } from '../models/export/onnx-export.js';
import { savedCalibration, summaryOf } from './calibration.js';
import type { FeatureExtractor } from '../models/backbones/types.js';
import { readModelCheckpoint, type AnomalyModel } from '../models/model-factory.js';
import { ensureEngine, pickRun } from './job-common.js';
import type { PredictorOptions } from './predict.js';
import type { RunConfig } from './protocol.js';
import { buildExtractor, loadCheckpointChecked, predictorCheckpoint, targetSizeOf } from './run-model.js';
import { PipelineError, type StoredRun } from './runs.js';

/** The product version written as the ONNX producer_version. */
export const PRODUCER_VERSION = '0.1.0';
export const DEFAULT_EXPORT_FILE = 'model.onnx';

export interface ExportOptions {
  trainDir: string;
  runId?: string;
  category?: string;
  /** Output file (default <run dir>/model.onnx). */
  out?: string;
  backend?: string;
}

export interface ExportResult {
  runId: string;
  path: string;
  bytes: number;
  checkpoint: string;
  inputs: OnnxIo[];
  outputs: OnnxIo[];
  metadata: Record<string, string>;
  nodes: number;
  parameters: number;
}

/** Why a run's configuration cannot be exported yet (one sentence), before its backbone is built. */
export function exportRefusal(kind: string, config: RunConfig): string | undefined {
  const b = config.model.backbone;
  if (kind !== 'uflow' && kind !== 'fastflow') return `ONNX export does not support the model '${kind}' yet.`;
  if (!backboneSupported(b)) {
    return `ONNX export does not support the backbone '${b}' yet (supported: ${SUPPORTED_BACKBONES.join(', ')}).`;
  }
  return undefined;
}

/** The threshold and its calibration as stored in the ONNX metadata. */
function thresholdMetadata(runDir: string, checkpoint: string, holdoutImages: number): Record<string, string> {
  const entry = savedCalibration(runDir, checkpoint);
  const summary = summaryOf(entry, holdoutImages);
  const threshold = {
    variant: summary.variant,
    rule: 'a pixel is anomalous where −log10 NFA > 0, the NFA computed on the latents (z0…) outside this graph',
    negLogNfa: 0,
    description: summary.description,
  };
  return {
    threshold: JSON.stringify(threshold),
    ...(entry ? { calibration: JSON.stringify(entry) } : {}),
  };
}

export async function exportRun(opts: ExportOptions): Promise<ExportResult> {
  const trainDir = resolve(opts.trainDir);
  // Refused before the backbone is built (which may download weights).
  const picked = pickRun(trainDir, opts.runId, opts.category);
  const refusal = exportRefusal(picked.model, picked.config);
  if (refusal) throw new PipelineError(refusal, 'NotAvailable', true);
  const { run, checkpoint, model, extractor, metadata: ckMeta } = await openRunModel({ trainDir, runId: basename(picked.dir), backend: opts.backend });
  try {
    const sha = createHash('sha256').update(readFileSync(checkpoint)).digest('hex');
    const epoch = ckMeta.epoch ?? String(run.epochsDone);
    const runMeta: Record<string, string> = {
      model_version: `${run.runId}/${basename(checkpoint)} (epoch ${epoch}, sha256 ${sha.slice(0, 12)})`,
      run_id: run.runId,
      category: run.category,
      checkpoint: basename(checkpoint),
      checkpoint_sha256: sha,
      epoch,
      ...thresholdMetadata(run.dir, checkpoint, run.holdout?.images.length ?? 0),
      producer: `uflow-vscode ${PRODUCER_VERSION}`,
      exported_at: new Date().toISOString(),
    };
    let built;
    try {
      built = exportOnnx(model, {
        mapSize: targetSizeOf(run.config),
        producerVersion: PRODUCER_VERSION,
        metadata: runMeta,
        docString: `${ONNX_EXPORT_FORMAT}: ${run.model} run ${run.runId} (${run.category}); inputs, outputs and the detection threshold are described in metadata_props`,
      });
    } catch (e) {
      if (e instanceof ExportUnsupportedError) throw new PipelineError(e.message, 'NotAvailable', true);
      throw e;
    }
    const path = resolve(opts.out ?? join(run.dir, DEFAULT_EXPORT_FILE));
    atomicWriteFile(path, built.bytes);
    return {
      runId: run.runId,
      path,
      bytes: built.bytes.length,
      checkpoint,
      inputs: built.inputs,
      outputs: built.outputs,
      metadata: built.metadata,
      nodes: built.stats.nodes,
      parameters: built.stats.parameters,
    };
  } finally {
    model.dispose();
    extractor.dispose();
  }
}

/**
 * A run's model as predict opens it (the same checkpoint, backbone and engine), for `uflow export`.
 * The caller disposes `model` and `extractor`.
 */
async function openRunModel(opts: PredictorOptions): Promise<{ run: StoredRun; checkpoint: string; model: AnomalyModel; extractor: FeatureExtractor; metadata: Record<string, string> }> {
  const run = pickRun(resolve(opts.trainDir), opts.runId, opts.category);
  const checkpoint = predictorCheckpoint(run);
  if (!existsSync(checkpoint)) throw new PipelineError(`run ${run.runId} has no checkpoint yet (${checkpoint}): it has not completed an epoch`, 'NotFound');
  await ensureEngine(opts.backend);
  const extractor = await buildExtractor(run.config, undefined, () => {});
  try {
    const { model } = loadCheckpointChecked(checkpoint, extractor);
    return { run, checkpoint, model, extractor, metadata: readModelCheckpoint(checkpoint).metadata };
  } catch (e) {
    extractor.dispose();
    throw e;
  }
}
