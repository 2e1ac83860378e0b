/**
 * Which engine runs inference for predict, evaluate and the daemon: onnxruntime-node (the run's
 * model exported to ONNX in memory, models/export/ort-session.ts) by default where it loads and the
 * model is exportable, else tfjs, the reference, with the reason recorded. `--engine onnx|tfjs`
 * (CLI), `engine` (daemon params), UFLOW_INFERENCE_ENGINE (the default; VS Code's
 * uflow.inferenceEngine setting sets it for the daemon). Nothing is written to disk.
 */
import type { AnomalyModel } from '../models/model-factory.js';
import { exportOnnx, unsupportedReason } from '../models/export/onnx-export.js';
import { loadOrt, ortVersion, OrtModelSession } from '../models/export/ort-session.js';
import type { InferenceInfo } from './protocol.js';
import { PipelineError } from './runs.js';
import type { HW } from '../models/size.js';

export type InferenceEngine = 'onnx' | 'tfjs';
export const INFERENCE_ENGINES: readonly InferenceEngine[] = ['onnx', 'tfjs'];

/** An engine named by a flag, a param or UFLOW_INFERENCE_ENGINE ('auto' or empty: undefined, the default). */
export function parseEngine(v: unknown, what = '--engine'): InferenceEngine | undefined {
  if (v === undefined || v === null || v === '' || v === 'auto') return undefined;
  if (v === 'onnx' || v === 'tfjs') return v;
  throw new PipelineError(`${what}: '${String(v)}' is not an inference engine (onnx, tfjs, auto)`, 'Usage');
}

/** The engine asked for: the option, else UFLOW_INFERENCE_ENGINE. */
export function requestedEngine(asked: InferenceEngine | undefined, env: NodeJS.ProcessEnv = process.env): { engine?: InferenceEngine; by: string } {
  if (asked) return { engine: asked, by: 'asked for' };
  const fromEnv = parseEngine(env.UFLOW_INFERENCE_ENGINE, 'UFLOW_INFERENCE_ENGINE');
  return fromEnv ? { engine: fromEnv, by: 'UFLOW_INFERENCE_ENGINE' } : { by: 'default' };
}

/**
 * The ONNX session of a loaded model, or undefined with why tfjs runs instead. A notice (a
 * provider fallback, or onnx asked for but not possible) goes to `warn` as one line.
 */
export async function inferenceFor(
  model: AnomalyModel,
  opts: {
    /** [Th, Tw] of the anomaly map: the run's evaluation size (run-model.ts targetSizeOf). */
    mapSize: HW;
    engine?: InferenceEngine;
    providers?: readonly string[];
    warn?: (line: string) => void;
  },
): Promise<{ session?: OrtModelSession; info: InferenceInfo }> {
  const req = requestedEngine(opts.engine);
  const tfjs = (reason: string) => {
    if (req.engine === 'onnx') opts.warn?.(`inference on tfjs instead of onnx: ${reason}`);
    return { info: { engine: 'tfjs' as const, reason } };
  };
  if (req.engine === 'tfjs') return { info: { engine: 'tfjs', reason: req.by === 'asked for' ? 'asked for (engine tfjs)' : `UFLOW_INFERENCE_ENGINE=tfjs` } };
  const why = unsupportedReason(model);
  if (why) return tfjs(why);
  const loaded = await loadOrt();
  if ('reason' in loaded) return tfjs(loaded.reason);
  const { ort } = loaded;
  const built = exportOnnx(model, { mapSize: opts.mapSize, producerVersion: 'in-memory' });
  const session = await OrtModelSession.create(ort, built.bytes, {
    inputSize: model.config.inputSize,
    mapSize: opts.mapSize,
    levels: built.outputs.filter((o) => /^z\d+$/.test(o.name)).length,
    providers: opts.providers,
  });
  if (session.notice) opts.warn?.(session.notice);
  const how = req.engine === 'onnx' ? (req.by === 'asked for' ? 'asked for' : 'UFLOW_INFERENCE_ENGINE=onnx') : 'default: onnxruntime-node loaded and the model exports';
  return {
    session,
    info: { engine: 'onnx', reason: `${how}; onnxruntime-node ${ortVersion(ort)}${session.notice ? ` (${session.notice})` : ''}`, providers: session.providers },
  };
}
