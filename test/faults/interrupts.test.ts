/**
 * Fault catalogue: interrupts and a full disk. A training stopped by SIGINT / SIGTERM (at the
 * features or after an epoch) exits 130, keeps the last complete epoch and says how to resume
 * (warn); twice Ctrl-C stops at once (warn); SIGKILL leaves parseable run files that the next
 * command marks interrupted and that resume to the end (accept). A disk that fills up — simulated
 * ENOSPC on the file being written (test/faults/enospc-preload.mjs), and a real 256 KiB tmpfs
 * where mounting one is allowed — refuses naming that file, with earlier files intact.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLI } from '../cli/cli-helpers.js';
import { category, type FaultCase, type Observed } from './catalogue.js';
import { baseWithRun, cliEvaluate, ENOSPC_PRELOAD, observe, onlyRun, runCli, runJson } from './helpers.js';

const td = (dir: string) => join(dir, '.uflow');
const data = (dir: string) => join(dir, 'data', 'grid');
const LONG = ['--backbone', 'builtin:filters', '--input-size', '32', '--epochs', '400', '--batch', '2', '--validate-every', '0'];
const ENV = { ...process.env, UFLOW_BACKEND: 'wasm', NO_COLOR: '1', UFLOW_TRAIN_WORKERS: '1' };

/**
 * Starts a long training in a fresh train dir, waits for `ready` in its output (then `delayMs`), and sends `signals`
 * `gapMs` apart; with `ack`, each signal after the first is sent as soon as `ack` has appeared in
 * the output (the process has taken the previous one), instead of after a fixed gap.
 */
async function interrupted(dir: string, ready: RegExp, signals: NodeJS.Signals[], gapMs = 30, flags = LONG, delayMs = 0, ack?: RegExp): Promise<{ code: number | null; signal: NodeJS.Signals | null; text: string; trainDir: string }> {
  const trainDir = join(dir, 'signal.uflow');
  const child = spawn(process.execPath, [CLI, 'train', '-data', data(dir), '-train_dir', trainDir, ...flags], { cwd: dir, env: ENV });
  let text = '';
  child.stdout.on('data', (d) => (text += d));
  child.stderr.on('data', (d) => (text += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('close', (code, signal) => r({ code, signal })));
  const t0 = Date.now();
  while (!ready.test(text)) {
    if (child.exitCode !== null) throw new Error(`ended before ${ready}: ${text}`);
    if (Date.now() - t0 > 60_000) throw new Error(`timed out waiting for ${ready}: ${text}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
  for (const [i, s] of signals.entries()) {
    if (i > 0 && ack) {
      const t1 = Date.now();
      while (!ack.test(text) && child.exitCode === null && Date.now() - t1 < 30_000) await new Promise((r) => setTimeout(r, 2));
    }
    child.kill(s);
    if (gapMs && !ack) await new Promise((r) => setTimeout(r, gapMs));
  }
  const end = await done;
  return { ...end, text, trainDir };
}

function theRun(trainDir: string): Record<string, any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const ids = readdirSync(join(trainDir, 'runs'));
  assert.equal(ids.length, 1);
  return JSON.parse(readFileSync(join(trainDir, 'runs', ids[0]!, 'run.json'), 'utf8'));
}

const cases: FaultCase[] = [];
for (const [sig, when, ready] of [
  ['SIGINT', 'after an epoch', /epoch [2-9]\d*\/400 step/],
  ['SIGTERM', 'after an epoch', /epoch [2-9]\d*\/400 step/],
  ['SIGINT', 'while caching features', /features \d+\/\d+|run \S+: \d+ training images/],
] as const) {
  cases.push({
    name: `${sig} ${when}: exit 130, the last complete epoch kept, resume explained`,
    expect: 'warn',
    match: /cancelled after \d+ complete epoch\(s\); its checkpoint is kept[\s\S]*resume with: uflow train .*--resume/,
    plant: () => undefined,
    act: async (dir): Promise<Observed> => {
      const r = await interrupted(dir, ready, [sig]);
      assert.equal(r.code, 130, r.text);
      const run = theRun(r.trainDir);
      assert.equal(run.state, 'cancelled');
      if (run.epochsDone > 0) assert.ok(existsSync(join(r.trainDir, 'runs', run.runId, 'checkpoint.safetensors')));
      return { outcome: 'warn', text: r.text };
    },
  });
}
cases.push({
  name: 'Ctrl-C twice: stops at once (exit 130) saying the last complete epoch is on disk',
  expect: 'warn',
  match: /second Ctrl-C: stopping now/,
  plant: () => undefined,
  act: async (dir) => {
    // The second Ctrl-C goes as soon as the first is acknowledged, so both land inside one step
    // (0.2 s at 256 px since the wasm copy kernels: a fixed 60 ms gap let the first Ctrl-C finish
    // the run before the second was sent).
    const slow = ['--backbone', 'builtin:filters', '--input-size', '256', '--epochs', '400', '--batch', '4', '--validate-every', '0', '--no-estimate'];
    const r = await interrupted(dir, /epoch [1-9]\d*\/400 step/, ['SIGINT', 'SIGINT'], 0, slow, 400, /Ctrl-C: stopping after the current step/);
    assert.equal(r.code, 130, r.text);
    JSON.parse(readFileSync(join(r.trainDir, 'runs', theRun(r.trainDir).runId, 'run.json'), 'utf8'));
    return { outcome: 'warn', text: r.text };
  },
});
cases.push({
  name: 'SIGKILL mid-training: run files parse, the next command marks it interrupted, it resumes to the end',
  expect: 'accept',
  plant: () => undefined,
  act: async (dir) => {
    const r = await interrupted(dir, /epoch [2-9]\d*\/400 step/, ['SIGKILL']);
    assert.equal(r.signal, 'SIGKILL');
    const runs = await runCli(['runs', '-train_dir', r.trainDir, '--json'], { cwd: dir });
    const listed = JSON.parse(runs.stdout) as Array<{ runId: string; state: string; epochsDone: number }>;
    assert.equal(listed[0]!.state, 'interrupted');
    const res = await runCli(['train', '-train_dir', r.trainDir, '--resume', listed[0]!.runId, '--epochs', String(listed[0]!.epochsDone + 1)], { cwd: dir });
    assert.equal(res.code, 0, res.stderr);
    assert.equal(theRun(r.trainDir).state, 'finished');
    return observe(res);
  },
});

/** Simulated disk full on files matching `match` while `cmd` runs. */
const FULL: Array<{ id: string; match: string; file: (dir: string) => string; act: (dir: string, env: Record<string, string>) => Promise<Observed> }> = [
  {
    id: 'writing the checkpoint (train)',
    match: 'checkpoint\\.safetensors',
    file: (dir) => join(dir, 'full.uflow', 'runs'),
    act: async (dir, env) => observe(await runCli(['train', '-data', data(dir), '-train_dir', join(dir, 'full.uflow'), ...LONG.slice(0, 4), '--epochs', '1', '--validate-every', '0'], { cwd: dir, env })),
  },
  {
    id: 'writing run.json (train)',
    match: 'run\\.json',
    file: (dir) => join(dir, 'full.uflow'),
    act: async (dir, env) => observe(await runCli(['train', '-data', data(dir), '-train_dir', join(dir, 'full.uflow'), ...LONG.slice(0, 4), '--epochs', '1', '--validate-every', '0'], { cwd: dir, env })),
  },
  { id: 'writing evaluation.json (evaluate)', match: 'evaluation\\.json', file: (dir) => join(td(dir), 'runs', onlyRun(dir)), act: (dir, env) => cliEvaluate(dir, [], env) },
  { id: 'writing the PNG maps (evaluate)', match: '/maps/', file: (dir) => join(td(dir), 'runs', onlyRun(dir), 'maps'), act: (dir, env) => cliEvaluate(dir, [], env) },
  { id: 'writing the dataset report (evaluate)', match: 'dataset-report', file: (dir) => join(td(dir), 'runs', onlyRun(dir)), act: (dir, env) => cliEvaluate(dir, [], env) },
];
for (const f of FULL) {
  cases.push({
    name: `disk full ${f.id}: ${f.match === 'dataset-report' ? 'warned (the evaluation goes on)' : 'refused'} naming the file, earlier files intact`,
    expect: f.match === 'dataset-report' ? 'warn' : 'refuse',
    names: (dir) => [f.file(dir)],
    match: /no space left on the device \(disk full\)/,
    plant: () => undefined,
    act: (dir) => f.act(dir, { NODE_OPTIONS: `--import ${ENOSPC_PRELOAD}`, FAULT_ENOSPC_MATCH: f.match }),
  });
}

/** A real small tmpfs as -train_dir, where this process may mount one (root on Linux). */
function canMount(): boolean {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return false;
  const probe = join('/tmp', `uflow-mount-probe-${process.pid}`);
  try {
    mkdirSync(probe, { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    try {
      execFileSync('rmdir', [probe], { stdio: 'ignore' });
    } catch {
      /* gone */
    }
  }
}
if (canMount()) {
  cases.push({
    name: 'a real 256 KiB tmpfs as -train_dir fills up: refused naming a file on it',
    expect: 'refuse',
    names: (dir) => [join(dir, 'tiny')],
    match: /no space left on the device \(disk full\)/,
    plant: (dir) => {
      mkdirSync(join(dir, 'tiny'));
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', join(dir, 'tiny')]);
    },
    act: async (dir) => {
      try {
        return observe(await runCli(['train', '-data', data(dir), '-train_dir', join(dir, 'tiny'), ...LONG.slice(0, 4), '--epochs', '3', '--validate-every', '0'], { cwd: dir }));
      } finally {
        execFileSync('umount', [join(dir, 'tiny')]);
      }
    },
  });
}

category('interrupts', cases, { base: async (dir) => void (await baseWithRun(dir)) });
void runJson;
