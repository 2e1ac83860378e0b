/**
 * Writes a Lightning checkpoint as `torch.save` does (zip format, pickle protocol 2, root
 * `archive/` as when saved through a file object, storages as stored members aligned to 64 bytes
 * like PyTorch's writer), streaming one tensor at a time so that a 1.6 GB state dict is never held
 * whole. Only float32 CPU tensors, each with its own storage. For tests and benchmarks: the product
 * only reads these files (models/io/torch-checkpoint.ts).
 *
 * The object: {'epoch', 'global_step', 'pytorch-lightning_version', 'state_dict': OrderedDict
 * (with its `_metadata` attribute set by BUILD, as nn.Module.state_dict() returns it),
 * 'hyper_parameters'}.
 */
import { closeSync, openSync, renameSync, writeSync } from 'node:fs';
import * as zlib from 'node:zlib';
import { P } from './pickle-writer.js';

export interface TensorEntry {
  key: string;
  shape: number[];
}

export interface LightningMeta {
  epoch?: number;
  globalStep?: number;
  lightningVersion?: string;
  hyperParameters?: Record<string, string | number>;
}

const crc32 = (zlib as unknown as { crc32?: (b: Uint8Array, v?: number) => number }).crc32;

/** The pickle of a Lightning checkpoint whose state dict holds `entries` (storage i = entry i). */
export function lightningPickle(entries: TensorEntry[], meta: LightningMeta = {}): Buffer {
  const p = new P().proto().emptyDict().mark();
  p.str('epoch').int(meta.epoch ?? 0);
  p.str('global_step').int(meta.globalStep ?? 0);
  p.str('pytorch-lightning_version').str(meta.lightningVersion ?? '2.1.0');
  p.str('state_dict').orderedDict().mark();
  entries.forEach((e, i) => {
    const stride = e.shape.map((_, k) => e.shape.slice(k + 1).reduce((a, b) => a * b, 1));
    p.str(e.key).tensor('FloatStorage', String(i), 'cpu', e.shape.reduce((a, b) => a * b, 1), 0, e.shape, stride);
  });
  p.setitems();
  // state_dict()'s `_metadata` attribute: OrderedDict([('', {'version': 1})]), restored by BUILD.
  p.emptyDict().mark().str('_metadata').orderedDict().mark().str('').emptyDict().mark().str('version').int(1).setitems().setitems().setitems().build();
  p.str('hyper_parameters').emptyDict().mark();
  for (const [k, v] of Object.entries(meta.hyperParameters ?? {})) p.str(k).value(v);
  p.setitems();
  return Buffer.from(p.setitems().stop().bytes());
}

interface CentralEntry {
  name: Buffer;
  crc: number;
  size: number;
  offset: number;
}

/** A stored-only zip written member by member to a file descriptor (no ZIP64: under 4 GiB). */
class ZipStream {
  /** Bytes written so far. */
  offset = 0;
  private readonly central: CentralEntry[] = [];
  constructor(private readonly fd: number) {}

  private write(b: Uint8Array): void {
    let done = 0;
    while (done < b.byteLength) done += writeSync(this.fd, b, done, b.byteLength - done);
    this.offset += b.byteLength;
  }

  add(name: string, data: Uint8Array): void {
    if (!crc32) throw new Error('zlib.crc32 is missing: Node ≥ 20.15 is needed to write checkpoints');
    const nameBuf = Buffer.from(name, 'utf8');
    // PyTorch pads the local header's extra field ('FB' records) so that data starts on a 64-byte boundary.
    const headerEnd = this.offset + 30 + nameBuf.length;
    const pad = (64 - ((headerEnd + 4) % 64)) % 64;
    const extra = Buffer.alloc(4 + pad);
    extra.writeUInt16LE(0x4246, 0);
    extra.writeUInt16LE(pad, 2);
    if (this.offset + 30 + nameBuf.length + extra.length + data.byteLength > 0xfffffffe) throw new Error('checkpoint over 4 GiB: ZIP64 is not written by this helper');
    const crc = crc32(data) >>> 0;
    const h = Buffer.alloc(30);
    h.writeUInt32LE(0x04034b50, 0);
    h.writeUInt16LE(20, 4);
    h.writeUInt16LE(0, 6);
    h.writeUInt16LE(0, 8); // stored
    h.writeUInt16LE(0, 10);
    h.writeUInt16LE(0x21, 12); // 1980-01-01
    h.writeUInt32LE(crc, 14);
    h.writeUInt32LE(data.byteLength, 18);
    h.writeUInt32LE(data.byteLength, 22);
    h.writeUInt16LE(nameBuf.length, 26);
    h.writeUInt16LE(extra.length, 28);
    this.central.push({ name: nameBuf, crc, size: data.byteLength, offset: this.offset });
    this.write(h);
    this.write(nameBuf);
    this.write(extra);
    this.write(data);
  }

  finish(): void {
    const start = this.offset;
    for (const e of this.central) {
      const c = Buffer.alloc(46);
      c.writeUInt32LE(0x02014b50, 0);
      c.writeUInt16LE(20, 4);
      c.writeUInt16LE(20, 6);
      c.writeUInt16LE(0x21, 14);
      c.writeUInt32LE(e.crc, 16);
      c.writeUInt32LE(e.size, 20);
      c.writeUInt32LE(e.size, 24);
      c.writeUInt16LE(e.name.length, 28);
      c.writeUInt32LE(e.offset, 42);
      this.write(c);
      this.write(e.name);
    }
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(this.central.length, 8);
    end.writeUInt16LE(this.central.length, 10);
    end.writeUInt32LE(this.offset - start, 12);
    end.writeUInt32LE(start, 16);
    this.write(end);
  }
}

/**
 * Writes `entries` as a Lightning `.ckpt` (zip root `archive/`). `fill(i, entry)` gives tensor i's
 * float32 values (C order) when its storage is written; it is called once per entry, in order.
 * The file appears atomically (written beside it, then renamed). Returns its size in bytes.
 */
export function writeLightningCheckpoint(path: string, entries: TensorEntry[], fill: (i: number, e: TensorEntry) => Float32Array, meta: LightningMeta = {}): number {
  const tmp = `${path}.partial-${process.pid}`;
  const fd = openSync(tmp, 'w');
  let size = 0;
  try {
    const zip = new ZipStream(fd);
    zip.add('archive/data.pkl', lightningPickle(entries, meta));
    zip.add('archive/byteorder', Buffer.from('little'));
    entries.forEach((e, i) => {
      const d = fill(i, e);
      const n = e.shape.reduce((a, b) => a * b, 1);
      if (d.length !== n) throw new Error(`${e.key}: ${d.length} values for shape [${e.shape.join(', ')}]`);
      zip.add(`archive/data/${i}`, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    });
    zip.add('archive/version', Buffer.from('3\n'));
    zip.finish();
    size = zip.offset;
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return size;
}
