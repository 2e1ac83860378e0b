/**
 * State-dict helpers shared by the backbones: where the weights come from (a TensorMap already in
 * memory or a local safetensors file), which prefix a backbone's keys carry inside a larger
 * checkpoint (`feature_extractor.extractor.`, `model.feature_extractor.extractor1.`, …), and float32
 * values with clear errors for missing or unusable tensors.
 */
import { readSafetensors, toFloat32, type RawTensor, type TensorMap } from '../io/safetensors.js';

export type WeightsSource = TensorMap | string;

export function loadWeights(src: WeightsSource): TensorMap {
  return typeof src === 'string' ? readSafetensors(src).tensors : src;
}

/**
 * Prefixes under which `anchor` (a key every such model has, e.g. `conv1.weight`) appears, i.e. the
 * `p` such that `p + anchor` is a key and `p` is empty or ends with '.'. Sorted shortest first.
 */
export function prefixesOf(map: TensorMap, anchor: string): string[] {
  const out: string[] = [];
  for (const k of map.keys()) {
    if (k === anchor) out.push('');
    else if (k.endsWith(`.${anchor}`)) out.push(k.slice(0, k.length - anchor.length));
  }
  return out.sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
}

/** The keys under `prefix`, with the prefix removed. */
export function subMap(map: TensorMap, prefix: string): TensorMap {
  if (!prefix) return map;
  const out: TensorMap = new Map();
  for (const [k, v] of map) if (k.startsWith(prefix)) out.set(k.slice(prefix.length), v);
  return out;
}

/**
 * Picks the backbone's own keys out of `map`: the shortest prefix before `anchor` (a nested
 * module's key like `layer1.0.conv1.weight` also ends with `conv1.weight`, but under a longer prefix).
 */
export function selectModel(map: TensorMap, anchor: string, what: string): TensorMap {
  const prefixes = prefixesOf(map, anchor);
  if (prefixes.length === 0) {
    throw new Error(`${what}: the weights have no '${anchor}' (under any prefix): this is not a ${what} state dict`);
  }
  const shortest = prefixes.filter((p) => p.length === prefixes[0]!.length);
  if (shortest.length > 1) {
    throw new Error(`${what}: the weights hold several models (${shortest.map((p) => `'${p}'`).join(', ')}); pass the state dict of one`);
  }
  return subMap(map, prefixes[0]!);
}

/** A float32 copy-free view of a tensor's values, with a clear error when it is missing or quantised. */
export function getF32(map: TensorMap, key: string, what: string): { data: Float32Array; shape: number[] } {
  const t: RawTensor | undefined = map.get(key);
  if (!t) throw new Error(`${what}: weight '${key}' is missing from the state dict`);
  if (t.dtype === 'I8' || t.dtype === 'U8' || t.dtype === 'I64' || t.dtype === 'I32' || t.dtype === 'BOOL') {
    throw new Error(`${what}: weight '${key}' is stored as ${t.dtype}; float weights (F32, F16, BF16, F64) are needed`);
  }
  return { data: toFloat32(t), shape: t.shape };
}

export function expectShape(shape: readonly number[], expected: readonly number[], key: string, what: string): void {
  if (shape.length !== expected.length || shape.some((d, i) => d !== expected[i])) {
    throw new Error(`${what}: weight '${key}' has shape [${shape.join(', ')}], expected [${expected.join(', ')}]`);
  }
}
