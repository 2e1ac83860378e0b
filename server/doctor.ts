/**
 * `uflow doctor`: versions, machine, a self-test of the tensor engine, what `backbone: auto` would
 * train U-Flow with on this machine and why (server/backbone-policy.ts), and whether onnxruntime-node
 * (the default inference engine of predict and evaluate) loads: its version and execution
 * providers, or why not. onnxruntime-node is optional (tfjs takes over): it does not make doctor fail.
 */
import * as tf from '@tensorflow/tfjs-core';
import { cpus, totalmem } from 'node:os';
import { describeEngine, initEngine, type EngineInfo } from '../models/engine.js';
import { loadOrt, ortVersion } from '../models/export/ort-session.js';
import { versions } from './job-common.js';
import type { AutoBackboneChoice } from './protocol.js';
import { describeChoice, resolveAutoBackbone } from './backbone-policy.js';

export interface DoctorReport {
  ok: boolean;
  text: string;
  engine?: EngineInfo;
  versions: Record<string, string>;
  /** onnxruntime-node: its version and execution providers, or why it did not load. */
  onnxruntime: OrtReport;
  /** What `backbone: auto` would choose for a U-Flow run (no input_size set) with this engine. */
  autoBackbone?: AutoBackboneChoice;
  error?: string;
}

export type OrtReport = { loaded: true; version: string; providers: string[] } | { loaded: false; reason: string };

/** Whether onnxruntime-node loads here, with its version and the execution providers this build has. */
export async function ortReport(env: NodeJS.ProcessEnv = process.env): Promise<OrtReport> {
  const r = await loadOrt(env);
  if ('reason' in r) return { loaded: false, reason: r.reason };
  let providers: string[];
  try {
    providers = r.ort.listSupportedBackends().map((b) => b.name);
  } catch (e) {
    return { loaded: false, reason: `onnxruntime-node loaded but could not list its execution providers (${(e as Error)?.message ?? String(e)})` };
  }
  return { loaded: true, version: ortVersion(r.ort), providers };
}

export function describeOrt(r: OrtReport): string {
  return r.loaded
    ? `onnxruntime-node ${r.version} · execution providers in this build: ${r.providers.join(', ') || '(none listed)'}`
    : `onnxruntime-node: not available: ${r.reason} (predict and evaluate use tfjs)`;
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
    const autoBackbone = await resolveAutoBackbone('uflow', engine.backend, undefined);
    lines.push(describeChoice(autoBackbone));
    if (autoBackbone.notice) lines.push(`  notice: ${autoBackbone.notice}`);
    const onnxruntime = await ortReport();
    lines.push(describeOrt(onnxruntime));
    return { ok: true, text: lines.join('\n'), engine, versions: v, onnxruntime, autoBackbone };
  } catch (e) {
    const msg = (e as Error).message;
    lines.push(`engine: ${msg}`);
    const onnxruntime = await ortReport();
    lines.push(describeOrt(onnxruntime));
    return { ok: false, text: lines.join('\n'), versions: v, onnxruntime, error: msg };
  }
}
