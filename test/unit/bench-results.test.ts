// bench/results.json: a figure's ratio and target verdict, merging a run into the previous entries,
// the target lines, the README table markers, and the JSON-lines records a bench writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { judge, makeRecord, timeRatio, type BenchRecord } from '../../bench/report.js';
import { formatRatio, formatTable, formatTime, mergeResults, parseRecordLines, readResults, replaceTable, TABLE_END, TABLE_START, targetLines, writeResults } from '../../bench/results.js';

const rec = (name: string, bench: string, date: string, value = 1, backend = 'tfjs wasm'): BenchRecord => ({ ...makeRecord({ name, ours: { value, unit: 'ms' }, backend }, bench, date) });

test('ratio is our time over the reference time, across ms / s, and refuses rates', () => {
  assert.equal(timeRatio({ value: 2.14, unit: 's' }, { value: 410, unit: 'ms' }), 2140 / 410);
  assert.equal(timeRatio({ value: 500, unit: 'ms' }, { value: 1, unit: 's' }), 0.5);
  assert.throws(() => timeRatio({ value: 28, unit: 'images/s' }, { value: 147, unit: 'images/s' }), /ms, s or min.*images\/s/);
  const r = makeRecord({ name: 'step', ours: { value: 2503, unit: 'ms' }, reference: { value: 435, unit: 'ms', what: 'PyTorch CPU' }, target: 'train-step', backend: 'tfjs wasm' }, 'train-step', '2026-01-01T00:00:00.000Z');
  assert.ok(Math.abs(r.ratio! - 5.754) < 1e-3);
  assert.equal(r.met, false);
  assert.ok(Math.abs(r.missedBy! - 5.754 / 2.5) < 1e-3);
  assert.equal(r.target, 'training step ≤ 2.5× PyTorch wall time');
  assert.equal(r.machine.cores > 0, true);
  assert.throws(() => makeRecord({ name: 'x', ours: { value: NaN, unit: 'ms' }, backend: 'b' }, 'b'), /ours is NaN/);
});

test('targets: ≤ limits are met at the limit, strict ones are not, absolute targets use their unit', () => {
  assert.deepEqual(judge('train-step', { value: 1, unit: 'ms' }, 2.5), { met: true, missedBy: null });
  assert.deepEqual(judge('inference', { value: 1, unit: 'ms' }, 1.2), { met: true, missedBy: null });
  const ev = judge('evaluation', { value: 1, unit: 's' }, 1);
  assert.equal(ev.met, false);
  assert.equal(ev.missedBy, 1);
  assert.deepEqual(judge('hover', { value: 149, unit: 'ms' }, null), { met: true, missedBy: null });
  const h = judge('hover', { value: 0.2, unit: 's' }, null);
  assert.equal(h.met, false);
  assert.ok(Math.abs(h.missedBy! - 200 / 150) < 1e-9);
  // a ratio target without a reference is not judged
  assert.deepEqual(judge('epoch', { value: 2, unit: 's' }, null), { met: null, missedBy: null });
});

test('merge: a figure measured again replaces the old in place, others keep their dates, stale ones of a completed bench go', () => {
  const old = [rec('a', 'x', '2026-01-01T00:00:00Z'), rec('b', 'y', '2026-01-02T00:00:00Z'), rec('c', 'x', '2026-01-01T00:00:00Z'), rec('a', 'x', '2026-01-01T00:00:00Z', 1, 'tfjs webgpu')];
  const fresh = [rec('d', 'x', '2026-02-01T00:00:00Z'), rec('a', 'x', '2026-02-01T00:00:00Z', 7)];
  const m = mergeResults(old, fresh, ['x']);
  assert.deepEqual(
    m.map((r) => [r.name, r.backend, r.date, r.ours.value]),
    [
      ['a', 'tfjs wasm', '2026-02-01T00:00:00Z', 7],
      ['b', 'tfjs wasm', '2026-01-02T00:00:00Z', 1],
      ['d', 'tfjs wasm', '2026-02-01T00:00:00Z', 1],
    ],
  );
  // the bench failed (not completed): its figures not measured again stay
  const kept = mergeResults(old, fresh, []);
  assert.deepEqual(kept.map((r) => `${r.name}/${r.backend}`), ['a/tfjs wasm', 'b/tfjs wasm', 'c/tfjs wasm', 'a/tfjs webgpu', 'd/tfjs wasm']);
});

test('target lines say met, missed by N×, not judged, or not measured, with the load caveat', () => {
  const step = makeRecord({ name: 'step', ours: { value: 2503, unit: 'ms' }, reference: { value: 435, unit: 'ms', what: 'PyTorch' }, target: 'train-step', backend: 'tfjs wasm' }, 'train-step', '2026-01-01T00:00:00Z');
  const hover = makeRecord({ name: 'hover', ours: { value: 40, unit: 'ms' }, target: 'hover', backend: 'onnxruntime-node cpu' }, 'daemon-load', '2026-01-01T00:00:00Z');
  const epoch = makeRecord({ name: 'epoch', ours: { value: 2, unit: 's' }, target: 'epoch', backend: 'tfjs wasm' }, 'epoch', '2026-01-01T00:00:00Z');
  const lines = targetLines([{ ...step, load: 0.1 }, { ...hover, load: 0.1 }, { ...epoch, load: 9, machine: { ...epoch.machine, cores: 2 } }]);
  assert.equal(lines.length, 5);
  assert.match(lines.find((l) => l.startsWith('training step'))!, /missed by 2\.30× \(5\.75×; step, tfjs wasm, 2026-01-01\)$/);
  assert.match(lines.find((l) => l.startsWith('hover'))!, /: met \(40\.0 ms;/);
  assert.match(lines.find((l) => l.startsWith('metal_plate epoch'))!, /not judged .*load 9\.0 on 2 cores: not an idle-machine figure/);
  assert.match(lines.find((l) => l.startsWith('inference'))!, /not measured/);
  assert.match(lines.find((l) => l.startsWith('full metal_plate'))!, /not measured/);
});

test('table: one row per figure with ratio, verdict and machine; README markers replaced, missing markers refused', () => {
  assert.equal(formatRatio(5.754), '5.75×');
  assert.equal(formatRatio(1.9 / 339), '0.0056× (178× faster)');
  assert.equal(formatRatio(null), '');
  assert.equal(formatTime({ value: 238_000, unit: 'ms' }), '238 s');
  assert.equal(formatTime({ value: 9_999, unit: 'ms' }), '9999 ms');
  assert.equal(formatTime({ value: 2.14, unit: 's' }), '2.14 s');
  const step = makeRecord({ name: 'step | pipe', ours: { value: 2503, unit: 'ms' }, reference: { value: 435, unit: 'ms', what: 'PyTorch 1.13 CPU' }, target: 'train-step', backend: 'tfjs wasm' }, 'train-step', '2026-01-01T00:00:00Z');
  const t = formatTable([step]);
  const rows = t.split('\n').filter((l) => l.startsWith('| step'));
  assert.equal(rows.length, 1);
  assert.match(rows[0]!, /^\| step \\\| pipe \(`train-step`\) \| 2503 ms \| PyTorch 1\.13 CPU: 435 ms \| 5\.75× \| missed by 2\.30× \| tfjs wasm \| 2026-01-01, load /);
  assert.match(t, /Machine: \d+ cores, /);
  const readme = `# X\n\nbefore\n${TABLE_START}\nold table\n${TABLE_END}\nafter\n`;
  const out = replaceTable(readme, 'NEW');
  assert.equal(out, `# X\n\nbefore\n${TABLE_START}\nNEW\n${TABLE_END}\nafter\n`);
  assert.equal(replaceTable(out, 'NEW'), out);
  assert.throws(() => replaceTable('# no markers', 'NEW', 'README.md'), /README\.md has no bench table markers/);
});

test('results file: records read back, a broken line or file is an error naming it, written atomically', () => {
  const dir = mkdtempSync(join(tmpdir(), 'uflow-bench-results-'));
  try {
    const a = rec('a', 'x', '2026-01-01T00:00:00Z');
    assert.deepEqual(parseRecordLines(`${JSON.stringify(a)}\n\n`, 'f.jsonl'), [a]);
    assert.throws(() => parseRecordLines(`${JSON.stringify(a)}\n{"name":1}\n`, 'f.jsonl'), /f\.jsonl line 2 is not a bench record/);
    const p = join(dir, 'results.json');
    assert.deepEqual(readResults(p).entries, []);
    writeResults(p, [a], '2026-03-01T00:00:00Z');
    const back = JSON.parse(readFileSync(p, 'utf8'));
    assert.equal(back.schema, 1);
    assert.equal(back.updated, '2026-03-01T00:00:00Z');
    assert.deepEqual(back.entries, [a]);
    writeFileSync(p, '{oops');
    assert.throws(() => readResults(p), new RegExp(`${p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is not valid JSON.*delete it`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('record() appends one JSON line to UFLOW_BENCH_RECORD, named after the bench file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'uflow-bench-record-'));
  try {
    const script = join(dir, 'probe.bench.ts');
    const reportUrl = new URL('../../bench/report.ts', import.meta.url).href;
    writeFileSync(script, `import { record } from '${reportUrl}';\nrecord({ name: 'probe', ours: { value: 3, unit: 's' }, reference: { value: 1500, unit: 'ms', what: 'ref' }, target: 'epoch', backend: 'b' });\nrecord({ name: 'probe2', ours: { value: 1, unit: 'ms' }, backend: 'b' });\n`);
    const out = join(dir, 'records.jsonl');
    const r = spawnSync(process.execPath, ['--import', 'tsx', script], { env: { ...process.env, UFLOW_BENCH_RECORD: out, UFLOW_BENCH_NAME: '' }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const recs = parseRecordLines(readFileSync(out, 'utf8'), out);
    assert.deepEqual(recs.map((x) => [x.name, x.bench, x.ratio, x.met, x.missedBy]), [
      ['probe', 'probe', 2, true, null],
      ['probe2', 'probe', null, null, null],
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
