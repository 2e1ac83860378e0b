/** Numeric comparison with numpy's allclose semantics, reporting the worst element. */
import assert from 'node:assert/strict';

export interface CloseOpts {
  rtol?: number;
  atol?: number;
  what?: string;
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, opts: CloseOpts = {}): void {
  const { rtol = 1e-5, atol = 1e-8, what = 'values' } = opts;
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} vs expected ${expected.length}`);
  let worst = -1;
  let worstExcess = 0;
  let bad = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= 0)) {
      bad++;
      if (worst < 0 || excess > worstExcess || Number.isNaN(excess)) {
        worst = i;
        worstExcess = excess;
      }
    }
  }
  if (bad > 0) {
    assert.fail(
      `${what}: ${bad}/${expected.length} elements differ beyond rtol ${rtol}, atol ${atol}; worst at [${worst}]: ${actual[worst]} vs expected ${expected[worst]}`,
    );
  }
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
