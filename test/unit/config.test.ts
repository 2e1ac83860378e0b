import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { configToYaml, defaultConfig, loadConfig, MVTEC_DEFAULT, OFFICIAL_CATEGORY_DEFAULTS, writeConfig } from '../../server/config.js';

const dir = mkdtempSync(join(tmpdir(), 'uflow-config-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

test('official defaults: per-category table, mvtec_default for others, shared keys', () => {
  const carpet = loadConfig({ category: 'carpet' });
  assert.deepEqual(carpet, {
    model: { input_size: 448, flow_steps: 4, backbone: 'auto' },
    trainer: {
      epochs: 200,
      batch_train: 13,
      batch_val: 5,
      learning_rate: 3.163419554150971e-5,
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
  });
  assert.equal(Object.keys(OFFICIAL_CATEGORY_DEFAULTS).length, 15);
  const t = loadConfig({ category: 'transistor' }).trainer;
  assert.deepEqual([t.epochs, t.batch_train, t.learning_rate], [400, 20, 1.12129043027424e-3]);
  const tile = loadConfig({ category: 'tile' }).trainer;
  assert.deepEqual([tile.epochs, tile.batch_train, tile.learning_rate], [200, 30, 6.045754779719109e-3]);
  const other = loadConfig({ category: 'magnetic_tile' }).trainer;
  assert.deepEqual([other.epochs, other.batch_train, other.learning_rate], [MVTEC_DEFAULT.epochs, 8, 1e-4]);
  const ff = defaultConfig('carpet', 'fastflow');
  assert.deepEqual(ff.model, { input_size: 256, flow_steps: 8, backbone: 'resnet18', hidden_ratio: 1.0, conv3x3_only: false });
  assert.equal(loadConfig({ category: 'x', model: 'fastflow' }).trainer.learning_rate, 1e-3);
});

test('an official-style YAML file, partial files and overrides merge in order', () => {
  const p = file(
    'carpet.yaml',
    `model:
  input_size: 448
  flow_steps: 4
  backbone: mcait
trainer:
  epochs: 200
  batch_train: 13
  batch_val: 5
  learning_rate: 3.163419554150971e-05
  weight_decay: 1e-5
  log_every_n_epochs: 25
  save_ckpt_every: 25
  save_debug_images_every: 25
  log_predefined_debug_images: True
  log_n_images: 20
`,
  );
  // The official file names mcait; the default (no file) is auto, otherwise the same values.
  const dflt = loadConfig({ category: 'carpet' });
  assert.deepEqual(loadConfig({ category: 'carpet', path: p }), { ...dflt, model: { ...dflt.model, backbone: 'mcait' } });
  const partial = file('partial.yml', 'trainer:\n  epochs: 3\n  learning_rate: "2e-4"\nmodel:\n  backbone: resnet18\n  input_size: 256\n');
  const c = loadConfig({ category: 'tile', path: partial, overrides: { trainer: { epochs: 5, batch_train: undefined } } });
  assert.deepEqual([c.trainer.epochs, c.trainer.learning_rate, c.trainer.batch_train, c.model.backbone, c.model.input_size], [5, 2e-4, 30, 'resnet18', 256]);
  assert.deepEqual(loadConfig({ category: 'tile', path: file('empty.yaml', '') }), loadConfig({ category: 'tile' }));
  assert.deepEqual(loadConfig({ category: 'tile', path: file('nulls.yaml', 'model:\ntrainer:\n') }), loadConfig({ category: 'tile' }));
});

test('wrong types and unknown keys name the file and the key', () => {
  const cases: Array<[string, string]> = [
    ['trainer:\n  epochs: ten\n', 'trainer.epochs must be a positive integer, got "ten"'],
    ['trainer:\n  epochs: 0\n', 'trainer.epochs must be a positive integer, got 0'],
    ['trainer:\n  batch_train: 2.5\n', 'trainer.batch_train must be a positive integer, got 2.5'],
    ['trainer:\n  epochs:\n', 'trainer.epochs must be a positive integer, got null'],
    ['trainer:\n  learning_rate: -1\n', 'trainer.learning_rate must be a positive number, got -1'],
    ['trainer:\n  learning_rate: fast\n', 'trainer.learning_rate must be a positive number, got "fast"'],
    ['trainer:\n  weight_decay: -1e-5\n', 'trainer.weight_decay must be a number ≥ 0, got -0.00001'],
    ['trainer:\n  log_predefined_debug_images: yes\n', 'trainer.log_predefined_debug_images must be true or false, got "yes"'],
    ['trainer:\n  patience: -1\n', 'trainer.patience must be a non-negative integer, got -1'],
    ['model:\n  flowsteps: 4\n', 'unknown key model.flowsteps (did you mean model.flow_steps?)'],
    ['model:\n  epochs: 4\n', 'unknown key model.epochs (did you mean trainer.epochs? it belongs in the trainer section)'],
    ['model:\n  colour: red\n', 'unknown key model.colour (known model keys: input_size, flow_steps, backbone, backbone_layers, backbone_input_range, backbone_preprocessing, backbone_channels, channel_reduction, channel_seed, hidden_ratio, conv3x3_only)'],
    ['trainner:\n  epochs: 4\n', 'unknown key trainner (did you mean trainer?)'],
    ['batch_train: 4\n', 'unknown key batch_train (did you mean trainer.batch_train?)'],
    ['data: x\n', 'unknown key data (a config has two sections: model and trainer)'],
    ['model: 448\n', 'model must be a mapping (keys indented under "model:"), got 448'],
    ['- 1\n- 2\n', 'a config is a mapping with model: and trainer: sections, got [1,2]'],
    ['model:\n  backbone: resnet51\n', 'model.backbone must be one of auto, resnet18, wide_resnet50_2, resnet50, mcait, cait, deit, mobilenet_v2, builtin:filters or tfjs:<dir>, got "resnet51"'],
    ['model:\n  backbone_input_range: [1, -1]\n', 'model.backbone_input_range must be two numbers [low, high] with low < high, got [1,-1]'],
    ['model:\n  backbone_layers: []\n', 'model.backbone_layers must be a non-empty list of layer names, got []'],
    ['model:\n  backbone: tfjs:/models/mnv2\n  backbone_input_range: [-1, 1]\n', 'model.backbone "tfjs:/models/mnv2" needs model.backbone_layers (the layer names to tap, finest first)'],
    ['model:\n  backbone: tfjs:/models/mnv2\n  backbone_layers: [a, b]\n', 'model.backbone "tfjs:/models/mnv2" needs model.backbone_input_range (the input range the model expects, e.g. [-1, 1])'],
    ['model:\n  backbone: mcait\n  input_size: 256\n', 'model.input_size must be 448 with backbone mcait (its CaiT models take a fixed 448 input), got 256'],
    ['model:\n  backbone: resnet18\n  input_size: 100\n', 'model.input_size: U-Flow cannot use input size 100 with backbone resnet18: its feature levels are 25×25, 13×13, 7×7; level 2 is 7×7, upsampled ×2 it is 14×14, but level 1 is 13×13, and the flow joins each level with the coarser one upsampled ×2 (the reference\'s FrEIA graph refuses these sizes too). Sizes that work near it: 96 or 109 (FastFlow takes any size)'],
  ];
  for (const [i, [text, msg]] of cases.entries()) {
    const p = file(`bad${i}.yaml`, text);
    assert.throws(() => loadConfig({ category: 'carpet', path: p }), { name: 'ConfigError', message: `${p}: ${msg}` }, text);
  }
  const cfg = file('cfg.yaml', 'trainer:\n  epochs: ten\n');
  assert.throws(() => loadConfig({ category: 'carpet', path: cfg }), { message: `${cfg}: trainer.epochs must be a positive integer, got "ten"` });
});

test('YAML syntax errors, missing files and bad overrides', () => {
  const p = file('syntax.yaml', 'model:\n  input_size: 448\n   flow_steps: 4\n');
  assert.throws(() => loadConfig({ category: 'carpet', path: p }), (e: Error) => {
    assert.match(e.message, new RegExp(`^${p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not valid YAML at line \\d+, column \\d+: .+: fix the syntax$`));
    return true;
  });
  const dup = file('dup.yaml', 'trainer:\n  epochs: 1\n  epochs: 2\n');
  assert.throws(() => loadConfig({ category: 'carpet', path: dup }), /dup\.yaml: not valid YAML at line 3, column 3: Map keys must be unique: fix the syntax$/);
  const missing = join(dir, 'nope.yaml');
  assert.throws(() => loadConfig({ category: 'carpet', path: missing }), { message: `${missing}: no such config file: check the path` });
  assert.throws(() => loadConfig({ category: 'carpet', overrides: { trainer: { epochs: -3 } } }), {
    message: 'overrides: trainer.epochs must be a positive integer, got -3',
  });
  assert.throws(() => loadConfig({ category: 'carpet', overrides: { model: { backbone: 'tfjs:/m' } } }), {
    message: 'overrides: model.backbone "tfjs:/m" needs model.backbone_layers (the layer names to tap, finest first)',
  });
});

test('writeConfig writes YAML that loads back to the same config', () => {
  const cfg = loadConfig({
    category: 'carpet',
    overrides: { model: { backbone: 'tfjs:/models/mnv2', input_size: 224, backbone_layers: ['block_3_expand_relu', 'block_6_expand_relu'], backbone_input_range: [-1, 1] } },
  });
  const p = join(dir, 'out', 'config.yaml');
  writeConfig(p, cfg);
  const text = readFileSync(p, 'utf8');
  assert.match(text, /^model:\n {2}input_size: 224\n {2}flow_steps: 4\n {2}backbone: tfjs:\/models\/mnv2\n {2}backbone_layers: \[ block_3_expand_relu, block_6_expand_relu \]\n {2}backbone_input_range: \[ -1, 1 \]\ntrainer:\n {2}epochs: 200\n/);
  assert.deepEqual(loadConfig({ category: 'anything', path: p }), cfg);
  const d = defaultConfig('grid');
  assert.deepEqual(loadConfig({ category: 'zzz', path: (writeConfig(join(dir, 'g.yaml'), d), join(dir, 'g.yaml')) }), d);
  assert.ok(!configToYaml(d).includes('hidden_ratio'));
});

test('a relative tfjs:<dir> in a config file is relative to that file; absolute ones and overrides stay as given', () => {
  const body = '  backbone_layers: [a, b]\n  backbone_input_range: [-1, 1]\n';
  const rel = file('rel.yaml', `model:\n  backbone: tfjs:../weights/mnv2\n${body}`);
  assert.equal(loadConfig({ category: 'x', path: rel }).model.backbone, `tfjs:${join(dir, '..', 'weights', 'mnv2')}`);
  const abs = file('abs.yaml', `model:\n  backbone: tfjs:/models/mnv2\n${body}`);
  assert.equal(loadConfig({ category: 'x', path: abs }).model.backbone, 'tfjs:/models/mnv2');
  // a folder that exists only relative to the working directory is still found there
  const cwdRel = relative(process.cwd(), mkdtempSync(join(dir, 'cwd-weights-')));
  const old = file('cwd.yaml', `model:\n  backbone: tfjs:${cwdRel}\n${body}`);
  assert.equal(loadConfig({ category: 'x', path: old }).model.backbone, `tfjs:${resolve(cwdRel)}`);
  const over = loadConfig({ category: 'x', overrides: { model: { backbone: 'tfjs:rel/mnv2', backbone_layers: ['a'], backbone_input_range: [-1, 1] } } });
  assert.equal(over.model.backbone, 'tfjs:rel/mnv2');
});

test('backbone resnet50 implies its taps and caffe input: a range is refused, and sizes under 32', () => {
  const cfg = loadConfig({ category: 'x', overrides: { model: { backbone: 'resnet50', input_size: 128 } } });
  assert.equal(cfg.model.backbone, 'resnet50');
  assert.equal(cfg.model.backbone_layers, undefined);
  assert.throws(() => loadConfig({ category: 'x', overrides: { model: { backbone: 'resnet50', backbone_input_range: [-1, 1] } } }), /model\.backbone "resnet50" takes Keras "caffe" input \(it is implied\): remove model\.backbone_input_range/);
  assert.throws(() => loadConfig({ category: 'x', overrides: { model: { backbone: 'resnet50', input_size: 24 } } }), /model\.input_size must be at least 32 a side with backbone resnet50/);
});

test('every config shipped in configs/ loads, with the model and trainer settings its file names', () => {
  const dir = resolve(import.meta.dirname, '..', '..', 'configs');
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 7, `configs/ holds ${files.length} files`);
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    const cfg = loadConfig({ category: 'metal_plate', path: join(dir, f) });
    const epochs = /^\s*epochs:\s*(\d+)/m.exec(text)?.[1];
    if (epochs) assert.equal(cfg.trainer.epochs, Number(epochs), `${f}: epochs`);
    const size = /^\s*input_size:\s*(\d+)\s*$/m.exec(text)?.[1];
    if (size) assert.deepEqual(cfg.model.input_size, Number(size), `${f}: input_size`);
  }
});
