/**
 * Run configuration: YAML files with the official U-Flow keys (`model:` and `trainer:` sections,
 * spec/cli.md), the official per-category defaults (spec/uflow.md §5), validation with messages
 * that name the file, the key and the fix, and writing a config back.
 *
 * Precedence: the category's defaults, then the YAML file (any subset of keys), then `overrides`
 * (the protocol's `config` of `uflow/train`, or CLI flags). Every source is validated the same way;
 * errors name the source (the file path as given, or "overrides").
 *
 * U-Flow defaults (official configs, except the backbone): input_size 448, flow_steps 4, weight_decay
 * 1e-5, batch_val 5; backbone `auto` (the official configs say mcait): chosen at train start from the
 * engine and the weights at hand (server/backbone-policy.ts), with its own input size unless the
 * config sets input_size; epochs / batch_train / learning_rate per MVTec category, `mvtec_default` for
 * any other category. The logging keys take the official trainer's defaults (25, 25, 25, true,
 * 20). Our additions: validate_every 1 (the official trainer validates every epoch), patience 20
 * (its EarlyStopping on pixel AUROC), seed 0.
 *
 * FastFlow defaults (anomalib; spec/fastflow.md): resnet18, input 256, flow_steps 8,
 * hidden_ratio 1.0, conv3x3_only false, Adam lr 1e-3, weight_decay 1e-5, early stopping patience 3,
 * seed 0. Epochs 500 / batch 32 are anomalib's trainer and datamodule defaults (unverified).
 *
 * Numbers: `learning_rate` and `weight_decay` also accept numeric strings ("1e-4"), because the
 * official trainer applies float() to them and PyYAML reads 1e-4 as a string; every other key
 * must have its YAML type.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import YAML from 'yaml';
import type { ModelConfig, ModelKind, RunConfig, TrainerConfig } from './protocol.js';
import { atomicWriteFile } from '../models/io/atomic.js';
import { fsErrorSentence, isErrnoError } from '../models/io/fs-errors.js';
import { formatSize, isSizeInput, levelRuleOf, ruleLevelSizes, sizeForConfig, toHW, uflowSizeError } from '../models/size.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface ConfigOverrides {
  model?: Partial<ModelConfig>;
  trainer?: Partial<TrainerConfig>;
}

export interface CategoryDefaults {
  epochs: number;
  batch_train: number;
  learning_rate: number;
}

/** spec/uflow.md §5: the official configs/<category>.yaml values. */
export const OFFICIAL_CATEGORY_DEFAULTS: Readonly<Record<string, CategoryDefaults>> = {
  bottle: { epochs: 200, batch_train: 23, learning_rate: 1.1289990475381853e-4 },
  cable: { epochs: 200, batch_train: 14, learning_rate: 1.616039111268198e-3 },
  capsule: { epochs: 200, batch_train: 14, learning_rate: 1.2118892498142058e-3 },
  carpet: { epochs: 200, batch_train: 13, learning_rate: 3.163419554150971e-5 },
  grid: { epochs: 500, batch_train: 12, learning_rate: 3.6224837438852e-5 },
  hazelnut: { epochs: 500, batch_train: 21, learning_rate: 1.3268898640895934e-3 },
  leather: { epochs: 500, batch_train: 15, learning_rate: 6.124723659154866e-4 },
  metal_nut: { epochs: 200, batch_train: 11, learning_rate: 8.148858311570219e-4 },
  pill: { epochs: 200, batch_train: 11, learning_rate: 1.0756100354690954e-3 },
  screw: { epochs: 500, batch_train: 11, learning_rate: 4.155987052838602e-4 },
  tile: { epochs: 200, batch_train: 30, learning_rate: 6.045754779719109e-3 },
  toothbrush: { epochs: 200, batch_train: 21, learning_rate: 1.287312814913699e-4 },
  transistor: { epochs: 400, batch_train: 20, learning_rate: 1.12129043027424e-3 },
  wood: { epochs: 500, batch_train: 22, learning_rate: 2.466546120460351e-4 },
  zipper: { epochs: 200, batch_train: 24, learning_rate: 4.55246818236177e-5 },
};

/** The official `mvtec_default` config, used for every category not in the table. */
export const MVTEC_DEFAULT: Readonly<CategoryDefaults> = { epochs: 200, batch_train: 8, learning_rate: 1e-4 };

/** The default configuration of a category (the official one for U-Flow). */
export function defaultConfig(category: string, model: ModelKind = 'uflow'): RunConfig {
  if (model === 'fastflow') {
    return {
      model: { input_size: 256, flow_steps: 8, backbone: 'resnet18', hidden_ratio: 1.0, conv3x3_only: false },
      trainer: {
        epochs: 500,
        batch_train: 32,
        batch_val: 32,
        learning_rate: 1e-3,
        weight_decay: 1e-5,
        log_every_n_epochs: 1,
        save_ckpt_every: 0,
        save_debug_images_every: 0,
        log_predefined_debug_images: false,
        log_n_images: 20,
        validate_every: 1,
        patience: 3,
        seed: 0,
        holdout: 0.1,
        holdout_min: 5,
      },
    };
  }
  const c = OFFICIAL_CATEGORY_DEFAULTS[category] ?? MVTEC_DEFAULT;
  return {
    model: { input_size: 448, flow_steps: 4, backbone: 'auto' },
    trainer: {
      epochs: c.epochs,
      batch_train: c.batch_train,
      batch_val: 5,
      learning_rate: c.learning_rate,
      weight_decay: 1e-5,
      log_every_n_epochs: 25,
      save_ckpt_every: 25,
      save_debug_images_every: 25,
      log_predefined_debug_images: true,
      log_n_images: 20,
      validate_every: 1,
      patience: 20,
      seed: 0,
      holdout: 0.1,
      holdout_min: 5,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Key table and checks

type Check = (v: unknown) => { ok: true; value: unknown } | { ok: false; want: string };

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const posInt: Check = (v) => (isInt(v) && v > 0 ? { ok: true, value: v } : { ok: false, want: 'a positive integer' });
const nonNegInt: Check = (v) => (isInt(v) && v >= 0 && v <= 2 ** 53 ? { ok: true, value: v } : { ok: false, want: 'a non-negative integer' });
const bool: Check = (v) => (typeof v === 'boolean' ? { ok: true, value: v } : { ok: false, want: 'true or false' });
function numberish(v: unknown, allowString: boolean): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (allowString && typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  return undefined;
}
const posNumber =
  (allowString = false): Check =>
  (v) => {
    const n = numberish(v, allowString);
    return n !== undefined && n > 0 ? { ok: true, value: n } : { ok: false, want: 'a positive number' };
  };
const nonNegNumber =
  (allowString = false): Check =>
  (v) => {
    const n = numberish(v, allowString);
    return n !== undefined && n >= 0 ? { ok: true, value: n } : { ok: false, want: 'a number ≥ 0' };
  };

const fraction: Check = (v) => {
  const n = numberish(v, true);
  return n !== undefined && n >= 0 && n <= 0.5 ? { ok: true, value: n } : { ok: false, want: 'a fraction between 0 and 0.5' };
};

export const BACKBONE_NAMES = ['auto', 'resnet18', 'wide_resnet50_2', 'resnet50', 'mcait', 'cait', 'deit', 'mobilenet_v2', 'builtin:filters'] as const;
const backbone: Check = (v) =>
  typeof v === 'string' && ((BACKBONE_NAMES as readonly string[]).includes(v) || (v.startsWith('tfjs:') && v.length > 5))
    ? { ok: true, value: v }
    : { ok: false, want: `one of ${BACKBONE_NAMES.join(', ')} or tfjs:<dir>` };
const layerList: Check = (v) =>
  Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string' && s.length > 0)
    ? { ok: true, value: [...v] }
    : { ok: false, want: 'a non-empty list of layer names' };
const range: Check = (v) =>
  Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === 'number' && Number.isFinite(x)) && v[0] < v[1]
    ? { ok: true, value: [v[0], v[1]] }
    : { ok: false, want: 'two numbers [low, high] with low < high' };

/** One integer (square) or [height, width]; a square pair is written back as one integer. */
const inputSize: Check = (v) =>
  isSizeInput(v) ? { ok: true, value: sizeForConfig(v) } : { ok: false, want: 'a positive integer or [height, width] (two positive integers)' };

/** model.channel_reduction's values (models/backbones/channel-select.ts implements them). */
const CHANNEL_REDUCTIONS: ReadonlyArray<NonNullable<ModelConfig['channel_reduction']>> = ['random'];

const MODEL_KEYS: Record<keyof ModelConfig, Check> = {
  input_size: inputSize,
  flow_steps: posInt,
  backbone,
  backbone_layers: layerList,
  backbone_input_range: range,
  backbone_preprocessing: (v) => (v === 'range' || v === 'caffe' ? { ok: true, value: v } : { ok: false, want: '"range" or "caffe"' }),
  backbone_channels: (v) =>
    Array.isArray(v) && v.length > 0 && v.every((n) => Number.isInteger(n) && n > 0)
      ? { ok: true, value: [...v] }
      : { ok: false, want: 'a list of positive integers, one per feature level (e.g. [64, 128, 256])' },
  channel_reduction: (v) => ((CHANNEL_REDUCTIONS as readonly unknown[]).includes(v) ? { ok: true, value: v } : { ok: false, want: CHANNEL_REDUCTIONS.map((c) => JSON.stringify(c)).join(' or ') }),
  channel_seed: nonNegInt,
  hidden_ratio: posNumber(),
  conv3x3_only: bool,
};

const TRAINER_KEYS: Record<keyof TrainerConfig, Check> = {
  epochs: posInt,
  batch_train: posInt,
  batch_val: posInt,
  learning_rate: posNumber(true),
  weight_decay: nonNegNumber(true),
  log_every_n_epochs: posInt,
  save_ckpt_every: nonNegInt,
  save_debug_images_every: nonNegInt,
  log_predefined_debug_images: bool,
  log_n_images: nonNegInt,
  validate_every: nonNegInt,
  patience: nonNegInt,
  seed: nonNegInt,
  holdout: fraction,
  holdout_min: nonNegInt,
};

const SECTIONS = { model: MODEL_KEYS, trainer: TRAINER_KEYS } as const;
type Section = keyof typeof SECTIONS;

/** How a value is quoted in messages: strings in double quotes, the rest as YAML/JSON writes it. */
export function showValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === undefined) return 'nothing';
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

function closest(key: string, candidates: string[]): string | undefined {
  const k = key.toLowerCase().replace(/-/g, '_');
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(k, c);
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 4)) ? best : undefined;
}

function unknownKey(src: string, section: Section | undefined, key: string): ConfigError {
  const full = section ? `${section}.${key}` : key;
  if (!section) {
    const s = closest(key, Object.keys(SECTIONS));
    if (s) return new ConfigError(`${src}: unknown key ${full} (did you mean ${s}?)`);
    for (const sec of Object.keys(SECTIONS) as Section[]) {
      const m = closest(key, Object.keys(SECTIONS[sec]));
      if (m) return new ConfigError(`${src}: unknown key ${full} (did you mean ${sec}.${m}?)`);
    }
    return new ConfigError(`${src}: unknown key ${full} (a config has two sections: model and trainer)`);
  }
  const m = closest(key, Object.keys(SECTIONS[section]));
  if (m) return new ConfigError(`${src}: unknown key ${full} (did you mean ${section}.${m}?)`);
  const other: Section = section === 'model' ? 'trainer' : 'model';
  const o = closest(key, Object.keys(SECTIONS[other]));
  if (o) return new ConfigError(`${src}: unknown key ${full} (did you mean ${other}.${o}? it belongs in the ${other} section)`);
  return new ConfigError(`${src}: unknown key ${full} (known ${section} keys: ${Object.keys(SECTIONS[section]).join(', ')})`);
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Validates a parsed config (any subset of the keys) and returns the keys it sets. `src` names the
 * source in errors. Throws ConfigError.
 */
export function validatePartialConfig(raw: unknown, src: string): ConfigOverrides {
  if (raw === null || raw === undefined) return {};
  if (!isPlainObject(raw)) {
    throw new ConfigError(`${src}: a config is a mapping with model: and trainer: sections, got ${showValue(raw)}`);
  }
  const out: ConfigOverrides = {};
  for (const [top, body] of Object.entries(raw)) {
    if (!(top in SECTIONS)) throw unknownKey(src, undefined, top);
    const section = top as Section;
    if (body === null || body === undefined) continue;
    if (!isPlainObject(body)) {
      throw new ConfigError(`${src}: ${section} must be a mapping (keys indented under "${section}:"), got ${showValue(body)}`);
    }
    const checks = SECTIONS[section] as Record<string, Check>;
    const values: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(body)) {
      if (!(key in checks)) throw unknownKey(src, section, key);
      if (v === undefined) continue;
      const r = checks[key](v);
      if (!r.ok) throw new ConfigError(`${src}: ${section}.${key} must be ${r.want}, got ${showValue(v)}`);
      values[key] = r.value;
    }
    (out as Record<string, unknown>)[section] = values;
  }
  return out;
}

/** The checks across keys (backbone × size × layers); also run on what `backbone: auto` chose. Throws ConfigError. */
export function checkWhole(cfg: RunConfig, src: string, model: ModelKind): void {
  const m = cfg.model;
  if (m.backbone.startsWith('tfjs:')) {
    if (!m.backbone_layers) {
      throw new ConfigError(`${src}: model.backbone ${showValue(m.backbone)} needs model.backbone_layers (the layer names to tap, finest first)`);
    }
    if (!m.backbone_input_range && m.backbone_preprocessing !== 'caffe') {
      throw new ConfigError(`${src}: model.backbone ${showValue(m.backbone)} needs model.backbone_input_range (the input range the model expects, e.g. [-1, 1])`);
    }
  }
  if (m.backbone === 'resnet50' && (m.backbone_input_range || m.backbone_preprocessing === 'range')) {
    throw new ConfigError(`${src}: model.backbone "resnet50" takes Keras "caffe" input (it is implied): remove model.${m.backbone_input_range ? 'backbone_input_range' : 'backbone_preprocessing'}`);
  }
  if (!m.backbone_channels && (m.channel_reduction !== undefined || m.channel_seed !== undefined)) {
    throw new ConfigError(`${src}: model.${m.channel_reduction !== undefined ? 'channel_reduction' : 'channel_seed'} needs model.backbone_channels (the channels to keep per level, e.g. [64, 128, 256])`);
  }
  const [h, w] = toHW(m.input_size);
  if (m.backbone === 'mcait' && (h !== 448 || w !== 448)) {
    // timm refuses other sizes too (its PatchEmbed asserts the size; CaiT's position embeddings are not resampled).
    throw new ConfigError(`${src}: model.input_size must be 448 with backbone mcait (its CaiT models take a fixed 448 input), got ${formatSize(m.input_size)}`);
  }
  if (m.backbone === 'resnet50' && Math.min(h, w) < 32) throw new ConfigError(`${src}: model.input_size must be at least 32 a side with backbone resnet50 (its coarsest level has stride 16), got ${formatSize(m.input_size)}`);
  if (['resnet18', 'wide_resnet50_2', 'builtin:filters'].includes(m.backbone)) {
    if (Math.min(h, w) < 32) throw new ConfigError(`${src}: model.input_size must be at least 32 a side with backbone ${m.backbone} (its coarsest level has stride 16), got ${formatSize(m.input_size)}`);
    if (model === 'uflow') {
      const sizes = ruleLevelSizes(levelRuleOf(m.backbone), [h, w], [4, 8, 16]);
      const bad = uflowSizeError(m.backbone, [h, w], [4, 8, 16], sizes);
      if (bad) throw new ConfigError(`${src}: model.input_size: ${bad}`);
    }
  }
}

export interface LoadConfigOptions {
  /** Picks the official per-category defaults (unknown categories get mvtec_default). */
  category: string;
  /** A YAML file with any subset of the keys. */
  path?: string;
  /** Applied last (e.g. the protocol's TrainParams.config, CLI flags). */
  overrides?: ConfigOverrides;
  /** Default 'uflow'. */
  model?: ModelKind;
}

function readYaml(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError(`${path}: no such config file: check the path`);
    if (code === 'EISDIR') throw new ConfigError(`${path}: is a folder, not a config file: give the path of a .yaml file`);
    if (isErrnoError(e)) throw new ConfigError(`cannot read the config file: ${fsErrorSentence(e, path)}`);
    throw new ConfigError(`${path}: cannot read the config file (${String(e)})`);
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const where = e.linePos ? ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '';
    const what = e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '');
    throw new ConfigError(`${path}: not valid YAML${where}: ${what}: fix the syntax`);
  }
  return doc.toJS();
}

/**
 * A relative `tfjs:<dir>` in a config file names a folder relative to that file (as tsconfig's
 * paths do), so a config can travel with its weights; the run's saved config then holds the
 * absolute folder. A folder that exists only relative to the working directory (how such paths
 * were read before) is still found there.
 */
function resolveBackboneDir(part: ConfigOverrides, file: string): ConfigOverrides {
  const b = part.model?.backbone;
  if (b === undefined || !b.startsWith('tfjs:') || isAbsolute(b.slice(5))) return part;
  const fromFile = resolve(dirname(file), b.slice(5));
  const dir = !existsSync(fromFile) && existsSync(resolve(b.slice(5))) ? resolve(b.slice(5)) : fromFile;
  return { ...part, model: { ...part.model, backbone: `tfjs:${dir}` } };
}

/** The configuration of a run: defaults ← YAML file ← overrides, validated. Throws ConfigError. */
export function loadConfig(opts: LoadConfigOptions): RunConfig {
  return loadConfigDetailed(opts).config;
}

/** loadConfig, and whether the file or the overrides set model.input_size (`backbone: auto` keeps such a size). */
export function loadConfigDetailed(opts: LoadConfigOptions): { config: RunConfig; inputSizeSet: boolean } {
  const cfg = defaultConfig(opts.category, opts.model ?? 'uflow');
  let wholeSrc = 'config';
  let inputSizeSet = false;
  const apply = (part: ConfigOverrides, src: string) => {
    if (part.model?.input_size !== undefined) inputSizeSet = true;
    Object.assign(cfg.model, part.model ?? {});
    Object.assign(cfg.trainer, part.trainer ?? {});
    if (part.model?.backbone !== undefined || part.model?.backbone_layers !== undefined || part.model?.backbone_channels !== undefined || part.model?.backbone_input_range !== undefined || part.model?.backbone_preprocessing !== undefined || part.model?.input_size !== undefined) wholeSrc = src;
  };
  if (opts.path !== undefined) apply(resolveBackboneDir(validatePartialConfig(readYaml(opts.path), opts.path), opts.path), opts.path);
  if (opts.overrides) apply(validatePartialConfig(opts.overrides, 'overrides'), 'overrides');
  checkWhole(cfg, wholeSrc, opts.model ?? 'uflow');
  return { config: cfg, inputSizeSet };
}

const MODEL_ORDER: Array<keyof ModelConfig> = ['input_size', 'flow_steps', 'backbone', 'backbone_layers', 'backbone_input_range', 'backbone_preprocessing', 'backbone_channels', 'channel_reduction', 'channel_seed', 'hidden_ratio', 'conv3x3_only'];
const TRAINER_ORDER: Array<keyof TrainerConfig> = [
  'epochs',
  'batch_train',
  'batch_val',
  'learning_rate',
  'weight_decay',
  'log_every_n_epochs',
  'save_ckpt_every',
  'save_debug_images_every',
  'log_predefined_debug_images',
  'log_n_images',
  'validate_every',
  'patience',
  'seed',
  'holdout',
  'holdout_min',
];

/** The config as YAML text (official key order; unset optional keys left out). */
export function configToYaml(cfg: RunConfig): string {
  const pick = <T extends object>(o: T, keys: Array<keyof T>) => {
    const r: Record<string, unknown> = {};
    for (const k of keys) if (o[k] !== undefined) r[k as string] = o[k];
    return r;
  };
  const doc = new YAML.Document({ model: pick(cfg.model, MODEL_ORDER), trainer: pick(cfg.trainer, TRAINER_ORDER) });
  // Flow style for the short lists (backbone_input_range: [-1, 1]).
  YAML.visit(doc, {
    Seq(_, node) {
      node.flow = true;
    },
  });
  return doc.toString({ lineWidth: 0 });
}

/** Writes the config as YAML (atomically); `loadConfig({path})` reads it back to the same values. */
export function writeConfig(path: string, cfg: RunConfig): void {
  atomicWriteFile(path, configToYaml(cfg));
}
