/**
 * mIoU, the official U-Flow `src/miou.py` (spec/metrics.md):
 * - `update(preds, labels)` flattens each image; the label threshold is (max − min)/2 over the
 *   whole batch passed to update, the target is labels > that;
 * - prediction: preds > thr (strict; thresholds are a float32 tensor, so thr is rounded to float32);
 * - per image and threshold I = |pred ∧ target|, U = |pred ∨ target|;
 * - compute(): mean over all images of (I + ε)/(U + ε), ε = 2.220446049250313e-16. PyTorch does
 *   this in float32 (int64 + Python float → float32), so a good image with an empty prediction
 *   scores 1 and any false positive on it scores ≈ 0. We round the same way.
 * Counting is O(pixels · log T + images · T) for T thresholds (a per-image histogram over the
 * sorted thresholds), so the oracle over −400…1000 is as cheap as a single threshold.
 */

const EPS = 2.220446049250313e-16;
const f32 = Math.fround;

/** Float32 IoU as the reference computes it. */
export function iouFloat32(intersection: number, union: number): number {
  return f32(f32(f32(intersection) + f32(EPS)) / f32(f32(union) + f32(EPS)));
}

export class MeanIoU {
  private readonly thr32: Float64Array; // thresholds as float32 values, in the given order
  private readonly order: Int32Array; // sorted (ascending) position → original index
  private readonly sorted: Float64Array;
  /** Per image (rows) and threshold (columns), accumulated over update() calls. */
  readonly intersections: number[][] = [];
  readonly unions: number[][] = [];

  constructor(readonly thresholds: readonly number[]) {
    if (thresholds.length === 0) throw new RangeError('MeanIoU: no thresholds');
    this.thr32 = Float64Array.from(thresholds, (t) => f32(t));
    this.order = Int32Array.from(thresholds.map((_, i) => i)).sort((a, b) => this.thr32[a]! - this.thr32[b]! || a - b);
    this.sorted = Float64Array.from(this.order, (i) => this.thr32[i]!);
  }

  /** One batch: preds and labels are [n, …] flattened per image. */
  update(preds: ArrayLike<number>, labels: ArrayLike<number>, n: number): void {
    if (preds.length !== labels.length) throw new RangeError(`MeanIoU: ${preds.length} preds but ${labels.length} labels`);
    if (n <= 0 || preds.length % n !== 0) throw new RangeError(`MeanIoU: ${preds.length} values do not split into ${n} images`);
    const per = preds.length / n;
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < labels.length; i++) {
      const v = labels[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const labelThr = (hi - lo) / 2;
    const T = this.sorted.length;
    const cntAll = new Int32Array(T + 1);
    const cntTgt = new Int32Array(T + 1);
    const s = this.sorted;
    for (let b = 0; b < n; b++) {
      cntAll.fill(0);
      cntTgt.fill(0);
      let nTarget = 0;
      for (let i = b * per; i < (b + 1) * per; i++) {
        const v = preds[i]!;
        // k = #{sorted thresholds < v}: the prediction is on for sorted indices < k.
        let lo2 = 0;
        let hi2 = T;
        while (lo2 < hi2) {
          const mid = (lo2 + hi2) >> 1;
          if (s[mid]! < v) lo2 = mid + 1;
          else hi2 = mid;
        }
        const k = v === v ? lo2 : 0;
        cntAll[k]!++;
        if (labels[i]! > labelThr) {
          cntTgt[k]!++;
          nTarget++;
        }
      }
      const inter = new Array<number>(T);
      const uni = new Array<number>(T);
      let predCount = 0;
      let interCount = 0;
      for (let j = T - 1; j >= 0; j--) {
        predCount += cntAll[j + 1]!;
        interCount += cntTgt[j + 1]!;
        const orig = this.order[j]!;
        inter[orig] = interCount;
        uni[orig] = predCount + nTarget - interCount;
      }
      this.intersections.push(inter);
      this.unions.push(uni);
    }
  }

  /** Per-image IoU (float32 as the reference), [images][thresholds]. */
  perImage(): number[][] {
    return this.intersections.map((row, b) => row.map((i, t) => iouFloat32(i, this.unions[b]![t]!)));
  }

  /** mIoU per threshold (mean over all images, float32 result). */
  compute(): number[] {
    const T = this.thresholds.length;
    const n = this.intersections.length;
    const out = new Array<number>(T).fill(0);
    if (n === 0) return out.fill(NaN);
    const per = this.perImage();
    for (let t = 0; t < T; t++) {
      let s = 0;
      for (let b = 0; b < n; b++) s += per[b]![t]!;
      out[t] = f32(s / n);
    }
    return out;
  }
}

export interface MiouResult {
  thresholds: number[];
  miou: number[];
  /** [images][thresholds] */
  intersections: number[][];
  unions: number[][];
  iou: number[][];
}

/** mIoU of one batch of n maps at the given thresholds (one update, as evaluate.py does per batch). */
export function miou(preds: ArrayLike<number>, labels: ArrayLike<number>, n: number, thresholds: readonly number[] = [0]): MiouResult {
  const m = new MeanIoU(thresholds);
  m.update(preds, labels, n);
  return { thresholds: [...thresholds], miou: m.compute(), intersections: m.intersections, unions: m.unions, iou: m.perImage() };
}

export interface MiouOracle {
  thresholds: number[];
  miou: number[];
  best: number;
  bestThreshold: number;
  /** mIoU at threshold 0 (log NFA = 0, the paper's number) when 0 is among the thresholds. */
  atZero: number;
}

/** The oracle: max over thresholds from..to (step) of mIoU (official: −400…1000 step 1). */
export function miouOracle(preds: ArrayLike<number>, labels: ArrayLike<number>, n: number, from = -400, to = 1000, step = 1): MiouOracle {
  const thresholds: number[] = [];
  for (let i = 0; from + i * step <= to + 1e-9 * Math.abs(step); i++) thresholds.push(from + i * step);
  const r = miou(preds, labels, n, thresholds);
  let best = -Infinity;
  let bestThreshold = NaN;
  r.miou.forEach((v, i) => {
    if (v > best) {
      best = v;
      bestThreshold = thresholds[i]!;
    }
  });
  const z = thresholds.indexOf(0);
  return { thresholds, miou: r.miou, best, bestThreshold, atZero: z >= 0 ? r.miou[z]! : NaN };
}
