// ONNX export of the models (models/export) run in onnxruntime-node (CPU) against the tfjs path,
// on image files (the demo generator's textures with defects, or UFLOW_EXPORT_IMAGES: a folder of
// PNGs such as an MVTec category's test/<defect>), for each supported model and backbone.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../models/engine.js';
import { createExtractor } from '../../models/backbones/index.js';
import type { FeatureExtractor } from '../../models/backbones/types.js';
import { createModel, type ModelKind } from '../../models/model-factory.js';
import { exportOnnx, ExportUnsupportedError, unsupportedReason } from '../../models/export/onnx-export.js';
import { readModelInfo } from '../../models/export/graph.js';
import { generateDemoDataset } from '../../models/data/demo-dataset.js';
import { loadImageForModel } from '../../models/data/images.js';
import { compareOutputs, runOnnx, runTfjs } from '../helpers/onnx.js';

const T = 256;
let tmp: string;
let imageFiles: string[];

before(async () => {
  await initEngine({ backend: process.env.UFLOW_TEST_BACKEND ?? 'wasm' });
  tmp = mkdtempSync(join(tmpdir(), 'uflow-onnx-'));
  const dir = process.env.UFLOW_EXPORT_IMAGES ?? join(generateDemoDataset(tmp, { size: 64, seed: 11, counts: { train: 2, testGood: 1, defects: { hole: 1, scratch: 1, stain: 1 } } }), 'test');
  const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : /\.png$/i.test(e.name) ? [join(d, e.name)] : []));
  imageFiles = walk(dir).sort().slice(0, 3);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

async function images(S: number): Promise<Float32Array> {
  const out = new Float32Array(imageFiles.length * S * S * 3);
  for (let i = 0; i < imageFiles.length; i++) out.set((await loadImageForModel(imageFiles[i]!, S)).data, i * S * S * 3);
  return out;
}

async function roundTrip(kind: ModelKind, ex: FeatureExtractor, flowSteps: number) {
  const model = createModel(kind, { flow_steps: flowSteps }, ex, { seed: 7 });
  try {
    const S = ex.inputSize;
    const built = exportOnnx(model, { mapSize: T, producerVersion: 'test', metadata: { run_id: 'r1' } });
    const x = await images(S);
    const B = imageFiles.length;
    const ref = runTfjs(model, x, B, S, T);
    const got = await runOnnx(built.bytes, x, B, S, ex.channels.length);
    return { built, diffs: compareOutputs(got, ref), ref };
  } finally {
    model.dispose();
  }
}

for (const kind of ['uflow', 'fastflow'] as const) {
  test(`${kind} on builtin:filters: ONNX latents, map and score match tfjs`, async () => {
    const ex = await createExtractor({ backbone: 'builtin:filters', inputSize: 64 });
    try {
      const { built, diffs } = await roundTrip(kind, ex, 2);
      console.log(`  ${kind} builtin:filters 64 px, ${imageFiles.length} images: max |Δ| latents ${diffs.latents.toExponential(2)}, map ${diffs.map.toExponential(2)}, score ${diffs.score.toExponential(2)}`);
      assert.ok(diffs.latents <= 1e-4, `latents differ by ${diffs.latents}`);
      assert.ok(diffs.map <= 1e-5, `maps differ by ${diffs.map}`);
      assert.ok(diffs.score <= 1e-5, `scores differ by ${diffs.score}`);
      const info = readModelInfo(built.bytes);
      assert.equal(info.opset, 13);
      assert.equal(info.metadata.model, kind);
      assert.equal(info.metadata.input_size, '64');
      assert.equal(info.metadata.backbone, 'builtin:filters');
      assert.equal(info.metadata.run_id, 'r1');
      assert.deepEqual(JSON.parse(info.metadata.map_range!), kind === 'uflow' ? [0, 1] : [-1, 0]);
    } finally {
      ex.dispose();
    }
  });
}

test('what is not supported is refused with one sentence naming it', () => {
  const fake = { name: 'resnet18', inputSize: 64, channels: [64, 128, 256], scaleFactors: [4, 8, 16], layerNormLevels: true, extract: () => [], dispose: () => {} } as unknown as FeatureExtractor;
  const model = createModel('uflow', { flow_steps: 1 }, fake);
  try {
    const why = unsupportedReason(model);
    assert.match(why ?? '', /^ONNX export does not support the backbone 'resnet18' yet \(supported: [^)]*\)\.$/);
    assert.throws(() => exportOnnx(model, { mapSize: T, producerVersion: 'test' }), (e: unknown) => e instanceof ExportUnsupportedError && e.message === why);
  } finally {
    model.dispose();
  }
});
