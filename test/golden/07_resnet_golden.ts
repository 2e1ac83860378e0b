// Shared body of the ResNet golden cases (07, 10): one test per case directory and backend.
// Every shape and the set of checked layers come from the case's files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { chwToHwc, nchwToNhwc, nhwcToNchwSync } from '../../models/layout.js';
import { FEATURE_NORM_PREFIX, layerNormHWC } from '../../models/backbones/feature-norm.js';
import { normalizeImagenet } from '../../models/ops/image-norm.js';
import { createResnetExtractor } from '../../models/backbones/resnet.js';
import { goldenCases, loadGolden, skipReason, type GoldenCase, goldenBackends } from '../helpers/golden.js';
import { decodeInt8Weights } from '../helpers/golden-int8.js';
import { assertClose, maxAbsDiff } from '../helpers/assert-close.js';

const BACKENDS = goldenBackends();

function tol(g: GoldenCase, key = 'layers'): { rtol: number; atol: number } {
  const s = String(g.manifest.tolerance?.[key] ?? 'rtol 1e-4, atol 1e-4');
  const r = /rtol\s*([0-9.eE+-]+)/.exec(s);
  const a = /atol\s*([0-9.eE+-]+)/.exec(s);
  return { rtol: r ? Number(r[1]) : 1e-4, atol: a ? Number(a[1]) : 1e-4 };
}

function check(g: GoldenCase, t: tf.Tensor, key: string, opts: { rtol: number; atol: number }): void {
  const expectedShape = g.shape('data', key);
  const got = t.rank === 4 ? nhwcToNchwSync(t) : { data: t.dataSync() as Float32Array, shape: t.shape };
  assert.deepEqual(got.shape, expectedShape, `${key}: shape`);
  assertClose(got.data, g.get('data', key), { ...opts, what: `${g.name} ${key}` });
  if (process.env.UFLOW_TEST_VERBOSE) console.log(`${g.name} ${key}: max |diff| ${maxAbsDiff(got.data, g.get('data', key)).toExponential(2)}`);
}

export function runResnetGolden(prefix: string, backbone: string): void {
  const cases = goldenCases(prefix);
  if (cases.length === 0) test(`${prefix}* golden cases`, { skip: skipReason() ?? `no ${prefix}* case directory` }, () => {});
  for (const name of cases) {
    for (const backend of BACKENDS) {
      test(`${name} on ${backend}`, { skip: skipReason() }, async () => {
        await initEngine({ backend });
        const g = loadGolden(name);
        const opts = tol(g);
        const weights = decodeInt8Weights(g.files.weights!, g.manifest.int8_weight_exponents);
        const layerKeys = [...g.files.data!.keys()].filter((k) => /^layer\d+$/.test(k)).sort();
        assert.ok(layerKeys.length > 0, 'the case has layer outputs');
        const layers = layerKeys.map((k) => Number(k.slice(5)));
        const rawShape = g.shape('data', 'image_raw_0_1');
        const inputSize: [number, number] = [rawShape[2]!, rawShape[3]!];
        const before = tf.memory().numTensors;
        const ex = createResnetExtractor(backbone, weights, inputSize, { layers });
        assert.deepEqual(ex.channels, layerKeys.map((k) => g.shape('data', k)[1]));
        assert.deepEqual(ex.featureSizes, layerKeys.map((k) => g.shape('data', k).slice(2)), 'level sizes (PyTorch floor rules)');
        if (inputSize.every((n, i) => layerKeys.every((k) => n % g.shape('data', k)[2 + i]! === 0))) {
          assert.deepEqual(ex.scaleFactors, layerKeys.map((k) => inputSize[0] / g.shape('data', k)[2]!));
        }
        assert.equal(ex.layerNormLevels, true);
        const img = nchwToNhwc(g.get('data', 'image_raw_0_1'), rawShape);
        try {
          const normed = normalizeImagenet(img);
          check(g, normed, 'input_normalized', { rtol: 1e-6, atol: 1e-6 });
          // Checked against the reference's own normalised input so each stage is judged on its own.
          const refNormed = nchwToNhwc(g.get('data', 'input_normalized'), g.shape('data', 'input_normalized'));
          if (g.files.data!.has('stem')) {
            const stem = ex.stemForward(refNormed);
            check(g, stem, 'stem', opts);
            stem.dispose();
          }
          const outs = ex.extract(img);
          assert.equal(outs.length, layerKeys.length);
          outs.forEach((o, i) => check(g, o, layerKeys[i]!, opts));
          // The same from the reference's normalised input.
          const outs2 = ex.extractNormalized(refNormed);
          outs2.forEach((o, i) => check(g, o, layerKeys[i]!, opts));
          checkLayerNorm(g, outs, layerKeys, opts);
          tf.dispose([normed, refNormed, ...outs, ...outs2]);
        } finally {
          img.dispose();
          ex.dispose();
        }
        assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
      });
    }
  }
}

/**
 * LayerNorm([C,H,W]) outputs (`<layer>_ln`, params in layernorm.safetensors under the official
 * names), through feature-norm.ts's layerNormHWC, when the case has them.
 */
function checkLayerNorm(g: GoldenCase, outs: tf.Tensor4D[], layerKeys: string[], opts: { rtol: number; atol: number }): void {
  const ln = g.files.layernorm;
  if (!ln) return;
  const lnOpts = tol(g, 'ln');
  let checked = 0;
  layerKeys.forEach((k, i) => {
    if (!g.files.data!.has(`${k}_ln`)) return;
    const w = `${FEATURE_NORM_PREFIX}${i}.weight`;
    const b = `${FEATURE_NORM_PREFIX}${i}.bias`;
    assert.ok(ln.has(w) && ln.has(b), `layernorm.safetensors has ${w} and ${b}`);
    const y = tf.tidy(() => layerNormHWC(outs[i]!, chwToHwc(g.get('layernorm', w), g.shape('layernorm', w)), chwToHwc(g.get('layernorm', b), g.shape('layernorm', b))));
    check(g, y, `${k}_ln`, lnOpts);
    y.dispose();
    checked++;
  });
  assert.ok(checked > 0, 'LayerNorm outputs checked');
  void opts;
}
