// The fixed channel reduction after the backbone taps (models/backbones/channel-select.ts): which
// channels a seed picks (pinned, so a saved run keeps its channels across versions), that the
// reduced maps are exactly those channels, the config keys, and the feature-cache key.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { createExtractor } from '../../models/backbones/index.js';
import { ChannelSelectExtractor, randomChannelSubsets, reduceChannels } from '../../models/backbones/channel-select.js';
import { cacheKey } from '../../models/train/feature-cache.js';
import { createModel } from '../../models/model-factory.js';
import { loadConfig, ConfigError, configToYaml } from '../../server/config.js';
import { extractorId } from '../../server/run-model.js';

before(async () => {
  await initEngine({ backend: process.env.UFLOW_TEST_BACKEND ?? 'wasm' });
});

test('a seed picks the same sorted, distinct channels every time; another seed picks others', () => {
  const a = randomChannelSubsets([256, 512, 1024], [64, 128, 256], 0);
  const b = randomChannelSubsets([256, 512, 1024], [64, 128, 256], 0);
  assert.deepEqual(a, b);
  assert.deepEqual(a.map((l) => l.length), [64, 128, 256]);
  a.forEach((ix, l) => {
    assert.equal(new Set(ix).size, ix.length, `level ${l}: duplicates`);
    assert.ok(ix.every((i, k) => i >= 0 && i < [256, 512, 1024][l]! && (k === 0 || i > ix[k - 1]!)), `level ${l}: not ascending in range`);
  });
  // Pinned: runs saved with channel_seed 0 must get these channels back in later versions.
  assert.deepEqual(randomChannelSubsets([16, 8], [4, 2], 0), [
    [2, 7, 8, 9],
    [1, 4],
  ]);
  const c = randomChannelSubsets([256, 512, 1024], [64, 128, 256], 1);
  assert.notDeepEqual(c[0], a[0]);
});

test('bad counts are refused naming the level and the fix', () => {
  assert.throws(() => randomChannelSubsets([8, 16], [4], 0), /backbone_channels has 1 entries but the backbone gives 2 levels \(channels \[8, 16\]\)/);
  assert.throws(() => randomChannelSubsets([8, 16], [4, 17], 0), /backbone_channels\[1\] is 17 but level 1 of the backbone has 16 channels: give a count from 1 to 16/);
});

test('the reduced extractor returns exactly the chosen channels of each level', async () => {
  const inner = await createExtractor({ backbone: 'builtin:filters', inputSize: 64 });
  const full = inner.channels;
  const ex = reduceChannels(inner, { keep: full.map((c) => Math.max(8, c - 5)), method: 'random', seed: 5 });
  try {
    assert.ok(ex instanceof ChannelSelectExtractor);
    assert.deepEqual(ex.channels, full.map((c) => Math.max(8, c - 5)));
    assert.ok(ex.channels.some((c, l) => c < full[l]!), 'the test must drop channels');
    assert.deepEqual(ex.scaleFactors, inner.scaleFactors);
    const img = tf.randomUniform([2, 64, 64, 3], 0, 1, 'float32', 3) as tf.Tensor4D;
    const a = inner.extract(img);
    const b = ex.extract(img);
    for (let l = 0; l < a.length; l++) {
      const [n, h, w, c] = a[l]!.shape;
      assert.deepEqual(b[l]!.shape, [n, h, w, ex.indices[l]!.length]);
      const fa = a[l]!.dataSync();
      const fb = b[l]!.dataSync();
      const k = ex.indices[l]!.length;
      for (let p = 0; p < n * h * w; p += 7) for (let j = 0; j < k; j++) assert.equal(fb[p * k + j], fa[p * c + ex.indices[l]![j]!]);
    }
    tf.dispose([img, ...a, ...b]);
    // A model built on it is built for the reduced channels.
    const m = createModel('uflow', { flow_steps: 1 }, ex, { seed: 1 });
    assert.deepEqual([...(m.config as { channels: number[] }).channels], [...ex.channels]);
    m.dispose();
  } finally {
    ex.dispose();
  }
});

test('config: backbone_channels / channel_reduction / channel_seed are read, saved, and checked', () => {
  const cfg = loadConfig({ category: 'x', overrides: { model: { backbone: 'resnet50', input_size: 128, backbone_channels: [64, 128, 256], channel_reduction: 'random', channel_seed: 3 } } });
  assert.deepEqual(cfg.model.backbone_channels, [64, 128, 256]);
  assert.match(configToYaml(cfg), /backbone_channels: \[ 64, 128, 256 \]\n {2}channel_reduction: random\n {2}channel_seed: 3/);
  assert.throws(() => loadConfig({ category: 'x', overrides: { model: { backbone_channels: [64, 0] } } }), /model\.backbone_channels must be a list of positive integers/);
  assert.throws(() => loadConfig({ category: 'x', overrides: { model: { backbone_channels: [4], channel_reduction: 'pca' as 'random' } } }), /model\.channel_reduction must be "random", got "pca"/);
  assert.throws(
    () => loadConfig({ category: 'x', overrides: { model: { channel_seed: 2 } } }),
    (e: unknown) => e instanceof ConfigError && /model\.channel_seed needs model\.backbone_channels/.test(e.message),
  );
});

test('the feature-cache key changes with the reduction, its seed and its counts', async () => {
  const base = loadConfig({ category: 'x', overrides: { model: { backbone: 'builtin:filters', input_size: 64 } } });
  const withRed = (ch: number[], seed?: number) => ({ ...base, model: { ...base.model, backbone_channels: ch, channel_reduction: 'random' as const, ...(seed !== undefined ? { channel_seed: seed } : {}) } });
  const ids = [extractorId(base), extractorId(withRed([4, 4, 4])), extractorId(withRed([4, 4, 4], 1)), extractorId(withRed([4, 4, 5]))];
  assert.equal(new Set(ids).size, 4);
  // Without a reduction the id is what it was before reductions existed (old caches stay valid).
  assert.equal(extractorId(base), JSON.stringify({ layers: null, range: null }));
  const inner = await createExtractor({ backbone: 'builtin:filters', inputSize: 64 });
  const ex = reduceChannels(inner, { keep: [4, 4, 4], method: 'random' });
  try {
    assert.notEqual(cacheKey(ex, ids[1]), cacheKey(inner, ids[0]));
  } finally {
    ex.dispose();
  }
});
