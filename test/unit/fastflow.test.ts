import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { FastFlowModel, fastflowLoss, type FastFlowModelConfig } from '../../models/fastflow-model.js';
import { FastFlowFlows, fastflowHiddenChannels, fastflowKernelSize } from '../../models/flows/fastflow.js';
import { UFlowModel } from '../../models/uflow-model.js';
import {
  createModel,
  kindOfState,
  loadModelFromCheckpoint,
  readModelCheckpoint,
  saveModelCheckpoint,
  type AnomalyModel,
  type ExtractorInfo,
} from '../../models/model-factory.js';
import { readCheckpoint, saveCheckpoint } from '../../models/checkpoint.js';
import { TensorFileError } from '../../models/io/safetensors.js';
import { Adam } from '../../models/train/adam.js';
import { lossShare, trainStep } from '../../models/train/step.js';
import { mulberry32 } from '../../models/flows/rng.js';
import { assertClose, maxAbsDiff } from '../helpers/assert-close.js';

const cfg: FastFlowModelConfig = { backbone: 'resnet18', inputSize: 32, channels: [8, 16], scaleFactors: [4, 8], flowSteps: 3, layerNorm: true, conv3x3Only: false, hiddenRatio: 1.0, seed: 5 };

function features(model: { featureSizes(): Array<[number, number]>; config: { channels: readonly number[] } }, batch: number, seed: number): tf.Tensor4D[] {
  const rng = mulberry32(seed);
  return model.featureSizes().map(([h, w], i) => {
    const c = model.config.channels[i]!;
    const d = new Float32Array(batch * h * w * c);
    // a non-standard distribution (offset, scaled) so the flow has something to learn
    for (let j = 0; j < d.length; j++) d[j] = 1.5 * (rng() + rng() + rng() - 1.5) + 0.3;
    return tf.tensor4d(d, [batch, h, w, c]);
  });
}

test('kernel sizes: 3 on even steps and 1 on odd ones; conv3x3_only makes every step 3×3', async () => {
  await initEngine({ backend: 'cpu' });
  const kernels = (m: FastFlowModel) => m.flows.levels.map((blocks) => blocks.map((b) => b.kernelSize));
  const a = new FastFlowModel({ ...cfg, flowSteps: 4 });
  const b = new FastFlowModel({ ...cfg, flowSteps: 4, conv3x3Only: true });
  try {
    assert.deepEqual(kernels(a), [[3, 1, 3, 1], [3, 1, 3, 1]]);
    assert.deepEqual(kernels(b), [[3, 3, 3, 3], [3, 3, 3, 3]]);
    assert.deepEqual([0, 1, 2, 3].map((i) => fastflowKernelSize(i, false)), [3, 1, 3, 1]);
    // and the state shapes say so
    const shapeOf = (m: FastFlowModel, key: string) => m.stateSpec().find((s) => s.key === key)!.shape;
    assert.deepEqual(shapeOf(a, 'fast_flow_blocks.1.module_list.1.subnet.1.weight'), [8, 8, 1, 1]);
    assert.deepEqual(shapeOf(b, 'fast_flow_blocks.1.module_list.1.subnet.1.weight'), [8, 8, 3, 3]);
    assert.deepEqual(shapeOf(b, 'fast_flow_blocks.1.module_list.1.subnet.4.weight'), [16, 8, 3, 3]);
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('hidden_ratio sets the subnet hidden width to int(C1 · ratio); odd channel counts split C1 = C − ⌊C/2⌋', async () => {
  await initEngine({ backend: 'cpu' });
  assert.equal(fastflowHiddenChannels(768, 0.16), 61); // int(384 · 0.16) = int(61.44)
  assert.equal(fastflowHiddenChannels(9, 1.0), 5);
  const m = new FastFlowModel({ ...cfg, channels: [9, 16], hiddenRatio: 0.5, layerNorm: false });
  try {
    const spec = new Map(m.stateSpec().map((s) => [s.key, s.shape]));
    assert.deepEqual(spec.get('fast_flow_blocks.0.module_list.0.subnet.1.weight'), [2, 5, 3, 3]);
    assert.deepEqual(spec.get('fast_flow_blocks.0.module_list.0.subnet.1.bias'), [2]);
    assert.deepEqual(spec.get('fast_flow_blocks.0.module_list.0.subnet.4.weight'), [8, 2, 3, 3]);
    assert.deepEqual(spec.get('fast_flow_blocks.1.module_list.2.subnet.1.weight'), [4, 8, 3, 3]);
    assert.ok(![...spec.keys()].some((k) => k.startsWith('norms.')), 'no norms without layerNorm (ViT features)');
    const f = features(m, 2, 1);
    const { z, logdet } = m.fromFeatures(f);
    assert.deepEqual(z.map((t) => t.shape), f.map((t) => t.shape));
    assert.ok(Number.isFinite(logdet.dataSync()[0]!));
    tf.dispose([...f, ...z, logdet]);
  } finally {
    m.dispose();
  }
  assert.throws(() => new FastFlowFlows({ channels: [8], sizes: [[4, 4]], flowSteps: 1, hiddenRatio: 0.1 }), /hidden width of 0/);
});

test('state names are anomalib’s: norms.<l>.{weight,bias} [C,H,W] first, then fast_flow_blocks.<l>.module_list.<s>.*', async () => {
  await initEngine({ backend: 'cpu' });
  const m = new FastFlowModel(cfg);
  try {
    const keys = [...m.stateDict().keys()];
    assert.deepEqual(keys.slice(0, 4), ['norms.0.weight', 'norms.0.bias', 'norms.1.weight', 'norms.1.bias']);
    assert.deepEqual(keys.slice(4, 12), [
      'fast_flow_blocks.0.module_list.0.global_scale',
      'fast_flow_blocks.0.module_list.0.global_offset',
      'fast_flow_blocks.0.module_list.0.w_perm',
      'fast_flow_blocks.0.module_list.0.w_perm_inv',
      'fast_flow_blocks.0.module_list.0.subnet.1.weight',
      'fast_flow_blocks.0.module_list.0.subnet.1.bias',
      'fast_flow_blocks.0.module_list.0.subnet.4.weight',
      'fast_flow_blocks.0.module_list.0.subnet.4.bias',
    ]);
    assert.equal(keys.length, 4 + 2 * 3 * 8);
    assert.deepEqual(m.stateDict().get('norms.1.weight')!.shape, [16, 4, 4]);
    // every trainable variable has a state name; w_perm(_inv) are not trainable
    const trainable = m.trainableVariables().map((v) => v.name);
    assert.equal(trainable.length, 4 + 2 * 3 * 6);
    for (const n of trainable) assert.ok(keys.includes(n), n);
    assert.ok(!trainable.some((n) => n.includes('w_perm')));
    // Lightning's model. prefix and backbone keys load; a wrong key is named
    const sd = new Map([...m.stateDict()].map(([k, t]) => [`model.${k}`, t]));
    sd.set('model.feature_extractor.conv1.weight', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    const { backbone } = m.loadStateDict(sd, 'x.ckpt');
    assert.deepEqual([...backbone.keys()], ['feature_extractor.conv1.weight']);
    sd.delete('model.norms.0.bias');
    assert.throws(() => m.loadStateDict(sd, 'x.ckpt'), (e: Error) => e instanceof TensorFileError && /missing key\(s\): norms\.0\.bias/.test(e.message) && /x\.ckpt/.test(e.message));
  } finally {
    m.dispose();
  }
});

for (const backend of ['wasm', 'cpu'] as const) {
  test(`inverse reconstructs the input and negates the log-det (${backend})`, async () => {
    await initEngine({ backend });
    const m = new FastFlowModel({ ...cfg, layerNorm: false, flowSteps: 4 });
    try {
      // move the global affine away from the identity so every part is exercised
      const rng = mulberry32(9);
      tf.tidy(() => {
        for (const blocks of m.flows.levels) {
          for (const b of blocks) {
            b.globalScale.assign(tf.add(b.globalScale, tf.tensor1d(Float32Array.from({ length: b.channels }, () => rng() - 0.5))));
            b.globalOffset.assign(tf.tensor1d(Float32Array.from({ length: b.channels }, () => 0.2 * (rng() - 0.5))));
          }
        }
      });
      const f = features(m, 2, 3);
      const before = tf.memory().numTensors;
      const fwd = m.flows.forward(f);
      const inv = m.flows.inverse(fwd.z);
      inv.features.forEach((x, l) => {
        const err = maxAbsDiff(x.dataSync(), f[l]!.dataSync());
        assert.ok(err < 1e-4, `level ${l}: inverse error ${err}`);
      });
      fwd.logdets.forEach((ld, l) => assertClose(inv.logdets[l]!.dataSync(), Array.from(ld.dataSync(), (v) => -v), { rtol: 1e-4, atol: 1e-2, what: `inverse logdet ${l}` }));
      tf.dispose([...fwd.z, ...fwd.logdets, ...inv.features, ...inv.logdets]);
      assert.equal(tf.memory().numTensors, before, 'no leaked tensors');
      tf.dispose(f);
    } finally {
      m.dispose();
    }
  });
}

test('saved weights load back bit-identically through the factory, with kind and config in the metadata', async () => {
  await initEngine({ backend: 'wasm' });
  const dir = mkdtempSync(join(tmpdir(), 'fastflow-ckpt-'));
  try {
    const model = new FastFlowModel({ ...cfg, hiddenRatio: 0.75, conv3x3Only: true });
    const opt = new Adam(model.trainableVariables(), { lr: 1e-2 });
    const f = features(model, 2, 1);
    trainStep(model, f, opt); // move every parameter (norms included) off its init
    opt.dispose();
    const path = join(dir, 'checkpoint.safetensors');
    saveModelCheckpoint(path, model, { epoch: '1' });
    assert.deepEqual(readdirSync(dir), ['checkpoint.safetensors'], 'atomic write leaves no temporary file');
    const c = readModelCheckpoint(path);
    assert.equal(c.kind, 'fastflow');
    assert.deepEqual(c.config, model.config);
    assert.equal(c.metadata.epoch, '1');
    const { model: back, metadata } = loadModelFromCheckpoint(path);
    assert.equal(back.kind, 'fastflow');
    assert.equal(metadata.epoch, '1');
    const a = model.stateDict();
    const b = back.stateDict();
    assert.deepEqual([...b.keys()], [...a.keys()]);
    for (const [k, t] of a) assert.ok(Buffer.from((t.data as Float32Array).buffer).equals(Buffer.from((b.get(k)!.data as Float32Array).buffer)), `${k} differs`);
    const path2 = join(dir, 'again.safetensors');
    saveModelCheckpoint(path2, back, { epoch: '1' });
    assert.ok(readFileSync(path).equals(readFileSync(path2)), 'save → load → save is byte-identical');
    // same outputs
    const r1 = model.fromFeatures(f);
    const r2 = back.fromFeatures(f);
    r1.z.forEach((z, l) => assert.equal(maxAbsDiff(z.dataSync(), r2.z[l]!.dataSync()), 0));
    // the U-Flow loader refuses it with a clear message; asking the factory for the wrong kind too
    assert.throws(() => readCheckpoint(path), /'fastflow' checkpoint, not a U-Flow one/);
    assert.throws(() => loadModelFromCheckpoint(path, { kind: 'uflow' }), /fastflow checkpoint, but a uflow model/);
    tf.dispose([...f, ...r1.z, r1.logdet, ...r2.z, r2.logdet]);
    model.dispose();
    back.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a few training steps on wasm reduce the loss (and the model loss equals the per-level formula)', async (t) => {
  await initEngine({ backend: 'wasm' });
  const model = new FastFlowModel(cfg);
  const f = features(model, 4, 11);
  try {
    const r = model.forwardLevels(f);
    const perLevel = fastflowLoss(r.z, r.logdets);
    const viaModel = model.loss(r.z, r.logdet);
    const viaStep = lossShare(r.z, r.logdet, 4);
    assertClose(viaModel.dataSync(), perLevel.dataSync(), { rtol: 1e-5, what: 'model.loss vs per-level' });
    assertClose(viaStep.dataSync(), perLevel.dataSync(), { rtol: 1e-5, what: 'trainStep loss vs per-level' });
    tf.dispose([...r.z, ...r.logdets, r.logdet, perLevel, viaModel, viaStep]);
    const opt = new Adam(model.trainableVariables(), { lr: 1e-3, weightDecay: 1e-5 });
    const losses: number[] = [];
    const before = tf.memory().numTensors;
    for (let i = 0; i < 8; i++) losses.push(trainStep(model, f, opt));
    assert.equal(tf.memory().numTensors, before, 'training steps leak no tensors');
    opt.dispose();
    t.diagnostic(`losses: ${losses.map((l) => l.toFixed(2)).join(', ')}`);
    assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
    assert.ok(losses[7]! < losses[0]! - 0.01 * Math.abs(losses[0]!), `loss did not drop: ${losses.map((l) => l.toFixed(2)).join(', ')}`);
  } finally {
    tf.dispose(f);
    model.dispose();
  }
});

test('factory: createModel builds either kind from the run config keys; U-Flow stays a UFlowModel with its checkpoint format', async () => {
  await initEngine({ backend: 'cpu' });
  const info: ExtractorInfo = { name: 'tfjs:/x', inputSize: [64, 64], featureSizes: [[16, 16], [8, 8], [4, 4]], channels: [8, 16, 32], scaleFactors: [4, 8, 16], layerNormLevels: true };
  const ff = createModel('fastflow', { flow_steps: 2, hidden_ratio: 0.5, conv3x3_only: true }, info, { seed: 1 });
  const uf = createModel('uflow', { flow_steps: 2 }, info, { seed: 1 });
  const dir = mkdtempSync(join(tmpdir(), 'factory-'));
  try {
    assert.equal(ff.kind, 'fastflow');
    assert.ok(ff instanceof FastFlowModel);
    assert.deepEqual(ff.config, { backbone: 'tfjs:/x', inputSize: [64, 64], levelSizes: [[16, 16], [8, 8], [4, 4]], channels: [8, 16, 32], scaleFactors: [4, 8, 16], flowSteps: 2, layerNorm: true, conv3x3Only: true, hiddenRatio: 0.5, seed: 1 });
    assert.equal(uf.kind, 'uflow');
    assert.ok(uf instanceof UFlowModel);
    assert.deepEqual(createModel('fastflow', {}, info).config.flowSteps, 8, 'FastFlow default: 8 steps');
    assert.throws(() => createModel('nope' as 'uflow', {}, info), /unknown model 'nope'/);
    // maps: both higher = more anomalous, in their ranges
    const f = features(ff, 1, 2);
    for (const m of [ff, uf] as AnomalyModel[]) {
      const { z, logdet } = m.fromFeatures(f);
      const map = m.anomalyMap(z, 64);
      assert.deepEqual(map.shape, [1, 64, 64, 1]);
      const [lo, hi] = m.mapRange();
      for (const v of map.dataSync()) assert.ok(v >= lo && v <= hi);
      const s = m.imageScore(map);
      assert.equal(s.dataSync()[0], Math.max(...map.dataSync()));
      tf.dispose([...z, logdet, map, s]);
    }
    tf.dispose(f);
    // U-Flow checkpoints through the factory are checkpoint.ts's
    const p1 = join(dir, 'u1.safetensors');
    const p2 = join(dir, 'u2.safetensors');
    saveModelCheckpoint(p1, uf);
    saveCheckpoint(p2, uf as UFlowModel);
    assert.ok(readFileSync(p1).equals(readFileSync(p2)));
    const back = loadModelFromCheckpoint(p1);
    assert.equal(back.model.kind, 'uflow');
    assert.ok(back.model instanceof UFlowModel);
    back.model.dispose();
    // reference files without metadata are recognised by their keys
    assert.equal(kindOfState(ff.stateDict(), 'x'), 'fastflow');
    assert.equal(kindOfState(new Map([...uf.stateDict()].map(([k, t]) => [`model.${k}`, t])), 'x'), 'uflow');
    const { model: loaded } = loadModelFromCheckpoint(p1, { config: uf.config as never });
    loaded.dispose();
  } finally {
    ff.dispose();
    uf.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
