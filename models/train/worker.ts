/**
 * Worker-thread entry of the data-parallel trainer (models/train/parallel.ts; bundled to
 * dist/train-worker.js). Each worker owns its own tensor engine (wasm runs one thread per
 * isolate) and a replica of the model. It is a stateless gradient calculator: every request
 * brings the current trainable parameters and a part of the batch, and gets back that part's
 * loss share and gradients (summed over the parts, they are the whole batch's).
 */
import { parentPort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../engine.js';
import { modelFromConfig, type AnomalyModel } from '../model-factory.js';
import { computeGradients } from './step.js';
import type { WorkerReply, WorkerRequest } from './parallel.js';

let model: AnomalyModel | undefined;

function reply(msg: WorkerReply, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(msg, transfer);
}

async function handle(msg: WorkerRequest): Promise<void> {
  switch (msg.type) {
    case 'init': {
      const info = await initEngine({ backend: msg.backend });
      model?.dispose();
      model = modelFromConfig(msg.kind, msg.config);
      model.loadStateDict(msg.state, 'parallel trainer state');
      const names = model.trainableVariables().map((v) => v.name);
      if (names.join('\n') !== msg.names.join('\n')) throw new Error('the worker model does not have the same trainable parameters as the main one');
      reply({ type: 'ready', backend: info.backend });
      return;
    }
    case 'grads': {
      if (!model) throw new Error('worker not initialised');
      const vars = model.trainableVariables();
      tf.tidy(() => {
        msg.params.forEach((p, i) => {
          const v = vars[i]!.variable;
          v.assign(tf.tensor(p, v.shape));
        });
      });
      const feats = msg.features.map((f) => tf.tensor4d(f.data, f.shape as [number, number, number, number]));
      const { loss, grads } = computeGradients(model, feats, { totalBatch: msg.totalBatch, loss: msg.loss });
      const out = vars.map((v) => Float32Array.from(grads[v.variable.name]!.dataSync() as Float32Array));
      tf.dispose([...feats, ...Object.values(grads)]);
      reply({ type: 'grads', loss, grads: out }, out.map((g) => g.buffer as ArrayBuffer));
      return;
    }
    case 'close':
      model?.dispose();
      model = undefined;
      reply({ type: 'closed' });
      return;
  }
}

if (!parentPort) throw new Error('models/train/worker.ts must run in a worker thread');
parentPort.on('message', (msg: WorkerRequest) => {
  handle(msg).catch((e: unknown) => reply({ type: 'error', message: (e as Error)?.stack ?? String(e) }));
});
