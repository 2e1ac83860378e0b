import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { nchwToNhwc, nhwcToNchwSync } from '../../models/layout.js';
import { UFlowGraph, normalizeReferenceKeys } from '../../models/flows/uflow-graph.js';
import { globalScaleActivation, GLOBAL_SCALE_INIT } from '../../models/flows/allinone-block.js';
import { FeatureNorm } from '../../models/backbones/feature-norm.js';
import { UFlowModel } from '../../models/uflow-model.js';
import { mulberry32 } from '../../models/flows/rng.js';
import { TensorFileError, type TensorMap } from '../../models/io/safetensors.js';
import { goldenCases, loadGolden, skipReason } from '../helpers/golden.js';
import { assertClose, maxAbsDiff } from '../helpers/assert-close.js';

function randomFeatures(channels: number[], sizes: Array<readonly [number, number]>, batch: number, seed: number): tf.Tensor4D[] {
  const rng = mulberry32(seed);
  return sizes.map(([h, w], i) => {
    const d = new Float32Array(batch * h * w * channels[i]!);
    for (let j = 0; j < d.length; j++) d[j] = 3 * (rng() * 2 - 1);
    return tf.tensor4d(d, [batch, h, w, channels[i]!]);
  });
}

for (const backend of ['wasm', 'cpu'] as const) {
  test(`a fresh 3-scale graph inverts its forward map on ${backend} (non-square maps, 4 steps)`, async () => {
    await initEngine({ backend });
    const channels = [12, 24, 40];
    const sizes = [[16, 12], [8, 6], [4, 3]] as const;
    const graph = new UFlowGraph({ channels, sizes, flowSteps: 4, seed: 42 });
    const x = randomFeatures(channels, [...sizes], 2, 1);
    const { z, logdet } = graph.forward(x);
    // latent shapes: splits A = floor(V/8)*4
    assert.deepEqual(z.map((t) => t.shape), graph.latentShapes().map(([h, w, c]) => [2, h, w, c]));
    // 40 → A 20 (z 20, up 5); 24+5 = 29 → A 12 (z 17, up 3); 12+3 = 15
    assert.deepEqual(graph.latentShapes(), [[16, 12, 15], [8, 6, 17], [4, 3, 20]]);
    const inv = graph.inverse(z);
    const err = Math.max(...inv.features.map((f, s) => maxAbsDiff(f.dataSync(), x[s]!.dataSync())));
    assert.ok(err < 1e-4, `reconstruction error ${err}`);
    assertClose(inv.logdet.dataSync(), Array.from(logdet.dataSync(), (v) => -v), { rtol: 1e-4, atol: 1e-3, what: 'inverse logdet' });
    // a fresh model is not the identity (random subnets, permutations)
    assert.ok(maxAbsDiff(z[2]!.dataSync(), x[2]!.dataSync().slice(0, z[2]!.size)) > 1e-2);
    tf.dispose([...x, ...z, logdet, ...inv.features, inv.logdet]);
    graph.dispose();
  });
}

test('global scale activation: 0.1·softplus_{β=0.5} with PyTorch threshold 20, finite gradient', async () => {
  for (const backend of ['wasm', 'cpu']) {
    await initEngine({ backend });
    const x = tf.tensor1d([-10, 0, 9.98651, 39.9, 40.0, 40.1, 100]);
    // torch: 0.1 * nn.Softplus(beta=0.5)(x) and its gradient
    assertClose(globalScaleActivation(x).dataSync(), [0.0013430697144940495, 0.13862943649291992, 1.0000032186508179, 3.9900002479553223, 4.0, 4.009999752044678, 10.0], { rtol: 1e-6, atol: 1e-7, what: 'g' });
    const gr = tf.grad((t) => tf.sum(globalScaleActivation(t)))(x);
    assertClose(gr.dataSync(), [0.0006692851311527193, 0.05, 0.09932621568441391, 0.1, 0.1, 0.1, 0.1], { rtol: 1e-5, atol: 1e-7, what: 'dg/dγ' });
    assertClose(globalScaleActivation(tf.scalar(GLOBAL_SCALE_INIT)).dataSync(), [1], { rtol: 1e-6, what: 'initial g' });
  }
});

for (const name of goldenCases('07_')) {
  for (const backend of ['wasm', 'cpu'] as const) {
    test(`FeatureNorm reproduces ${name}'s LayerNorm([C,H,W]) outputs on ${backend}`, { skip: skipReason() }, async () => {
      await initEngine({ backend });
      const g = loadGolden(name);
      const ln = g.files.layernorm;
      if (!ln) return;
      const levels = [...g.files.data!.keys()].filter((k) => /^layer\d+$/.test(k) && g.files.data!.has(`${k}_ln`)).sort();
      assert.ok(levels.length > 0);
      const shapes = levels.map((k) => {
        const [, c, h, w] = g.shape('data', k);
        return [h!, w!, c!] as const;
      });
      const norm = new FeatureNorm(shapes);
      const expected = norm.stateSpec();
      assert.deepEqual(expected.map((e) => e.key).sort(), [...ln.keys()].sort());
      norm.loadValidated((k) => ln.get(k)!);
      const out = norm.apply(levels.map((k) => nchwToNhwc(g.get('data', k), g.shape('data', k))));
      out.forEach((o, i) => assertClose(nhwcToNchwSync(o).data, g.get('data', `${levels[i]}_ln`), { rtol: 1e-4, atol: 1e-4, what: `${levels[i]}_ln` }));
      // state round trip in [C,H,W]
      for (const [k, t] of norm.state()) assert.deepEqual(Array.from(t.data as Float32Array), Array.from(g.get('layernorm', k)), k);
      tf.dispose(out);
      norm.dispose();
    });
  }
}

function golden02Model(g: ReturnType<typeof loadGolden>): UFlowModel {
  const m = g.manifest;
  return new UFlowModel({ backbone: 'golden', inputSize: m.input_size, channels: m.channels, scaleFactors: m.scale_factors, flowSteps: m.flow_steps, layerNorm: false, seed: 9 });
}

for (const name of goldenCases('02_')) {
  test(`a reference-named state dict (${name} weights, 'model.' prefix, leftovers) loads and reproduces its z`, { skip: skipReason() }, async () => {
    await initEngine({ backend: 'wasm' });
    const g = loadGolden(name);
    const map: TensorMap = new Map();
    for (const [k, t] of g.files.weights!) map.set(`model.${k}`, t);
    map.set('model.log_loss_weights', { dtype: 'F32', shape: [3], data: new Float32Array(3) });
    map.set('model.aupro.some_state', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    map.set('model.feature_extractor.extractor.conv1.weight', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    const model = golden02Model(g);
    const { backbone } = model.loadStateDict(map, '/some/dir/uflow.ckpt');
    assert.deepEqual([...backbone.keys()], ['feature_extractor.extractor.conv1.weight']);
    const inputs = (g.manifest.channels as number[]).map((_, s) => nchwToNhwc(g.get('data', `input_scale${s + 1}`), g.shape('data', `input_scale${s + 1}`)));
    const { z, logdet } = model.fromFeatures(inputs);
    z.forEach((zs, s) => assertClose(nhwcToNchwSync(zs).data, g.get('data', `z_scale${s + 1}`), { rtol: 1e-4, atol: 1e-4, what: `z_scale${s + 1}` }));
    assertClose(logdet.dataSync(), g.get('data', 'log_jac_det'), { rtol: 1e-4, atol: 1e-2, what: 'logdet' });
    // our state dict gives back exactly the reference tensors (names, layouts, values)
    const sd = model.stateDict();
    assert.deepEqual([...sd.keys()].sort(), [...g.files.weights!.keys()].sort());
    for (const [k, t] of g.files.weights!) {
      assert.deepEqual(sd.get(k)!.shape, t.shape, k);
      assert.deepEqual(Array.from(sd.get(k)!.data as Float32Array), Array.from(t.data as Float32Array), k);
    }
    tf.dispose([...inputs, ...z, logdet]);
    model.dispose();
  });

  test(`a mismatched state dict gives one error listing every missing key, unexpected key and wrong shape (${name})`, { skip: skipReason() }, async () => {
    await initEngine({ backend: 'cpu' });
    const g = loadGolden(name);
    const map: TensorMap = new Map(g.files.weights!);
    const keys = [...map.keys()];
    const gone = [keys.find((k) => k.endsWith('.global_offset'))!, keys.find((k) => k.endsWith('downsample_kernel'))!];
    for (const k of gone) map.delete(k);
    const reshaped = keys.find((k) => k.endsWith('subnet.2.weight'))!;
    const t = map.get(reshaped)!;
    map.set(reshaped, { ...t, shape: [t.shape[0]! / 2, t.shape[1]! * 2, t.shape[2]!, t.shape[3]!] });
    map.set('flow.module_list.99.w_perm', { dtype: 'F32', shape: [1], data: new Float32Array(1) });
    const model = golden02Model(g);
    assert.throws(
      () => model.loadStateDict(map, '/tmp/broken.safetensors'),
      (e: unknown) => {
        assert.ok(e instanceof TensorFileError);
        const msg = (e as Error).message;
        assert.match(msg, /^\/tmp\/broken\.safetensors: /);
        assert.match(msg, /2 missing key\(s\)/);
        for (const k of gone) assert.ok(msg.includes(k), `names missing ${k}`);
        assert.match(msg, /1 unexpected key\(s\): flow\.module_list\.99\.w_perm/);
        assert.ok(msg.includes(`${reshaped}: expected [${t.shape.join(', ')}], got [${t.shape[0]! / 2}, ${t.shape[1]! * 2}, ${t.shape[2]}, ${t.shape[3]}]`), msg);
        return true;
      },
    );
    model.dispose();
  });
}

test('normalizeReferenceKeys strips up to the last model. and drops training leftovers', () => {
  const t = { dtype: 'F32' as const, shape: [1], data: new Float32Array(1) };
  const out = normalizeReferenceKeys(
    new Map([
      ['model.flow.module_list.0.w_perm', t],
      ['model.model.flow.module_list.1.w_perm', t],
      ['flow.module_list.2.w_perm', t],
      ['model.log_loss_weights', t],
      ['model.val_aupro.x', t],
      ['model.f1_score', t],
      ['model.mcc', t],
    ]),
    'x.ckpt',
  );
  assert.deepEqual([...out.keys()], ['flow.module_list.0.w_perm', 'flow.module_list.1.w_perm', 'flow.module_list.2.w_perm']);
  assert.throws(() => normalizeReferenceKeys(new Map([['model.a', t], ['a', t]]), 'x.ckpt'), /two tensors are named 'a'/);
});

test('a non-permutation w_perm is refused with the file and key named', { skip: skipReason() }, async () => {
  await initEngine({ backend: 'cpu' });
  const name = goldenCases('02_')[0];
  if (!name) return;
  const g = loadGolden(name);
  const map: TensorMap = new Map(g.files.weights!);
  const t = map.get('flow.module_list.0.w_perm')!;
  const d = Float32Array.from(t.data as Float32Array);
  d[0] = 0.5;
  map.set('flow.module_list.0.w_perm', { ...t, data: d });
  const model = golden02Model(g);
  assert.throws(() => model.loadStateDict(map, 'soft.safetensors'), /soft\.safetensors: flow\.module_list\.0\.w_perm is not a hard permutation/);
  model.dispose();
});
