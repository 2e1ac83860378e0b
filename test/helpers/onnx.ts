/**
 * ONNX round-trip helpers: run an exported model in onnxruntime-node (CPU execution provider) and
 * compare its outputs (NCHW) with the tfjs model's (NHWC).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as ort from 'onnxruntime-node';
import type { AnomalyModel } from '../../models/model-factory.js';
import { nhwcToNchwArray } from '../../models/layout.js';
import { toHW, type SizeInput } from '../../models/size.js';

export interface Outputs {
  /** Latents, finest first, NCHW data. */
  z: Float32Array[];
  /** [B, 1, Th, Tw] (= NHWC with one channel). */
  map: Float32Array;
  score: Float32Array;
}

/** images: NHWC [B, H, W, 3] RGB in [0, 1] (S: the input size, one side or [H, W]). */
export async function runOnnx(bytes: Uint8Array, images: Float32Array, B: number, S: SizeInput, levels: number): Promise<Outputs> {
  const [H, W] = toHW(S);
  const sess = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'] });
  try {
    const nchw = nhwcToNchwArray(images, [B, H, W, 3]);
    const res = await sess.run({ image: new ort.Tensor('float32', nchw, [B, 3, H, W]) });
    const z = Array.from({ length: levels }, (_, l) => res[`z${l}`]!.data as Float32Array);
    return { z, map: res.anomaly_map!.data as Float32Array, score: res.score!.data as Float32Array };
  } finally {
    await sess.release();
  }
}

/** The tfjs path, as predict runs it: forward → latents → anomaly map at T → score. */
export function runTfjs(model: AnomalyModel, images: Float32Array, B: number, S: SizeInput, T: SizeInput): Outputs {
  const [H, W] = toHW(S);
  return tf.tidy(() => {
    const { z } = model.forward(tf.tensor4d(images, [B, H, W, 3]));
    const map = model.anomalyMap(z, T);
    return {
      z: z.map((zz) => nhwcToNchwArray(zz.dataSync() as Float32Array, zz.shape)),
      map: Float32Array.from(map.dataSync() as Float32Array),
      score: Float32Array.from(model.imageScore(map).dataSync() as Float32Array),
    };
  });
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export interface Diffs {
  latents: number;
  map: number;
  score: number;
}

export function compareOutputs(onnx: Outputs, ref: Outputs): Diffs {
  return {
    latents: Math.max(...ref.z.map((z, l) => maxAbsDiff(onnx.z[l]!, z))),
    map: maxAbsDiff(onnx.map, ref.map),
    score: maxAbsDiff(onnx.score, ref.score),
  };
}
