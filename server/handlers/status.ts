/** `uflow/status`: engine, memory (with tf.memory()'s tensor count), versions, jobs, roots. */
import * as tf from '@tensorflow/tfjs-core';
import pkg from '../../package.json';
import { PROTOCOL_VERSION, type StatusResult } from '../protocol.js';
import type { RequestContext } from './context.js';

export const DAEMON_VERSION: string = (pkg as { version?: string }).version ?? '0.0.0';

export async function status(_params: unknown, ctx: RequestContext): Promise<StatusResult> {
  const info = await ctx.daemon.engine();
  const mem = process.memoryUsage();
  const tm = tf.memory();
  return {
    protocolVersion: PROTOCOL_VERSION,
    version: DAEMON_VERSION,
    engine: info
      ? { backend: info.backend, device: info.device, reason: info.reason, skipped: info.skipped.map((s) => ({ backend: s.backend, why: s.why })) }
      : { backend: 'none', device: 'none', reason: ctx.daemon.engineError() ?? 'no tensor backend could be loaded', skipped: [] },
    memory: { rss: mem.rss, heapUsed: mem.heapUsed, tensors: tm.numTensors, tensorBytes: tm.numBytes },
    versions: {
      uflow: DAEMON_VERSION,
      protocol: String(PROTOCOL_VERSION),
      node: process.versions.node,
      tfjs: info?.tfjsVersion ?? tf.version_core,
      platform: `${process.platform}-${process.arch}`,
    },
    models: ['uflow', 'fastflow'],
    jobs: ctx.daemon.jobs.list(),
    roots: ctx.session.policy.roots().map((r) => ({ path: r.path, kind: r.kind })),
    predictCache: ctx.daemon.predictors.stats(),
    uptimeSeconds: Math.round((Date.now() - ctx.daemon.startedAt) / 1000),
    pid: process.pid,
    autoBackbone: await ctx.daemon.autoBackbone(),
  };
}
