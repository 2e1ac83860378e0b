/**
 * `backbone: auto` (the default of U-Flow runs): which backbone, at which input size, a run trains
 * with, decided once at train start from the engine that loaded and the weights at hand.
 *
 *   GPU (tensorflow-gpu, webgpu on a hardware adapter): the paper's `mcait` at 448, when its two
 *       CaiT weight files are cached or downloadable;
 *   CPU (wasm, cpu, tensorflow on the CPU), or a GPU without the CaiT weights: `resnet18` at 256,
 *       when its weights are cached or downloadable (MS-CaiT at 448 costs ~330 GFLOPs per image:
 *       about an hour of features alone for a 200-image category on 2 cores);
 *   otherwise the bundled ImageNet `mobilenet_v2` at 256, with a one-line notice naming the
 *       better choice and how to get it.
 *
 * An input_size the configuration sets is kept (mcait takes 448 only, so another size rules it
 * out); an explicit backbone never reaches this module. `chooseBackbone` is the pure decision;
 * `resolveAutoBackbone` probes the cache and the hub (HF_ENDPOINT, a short timeout, so an offline
 * machine decides in seconds) and calls it.
 */
import { existsSync } from 'node:fs';
import type { AutoBackboneChoice, ModelKind, RunConfig } from './protocol.js';
import { checkWhole } from './config.js';
import { BUNDLED_MOBILENET, BUNDLED_MOBILENET_INPUT } from '../models/backbones/bundled.js';
import { formatSize, sizeForConfig, toHW, type SizeInput } from '../models/size.js';
import { backboneCachePath, backboneUrl, defaultCacheDir } from './pretrained.js';
import { request } from './download.js';

export const AUTO_BACKBONE = 'auto';

/** Whether weights can be had: in the cache, from the hub, or neither (with why). */
export type Availability = { state: 'cached'; path: string } | { state: 'downloadable'; url: string } | { state: 'unavailable'; path: string; url: string; why: string };

export interface PolicyInput {
  model: ModelKind;
  /** The engine's backend name (models/engine.ts BACKENDS). */
  backend: string;
  /** The input size the configuration set, if it set one. */
  inputSize?: SizeInput;
  /** Availability of the weights of `mcait` (both CaiT files) and `resnet18`; undefined: not probed. */
  weights: { mcait?: Availability; resnet18?: Availability };
}

/** Backends that run on a GPU (webgpu is only taken for hardware adapters, models/engine.ts). */
export function isGpuBackend(backend: string): boolean {
  return backend === 'tensorflow-gpu' || backend === 'webgpu';
}

/** The weights `resolveAutoBackbone` must probe for a decision (pure). */
export function candidatesFor(model: ModelKind, backend: string, inputSize?: SizeInput): Array<'mcait' | 'resnet18'> {
  const mcaitFits = inputSize === undefined || toHW(inputSize).join() === '448,448';
  return model === 'uflow' && isGpuBackend(backend) && mcaitFits ? ['mcait', 'resnet18'] : ['resnet18'];
}

const where = (a: Availability): string => (a.state === 'cached' ? `cached (${a.path})` : a.state === 'downloadable' ? `downloadable (${a.url})` : `not cached (${a.path}) nor downloadable (${a.why})`);

/** The decision, as a pure function of the engine, the configured size and what is available. */
export function chooseBackbone(i: PolicyInput): AutoBackboneChoice {
  const gpu = isGpuBackend(i.backend);
  const engine = `${i.backend} (${gpu ? 'GPU' : 'CPU'})`;
  const kept = i.inputSize !== undefined ? sizeForConfig(i.inputSize) : undefined;
  const sizeNote = kept !== undefined ? `, input_size ${formatSize(kept)} from the config` : '';
  const at = (size: number) => formatSize(kept ?? size);
  const ok = (a?: Availability) => a !== undefined && a.state !== 'unavailable';
  const choice = (backbone: string, size: SizeInput, reason: string, notice?: string): AutoBackboneChoice => ({
    backbone,
    inputSize: kept ?? sizeForConfig(size),
    reason,
    ...(notice ? { notice } : {}),
    backend: i.backend,
  });
  const candidates = candidatesFor(i.model, i.backend, i.inputSize);
  if (candidates.includes('mcait') && ok(i.weights.mcait)) {
    return choice('mcait', 448, `engine ${engine}: the paper's MS-CaiT at 448, its weights ${where(i.weights.mcait!)}`);
  }
  const r18 = i.weights.resnet18;
  if (ok(r18)) {
    const why = gpu
      ? i.model === 'uflow'
        ? candidates.includes('mcait')
          ? `the CaiT weights are ${where(i.weights.mcait ?? { state: 'unavailable', path: '?', url: '?', why: 'not probed' })}`
          : `mcait takes 448 only${sizeNote}`
        : 'FastFlow'
      : 'on a CPU, MS-CaiT at 448 would spend about an hour on the features of 200 images';
    return choice('resnet18', 256, `engine ${engine}: ResNet-18 at ${at(256)} (${why}); its weights ${where(r18!)}${sizeNote}`);
  }
  const better = candidates.includes('mcait') ? 'mcait' : 'resnet18';
  const betterText = better === 'mcait' ? "the paper's mcait at 448" : `resnet18 at ${at(256)}`;
  const missing = better === 'mcait' ? i.weights.mcait : r18;
  const reason = `engine ${engine}: the bundled ImageNet MobileNetV2-0.35 at ${at(BUNDLED_MOBILENET_INPUT)}, because the weights of ${betterText} are ${missing ? where(missing) : 'unknown'}${sizeNote}`;
  const path = missing && missing.state === 'unavailable' ? missing.path : undefined;
  const notice =
    `training on the bundled MobileNetV2 (no ${better} weights here); ${betterText} detects better: run \`uflow download-backbone ${better === 'mcait' ? 'mcait' : 'resnet18'}\`` +
    `${path ? `, put its model.safetensors at ${path}` : ''}, or set HF_ENDPOINT to a reachable hub mirror, then train again`;
  return choice(BUNDLED_MOBILENET, BUNDLED_MOBILENET_INPUT, reason, notice);
}

export interface ProbeOptions {
  env?: NodeJS.ProcessEnv;
  /** Per request (default 3 s, UFLOW_PROBE_TIMEOUT_MS). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Whether one hub file can be had: cached, or answered (< 400) by a HEAD request within the timeout. */
export async function probeWeights(name: string, o: ProbeOptions = {}): Promise<Availability> {
  const env = o.env ?? process.env;
  const path = backboneCachePath(name, defaultCacheDir(env));
  if (existsSync(path)) return { state: 'cached', path };
  const endpoint = env.HF_ENDPOINT || 'https://huggingface.co';
  const url = backboneUrl(name, endpoint);
  const timeoutMs = o.timeoutMs ?? (Number(env.UFLOW_PROBE_TIMEOUT_MS) || 3000);
  const signal = o.signal ? AbortSignal.any([o.signal, AbortSignal.timeout(timeoutMs)]) : AbortSignal.timeout(timeoutMs);
  const headers: Record<string, string> = env.HF_TOKEN ? { authorization: `Bearer ${env.HF_TOKEN}` } : {};
  try {
    const r = await request(url, { method: 'HEAD', follow: false, headers, env, signal });
    await r.res.body?.cancel().catch(() => {});
    if (r.res.status < 400) return { state: 'downloadable', url };
    return { state: 'unavailable', path, url, why: `${url} answered HTTP ${r.res.status}` };
  } catch (e) {
    if (o.signal?.aborted) throw e;
    const err = e as { name?: string; cause?: { code?: string; message?: string; errors?: Array<{ code?: string }> }; message?: string };
    const code =
      err.name === 'TimeoutError' || err.name === 'AbortError'
        ? `no answer in ${+(timeoutMs / 1000).toFixed(1)} s`
        : (err.cause?.code ?? err.cause?.errors?.[0]?.code ?? err.cause?.message ?? err.message ?? String(e));
    return { state: 'unavailable', path, url, why: `${endpoint} cannot be reached: ${code}` };
  }
}

/** Both CaiT files of mcait: cached when both are, downloadable when each is cached or downloadable. */
async function probeMcait(o: ProbeOptions): Promise<Availability> {
  const [a, b] = await Promise.all([probeWeights('cait_m48_448', o), probeWeights('cait_s24_224', o)]);
  if (a.state === 'unavailable') return a;
  if (b.state === 'unavailable') return b;
  if (a.state === 'cached' && b.state === 'cached') return { state: 'cached', path: `${a.path}, ${b.path}` };
  return { state: 'downloadable', url: a.state === 'downloadable' ? a.url : (b as { url: string }).url };
}

/** Probes what the decision needs (in parallel: offline, at most one timeout) and decides. */
export async function resolveAutoBackbone(model: ModelKind, backend: string, inputSize: SizeInput | undefined, o: ProbeOptions = {}): Promise<AutoBackboneChoice> {
  const need = candidatesFor(model, backend, inputSize);
  const [mcait, resnet18] = await Promise.all([need.includes('mcait') ? probeMcait(o) : undefined, probeWeights('resnet18', o)]);
  return chooseBackbone({ model, backend, inputSize, weights: { mcait, resnet18 } });
}

/** One line for logs and `uflow doctor`: what auto chose and why. */
export function describeChoice(c: AutoBackboneChoice): string {
  return `backbone auto → ${c.backbone} at ${formatSize(c.inputSize)}: ${c.reason}`;
}

/**
 * A run's configuration with `backbone: auto` replaced by the choice for this engine (and the
 * choice's input size, unless the config set one), validated as a config with that backbone would
 * be. Throws ConfigError naming what auto chose when the result is not a valid configuration.
 */
export async function configWithAutoBackbone(
  cfg: RunConfig,
  model: ModelKind,
  backend: string,
  inputSizeSet: boolean,
  o: ProbeOptions = {},
): Promise<{ config: RunConfig; chosen: AutoBackboneChoice }> {
  const chosen = await resolveAutoBackbone(model, backend, inputSizeSet ? cfg.model.input_size : undefined, o);
  const config: RunConfig = { model: { ...cfg.model, backbone: chosen.backbone, input_size: chosen.inputSize }, trainer: { ...cfg.trainer } };
  checkWhole(config, `backbone auto (chose ${chosen.backbone} at ${formatSize(chosen.inputSize)})`, model);
  return { config, chosen };
}
