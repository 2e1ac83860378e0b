/**
 * Shared plumbing for flow modules' state: PyTorch-named tensors (NCHW / OIHW) in and out, and a
 * loader that checks every key and shape first and reports all problems in one error.
 */
import * as tf from '@tensorflow/tfjs-core';
import { TensorFileError, toFloat32, type RawTensor, type TensorMap } from '../io/safetensors.js';
export { f32 } from '../io/safetensors.js';

export interface StateSpec {
  /** Name relative to the owner (e.g. 'subnet.0.weight'). */
  name: string;
  shape: number[];
}

/** A module with PyTorch-named state. */
export interface Stateful {
  /** The keys and shapes this module expects in a state dict (relative names). */
  stateSpec(): StateSpec[];
  /** The state in PyTorch layout, in PyTorch's state_dict order (relative names). */
  state(): Array<[string, RawTensor]>;
  /** Loads from already-validated tensors (relative names). `source` names the file for errors. */
  loadState(get: (name: string) => RawTensor, source: string): void;
}

/** A tensor's values as a fresh Float32Array (synchronous read). */
export function readF32(t: tf.Tensor): Float32Array {
  return Float32Array.from(t.dataSync() as Float32Array);
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Checks `map` against the expected keys (prefix + spec name) and returns a getter. Throws one
 * TensorFileError naming `source` that lists every missing key, unexpected key and wrong shape.
 * `ignore(key)` keys are neither expected nor unexpected.
 */
export function validateState(
  map: TensorMap,
  expected: Array<{ key: string; shape: number[] }>,
  source: string,
  ignore: (key: string) => boolean = () => false,
): (key: string) => RawTensor {
  const want = new Map(expected.map((e) => [e.key, e.shape]));
  const missing: string[] = [];
  const wrong: string[] = [];
  const badType: string[] = [];
  for (const [key, shape] of want) {
    const t = map.get(key);
    if (!t) missing.push(key);
    else if (!sameShape(t.shape, shape)) wrong.push(`${key}: expected ${fmt(shape)}, got ${fmt(t.shape)}`);
    else if (t.dtype === 'BOOL' || t.dtype === 'U8' || t.dtype === 'I8') badType.push(`${key}: dtype ${t.dtype} (a float type is needed)`);
  }
  const unexpected = [...map.keys()].filter((k) => !want.has(k) && !ignore(k));
  if (missing.length || wrong.length || unexpected.length || badType.length) {
    const parts: string[] = [];
    if (missing.length) parts.push(`${missing.length} missing key(s): ${missing.join(', ')}`);
    if (unexpected.length) parts.push(`${unexpected.length} unexpected key(s): ${unexpected.join(', ')}`);
    if (wrong.length) parts.push(`${wrong.length} wrong shape(s): ${wrong.join('; ')}`);
    if (badType.length) parts.push(`${badType.length} unusable dtype(s): ${badType.join('; ')}`);
    throw new TensorFileError(
      source,
      `the weights do not fit this model (is it a checkpoint of the same model, backbone and flow_steps?). ${parts.join('. ')}`,
    );
  }
  return (key: string) => map.get(key)!;
}

/** Float32 values of a stored tensor (F16/F64 converted). */
export function values(t: RawTensor): Float32Array {
  return toFloat32(t);
}

/** A trainable variable that takes over `t`'s data (the temporary tensor is released). */
export function owned<R extends tf.Rank>(t: tf.Tensor<R>): tf.Variable<R> {
  const v = tf.variable(t, true);
  t.dispose();
  return v;
}
