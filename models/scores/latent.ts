/**
 * A latent z_s as the engine hands it over: NHWC float32, shape [B, H, W, C]. The NFA code reads
 * these typed arrays directly (no tfjs), so it runs the same on every backend.
 */
export interface Latent {
  data: Float32Array;
  shape: [number, number, number, number];
}

/** Checks the shape against the data length and returns [B, H, W, C]. */
export function latentDims(z: Latent, what = 'latent'): [number, number, number, number] {
  const [b, h, w, c] = z.shape;
  if (z.shape.length !== 4 || ![b, h, w, c].every((v) => Number.isInteger(v) && v > 0)) {
    throw new RangeError(`${what}: shape must be [B, H, W, C] with positive integers, got [${z.shape.join(', ')}]`);
  }
  if (z.data.length !== b * h * w * c) {
    throw new RangeError(`${what}: ${z.data.length} values for shape [${z.shape.join(', ')}] (expected ${b * h * w * c})`);
  }
  return [b, h, w, c];
}

/** Detection rule shared by both NFA variants: a pixel is anomalous when −log10 NFA > 0. */
export function nfaDetections(score: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(score.length);
  for (let i = 0; i < score.length; i++) out[i] = score[i]! > 0 ? 1 : 0;
  return out;
}
