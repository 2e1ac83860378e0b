/**
 * Small PNG thumbnails for hover tooltips. VS Code renders at most 100,000 characters of a
 * MarkdownString, so the data-URI images of a hover must be small: maps and images are decoded
 * (PNG, 8/16-bit, any colour type; fast-png, pure JS), box-filtered down to a few hundred pixels
 * at most, and written back as 8-bit palette PNGs (an adaptive 256-colour palette), which keeps a
 * 160-px thumbnail to a few KB. The extension stays free of native modules (no sharp here).
 */
import { convertIndexedToRgb, decode, encode, hasPngSignature, type DecodedPng, type IndexedColors } from 'fast-png';

export interface RgbaImage {
  width: number;
  height: number;
  /** RGBA, 8 bits per channel. */
  data: Uint8Array;
}

/** Larger images are refused before decoding (a hover has no use for them). */
const MAX_PIXELS = 64e6;

/**
 * The IHDR fields checked before fast-png decodes: the size (to refuse huge images before they
 * are allocated) and the interlacing (fast-png's Adam7 path does not unpack samples below 8 bits).
 */
function header(bytes: Uint8Array): { width: number; height: number; depth: number; interlaced: boolean } | undefined {
  if (bytes.length < 33 || !hasPngSignature(bytes)) return undefined;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (String.fromCharCode(bytes[12]!, bytes[13]!, bytes[14]!, bytes[15]!) !== 'IHDR') return undefined;
  return { width: v.getUint32(16), height: v.getUint32(20), depth: bytes[24]!, interlaced: bytes[28] !== 0 };
}

/** Decodes a PNG; undefined for anything it does not handle (not a PNG, corrupt, huge, interlaced below 8 bits). */
export function decodePng(bytes: Uint8Array): RgbaImage | undefined {
  const h = header(bytes);
  if (!h || !h.width || !h.height || h.width * h.height > MAX_PIXELS || (h.interlaced && h.depth < 8)) return undefined;
  try {
    return toRgba(decode(bytes));
  } catch {
    return undefined;
  }
}

/** The 2^depth grey levels of a low-depth grey image as a palette (the tRNS grey level transparent). */
function greyLevels(depth: number, transparency: Uint16Array | undefined): IndexedColors {
  const max = (1 << depth) - 1;
  return Array.from({ length: max + 1 }, (_, i) => {
    const g = Math.round((i * 255) / max);
    return [g, g, g, transparency?.[0] === i ? 0 : 255];
  });
}

/** fast-png's decoded samples (any depth, colour type, palette, tRNS) as 8-bit RGBA. */
function toRgba(png: DecodedPng): RgbaImage {
  const { width, height, depth, channels, data } = png;
  const n = width * height;
  const out = new Uint8Array(n * 4);
  if (channels === 1 && (png.palette || depth < 8)) {
    // Palette indices, or grey packed below 8 bits: both through fast-png's index expansion.
    const palette = png.palette ?? greyLevels(depth, png.transparency);
    const px = convertIndexedToRgb({ ...png, palette });
    const k = px.length / n;
    for (let p = 0; p < n; p++) {
      out[p * 4] = px[p * k]!;
      out[p * 4 + 1] = px[p * k + 1]!;
      out[p * 4 + 2] = px[p * k + 2]!;
      out[p * 4 + 3] = k === 4 ? px[p * k + 3]! : 255;
    }
    return { width, height, data: out };
  }
  const shift = depth === 16 ? 8 : 0;
  const key = png.transparency; // tRNS of grey or RGB: one colour, in sample units, is transparent
  for (let p = 0; p < n; p++) {
    const s = p * channels;
    const o = p * 4;
    if (channels <= 2) {
      out[o] = out[o + 1] = out[o + 2] = data[s]! >> shift;
      out[o + 3] = channels === 2 ? data[s + 1]! >> shift : key && data[s] === key[0] ? 0 : 255;
    } else {
      out[o] = data[s]! >> shift;
      out[o + 1] = data[s + 1]! >> shift;
      out[o + 2] = data[s + 2]! >> shift;
      out[o + 3] = channels === 4 ? data[s + 3]! >> shift : key && data[s] === key[0] && data[s + 1] === key[1] && data[s + 2] === key[2] ? 0 : 255;
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
function quantize(img: RgbaImage): { palette: IndexedColors; indices: Uint8Array } {
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
  const palette = chosen.map((bin) => [0, 1, 2].map((c) => Math.round(sum[bin * 3 + c]! / count[bin]!)));
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
        const [pr, pg, pb] = palette[j]!;
        const dr = pr! - r;
        const dg = pg! - g;
        const db = pb! - b;
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

/** An 8-bit palette PNG with an adaptive palette (alpha flattened onto black). */
export function encodePalettePng(img: RgbaImage): Buffer {
  const { palette, indices } = quantize(img);
  const png = encode({ width: img.width, height: img.height, data: indices, channels: 1, depth: 8, palette }, { zlib: { level: 9 } });
  return Buffer.from(png.buffer, png.byteOffset, png.byteLength);
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
