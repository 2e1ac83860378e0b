/** `uflow doctor`: versions, machine, and a self-test of the tensor engine. */
import * as tf from '@tensorflow/tfjs-core';
import { cpus, totalmem } from 'node:os';
import { describeEngine, initEngine, type EngineInfo } from '../models/engine.js';
import { versions } from './job-common.js';

export interface DoctorReport {
  ok: boolean;
  text: string;
  engine?: EngineInfo;
  versions: Record<string, string>;
  error?: string;
}

export async function doctor(opts: { backend?: string } = {}): Promise<DoctorReport> {
  const v = versions();
  const lines = [`uflow ${v.uflow} · node ${v.node} · tfjs ${v.tfjs} · ${v.platform} · ${cpus().length} CPU cores · ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM`];
  try {
    const engine = await initEngine({ backend: opts.backend });
    lines.push(describeEngine(engine));
    // A tiny computation proves the backend works (and that training ops exist there).
    const t0 = performance.now();
    const y = tf.tidy(() => tf.sum(tf.conv2d(tf.ones([1, 16, 16, 4]) as tf.Tensor4D, tf.ones([3, 3, 4, 4]) as tf.Tensor4D, 1, 'same')));
    const val = (await y.data())[0];
    y.dispose();
    lines.push(`self-test: conv2d ok (${val}) in ${(performance.now() - t0).toFixed(1)} ms`);
    return { ok: true, text: lines.join('\n'), engine, versions: v };
  } catch (e) {
    const msg = (e as Error).message;
    lines.push(`engine: ${msg}`);
    return { ok: false, text: lines.join('\n'), versions: v, error: msg };
  }
}
