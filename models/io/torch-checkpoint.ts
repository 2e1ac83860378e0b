/**
 * PyTorch checkpoint reader (`torch.save` output, e.g. the released U-Flow Lightning checkpoints),
 * without Python and without executing the pickle (see `pickle.ts` for what is allowed).
 *
 * Two formats:
 * - zip (torch ≥ 1.6 default): `<root>/data.pkl` (the object), `<root>/data/<key>` (one member per
 *   storage, raw bytes), optional `<root>/byteorder` ('little' | 'big'). The root folder is
 *   `archive` when saved through a file object, else the file stem: it is never assumed.
 *   Persistent ids are ('storage', <StorageClass>, key, location, numel).
 * - legacy (`_use_new_zipfile_serialization=False`): pickles of the magic number
 *   0x1950a86a20f9469cfc6c, the protocol version (1001) and sys_info; then the object (persistent
 *   ids ('storage', <StorageClass>, key, location, numel, view_metadata)); then the list of storage
 *   keys; then, for each key in that order, a u64 element count and the raw bytes.
 *
 * Tensors come back as RawTensor in C order (non-contiguous strides and storage offsets
 * materialised; several tensors may share one storage), placed where they were in the structure.
 * Where each came from (storage key, offset, stride) is kept for inspection: `tensorSource(t)`.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { inflateSync } from 'fflate';
import { unpickle, PyGlobal, UnsafePickleError, type TorchHooks } from './pickle.js';
import { bytesPerElement, numel, TensorFileError, type DType, type RawTensor, type TensorMap, type TypedData } from './safetensors.js';

export interface TorchCheckpoint {
  /** the unpickled object: Maps for dicts, arrays for lists/tuples, RawTensor for tensors */
  object: unknown;
  /** the state dict found in it (keys as stored, e.g. 'model.flow.module_list.0.global_scale') */
  stateDict?: TensorMap;
  format: 'zip' | 'legacy';
  /** the zip's root folder ('archive', or the stem of the file torch.save was given) */
  zipRoot?: string;
  /** number of distinct storages the tensors use */
  storageCount: number;
}

export interface TensorSource {
  storageKey: string;
  /** e.g. 'FloatStorage' */
  storageType: string;
  /** e.g. 'cpu', 'cuda:0' (ignored: everything is loaded to the CPU) */
  location: string;
  storageNumel: number;
  storageOffset: number;
  stride: number[];
}

const sources = new WeakMap<RawTensor, TensorSource>();

/** Where a tensor read from a checkpoint came from (storage key, offset and stride in elements). */
export function tensorSource(t: RawTensor): TensorSource | undefined {
  return sources.get(t);
}

const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  DoubleStorage: 'F64',
  LongStorage: 'I64',
  IntStorage: 'I32',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
};

const TYPED: Record<DType, { new (n: number): TypedData }> = {
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  F64: Float64Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
};

export function isTensor(v: unknown): v is RawTensor {
  if (v === null || typeof v !== 'object' || v instanceof Map || Array.isArray(v)) return false;
  const t = v as Partial<RawTensor>;
  return typeof t.dtype === 'string' && Array.isArray(t.shape) && ArrayBuffer.isView(t.data);
}

// ---------------------------------------------------------------------------------------------
// byte sources: a file read on demand (big checkpoints are never held twice) or bytes in memory

interface ByteSource {
  size: number;
  /** whether `read` returns fresh buffers (byte offset 0) that tensors may keep without a copy */
  owned: boolean;
  read(offset: number, length: number): Uint8Array;
  close(): void;
}

function memorySource(bytes: Uint8Array): ByteSource {
  return { size: bytes.byteLength, owned: false, read: (o, l) => bytes.subarray(o, o + l), close: () => {} };
}

function fileSource(path: string): ByteSource {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new TensorFileError(path, code === 'ENOENT' ? 'no such file; check the path' : `cannot be read (${code ?? (e as Error).message})`);
  }
  const size = fstatSync(fd).size;
  return {
    size,
    owned: true,
    read(offset, length) {
      const buf = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const k = readSync(fd, buf, done, length - done, offset + done);
        if (k === 0) break;
        done += k;
      }
      return done === length ? buf : buf.subarray(0, done);
    },
    close: () => closeSync(fd),
  };
}

// ---------------------------------------------------------------------------------------------
// zip (central directory, ZIP64, stored or deflated members)

interface ZipEntry {
  name: string;
  method: number;
  crc: number;
  csize: number;
  usize: number;
  localOffset: number;
}

const REDOWNLOAD = 'download it again (or save it again with torch.save)';

function readZipDirectory(src: ByteSource, file: string): Map<string, ZipEntry> {
  const tailLen = Math.min(src.size, 22 + 65535 + 20);
  const tailStart = src.size - tailLen;
  const tail = src.read(tailStart, tailLen);
  const tv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  let eocd = -1;
  for (let i = tail.byteLength - 22; i >= 0; i--) {
    if (tv.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) {
    throw new TensorFileError(
      file,
      `truncated: the file starts like a zip archive (PyTorch's checkpoint format) but its end-of-archive record is missing, so the download or save was cut short (${src.size} bytes); ${REDOWNLOAD}`,
    );
  }
  let count = tv.getUint16(eocd + 10, true);
  let cdSize = tv.getUint32(eocd + 12, true);
  let cdOffset = tv.getUint32(eocd + 16, true);
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const loc = eocd - 20;
    if (loc < 0 || tv.getUint32(loc, true) !== 0x07064b50) {
      throw new TensorFileError(file, `damaged zip: the ZIP64 end-of-archive locator is missing; ${REDOWNLOAD}`);
    }
    const z64Off = Number(tv.getBigUint64(loc + 8, true));
    if (z64Off + 56 > src.size) throw new TensorFileError(file, `damaged zip: the ZIP64 record lies past the end of the file; ${REDOWNLOAD}`);
    const z = src.read(z64Off, 56);
    const zv = new DataView(z.buffer, z.byteOffset, z.byteLength);
    if (zv.getUint32(0, true) !== 0x06064b50) throw new TensorFileError(file, `damaged zip: bad ZIP64 end-of-archive record; ${REDOWNLOAD}`);
    count = Number(zv.getBigUint64(32, true));
    cdSize = Number(zv.getBigUint64(40, true));
    cdOffset = Number(zv.getBigUint64(48, true));
  }
  if (cdOffset + cdSize > src.size) {
    throw new TensorFileError(file, `truncated: the zip directory lies past the end of the file (${src.size} bytes); ${REDOWNLOAD}`);
  }
  const cd = src.read(cdOffset, cdSize);
  const cv = new DataView(cd.buffer, cd.byteOffset, cd.byteLength);
  const entries = new Map<string, ZipEntry>();
  const dec = new TextDecoder('utf-8');
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.byteLength || cv.getUint32(p, true) !== 0x02014b50) {
      throw new TensorFileError(file, `damaged zip: directory entry ${i} of ${count} is malformed; ${REDOWNLOAD}`);
    }
    const method = cv.getUint16(p + 10, true);
    const crc = cv.getUint32(p + 16, true);
    let csize = cv.getUint32(p + 20, true);
    let usize = cv.getUint32(p + 24, true);
    const nameLen = cv.getUint16(p + 28, true);
    const extraLen = cv.getUint16(p + 30, true);
    const commentLen = cv.getUint16(p + 32, true);
    let localOffset = cv.getUint32(p + 42, true);
    const name = dec.decode(cd.subarray(p + 46, p + 46 + nameLen));
    // ZIP64 extended information: the 0xFFFFFFFF fields, in order usize, csize, offset
    let e = p + 46 + nameLen;
    const eEnd = e + extraLen;
    while (e + 4 <= eEnd) {
      const id = cv.getUint16(e, true);
      const len = cv.getUint16(e + 2, true);
      if (id === 0x0001) {
        let q = e + 4;
        if (usize === 0xffffffff) (usize = Number(cv.getBigUint64(q, true))), (q += 8);
        if (csize === 0xffffffff) (csize = Number(cv.getBigUint64(q, true))), (q += 8);
        if (localOffset === 0xffffffff) localOffset = Number(cv.getBigUint64(q, true));
      }
      e += 4 + len;
    }
    entries.set(name, { name, method, crc, csize, usize, localOffset });
    p = eEnd + commentLen;
  }
  return entries;
}

const crc32: ((b: Uint8Array) => number) | undefined = (zlib as unknown as { crc32?: (b: Uint8Array) => number }).crc32;

function readZipMember(src: ByteSource, file: string, e: ZipEntry): Uint8Array {
  if (e.localOffset + 30 > src.size) throw new TensorFileError(file, `truncated: member '${e.name}' lies past the end of the file; ${REDOWNLOAD}`);
  const h = src.read(e.localOffset, 30);
  const hv = new DataView(h.buffer, h.byteOffset, h.byteLength);
  if (hv.getUint32(0, true) !== 0x04034b50) throw new TensorFileError(file, `damaged zip: member '${e.name}' has no local header; ${REDOWNLOAD}`);
  const start = e.localOffset + 30 + hv.getUint16(26, true) + hv.getUint16(28, true);
  if (start + e.csize > src.size) {
    throw new TensorFileError(file, `truncated: member '${e.name}' needs ${e.csize} bytes at ${start} but the file has ${src.size} bytes; ${REDOWNLOAD}`);
  }
  let data = src.read(start, e.csize);
  if (e.method === 8) {
    try {
      data = inflateSync(data, { out: new Uint8Array(e.usize) });
    } catch (err) {
      throw new TensorFileError(file, `damaged zip: member '${e.name}' does not inflate (${(err as Error).message}); ${REDOWNLOAD}`);
    }
  } else if (e.method !== 0) {
    throw new TensorFileError(file, `member '${e.name}' uses zip compression method ${e.method}, which PyTorch never writes; re-save the file with torch.save`);
  }
  if (data.byteLength !== e.usize) throw new TensorFileError(file, `damaged zip: member '${e.name}' has ${data.byteLength} bytes, its header says ${e.usize}; ${REDOWNLOAD}`);
  if (crc32 && (crc32(data) >>> 0) !== e.crc) throw new TensorFileError(file, `damaged zip: member '${e.name}' fails its CRC check (corrupted bytes); ${REDOWNLOAD}`);
  return data;
}

// ---------------------------------------------------------------------------------------------
// tensors

interface StorageRef {
  key: string;
  type: string;
  dtype: DType;
  location: string;
  numel: number;
  /** legacy storage views: the view starts this many elements into the root storage */
  viewOffset: number;
}

interface Pending {
  tensor: RawTensor;
  storage: StorageRef;
  offset: number;
  stride: number[];
}

function makeHooks(file: string, legacy: boolean, storages: Map<string, StorageRef>, pending: Pending[]): TorchHooks {
  return {
    persistentLoad(pid) {
      if (!Array.isArray(pid) || pid[0] !== 'storage') {
        const what = Array.isArray(pid) ? String(pid[0]) : typeof pid;
        throw new TensorFileError(file, `unsupported persistent id '${what}' (only tensor storages are read; legacy module source records are refused)`);
      }
      const [, type, key, location, n, view] = pid as unknown[];
      const typeName = type instanceof PyGlobal ? type.name : String(type);
      const dtype = STORAGE_DTYPES[typeName];
      if (!dtype) {
        throw new TensorFileError(file, `a tensor uses storage type '${typeName}', which this product cannot read (supported: ${Object.keys(STORAGE_DTYPES).join(', ')}); convert it to float32 before saving`);
      }
      if ((typeof key !== 'string' && typeof key !== 'number') || typeof n !== 'number' || n < 0) {
        throw new TensorFileError(file, `malformed storage record ${JSON.stringify(String(key))}; ${REDOWNLOAD}`);
      }
      const k = String(key);
      let root = storages.get(k);
      if (!root) storages.set(k, (root = { key: k, type: typeName, dtype, location: String(location), numel: n, viewOffset: 0 }));
      else if (root.dtype !== dtype) throw new TensorFileError(file, `storage '${k}' is used as both ${root.type} and ${typeName}; ${REDOWNLOAD}`);
      if (legacy && Array.isArray(view)) {
        const [, off, size] = view as unknown[];
        if (typeof off !== 'number' || typeof size !== 'number') throw new TensorFileError(file, `malformed storage view of '${k}'`);
        return { ...root, numel: size, viewOffset: off };
      }
      return root;
    },
    rebuildTensor(storage, storageOffset, size, stride) {
      const s = storage as StorageRef;
      if (!s || typeof s !== 'object' || typeof s.key !== 'string') {
        throw new TensorFileError(file, 'a tensor is rebuilt from something that is not a storage; the file is damaged');
      }
      if (size.some((d) => d < 0)) throw new TensorFileError(file, `a tensor has a negative size [${size.join(', ')}]`);
      const count = numel(size);
      if (count > 0) {
        let last = storageOffset;
        for (let i = 0; i < size.length; i++) last += (size[i]! - 1) * stride[i]!;
        if (storageOffset < 0 || last >= s.numel || stride.some((x) => x < 0)) {
          throw new TensorFileError(
            file,
            `a tensor [${size.join(', ')}] with stride [${stride.join(', ')}] at offset ${storageOffset} reaches past its storage '${s.key}' of ${s.numel} elements; ${REDOWNLOAD}`,
          );
        }
      }
      const tensor: RawTensor = { dtype: s.dtype, shape: size, data: new TYPED[s.dtype](0) };
      sources.set(tensor, {
        storageKey: s.key,
        storageType: s.type,
        location: s.location,
        storageNumel: s.viewOffset ? storages.get(s.key)!.numel : s.numel,
        storageOffset: storageOffset + s.viewOffset,
        stride,
      });
      pending.push({ tensor, storage: s, offset: storageOffset + s.viewOffset, stride });
      return tensor;
    },
  };
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expect = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expect) return false;
    expect *= shape[i]!;
  }
  return true;
}

function byteswap(b: Uint8Array, size: number): void {
  if (size === 1) return;
  for (let i = 0; i + size <= b.length; i += size) b.subarray(i, i + size).reverse();
}

/**
 * Copies the tensor's elements (C order) out of its storage bytes. With `solo` (the storage buffer
 * is fresh and used by this tensor alone) a tensor covering the whole storage keeps it uncopied.
 */
function materialise(p: Pending, storage: Uint8Array, solo: boolean, bigEndian: boolean): void {
  const { tensor, offset, stride } = p;
  const es = bytesPerElement(tensor.dtype);
  const shape = tensor.shape;
  const count = numel(shape);
  let out: Uint8Array; // always a buffer of its own, starting at byte 0
  if (count === 0) {
    out = new Uint8Array(0);
  } else if (isContiguous(shape, stride)) {
    const whole = solo && offset === 0 && count * es === storage.byteLength && storage.byteOffset === 0;
    out = whole ? storage : storage.slice(offset * es, (offset + count) * es);
  } else {
    out = new Uint8Array(count * es);
    const nd = shape.length;
    const idx = new Array<number>(nd).fill(0);
    const inner = nd - 1;
    const innerLen = shape[inner]!;
    const innerStride = stride[inner]!;
    let base = offset;
    let o = 0;
    for (let done = 0; done < count; done += innerLen) {
      if (innerStride === 1) {
        out.set(storage.subarray(base * es, (base + innerLen) * es), o);
        o += innerLen * es;
      } else {
        for (let j = 0, s = base * es; j < innerLen; j++, s += innerStride * es) {
          for (let b = 0; b < es; b++) out[o++] = storage[s + b]!;
        }
      }
      // odometer over the outer dimensions
      for (let d = inner - 1; d >= 0; d--) {
        idx[d]!++;
        base += stride[d]!;
        if (idx[d]! < shape[d]!) break;
        base -= stride[d]! * shape[d]!;
        idx[d] = 0;
      }
    }
  }
  if (bigEndian) byteswap(out, es);
  tensor.data = typedView(tensor.dtype, out);
}

function typedView(dtype: DType, b: Uint8Array): TypedData {
  const C = TYPED[dtype] as unknown as { new (buf: ArrayBufferLike, off: number, len: number): TypedData };
  return new C(b.buffer, b.byteOffset, b.byteLength / bytesPerElement(dtype));
}

function fillGroup(group: Pending[], bytes: Uint8Array, owned: boolean, bigEndian: boolean): void {
  // the storage buffer is handed to a tensor without a copy only when it is that tensor's alone
  const solo = owned && group.length === 1;
  for (const p of group) materialise(p, bytes, solo, bigEndian);
}

function groupByStorage(pending: Pending[]): Map<string, Pending[]> {
  const g = new Map<string, Pending[]>();
  for (const p of pending) {
    const l = g.get(p.storage.key);
    if (l) l.push(p);
    else g.set(p.storage.key, [p]);
  }
  return g;
}

// ---------------------------------------------------------------------------------------------
// the two formats

function readZipCheckpoint(src: ByteSource, file: string): TorchCheckpoint {
  const entries = readZipDirectory(src, file);
  const pkls = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n) || n === 'data.pkl');
  if (pkls.length === 0) {
    const names = [...entries.keys()];
    const hint = names.some((n) => /(^|\/)constants\.pkl$/.test(n) || /(^|\/)code\//.test(n))
      ? 'it looks like a TorchScript archive (torch.jit.save), not a checkpoint: save the weights with torch.save(model.state_dict(), path)'
      : `it holds ${names.slice(0, 5).map((n) => `'${n}'`).join(', ')}${names.length > 5 ? ', …' : ''}; this is a zip file but not a PyTorch checkpoint: ${REDOWNLOAD}`;
    throw new TensorFileError(file, `no '<root>/data.pkl' in the zip archive: ${hint}`);
  }
  const pklName = pkls[0]!;
  const root = pklName.includes('/') ? pklName.slice(0, pklName.indexOf('/')) : '';
  const prefix = root ? `${root}/` : '';
  const byteorderEntry = entries.get(`${prefix}byteorder`);
  let bigEndian = false;
  if (byteorderEntry) {
    const bo = new TextDecoder().decode(readZipMember(src, file, byteorderEntry)).trim();
    if (bo !== 'little' && bo !== 'big') throw new TensorFileError(file, `unknown byte order '${bo}' in ${prefix}byteorder; ${REDOWNLOAD}`);
    bigEndian = bo === 'big';
  }
  const pkl = readZipMember(src, file, entries.get(pklName)!);
  const storages = new Map<string, StorageRef>();
  const pending: Pending[] = [];
  const { value } = unpickle(pkl, { source: `${file} (${pklName})`, torch: makeHooks(file, false, storages, pending) });
  for (const [key, group] of groupByStorage(pending)) {
    const ref = storages.get(key)!;
    const member = `${prefix}data/${key}`;
    const entry = entries.get(member);
    if (!entry) {
      throw new TensorFileError(file, `storage '${key}' (member '${member}') is missing from the archive: the file is incomplete or was altered; ${REDOWNLOAD}`);
    }
    const need = ref.numel * bytesPerElement(ref.dtype);
    if (entry.usize < need) {
      throw new TensorFileError(file, `storage '${key}' has ${entry.usize} bytes but ${ref.numel} ${ref.type} elements need ${need}; ${REDOWNLOAD}`);
    }
    const bytes = readZipMember(src, file, entry);
    fillGroup(group, bytes, src.owned && bytes.byteOffset === 0, bigEndian);
  }
  return { object: value, stateDict: stateDictFromCheckpoint(value), format: 'zip', zipRoot: root, storageCount: storages.size };
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

function readLegacyCheckpoint(bytes: Uint8Array, file: string): TorchCheckpoint {
  const notCheckpoint = (why: string): never => {
    throw new TensorFileError(file, `not a PyTorch checkpoint (${why}); check that the path names a .ckpt/.pt/.pth file written by torch.save, or ${REDOWNLOAD}`);
  };
  let m;
  try {
    m = unpickle(bytes, { source: file });
  } catch (e) {
    if (e instanceof UnsafePickleError) throw e;
    return notCheckpoint('neither a zip archive nor a legacy torch.save stream');
  }
  if (m.value !== LEGACY_MAGIC) {
    return notCheckpoint('a pickle, but without the torch.save magic number: a plain pickle is not a checkpoint');
  }
  const ver = unpickle(bytes, { source: file, offset: m.end });
  if (ver.value !== 1001) throw new TensorFileError(file, `legacy checkpoint protocol version ${String(ver.value)} is not supported (1001 expected); re-save it with a recent torch`);
  const sys = unpickle(bytes, { source: file, offset: ver.end });
  const info = sys.value instanceof Map ? sys.value : new Map();
  const bigEndian = info.get('little_endian') === false;
  const storages = new Map<string, StorageRef>();
  const pending: Pending[] = [];
  const main = unpickle(bytes, { source: file, offset: sys.end, torch: makeHooks(file, true, storages, pending) });
  const keysRes = unpickle(bytes, { source: file, offset: main.end });
  const keys = keysRes.value;
  if (!Array.isArray(keys)) throw new TensorFileError(file, `the storage key list after the object is missing; ${REDOWNLOAD}`);
  const groups = groupByStorage(pending);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = keysRes.end;
  for (const k of keys) {
    const key = String(k);
    const ref = storages.get(key);
    if (!ref) throw new TensorFileError(file, `storage '${key}' is listed but no tensor refers to it; ${REDOWNLOAD}`);
    if (pos + 8 > bytes.byteLength) {
      throw new TensorFileError(file, `truncated: storage '${key}' is missing (the file ends at byte ${bytes.byteLength}); ${REDOWNLOAD}`);
    }
    const count = Number(dv.getBigUint64(pos, !bigEndian));
    pos += 8;
    const len = count * bytesPerElement(ref.dtype);
    if (count < ref.numel) throw new TensorFileError(file, `storage '${key}' holds ${count} elements but tensors need ${ref.numel}; ${REDOWNLOAD}`);
    if (pos + len > bytes.byteLength) {
      throw new TensorFileError(file, `truncated: storage '${key}' needs ${len} bytes at byte ${pos} but the file has ${bytes.byteLength}; ${REDOWNLOAD}`);
    }
    const group = groups.get(key);
    if (group) fillGroup(group, bytes.subarray(pos, pos + len), false, bigEndian);
    groups.delete(key);
    pos += len;
  }
  const missing = [...groups.keys()];
  if (missing.length) {
    throw new TensorFileError(file, `storage${missing.length > 1 ? 's' : ''} ${missing.map((k) => `'${k}'`).join(', ')} missing from the file's storage list; ${REDOWNLOAD}`);
  }
  return { object: main.value, stateDict: stateDictFromCheckpoint(main.value), format: 'legacy', storageCount: storages.size };
}

function sniff(head: Uint8Array, file: string): 'zip' | 'legacy' {
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04) return 'zip';
  if (head.length === 0) throw new TensorFileError(file, `the file is empty; ${REDOWNLOAD}`);
  const text = new TextDecoder('latin1').decode(head.subarray(0, 512)).trimStart().toLowerCase();
  if (text.startsWith('<!doctype html') || text.startsWith('<html')) {
    throw new TensorFileError(
      file,
      'this is a web page (HTML), not a checkpoint: the download saved a page (a Google Drive confirmation or quota page?) instead of the file; delete it and download again, or fetch it by hand in a browser',
    );
  }
  if (head.length > 262 && new TextDecoder('latin1').decode(head.subarray(257, 262)) === 'ustar') {
    throw new TensorFileError(file, 'this is the tar-based format of torch < 0.4, which is not supported: load it in Python and re-save it with a recent torch.save');
  }
  if (head[0] === 0x80) return 'legacy';
  if (head.length >= 10 && head[8] === 0x7b && head[9] === 0x22) {
    throw new TensorFileError(file, 'this is a safetensors file, not a PyTorch checkpoint: load it as safetensors (readSafetensors)');
  }
  throw new TensorFileError(file, `not a PyTorch checkpoint (it starts with bytes ${[...head.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0')).join(' ')}); check the path, or ${REDOWNLOAD}`);
}

/** Reads a PyTorch checkpoint (zip or legacy format) from disk, never executing its pickle. */
export function readTorchCheckpoint(path: string): TorchCheckpoint {
  const src = fileSource(path);
  try {
    const kind = sniff(src.read(0, Math.min(src.size, 512)), path);
    return kind === 'zip' ? readZipCheckpoint(src, path) : readLegacyCheckpoint(src.read(0, src.size), path);
  } finally {
    src.close();
  }
}

/** The same from bytes in memory; `source` names them in errors. */
export function parseTorchCheckpoint(bytes: Uint8Array, source: string): TorchCheckpoint {
  const kind = sniff(bytes.subarray(0, 512), source);
  return kind === 'zip' ? readZipCheckpoint(memorySource(bytes), source) : readLegacyCheckpoint(bytes, source);
}

// ---------------------------------------------------------------------------------------------
// state dicts

function asStateDict(v: unknown): TensorMap | undefined {
  if (!(v instanceof Map) || v.size === 0) return undefined;
  const out: TensorMap = new Map();
  for (const [k, t] of v) {
    if (typeof k !== 'string') return undefined;
    if (isTensor(t)) out.set(k, t);
    else if (t !== null && typeof t === 'object') return undefined; // nested containers: not a state dict
  }
  return out.size ? out : undefined;
}

/**
 * The state dict inside a checkpoint object: `state_dict` (Lightning), `model_state_dict` or
 * `model` (common training scripts), or the object itself when it is a bare state dict
 * (a dict of name → tensor). Keys are kept as stored.
 */
export function stateDictFromCheckpoint(obj: unknown): TensorMap | undefined {
  if (obj instanceof Map) {
    for (const key of ['state_dict', 'model_state_dict', 'model']) {
      const sd = asStateDict(obj.get(key));
      if (sd) return sd;
    }
  }
  return asStateDict(obj);
}

/** Keys the official U-Flow loader drops (leftover training state). */
export const UFLOW_DROPPED_KEY_PARTS = ['log_loss_weights', 'aupro', 'f1', 'mcc'] as const;

/**
 * What the official `UFlow.from_pretrained` does to a checkpoint's state dict:
 * `key = key.split('model.')[-1]`, and keys containing 'log_loss_weights', 'aupro', 'f1' or 'mcc'
 * are dropped. The result has `UFlow.state_dict()` names (`flow.module_list.*`, `feature_extractor.*`).
 */
export function uflowStateDict(sd: TensorMap): TensorMap {
  const out: TensorMap = new Map();
  for (const [k, t] of sd) {
    if (UFLOW_DROPPED_KEY_PARTS.some((p) => k.includes(p))) continue;
    const parts = k.split('model.');
    out.set(parts[parts.length - 1]!, t);
  }
  return out;
}
