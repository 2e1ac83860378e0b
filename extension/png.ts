/**
 * Small PNG thumbnails for hover tooltips. VS Code renders at most 100,000 characters of a
 * MarkdownString, so the data-URI images of a hover must be small: maps and images are decoded
 * (PNG, 8/16-bit, any colour type, not interlaced), box-filtered down to a few hundred pixels at
 * most, and written back as 8-bit palette PNGs (an adaptive 256-colour palette), which keeps a
 * 160-px thumbnail to a few KB. Only node:zlib: the extension stays free of native modules.
 */
import { deflateSync, inflateSync } from 'node:zlib';

export interface RgbaImage {
  width: number;
  height: number;
  /** RGBA, 8 bits per channel. */
  data: Uint8Array;
}

const SIGNATURE = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);

/** Decodes a PNG; undefined for anything it does not handle (not a PNG, interlaced, corrupt). */
export function decodePng(bytes: Uint8Array): RgbaImage | undefined {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 8 || !buf.subarray(0, 8).equals(SIGNATURE)) return undefined;
  let off = 8;
  let width = 0;
  let height = 0;
  let depth = 0;
  let colorType = 0;
  let interlace = 0;
  let palette: Buffer | undefined;
  let trns: Buffer | undefined;
  const idat: Buffer[] = [];
  while (off + 8 <= buf.length) {
    const len = buf.readUInt32BE(off);
    const type = buf.toString('latin1', off + 4, off + 8);
    const data = buf.subarray(off + 8, off + 8 + len);
    off += 12 + len;
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      depth = data[8]!;
      colorType = data[9]!;
      interlace = data[12]!;
    } else if (type === 'PLTE') palette = data;
    else if (type === 'tRNS') trns = data;
    else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
  }
  if (!width || !height || interlace !== 0 || width * height > 64e6) return undefined;
  const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colorType];
  if (!channels || ![1, 2, 4, 8, 16].includes(depth)) return undefined;
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(idat));
  } catch {
    return undefined;
  }
  const bitsPerPixel = channels * depth;
  const stride = Math.ceil((width * bitsPerPixel) / 8);
  const bpp = Math.max(1, bitsPerPixel >> 3);
  if (raw.length < height * (stride + 1)) return undefined;
  const lines = new Uint8Array(height * stride);
  let prev = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const cur = lines.subarray(y * stride, (y + 1) * stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? cur[i - bpp]! : 0;
      const b = prev[i]!;
      const c = i >= bpp ? prev[i - bpp]! : 0;
      let v = src[i]!;
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      cur[i] = v & 255;
    }
    prev = cur;
  }
  const out = new Uint8Array(width * height * 4);
  const sample = (row: number, idx: number): number => {
    // The idx-th sample of a row, scaled to 8 bits.
    const base = row * stride;
    if (depth === 8) return lines[base + idx]!;
    if (depth === 16) return lines[base + idx * 2]!;
    const perByte = 8 / depth;
    const byte = lines[base + Math.floor(idx / perByte)]!;
    const shift = 8 - depth * ((idx % perByte) + 1);
    const v = (byte >> shift) & ((1 << depth) - 1);
    return colorType === 3 ? v : Math.round((v * 255) / ((1 << depth) - 1));
  };
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 4;
      if (colorType === 3) {
        const i = sample(y, x);
        out[o] = palette?.[i * 3] ?? 0;
        out[o + 1] = palette?.[i * 3 + 1] ?? 0;
        out[o + 2] = palette?.[i * 3 + 2] ?? 0;
        out[o + 3] = trns && i < trns.length ? trns[i]! : 255;
      } else if (colorType === 0 || colorType === 4) {
        const g = sample(y, x * channels);
        out[o] = out[o + 1] = out[o + 2] = g;
        out[o + 3] = colorType === 4 ? sample(y, x * channels + 1) : 255;
      } else {
        out[o] = sample(y, x * channels);
        out[o + 1] = sample(y, x * channels + 1);
        out[o + 2] = sample(y, x * channels + 2);
        out[o + 3] = colorType === 6 ? sample(y, x * channels + 3) : 255;
      }
    }
  }
  return { width, height, data: out };
}

/** Box-filter downscale so the longer side is at most `maxSide` (never upscales). */
export function downscale(img: RgbaImage, maxSide: number): RgbaImage {
  const scale = Math.min(1, maxSide / Math.max(img.width, img.height));
  if (scale >= 1) return img;
  const w = Math.max(1, Math.round(img.width * scale));
  const h = Math.max(1, Math.round(img.height * scale));
  const out = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    const y0 = Math.floor((y * img.height) / h);
    const y1 = Math.max(y0 + 1, Math.floor(((y + 1) * img.height) / h));
    for (let x = 0; x < w; x++) {
      const x0 = Math.floor((x * img.width) / w);
      const x1 = Math.max(x0 + 1, Math.floor(((x + 1) * img.width) / w));
      let r = 0;
      let g = 0;
      let b = 0;
      let a = 0;
      for (let yy = y0; yy < y1; yy++) {
        for (let xx = x0; xx < x1; xx++) {
          const i = (yy * img.width + xx) * 4;
          r += img.data[i]!;
          g += img.data[i + 1]!;
          b += img.data[i + 2]!;
          a += img.data[i + 3]!;
        }
      }
      const n = (y1 - y0) * (x1 - x0);
      const o = (y * w + x) * 4;
      out[o] = Math.round(r / n);
      out[o + 1] = Math.round(g / n);
      out[o + 2] = Math.round(b / n);
      out[o + 3] = Math.round(a / n);
    }
  }
  return { width: w, height: h, data: out };
}

/**
 * An adaptive palette of at most 256 colours (popularity of 5-bit-per-channel bins, each bin's
 * mean colour), and the pixels' indices into it (nearest colour, cached per bin).
 */
function quantize(img: RgbaImage): { palette: Buffer; indices: Uint8Array } {
  const { width, height, data } = img;
  const n = width * height;
  const count = new Uint32Array(32768);
  const sum = new Float64Array(32768 * 3);
  const bins = new Uint16Array(n);
  for (let p = 0; p < n; p++) {
    const a = data[p * 4 + 3]! / 255;
    const r = data[p * 4]! * a;
    const g = data[p * 4 + 1]! * a;
    const b = data[p * 4 + 2]! * a;
    const bin = ((r >> 3) << 10) | ((g >> 3) << 5) | (b >> 3);
    bins[p] = bin;
    count[bin]!++;
    sum[bin * 3] += r;
    sum[bin * 3 + 1] += g;
    sum[bin * 3 + 2] += b;
  }
  const used: number[] = [];
  for (let i = 0; i < 32768; i++) if (count[i]) used.push(i);
  used.sort((x, y) => count[y]! - count[x]!);
  const chosen = used.slice(0, 256);
  const palette = Buffer.alloc(chosen.length * 3);
  chosen.forEach((bin, k) => {
    palette[k * 3] = Math.round(sum[bin * 3]! / count[bin]!);
    palette[k * 3 + 1] = Math.round(sum[bin * 3 + 1]! / count[bin]!);
    palette[k * 3 + 2] = Math.round(sum[bin * 3 + 2]! / count[bin]!);
  });
  const lut = new Int16Array(32768).fill(-1);
  chosen.forEach((bin, k) => (lut[bin] = k));
  const indices = new Uint8Array(n);
  for (let p = 0; p < n; p++) {
    const bin = bins[p]!;
    let k = lut[bin]!;
    if (k < 0) {
      const r = sum[bin * 3]! / count[bin]!;
      const g = sum[bin * 3 + 1]! / count[bin]!;
      const b = sum[bin * 3 + 2]! / count[bin]!;
      let best = 0;
      let bestD = Infinity;
      for (let j = 0; j < chosen.length; j++) {
        const dr = palette[j * 3]! - r;
        const dg = palette[j * 3 + 1]! - g;
        const db = palette[j * 3 + 2]! - b;
        const d = 2 * dr * dr + 4 * dg * dg + 3 * db * db;
        if (d < bestD) {
          bestD = d;
          best = j;
        }
      }
      k = best;
      lut[bin] = k;
    }
    indices[p] = k;
  }
  return { palette, indices };
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(parts: Buffer[]): number {
  let c = 0xffffffff;
  for (const p of parts) for (let i = 0; i < p.length; i++) c = CRC_TABLE[(c ^ p[i]!) & 255]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const t = Buffer.from(type, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32([t, data]));
  return Buffer.concat([len, t, data, crc]);
}

/** An 8-bit palette PNG with an adaptive palette (alpha flattened onto black). */
export function encodePalettePng(img: RgbaImage): Buffer {
  const { width, height } = img;
  const { palette, indices } = quantize(img);
  const raw = Buffer.alloc(height * (width + 1));
  for (let y = 0; y < height; y++) {
    raw[y * (width + 1)] = 0;
    raw.set(indices.subarray(y * width, (y + 1) * width), y * (width + 1) + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 3;
  return Buffer.concat([SIGNATURE, chunk('IHDR', ihdr), chunk('PLTE', palette), chunk('IDAT', deflateSync(raw, { level: 9 })), chunk('IEND', Buffer.alloc(0))]);
}

/** Bytes of a data URI (base64 only). */
export function dataUriBytes(uri: string): Uint8Array | undefined {
  const m = /^data:[^;,]+;base64,(.*)$/s.exec(uri);
  return m ? Buffer.from(m[1]!, 'base64') : undefined;
}

/**
 * A thumbnail data URI of at most `maxSide` pixels from a PNG (bytes or data URI). Other formats
 * are kept as they are when already small (`maxChars`), else dropped (undefined).
 */
export function thumbnailDataUri(src: Uint8Array | string, maxSide = 128, maxChars = 40_000): string | undefined {
  const bytes = typeof src === 'string' ? dataUriBytes(src) : src;
  if (!bytes) return undefined;
  const img = decodePng(bytes);
  if (!img) {
    if (typeof src === 'string' && src.length <= maxChars) return src;
    return undefined;
  }
  return `data:image/png;base64,${encodePalettePng(downscale(img, maxSide)).toString('base64')}`;
}

/** VS Code renders at most this many characters of a MarkdownString; stay well below. */
const MARKDOWN_BUDGET = 95_000;

/**
 * `<img>` tags for a hover: each image as a small palette-PNG thumbnail (data URI), dropping the
 * optional ones (last first) if they would not fit in the hover's character budget.
 */
export function hoverImages(cells: Array<{ src: string | undefined; alt: string; optional?: boolean }>, height = 140, budget = MARKDOWN_BUDGET - 2_000): string {
  const thumbs = cells
    .map((c) => ({ ...c, thumb: c.src ? thumbnailDataUri(c.src, 160) : undefined }))
    .filter((c): c is typeof c & { thumb: string } => !!c.thumb);
  const tag = (c: { thumb: string; alt: string }) => `<img src="${c.thumb}" height="${height}" alt="${c.alt}" title="${c.alt}">`;
  let total = thumbs.reduce((n, c) => n + tag(c).length, 0);
  for (let i = thumbs.length - 1; i >= 0 && total > budget; i--) {
    if (!thumbs[i]!.optional) continue;
    total -= tag(thumbs[i]!).length;
    thumbs.splice(i, 1);
  }
  return thumbs.map(tag).join('&nbsp;');
}
