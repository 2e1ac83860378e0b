/**
 * Images out: PNG encoding (synchronous, deterministic bytes: fast-png), colour maps, heatmaps,
 * mask PNGs, heatmap overlays and detection contours, for the report, the daemon's maps and the
 * webviews. Decoding and resizing are in images.ts.
 */
import { encode } from 'fast-png';
import { resizeBilinearFloat, type RawImage } from './images.js';

// ---------------------------------------------------------------------------------------------
// PNG encoding (synchronous, deterministic bytes: fast-png, zlib from fflate)

/**
 * Encodes 8-bit pixels as PNG. `channels`: 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA); by
 * default it is inferred from the length. The output bytes depend only on the input (fast-png
 * writes every row unfiltered; zlib level 6).
 */
export function encodePng(pixels: Uint8Array, width: number, height: number, channels?: 1 | 2 | 3 | 4): Buffer {
  const C = channels ?? pixels.length / (width * height);
  if (![1, 2, 3, 4].includes(C) || pixels.length !== width * height * C) {
    throw new Error(`encodePng: ${pixels.length} bytes do not make a ${width}×${height} image with 1, 2, 3 or 4 channels`);
  }
  const png = encode({ width, height, data: pixels, channels: C, depth: 8 }, { zlib: { level: 6 } });
  return Buffer.from(png.buffer, png.byteOffset, png.byteLength);
}

/** `data:image/png;base64,…` for a PNG buffer. */
export function pngDataUri(png: Uint8Array): string {
  return `data:image/png;base64,${Buffer.from(png.buffer, png.byteOffset, png.byteLength).toString('base64')}`;
}

// ---------------------------------------------------------------------------------------------
// Colour maps, heatmaps, overlays, contours

export type Colormap = 'turbo' | 'jet' | 'gray';

const clamp01 = (x: number) => (x < 0 ? 0 : x > 1 ? 1 : x);
const to8 = (x: number) => Math.round(clamp01(x) * 255);

/** Google's Turbo colour map sampled at 33 points (from matplotlib's table); linear in between (within 3 levels). */
const TURBO_33 = [
  [48, 18, 59], [57, 42, 115], [64, 64, 162], [68, 86, 199], [70, 107, 227], [70, 128, 246], [66, 148, 255], [55, 168, 250],
  [40, 188, 235], [28, 205, 216], [24, 221, 194], [31, 233, 175], [50, 242, 152], [78, 249, 125], [109, 254, 98], [139, 255, 75],
  [164, 252, 60], [185, 246, 53], [205, 236, 52], [223, 223, 55], [238, 207, 58], [248, 190, 57], [253, 172, 52], [254, 150, 43],
  [251, 126, 33], [244, 102, 23], [235, 80, 14], [223, 63, 8], [208, 47, 5], [190, 33, 2], [169, 22, 1], [146, 11, 1], [122, 4, 3],
];

/** RGB bytes for t in [0, 1] (clamped; NaN → 0): turbo (default), jet or gray. */
export function colormapRgb(t: number, colormap: Colormap = 'turbo'): [number, number, number] {
  const x = clamp01(Number.isFinite(t) ? t : 0);
  if (colormap === 'gray') {
    const g = to8(x);
    return [g, g, g];
  }
  if (colormap === 'jet') {
    return [to8(1.5 - Math.abs(4 * x - 3)), to8(1.5 - Math.abs(4 * x - 2)), to8(1.5 - Math.abs(4 * x - 1))];
  }
  const f = x * 32;
  const i = Math.min(31, Math.floor(f));
  const u = f - i;
  const a = TURBO_33[i];
  const b = TURBO_33[i + 1];
  return [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * u)) as [number, number, number];
}

export interface HeatmapOptions {
  colormap?: Colormap;
  /** Values mapped to the ends of the colour map; default: the map's own min and max. */
  range?: [number, number];
}

function mapRange(map: ArrayLike<number>, range?: [number, number]): [number, number] {
  if (range) return range;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < map.length; i++) {
    const v = map[i];
    if (Number.isFinite(v)) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return lo <= hi ? [lo, hi] : [0, 1];
}

/** Colours a single-channel map: RGB bytes, one pixel per value. */
export function colorize(map: ArrayLike<number>, opts: HeatmapOptions = {}): Uint8Array {
  const [lo, hi] = mapRange(map, opts.range);
  const span = hi - lo;
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) lut.set(colormapRgb(i / 255, opts.colormap ?? 'turbo'), i * 3);
  const out = new Uint8Array(map.length * 3);
  for (let i = 0; i < map.length; i++) {
    const t = span > 0 ? (map[i] - lo) / span : 0;
    const k = Math.round(clamp01(Number.isFinite(t) ? t : 0) * 255) * 3;
    out[i * 3] = lut[k];
    out[i * 3 + 1] = lut[k + 1];
    out[i * 3 + 2] = lut[k + 2];
  }
  return out;
}

/** A colour PNG of a w×h map; the last argument is the options or just the colour map's name. */
export function heatmapPng(map: ArrayLike<number>, width: number, height: number, opts: HeatmapOptions | Colormap = {}): Buffer {
  if (map.length !== width * height) throw new Error(`heatmapPng: ${map.length} values for ${width}×${height}`);
  return encodePng(colorize(map, typeof opts === 'string' ? { colormap: opts } : opts), width, height, 3);
}

/** A black-and-white PNG of a binary mask (non-zero = white), e.g. an NFA segmentation. */
export function maskPng(mask: ArrayLike<number>, width: number, height: number): Buffer {
  if (mask.length !== width * height) throw new Error(`maskPng: ${mask.length} values for ${width}×${height}`);
  const px = new Uint8Array(width * height);
  for (let i = 0; i < px.length; i++) px[i] = mask[i] ? 255 : 0;
  return encodePng(px, width, height, 1);
}

export interface OverlayOptions extends HeatmapOptions {
  /** Opacity of the heatmap, 0..1 (default 0.5). */
  alpha?: number;
}

/**
 * Blends the coloured map over an RGB image: the map (mapW×mapH) is bilinearly resized to the
 * image's size first. Returns RGB bytes at the image's size.
 */
export function overlayHeatmap(image: RawImage, map: ArrayLike<number>, mapW: number, mapH: number, opts: OverlayOptions = {}): Uint8Array {
  if (image.channels !== 3) throw new Error('overlayHeatmap: the image must be RGB');
  const { width, height } = image;
  const m = mapW === width && mapH === height ? map : resizeBilinearFloat(map, mapW, mapH, width, height);
  const col = colorize(m, { colormap: opts.colormap, range: mapRange(map, opts.range) });
  const a = clamp01(opts.alpha ?? 0.5);
  const out = new Uint8Array(width * height * 3);
  for (let i = 0; i < out.length; i++) out[i] = Math.round((1 - a) * image.data[i] + a * col[i]);
  return out;
}

export interface ContourOptions {
  color?: [number, number, number];
  /** Line width in pixels, inside the region (default 1). */
  thickness?: number;
}

/**
 * Draws the outline of a binary mask (non-zero = inside; same size as the image) over an RGB
 * image: every inside pixel within `thickness` pixels (square neighbourhood) of an outside pixel or
 * of the image border gets the colour. Returns new RGB bytes.
 */
export function drawContour(image: RawImage, mask: Uint8Array, opts: ContourOptions = {}): Uint8Array {
  const { width: w, height: h } = image;
  if (image.channels !== 3) throw new Error('drawContour: the image must be RGB');
  if (mask.length !== w * h) throw new Error(`drawContour: mask has ${mask.length} values for a ${w}×${h} image`);
  const [r, g, b] = opts.color ?? [255, 0, 0];
  const t = Math.max(1, Math.round(opts.thickness ?? 1));
  const out = image.data.slice();
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!mask[y * w + x]) continue;
      let edge = false;
      for (let dy = -t; dy <= t && !edge; dy++) {
        for (let dx = -t; dx <= t; dx++) {
          if (dx === 0 && dy === 0) continue;
          if (t === 1 && dx !== 0 && dy !== 0) continue; // 4-connectivity for a 1-pixel line
          const yy = y + dy;
          const xx = x + dx;
          if (yy < 0 || yy >= h || xx < 0 || xx >= w || !mask[yy * w + xx]) {
            edge = true;
            break;
          }
        }
      }
      if (edge) {
        const o = (y * w + x) * 3;
        out[o] = r;
        out[o + 1] = g;
        out[o + 2] = b;
      }
    }
  }
  return out;
}
