// The choice of inference engine (server/onnx-engine.ts): onnx by default where the model exports
// and onnxruntime-node loads, tfjs with the reason otherwise (a backbone the exporter does not
// support, onnxruntime-node missing, tfjs asked for), and the execution providers asked for.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tfl from '@tensorflow/tfjs-layers';
import { initEngine } from '../../models/engine.js';
import { TfjsLayersExtractor } from '../../models/backbones/tfjs-layers.js';
import { createExtractor } from '../../models/backbones/index.js';
import { createModel } from '../../models/model-factory.js';
import { askedProviders } from '../../models/export/ort-session.js';
import { evaluationSize } from '../../models/size.js';
import { inferenceFor, parseEngine } from '../../server/onnx-engine.js';

/** The evaluation size of a square input. */
const T256: [number, number] = [256, 256];

before(async () => {
  await initEngine({ backend: process.env.UFLOW_TEST_BACKEND ?? 'wasm' });
});

/** A Keras model with a layer the exporter has no emitter for (UpSampling2D). */
function unsupportedBackbone(): TfjsLayersExtractor {
  const input = tfl.input({ shape: [32, 32, 3] });
  const tap1 = tfl.layers.conv2d({ filters: 8, kernelSize: 4, strides: 4, name: 'tap1' }).apply(input) as tfl.SymbolicTensor;
  const up = tfl.layers.upSampling2d({ size: [1, 1], name: 'odd_one' }).apply(tap1) as tfl.SymbolicTensor;
  const tap2 = tfl.layers.conv2d({ filters: 8, kernelSize: 2, strides: 2, name: 'tap2' }).apply(up) as tfl.SymbolicTensor;
  const tap3 = tfl.layers.conv2d({ filters: 8, kernelSize: 2, strides: 2, name: 'tap3' }).apply(tap2) as tfl.SymbolicTensor;
  return new TfjsLayersExtractor('tfjs:toy', [32, 32], ['tap1', 'tap2', 'tap3'], [0, 1], [8, 8, 8], [4, 8, 16], tfl.model({ inputs: input, outputs: [tap1, tap2, tap3] }), 'range', [[8, 8], [4, 4], [2, 2]]);
}

async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const old = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(vars)) if (v === undefined) delete process.env[k];
  else process.env[k] = v;
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(old)) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

test('an unsupported backbone runs on tfjs with the exporter’s reason; onnx asked for says so in one line', async () => {
  const ex = unsupportedBackbone();
  const model = createModel('uflow', { flow_steps: 1 }, ex);
  try {
    const dflt = await withEnv({ UFLOW_INFERENCE_ENGINE: undefined }, () => inferenceFor(model, { mapSize: T256, warn: () => assert.fail('no notice by default') }));
    assert.equal(dflt.session, undefined);
    assert.equal(dflt.info.engine, 'tfjs');
    assert.match(dflt.info.reason, /^ONNX export does not support the Keras layer 'odd_one' \(UpSampling2D\) of this tfjs backbone yet/);
    const lines: string[] = [];
    const asked = await inferenceFor(model, { mapSize: T256, engine: 'onnx', warn: (l) => lines.push(l) });
    assert.equal(asked.info.engine, 'tfjs');
    assert.deepEqual(lines, [`inference on tfjs instead of onnx: ${dflt.info.reason}`]);
  } finally {
    model.dispose();
    ex.dispose();
  }
});

test('builtin:filters: onnx by default; tfjs when asked (option or UFLOW_INFERENCE_ENGINE) or when onnxruntime-node is missing', async () => {
  const ex = await createExtractor({ backbone: 'builtin:filters', inputSize: 32 });
  const model = createModel('fastflow', { flow_steps: 1 }, ex);
  try {
    const on = await withEnv({ UFLOW_INFERENCE_ENGINE: undefined, UFLOW_ORT_PROVIDERS: undefined }, () => inferenceFor(model, { mapSize: T256 }));
    assert.equal(on.info.engine, 'onnx');
    assert.deepEqual(on.info.providers, ['cpu']);
    assert.match(on.info.reason, /^default: onnxruntime-node loaded and the model exports; onnxruntime-node \d+\.\d+/);
    const out = await on.session!.run(new Float32Array(2 * 32 * 32 * 3).fill(0.5), 2);
    assert.deepEqual(out.latents.map((z) => z.shape), [[2, 8, 8, 16], [2, 4, 4, 16], [2, 2, 2, 16]].map(([b, h, w]) => [b, h, w, ex.channels[0]!]));
    assert.equal(out.anomaly.length, 2);
    assert.deepEqual(out.anomaly.map((a) => a.length), [256 * 256, 256 * 256]);
    await on.session!.release();

    assert.deepEqual((await inferenceFor(model, { mapSize: T256, engine: 'tfjs' })).info, { engine: 'tfjs', reason: 'asked for (engine tfjs)' });
    assert.deepEqual((await withEnv({ UFLOW_INFERENCE_ENGINE: 'tfjs' }, () => inferenceFor(model, { mapSize: T256 }))).info, { engine: 'tfjs', reason: 'UFLOW_INFERENCE_ENGINE=tfjs' });
    const off = await withEnv({ UFLOW_ORT_DISABLE: '1', UFLOW_INFERENCE_ENGINE: undefined }, () => inferenceFor(model, { mapSize: T256 }));
    assert.deepEqual(off.info, { engine: 'tfjs', reason: 'onnxruntime-node is disabled (UFLOW_ORT_DISABLE=1)' });
  } finally {
    model.dispose();
    ex.dispose();
  }
});

test('a non-square model (32×48): the image input [B, 3, 32, 48], latents at its level sizes, the map at the evaluation size 171×256', async () => {
  const ex = await createExtractor({ backbone: 'builtin:filters', inputSize: [32, 48] });
  const model = createModel('fastflow', { flow_steps: 1 }, ex);
  try {
    const T = evaluationSize([32, 48]);
    assert.deepEqual(T, [171, 256]);
    const on = await withEnv({ UFLOW_INFERENCE_ENGINE: undefined, UFLOW_ORT_PROVIDERS: undefined }, () => inferenceFor(model, { mapSize: T }));
    assert.equal(on.info.engine, 'onnx');
    const out = await on.session!.run(new Float32Array(2 * 32 * 48 * 3).fill(0.5), 2);
    assert.deepEqual(out.latents.map((z) => z.shape.slice(0, 3)), [[2, 8, 12], [2, 4, 6], [2, 2, 3]]);
    assert.deepEqual(out.anomaly.map((a) => a.length), [171 * 256, 171 * 256]);
    await on.session!.release();
  } finally {
    model.dispose();
    ex.dispose();
  }
});

test('engine names and execution providers', () => {
  assert.equal(parseEngine(undefined), undefined);
  assert.equal(parseEngine('auto'), undefined);
  assert.equal(parseEngine('onnx'), 'onnx');
  assert.throws(() => parseEngine('torch'), /'torch' is not an inference engine \(onnx, tfjs, auto\)/);
  assert.deepEqual(askedProviders(undefined, {}), ['cpu']);
  assert.deepEqual(askedProviders(undefined, { UFLOW_ORT_PROVIDERS: ' CUDA, directml ,cpu' }), ['cuda', 'dml', 'cpu']);
  assert.deepEqual(askedProviders(['coreml'], { UFLOW_ORT_PROVIDERS: 'cuda' }), ['coreml']);
});
