/**
 * Reference features for bench/reference/mobilenet_v2_torch.py: runs the project's own
 * TensorFlow.js extractor (createTfjsLayersExtractor) on MobileNetV2 and writes inputs and tap
 * outputs to a safetensors file.
 *
 *   npx tsx bench/reference/dump_mobilenet_features.ts OUT.safetensors [IN.safetensors]
 *
 * Always runs `synthetic`, a 2×256×256×3 image from a fixed formula; IN may add more images
 * (each a float32 [B, S, S, 3] tensor in [0, 1]). For each input NAME the file holds NAME
 * (the [0, 1] NHWC image, as the extractor was given it) and NAME/TAP (NHWC float32).
 * Backend: UFLOW_BACKEND (wasm or cpu; default wasm). Weights: UFLOW_WEIGHTS_DIR (default
 * ../shared/weights relative to the repo root).
 */
import * as tf from '@tensorflow/tfjs-core';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initEngine } from '../../models/engine.js';
import { createTfjsLayersExtractor, MOBILENET_V2_TAPS } from '../../models/backbones/tfjs-layers.js';
import { f32, readSafetensors, toFloat32, writeSafetensors, type RawTensor } from '../../models/io/safetensors.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const weightsDir = resolve(repoRoot, process.env.UFLOW_WEIGHTS_DIR ?? join('..', 'shared', 'weights'));
const modelDir = join(weightsDir, 'mobilenet_v2_035_imagenet');

const [outPath, inPath] = process.argv.slice(2);
if (!outPath) {
  console.error('usage: npx tsx bench/reference/dump_mobilenet_features.ts OUT.safetensors [IN.safetensors]');
  process.exit(2);
}

/** A smooth, non-trivial deterministic image in [0, 1] (the same formula as the unit test). */
function syntheticImage(b: number, s: number): RawTensor {
  const data = new Float32Array(b * s * s * 3);
  for (let n = 0; n < b; n++)
    for (let y = 0; y < s; y++)
      for (let x = 0; x < s; x++)
        for (let c = 0; c < 3; c++) data[((n * s + y) * s + x) * 3 + c] = 0.5 + 0.45 * Math.sin((x * (c + 1) + y * (n + 2)) / 17 + c);
  return f32([b, s, s, 3], data);
}

const inputs = new Map<string, RawTensor>([['synthetic', syntheticImage(2, 256)]]);
if (inPath) for (const [name, t] of readSafetensors(inPath).tensors) inputs.set(name, f32(t.shape, toFloat32(t)));

const engine = await initEngine({ backend: process.env.UFLOW_BACKEND ?? 'wasm' });
const out = new Map<string, RawTensor>();
for (const [name, input] of inputs) {
  const [, h, w, c] = input.shape;
  if (input.shape.length !== 4 || h !== w || c !== 3) throw new Error(`input '${name}' must be [B, S, S, 3], got [${input.shape.join(', ')}]`);
  const ex = await createTfjsLayersExtractor({ dir: modelDir, inputSize: h! });
  const feats = ex.extract(tf.tensor4d(input.data as Float32Array, input.shape as [number, number, number, number]));
  out.set(name, input);
  feats.forEach((f, i) => out.set(`${name}/${ex.layers[i]}`, f32([...f.shape], f.dataSync() as Float32Array)));
  console.log(`${name} [${input.shape.join(', ')}]: ${feats.map((f, i) => `${ex.layers[i]} [${f.shape.join(', ')}]`).join(', ')}`);
  tf.dispose(feats);
  ex.dispose();
}
writeSafetensors(outPath, out, { backend: engine.backend, model: modelDir, taps: MOBILENET_V2_TAPS.join(',') });
console.log(`wrote ${outPath} (backend ${engine.backend})`);
