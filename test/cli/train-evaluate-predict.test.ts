/**
 * The whole CLI path on a small generated dataset (woven texture with planted holes, scratches,
 * stains): train → evaluate (table and --json = evaluation.json) → predict (scores and PNGs).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, fastFlags, smallDataset, tempDir } from './cli-helpers.js';

const tmp = tempDir('uflow-cli-tep-');
after(() => tmp.cleanup());
const data = join(tmp.dir, 'data');
const trainDir = join(tmp.dir, 'td');
let runId = '';

test('train detects the planted defects (validation in the run)', async () => {
  smallDataset(data);
  const r = await cli(['train', '-cat', 'demo_tile', '-data', data, '-train_dir', trainDir, ...fastFlags(6, ['--validate-every', '3'])]);
  assert.equal(r.code, 0, r.stderr);
  const m = /run (\S+) finished: 6 epochs/.exec(r.stdout);
  assert.ok(m, r.stdout);
  runId = m![1]!;
  assert.match(runId, /^demo_tile-uflow-\d{8}-\d{6}-[0-9a-f]{4}$/);
  const dir = join(trainDir, 'runs', runId);
  for (const f of ['run.json', 'checkpoint.safetensors', 'train-state.safetensors', 'metrics.jsonl', 'config.yaml', 'best-pixel_auroc.safetensors', 'best-aupro.safetensors', 'best-miou.safetensors', 'best-image_auroc.safetensors']) {
    assert.ok(existsSync(join(dir, f)), `${f} missing`);
  }
  const run = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8'));
  assert.equal(run.state, 'finished');
  assert.equal(run.epochsDone, 6);
  assert.equal(run.pid, undefined);
  // An explicit backbone is never changed by auto.
  assert.deepEqual([run.config.model.backbone, run.autoBackbone], ['builtin:filters', undefined]);
  const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => l.epoch), [1, 2, 3, 4, 5, 6]);
  assert.ok(lines[2].metrics && lines[5].metrics && !lines[0].metrics, 'validation at epochs 3 and 6');
  assert.ok(lines[5].loss < lines[0].loss, 'the loss decreases');
  // 16 normal images: 5 held out for calibration (recorded in the run, kept out of training), 11 trained on
  assert.equal(run.holdout.images.length, 5);
  assert.equal(run.calibration.variant, 'calibrated');
  assert.ok(existsSync(join(dir, 'calibration.json')), 'calibration.json');
  assert.match(r.stdout + r.stderr, /11 training images, 5 held out for calibration/);
  // progress lines on stderr (not a TTY: one per epoch); batch 4: 3 steps of the 11 images
  assert.match(r.stderr, /epoch 6\/6 step 3\/3\s+loss -?\d/);
});

test('evaluate prints the metrics of evaluation.json; the defects are detected', async () => {
  assert.ok(runId, 'needs the trained run');
  const j = await cli(['evaluate', '-cat', 'demo_tile', '-train_dir', trainDir, '--json']);
  assert.equal(j.code, 0, j.stderr);
  const ev = JSON.parse(j.stdout);
  const onDisk = JSON.parse(readFileSync(join(trainDir, 'runs', runId, 'evaluation.json'), 'utf8'));
  assert.deepEqual(ev.overall, onDisk.overall);
  assert.equal(ev.runId, runId);
  assert.ok(ev.overall.image_auroc >= 0.95, `image AUROC ${ev.overall.image_auroc}`);
  assert.ok(ev.overall.pixel_auroc >= 0.95, `pixel AUROC ${ev.overall.pixel_auroc}`);
  assert.ok(ev.overall.aupro > 0.5, `AUPRO ${ev.overall.aupro}`);
  assert.ok(ev.overall.miou !== null);
  assert.deepEqual(Object.keys(ev.perDefect).sort(), ['hole', 'scratch', 'stain']);
  assert.equal(ev.images.length, 15);
  assert.ok(ev.curves.roc.length > 1 && ev.curves.pixelRoc.length > 1 && ev.curves.pro.length > 1);
  for (const im of ev.images) for (const rel of Object.values(im.maps)) assert.ok(existsSync(join(trainDir, 'runs', runId, rel as string)), `${rel}`);

  const t = await cli(['evaluate', '-cat', 'demo_tile', '-train_dir', trainDir]);
  assert.equal(t.code, 0, t.stderr);
  const fmt = (v: number | null) => (v === null ? '-' : v.toFixed(4));
  const o = ev.overall;
  const row = t.stdout.split('\n').find((l) => l.startsWith('demo_tile (all)'));
  assert.ok(row, t.stdout);
  assert.deepEqual(row!.split(/\s{2,}/).slice(1, 5), [fmt(o.image_auroc), fmt(o.pixel_auroc), fmt(o.aupro), fmt(o.miou)]);
  for (const [d, m] of Object.entries(ev.perDefect) as Array<[string, { image_auroc: number; pixel_auroc: number; aupro: number; miou: number }]>) {
    const line = t.stdout.split('\n').find((l) => l.trim().startsWith(d + ' '));
    assert.ok(line, `row for ${d}`);
    assert.deepEqual(line!.trim().split(/\s{2,}/).slice(1, 5), [fmt(m.image_auroc), fmt(m.pixel_auroc), fmt(m.aupro), fmt(m.miou)]);
  }
});

test('predict scores images and writes the PNGs', async () => {
  assert.ok(runId, 'needs the trained run');
  const out = join(tmp.dir, 'pred');
  const good = join(data, 'demo_tile', 'test', 'good');
  const hole = join(data, 'demo_tile', 'test', 'hole');
  const images = [join(good, readdirSync(good).sort()[0]!), join(hole, readdirSync(hole).sort()[0]!)];
  const r = await cli(['predict', '-cat', 'demo_tile', '-train_dir', trainDir, '--image', ...images, '--out', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  assert.equal(res.runId, runId);
  assert.equal(res.images.length, 2);
  assert.ok(res.images[1].score > res.images[0].score, `defect ${res.images[1].score} vs good ${res.images[0].score}`);
  assert.equal(res.nfaVariant, 'calibrated', 'the run was calibrated on its held-out images');
  for (const im of res.images) {
    assert.equal(im.files.length, 3);
    assert.equal(im.anomalous, im.regions.length > 0);
    assert.match(im.verdict, im.anomalous ? /^defect: \d+ regions?, strongest −log NFA/ : /^no defect/);
    for (const r of im.regions) assert.ok(r.area > 0 && r.maxNegLogNfa > 0 && r.box[2] > 0 && r.box[3] > 0);
    for (const f of im.files) assert.deepEqual([...readFileSync(f).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  }
  // Without --image: the test split of the run's dataset, as a table.
  const all = await cli(['predict', '-cat', 'demo_tile', '-train_dir', trainDir]);
  assert.equal(all.code, 0, all.stderr);
  assert.equal(all.stdout.trim().split('\n').length, 1 + 15);
});
