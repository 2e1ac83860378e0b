/**
 * `backbone: auto` (the default of U-Flow runs): which backbone, at which input size, a run trains
 * with, decided once at train start from the engine that loaded and the weights at hand.
 *
 *   GPU (tensorflow-gpu, webgpu on a hardware adapter): the paper's `mcait` at 448, when its two
 *       CaiT weight files are cached or downloadable; else `resnet18` at 256, when its weights are;
 *       else the bundled ImageNet `mobilenet_v2` at 256, with a one-line notice naming the better
 *       choice and how to get it;
 *   CPU (wasm, cpu, tensorflow on the CPU): the bundled `mobilenet_v2` at 256, the one choice
 *       measured to train a 200-image category well under an hour on 2 cores (about 25 min at 200
 *       epochs; ResNet-18 at 256 about 4.5 h, its flow on 64/128/256 channels costing ~10× per
 *       epoch; MS-CaiT at 448 about an hour on the features alone). CPU_COST holds those figures
 *       and how they were measured.
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

/**
 * Minutes to train a 200-image category for 200 epochs on 2 cores (wasm, two workers), from a
 * 3-epoch metal_plate run (54 training images) per backbone, scaled by images and epochs and by the
 * machine's load at the time (load 10–12 during the runs; the idle MobileNetV2 epoch is README's
 * 2.14 s for 60 images, a factor of about 3.2):
 *   HF_ENDPOINT=http://127.0.0.1:9 node dist/cli.js train -cat metal_plate -data <datasets> \
 *     -train_dir <dir> --epochs 3 --validate-every 0 [--backbone resnet18]
 * MobileNetV2 0.17 s/image of features, 6.1–7.6 s per steady epoch; ResNet-18 0.46 s and 67–76 s.
 */
export const CPU_COST = { mobilenet_v2_256: 25, resnet18_256: 270, budget: 60 } as const;

/** The weights `resolveAutoBackbone` must probe for a decision (pure): none on a CPU. */
export function candidatesFor(model: ModelKind, backend: string, inputSize?: SizeInput): Array<'mcait' | 'resnet18'> {
  if (!isGpuBackend(backend)) return [];
  const mcaitFits = inputSize === undefined || toHW(inputSize).join() === '448,448';
  return model === 'uflow' && mcaitFits ? ['mcait', 'resnet18'] : ['resnet18'];
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
  if (!gpu) {
    const r18h = +(CPU_COST.resnet18_256 / 60).toFixed(1);
    return choice(
      BUNDLED_MOBILENET,
      BUNDLED_MOBILENET_INPUT,
      `engine ${engine}: the bundled ImageNet MobileNetV2-0.35 at ${at(BUNDLED_MOBILENET_INPUT)}, which trains a 200-image category in about ${CPU_COST.mobilenet_v2_256} min on 2 cores ` +
        `(ResNet-18 at 256: about ${r18h} h; MS-CaiT at 448: about an hour on the features alone)${sizeNote}`,
      `training on the bundled MobileNetV2, the CPU choice (about ${CPU_COST.mobilenet_v2_256} min for a 200-image category on 2 cores); stronger features: train on a GPU, or set backbone: resnet18 ` +
        `(about ${r18h} h on 2 cores; \`uflow download-backbone resnet18\` fetches its weights)`,
    );
  }
  if (candidates.includes('mcait') && ok(i.weights.mcait)) {
    return choice('mcait', 448, `engine ${engine}: the paper's MS-CaiT at 448, its weights ${where(i.weights.mcait!)}`);
  }
  const r18 = i.weights.resnet18;
  if (ok(r18)) {
    const why =
      i.model === 'uflow'
        ? candidates.includes('mcait')
          ? `the CaiT weights are ${where(i.weights.mcait ?? { state: 'unavailable', path: '?', url: '?', why: 'not probed' })}`
          : `mcait takes 448 only${sizeNote}`
        : 'FastFlow';
    return choice('resnet18', 256, `engine ${engine}: ResNet-18 at ${at(256)} (${why}); its weights ${where(r18!)}${sizeNote}`);
  }
  const better = candidates.includes('mcait') ? 'mcait' : 'resnet18';
  const betterText = better === 'mcait' ? "the paper's mcait at 448" : `resnet18 at ${at(256)}`;
  const missing = better === 'mcait' ? i.weights.mcait : r18;
  const reason = `engine ${engine}: the bundled ImageNet MobileNetV2-0.35 at ${at(BUNDLED_MOBILENET_INPUT)}, because the weights of ${betterText} are ${missing ? where(missing) : 'unknown'}${sizeNote}`;
  const path = missing && missing.state === 'unavailable' ? missing.path : undefined;
  const notice =
    `training on the bundled MobileNetV2 (no ${better} weights here); ${betterText} detects better: run \`uflow download-backbone ${better}\`` +
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
  const [mcait, resnet18] = await Promise.all([need.includes('mcait') ? probeMcait(o) : undefined, need.includes('resnet18') ? probeWeights('resnet18', o) : undefined]);
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
