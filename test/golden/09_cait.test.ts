// Golden 09: the MS-CaiT feature path on one tiny timm CaiT (talking-heads attention, layer scale),
// checked stage by stage: normalised input, patch_embed_out, tokens_pos, block{i}_after_attn /
// block{i}_out, tokens_normed and the NCHW features. The config comes from the weights (patch,
// embed, heads, grid) and the number of blocks from the data's block{i}_out tensors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { nchwToNhwc, nhwcToNchwSync } from '../../models/layout.js';
import { normalizeImagenet } from '../../models/ops/image-norm.js';
import { createCaitExtractor, VitTokens } from '../../models/backbones/cait.js';
import { goldenCases, loadGolden, skipReason, type GoldenCase, goldenBackends } from '../helpers/golden.js';
import { decodeInt8Weights } from '../helpers/golden-int8.js';
import { assertClose, maxAbsDiff } from '../helpers/assert-close.js';

function tol(g: GoldenCase): { rtol: number; atol: number } {
  const s = String(g.manifest.tolerance?.['tokens/features'] ?? 'rtol 1e-4, atol 1e-4');
  const r = /rtol\s*([0-9.eE+-]+)/.exec(s);
  const a = /atol\s*([0-9.eE+-]+)/.exec(s);
  return { rtol: r ? Number(r[1]) : 1e-4, atol: a ? Number(a[1]) : 1e-4 };
}

function check(g: GoldenCase, t: tf.Tensor, key: string, opts: { rtol: number; atol: number }): void {
  const got = t.rank === 4 ? nhwcToNchwSync(t) : { data: t.dataSync() as Float32Array, shape: t.shape };
  assert.deepEqual(got.shape, g.shape('data', key), `${key}: shape`);
  const expected = g.get('data', key);
  assertClose(got.data, expected, { ...opts, what: `${g.name} ${key}` });
  if (process.env.UFLOW_TEST_VERBOSE) console.log(`${g.name} ${key}: max |diff| ${maxAbsDiff(got.data, expected).toExponential(2)}`);
}

for (const name of goldenCases('09_')) {
  for (const backend of goldenBackends()) {
    test(`${name} on ${backend}`, { skip: skipReason() }, async () => {
      await initEngine({ backend });
      const g = loadGolden(name);
      const opts = tol(g);
      const weights = decodeInt8Weights(g.files.weights!, g.manifest.int8_weight_exponents);
      const blockKeys = [...g.files.data!.keys()].filter((k) => /^block\d+_out$/.test(k));
      const nBlocks = Math.max(...blockKeys.map((k) => Number(/\d+/.exec(k)![0]))) + 1;
      assert.equal(blockKeys.length, nBlocks, 'block outputs 0..n-1 present');
      if (g.manifest.n_blocks_used !== undefined) assert.equal(nBlocks, g.manifest.n_blocks_used);
      const rawShape = g.shape('data', 'image_raw_0_1');
      const featShape = g.shape('data', 'features');
      const before = tf.memory().numTensors;

      const model = new VitTokens('cait', weights);
      assert.equal(model.imgSize, rawShape[2]);
      assert.equal(model.embed, featShape[1]);
      assert.equal(model.grid, featShape[2]);
      if (g.manifest.cait_config) {
        const cfg = g.manifest.cait_config;
        assert.deepEqual([model.patch, model.embed, model.depth, model.heads], [cfg.patch_size, cfg.embed_dim, cfg.depth, cfg.num_heads]);
      }
      const img = nchwToNhwc(g.get('data', 'image_raw_0_1'), rawShape);
      const kept: tf.Tensor[] = [img];
      try {
        const normed = normalizeImagenet(img);
        kept.push(normed);
        check(g, normed, 'input_normalized', { rtol: 1e-6, atol: 1e-6 });
        const pe = model.patchEmbed(normed);
        kept.push(pe);
        check(g, pe, 'patch_embed_out', opts);
        let t = model.addPosition(pe);
        kept.push(t);
        check(g, t, 'tokens_pos', opts);
        for (let i = 0; i < nBlocks; i++) {
          const { afterAttn, out } = model.block(i, t);
          kept.push(afterAttn, out);
          check(g, afterAttn, `block${i}_after_attn`, opts);
          check(g, out, `block${i}_out`, opts);
          t = out;
        }
        const normedTokens = model.normTokens(t);
        kept.push(normedTokens);
        check(g, normedTokens, 'tokens_normed', opts);
        const map = model.tokensToMap(normedTokens);
        kept.push(map);
        check(g, map, 'features', opts);
      } finally {
        tf.dispose(kept);
        model.dispose();
      }
      assert.equal(tf.memory().numTensors, before, 'no tensors leaked (step by step)');

      // The same through the extractor contract (RGB [0,1] in, NHWC features out).
      const ex = createCaitExtractor(weights, { nBlocks });
      assert.deepEqual(ex.channels, [featShape[1]]);
      assert.deepEqual(ex.scaleFactors, [rawShape[2]! / featShape[2]!]);
      assert.deepEqual(ex.inputSize, [rawShape[2], rawShape[3]]);
      assert.equal(ex.layerNormLevels, false);
      const img2 = nchwToNhwc(g.get('data', 'image_raw_0_1'), rawShape);
      const [f] = ex.extract(img2);
      check(g, f!, 'features', opts);
      tf.dispose([img2, f!]);
      ex.dispose();
      assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
    });
  }
}
