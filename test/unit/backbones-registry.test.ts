// Backbone registry and the compositions golden vectors do not cover: MS-CaiT's two scales,
// DeiT's prefix tokens (against a plain-JS reference), state-dict prefixes and files, errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine } from '../../models/engine.js';
import { writeSafetensors, type RawTensor, type TensorMap } from '../../models/io/safetensors.js';
import { createExtractor } from '../../models/backbones/index.js';
import { createCaitExtractor, createDeitExtractor, createMsCaitExtractor, VitTokens } from '../../models/backbones/cait.js';
import { createResnetExtractor } from '../../models/backbones/resnet.js';
import { normalizeImagenet } from '../../models/ops/image-norm.js';
import { resizeBicubic } from '../../models/ops/resize.js';
import { assertClose } from '../helpers/assert-close.js';
import { randT, rng, vitStateDict, type VitCfg } from '../helpers/vit-fixture.js';


function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 would do at 1e-4; use the series / continued fraction for 1e-12.
  const t = Math.abs(x);
  if (t < 3) {
    let sum = 0;
    let term = t;
    for (let n = 0; n < 200; n++) {
      sum += term / (2 * n + 1);
      term *= (-t * t) / (n + 1);
      if (Math.abs(term) < 1e-17) break;
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  return Math.sign(x) * (1 - Math.exp(-t * t) / (t * Math.sqrt(Math.PI)) * (1 - 1 / (2 * t * t) + 3 / (4 * t ** 4)));
}

/** timm's feature path in plain float64 JS on NHWC images (normalised), returning NHWC features. */
function vitReference(sd: TensorMap, cfg: VitCfg, img: Float32Array, b: number, nBlocks: number): Float64Array {
  const g = (k: string) => sd.get(k)!.data as Float32Array;
  const { embed: c, heads: h, patch: p, img: s } = cfg;
  const gs = s / p;
  const pre = cfg.kind === 'deit' ? 2 : 0;
  const n = gs * gs + pre;
  const d = c / h;
  const out = new Float64Array(b * gs * gs * c);
  const ln = (x: number[], w: Float32Array, bias: Float32Array) => {
    const mean = x.reduce((a, v) => a + v, 0) / x.length;
    const v = x.reduce((a, u) => a + (u - mean) ** 2, 0) / x.length;
    return x.map((u, i) => ((u - mean) / Math.sqrt(v + 1e-6)) * w[i]! + bias[i]!);
  };
  const lin = (x: number[], w: Float32Array, bias: Float32Array, o: number) =>
    Array.from({ length: o }, (_, r) => x.reduce((a, v, k) => a + v * w[r * x.length + k]!, bias[r]!));
  for (let bi = 0; bi < b; bi++) {
    let tok: number[][] = [];
    if (pre) tok.push(Array.from(g('cls_token')), Array.from(g('dist_token')));
    const pw = g('patch_embed.proj.weight');
    const pb = g('patch_embed.proj.bias');
    for (let gy = 0; gy < gs; gy++)
      for (let gx = 0; gx < gs; gx++) {
        const v = Array.from(pb, Number);
        for (let oc = 0; oc < c; oc++)
          for (let ic = 0; ic < 3; ic++)
            for (let ky = 0; ky < p; ky++)
              for (let kx = 0; kx < p; kx++) v[oc]! += pw[((oc * 3 + ic) * p + ky) * p + kx]! * img[((bi * s + gy * p + ky) * s + gx * p + kx) * 3 + ic]!;
        tok.push(v);
      }
    const pos = g('pos_embed');
    tok = tok.map((t, i) => t.map((v, k) => v + pos[i * c + k]!));
    for (let l = 0; l < nBlocks; l++) {
      const P = `blocks.${l}.`;
      const x1 = tok.map((t) => ln(t, g(P + 'norm1.weight'), g(P + 'norm1.bias')));
      const qkv = x1.map((t) => lin(t, g(P + 'attn.qkv.weight'), g(P + 'attn.qkv.bias'), 3 * c));
      // logits[h][i][j]
      let att = Array.from({ length: h }, (_, hh) =>
        Array.from({ length: n }, (_, i) =>
          Array.from({ length: n }, (_, j) => {
            let a = 0;
            for (let k = 0; k < d; k++) a += qkv[i]![hh * d + k]! * d ** -0.5 * qkv[j]![c + hh * d + k]!;
            return a;
          }),
        ),
      );
      const mix = (a: number[][][], key: string) => {
        const w = g(key + '.weight');
        const bb = g(key + '.bias');
        return a.map((_, go) => a[0]!.map((row, i) => row.map((__, j) => a.reduce((acc, m, hi) => acc + w[go * h + hi]! * m[i]![j]!, bb[go]!))));
      };
      const talking = sd.has(P + 'attn.proj_l.weight');
      if (talking) att = mix(att, P + 'attn.proj_l');
      att = att.map((m) => m.map((row) => { const mx = Math.max(...row); const e = row.map((v) => Math.exp(v - mx)); const z = e.reduce((a, v) => a + v, 0); return e.map((v) => v / z); }));
      if (talking) att = mix(att, P + 'attn.proj_w');
      const merged = Array.from({ length: n }, (_, i) => Array.from({ length: c }, (_, ch) => { const hh = Math.floor(ch / d); let a = 0; for (let j = 0; j < n; j++) a += att[hh]![i]![j]! * qkv[j]![2 * c + ch]!; return a; }));
      const g1 = sd.has(P + 'gamma_1') ? g(P + 'gamma_1') : new Float32Array(c).fill(1);
      const g2 = sd.has(P + 'gamma_2') ? g(P + 'gamma_2') : new Float32Array(c).fill(1);
      tok = tok.map((t, i) => { const a = lin(merged[i]!, g(P + 'attn.proj.weight'), g(P + 'attn.proj.bias'), c); return t.map((v, k) => v + g1[k]! * a[k]!); });
      tok = tok.map((t) => {
        const hdn = lin(ln(t, g(P + 'norm2.weight'), g(P + 'norm2.bias')), g(P + 'mlp.fc1.weight'), g(P + 'mlp.fc1.bias'), 4 * c).map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
        const m = lin(hdn, g(P + 'mlp.fc2.weight'), g(P + 'mlp.fc2.bias'), c);
        return t.map((v, k) => v + g2[k]! * m[k]!);
      });
    }
    tok = tok.map((t) => ln(t, g('norm.weight'), g('norm.bias')));
    for (let i = pre; i < n; i++) for (let k = 0; k < c; k++) out[(bi * gs * gs + i - pre) * c + k] = tok[i]![k]!;
  }
  return out;
}

function image(b: number, s: number, seed: number): tf.Tensor4D {
  const r = rng(seed);
  return tf.tensor4d(Float32Array.from({ length: b * s * s * 3 }, () => r()), [b, s, s, 3]);
}

for (const backend of ['wasm', 'cpu'] as const) {
  test(`CaiT and DeiT paths equal a plain-JS timm reference on ${backend}`, async () => {
    await initEngine({ backend });
    const before = tf.memory().numTensors;
    for (const kind of ['cait', 'deit'] as const) {
      const cfg: VitCfg = { img: 16, patch: 4, embed: 8, heads: 2, depth: 3, kind };
      const sd = vitStateDict(cfg, kind === 'cait' ? 11 : 12);
      const ex = kind === 'cait' ? createCaitExtractor(sd, { nBlocks: 2 }) : createDeitExtractor(sd, { nBlocks: 2, numHeads: 2 });
      assert.deepEqual(ex.inputSize, [16, 16]);
      assert.deepEqual(ex.channels, [8]);
      assert.deepEqual(ex.scaleFactors, [4]);
      const img = image(2, 16, 5);
      const normed = normalizeImagenet(img);
      const ref = vitReference(sd, cfg, normed.dataSync() as Float32Array, 2, 2);
      const [f] = ex.extract(img);
      assert.deepEqual(f!.shape, [2, 4, 4, 8]);
      assertClose(f!.dataSync(), ref, { rtol: 1e-4, atol: 1e-4, what: `${kind} features` });
      tf.dispose([img, normed, f!]);
      ex.dispose();
    }
    assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
  });
}

test('MS-CaiT: scale 1 on the image, scale 2 on the bicubic resize of the normalised image; one combined checkpoint works too', async () => {
  await initEngine({ backend: 'wasm' });
  const before = tf.memory().numTensors;
  const c1: VitCfg = { img: 32, patch: 4, embed: 12, heads: 3, depth: 3, kind: 'cait' };
  const c2: VitCfg = { img: 16, patch: 4, embed: 8, heads: 2, depth: 2, kind: 'cait' };
  const sd1 = vitStateDict(c1, 21);
  const sd2 = vitStateDict(c2, 22);
  const ms = createMsCaitExtractor(sd1, sd2, { nBlocks: [2, 1] });
  assert.equal(ms.name, 'mcait');
  assert.deepEqual(ms.inputSize, [32, 32]);
  assert.deepEqual(ms.channels, [12, 8]);
  assert.deepEqual(ms.scaleFactors, [4, 8]);
  assert.equal(ms.layerNormLevels, false);
  const img = image(2, 32, 9);
  const [a, b] = ms.extract(img);
  assert.deepEqual(a!.shape, [2, 8, 8, 12]);
  assert.deepEqual(b!.shape, [2, 4, 4, 8]);
  const m1 = new VitTokens('cait', sd1);
  const m2 = new VitTokens('cait', sd2);
  const [ra, rb] = tf.tidy(() => {
    const n = normalizeImagenet(img);
    return [m1.features(n, 2), m2.features(resizeBicubic(n, [16, 16], true), 1)];
  });
  assertClose(a!.dataSync(), ra!.dataSync(), { rtol: 1e-6, atol: 1e-6, what: 'scale 1' });
  assertClose(b!.dataSync(), rb!.dataSync(), { rtol: 1e-6, atol: 1e-6, what: 'scale 2' });
  // The reference-style JS path agrees on scale 2 as well.
  const n2 = tf.tidy(() => resizeBicubic(normalizeImagenet(img), [16, 16], true));
  assertClose(b!.dataSync(), vitReference(sd2, c2, n2.dataSync() as Float32Array, 2, 1), { rtol: 1e-4, atol: 1e-4, what: 'scale 2 vs JS' });
  // One U-Flow-style map holding both extractors.
  const combined: TensorMap = new Map([
    ...[...vitStateDict(c1, 21, 'model.feature_extractor.extractor1.')],
    ...[...vitStateDict(c2, 22, 'model.feature_extractor.extractor2.')],
    ['model.flow.module_list.0.global_scale', randT([1, 4, 1, 1], rng(1))],
  ]);
  const ms2 = await createExtractor({ backbone: 'mcait', inputSize: 32, weights: combined, blocks: [2, 1] });
  const [a2, b2] = ms2.extract(img);
  assert.deepEqual(a2!.dataSync(), a!.dataSync());
  assert.deepEqual(b2!.dataSync(), b!.dataSync());
  await assert.rejects(createExtractor({ backbone: 'mcait', inputSize: 448, weights: combined, blocks: [2, 1] }), /works at input size 32 .* set input_size to 32/);
  tf.dispose([img, a!, b!, ra!, rb!, n2, a2!, b2!]);
  ms.dispose();
  ms2.dispose();
  m1.dispose();
  m2.dispose();
  assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
});

function resnetStateDict(prefix: string, seed: number): TensorMap {
  // A BasicBlock ResNet with stem 8, widths 8/16/32, one block per stage.
  const r = rng(seed);
  const m = new Map<string, RawTensor>();
  const conv = (k: string, o: number, i: number, s: number) => m.set(`${prefix}${k}.weight`, randT([o, i, s, s], r, 0.3));
  const bn = (k: string, c: number) => {
    m.set(`${prefix}${k}.weight`, randT([c], r, 0.2, 1));
    m.set(`${prefix}${k}.bias`, randT([c], r, 0.1));
    m.set(`${prefix}${k}.running_mean`, randT([c], r, 0.1));
    m.set(`${prefix}${k}.running_var`, randT([c], r, 0.2, 1));
    m.set(`${prefix}${k}.num_batches_tracked`, { dtype: 'I64', shape: [], data: new BigInt64Array([10n]) });
  };
  conv('conv1', 8, 3, 7);
  bn('bn1', 8);
  let inC = 8;
  [8, 16, 32].forEach((w, s) => {
    const p = `layer${s + 1}.0`;
    conv(`${p}.conv1`, w, inC, 3);
    bn(`${p}.bn1`, w);
    conv(`${p}.conv2`, w, w, 3);
    bn(`${p}.bn2`, w);
    if (w !== inC) {
      conv(`${p}.downsample.0`, w, inC, 1);
      bn(`${p}.downsample.1`, w);
    }
    inC = w;
  });
  return m;
}

test('registry: resnet from a map or a safetensors file (any prefix), layers, clear errors', async () => {
  await initEngine({ backend: 'wasm' });
  const before = tf.memory().numTensors;
  const sd = resnetStateDict('model.feature_extractor.extractor.', 3);
  const dir = mkdtempSync(join(tmpdir(), 'uflow-bb-'));
  try {
    const file = join(dir, 'r18.safetensors');
    writeSafetensors(file, sd);
    const a = await createExtractor({ backbone: 'resnet18', inputSize: 64, weights: sd });
    const b = await createExtractor({ backbone: 'resnet18', inputSize: 64, weights: file, layers: [2, 3] });
    assert.deepEqual(a.channels, [8, 16, 32]);
    assert.deepEqual(a.scaleFactors, [4, 8, 16]);
    assert.equal(a.layerNormLevels, true);
    assert.deepEqual(b.channels, [16, 32]);
    const img = image(1, 64, 4);
    const fa = a.extract(img);
    const fb = b.extract(img);
    assert.deepEqual(fa.map((t) => t.shape), [[1, 16, 16, 8], [1, 8, 8, 16], [1, 4, 4, 32]]);
    assert.deepEqual(fb[0]!.dataSync(), fa[1]!.dataSync());
    assert.deepEqual(fb[1]!.dataSync(), fa[2]!.dataSync());
    tf.dispose([img, ...fa, ...fb]);
    a.dispose();
    b.dispose();
    await assert.rejects(createExtractor({ backbone: 'resnet18', inputSize: 64 }), /weights for resnet18 not found: run `uflow download-models` or set the backbone weights to a local \.safetensors file/);
    await assert.rejects(createExtractor({ backbone: 'wide_resnet50_2', inputSize: 64, weights: join(dir, 'nope.safetensors') }), /weights for wide_resnet50_2 not found at .*nope\.safetensors/);
    await assert.rejects(createExtractor({ backbone: 'wide_resnet50_2', inputSize: 64, weights: sd }), /BasicBlock ResNet .* not wide_resnet50_2/);
    await assert.rejects(createExtractor({ backbone: 'resnet18', inputSize: 64, weights: sd, layers: [4] }), /layer 4 requested, but the weights have stages 1\.\.3/);
    await assert.rejects(createExtractor({ backbone: 'vgg16', inputSize: 64 }), /unknown backbone 'vgg16': choose one of resnet18, wide_resnet50_2, resnet50, mcait, cait, deit, tfjs:<dir>/);
    await assert.rejects(createExtractor({ backbone: 'cait', inputSize: 448, weights: sd }), /no 'patch_embed\.proj\.weight'/);
    const quant = new Map(sd);
    quant.set('model.feature_extractor.extractor.conv1.weight', { dtype: 'I8', shape: [8, 3, 7, 7], data: new Int8Array(8 * 3 * 49) });
    assert.throws(() => createResnetExtractor('resnet18', quant, 64), /stored as I8; float weights/);
    const builtin = await createExtractor({ backbone: 'builtin:filters', inputSize: 64 });
    assert.deepEqual(builtin.scaleFactors, [4, 8, 16]);
    builtin.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
});

test('a map holding two CaiT models is refused by the single-model factories', async () => {
  await initEngine({ backend: 'cpu' });
  const cfg: VitCfg = { img: 8, patch: 4, embed: 4, heads: 2, depth: 1, kind: 'cait' };
  const both: TensorMap = new Map([...vitStateDict(cfg, 1, 'extractor1.'), ...vitStateDict(cfg, 2, 'extractor2.')]);
  assert.throws(() => createCaitExtractor(both), /several models \('extractor1\.', 'extractor2\.'\)/);
});
