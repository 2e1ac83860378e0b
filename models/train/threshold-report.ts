/**
 * The evidence behind the automatic threshold (log NFA = 0), from the −log NFA maps of an
 * evaluation: false alarms on the good test images, the mIoU at the automatic threshold beside the
 * best threshold in hindsight (the oracle, labels used), per category and per defect type, a
 * curve of both over thresholds for the Results view's threshold control, and every image's
 * detected regions.
 */
import { iouFloat32 } from '../metrics/miou.js';
import { label8 } from '../metrics/components.js';
import { falseAlarmStats, ORACLE_THRESHOLDS, type FalseAlarmStats } from '../metrics/false-alarms.js';
import type { EvalItem } from './evaluate.js';
import { toHW, type SizeInput } from '../size.js';

export interface DetectedRegion {
  /** Bounding box at the map size: x, y, width, height. */
  box: [number, number, number, number];
  area: number;
  /** The region's strongest −log10 NFA. */
  maxNegLogNfa: number;
}

export interface OracleMiou {
  miou: number;
  threshold: number;
  /**
   * No pixel of any image is detected at the oracle's threshold: "detect nothing" is the best this
   * model's maps allow (its mIoU is then the good images' share). Said so where the oracle is shown,
   * since "best at −log NFA > −400" would read as a threshold worth trying.
   */
  detectsNothing: boolean;
}

export interface ThresholdSummary {
  /** The automatic threshold on −log10 NFA (0 ⇔ log NFA < 0). */
  automatic: number;
  falseAlarms: { testGood: FalseAlarmStats };
  miou: { automatic: number | null; oracle: OracleMiou | null };
  perDefect: Record<string, { automatic: number; oracle: OracleMiou }>;
  /** mIoU, false alarms per good image and good-pixel fraction over thresholds (Results view). */
  curve: { thresholds: number[]; miou: number[]; falseAlarms: number[]; goodPixelFraction: number[] };
}

/** The detected regions of one map (8-connected components of −log NFA > thr), largest first. */
export function regionsOf(negLogNfa: ArrayLike<number>, h: number, w: number, thr = 0, max = 50): DetectedRegion[] {
  const det = new Uint8Array(h * w);
  for (let i = 0; i < det.length; i++) det[i] = negLogNfa[i]! > thr ? 1 : 0;
  const c = label8(det, 1, h, w);
  if (!c.count) return [];
  const x0 = new Int32Array(c.count + 1).fill(w);
  const y0 = new Int32Array(c.count + 1).fill(h);
  const x1 = new Int32Array(c.count + 1).fill(-1);
  const y1 = new Int32Array(c.count + 1).fill(-1);
  const peak = new Float64Array(c.count + 1).fill(-Infinity);
  for (let p = 0; p < h * w; p++) {
    const l = c.labels[p]!;
    if (!l) continue;
    const y = (p / w) | 0;
    const x = p - y * w;
    if (x < x0[l]!) x0[l] = x;
    if (x > x1[l]!) x1[l] = x;
    if (y < y0[l]!) y0[l] = y;
    if (y > y1[l]!) y1[l] = y;
    if (negLogNfa[p]! > peak[l]!) peak[l] = negLogNfa[p]!;
  }
  const out: DetectedRegion[] = [];
  for (let l = 1; l <= c.count; l++) out.push({ box: [x0[l]!, y0[l]!, x1[l]! - x0[l]! + 1, y1[l]! - y0[l]! + 1], area: c.sizes[l]!, maxNegLogNfa: peak[l]! });
  out.sort((a, b) => b.area - a.area || b.maxNegLogNfa - a.maxNegLogNfa);
  return out.slice(0, max);
}

/** Per-image IoU at each threshold (official per-image (I + ε)/(U + ε)) and detected pixels. */
function perImageCurves(map: ArrayLike<number>, mask: ArrayLike<number>, n: number, thresholds: readonly number[]): { iou: Float64Array; detected: Float64Array } {
  const all = new Float64Array(n);
  let maskCount = 0;
  for (let p = 0; p < n; p++) {
    all[p] = map[p]!;
    if (mask[p] !== 0) maskCount++;
  }
  const inMask = new Float64Array(maskCount);
  for (let p = 0, j = 0; p < n; p++) if (mask[p] !== 0) inMask[j++] = map[p]!;
  all.sort();
  inMask.sort();
  const above = (arr: Float64Array, t: number) => {
    let lo = 0;
    let hi = arr.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (arr[mid]! > t) hi = mid;
      else lo = mid + 1;
    }
    return arr.length - lo;
  };
  const iou = new Float64Array(thresholds.length);
  const detected = new Float64Array(thresholds.length);
  thresholds.forEach((t, k) => {
    const det = above(all, t);
    const inter = above(inMask, t);
    iou[k] = iouFloat32(inter, det + maskCount - inter);
    detected[k] = det;
  });
  return { iou, detected };
}

/** Thresholds at which regions on the good images are counted for the curve (a coarse grid near 0). */
export const CURVE_THRESHOLDS = [-20, -10, -5, -3, -2, -1, -0.5, 0, 0.5, 1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 1000];

export function thresholdSummary(items: readonly EvalItem[], masks: readonly Uint8Array[], maps: readonly Float32Array[], size: SizeInput, automatic = 0): ThresholdSummary {
  const [Th, Tw] = toHW(size, 'map size');
  const n = Th * Tw;
  const thresholds = [...new Set([...ORACLE_THRESHOLDS, ...CURVE_THRESHOLDS, automatic])].sort((a, b) => a - b);
  const curves = maps.map((m, i) => perImageCurves(m, masks[i]!, n, thresholds));
  const ka = thresholds.indexOf(automatic);
  const mean = (idx: number[], k: number) => idx.reduce((a, i) => a + curves[i]!.iou[k]!, 0) / idx.length;
  const oracleOf = (idx: number[]): OracleMiou => {
    let best = { miou: -Infinity, threshold: automatic, k: ka };
    for (let k = 0; k < thresholds.length; k++) {
      if (!ORACLE_THRESHOLDS.includes(thresholds[k]!) && thresholds[k] !== automatic) continue;
      const v = Math.fround(mean(idx, k));
      if (v > best.miou) best = { miou: v, threshold: thresholds[k]!, k };
    }
    return { miou: best.miou, threshold: best.threshold, detectsNothing: idx.every((i) => curves[i]!.detected[best.k] === 0) };
  };
  const all = items.map((_, i) => i);
  const good = all.filter((i) => items[i]!.label === 0);
  const goodMaps = good.map((i) => maps[i]!);
  const perDefect: ThresholdSummary['perDefect'] = {};
  for (const d of [...new Set(items.filter((it) => it.label === 1).map((it) => it.defect))].sort()) {
    const idx = [...good, ...all.filter((i) => items[i]!.defect === d)];
    perDefect[d] = { automatic: Math.fround(mean(idx, ka)), oracle: oracleOf(idx) };
  }
  const ck = CURVE_THRESHOLDS.map((t) => thresholds.indexOf(t));
  return {
    automatic,
    falseAlarms: { testGood: falseAlarmStats(goodMaps, Th, Tw, automatic) },
    miou: { automatic: all.length ? Math.fround(mean(all, ka)) : null, oracle: all.length ? oracleOf(all) : null },
    perDefect,
    curve: {
      thresholds: [...CURVE_THRESHOLDS],
      miou: ck.map((k) => (all.length ? Math.fround(mean(all, k)) : 0)),
      falseAlarms: CURVE_THRESHOLDS.map((t) => falseAlarmStats(goodMaps, Th, Tw, t).meanRegions),
      goodPixelFraction: ck.map((k) => (good.length ? good.reduce((a, i) => a + curves[i]!.detected[k]!, 0) / (good.length * n) : 0)),
    },
  };
}
