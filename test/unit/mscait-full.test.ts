// The paper's configuration at full size: a synthetic released checkpoint (Lightning .ckpt, zip,
// 1.6 GB: the whole cait_m48_448 and cait_s24_224 of timm's shapes, a 4-step flow, a training
// leftover) opens through Predictor.openFile as `uflow predict --checkpoint` does, and its parts
// compute what the same weights compute when built directly.
//
// Why not one full forward here: MS-CaiT 448 is ~330 GFLOPs per image, 85–120 s on one wasm thread
// of this 2-core machine (bench/mscait-full.bench.ts prints the figure). So the test runs every
// loaded part at full width on inputs of the real shapes but cheap sizes: the patch embedding of a
// 448² image, block 40 (the last one U-Flow runs) of cait_m48 and block 20 of cait_s24 on a few
// tokens, the final norms, then the flow, one training step, the anomaly map and the NFA on random
// features of the real level shapes (768@28², 384@14²). The full forward is the bench's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { MsCaitExtractor, VitTokens } from '../../models/backbones/cait.js';
import type { AnomalyModel } from '../../models/model-factory.js';
import type { FeatureExtractor } from '../../models/backbones/index.js';
import { Adam } from '../../models/train/adam.js';
import { trainStep } from '../../models/train/step.js';
import { mapsOfLatents } from '../../models/train/evaluate.js';
import { anomalyMap } from '../../models/scores/anomaly-map.js';
import { Predictor } from '../../server/predict.js';
import { mulberry32 } from '../../models/flows/rng.js';
import { CAIT_M48_448, CAIT_S24_224, fillTensor, writeReleasedCheckpoint, type TensorSpec } from '../helpers/released-mscait.js';
import type { RawTensor } from '../../models/io/safetensors.js';

function randn(shape: number[], seed: number, scale = 1): tf.Tensor {
  const r = mulberry32(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = (r() + r() + r() - 1.5) * 2 * scale;
  return tf.tensor(d, shape);
}

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
}

/**
 * A one-block CaiT built straight from the generator: block `blockIndex` of the model under
 * `prefix` becomes block 0, with its patch embedding, position embedding and final norm.
 */
function referenceBlock(specs: TensorSpec[], prefix: string, blockIndex: number): VitTokens {
  const sd = new Map<string, RawTensor>();
  specs.forEach((s, i) => {
    if (!s.key.startsWith(prefix)) return;
    const k = s.key.slice(prefix.length);
    const blk = `blocks.${blockIndex}.`;
    const name = k.startsWith(blk) ? `blocks.0.${k.slice(blk.length)}` : /^(patch_embed|pos_embed|norm\.)/.test(k) ? k : undefined;
    if (name) sd.set(name, { dtype: 'F32', shape: s.shape, data: fillTensor(s, i) });
  });
  return new VitTokens('cait', sd, { what: `reference ${prefix} block ${blockIndex}` });
}

test('a released-format MS-CaiT 448 checkpoint (41 + 21 blocks, 4 flow steps) loads end to end and every part computes at full width', { timeout: 300_000 }, async () => {
  await initEngine({ backend: 'wasm' });
  const dir = mkdtempSync(join(tmpdir(), 'uflow-mscait-full-'));
  const file = join(dir, 'carpet.ckpt');
  const written = writeReleasedCheckpoint(file, 5);
  let p: Predictor | undefined;
  try {
    assert.ok(written.bytes > 1.55e9 && written.bytes < 1.7e9, `the released shapes make ~1.6 GB (${written.bytes} bytes)`);
    const before = tf.memory().numTensors;
    p = await Predictor.openFile(file);
    assert.equal(p.run.config.model.backbone, 'mcait');
    assert.deepEqual(p.run.config.model.input_size, 448);
    assert.equal(p.run.config.model.flow_steps, 4, 'flow steps read from the module indices (0–3, 7–10)');
    assert.equal(p.run.category, 'carpet');
    // The model is private to the predictor: the test reads it to check each part.
    const { extractor, model } = (p as unknown as { tfjs: { extractor: FeatureExtractor; model: AnomalyModel } }).tfjs;
    assert.ok(extractor instanceof MsCaitExtractor);
    assert.deepEqual(extractor.nBlocks, [41, 21]);
    assert.deepEqual([extractor.scale1.depth, extractor.scale2.depth], [48, 24], 'the whole models are in the file; only the used blocks are loaded');
    assert.deepEqual([extractor.scale1.heads, extractor.scale2.heads], [16, 8]);
    assert.deepEqual(extractor.channels, [768, 384]);
    assert.deepEqual(extractor.featureSizes, [
      [28, 28],
      [14, 14],
    ]);
    assert.deepEqual(extractor.scaleFactors, [16, 32]);

    // Backbone: patch embedding + positions of a 448² image, the last used block, the final norm.
    for (const [scale, arch, prefix] of [
      [extractor.scale1, CAIT_M48_448, 'model.feature_extractor.extractor1.'],
      [extractor.scale2, CAIT_S24_224, 'model.feature_extractor.extractor2.'],
    ] as const) {
      const ref = referenceBlock(written.backboneSpecs, prefix, arch.used - 1);
      try {
        const img = randn([1, arch.img, arch.img, 3], arch.embed) as tf.Tensor4D;
        const tokens = tf.tidy(() => scale.addPosition(scale.patchEmbed(img)));
        const expected = tf.tidy(() => ref.addPosition(ref.patchEmbed(img)));
        assert.deepEqual(tokens.shape, [1, (arch.img / 16) ** 2, arch.embed]);
        assert.ok(maxAbsDiff(tokens, expected) < 1e-4, `${arch.name}: patch embedding`);
        const few = tf.slice(tokens, [0, 0, 0], [1, 12, arch.embed]) as tf.Tensor3D;
        const got = tf.tidy(() => scale.normTokens(scale.block(arch.used - 1, few).out));
        const want = tf.tidy(() => ref.normTokens(ref.block(0, few).out));
        const d = maxAbsDiff(got, want);
        assert.ok(d < 1e-4, `${arch.name}: block ${arch.used - 1} + norm differ by ${d}`);
        // A different block's weights give a different answer (the comparison can tell blocks apart).
        const other = tf.tidy(() => scale.normTokens(scale.block(arch.used - 2, few).out));
        assert.ok(maxAbsDiff(other, want) > 1e-2, `${arch.name}: blocks ${arch.used - 2} and ${arch.used - 1} should differ`);
        tf.dispose([img, tokens, expected, few, got, want, other]);
      } finally {
        ref.dispose();
      }
    }

    // Flow: the loaded one computes what the written one does, on features of the real shapes.
    const feats = [randn([1, 28, 28, 768], 1) as tf.Tensor4D, randn([1, 14, 14, 384], 2) as tf.Tensor4D];
    const got = model.fromFeatures(feats);
    const want = written.flow.fromFeatures(feats);
    assert.deepEqual(
      got.z.map((z) => z.shape),
      [
        [1, 28, 28, 816],
        [1, 14, 14, 192],
      ],
    );
    for (let s = 0; s < 2; s++) assert.ok(maxAbsDiff(got.z[s]!, want.z[s]!) < 1e-3, `z level ${s}`);
    const [ld, ldRef] = [got.logdet.dataSync()[0]!, want.logdet.dataSync()[0]!];
    assert.ok(Math.abs(ld - ldRef) < 1e-4 * Math.abs(ldRef) + 1e-2, `logdet ${ld} vs ${ldRef}`);

    // Evaluation: anomaly map (256², the evaluation size) and the tree NFA of those latents.
    const maps = await mapsOfLatents(got.z, 256, 'tree', undefined, (zz, s) => model.anomalyMap(zz, s));
    const ref = tf.tidy(() => anomalyMap(want.z, 256));
    assert.equal(maps.anomaly[0]!.length, 256 * 256);
    const mapDiff = tf.tidy(() => maxAbsDiff(tf.tensor(maps.anomaly[0]!, ref.shape), ref));
    assert.ok(mapDiff < 1e-5, `anomaly map differs by ${mapDiff}`);
    assert.ok(maps.anomaly[0]!.every((v) => v >= 0 && v <= 1));
    assert.equal(maps.negLogNfa![0]!.length, 256 * 256);
    assert.ok(maps.negLogNfa![0]!.every(Number.isFinite));
    ref.dispose();

    // One training step of the loaded flow (batch 2): the loss is the official one of this forward,
    // mean over the batch of ½Σz² − logdet (summed here in float64 over the 700k latent values per
    // image), and Adam moves the weights.
    const batch = tf.tidy(() => [tf.concat([feats[0]!, randn([1, 28, 28, 768], 3)]) as tf.Tensor4D, tf.concat([feats[1]!, randn([1, 14, 14, 384], 4)]) as tf.Tensor4D]);
    const fwd = model.fromFeatures(batch);
    const logdets = fwd.logdet.dataSync();
    let expectedLoss = 0;
    for (let b = 0; b < 2; b++) {
      let lpz = 0;
      for (const z of fwd.z) {
        const d = z.dataSync();
        const per = d.length / 2;
        for (let i = b * per; i < (b + 1) * per; i++) lpz += 0.5 * d[i]! * d[i]!;
      }
      expectedLoss += (lpz - logdets[b]!) / 2;
    }
    tf.dispose([fwd.z, fwd.logdet]);
    const adam = new Adam(model.trainableVariables(), { lr: 1e-3, weightDecay: 1e-5 });
    const w0 = model.trainableVariables()[0]!.variable.dataSync().slice();
    const loss = trainStep(model, batch, adam);
    assert.ok(Math.abs(loss - expectedLoss) < 2e-5 * Math.abs(expectedLoss), `loss ${loss} vs ${expectedLoss}`);
    const w1 = model.trainableVariables()[0]!.variable.dataSync();
    assert.ok(w1.some((v, i) => v !== w0[i]), 'the step changed the weights');
    adam.dispose();
    tf.dispose([feats, batch, got.z, got.logdet, want.z, want.logdet]);
    p.dispose();
    p = undefined;
    assert.equal(tf.memory().numTensors, before, 'nothing leaked');
  } finally {
    p?.dispose();
    written.flow.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
