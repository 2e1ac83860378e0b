/**
 * safetensors read / write (https://github.com/huggingface/safetensors format):
 * 8-byte little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {..}}`, then raw
 * little-endian C-order data. Offsets are relative to the first byte after the header.
 *
 * Tensors are kept in PyTorch layout (NCHW / OIHW) exactly as stored; layout changes happen in
 * the modules that consume them (see `layout.ts`).
 */
import { readFileSync } from 'node:fs';
import { atomicWriteFile } from './atomic.js';

export type DType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I8' | 'U8' | 'BOOL';

export type TypedData =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | Int32Array
  | Int8Array
  | Uint8Array
  | Uint16Array;

/** A tensor as stored: dtype, shape and the raw values (F16 / BF16 kept as their uint16 bits). */
export interface RawTensor {
  dtype: DType;
  shape: number[];
  data: TypedData;
}

export type TensorMap = Map<string, RawTensor>;

export interface SafetensorsFile {
  tensors: TensorMap;
  metadata: Record<string, string>;
}

/** An error about a file the user gave us: names the file and what to do. */
export class TensorFileError extends Error {
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'TensorFileError';
  }
}

const BYTES: Record<DType, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  F64: 8,
  I64: 8,
  I32: 4,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export function isDType(s: string): s is DType {
  return Object.prototype.hasOwnProperty.call(BYTES, s);
}

export function bytesPerElement(dtype: DType): number {
  return BYTES[dtype];
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Copies `bytes` (any alignment) into a fresh typed array of `dtype`. */
export function typedFromBytes(dtype: DType, bytes: Uint8Array): TypedData {
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  const buf = copy.buffer;
  switch (dtype) {
    case 'F32':
      return new Float32Array(buf);
    case 'F64':
      return new Float64Array(buf);
    case 'I64':
      return new BigInt64Array(buf);
    case 'I32':
      return new Int32Array(buf);
    case 'I8':
      return new Int8Array(buf);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buf);
    case 'F16':
    case 'BF16':
      return new Uint16Array(buf);
  }
}

export function parseSafetensors(buf: Uint8Array, source: string): SafetensorsFile {
  const fix = 'the file is damaged or not a safetensors file: save it again (or download it again)';
  if (buf.byteLength < 8) {
    throw new TensorFileError(source, `truncated: ${buf.byteLength} bytes, shorter than the 8-byte header length; ${fix}`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(buf.byteLength - 8)) {
    throw new TensorFileError(
      source,
      `truncated: the header says it is ${n} bytes long but only ${buf.byteLength - 8} bytes follow; ${fix}`,
    );
  }
  const headerLen = Number(n);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + headerLen)));
  } catch (e) {
    throw new TensorFileError(source, `the header is not valid JSON (${(e as Error).message}); ${fix}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new TensorFileError(source, `the header is not a JSON object; ${fix}`);
  }
  const dataStart = 8 + headerLen;
  const dataLen = buf.byteLength - dataStart;
  const tensors: TensorMap = new Map();
  let metadata: Record<string, string> = {};
  const spans: Array<[number, number, string]> = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (entry ?? {}) as Record<string, string>;
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e?.dtype !== 'string' || !isDType(e.dtype)) {
      throw new TensorFileError(
        source,
        `tensor '${name}' has dtype ${JSON.stringify(e?.dtype)}, which this product cannot read (supported: ${Object.keys(BYTES).join(', ')}); convert it to F32 before loading`,
      );
    }
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new TensorFileError(source, `tensor '${name}' has an invalid shape ${JSON.stringify(e.shape)}; ${fix}`);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new TensorFileError(source, `tensor '${name}' has invalid data_offsets ${JSON.stringify(off)}; ${fix}`);
    }
    const [begin, end] = off as [number, number];
    const shape = e.shape as number[];
    const expected = numel(shape) * BYTES[e.dtype];
    if (end < begin || end - begin !== expected) {
      throw new TensorFileError(
        source,
        `tensor '${name}' (${e.dtype} ${JSON.stringify(shape)}) needs ${expected} bytes but its data_offsets [${begin}, ${end}] span ${end - begin}; the header lies about offsets: ${fix}`,
      );
    }
    if (end > dataLen) {
      throw new TensorFileError(
        source,
        `truncated: tensor '${name}' ends at byte ${end} of the data section but the file holds only ${dataLen} data bytes; ${fix}`,
      );
    }
    spans.push([begin, end, name]);
    tensors.set(name, { dtype: e.dtype, shape, data: typedFromBytes(e.dtype, buf.subarray(dataStart + begin, dataStart + end)) });
  }
  spans.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i]![0] < spans[i - 1]![1]) {
      throw new TensorFileError(
        source,
        `tensors '${spans[i - 1]![2]}' and '${spans[i]![2]}' overlap in the data section; the header lies about offsets: ${fix}`,
      );
    }
  }
  return { tensors, metadata };
}

export function readSafetensors(path: string): SafetensorsFile {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TensorFileError(path, code === 'ENOENT' ? 'no such file; check the path' : `cannot be read (${code ?? (e as Error).message})`);
  }
  return parseSafetensors(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength), path);
}

export function serializeSafetensors(tensors: TensorMap | Record<string, RawTensor>, metadata?: Record<string, string>): Uint8Array {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of entries) {
    const len = numel(t.shape) * BYTES[t.dtype];
    if (t.data.byteLength !== len) {
      throw new Error(`tensor '${name}': ${t.data.byteLength} bytes of data for ${t.dtype} ${JSON.stringify(t.shape)} (expected ${len})`);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + len] };
    offset += len;
  }
  let json = JSON.stringify(header);
  const pad = (8 - (Buffer.byteLength(json) % 8)) % 8;
  json += ' '.repeat(pad);
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.byteLength;
  for (const [, t] of entries) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

/** Writes atomically: a crash never leaves a half-written file at `path`. */
export function writeSafetensors(path: string, tensors: TensorMap | Record<string, RawTensor>, metadata?: Record<string, string>): void {
  atomicWriteFile(path, serializeSafetensors(tensors, metadata));
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** Values as float64 numbers in C order, whatever the stored dtype. */
export function toFloat64(t: RawTensor): Float64Array {
  const n = t.data.length;
  const out = new Float64Array(n);
  const d = t.data;
  if (t.dtype === 'F16') {
    for (let i = 0; i < n; i++) out[i] = f16ToF32((d as Uint16Array)[i]!);
  } else if (t.dtype === 'BF16') {
    const tmp = new Float32Array(1);
    const u = new Uint32Array(tmp.buffer);
    for (let i = 0; i < n; i++) {
      u[0] = (d as Uint16Array)[i]! << 16;
      out[i] = tmp[0]!;
    }
  } else if (d instanceof BigInt64Array) {
    for (let i = 0; i < n; i++) out[i] = Number(d[i]!);
  } else {
    for (let i = 0; i < n; i++) out[i] = (d as Float32Array)[i]!;
  }
  return out;
}

/** Values as float32 in C order, whatever the stored dtype. */
export function toFloat32(t: RawTensor): Float32Array {
  if (t.dtype === 'F32') return t.data as Float32Array;
  return Float32Array.from(toFloat64(t));
}

export function f32(shape: number[], data: Float32Array): RawTensor {
  return { dtype: 'F32', shape, data };
}
