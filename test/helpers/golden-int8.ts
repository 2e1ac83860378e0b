/**
 * Decoding of the golden format's quantised weights (golden/README.md): an I8 tensor q stands for
 * the float32 weight q · 2^(−k), with k = manifest.int8_weight_exponents[key]. Keys of the exponent
 * table may omit a prefix that the stored names carry (cases 07 and 10 drop
 * `feature_extractor.extractor.`), so a stored name matches a key when it equals it or ends with
 * `.<key>`. This is test-side decoding of the golden files only: models never see I8.
 */
import type { RawTensor, TensorMap } from '../../models/io/safetensors.js';

export function decodeInt8Weights(tensors: TensorMap, exponents: Record<string, number> | undefined): TensorMap {
  const out: TensorMap = new Map();
  const keys = Object.keys(exponents ?? {});
  for (const [name, t] of tensors) {
    if (t.dtype !== 'I8') {
      out.set(name, t);
      continue;
    }
    const key = keys.filter((k) => name === k || name.endsWith(`.${k}`)).sort((a, b) => b.length - a.length)[0];
    if (key === undefined) throw new Error(`golden weights: I8 tensor '${name}' has no entry in int8_weight_exponents`);
    const scale = 2 ** -exponents![key]!;
    const q = t.data as Int8Array;
    const data = new Float32Array(q.length);
    for (let i = 0; i < q.length; i++) data[i] = q[i]! * scale;
    const decoded: RawTensor = { dtype: 'F32', shape: t.shape, data };
    out.set(name, decoded);
  }
  return out;
}
