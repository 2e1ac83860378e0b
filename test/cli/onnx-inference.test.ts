/**
 * Inference on onnxruntime-node against the tfjs reference, through the CLI: one tiny trained run
 * (builtin:filters at 32 px, 2 epochs) evaluated and predicted with `--engine onnx` and
 * `--engine tfjs` (same verdicts, scores and metrics within 1e-3, same regions), onnx by default
 * and said so in the JSON, nothing new in the run folder but what evaluate always writes, and the
 * fallback to tfjs with the reason when onnxruntime-node is missing (UFLOW_ORT_DISABLE=1) or an
 * execution provider asked for is not there. A second tiny run at a non-square size (48×64, maps at
 * 192×256) gives the same metrics, scores and verdicts on both engines.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { cli, tempDir } from './cli-helpers.js';
import { tinyCategory, tinyFlags } from '../queue/helpers.js';
import type { Evaluation } from '../../server/protocol.js';
import type { PredictFolderResult } from '../../server/predict.js';

const tmp = tempDir('uflow-cli-ort-');
after(() => tmp.cleanup());
const data = join(tmp.dir, 'data');
const trainDir = join(tmp.dir, 'td');
const TOL = 1e-3;
let runDir = '';

/** sha256 of every file under `dir` (relative path → hash). */
function hashes(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.set(relative(dir, p), createHash('sha256').update(readFileSync(p)).digest('hex'));
    }
  };
  walk(dir);
  return out;
}

async function json<T>(args: string[], env?: Record<string, string>): Promise<{ value: T; stderr: string }> {
  const r = await cli([...args, '-train_dir', trainDir, '--json'], { env });
  assert.equal(r.code, 0, r.stderr);
  return { value: JSON.parse(r.stdout) as T, stderr: r.stderr };
}

function samePredictions(a: PredictFolderResult, b: PredictFolderResult): void {
  assert.equal(a.images.length, b.images.length);
  a.images.forEach((x, i) => {
    const y = b.images[i]!;
    assert.equal(x.imagePath, y.imagePath);
    assert.equal(x.anomalous, y.anomalous, `${x.imagePath}: verdicts differ (${x.verdict} / ${y.verdict})`);
    assert.ok(Math.abs(x.score - y.score) <= TOL, `${x.imagePath}: scores ${x.score} / ${y.score}`);
    assert.deepEqual(x.regions.map((r) => [r.box, r.area]), y.regions.map((r) => [r.box, r.area]), `${x.imagePath}: regions differ`);
    x.regions.forEach((r, k) => assert.ok(Math.abs(r.maxNegLogNfa - y.regions[k]!.maxNegLogNfa) <= TOL * Math.max(1, Math.abs(r.maxNegLogNfa))));
  });
}

test('evaluate with --engine onnx and --engine tfjs: same verdicts, scores and metrics; onnx writes nothing new into the run', { timeout: 120_000 }, async () => {
  tinyCategory(data, 'tiny', 5);
  const t = await cli(['train', '-cat', 'tiny', '-data', data, '-train_dir', trainDir, ...tinyFlags(2)]);
  assert.equal(t.code, 0, t.stderr);
  runDir = join(trainDir, 'runs', /run (\S+) finished/.exec(t.stdout)![1]!);

  const ref = (await json<Evaluation>(['evaluate', '-cat', 'tiny', '--engine', 'tfjs'])).value;
  assert.deepEqual(ref.inference, { engine: 'tfjs', reason: 'asked for (engine tfjs)' });
  const before = hashes(runDir);
  const got = (await json<Evaluation>(['evaluate', '-cat', 'tiny', '--engine', 'onnx'])).value;
  assert.equal(got.inference?.engine, 'onnx');
  assert.deepEqual(got.inference?.providers, ['cpu']);
  assert.match(got.inference!.reason, /^asked for; onnxruntime-node \d/);
  // The files of the tfjs evaluation are rewritten in place; nothing else appears (no .onnx file).
  assert.deepEqual([...hashes(runDir).keys()].sort(), [...before.keys()].sort());
  for (const [f, h] of before) if (!/^(evaluation\.json|dataset-report\.evaluate\.json|maps\/)/.test(f)) assert.equal(hashes(runDir).get(f), h, `${f} changed`);
  assert.equal(JSON.parse(readFileSync(join(runDir, 'evaluation.json'), 'utf8')).inference.engine, 'onnx', 'evaluation.json says which engine ran');

  let maxScore = 0;
  got.images.forEach((x, i) => {
    const y = ref.images[i]!;
    assert.equal(x.path, y.path);
    assert.equal(x.maxNegLogNfa > 0, y.maxNegLogNfa > 0, `${x.path}: verdicts differ`);
    assert.equal(x.detectedPixels, y.detectedPixels, `${x.path}: detected pixels`);
    maxScore = Math.max(maxScore, Math.abs(x.score - y.score));
  });
  assert.ok(maxScore <= TOL, `scores differ by ${maxScore}`);
  for (const k of ['image_auroc', 'pixel_auroc', 'aupro', 'miou'] as const) {
    assert.ok(Math.abs((got.overall[k] ?? NaN) - (ref.overall[k] ?? NaN)) <= TOL, `${k}: onnx ${got.overall[k]}, tfjs ${ref.overall[k]}`);
  }
  console.log(`  ${got.images.length} images: max |Δ score| ${maxScore.toExponential(2)}; pixel AUROC ${got.overall.pixel_auroc} / ${ref.overall.pixel_auroc}`);
});

test('predict with --engine onnx (the default) and --engine tfjs: same regions and verdicts', { timeout: 60_000 }, async () => {
  assert.ok(runDir, 'needs the trained run');
  const before = hashes(runDir);
  const dflt = await json<PredictFolderResult>(['predict', '-cat', 'tiny']);
  assert.equal(dflt.value.inference.engine, 'onnx');
  assert.match(dflt.value.inference.reason, /^default: onnxruntime-node loaded and the model exports/);
  const tfjs = (await json<PredictFolderResult>(['predict', '-cat', 'tiny', '--engine', 'tfjs'])).value;
  assert.equal(tfjs.inference.engine, 'tfjs');
  assert.ok(dflt.value.images.some((i) => i.anomalous) && dflt.value.images.some((i) => !i.anomalous), 'both verdicts occur');
  samePredictions(dflt.value, tfjs);
  assert.deepEqual(hashes(runDir), before, 'predict changes nothing in the run folder');
});

test('onnxruntime-node missing (UFLOW_ORT_DISABLE=1): tfjs with the reason; a provider that is not there: cpu with a one-line notice', { timeout: 60_000 }, async () => {
  assert.ok(runDir, 'needs the trained run');
  const off = await json<PredictFolderResult>(['predict', '-cat', 'tiny', '--engine', 'onnx'], { UFLOW_ORT_DISABLE: '1' });
  assert.deepEqual(off.value.inference, { engine: 'tfjs', reason: 'onnxruntime-node is disabled (UFLOW_ORT_DISABLE=1)' });
  assert.match(off.stderr, /^uflow predict: inference on tfjs instead of onnx: onnxruntime-node is disabled \(UFLOW_ORT_DISABLE=1\)$/m);
  const on = await json<PredictFolderResult>(['predict', '-cat', 'tiny', '--ort-provider', 'coreml']);
  assert.equal(on.value.inference.engine, 'onnx');
  assert.deepEqual(on.value.inference.providers, ['cpu']);
  const notice = on.stderr.split('\n').filter((l) => l.startsWith('uflow predict:'));
  assert.equal(notice.length, 1, on.stderr);
  assert.match(notice[0]!, /has no coreml execution provider here .*: running on cpu$/);
  samePredictions(on.value, off.value);
  assert.ok(statSync(runDir).isDirectory());
});

test('a non-square run (48×64, maps 192×256): evaluate and predict on onnx and tfjs give the same metrics, scores and verdicts', { timeout: 180_000 }, async () => {
  const data2 = join(tmp.dir, 'data-hw');
  const td2 = join(tmp.dir, 'td-hw');
  tinyCategory(data2, 'wide', 7);
  const flags = ['--backbone', 'builtin:filters', '--input-size', '48x64', '--epochs', '2', '--batch', '2', '--lr', '2e-3', '--validate-every', '0'];
  const t = await cli(['train', '-cat', 'wide', '-data', data2, '-train_dir', td2, ...flags]);
  assert.equal(t.code, 0, t.stderr);
  const run = JSON.parse(readFileSync(join(td2, 'runs', /run (\S+) finished/.exec(t.stdout)![1]!, 'run.json'), 'utf8'));
  assert.deepEqual(run.config.model.input_size, [48, 64]);
  const run2 = async <T>(args: string[]): Promise<T> => {
    const r = await cli([...args, '-train_dir', td2, '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  };

  const ref = await run2<Evaluation>(['evaluate', '-cat', 'wide', '--engine', 'tfjs']);
  const got = await run2<Evaluation>(['evaluate', '-cat', 'wide', '--engine', 'onnx']);
  assert.equal(ref.inference?.engine, 'tfjs');
  assert.equal(got.inference?.engine, 'onnx', JSON.stringify(got.inference));
  for (const ev of [ref, got]) {
    assert.deepEqual(ev.targetShape, [192, 256]);
    assert.equal(ev.targetSize, 256);
  }
  assert.equal(got.images.length, ref.images.length);
  let maxScore = 0;
  got.images.forEach((x, i) => {
    const y = ref.images[i]!;
    assert.equal(x.path, y.path);
    assert.equal(x.maxNegLogNfa > 0, y.maxNegLogNfa > 0, `${x.path}: verdicts differ`);
    maxScore = Math.max(maxScore, Math.abs(x.score - y.score));
  });
  assert.ok(maxScore <= TOL, `scores differ by ${maxScore}`);
  for (const k of ['image_auroc', 'pixel_auroc', 'aupro', 'miou'] as const) {
    assert.ok(Number.isFinite(ref.overall[k] ?? NaN), `${k}: ${ref.overall[k]}`);
    assert.ok(Math.abs((got.overall[k] ?? NaN) - (ref.overall[k] ?? NaN)) <= TOL, `${k}: onnx ${got.overall[k]}, tfjs ${ref.overall[k]}`);
  }

  const onnx = await run2<PredictFolderResult>(['predict', '-cat', 'wide', '--engine', 'onnx']);
  const tfjs = await run2<PredictFolderResult>(['predict', '-cat', 'wide', '--engine', 'tfjs']);
  assert.equal(onnx.inference.engine, 'onnx');
  assert.equal(tfjs.inference.engine, 'tfjs');
  assert.ok(onnx.images.length > 0);
  samePredictions(onnx, tfjs);
  console.log(`  48×64: ${got.images.length} images: max |Δ score| ${maxScore.toExponential(2)}; pixel AUROC ${got.overall.pixel_auroc} / ${ref.overall.pixel_auroc}`);
});
