/**
 * PyTorch `F.interpolate` resampling of single-channel planes, in float64 on plain typed arrays
 * (no tfjs): the NFA maps are float64 (block) or need no engine round trip (tree).
 *
 * - `bicubicAlignCorners`: mode 'bicubic', align_corners=True. Source coordinate
 *   `s = dst · (in − 1)/(out − 1)` (0 when out = 1), cubic convolution with A = −0.75 on the four
 *   taps floor(s)−1 … floor(s)+2, indices clamped to the border. Separable (rows first, then
 *   columns): the same products and sums PyTorch's CPU kernel forms per output pixel.
 * - `bilinearHalfPixel`: mode 'bilinear', align_corners=False. `s = (dst + 0.5) · in/out − 0.5`,
 *   clamped at 0; the right/bottom neighbour is clamped to the last index.
 *
 * Planes are row-major `[planes, h, w]`; the output is `[planes, oh, ow]`.
 */

const A = -0.75;

function cubic1(x: number): number {
  return ((A + 2) * x - (A + 3)) * x * x + 1;
}
function cubic2(x: number): number {
  return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
}

interface Taps {
  idx: Int32Array; // 4 per output
  wt: Float64Array; // 4 per output
}

function cubicTaps(inSize: number, outSize: number): Taps {
  const scale = outSize > 1 ? (inSize - 1) / (outSize - 1) : 0;
  const idx = new Int32Array(outSize * 4);
  const wt = new Float64Array(outSize * 4);
  const last = inSize - 1;
  for (let o = 0; o < outSize; o++) {
    const real = scale * o;
    const i0 = Math.floor(real);
    const t = real - i0;
    wt[o * 4] = cubic2(t + 1);
    wt[o * 4 + 1] = cubic1(t);
    wt[o * 4 + 2] = cubic1(1 - t);
    wt[o * 4 + 3] = cubic2(2 - t);
    for (let k = 0; k < 4; k++) idx[o * 4 + k] = Math.min(Math.max(i0 - 1 + k, 0), last);
  }
  return { idx, wt };
}

/** Bicubic (A = −0.75), align_corners=True, float64. `src` holds `planes` planes of h×w. */
export function bicubicAlignCorners(src: ArrayLike<number>, planes: number, h: number, w: number, oh: number, ow: number): Float64Array {
  const tx = cubicTaps(w, ow);
  const ty = cubicTaps(h, oh);
  const rows = new Float64Array(h * ow);
  const out = new Float64Array(planes * oh * ow);
  for (let p = 0; p < planes; p++) {
    const base = p * h * w;
    for (let y = 0; y < h; y++) {
      const r = base + y * w;
      for (let x = 0; x < ow; x++) {
        const k = x * 4;
        rows[y * ow + x] =
          src[r + tx.idx[k]!]! * tx.wt[k]! +
          src[r + tx.idx[k + 1]!]! * tx.wt[k + 1]! +
          src[r + tx.idx[k + 2]!]! * tx.wt[k + 2]! +
          src[r + tx.idx[k + 3]!]! * tx.wt[k + 3]!;
      }
    }
    const ob = p * oh * ow;
    for (let y = 0; y < oh; y++) {
      const k = y * 4;
      const r0 = ty.idx[k]! * ow;
      const r1 = ty.idx[k + 1]! * ow;
      const r2 = ty.idx[k + 2]! * ow;
      const r3 = ty.idx[k + 3]! * ow;
      const w0 = ty.wt[k]!;
      const w1 = ty.wt[k + 1]!;
      const w2 = ty.wt[k + 2]!;
      const w3 = ty.wt[k + 3]!;
      const o = ob + y * ow;
      for (let x = 0; x < ow; x++) out[o + x] = rows[r0 + x]! * w0 + rows[r1 + x]! * w1 + rows[r2 + x]! * w2 + rows[r3 + x]! * w3;
    }
  }
  return out;
}

interface LinTaps {
  i0: Int32Array;
  i1: Int32Array;
  l0: Float64Array;
  l1: Float64Array;
}

function linearTaps(inSize: number, outSize: number): LinTaps {
  const scale = inSize / outSize;
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const l0 = new Float64Array(outSize);
  const l1 = new Float64Array(outSize);
  for (let o = 0; o < outSize; o++) {
    let real = scale * (o + 0.5) - 0.5;
    if (real < 0) real = 0;
    const a = Math.floor(real);
    const lam = real - a;
    i0[o] = a;
    i1[o] = a < inSize - 1 ? a + 1 : a;
    l1[o] = lam;
    l0[o] = 1 - lam;
  }
  return { i0, i1, l0, l1 };
}

/** Bilinear, align_corners=False, float64. `src` holds `planes` planes of h×w. */
export function bilinearHalfPixel(src: ArrayLike<number>, planes: number, h: number, w: number, oh: number, ow: number): Float64Array {
  const tx = linearTaps(w, ow);
  const ty = linearTaps(h, oh);
  const rows = new Float64Array(h * ow);
  const out = new Float64Array(planes * oh * ow);
  for (let p = 0; p < planes; p++) {
    const base = p * h * w;
    for (let y = 0; y < h; y++) {
      const r = base + y * w;
      for (let x = 0; x < ow; x++) rows[y * ow + x] = tx.l0[x]! * src[r + tx.i0[x]!]! + tx.l1[x]! * src[r + tx.i1[x]!]!;
    }
    const ob = p * oh * ow;
    for (let y = 0; y < oh; y++) {
      const r0 = ty.i0[y]! * ow;
      const r1 = ty.i1[y]! * ow;
      const a = ty.l0[y]!;
      const b = ty.l1[y]!;
      const o = ob + y * ow;
      for (let x = 0; x < ow; x++) out[o + x] = a * rows[r0 + x]! + b * rows[r1 + x]!;
    }
  }
  return out;
}
