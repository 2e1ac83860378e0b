/**
 * Never lost work: Ctrl-C (SIGINT) keeps the last complete epoch and exits 130 naming the run;
 * `--resume` continues from it and finishes. kill -9 at random moments never leaves a run.json,
 * checkpoint or metrics file that does not parse.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '../../models/io/safetensors.js';
import { cli, cliStart, fastFlags, smallDataset, tempDir, waitFor } from './cli-helpers.js';

const tmp = tempDir('uflow-cli-int-');
after(() => tmp.cleanup());
const data = join(tmp.dir, 'data');
const trainDir = join(tmp.dir, 'td');
smallDataset(data);

function epochsSeen(out: string): number {
  const m = [...out.matchAll(/epoch (\d+)\/\d+ step (\d+)\/(\d+)/g)].filter((x) => x[2] === x[3]);
  return m.length ? Number(m[m.length - 1]![1]) : 0;
}

/** Every file of the run parses; returns run.json. */
function checkRunFiles(dir: string): { state: string; epochsDone: number } {
  const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
  const ck = join(dir, 'checkpoint.safetensors');
  if (run.epochsDone > 0 || existsSync(ck)) {
    const f = readSafetensors(ck);
    assert.ok(f.tensors.size > 10);
    // The checkpoint is written before run.json: it is the same epoch or one ahead (killed in between).
    const e = Number(f.metadata.epoch);
    assert.ok(e === run.epochsDone || e === run.epochsDone + 1, `checkpoint epoch ${e}, run.json ${run.epochsDone}`);
  }
  if (existsSync(join(dir, 'train-state.safetensors'))) readSafetensors(join(dir, 'train-state.safetensors'));
  if (existsSync(join(dir, 'metrics.jsonl'))) {
    const text = readFileSync(join(dir, 'metrics.jsonl'), 'utf8');
    assert.ok(text === '' || text.endsWith('\n'), 'metrics.jsonl ends with a whole line');
    for (const l of text.trim().split('\n').filter(Boolean)) JSON.parse(l);
  }
  return run;
}

test('SIGINT keeps the last complete epoch (exit 130); --resume finishes the run', async () => {
  const p = cliStart(['train', '-cat', 'demo_tile', '-data', data, '-train_dir', trainDir, ...fastFlags(40, ['--batch', '2', '--validate-every', '0'])]);
  await waitFor(() => epochsSeen(p.output()) >= 2, 120_000, 'two epochs', p);
  p.child.kill('SIGINT');
  const r = await p.done;
  assert.equal(r.code, 130, r.stderr);
  const m = /run (\S+) cancelled after (\d+) complete epoch/.exec(r.stderr);
  assert.ok(m, r.stderr);
  const runId = m![1]!;
  const kept = Number(m![2]);
  assert.ok(kept >= 2, `kept ${kept}`);
  assert.match(r.stderr, new RegExp(`uflow train -cat demo_tile --resume ${runId}`));
  const dir = join(trainDir, 'runs', runId);
  const run = checkRunFiles(dir);
  assert.equal(run.state, 'cancelled');
  assert.equal(run.epochsDone, kept);

  const total = kept + 2;
  const res = await cli(['train', '-cat', 'demo_tile', '-train_dir', trainDir, '--resume', runId, '--epochs', String(total)]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, new RegExp(`resumed at epoch ${kept} with the optimizer state`));
  assert.match(res.stdout, new RegExp(`run ${runId} finished: ${total} epochs`));
  const fin = checkRunFiles(dir);
  assert.equal(fin.state, 'finished');
  const epochs = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).epoch);
  assert.deepEqual(epochs, Array.from({ length: total }, (_, i) => i + 1));

  const again = await cli(['train', '-cat', 'demo_tile', '-train_dir', trainDir, '--resume', runId]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already trained .* pass --epochs N/);
});

test('kill -9 at random moments: the run files always parse, and the run resumes', async () => {
  let runId: string | undefined;
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let round = 0; round < 3; round++) {
    const args = runId
      ? ['train', '-cat', 'demo_tile', '-train_dir', trainDir, '--resume', runId]
      : ['train', '-cat', 'demo_tile', '-data', data, '-train_dir', trainDir, ...fastFlags(60, ['--batch', '2', '--validate-every', '1'])];
    const p = cliStart(args);
    await waitFor(() => /run (\S+): \d+ training images/.test(p.output()), 60_000, 'the run to start', p);
    runId ??= /run (\S+): \d+ training images/.exec(p.output())![1]!;
    const start = epochsSeen(p.output());
    await waitFor(() => epochsSeen(p.output()) > start + 1, 60_000, 'two epochs', p);
    await new Promise((r) => setTimeout(r, 50 + rand() * 1500));
    p.child.kill('SIGKILL');
    const r = await p.done;
    assert.equal(r.signal, 'SIGKILL');
    const run = checkRunFiles(join(trainDir, 'runs', runId));
    assert.equal(run.state, 'running');
    assert.ok(run.epochsDone >= 1);
  }
  // A listing notices the dead process.
  const list = await cli(['runs', '-train_dir', trainDir, '--json']);
  assert.equal(list.code, 0, list.stderr);
  const runs = JSON.parse(list.stdout) as Array<{ runId: string; state: string; epochsDone: number }>;
  const mine = runs.find((x) => x.runId === runId)!;
  assert.equal(mine.state, 'interrupted');
  const fin = await cli(['train', '-cat', 'demo_tile', '-train_dir', trainDir, '--resume', runId!, '--epochs', String(mine.epochsDone + 1)]);
  assert.equal(fin.code, 0, fin.stderr);
  assert.equal(checkRunFiles(join(trainDir, 'runs', runId!)).state, 'finished');
});
