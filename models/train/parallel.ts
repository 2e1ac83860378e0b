/**
 * Data-parallel training step (U-Flow or FastFlow) over worker threads. The wasm backend runs one thread per
 * isolate in Node, so two workers, each with its own engine and half of the batch, use two cores.
 *
 * The main thread keeps the only authoritative copy of the parameters and the optimizer: each step
 * it sends the current trainable parameters and a part of the batch to every worker, sums the
 * returned loss shares and gradients (lossShare with the whole batch size, so the sums are the
 * whole batch's loss and gradients), and applies Adam itself. The result equals the single-thread
 * trainStep up to float32 summation order.
 */
import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import type { TensorMap } from '../io/safetensors.js';
import type { UFlowModelConfig } from '../uflow-model.js';
import type { FastFlowModelConfig } from '../fastflow-model.js';
import type { ModelKind } from '../model-factory.js';
import type { LossVariant } from './loss.js';
import type { Adam } from './adam.js';

export type WorkerRequest =
  | { type: 'init'; backend: string; kind: ModelKind; config: UFlowModelConfig | FastFlowModelConfig; state: TensorMap; names: string[] }
  | { type: 'grads'; params: Float32Array[]; features: Array<{ data: Float32Array; shape: number[] }>; totalBatch: number; loss?: LossVariant }
  | { type: 'close' };

export type WorkerReply =
  | { type: 'ready'; backend: string }
  | { type: 'grads'; loss: number; grads: Float32Array[] }
  | { type: 'closed' }
  | { type: 'error'; message: string };

/** What the parallel step needs of a model: both UFlowModel and the factory's AnomalyModel fit. */
export interface ParallelModel {
  readonly kind?: ModelKind;
  readonly config: Readonly<UFlowModelConfig> | Readonly<FastFlowModelConfig>;
  stateDict(): TensorMap;
  trainableVariables(): Array<{ name: string; variable: tf.Variable }>;
}

/** The worker script: worker.ts beside this file (tsx / tests), or dist/train-worker.js beside the bundle. */
export function workerEntry(): string {
  const here = fileURLToPath(import.meta.url);
  const dir = dirname(here);
  if (here.endsWith('.ts')) return join(dir, 'worker.ts');
  for (const c of [join(dir, 'train-worker.js'), join(dir, '..', 'dist', 'train-worker.js')]) if (existsSync(c)) return c;
  throw new Error(`the training worker script (train-worker.js) is missing beside ${here}: rebuild with 'npm run build'`);
}

/**
 * Starts the worker. A TypeScript entry (development, tests under tsx) needs tsx's loader inside
 * the worker: Node 20 does not apply `--import tsx` hooks to a worker's entry, so a small eval'd
 * bootstrap registers tsx there and then imports the entry.
 */
function startWorker(entry: string): Worker {
  if (!entry.endsWith('.ts')) return new Worker(entry);
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then((m) => { (m.register ?? m.default.register)(); return import(${JSON.stringify(pathToFileURL(entry).href)}); });`;
  return new Worker(code, { eval: true });
}

class WorkerHandle {
  private pending?: { resolve: (r: WorkerReply) => void; reject: (e: Error) => void };
  private failed?: Error;

  constructor(readonly worker: Worker) {
    worker.on('message', (msg: WorkerReply) => {
      const p = this.pending;
      this.pending = undefined;
      if (!p) return;
      if (msg.type === 'error') p.reject(new Error(`training worker failed: ${msg.message}`));
      else p.resolve(msg);
    });
    const fail = (e: Error) => {
      this.failed = e;
      this.pending?.reject(e);
      this.pending = undefined;
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`training worker exited (code ${code})`)));
  }

  request(msg: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    if (this.failed) return Promise.reject(this.failed);
    if (this.pending) return Promise.reject(new Error('training worker is busy'));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.postMessage(msg, transfer);
    });
  }
}

export interface ParallelOptions {
  /** Number of workers (default: 2, at most the number of cores). */
  workers?: number;
  /** Backend of every worker (default: the main thread's current backend, 'wasm' if none). */
  backend?: string;
  loss?: LossVariant;
}

/** Splits n samples into `parts` nearly equal consecutive ranges (no empty range). */
export function splitBatch(n: number, parts: number): Array<[number, number]> {
  const k = Math.max(1, Math.min(parts, n));
  const out: Array<[number, number]> = [];
  let start = 0;
  for (let i = 0; i < k; i++) {
    const size = Math.floor(n / k) + (i < n % k ? 1 : 0);
    out.push([start, size]);
    start += size;
  }
  return out;
}

export class ParallelTrainer {
  private closed = false;

  private constructor(
    readonly model: ParallelModel,
    private readonly workers: WorkerHandle[],
    private readonly loss: LossVariant | undefined,
  ) {}

  static async create(model: ParallelModel, opts: ParallelOptions = {}): Promise<ParallelTrainer> {
    const n = Math.max(1, opts.workers ?? Math.min(2, availableParallelism()));
    const backend = opts.backend ?? (tf.getBackend() || 'wasm');
    const entry = workerEntry();
    const handles = Array.from({ length: n }, () => new WorkerHandle(startWorker(entry)));
    const trainer = new ParallelTrainer(model, handles, opts.loss);
    try {
      const state = model.stateDict();
      const names = model.trainableVariables().map((v) => v.name);
      await Promise.all(handles.map((h) => h.request({ type: 'init', backend, kind: model.kind ?? 'uflow', config: { ...model.config }, state, names })));
    } catch (e) {
      await trainer.dispose();
      throw e;
    }
    return trainer;
  }

  get size(): number {
    return this.workers.length;
  }

  /** Loss and summed gradients (keyed by variable name, main-engine tensors: caller disposes) for one batch. */
  async gradients(features: readonly tf.Tensor4D[]): Promise<{ loss: number; grads: tf.NamedTensorMap }> {
    if (this.closed) throw new Error('ParallelTrainer is disposed');
    const vars = this.model.trainableVariables();
    const params = vars.map((v) => Float32Array.from(v.variable.dataSync() as Float32Array));
    const B = features[0]!.shape[0];
    const parts = splitBatch(B, this.workers.length);
    const replies = await Promise.all(
      parts.map(([start, size], i) => {
        const feats = features.map((f) => {
          const part = tf.slice(f, [start, 0, 0, 0], [size, -1, -1, -1]);
          const data = Float32Array.from(part.dataSync() as Float32Array);
          part.dispose();
          return { data, shape: [size, f.shape[1], f.shape[2], f.shape[3]] };
        });
        const p = i === parts.length - 1 ? params : params.map((x) => Float32Array.from(x));
        return this.workers[i]!.request({ type: 'grads', params: p, features: feats, totalBatch: B, loss: this.loss }, [...feats.map((f) => f.data.buffer as ArrayBuffer), ...p.map((x) => x.buffer as ArrayBuffer)]);
      }),
    );
    let loss = 0;
    const sums = vars.map((v) => new Float32Array(v.variable.size));
    for (const r of replies) {
      if (r.type !== 'grads') throw new Error(`unexpected worker reply '${r.type}'`);
      loss += r.loss;
      r.grads.forEach((g, j) => {
        const s = sums[j]!;
        for (let k = 0; k < s.length; k++) s[k] = s[k]! + g[k]!;
      });
    }
    const grads: tf.NamedTensorMap = {};
    vars.forEach((v, j) => (grads[v.variable.name] = tf.tensor(sums[j]!, v.variable.shape)));
    return { loss, grads };
  }

  /** One optimisation step on the main model; returns the batch loss before the update. */
  async step(features: readonly tf.Tensor4D[], optimizer: Adam): Promise<number> {
    const { loss, grads } = await this.gradients(features);
    try {
      optimizer.apply(grads);
    } finally {
      tf.dispose(grads);
    }
    return loss;
  }

  async dispose(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.worker.terminate()));
  }
}
