import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSafetensors, readSafetensors, serializeSafetensors, toFloat32, writeSafetensors, TensorFileError } from '../../models/io/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'uflow-st-'));

test('round trip keeps every dtype bit-identical', () => {
  const tensors = {
    a: { dtype: 'F32' as const, shape: [2, 3], data: Float32Array.from([1, -2, 3.5, NaN, Infinity, -0]) },
    b: { dtype: 'F64' as const, shape: [2], data: Float64Array.from([Math.PI, -1e-300]) },
    c: { dtype: 'I64' as const, shape: [3], data: BigInt64Array.from([1n, -5n, 9007199254740993n]) },
    d: { dtype: 'I8' as const, shape: [4], data: Int8Array.from([-128, 0, 1, 127]) },
    e: { dtype: 'F16' as const, shape: [2], data: Uint16Array.from([0x3c00, 0xc000]) },
    f: { dtype: 'U8' as const, shape: [1, 1], data: Uint8Array.from([200]) },
  };
  const path = join(dir, 'rt.safetensors');
  writeSafetensors(path, tensors, { format: 'pt' });
  const back = readSafetensors(path);
  assert.deepEqual(back.metadata, { format: 'pt' });
  for (const [k, t] of Object.entries(tensors)) {
    const b = back.tensors.get(k)!;
    assert.equal(b.dtype, t.dtype);
    assert.deepEqual(b.shape, t.shape);
    assert.deepEqual(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength), Buffer.from(t.data.buffer));
  }
  assert.deepEqual([...toFloat32(back.tensors.get('e')!)], [1, -2]);
  // the header is padded to a multiple of 8
  const bytes = readFileSync(path);
  assert.equal(Number(bytes.readBigUInt64LE(0)) % 8, 0);
});

test('a truncated file names the file and the tensor', () => {
  const bytes = serializeSafetensors({ w: { dtype: 'F32', shape: [4], data: new Float32Array(4) } });
  const path = join(dir, 'trunc.safetensors');
  writeFileSync(path, bytes.subarray(0, bytes.length - 3));
  assert.throws(() => readSafetensors(path), (e: Error) => e instanceof TensorFileError && e.message.startsWith(path) && /truncated: tensor 'w'/.test(e.message));
  assert.throws(() => parseSafetensors(bytes.subarray(0, 5), 'x.safetensors'), /x\.safetensors: truncated/);
});

test('a header that lies about offsets or dtype is refused', () => {
  const mk = (header: object) => {
    const json = Buffer.from(JSON.stringify(header));
    const out = Buffer.alloc(8 + json.length + 16);
    out.writeBigUInt64LE(BigInt(json.length));
    json.copy(out, 8);
    return new Uint8Array(out);
  };
  assert.throws(() => parseSafetensors(mk({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 8] } }), 'lie.safetensors'), /lie\.safetensors: .*'w'.*needs 16 bytes.*lies about offsets/);
  assert.throws(
    () => parseSafetensors(mk({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }), 'o.safetensors'),
    /overlap/,
  );
  assert.throws(() => parseSafetensors(mk({ w: { dtype: 'C64', shape: [1], data_offsets: [0, 8] } }), 'd.safetensors'), /d\.safetensors: tensor 'w' has dtype "C64", which this product cannot read/);
});
