/**
 * Golden case 11: PyTorch checkpoints (zip and legacy torch.save formats) read without Python.
 * Everything checked comes from the manifest: every tensor (dtype, shape, stride, storage offset,
 * storage key, sha256 of its C-order little-endian values), the non-tensor content, the state dict
 * key order, and the state dict equal (bytes) to the source case's weights after the official
 * U-Flow key mapping. Damaged copies of the files must fail with errors naming file and problem.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { unzipSync, zipSync, type Zippable } from 'fflate';
import { pyToJson } from '../../models/io/pickle.js';
import { readSafetensors, TensorFileError, type RawTensor } from '../../models/io/safetensors.js';
import { isTensor, readTorchCheckpoint, tensorSource, uflowStateDict } from '../../models/io/torch-checkpoint.js';
import { goldenCases, goldenRoot, skipReason } from '../helpers/golden.js';

const sha256 = (b: Uint8Array | ArrayBufferView) =>
  createHash('sha256').update(new Uint8Array(b.buffer, b.byteOffset, b.byteLength)).digest('hex');

/** Every tensor in the structure by '/'-joined path of dict keys and list indices. */
function tensorsByPath(v: unknown, path: string[] = [], out = new Map<string, RawTensor>()): Map<string, RawTensor> {
  if (isTensor(v)) out.set(path.join('/'), v);
  else if (v instanceof Map) for (const [k, x] of v) tensorsByPath(x, [...path, String(k)], out);
  else if (Array.isArray(v)) v.forEach((x, i) => tensorsByPath(x, [...path, String(i)], out));
  return out;
}

const tmp = mkdtempSync(join(tmpdir(), 'uflow-golden11-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const cases = goldenCases('11_');
if (cases.length === 0) test('golden 11_*', { skip: skipReason() ?? 'no 11_* case in the golden folder' }, () => {});

for (const name of cases) {
  describe(name, () => {
    const dir = join(goldenRoot(), name);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    const files = Object.entries(manifest.files as Record<string, any>);

    for (const [file, spec] of files) {
      test(`${file}: format, every tensor (dtype, shape, stride, offset, storage, sha256)`, { skip: skipReason() }, () => {
        const path = join(dir, file);
        assert.equal(sha256(readFileSync(path)), spec.sha256, 'the file is the one the manifest describes');
        const ck = readTorchCheckpoint(path);
        assert.equal(ck.format, spec.format);
        if (spec.zip_root_folder != null) assert.equal(ck.zipRoot, spec.zip_root_folder);
        assert.equal(ck.storageCount, spec.n_storages);
        const got = tensorsByPath(ck.object);
        assert.deepEqual([...got.keys()].sort(), Object.keys(spec.tensors).sort(), 'the same tensors, by path');
        for (const [p, want] of Object.entries(spec.tensors as Record<string, any>)) {
          const t = got.get(p)!;
          assert.equal(t.dtype, want.dtype, p);
          assert.deepEqual(t.shape, want.shape, p);
          assert.equal(sha256(t.data), want.sha256, `${p}: values`);
          const s = tensorSource(t)!;
          assert.deepEqual(s.stride, want.stride, `${p}: stride`);
          assert.equal(s.storageOffset, want.storage_offset, `${p}: storage offset`);
          assert.equal(s.storageKey, want.storage_key, `${p}: storage key`);
          assert.equal(s.storageType, want.storage_type, `${p}: storage type`);
          assert.equal(s.storageNumel, want.storage_numel, `${p}: storage numel`);
          assert.equal(s.location, want.location, `${p}: location`);
        }
      });

      test(`${file}: non-tensor content`, { skip: skipReason() }, () => {
        const ck = readTorchCheckpoint(join(dir, file));
        const obj = ck.object as Map<string, unknown>;
        assert.ok(obj instanceof Map);
        for (const [k, want] of Object.entries(manifest.non_tensor_content as Record<string, unknown>)) {
          assert.ok(obj.has(k), `top-level key '${k}'`);
          assert.deepEqual(pyToJson(obj.get(k)), want, k);
        }
      });

      test(`${file}: state_dict equals ${manifest.source_case}'s weights after the official key mapping`, { skip: skipReason() }, () => {
        const ck = readTorchCheckpoint(join(dir, file));
        assert.ok(ck.stateDict, 'a state dict is found');
        assert.deepEqual([...ck.stateDict.keys()], manifest.state_dict_keys_in_order);
        const weightsPath = join(goldenRoot(), manifest.source_case, 'weights.safetensors');
        assert.equal(sha256(readFileSync(weightsPath)), manifest.source_weights_sha256);
        const ref = readSafetensors(weightsPath).tensors;
        const mapped = uflowStateDict(ck.stateDict);
        for (const k of manifest.keys_dropped_by_official_loader as string[]) {
          assert.ok(ck.stateDict.has(k), `${k} is in the file`);
        }
        assert.equal(mapped.size, ck.stateDict.size - manifest.keys_dropped_by_official_loader.length);
        assert.deepEqual([...mapped.keys()].sort(), [...ref.keys()].sort());
        for (const [k, r] of ref) {
          const t = mapped.get(k)!;
          assert.equal(t.dtype, r.dtype, k);
          assert.deepEqual(t.shape, r.shape, k);
          assert.equal(sha256(t.data), sha256(r.data), `${k}: bytes`);
        }
      });
    }

    // Damaged copies: every error names the file and the problem (no stack-trace-only failures).
    const zipFile = files.find(([, s]) => s.format === 'zip');
    const legacyFile = files.find(([, s]) => s.format === 'legacy');
    const expectFileError = (path: string, re: RegExp) => {
      assert.throws(
        () => readTorchCheckpoint(path),
        (e: unknown) => e instanceof TensorFileError && e.message.startsWith(path) && re.test(e.message),
      );
    };

    test('damaged zip checkpoints: truncated, no data.pkl, a storage missing', { skip: skipReason() ?? (zipFile ? undefined : 'no zip file') }, () => {
      const [file, spec] = zipFile!;
      const bytes = readFileSync(join(dir, file));
      const truncated = join(tmp, `${name}-truncated.ckpt`);
      writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
      expectFileError(truncated, /truncated/);

      const members = unzipSync(bytes);
      const root = spec.zip_root_folder as string;
      const rezip = (drop: string, out: string) => {
        const z: Zippable = {};
        for (const [n, d] of Object.entries(members)) if (n !== drop) z[n] = [d, { level: 0 }];
        writeFileSync(out, zipSync(z));
        return out;
      };
      expectFileError(rezip(`${root}/data.pkl`, join(tmp, `${name}-nopkl.ckpt`)), /no '<root>\/data\.pkl'/);
      const someKey = (Object.values(spec.tensors) as any[])[0].storage_key as string;
      expectFileError(rezip(`${root}/data/${someKey}`, join(tmp, `${name}-nostorage.ckpt`)), new RegExp(`storage '${someKey}'.*missing`));
    });

    test('damaged legacy checkpoint: cut inside the storages', { skip: skipReason() ?? (legacyFile ? undefined : 'no legacy file') }, () => {
      const [file] = legacyFile!;
      const bytes = readFileSync(join(dir, file));
      const truncated = join(tmp, `${name}-legacy-truncated.ckpt`);
      writeFileSync(truncated, bytes.subarray(0, bytes.length - 100));
      expectFileError(truncated, /truncated: storage '[^']+'/);
    });
  });
}
