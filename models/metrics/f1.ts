/**
 * Pixel F1 at a fixed threshold: sklearn `f1_score(mask, map > thr)` (spec/metrics.md, reference
 * only). Positives are the non-zero mask values; pred = score > thr with thr rounded to float32 when
 * the scores are float32 (NumPy compares a float32 array with a Python float in float32). 0 when
 * there is neither a positive nor a prediction (sklearn's zero_division default).
 */
export function pixelF1(scores: ArrayLike<number>, masks: ArrayLike<number>, thr: number): number {
  if (scores.length !== masks.length) throw new RangeError(`pixelF1: ${scores.length} scores but ${masks.length} mask values`);
  const t = scores instanceof Float32Array ? Math.fround(thr) : thr;
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < scores.length; i++) {
    const pred = scores[i]! > t;
    const pos = masks[i] !== 0;
    if (pred && pos) tp++;
    else if (pred) fp++;
    else if (pos) fn++;
  }
  const den = 2 * tp + fp + fn;
  return den === 0 ? 0 : (2 * tp) / den;
}
