/**
 * Fault catalogue: runs and the runs folder. A -train_dir that is a file (for every command that
 * takes one), run ids that are not, run.json broken in each way, resume requests that cannot be
 * honoured, a dataset that moved away: refused naming the path; a broken run among good ones is
 * warned about by `uflow runs`; an interrupted run resumes.
 */
import assert from 'node:assert/strict';
import { renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { category, type FaultCase } from './catalogue.js';
import { baseWithRun, observe, onlyRun, runCli, runJson, write } from './helpers.js';

const td = (dir: string) => join(dir, '.uflow');
const runJsonPath = (dir: string) => join(td(dir), 'runs', onlyRun(dir), 'run.json');
const data = (dir: string) => join(dir, 'data', 'grid');
const FAST = ['--backbone', 'builtin:filters', '--input-size', '32', '--epochs', '1', '--batch', '2', '--validate-every', '0'];

/** Every command that takes -train_dir, with the rest of its arguments. */
const TRAIN_DIR_COMMANDS: Array<[string, (dir: string) => string[]]> = [
  ['train', (dir) => ['-data', data(dir), ...FAST]],
  ['evaluate', () => []],
  ['predict', (dir) => ['--image', join(data(dir), 'test', 'good', '000.png')]],
  ['runs', () => []],
];
const cases: FaultCase[] = [];
for (const [cmd, args] of TRAIN_DIR_COMMANDS) {
  for (const [id, tdOf, plant, says] of [
    ['a file', (dir: string) => join(dir, 'notes.txt'), (dir: string) => write(join(dir, 'notes.txt'), 'x'), /is a file, not a folder/],
    ['below a file', (dir: string) => join(dir, 'notes.txt', 'runs'), (dir: string) => write(join(dir, 'notes.txt'), 'x'), /a part of this path is a file, not a folder/],
  ] as const) {
    cases.push({
      name: `${cmd} -train_dir naming ${id} is refused`,
      expect: 'refuse',
      names: (dir) => [tdOf(dir)],
      match: says,
      plant,
      act: async (dir) => observe(await runCli([cmd, '-train_dir', tdOf(dir), ...args(dir)], { cwd: dir })),
    });
  }
}
for (const [id, runId, says] of [
  ['an unknown run id', 'grid-uflow-20000101-000000-zzzz', /no run|not found|unknown/i],
  ['a run id with a path in it', '../../etc', /is not a run id/],
] as const) {
  for (const cmd of ['evaluate', 'predict']) {
    cases.push({
      name: `${cmd} --run ${id} is refused`,
      expect: 'refuse',
      names: () => [runId],
      match: says,
      plant: () => undefined,
      act: async (dir) => observe(await runCli([cmd, '-train_dir', td(dir), '--run', runId, ...(cmd === 'predict' ? ['--image', join(data(dir), 'test', 'good', '000.png')] : [])], { cwd: dir })),
    });
  }
}
const RUN_JSON_BREAKS: Array<[string, string]> = [
  ['not JSON', '{"runId": '],
  ['empty', ''],
  ['a JSON list', '[1, 2]'],
  ['without runId', '{"state": "finished"}'],
];
for (const [id, text] of RUN_JSON_BREAKS) {
  cases.push({
    name: `run.json ${id}: evaluate --run is refused naming run.json`,
    expect: 'refuse',
    names: (dir) => [runJsonPath(dir)],
    plant: (dir) => write(runJsonPath(dir), text),
    act: async (dir) => observe(await runCli(['evaluate', '-train_dir', td(dir), '--run', onlyRun(dir)], { cwd: dir })),
  });
  cases.push({
    name: `run.json ${id}: uflow runs warns naming run.json`,
    expect: 'warn',
    names: (dir) => [runJsonPath(dir)],
    plant: (dir) => write(runJsonPath(dir), text),
    act: async (dir) => observe(await runCli(['runs', '-train_dir', td(dir)], { cwd: dir })),
  });
}
cases.push({
  name: 'resume of a finished run without --epochs is refused',
  expect: 'refuse',
  names: (dir) => [onlyRun(dir)],
  match: /has already trained 1 of 1 epochs: pass --epochs N/,
  plant: () => undefined,
  act: async (dir) => observe(await runCli(['train', '-train_dir', td(dir), '--resume', onlyRun(dir)], { cwd: dir })),
});
cases.push({
  name: 'resume with another learning rate is refused (a resumed run keeps its configuration)',
  expect: 'refuse',
  names: () => ['learning_rate'],
  match: /a resumed run keeps its configuration/,
  plant: () => undefined,
  act: async (dir) => observe(await runCli(['train', '-train_dir', td(dir), '--resume', onlyRun(dir), '--epochs', '2', '--lr', '0.1'], { cwd: dir })),
});
cases.push({
  name: 'evaluate a run whose dataset was moved away is refused naming the dataset',
  expect: 'refuse',
  names: (dir) => [runJson(dir).datasetPath],
  match: /the dataset run .* was trained on is gone: pass -data/,
  plant: (dir) => {
    const run = runJson(dir);
    write(runJsonPath(dir), JSON.stringify({ ...run, datasetPath: join(dir, 'moved-away', 'grid') }));
  },
  act: async (dir) => observe(await runCli(['evaluate', '-train_dir', td(dir), '--run', onlyRun(dir)], { cwd: dir })),
});
cases.push({
  name: 'evaluate with -data naming a folder without test images is refused',
  expect: 'refuse',
  names: (dir) => [join(dir, 'other')],
  plant: (dir) => write(join(dir, 'other', 'train', 'good', 'README.txt'), 'x'),
  act: async (dir) => observe(await runCli(['evaluate', '-train_dir', td(dir), '--run', onlyRun(dir), '-data', join(dir, 'other')], { cwd: dir })),
});
cases.push({
  name: 'an interrupted run resumes to the end',
  expect: 'accept',
  mayChange: ['.uflow/runs'],
  plant: (dir) => {
    const run = runJson(dir);
    write(runJsonPath(dir), JSON.stringify({ ...run, state: 'interrupted', pid: 999999 }));
  },
  act: async (dir) => observe(await runCli(['train', '-train_dir', td(dir), '--resume', onlyRun(dir), '--epochs', '2'], { cwd: dir })),
  check: (dir) => {
    const run = runJson(dir);
    assert.equal(run.state, 'finished');
    assert.equal(run.epochsDone, 2);
  },
});
cases.push({
  name: 'a run folder without run.json is not a run: evaluate --run is refused',
  expect: 'refuse',
  names: (dir) => [onlyRun(dir)],
  plant: (dir) => rmSync(runJsonPath(dir)),
  act: async (dir) => observe(await runCli(['evaluate', '-train_dir', td(dir), '--run', onlyRun(dir)], { cwd: dir })),
});
cases.push({
  name: 'a moved workspace: the run is found where it is now and evaluates',
  expect: 'accept',
  plant: (dir) => renameSync(join(dir, '.uflow'), join(dir, 'moved.uflow')),
  act: async (dir) => observe(await runCli(['evaluate', '-train_dir', join(dir, 'moved.uflow'), '-data', data(dir), '--checkpoint', 'last'], { cwd: dir })),
});

category('runs', cases, { base: async (dir) => void (await baseWithRun(dir)) });
