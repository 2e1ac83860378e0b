/**
 * ROC / AUROC on large pixel sets (spec/metrics.md): `rocAuc` has sklearn `roc_auc_score`
 * semantics (every distinct score is a threshold; ties are one ROC step, i.e. the trapezoid rule,
 * which equals the Mann–Whitney U statistic with ties counted 1/2). Positives are the non-zero
 * labels. Positives and negatives are copied into two typed arrays, radix-sorted (sort.ts) and
 * merged from the top; no index arrays, no comparator callbacks.
 */
import { sortScores } from './sort.js';

export type Scores = ArrayLike<number>;
export type Labels = ArrayLike<number>;

/** Scores split by label and sorted ascending (typed-array native sort). */
export interface SplitScores {
  pos: Float32Array | Float64Array;
  neg: Float32Array | Float64Array;
}

export function splitSorted(scores: Scores, labels: Labels): SplitScores {
  if (scores.length !== labels.length) throw new RangeError(`ROC: ${scores.length} scores but ${labels.length} labels`);
  let nPos = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] !== 0) nPos++;
  const Arr = scores instanceof Float32Array ? Float32Array : Float64Array;
  let pos = new Arr(nPos);
  let neg = new Arr(scores.length - nPos);
  let ip = 0;
  let ineg = 0;
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i]!;
    if (s !== s) throw new RangeError(`ROC: score ${i} is NaN`);
    if (labels[i] !== 0) pos[ip++] = s;
    else neg[ineg++] = s;
  }
  pos = sortScores(pos);
  neg = sortScores(neg);
  return { pos, neg };
}

/**
 * Visits the ROC steps from the highest threshold down: for each distinct score v, the number of
 * positives and negatives equal to v. Returns nothing; `step` sees cumulative counts before the step.
 */
function walkDistinct(s: SplitScores, step: (v: number, dPos: number, dNeg: number) => void): void {
  const { pos, neg } = s;
  let ip = pos.length - 1;
  let ineg = neg.length - 1;
  while (ip >= 0 || ineg >= 0) {
    const vp = ip >= 0 ? pos[ip]! : -Infinity;
    const vn = ineg >= 0 ? neg[ineg]! : -Infinity;
    const v = vp > vn ? vp : vn;
    let dp = 0;
    let dn = 0;
    while (ip >= 0 && pos[ip] === v) {
      dp++;
      ip--;
    }
    while (ineg >= 0 && neg[ineg] === v) {
      dn++;
      ineg--;
    }
    step(v, dp, dn);
  }
}

/** Area under the ROC curve (sklearn roc_auc_score). NaN when one class is missing. */
export function rocAuc(scores: Scores, labels: Labels): number {
  return rocAucSorted(splitSorted(scores, labels));
}

export function rocAucSorted(s: SplitScores): number {
  const P = s.pos.length;
  const N = s.neg.length;
  if (P === 0 || N === 0) return NaN;
  // Σ over tie groups of dNeg · (tp before + dPos / 2), in exact integer-valued float64 halves.
  let area = 0;
  let tp = 0;
  walkDistinct(s, (_v, dp, dn) => {
    area += dn * (tp + dp / 2);
    tp += dp;
  });
  return area / P / N;
}

export interface RocCurve {
  /** Thresholds, descending; the first is +Infinity (the (0,0) point), as sklearn roc_curve. */
  thresholds: Float64Array;
  fpr: Float64Array;
  tpr: Float64Array;
  auc: number;
}

/**
 * ROC curve points for charts: every distinct threshold (sklearn roc_curve without
 * drop_intermediate), then downsampled to at most `maxPoints` (first and last kept).
 */
export function rocCurve(scores: Scores, labels: Labels, maxPoints = 512): RocCurve {
  const s = splitSorted(scores, labels);
  const P = s.pos.length;
  const N = s.neg.length;
  const th: number[] = [Infinity];
  const fp: number[] = [0];
  const tp: number[] = [0];
  let cp = 0;
  let cn = 0;
  walkDistinct(s, (v, dp, dn) => {
    cp += dp;
    cn += dn;
    th.push(v);
    fp.push(cn);
    tp.push(cp);
  });
  const keep = downsampleIndices(th.length, maxPoints);
  const out: RocCurve = {
    thresholds: new Float64Array(keep.length),
    fpr: new Float64Array(keep.length),
    tpr: new Float64Array(keep.length),
    auc: rocAucSorted(s),
  };
  keep.forEach((k, i) => {
    out.thresholds[i] = th[k]!;
    out.fpr[i] = N > 0 ? fp[k]! / N : NaN;
    out.tpr[i] = P > 0 ? tp[k]! / P : NaN;
  });
  return out;
}

/** At most `maxPoints` indices of 0..length−1, evenly spread, first and last included. */
export function downsampleIndices(length: number, maxPoints = 512): Int32Array {
  if (length <= maxPoints) return Int32Array.from({ length }, (_, i) => i);
  const m = Math.max(2, maxPoints);
  const out = new Int32Array(m);
  for (let i = 0; i < m; i++) out[i] = Math.round((i * (length - 1)) / (m - 1));
  return out;
}

/** A curve (x, y) downsampled to at most `maxPoints` points for charts. */
export function downsampleCurve(x: ArrayLike<number>, y: ArrayLike<number>, maxPoints = 512): { x: Float64Array; y: Float64Array } {
  const idx = downsampleIndices(x.length, maxPoints);
  return { x: Float64Array.from(idx, (i) => x[i]!), y: Float64Array.from(idx, (i) => y[i]!) };
}

/** Per-image score = max over the image's pixels (maps are [n, …] flattened per image). */
export function imageMaxScores(maps: Scores, n: number): Float32Array | Float64Array {
  if (n <= 0 || maps.length % n !== 0) throw new RangeError(`imageMaxScores: ${maps.length} values do not split into ${n} images`);
  const per = maps.length / n;
  const out = maps instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
  for (let b = 0; b < n; b++) {
    let m = -Infinity;
    for (let i = b * per; i < (b + 1) * per; i++) {
      const v = maps[i]!;
      if (v > m || v !== v) m = v;
      if (m !== m) break;
    }
    out[b] = m;
  }
  return out;
}

/** Image AUROC: roc_auc_score(label, max over each map), label non-zero = anomalous. */
export function imageAuroc(maps: Scores, n: number, imageLabels: Labels): number {
  return rocAuc(imageMaxScores(maps, n), imageLabels);
}
