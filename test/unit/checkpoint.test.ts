import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { UFlowModel, type UFlowModelConfig } from '../../models/uflow-model.js';
import { loadCheckpoint, loadCheckpointInto, readCheckpoint, saveCheckpoint, CHECKPOINT_FILE } from '../../models/checkpoint.js';
import { TensorFileError, writeSafetensors, type TensorMap } from '../../models/io/safetensors.js';
import { Adam } from '../../models/train/adam.js';
import { trainStep } from '../../models/train/step.js';
import { mulberry32 } from '../../models/flows/rng.js';
import { goldenCases, loadGolden, skipReason } from '../helpers/golden.js';

const cfg: UFlowModelConfig = { backbone: 'resnet18', inputSize: 64, channels: [8, 16, 24], scaleFactors: [4, 8, 16], flowSteps: 2, layerNorm: true, seed: 5 };

function features(model: UFlowModel, seed: number): tf.Tensor4D[] {
  const rng = mulberry32(seed);
  return model.featureSizes().map(([h, w], i) => tf.tensor4d(Float32Array.from({ length: 2 * h * w * model.config.channels[i]! }, () => rng() * 2 - 1), [2, h, w, model.config.channels[i]!]));
}

test('saved weights load back bit-identically, with the config in the metadata', async () => {
  await initEngine({ backend: 'wasm' });
  const dir = mkdtempSync(join(tmpdir(), 'uflow-ckpt-'));
  try {
    const model = new UFlowModel(cfg);
    // move every parameter away from its init so the round trip is not trivially the init
    const opt = new Adam(model.trainableVariables(), { lr: 1e-2 });
    const f = features(model, 1);
    trainStep(model, f, opt);
    const path = join(dir, CHECKPOINT_FILE);
    saveCheckpoint(path, model, { epoch: '1' });
    assert.deepEqual(readdirSync(dir), [CHECKPOINT_FILE], 'atomic write leaves no temporary file');
    const { config, metadata, state } = readCheckpoint(path);
    assert.deepEqual(config, model.config);
    assert.equal(metadata.epoch, '1');
    assert.ok(state.has('feature_extractor.feature_normalizations.0.weight'));
    assert.ok(state.has('flow.module_list.0.w_perm') && state.has('flow.module_list.3.downsample_kernel'));

    const { model: loaded } = loadCheckpoint(path);
    const a = model.stateDict();
    const b = loaded.stateDict();
    assert.deepEqual([...b.keys()], [...a.keys()]);
    for (const [k, t] of a) {
      assert.deepEqual(b.get(k)!.shape, t.shape, k);
      assert.deepEqual(Buffer.from((b.get(k)!.data as Float32Array).buffer), Buffer.from((t.data as Float32Array).buffer), `${k} bit-identical`);
    }
    const path2 = join(dir, 'again.safetensors');
    saveCheckpoint(path2, loaded, { epoch: '1' });
    assert.ok(readFileSync(path).equals(readFileSync(path2)), 'save → load → save gives the same bytes');
    // and the same outputs
    const o1 = model.fromFeatures(f);
    const o2 = loaded.fromFeatures(f);
    assert.deepEqual(Array.from(o2.z[0]!.dataSync()), Array.from(o1.z[0]!.dataSync()));
    tf.dispose([...f, ...o1.z, o1.logdet, ...o2.z, o2.logdet]);
    opt.dispose();
    model.dispose();
    loaded.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a checkpoint that does not fit the model lists the problem and names the file', async () => {
  await initEngine({ backend: 'cpu' });
  const dir = mkdtempSync(join(tmpdir(), 'uflow-ckpt-'));
  try {
    const model = new UFlowModel(cfg);
    const path = join(dir, CHECKPOINT_FILE);
    saveCheckpoint(path, model);
    const other = new UFlowModel({ ...cfg, flowSteps: 3 });
    assert.throws(() => loadCheckpointInto(other, path), (e: unknown) => e instanceof TensorFileError && e.message.startsWith(path) && /missing key\(s\)/.test(e.message) && /wrong shape/.test(e.message));
    // a file without config needs one
    const bare = join(dir, 'bare.safetensors');
    writeSafetensors(bare, model.stateDict());
    assert.throws(() => loadCheckpoint(bare), /carries no model configuration/);
    const { model: m2 } = loadCheckpoint(bare, { config: cfg });
    m2.dispose();
    model.dispose();
    other.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const name of goldenCases('02_')) {
  test(`a reference-named checkpoint file (${name} weights as an official Lightning state_dict) loads with a given config`, { skip: skipReason() }, async () => {
    await initEngine({ backend: 'cpu' });
    const g = loadGolden(name);
    const dir = mkdtempSync(join(tmpdir(), 'uflow-ckpt-'));
    try {
      const map: TensorMap = new Map([...g.files.weights!].map(([k, t]) => [`model.${k}`, t]));
      map.set('model.log_loss_weights', { dtype: 'F32', shape: [3], data: new Float32Array([1, 2, 3]) });
      const path = join(dir, 'official.safetensors');
      writeSafetensors(path, map);
      const m = g.manifest;
      const { model } = loadCheckpoint(path, { config: { backbone: 'golden', inputSize: m.input_size, channels: m.channels, scaleFactors: m.scale_factors, flowSteps: m.flow_steps, layerNorm: false } });
      const sd = model.stateDict();
      for (const [k, t] of g.files.weights!) assert.deepEqual(Array.from(sd.get(k)!.data as Float32Array), Array.from(t.data as Float32Array), k);
      model.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
