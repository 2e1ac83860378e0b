/**
 * `uflow export` round trip: a tiny trained run (builtin:filters at 32 px, 2 epochs) exported by
 * the CLI, the file run in onnxruntime-node (CPU) on the run's test images and compared with the
 * tfjs path predict uses (latents, map, score, and the calibrated NFA detections computed from
 * each side's latents with the calibration read from the file's metadata); the metadata; and the
 * one-sentence refusal of a backbone the exporter does not support.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, tempDir } from './cli-helpers.js';
import { tinyCategory, tinyFlags } from '../queue/helpers.js';
import { initEngine } from '../../models/engine.js';
import { createExtractor } from '../../models/backbones/index.js';
import { loadModelFromCheckpoint } from '../../models/model-factory.js';
import { loadImageForModel } from '../../models/data/images.js';
import { readModelInfo } from '../../models/export/graph.js';
import { negLogNfaCalibrated, type NullFit } from '../../models/scores/nfa-calibrated.js';
import { nchwToNhwcArray } from '../../models/layout.js';
import type { Latent } from '../../models/scores/latent.js';
import { compareOutputs, runOnnx, runTfjs, type Outputs } from '../helpers/onnx.js';

const tmp = tempDir('uflow-cli-export-');
after(() => tmp.cleanup());
const data = join(tmp.dir, 'data');
const trainDir = join(tmp.dir, 'td');
const S = 32;
const T = 256;
let runId = '';

test('train a tiny run, export it: the file holds the model and the run metadata', async () => {
  const cat = tinyCategory(data, 'tiny', 5);
  const t = await cli(['train', '-cat', 'tiny', '-data', data, '-train_dir', trainDir, ...tinyFlags(2)]);
  assert.equal(t.code, 0, t.stderr);
  runId = /run (\S+) finished/.exec(t.stdout)![1]!;
  const runDir = join(trainDir, 'runs', runId);
  const file = join(tmp.dir, 'tiny.onnx');
  const e = await cli(['export', '-cat', 'tiny', '-train_dir', trainDir, '--out', file]);
  assert.equal(e.code, 0, e.stderr);
  assert.match(e.stdout, new RegExp(`run ${runId} → ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  assert.match(e.stdout, /output anomaly_map\s+\[batch, 1, 256, 256\]/);
  assert.ok(existsSync(file));

  const bytes = new Uint8Array(readFileSync(file));
  const { metadata: md } = readModelInfo(bytes);
  const ckpt = join(runDir, 'checkpoint.safetensors');
  assert.equal(md.format, 'uflow-onnx/1');
  assert.equal(md.model, 'uflow');
  assert.equal(md.model_name, 'U-Flow');
  assert.equal(md.backbone, 'builtin:filters');
  assert.equal(md.input_size, String(S));
  assert.match(md.input_normalisation!, /RGB in \[0, 1\]/);
  assert.equal(md.map_size, String(T));
  assert.equal(md.run_id, runId);
  assert.equal(md.category, 'tiny');
  assert.equal(md.checkpoint, 'checkpoint.safetensors');
  assert.equal(md.epoch, '2');
  assert.equal(md.checkpoint_sha256, createHash('sha256').update(readFileSync(ckpt)).digest('hex'));
  assert.ok(md.model_version!.startsWith(`${runId}/checkpoint.safetensors`), md.model_version);
  const threshold = JSON.parse(md.threshold!);
  assert.equal(threshold.variant, 'calibrated');
  assert.equal(threshold.negLogNfa, 0);
  const saved = JSON.parse(readFileSync(join(runDir, 'calibration.json'), 'utf8')).entries['checkpoint.safetensors'];
  assert.deepEqual(JSON.parse(md.calibration!), saved, 'the calibration is the one saved with the run');
  assert.deepEqual(JSON.parse(md.model_config!).channels, [16, 16, 16]);

  // onnxruntime-node against the tfjs path, on the run's test images
  await initEngine({ backend: process.env.UFLOW_TEST_BACKEND ?? 'wasm' });
  const ex = await createExtractor({ backbone: 'builtin:filters', inputSize: S });
  const { model } = loadModelFromCheckpoint(ckpt, { extractor: ex });
  try {
    const files = readdirSync(join(cat, 'test'), { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.png')).sort().map((f) => join(cat, 'test', f));
    const B = files.length;
    const x = new Float32Array(B * S * S * 3);
    for (let i = 0; i < B; i++) x.set((await loadImageForModel(files[i]!, S)).data, i * S * S * 3);
    const ref = runTfjs(model, x, B, S, T);
    const got = await runOnnx(bytes, x, B, S, 3);
    const d = compareOutputs(got, ref);
    console.log(`  trained tiny run, ${B} test images at ${S} px: max |Δ| latents ${d.latents.toExponential(2)}, map ${d.map.toExponential(2)}, score ${d.score.toExponential(2)}`);
    assert.ok(d.latents <= 1e-4, `latents differ by ${d.latents}`);
    assert.ok(d.map <= 1e-5, `maps differ by ${d.map}`);
    assert.ok(d.score <= 1e-5, `scores differ by ${d.score}`);

    // the detections (calibrated NFA from the metadata, in TypeScript) are the same from either latents
    const fit = JSON.parse(md.calibration!).fit as NullFit;
    const perImage = (o: Outputs, b: number): Latent[] =>
      o.z.map((z, l) => {
        const { h, w, channels: c } = fit.levels[l]!;
        const per = c * h * w;
        return { data: nchwToNhwcArray(z.subarray(b * per, (b + 1) * per), [1, c, h, w]), shape: [1, h, w, c] };
      });
    let detected = 0;
    for (let b = 0; b < B; b++) {
      const a = negLogNfaCalibrated(fit, perImage(got, b), T);
      const r = negLogNfaCalibrated(fit, perImage(ref, b), T);
      for (let i = 0; i < a.length; i++) {
        assert.equal(a[i]! > 0, r[i]! > 0, `image ${b}, pixel ${i}: ONNX −log NFA ${a[i]}, tfjs ${r[i]}`);
        if (r[i]! > 0) detected++;
      }
    }
    console.log(`  identical detections on ${B} images (${detected} pixels detected)`);
  } finally {
    model.dispose();
    ex.dispose();
  }
});

test('a backbone without an exporter is refused in one sentence (no stack trace); export is in --help', async () => {
  assert.ok(runId, 'needs the trained run');
  // The same run, claiming an MS-CaiT backbone: refused before any backbone is built (or downloaded).
  const fakeId = runId.replace(/-[0-9a-f]{4}$/, '-ffff');
  const fakeDir = join(trainDir, 'runs', fakeId);
  cpSync(join(trainDir, 'runs', runId), fakeDir, { recursive: true });
  const info = JSON.parse(readFileSync(join(fakeDir, 'run.json'), 'utf8'));
  info.runId = fakeId;
  info.config.model.backbone = 'mcait';
  writeFileSync(join(fakeDir, 'run.json'), JSON.stringify(info));
  const r = await cli(['export', '--run', fakeId, '-train_dir', trainDir, '--out', join(tmp.dir, 'no.onnx')]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.equal(r.stderr.trim(), "uflow export: ONNX export does not support the backbone 'mcait' yet (supported: builtin:filters, tfjs:<dir>, mobilenet_v2, resnet18, wide_resnet50_2, resnet50).");
  assert.ok(!existsSync(join(tmp.dir, 'no.onnx')));

  const h = await cli(['--help']);
  assert.match(h.stdout, /uflow export\s/);
});
