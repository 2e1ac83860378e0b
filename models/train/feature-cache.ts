/**
 * Frozen backbone features, computed once per image and cached on disk.
 *
 * The reference trains without augmentation, so the backbone's output for an image never changes:
 * training runs the backbone once per image, and every epoch after that (and every later run with
 * the same backbone) reads the cache. Files live under
 * `<trainDir>/cache/features/<key>/<sha256 of the image file>.safetensors`, where `<key>` names the
 * backbone, its input size and options; each file holds one NHWC map per level (`level0` finest,
 * shape [h, w, c]) and is written atomically.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FeatureExtractor } from '../backbones/types.js';
import { readSafetensors, toFloat32, writeSafetensors, type RawTensor } from '../io/safetensors.js';
import { sizeForConfig, type HW } from '../size.js';

/** Bump when the stored layout or an extractor's numerics change. */
const CACHE_VERSION = 1;

/** Decodes an image file into RGB [0,1] at size [h, w]: [h, w, 3]. */
export type ImageLoader = (path: string, size: HW) => Promise<tf.Tensor3D>;

export interface FeatureCacheOptions {
  /** `<trainDir>/cache/features` lives under this. */
  trainDir: string;
  extractor: FeatureExtractor;
  /** Extra identity of the extractor (layers, input range, weights file…), folded into the key. */
  extractorId?: string;
  loadImage: ImageLoader;
  /** Images per backbone call when computing missing features. */
  batchSize?: number;
  /** Write computed features to disk (default true). */
  persist?: boolean;
  signal?: AbortSignal;
  /** Called after each image: computed is false for a cache hit. */
  onProgress?(done: number, total: number, computed: boolean): void;
}

/** Features of a set of images, one tensor per level [N, h, w, c] (kept until dispose()). */
export interface FeatureSet {
  paths: string[];
  levels: tf.Tensor4D[];
  /** How many images had to be run through the backbone. */
  computed: number;
  dispose(): void;
}

export function hashFile(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function cacheKey(extractor: FeatureExtractor, extractorId = ''): string {
  // A square size stays one number, so caches made before [h, w] sizes keep their keys.
  const size = sizeForConfig(extractor.inputSize);
  const id = JSON.stringify({ v: CACHE_VERSION, name: extractor.name, size, ch: extractor.channels, sf: extractor.scaleFactors, extra: extractorId });
  const short = createHash('sha256').update(id).digest('hex').slice(0, 16);
  const readable = extractor.name.replace(/^.*[/\\]/, '').replace(/[^A-Za-z0-9_.-]+/g, '_').slice(0, 40);
  return `${readable}-${typeof size === 'number' ? size : size.join('x')}-${short}`;
}

export function cacheDir(trainDir: string, extractor: FeatureExtractor, extractorId = ''): string {
  return join(trainDir, 'cache', 'features', cacheKey(extractor, extractorId));
}

function readCached(file: string, extractor: FeatureExtractor): Float32Array[] | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const { tensors } = readSafetensors(file);
    const out: Float32Array[] = [];
    for (let i = 0; i < extractor.channels.length; i++) {
      const t = tensors.get(`level${i}`);
      const [h, w] = extractor.featureSizes[i]!;
      if (!t || t.shape.length !== 3 || t.shape[0] !== h || t.shape[1] !== w || t.shape[2] !== extractor.channels[i]) return undefined;
      out.push(toFloat32(t));
    }
    return out;
  } catch {
    return undefined; // a damaged cache entry is recomputed
  }
}

/**
 * Loads (or computes and caches) the features of `paths`, in order. Resolves with one tensor per
 * level holding all images.
 */
export async function loadFeatures(paths: readonly string[], opts: FeatureCacheOptions): Promise<FeatureSet> {
  const { extractor } = opts;
  const dir = cacheDir(opts.trainDir, extractor, opts.extractorId);
  const L = extractor.channels.length;
  const sizes = extractor.featureSizes;
  const per: Float32Array[][] = new Array(paths.length);
  const missing: Array<{ i: number; file: string }> = [];
  let done = 0;
  for (let i = 0; i < paths.length; i++) {
    const file = join(dir, `${hashFile(paths[i]!)}.safetensors`);
    const hit = readCached(file, extractor);
    if (hit) {
      per[i] = hit;
      opts.onProgress?.(++done, paths.length, false);
    } else missing.push({ i, file });
  }
  const bs = Math.max(1, opts.batchSize ?? 4);
  for (let k = 0; k < missing.length; k += bs) {
    if (opts.signal?.aborted) throw new DOMException('cancelled', 'AbortError');
    const chunk = missing.slice(k, k + bs);
    const imgs = await Promise.all(chunk.map((m) => opts.loadImage(paths[m.i]!, extractor.inputSize)));
    const batch = tf.stack(imgs) as tf.Tensor4D;
    tf.dispose(imgs);
    const feats = extractor.extract(batch);
    batch.dispose();
    const datas = await Promise.all(feats.map((f) => f.data() as Promise<Float32Array>));
    tf.dispose(feats);
    chunk.forEach((m, j) => {
      const levels = datas.map((d, l) => {
        const n = sizes[l]![0] * sizes[l]![1] * extractor.channels[l]!;
        return d.slice(j * n, (j + 1) * n);
      });
      per[m.i] = levels;
      if (opts.persist !== false) {
        const tensors: Record<string, RawTensor> = {};
        levels.forEach((d, l) => (tensors[`level${l}`] = { dtype: 'F32', shape: [sizes[l]![0], sizes[l]![1], extractor.channels[l]!], data: d }));
        writeSafetensors(m.file, tensors, { backbone: extractor.name, image: paths[m.i]! });
      }
      opts.onProgress?.(++done, paths.length, true);
    });
  }
  const levels: tf.Tensor4D[] = [];
  for (let l = 0; l < L; l++) {
    const n = sizes[l]![0] * sizes[l]![1] * extractor.channels[l]!;
    const all = new Float32Array(n * paths.length);
    per.forEach((p, i) => all.set(p[l]!, i * n));
    levels.push(tf.tensor4d(all, [paths.length, sizes[l]![0], sizes[l]![1], extractor.channels[l]!]));
  }
  return {
    paths: [...paths],
    levels,
    computed: missing.length,
    dispose: () => tf.dispose(levels),
  };
}

/** Rows `idx` of every level, as a batch (the caller disposes). */
export function gatherBatch(set: FeatureSet, idx: readonly number[]): tf.Tensor4D[] {
  return tf.tidy(() => {
    const i = tf.tensor1d(idx as number[], 'int32');
    return set.levels.map((l) => tf.gather(l, i) as tf.Tensor4D);
  });
}
