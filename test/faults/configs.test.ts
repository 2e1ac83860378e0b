/**
 * Fault catalogue: configurations. A YAML config (`-config`) or a flag with one fault: refused
 * with a message naming the file (or the flag) and the key, before any run folder exists; the
 * valid variants train. Generators: every key × a wrong value of each kind, file-level faults,
 * flag faults, accepted variants.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { category, type FaultCase } from './catalogue.js';
import { baseDataset, observe, runCli, write } from './helpers.js';

const GOOD = `model:
  backbone: builtin:filters
  input_size: 32
  flow_steps: 1
trainer:
  epochs: 1
  batch_train: 2
  validate_every: 0
`;
const cfgPath = (dir: string) => join(dir, 'cfg', 'run.yaml');
const train = async (dir: string, extra: string[] = [], config: string | null = cfgPath(dir)) =>
  observe(await runCli(['train', '-data', join(dir, 'data', 'grid'), '-train_dir', join(dir, '.uflow'), ...(config ? ['-config', config] : []), ...extra], { cwd: dir }));
const noRun = (dir: string) => assert.equal(existsSync(join(dir, '.uflow', 'runs')) && readdirSync(join(dir, '.uflow', 'runs')).length > 0, false, 'no run folder');
/** GOOD with `section.key` set to the YAML text `value`. */
const setKey = (section: string, key: string, value: string) =>
  GOOD.replace(new RegExp(`^  ${key}:.*\n`, 'm'), '').replace(`${section}:\n`, `${section}:\n  ${key}: ${value}\n`);

/** Wrong values per key: [yaml value, what the message must say]. */
const KEY_FAULTS: Array<[section: string, key: string, value: string, says: RegExp]> = [
  ['trainer', 'epochs', '0', /trainer\.epochs must be a positive integer, got 0/],
  ['trainer', 'epochs', '"ten"', /trainer\.epochs must be a positive integer, got "ten"/],
  ['trainer', 'epochs', '2.5', /trainer\.epochs must be a positive integer/],
  ['trainer', 'batch_train', '-2', /trainer\.batch_train must be a positive integer, got -2/],
  ['trainer', 'learning_rate', 'fast', /trainer\.learning_rate must be a positive number/],
  ['trainer', 'validate_every', '[1]', /trainer\.validate_every must be a non-negative integer/],
  ['model', 'input_size', '-32', /model\.input_size must be a positive integer/],
  ['model', 'backbone', 'resnet19', /model\.backbone must be one of/],
  ['model', 'flow_steps', 'null', /model\.flow_steps must be a positive integer/],
];

const cases: FaultCase[] = [];
for (const [section, key, value, says] of KEY_FAULTS) {
  cases.push({
    name: `${section}.${key}: ${value} is refused`,
    expect: 'refuse',
    names: (dir) => [cfgPath(dir)],
    match: says,
    plant: (dir) => write(cfgPath(dir), setKey(section, key, value)),
    act: (dir) => train(dir),
    check: noRun,
  });
}
const FILE_FAULTS: Array<{ id: string; text?: string; plant?: (dir: string) => void; says: RegExp }> = [
  { id: 'an unknown key (model.inputsize)', text: GOOD.replace('input_size', 'inputsize'), says: /unknown key model\.inputsize \(did you mean model\.input_size\?\)/ },
  { id: 'a key in the wrong section (model.epochs)', text: GOOD.replace('  flow_steps: 1', '  flow_steps: 1\n  epochs: 3'), says: /unknown key model\.epochs/ },
  { id: 'a misspelt section (trainr:)', text: GOOD.replace('trainer:', 'trainr:'), says: /unknown key trainr/ },
  { id: 'a YAML syntax error', text: GOOD + 'model: [\n', says: /not valid YAML at line \d+, column \d+/ },
  { id: 'a duplicate key', text: GOOD.replace('  flow_steps: 1', '  flow_steps: 1\n  flow_steps: 2'), says: /not valid YAML/ },
  { id: 'a list instead of a mapping', text: '- model\n- trainer\n', says: /a config is a mapping with model: and trainer: sections/ },
  { id: 'a section that is not a mapping (model: 5)', text: GOOD.replace(/model:\n(  .*\n)+/, 'model: 5\n'), says: /model must be a mapping/ },
  { id: 'a tfjs: backbone folder that does not exist', text: GOOD.replace('builtin:filters', 'tfjs:./no-such-model').replace('  flow_steps: 1', '  flow_steps: 1\n  backbone_layers: [a]\n  backbone_input_range: [0, 1]'), says: /no-such-model/ },
  { id: 'a tfjs: backbone without backbone_layers', text: GOOD.replace('builtin:filters', 'tfjs:./m'), says: /needs model\.backbone_layers/ },
  { id: 'mcait at input size 32', text: GOOD.replace('builtin:filters', 'mcait'), says: /model\.input_size must be 448 with backbone mcait/ },
  { id: 'a config path that is a folder', plant: (dir) => mkdirSync(cfgPath(dir), { recursive: true }), says: /is a folder, not a config file/ },
  { id: 'a config path that does not exist', plant: () => undefined, says: /no such config file/ },
];
for (const f of FILE_FAULTS) {
  cases.push({
    name: `${f.id} is refused`,
    expect: 'refuse',
    names: (dir) => [cfgPath(dir)],
    match: f.says,
    plant: (dir) => (f.plant ? f.plant(dir) : write(cfgPath(dir), f.text!)),
    act: (dir) => train(dir),
    check: noRun,
  });
}
const FLAG_FAULTS: Array<[flags: string[], says: RegExp]> = [
  [['--epochs', '0'], /epochs must be a positive integer/],
  [['--batch', 'many'], /--batch_train must be a number|batch/],
  [['--input-size', '0'], /--input-size: sizes must be positive, got '0'/],
  [['--input-size', '64x0'], /--input-size: sizes must be positive/],
  [['--input-size', 'wide'], /--input-size/],
  [['--backbone', 'nonesuch'], /model\.backbone must be one of/],
  [['--model', 'bigflow'], /Invalid values|bigflow/],
  [['--bogus-flag'], /Unknown argument: bogus-flag/],
];
for (const [flags, says] of FLAG_FAULTS) {
  cases.push({
    name: `flag ${flags.join(' ')} is refused`,
    expect: 'refuse',
    names: () => [flags[0]!.replace(/^--/, '').replace(/^batch$/, 'batch')],
    match: says,
    plant: (dir) => write(cfgPath(dir), GOOD),
    act: (dir) => train(dir, flags),
    check: noRun,
  });
}
const ACCEPTED: Array<{ id: string; text: string }> = [
  { id: 'the config as it is', text: GOOD },
  { id: 'learning_rate as a string ("1e-3", as PyYAML reads it)', text: GOOD.replace('  epochs: 1', '  epochs: 1\n  learning_rate: "1e-3"') },
  { id: 'comments and blank lines', text: `# a comment\n\n${GOOD}\n# the end\n` },
];
for (const a of ACCEPTED) {
  cases.push({
    name: `${a.id} trains`,
    expect: 'accept',
    plant: (dir) => write(cfgPath(dir), a.text),
    act: (dir) => train(dir),
    check: (dir) => assert.ok(existsSync(join(dir, '.uflow', 'runs'))),
  });
}

category('configs', cases, { base: async (dir) => void (await baseDataset(dir)) });
