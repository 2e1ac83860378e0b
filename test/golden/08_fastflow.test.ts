/**
 * Golden 08 (anomalib-layout FastFlow): per-level z and log-det, loss, anomaly map and image score
 * on wasm and cpu. Everything (levels, shapes, steps, kernels, hidden ratio) comes from the case's
 * manifest and tensors; the inputs are the flows' inputs (no backbone, no norm).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { nchwToNhwc, nhwcToNchwSync } from '../../models/layout.js';
import { FastFlowModel, fastflowLoss } from '../../models/fastflow-model.js';
import { fastflowKernelSize } from '../../models/flows/fastflow.js';
import { goldenCases, loadGolden, skipReason, goldenBackends } from '../helpers/golden.js';
import { decodeInt8Weights } from '../helpers/golden-int8.js';
import { assertClose } from '../helpers/assert-close.js';
import { toHW } from '../../models/size.js';
import { nominalStride } from '../../models/backbones/tfjs-layers.js';

const BACKENDS = goldenBackends();

/** 'rtol 1e-4, atol 1e-2' → numbers (README defaults when absent). */
function tol(spec: unknown, dflt: { rtol: number; atol: number }): { rtol: number; atol: number } {
  const out = { ...dflt };
  if (typeof spec === 'string') {
    const r = /rtol\s*([0-9.eE+-]+)/.exec(spec);
    const a = /atol\s*([0-9.eE+-]+)/.exec(spec);
    if (r) out.rtol = Number(r[1]);
    if (a) out.atol = Number(a[1]);
  }
  return out;
}

for (const name of goldenCases('08_')) {
  for (const backend of BACKENDS) {
    test(`${name} on ${backend}`, { skip: skipReason() }, async () => {
      await initEngine({ backend });
      const g = loadGolden(name);
      const m = g.manifest;
      const data = g.files.data!;
      // levels: input_scale1, input_scale2, … (count from the tensors; channels/sizes from their shapes)
      const levels: number[] = [];
      for (let s = 1; data.has(`input_scale${s}`); s++) levels.push(s);
      assert.ok(levels.length > 0, 'no input_scale<s> tensors');
      const inShapes = levels.map((s) => g.shape('data', `input_scale${s}`));
      const channels = inShapes.map((sh) => sh[1]!);
      if (m.channels) assert.deepEqual(channels, m.channels);
      const [H, W] = m.input_size !== undefined ? toHW(m.input_size) : g.shape('data', 'anomaly_map').slice(2);
      // level sizes from the inputs (any shape); nominal strides for the metadata
      const levelSizes = inShapes.map((sh) => [sh[2]!, sh[3]!] as [number, number]);
      const scaleFactors = levelSizes.map((s) => nominalStride([H!, W!], s));
      const flowSteps: number = m.flow_steps;
      const conv3x3Only = Boolean(m.conv3x3_only);
      const hiddenRatio: number = m.hidden_ratio ?? 1.0;

      const model = new FastFlowModel({ backbone: 'golden', inputSize: [H!, W!], levelSizes, channels, scaleFactors, flowSteps, layerNorm: false, conv3x3Only, hiddenRatio, seed: 7 });
      // kernel choice as the manifest's stored weights say
      for (let i = 0; i < flowSteps; i++) {
        const w = g.shape('weights', `fast_flow_blocks.0.module_list.${i}.subnet.1.weight`);
        assert.equal(w[2], fastflowKernelSize(i, conv3x3Only), `step ${i} kernel`);
      }
      const weights = decodeInt8Weights(g.files.weights!, m.int8_weight_exponents);
      const src = `${g.dir}/weights.safetensors`;
      const { backbone } = model.loadStateDict(weights, src);
      assert.equal(backbone.size, 0);
      // the saved state equals the loaded one bit for bit (reference names and layouts)
      const saved = model.stateDict();
      assert.deepEqual([...saved.keys()].sort(), [...weights.keys()].sort());
      for (const [k, t] of weights) assert.deepEqual(Array.from(saved.get(k)!.data as Float32Array), Array.from(t.data as Float32Array), k);

      const before = tf.memory().numTensors;
      const x = levels.map((s, i) => nchwToNhwc(g.get('data', `input_scale${s}`), inShapes[i]!));
      const { z, logdets, logdet } = model.forwardLevels(x);
      const zTol = tol(m.tolerance?.z, { rtol: 1e-4, atol: 1e-4 });
      const ldTol = tol(m.tolerance?.log_jac_det, { rtol: 1e-4, atol: 1e-2 });
      const lossTol = tol(m.tolerance?.loss, { rtol: 1e-4, atol: 0 });
      levels.forEach((s, i) => {
        const zi = nhwcToNchwSync(z[i]!);
        assert.deepEqual(zi.shape, g.shape('data', `z_scale${s}`));
        assertClose(zi.data, g.get('data', `z_scale${s}`), { ...zTol, what: `z_scale${s}` });
        assertClose(logdets[i]!.dataSync(), g.get('data', `log_jac_det_scale${s}`), { ...ldTol, what: `log_jac_det_scale${s}` });
      });
      // loss: the per-level formula and the model's (summed log-det) form
      const loss = fastflowLoss(z, logdets);
      assertClose(loss.dataSync(), [m.loss], { ...lossTol, what: 'loss (per level)' });
      const loss2 = model.loss(z, logdet);
      assertClose(loss2.dataSync(), [m.loss], { ...lossTol, what: 'loss (model)' });
      // anomaly map at the input size and the image score (probability maps: rtol 1e-5)
      const map = model.anomalyMap(z, [H!, W!]);
      const mapN = nhwcToNchwSync(map);
      assert.deepEqual(mapN.shape, g.shape('data', 'anomaly_map'));
      assertClose(mapN.data, g.get('data', 'anomaly_map'), { rtol: 1e-5, atol: 1e-6, what: 'anomaly_map' });
      const [lo, hi] = model.mapRange();
      for (const v of mapN.data) assert.ok(v >= lo && v <= hi, `map value ${v} outside [${lo}, ${hi}]`);
      const score = model.imageScore(map);
      assertClose(score.dataSync(), g.get('data', 'image_score'), { rtol: 1e-5, atol: 1e-6, what: 'image_score' });

      tf.dispose([...x, ...z, ...logdets, logdet, loss, loss2, map, score]);
      assert.equal(tf.memory().numTensors, before, 'forward/loss/map leak no tensors');
      model.dispose();
    });
  }
}
