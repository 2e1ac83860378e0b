// A U-Flow checkpoint in the reference naming that carries its MS-CaiT backbone (as the released
// models/<metric>/<category>.ckpt files do) predicts through Predictor.openFile and `uflow predict
// --checkpoint`. Tiny random CaiT models stand in for cait_m48_448 / cait_s24_224 (no weights offline).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { writeSafetensors, type TensorMap } from '../../models/io/safetensors.js';
import { createMsCaitExtractor } from '../../models/backbones/cait.js';
import { UFlowModel, configFromExtractor } from '../../models/uflow-model.js';
import { anomalyMap } from '../../models/scores/anomaly-map.js';
import { loadImageForModel } from '../../models/data/images.js';
import { Predictor } from '../../server/predict.js';
import { PipelineError } from '../../server/runs.js';
import { vitStateDict } from '../helpers/vit-fixture.js';
import { goldenCases, goldenRoot, skipReason } from '../helpers/golden.js';
import { readModelCheckpoint } from '../../models/model-factory.js';

test('a reference-named checkpoint holding its MS-CaiT backbone predicts (flow steps read from the file)', async () => {
  await initEngine({ backend: 'wasm' });
  const dir = mkdtempSync(join(tmpdir(), 'uflow-released-'));
  try {
    const cait1 = vitStateDict({ img: 32, patch: 4, embed: 12, heads: 3, depth: 2, kind: 'cait' }, 31, 'model.feature_extractor.extractor1.');
    const cait2 = vitStateDict({ img: 16, patch: 4, embed: 8, heads: 2, depth: 2, kind: 'cait' }, 32, 'model.feature_extractor.extractor2.');
    const reference = createMsCaitExtractor(new Map([...cait1, ...cait2]));
    const flow = new UFlowModel({ ...configFromExtractor(reference, 3), seed: 7 });
    const state: TensorMap = new Map([...cait1, ...cait2]);
    for (const [k, t] of flow.stateDict()) state.set(`model.${k}`, t);
    state.set('model.log_loss_weights', { dtype: 'F32', shape: [2], data: new Float32Array(2) }); // a training leftover
    const file = join(dir, 'carpet.safetensors');
    writeSafetensors(file, state);

    const img = join(dir, 'part.png');
    const px = Buffer.alloc(40 * 40 * 3);
    for (let i = 0; i < px.length; i++) px[i] = (i * 37) % 251;
    await sharp(px, { raw: { width: 40, height: 40, channels: 3 } }).png().toFile(img);

    const before = tf.memory().numTensors;
    const p = await Predictor.openFile(file);
    try {
      assert.equal(p.run.config.model.flow_steps, 3);
      assert.equal(p.run.config.model.input_size, 32);
      const pr = await p.predict(img);
      // The same model built by hand gives the same image score.
      const x = (await loadImageForModel(img, 32)).data;
      const expected = tf.tidy(() => tf.max(anomalyMap(flow.fromFeatures(reference.extract(tf.tensor4d(x, [1, 32, 32, 3]))).z, 256)).dataSync()[0]!);
      assert.ok(Math.abs(pr.score - expected) < 1e-5, `score ${pr.score} vs ${expected}`);
      assert.match(pr.anomalyMapPng, /^data:image\/png;base64,/);
    } finally {
      p.dispose();
    }
    assert.equal(tf.memory().numTensors, before);

    const noBackbone = join(dir, 'flow-only.safetensors');
    writeSafetensors(noBackbone, flow.stateDict());
    await assert.rejects(Predictor.openFile(noBackbone), (e: Error) => e instanceof PipelineError && /holds no MS-CaiT backbone weights.*use --run/.test(e.message));
    await assert.rejects(Predictor.openFile(join(dir, 'missing.ckpt')), /missing\.ckpt: no such checkpoint file/);
    reference.dispose();
    flow.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('PyTorch checkpoint files (.ckpt) are read as the official loader reads them', { skip: skipReason() }, async () => {
  await initEngine({ backend: 'wasm' });
  for (const name of goldenCases('11_')) {
    for (const f of ['checkpoint.ckpt', 'checkpoint_legacy.ckpt']) {
      const file = join(goldenRoot(), name, f);
      const { kind, state } = readModelCheckpoint(file);
      assert.equal(kind, 'uflow');
      assert.ok([...state.keys()].every((k) => !k.startsWith('model.') && !k.includes('log_loss_weights')), 'prefix and leftovers dropped');
      // These hold the flow only (golden case 02's weights): no backbone to run them with.
      await assert.rejects(Predictor.openFile(file), /holds no MS-CaiT backbone weights/);
    }
  }
});
