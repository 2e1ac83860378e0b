/**
 * `backbone: auto` (server/backbone-policy.ts): the decision as a pure function (GPU / CPU ×
 * cached / downloadable / offline → backbone, size, reason, notice), the probes (cache, a local hub
 * standing in for HF_ENDPOINT, a closed port, a port that never answers), a configured input_size
 * kept, and the bundled mobilenet_v2 built from the name alone.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs-core';
import { candidatesFor, chooseBackbone, configWithAutoBackbone, isGpuBackend, probeWeights, resolveAutoBackbone, type Availability } from '../../server/backbone-policy.js';
import { defaultConfig, loadConfigDetailed } from '../../server/config.js';
import { backboneCachePath } from '../../server/pretrained.js';
import { createExtractor } from '../../models/backbones/index.js';
import { bundledBackboneDir } from '../../models/backbones/bundled.js';
import { useBackend } from '../../models/engine.js';
import { startServer } from './download-server.js';
import { closedPort } from '../helpers/net.js';

const dir = mkdtempSync(join(tmpdir(), 'uflow-auto-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const cached: Availability = { state: 'cached', path: '/c/model.safetensors' };
const downloadable: Availability = { state: 'downloadable', url: 'https://hub/x' };
const offline: Availability = { state: 'unavailable', path: '/c/r18/model.safetensors', url: 'https://hub/x', why: 'https://hub cannot be reached: ENOTFOUND' };

describe('chooseBackbone (pure)', () => {
  test('GPU backends: tensorflow-gpu and webgpu; the rest are CPU', () => {
    assert.deepEqual(['tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'].map(isGpuBackend), [true, true, false, false, false]);
    assert.deepEqual(candidatesFor('uflow', 'webgpu'), ['mcait', 'resnet18']);
    assert.deepEqual(candidatesFor('uflow', 'webgpu', 256), ['resnet18'], 'mcait takes 448 only');
    assert.deepEqual(candidatesFor('uflow', 'wasm'), [], 'a CPU engine probes nothing');
    assert.deepEqual(candidatesFor('fastflow', 'tensorflow-gpu'), ['resnet18']);
  });

  // backend, mcait, resnet18 → backbone, size, notice?
  const table: Array<[string, Availability | undefined, Availability, string, number, boolean]> = [
    ['tensorflow-gpu', cached, cached, 'mcait', 448, false],
    ['webgpu', downloadable, offline, 'mcait', 448, false],
    ['tensorflow-gpu', offline, downloadable, 'resnet18', 256, false],
    ['tensorflow-gpu', offline, offline, 'mobilenet_v2', 256, true],
    // CPU: the bundled MobileNetV2 whatever is cached (ResNet-18 at 256 is ~10× the training time).
    ['wasm', undefined, cached, 'mobilenet_v2', 256, true],
    ['cpu', undefined, downloadable, 'mobilenet_v2', 256, true],
    ['tensorflow', undefined, downloadable, 'mobilenet_v2', 256, true],
    ['wasm', undefined, offline, 'mobilenet_v2', 256, true],
  ];
  for (const [backend, mcait, resnet18, backbone, size, notice] of table) {
    test(`${backend}, mcait ${mcait?.state ?? 'not probed'}, resnet18 ${resnet18.state} → ${backbone} at ${size}`, () => {
      const c = chooseBackbone({ model: 'uflow', backend, weights: { mcait, resnet18 } });
      assert.equal(c.backbone, backbone);
      assert.equal(c.inputSize, size);
      assert.equal(c.backend, backend);
      assert.match(c.reason, new RegExp(`^engine ${backend} \\((GPU|CPU)\\)`));
      assert.equal(c.notice !== undefined, notice, c.notice);
      if (backbone === 'resnet18') assert.match(c.reason, /ResNet-18 at 256/);
      if (resnet18.state === 'cached' && backbone === 'resnet18') assert.match(c.reason, /cached \(\/c\/model\.safetensors\)/);
      if (!isGpuBackend(backend)) {
        assert.match(c.reason, /MobileNetV2-0\.35 at 256, which trains a 200-image category in about 25 min on 2 cores \(ResNet-18 at 256: about 4\.5 h; MS-CaiT at 448: about an hour on the features alone\)$/);
        assert.match(c.notice!, /^training on the bundled MobileNetV2, the CPU choice \(about 25 min .*\); stronger features: train on a GPU, or set backbone: resnet18 \(about 4\.5 h on 2 cores; `uflow download-backbone resnet18` fetches its weights\)$/);
      } else if (notice) {
        const better = 'mcait';
        assert.match(c.notice!, new RegExp(`^training on the bundled MobileNetV2 \\(no ${better} weights here\\); .*uflow download-backbone ${better}.*HF_ENDPOINT`));
        assert.ok(!c.notice!.includes('\n'), 'one line');
        assert.match(c.reason, /not cached \(.*\) nor downloadable \(.*cannot be reached/);
      }
    });
  }

  test('a configured input_size is kept, and rules mcait out on a GPU', () => {
    const gpu = chooseBackbone({ model: 'uflow', backend: 'tensorflow-gpu', inputSize: [320, 480], weights: { mcait: cached, resnet18: cached } });
    assert.deepEqual([gpu.backbone, gpu.inputSize], ['resnet18', [320, 480]]);
    assert.match(gpu.reason, /mcait takes 448 only, input_size 320×480 from the config/);
    const gpu448 = chooseBackbone({ model: 'uflow', backend: 'tensorflow-gpu', inputSize: 448, weights: { mcait: cached, resnet18: cached } });
    assert.deepEqual([gpu448.backbone, gpu448.inputSize], ['mcait', 448]);
    const cpu = chooseBackbone({ model: 'uflow', backend: 'wasm', inputSize: 192, weights: {} });
    assert.deepEqual([cpu.backbone, cpu.inputSize], ['mobilenet_v2', 192]);
    assert.match(cpu.reason, /^engine wasm \(CPU\): the bundled ImageNet MobileNetV2-0\.35 at 192, which trains .*, input_size 192 from the config$/);
    const gpuOff = chooseBackbone({ model: 'uflow', backend: 'webgpu', inputSize: 192, weights: { resnet18: offline } });
    assert.deepEqual([gpuOff.backbone, gpuOff.inputSize], ['mobilenet_v2', 192]);
    assert.match(gpuOff.reason, /^engine webgpu \(GPU\): the bundled ImageNet MobileNetV2-0\.35 at 192, because the weights of resnet18 at 192 are not cached .*, input_size 192 from the config$/);
    assert.match(gpuOff.notice!, /resnet18 at 192 detects better/);
    const ff = chooseBackbone({ model: 'fastflow', backend: 'tensorflow-gpu', weights: { resnet18: cached } });
    assert.deepEqual([ff.backbone, ff.inputSize], ['resnet18', 256]);
  });
});


describe('probes', () => {
  test('cached file, a hub that answers, a closed port, a port that never answers (short timeout)', { timeout: 20_000 }, async () => {
    const cacheDir = join(dir, 'cache');
    const hub = await startServer((req, res) => {
      res.statusCode = req.url?.includes('resnet18') ? 302 : 404;
      if (res.statusCode === 302) res.setHeader('location', 'https://cdn/x');
      res.end();
    });
    const held: Socket[] = [];
    const silent = createServer((sock) => void held.push(sock)); // accepts, never answers
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    try {
      const env = { UFLOW_CACHE_DIR: cacheDir, HF_ENDPOINT: hub.base };
      const d = await probeWeights('resnet18', { env });
      assert.equal(d.state, 'downloadable');
      assert.equal(hub.log[0]!.method, 'HEAD');
      const missing = await probeWeights('cait_m48_448', { env });
      assert.equal(missing.state, 'unavailable');
      assert.match((missing as { why: string }).why, /answered HTTP 404/);

      const closed = await probeWeights('resnet18', { env: { UFLOW_CACHE_DIR: cacheDir, HF_ENDPOINT: `http://127.0.0.1:${await closedPort()}` } });
      assert.equal(closed.state, 'unavailable');
      assert.match((closed as { why: string }).why, /cannot be reached: ECONNREFUSED/);

      const t0 = Date.now();
      const hang = await probeWeights('resnet18', { env: { UFLOW_CACHE_DIR: cacheDir, HF_ENDPOINT: `http://127.0.0.1:${(silent.address() as AddressInfo).port}` }, timeoutMs: 400 });
      assert.equal(hang.state, 'unavailable');
      assert.match((hang as { why: string }).why, /cannot be reached: no answer in 0\.4 s$/);
      assert.ok(Date.now() - t0 < 3000, `the probe gave up after ${Date.now() - t0} ms`);

      const path = backboneCachePath('resnet18', cacheDir);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, 'x');
      const c = await probeWeights('resnet18', { env: { UFLOW_CACHE_DIR: cacheDir, HF_ENDPOINT: 'http://127.0.0.1:1' } });
      assert.deepEqual(c, { state: 'cached', path });
      // On a GPU engine with the ResNet-18 weights cached and no hub for the CaiT ones: resnet18 at 256, no notice.
      const r = await resolveAutoBackbone('uflow', 'webgpu', undefined, { env: { UFLOW_CACHE_DIR: cacheDir, HF_ENDPOINT: 'http://127.0.0.1:1' } });
      assert.deepEqual([r.backbone, r.inputSize, r.notice], ['resnet18', 256, undefined]);
      // On a CPU engine the same cache changes nothing: mobilenet_v2, no probe.
      const before = hub.log.length;
      const cpu = await resolveAutoBackbone('uflow', 'wasm', undefined, { env: { UFLOW_CACHE_DIR: cacheDir, HF_ENDPOINT: hub.base } });
      assert.deepEqual([cpu.backbone, cpu.inputSize], ['mobilenet_v2', 256]);
      assert.equal(hub.log.length, before, 'no request to the hub on a CPU');
    } finally {
      await hub.close();
      for (const sock of held) sock.destroy();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  test('configWithAutoBackbone: offline → mobilenet_v2 at 256 unless the config set input_size', async () => {
    const env = { UFLOW_CACHE_DIR: join(dir, 'empty-cache'), HF_ENDPOINT: `http://127.0.0.1:${await closedPort()}` };
    const plain = loadConfigDetailed({ category: 'carpet' });
    assert.equal(plain.config.model.backbone, 'auto');
    assert.equal(plain.inputSizeSet, false);
    const a = await configWithAutoBackbone(plain.config, 'uflow', 'wasm', plain.inputSizeSet, { env });
    assert.deepEqual(a.config.model, { ...defaultConfig('carpet').model, backbone: 'mobilenet_v2', input_size: 256 });
    assert.deepEqual(a.config.trainer, plain.config.trainer);
    const sized = loadConfigDetailed({ category: 'carpet', overrides: { model: { input_size: [192, 256] } } });
    assert.equal(sized.inputSizeSet, true);
    const b = await configWithAutoBackbone(sized.config, 'uflow', 'wasm', sized.inputSizeSet, { env });
    assert.deepEqual([b.config.model.backbone, b.config.model.input_size], ['mobilenet_v2', [192, 256]]);
    assert.match(b.chosen.reason, /input_size 192×256 from the config/);
  });
});

describe('the bundled mobilenet_v2', () => {
  test('is in the source tree with its licence, and builds from its name alone: taps at strides 4/8/16, 8/16/32 channels', async () => {
    const d = bundledBackboneDir();
    for (const f of ['model.json', 'weights.bin', 'LICENSE', 'NOTICE']) assert.ok(existsSync(join(d, f)), f);
    await useBackend('cpu');
    const ex = await createExtractor({ backbone: 'mobilenet_v2', inputSize: 64 });
    try {
      assert.equal(ex.name, 'mobilenet_v2');
      assert.deepEqual(ex.channels, [8, 16, 32]);
      assert.deepEqual(ex.scaleFactors, [4, 8, 16]);
      assert.deepEqual(ex.featureSizes, [[16, 16], [8, 8], [4, 4]]);
      // Input range [-1, 1] implied: a mid-grey image and a black one give different, finite features.
      const [grey] = ex.extract(tf.fill([1, 64, 64, 3], 0.5) as tf.Tensor4D);
      const [black] = ex.extract(tf.zeros([1, 64, 64, 3]) as tf.Tensor4D);
      const diff = tf.max(tf.abs(tf.sub(grey!, black!))).dataSync()[0]!;
      assert.ok(Number.isFinite(diff) && diff > 1e-3, `features depend on the input (${diff})`);
      tf.dispose([grey!, black!]);
    } finally {
      ex.dispose();
    }
  });
});
