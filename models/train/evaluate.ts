/**
 * Evaluation core (official src/evaluate.py + the training-time validation of src/train.py), on
 * cached backbone features:
 *
 * - maps at the target size T = [Th, Tw] (256×256 as the official evaluation for a square input;
 *   see `evaluationSize` for other shapes): the likelihood anomaly map 1 − P
 *   (spec/uflow.md §6) and −log10 NFA (tree variant by default, as evaluate.py; `block-hp`: the
 *   block variant with the high-precision tail, what the original `-hp` flag switched on);
 * - metrics: image AUROC (max of the anomaly map), pixel AUROC, AUPRO (FPR ≤ 0.3) on the anomaly
 *   map, mIoU of the NFA detection (−log NFA > 0, i.e. log NFA < 0) against the masks, per
 *   category and per defect type (each defect type together with the good images).
 *
 * Masks are the ground truth resized to T (see images.ts `loadMask`, > 0.5); good images have empty masks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { anomalyMap } from '../scores/anomaly-map.js';
import { negLogNfaTree, TreeNfaWorkspace } from '../scores/nfa-tree.js';
import { negLogNfaBlock } from '../scores/nfa-block.js';
import { negLogNfaCalibrated, type NullFit } from '../scores/nfa-calibrated.js';
import type { Latent } from '../scores/latent.js';
import { aupro, downsampleCurve, iouFloat32, rocAuc, rocCurve } from '../metrics/index.js';
import { toHW, type HW, type SizeInput } from '../size.js';
import type { Size } from '../scores/anomaly-map.js';

/** The −log NFA map computed: the paper's variants, the calibrated one (needs a fit), or none. */
export type NfaMode = 'tree' | 'block' | 'block-hp' | 'calibrated' | 'none';

export interface FlowModel {
  fromFeatures(features: readonly tf.Tensor4D[]): { z: tf.Tensor4D[]; logdet: tf.Tensor1D };
  /** The model's own anomaly map (FastFlow: −P); default U-Flow's 1 − P. Higher = more anomalous. */
  anomalyMap?(z: readonly tf.Tensor4D[], size: Size): tf.Tensor4D;
}

/** A model's anomaly-map function (U-Flow's 1 − P when it has none). */
export type AnomalyMapFn = (z: readonly tf.Tensor4D[], size: Size) => tf.Tensor4D;

export interface MapOptions {
  /** One integer (square) or [Th, Tw]; default 256. */
  targetSize?: SizeInput;
  batchSize?: number;
  nfa?: NfaMode;
  /** The null fitted on held-out normal images (nfa 'calibrated'). */
  calibration?: NullFit;
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void;
}

/** Per-image maps at Th×Tw (row-major) and their maxima. */
export interface MapSet {
  /** [Th, Tw]. */
  targetSize: HW;
  anomaly: Float32Array[];
  /** −log10 NFA (absent with nfa 'none'). */
  negLogNfa?: Float32Array[];
  /** Image score: max of the anomaly map. */
  scores: number[];
  /** max −log10 NFA per image (NaN without NFA). */
  maxNegLogNfa: number[];
}

function max(a: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < a.length; i++) if (a[i]! > m) m = a[i]!;
  return m;
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}

/** Latents of one batch as NHWC typed arrays (what the NFA code reads). */
async function latents(z: readonly tf.Tensor4D[]): Promise<Latent[]> {
  return Promise.all(z.map(async (t) => ({ data: (await t.data()) as Float32Array, shape: [...t.shape] as [number, number, number, number] })));
}

/** −log10 NFA of a batch of latents ([B·Th·Tw]) with the given variant. */
export function negLogNfaOf(lat: Latent[], T: SizeInput, nfa: Exclude<NfaMode, 'none'>, opts: { ws?: TreeNfaWorkspace; calibration?: NullFit } = {}): Float32Array {
  switch (nfa) {
    case 'tree':
      return negLogNfaTree(lat, T, opts.ws);
    case 'block':
      return Float32Array.from(negLogNfaBlock(lat, { targetSize: T }));
    case 'block-hp':
      return Float32Array.from(negLogNfaBlock(lat, { targetSize: T, highPrecision: true }));
    case 'calibrated':
      if (!opts.calibration) throw new RangeError('calibrated NFA: no calibration fit given');
      return negLogNfaCalibrated(opts.calibration, lat, T);
  }
}

/** Maps of one batch of latents. */
export async function mapsOfLatents(
  z: readonly tf.Tensor4D[],
  T: SizeInput,
  nfa: NfaMode,
  ws?: TreeNfaWorkspace,
  mapFn: AnomalyMapFn = anomalyMap,
  calibration?: NullFit,
): Promise<{ anomaly: Float32Array[]; negLogNfa?: Float32Array[] }> {
  const B = z[0]!.shape[0];
  const [Th, Tw] = toHW(T, 'map size');
  const am = mapFn(z, [Th, Tw]);
  const amData = (await am.data()) as Float32Array;
  am.dispose();
  const TT = Th * Tw;
  const anomaly = Array.from({ length: B }, (_, b) => amData.slice(b * TT, (b + 1) * TT));
  if (nfa === 'none') return { anomaly };
  const lat = await latents(z);
  const all = negLogNfaOf(lat, [Th, Tw], nfa, { ws, calibration });
  const negLogNfa = Array.from({ length: B }, (_, b) => all.slice(b * TT, (b + 1) * TT));
  return { anomaly, negLogNfa };
}

/** Runs the flow on every image's cached features (levels [N,h,w,c]) and computes its maps. */
export async function computeMaps(model: FlowModel, levels: readonly tf.Tensor4D[], opts: MapOptions = {}): Promise<MapSet> {
  const T = toHW(opts.targetSize ?? 256, 'map size');
  const bs = Math.max(1, opts.batchSize ?? 8);
  const nfa = opts.nfa ?? 'tree';
  const N = levels[0]!.shape[0];
  const out: MapSet = { targetSize: T, anomaly: [], negLogNfa: nfa === 'none' ? undefined : [], scores: [], maxNegLogNfa: [] };
  const ws = new TreeNfaWorkspace();
  for (let i = 0; i < N; i += bs) {
    await yieldToEventLoop();
    if (opts.signal?.aborted) throw new DOMException('cancelled', 'AbortError');
    const n = Math.min(bs, N - i);
    const z = tf.tidy(() => {
      const feats = levels.map((l) => tf.slice(l, [i, 0, 0, 0], [n, -1, -1, -1]) as tf.Tensor4D);
      const r = model.fromFeatures(feats);
      return r.z;
    });
    try {
      const m = await mapsOfLatents(z, T, nfa, ws, model.anomalyMap ? (zz, s) => model.anomalyMap!(zz, s) : anomalyMap, opts.calibration);
      for (let b = 0; b < n; b++) {
        out.anomaly.push(m.anomaly[b]!);
        out.scores.push(max(m.anomaly[b]!));
        if (m.negLogNfa) {
          out.negLogNfa!.push(m.negLogNfa[b]!);
          out.maxNegLogNfa.push(max(m.negLogNfa[b]!));
        } else out.maxNegLogNfa.push(NaN);
      }
    } finally {
      tf.dispose(z);
    }
    opts.onProgress?.(i + n, N);
  }
  return out;
}

/** The flow's latents of every image (per level, one Latent per batch), e.g. for calibration. */
export async function latentsOf(model: FlowModel, levels: readonly tf.Tensor4D[], batchSize = 8, signal?: AbortSignal): Promise<Latent[][]> {
  const N = levels[0]!.shape[0];
  const out: Latent[][] = [];
  for (let i = 0; i < N; i += batchSize) {
    await yieldToEventLoop();
    if (signal?.aborted) throw new DOMException('cancelled', 'AbortError');
    const n = Math.min(batchSize, N - i);
    const z = tf.tidy(() => model.fromFeatures(levels.map((l) => tf.slice(l, [i, 0, 0, 0], [n, -1, -1, -1]) as tf.Tensor4D)).z);
    try {
      const lat = await latents(z);
      lat.forEach((l, s) => (out[s] ??= []).push(l));
    } finally {
      tf.dispose(z);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Metrics

export interface EvalItem {
  path: string;
  /** 'good' or the defect type. */
  defect: string;
  label: 0 | 1;
  maskPath?: string;
}

/** Same shape as the protocol's MetricSet (models/ does not import server/). */
export interface Metrics {
  image_auroc: number | null;
  pixel_auroc: number | null;
  aupro: number | null;
  miou: number | null;
  images: number;
}

export interface MetricsResult {
  overall: Metrics;
  perDefect: Record<string, Metrics>;
  curves: { roc: Array<{ x: number; y: number }>; pro: Array<{ x: number; y: number }>; pixelRoc: Array<{ x: number; y: number }> };
  /** Per image: IoU of the NFA detection with the mask (1 for an empty prediction on an empty mask), detected pixels. */
  perImage: Array<{ iou: number; detectedPixels: number }>;
}

/** IoU of (−log NFA > thr) with the mask, as the official miou.py per image: (I + ε)/(U + ε) in float32. */
export function imageIou(negLogNfa: ArrayLike<number>, mask: ArrayLike<number>, thr = 0): { iou: number; detected: number } {
  let inter = 0;
  let union = 0;
  let detected = 0;
  for (let i = 0; i < mask.length; i++) {
    const p = negLogNfa[i]! > thr;
    const t = mask[i]! !== 0;
    if (p) detected++;
    if (p && t) inter++;
    if (p || t) union++;
  }
  return { iou: iouFloat32(inter, union), detected };
}

function concat(parts: readonly Float32Array[] | readonly Uint8Array[], idx: readonly number[]): Float32Array | Uint8Array {
  const n = parts[0]?.length ?? 0;
  const out = parts[0] instanceof Uint8Array ? new Uint8Array(n * idx.length) : new Float32Array(n * idx.length);
  idx.forEach((k, j) => out.set(parts[k]!, j * n));
  return out;
}

function hasBoth(labels: ArrayLike<number>): boolean {
  let pos = false;
  let neg = false;
  for (let i = 0; i < labels.length && !(pos && neg); i++) {
    if (labels[i]) pos = true;
    else neg = true;
  }
  return pos && neg;
}

function points(x: ArrayLike<number>, y: ArrayLike<number>): Array<{ x: number; y: number }> {
  return Array.from({ length: x.length }, (_, i) => ({ x: x[i]!, y: y[i]! }));
}

export interface MetricOptions {
  /** ROC / PRO curve points (evaluation; not needed for validation). */
  curves?: boolean;
  /** Metrics per defect type (each with the good images). */
  perDefect?: boolean;
}

/** The maps each metric is computed from (they may come from different checkpoints). */
export interface MetricMaps {
  /** image AUROC (its `scores`) */
  image: MapSet;
  /** pixel AUROC */
  pixel: MapSet;
  /** AUPRO */
  pro: MapSet;
  /** mIoU (needs `negLogNfa`) */
  nfa: MapSet;
}

/** One map set for every metric. */
export function sameMaps(maps: MapSet): MetricMaps {
  return { image: maps, pixel: maps, pro: maps, nfa: maps };
}

/**
 * Metrics of a set of images. As the official evaluation, each metric may use the checkpoint
 * selected on it during training (`maps`).
 */
export function computeMetricSet(items: readonly EvalItem[], masks: readonly Uint8Array[], maps: MetricMaps, opts: MetricOptions = {}): MetricsResult {
  const { image, pixel, pro, nfa } = maps;
  const T = pixel.targetSize;
  const perImage = items.map((_, i) => {
    const m = nfa.negLogNfa?.[i];
    if (!m) return { iou: NaN, detectedPixels: 0 };
    const r = imageIou(m, masks[i]!);
    return { iou: r.iou, detectedPixels: r.detected };
  });
  const subset = (idx: number[], curves: boolean) => {
    const labels = idx.map((i) => items[i]!.label);
    const scores = idx.map((i) => image.scores[i]!);
    const pixMask = concat(masks, idx) as Uint8Array;
    const m: Metrics = { image_auroc: null, pixel_auroc: null, aupro: null, miou: null, images: idx.length };
    const c: MetricsResult['curves'] = { roc: [], pro: [], pixelRoc: [] };
    if (hasBoth(labels)) {
      if (curves) {
        const r = rocCurve(scores, labels);
        m.image_auroc = r.auc;
        c.roc = points(r.fpr, r.tpr);
      } else m.image_auroc = rocAuc(scores, labels);
    }
    if (hasBoth(pixMask)) {
      const pix = concat(pixel.anomaly, idx) as Float32Array;
      if (curves) {
        const r = rocCurve(pix, pixMask);
        m.pixel_auroc = r.auc;
        c.pixelRoc = points(r.fpr, r.tpr);
      } else m.pixel_auroc = rocAuc(pix, pixMask);
      const pr = aupro(concat(pro.anomaly, idx) as Float32Array, pixMask, idx.length, T[0], T[1]);
      m.aupro = Number.isFinite(pr.aupro) ? pr.aupro : null;
      if (curves) {
        const d = downsampleCurve(pr.fpr, pr.pro);
        c.pro = points(d.x, d.y);
      }
    }
    if (nfa.negLogNfa) {
      let s = 0;
      for (const i of idx) s += perImage[i]!.iou;
      m.miou = idx.length ? Math.fround(s / idx.length) : null;
    }
    return { m, c };
  };
  const all = items.map((_, i) => i);
  const overall = subset(all, Boolean(opts.curves));
  const perDefect: Record<string, Metrics> = {};
  if (opts.perDefect) {
    const good = all.filter((i) => items[i]!.label === 0);
    const defects = [...new Set(items.filter((it) => it.label === 1).map((it) => it.defect))].sort();
    for (const d of defects) perDefect[d] = subset([...good, ...all.filter((i) => items[i]!.defect === d)], false).m;
  }
  return { overall: overall.m, perDefect, curves: overall.c, perImage };
}
