import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { Adam } from '../../models/train/adam.js';
import { LinearLR, linearLR } from '../../models/train/lr-schedule.js';
import { computeGradients, lossShare, trainStep } from '../../models/train/step.js';
import { uflowLoss, uflowLossLegacy } from '../../models/train/loss.js';
import { UFlowModel } from '../../models/uflow-model.js';
import { mulberry32 } from '../../models/flows/rng.js';
import { assertClose } from '../helpers/assert-close.js';

function randomFeatures(model: UFlowModel, batch: number, seed: number): tf.Tensor4D[] {
  const rng = mulberry32(seed);
  return model.featureSizes().map(([h, w], i) => {
    const c = model.config.channels[i]!;
    const d = new Float32Array(batch * h * w * c);
    for (let j = 0; j < d.length; j++) d[j] = 2 * (rng() + rng() + rng() - 1.5);
    return tf.tensor4d(d, [batch, h, w, c]);
  });
}

const tiny = { backbone: 'test', inputSize: 32, channels: [8, 16], scaleFactors: [4, 8], flowSteps: 2, layerNorm: true, seed: 3 };

test('Adam equals torch.optim.Adam (weight decay, bias correction) on a small problem, on the host and with tensor ops', async () => {
  for (const [backend, host] of [['wasm', true], ['wasm', false], ['cpu', true], ['cpu', false]] as const) {
    await initEngine({ backend });
    const w = tf.variable(tf.tensor2d([[0.5, -1.0, 2.0], [0.1, 0.2, -0.3]]));
    const b = tf.variable(tf.tensor1d([0.3, -0.7]));
    const x = tf.tensor2d([[1.0, 2.0, -1.0], [0.5, -0.5, 0.25], [2.0, 0.0, 1.0]]);
    const opt = new Adam([w, b], { lr: 0.05, weightDecay: 1e-2, host });
    assert.equal(opt.host, host);
    for (let i = 0; i < 5; i++) {
      const { grads, value } = tf.variableGrads(() => {
        const y = tf.add(tf.matMul(x, w, false, true), b);
        return tf.add(tf.sum(tf.square(y)), tf.mean(tf.pow(y, 3))) as tf.Scalar;
      }, [w, b]);
      opt.apply(grads);
      tf.dispose([value, ...Object.values(grads)]);
    }
    // reference numbers printed by PyTorch 1.13 (torch.optim.Adam(lr=0.05, weight_decay=1e-2), 5 steps)
    assertClose(w.dataSync(), [0.25336524844169617, -0.7503894567489624, 1.7524151802062988, 0.3369101285934448, -0.026462040841579437, -0.07088398188352585], { rtol: 1e-5, atol: 1e-6, what: `w on ${backend}${host ? ', host' : ''}` });
    assertClose(b.dataSync(), [0.05368528142571449, -0.4578527808189392], { rtol: 1e-5, atol: 1e-6, what: `b on ${backend}${host ? ', host' : ''}` });
    opt.dispose();
    tf.dispose([w, b, x]);
  }
});

test('LinearLR 1.0 → 0.4 over 25000 epochs, stepped per epoch', () => {
  assert.equal(linearLR(1e-3, 0), 1e-3);
  assertClose([linearLR(1e-3, 25000), linearLR(1e-3, 99999), linearLR(1e-3, 200)], [4e-4, 4e-4, 1e-3 * (1 - 0.6 * 200 / 25000)], { rtol: 1e-12, what: 'lr' });
  const target = { lr: 0 };
  const s = new LinearLR(target, 2e-3);
  assert.equal(target.lr, 2e-3);
  s.step();
  s.step();
  assertClose([target.lr], [2e-3 * (1 - 0.6 * 2 / 25000)], { rtol: 1e-12 });
});

test('lossShare over split batches adds up to the whole-batch losses', async () => {
  await initEngine({ backend: 'cpu' });
  const z = [tf.randomNormal([4, 3, 3, 2], 0, 1, 'float32', 1), tf.randomNormal([4, 2, 2, 5], 0, 1, 'float32', 2)];
  const ld = tf.tensor1d([1, -2, 3.5, 0.25]);
  for (const [variant, full] of [['official', uflowLoss], ['legacy', uflowLossLegacy]] as const) {
    const whole = full(z, ld).dataSync()[0]!;
    assertClose([lossShare(z, ld, 4, variant).dataSync()[0]!], [whole], { rtol: 1e-6, what: variant });
    const parts = [[0, 1], [1, 3]].map(([a, n]) => lossShare(z.map((t) => tf.slice(t, [a!], [n!])), tf.slice(ld, [a!], [n!]), 4, variant).dataSync()[0]!);
    assertClose([parts[0]! + parts[1]!], [whole], { rtol: 1e-5, what: `${variant} split` });
  }
});

test('training steps on wasm decrease the loss of a tiny U-Flow (with LayerNorm), without leaking', async () => {
  await initEngine({ backend: 'wasm' });
  const model = new UFlowModel(tiny);
  const feats = randomFeatures(model, 2, 11);
  const opt = new Adam(model.trainableVariables(), { lr: 1e-2, weightDecay: 1e-5 });
  const losses: number[] = [];
  const before = tf.memory().numTensors;
  for (let i = 0; i < 6; i++) losses.push(trainStep(model, feats, opt));
  assert.equal(tf.memory().numTensors, before, 'a step leaks no tensors');
  for (const l of losses) assert.ok(Number.isFinite(l), `finite loss ${l}`);
  assert.ok(losses[5]! < losses[0]! - 0.01 * Math.abs(losses[0]!), `loss decreases: ${losses.map((l) => l.toFixed(2)).join(' → ')}`);
  // the norm's parameters train too
  const w0 = model.norm!.weights[0]!.dataSync();
  assert.ok(w0.some((v) => v !== 1), 'LayerNorm weight moved');
  opt.dispose();
  tf.dispose(feats);
  model.dispose();
});

test('gradients on wasm equal those on cpu (custom-grad convs and permutations)', async () => {
  const grads: Record<string, Float32Array>[] = [];
  const lossOf: number[] = [];
  for (const backend of ['wasm', 'cpu']) {
    await initEngine({ backend });
    const model = new UFlowModel(tiny);
    const feats = randomFeatures(model, 2, 5);
    const { loss, grads: g } = computeGradients(model, feats);
    const named: Record<string, Float32Array> = {};
    for (const { name, variable } of model.trainableVariables()) named[name] = Float32Array.from(g[variable.name]!.dataSync());
    grads.push(named);
    lossOf.push(loss);
    tf.dispose([...Object.values(g), ...feats]);
    model.dispose();
  }
  assertClose([lossOf[0]!], [lossOf[1]!], { rtol: 1e-5, what: 'loss' });
  assert.ok(Object.keys(grads[0]!).length > 10);
  for (const k of Object.keys(grads[1]!)) {
    const ref = grads[1]![k]!;
    const scale = Math.max(...Array.from(ref, Math.abs));
    assertClose(grads[0]![k]!, ref, { rtol: 1e-3, atol: 1e-4 * scale, what: `grad ${k}` });
  }
});
