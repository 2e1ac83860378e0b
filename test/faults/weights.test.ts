/**
 * Fault catalogue: weights. Backbone weights in the model cache (UFLOW_CACHE_DIR) and the run's
 * own checkpoints, broken in each way a file breaks (garbage, truncated, a header that lies, a
 * valid file without the tensors), and a download that cannot happen: refused naming the file.
 * A broken optimizer state on resume is warned about and the training goes on.
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { backboneCachePath } from '../../server/pretrained.js';
import { category, type FaultCase } from './catalogue.js';
import { baseWithRun, cliEvaluate, observe, onlyRun, runCli, runJson, write } from './helpers.js';

const runFile = (dir: string, f: string) => join(dir, '.uflow', 'runs', onlyRun(dir), f);
const cacheOf = (dir: string) => join(dir, 'cache');
const resnetWeights = (dir: string) => backboneCachePath('resnet18', cacheOf(dir));
const OFFLINE = (dir: string) => ({ UFLOW_CACHE_DIR: cacheOf(dir), HF_ENDPOINT: 'http://127.0.0.1:9' });

/** Ways a safetensors file breaks; `from` is the intact file's bytes (or undefined). */
const BREAKS: Array<{ id: string; bytes(from: Buffer | undefined): Buffer | string; says: RegExp }> = [
  { id: 'garbage', bytes: () => 'this is not a tensor file at all', says: /./ },
  { id: 'an empty file', bytes: () => '', says: /truncated|empty/ },
  { id: 'truncated to half', bytes: (b) => (b ?? Buffer.alloc(64)).subarray(0, Math.floor((b ?? Buffer.alloc(64)).length / 2)), says: /truncated|shorter|bytes/ },
  {
    id: 'a header that claims more data than the file holds',
    bytes: () => {
      const h = Buffer.from(JSON.stringify({ w: { dtype: 'F32', shape: [1000], data_offsets: [0, 4000] } }));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(h.length));
      return Buffer.concat([len, h, Buffer.alloc(16)]);
    },
    says: /./,
  },
  {
    id: 'a valid file without the expected tensors',
    bytes: () => {
      const h = Buffer.from(JSON.stringify({ __metadata__: { epoch: '1' }, unrelated: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(h.length));
      return Buffer.concat([len, h, Buffer.alloc(4)]);
    },
    says: /./,
  },
];

const cases: FaultCase[] = [];
for (const b of BREAKS) {
  cases.push({
    name: `the run's checkpoint is ${b.id}: evaluate is refused`,
    expect: 'refuse',
    names: (dir) => [runFile(dir, 'checkpoint.safetensors')],
    match: b.says,
    plant: (dir) => write(runFile(dir, 'checkpoint.safetensors'), b.bytes(readFileSync(runFile(dir, 'checkpoint.safetensors')))),
    act: (dir) => cliEvaluate(dir),
  });
  cases.push({
    name: `cached resnet18 weights are ${b.id}: train is refused`,
    expect: 'refuse',
    names: (dir) => [resnetWeights(dir)],
    plant: (dir) => write(resnetWeights(dir), b.bytes(undefined)),
    act: async (dir) =>
      observe(await runCli(['train', '-data', join(dir, 'data', 'grid'), '-train_dir', join(dir, '.uflow'), '--backbone', 'resnet18', '--input-size', '32', '--epochs', '1', '--validate-every', '0'], { cwd: dir, env: OFFLINE(dir) })),
  });
}
cases.push({
  name: 'resnet18 weights neither cached nor downloadable: train is refused saying where to put them',
  expect: 'refuse',
  names: (dir) => [resnetWeights(dir)],
  match: /cannot download the 'resnet18' backbone weights[\s\S]*cannot be reached/,
  plant: () => undefined,
  act: async (dir) =>
    observe(await runCli(['train', '-data', join(dir, 'data', 'grid'), '-train_dir', join(dir, '.uflow'), '--backbone', 'resnet18', '--input-size', '32', '--epochs', '1', '--validate-every', '0'], { cwd: dir, env: OFFLINE(dir) })),
});
cases.push({
  name: 'the checkpoint is missing: evaluate is refused (no epoch completed)',
  expect: 'refuse',
  names: (dir) => [runFile(dir, 'checkpoint.safetensors')],
  match: /has no checkpoint yet/,
  plant: (dir) => rmSync(runFile(dir, 'checkpoint.safetensors')),
  act: (dir) => cliEvaluate(dir),
});
for (const [id, bytes] of [
  ['a text file', 'hello'],
  ['a truncated zip', Buffer.from('PK\x03\x04garbage', 'latin1')],
] as const) {
  cases.push({
    name: `predict --checkpoint given ${id} is refused`,
    expect: 'refuse',
    names: (dir) => [join(dir, 'released.ckpt')],
    plant: (dir) => write(join(dir, 'released.ckpt'), bytes),
    act: async (dir) => observe(await runCli(['predict', '--checkpoint', join(dir, 'released.ckpt'), '--image', join(dir, 'data', 'grid', 'test', 'good', '000.png'), '-train_dir', join(dir, '.uflow')], { cwd: dir })),
  });
}
cases.push({
  name: 'a broken optimizer state on resume is warned about; the training goes on',
  expect: 'warn',
  names: (dir) => [runFile(dir, 'train-state.safetensors')],
  match: /the optimizer state is not used/,
  mayChange: ['.uflow/runs'],
  plant: (dir) => {
    write(runFile(dir, 'train-state.safetensors'), 'broken');
    const run = runJson(dir);
    write(runFile(dir, 'run.json'), JSON.stringify({ ...run, state: 'interrupted' }));
  },
  act: async (dir) => observe(await runCli(['train', '-train_dir', join(dir, '.uflow'), '--resume', onlyRun(dir), '--epochs', '2'], { cwd: dir })),
  check: (dir) => assert.equal(runJson(dir).state, 'finished'),
});

category('weights', cases, { base: async (dir) => void (await baseWithRun(dir)) });
