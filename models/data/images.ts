/**
 * Image input for the models and the views: decoding (PNG, JPEG, TIFF through sharp; BMP by hand),
 * the official preprocessing resize, and masks. PNG encoding, heatmaps, overlays and contours are
 * in render.ts.
 *
 * Decoding. Every image becomes 8-bit RGB, as PIL's `Image.open(p).convert('RGB')` in the official
 * datamodule: grayscale is replicated, alpha is dropped (not composited), 16-bit is reduced to
 * 8-bit, EXIF orientation and embedded ICC profiles are ignored (PIL ignores both). sharp cannot
 * read BMP, so `decodeBmp` handles uncompressed 1/4/8-bit palette, 16-bit (5-5-5 or bit fields),
 * 24-bit and 32-bit files (BI_RGB / BI_BITFIELDS, bottom-up or top-down); RLE-compressed BMPs are
 * refused with a message that says to convert them.
 *
 * Resize. The official code uses torchvision `Resize(input_size)` on a PIL image, i.e. PIL
 * `Image.resize(size, BILINEAR)`: a separable triangle filter whose support is widened by the
 * downscale factor (antialiased), computed in 8-bit fixed point (22 fractional bits) with the
 * horizontal pass first and the intermediate rounded to uint8. `resizePilBilinear` reimplements
 * that algorithm (Pillow `libImaging/Resample.c`) and reproduces Pillow's output bit for bit (the
 * unit test holds reference values computed with Pillow 12.3). We do not use sharp's resize for
 * this: sharp's `kernel: 'linear'` goes through libvips shrink + reduce and is not Pillow's filter.
 * Measured residuals (sharp linear vs Pillow): the 4→2 row [0,70,140,210] gives [44,166] against
 * Pillow's hand-computable [50,160]; a metal_plate image 512→448 differs by 0.06 grey levels on
 * average (max 2); random noise 700×300→448² by 24 on average (sharp upsamples the 300 axis
 * differently). Our implementation is exact, so none of that reaches the model.
 *
 * Image shape. `input_size` is [height, width] (one integer: square), and every image is resized
 * straight to it, each axis with its own scale and the same PIL filter: torchvision's
 * `Resize((h, w))` (anomalib's), and the official `Resize(int)` wherever it was ever used (square
 * MVTec images). torchvision `Resize(int)` on a non-square image would keep the aspect ratio and
 * give tensors of different shapes that one batch cannot hold, so an image of another aspect
 * ratio (e.g. magnetic_tile) is stretched to the model's shape. Masks get the same treatment, so
 * they stay aligned.
 *
 * Masks. `loadMask` binarises at full resolution (any channel > 0 is defect), resizes the 0/255
 * mask like the image to the input size (PIL bilinear, antialiased), as the datamodule does, and
 * when the evaluation size differs, resizes that to it as evaluate.py does (torch bilinear,
 * align_corners=False, no antialiasing, on the [0, 1] values ToTensor gives); then > 0.5.
 */
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import sharp from 'sharp';
import { toHW, type SizeInput } from '../size.js';

// ---------------------------------------------------------------------------------------------
// Formats and errors

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff'] as const;

/** Whether the file name has one of the image extensions we read (case-insensitive). */
export function isImagePath(path: string): boolean {
  return (IMAGE_EXTENSIONS as readonly string[]).includes(extname(path).toLowerCase());
}

export type ImageFormat = 'png' | 'jpeg' | 'bmp' | 'tiff';

/** The format from the file's magic bytes, or undefined when it is none we read. */
export function sniffFormat(bytes: Uint8Array): ImageFormat | undefined {
  const b = bytes;
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47 && b[4] === 0x0d && b[5] === 0x0a && b[6] === 0x1a && b[7] === 0x0a) return 'png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 2 && b[0] === 0x42 && b[1] === 0x4d) return 'bmp';
  if (b.length >= 4 && ((b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2a && b[3] === 0x00) || (b[0] === 0x4d && b[1] === 0x4d && b[2] === 0x00 && b[3] === 0x2a))) return 'tiff';
  return undefined;
}

/** A file that cannot be read or decoded; `message` names the file and the fix. */
export class ImageError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'ImageError';
  }
}

export function corruptMessage(path: string): string {
  return `${path}: cannot be decoded as an image (truncated or corrupt): replace or remove the file`;
}

function corrupt(path: string): ImageError {
  return new ImageError(path, corruptMessage(path));
}

/** sharp's default pixel limit (16383 × 16383 + a little), raised or lowered with UFLOW_MAX_IMAGE_PIXELS. */
export const DEFAULT_MAX_IMAGE_PIXELS = 268402689;

/** The largest image (width × height) we decode: UFLOW_MAX_IMAGE_PIXELS, else DEFAULT_MAX_IMAGE_PIXELS. */
export function maxImagePixels(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.UFLOW_MAX_IMAGE_PIXELS);
  return Number.isInteger(v) && v > 0 ? v : DEFAULT_MAX_IMAGE_PIXELS;
}

export function tooLargeMessage(path: string, width: number | undefined, height: number | undefined, limit = maxImagePixels()): string {
  const size = width && height ? `${width}×${height} = ${width * height} pixels` : 'more pixels than allowed';
  return `${path}: image too large (${size}; limit ${limit} pixels): resize it, or set UFLOW_MAX_IMAGE_PIXELS to a larger limit`;
}

function isPixelLimitError(e: unknown): boolean {
  return /pixel limit/i.test((e as Error)?.message ?? '');
}

async function readBytes(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ImageError(path, `${path}: no such file: check the path`);
    if (code === 'EISDIR') throw new ImageError(path, `${path}: is a folder, not an image: give the path of an image file`);
    if (code === 'EACCES' || code === 'EPERM') throw new ImageError(path, `${path}: permission denied: make the file readable (chmod a+r) or remove it`);
    if (code === 'ELOOP') throw new ImageError(path, `${path}: a symbolic link that points to itself (a loop): fix or remove the link`);
    throw new ImageError(path, `${path}: cannot be read (${code ?? String(e)}): check the file's permissions`);
  }
}

// ---------------------------------------------------------------------------------------------
// Header-only inspection

export interface ImageHeader {
  width: number;
  height: number;
  format: ImageFormat;
}

function hasTail(b: Uint8Array, pattern: number[], window: number): boolean {
  const start = Math.max(0, b.length - window);
  outer: for (let i = b.length - pattern.length; i >= start; i--) {
    for (let j = 0; j < pattern.length; j++) if (b[i + j] !== pattern[j]) continue outer;
    return true;
  }
  return false;
}

const IEND = [0x49, 0x45, 0x4e, 0x44];
const EOI = [0xff, 0xd9];

/**
 * Width, height and format without decoding the pixels, plus a cheap truncation check (a PNG must
 * end with its IEND chunk, a JPEG with its EOI marker, a BMP must hold all its rows). When the
 * cheap check fails the file is decoded fully before calling it corrupt, so odd but valid files
 * (data after the end marker) pass. Corruption in the middle of the pixel data is only found by
 * `decodeImage`. Throws ImageError.
 */
export async function readImageHeader(path: string, bytes?: Uint8Array): Promise<ImageHeader> {
  const b = bytes ?? (await readBytes(path));
  const format = sniffFormat(b);
  if (!format) throw corrupt(path);
  if (format === 'bmp') {
    const h = parseBmpHeader(b, path);
    if (b.length < h.dataOffset + h.stride * h.height) throw corrupt(path);
    if (h.width * h.height > maxImagePixels()) throw new ImageError(path, tooLargeMessage(path, h.width, h.height));
    return { width: h.width, height: h.height, format };
  }
  let meta: sharp.Metadata;
  const limit = maxImagePixels();
  try {
    meta = await sharp(b, { limitInputPixels: false }).metadata();
  } catch (e) {
    if (isPixelLimitError(e)) throw new ImageError(path, tooLargeMessage(path, undefined, undefined, limit));
    throw corrupt(path);
  }
  if (!meta.width || !meta.height) throw corrupt(path);
  if (meta.width * meta.height > limit) throw new ImageError(path, tooLargeMessage(path, meta.width, meta.height, limit));
  const suspicious = (format === 'png' && !hasTail(b, IEND, 64)) || (format === 'jpeg' && !hasTail(b, EOI, 1024));
  if (suspicious) await decodeImageBytes(b, path);
  return { width: meta.width, height: meta.height, format };
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** An 8-bit image, interleaved: `data.length === width * height * channels`. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

/** Decodes an image file to 8-bit RGB (channels = 3). Throws ImageError. */
export async function decodeImage(path: string): Promise<RawImage> {
  return decodeImageBytes(await readBytes(path), path);
}

/** Decodes image bytes to 8-bit RGB; `path` only names the file in errors. Throws ImageError. */
export async function decodeImageBytes(bytes: Uint8Array, path: string): Promise<RawImage> {
  const format = sniffFormat(bytes);
  if (!format) throw corrupt(path);
  if (format === 'bmp') return decodeBmp(bytes, path);
  const limit = maxImagePixels();
  try {
    const { data, info } = await sharp(bytes, { failOn: 'error', ignoreIcc: true, limitInputPixels: limit })
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`unexpected ${info.channels} channels`);
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength), width: info.width, height: info.height, channels: 3 };
  } catch (e) {
    if (isPixelLimitError(e)) {
      const meta = await sharp(bytes, { limitInputPixels: false }).metadata().catch(() => undefined);
      throw new ImageError(path, tooLargeMessage(path, meta?.width, meta?.height, limit));
    }
    throw corrupt(path);
  }
}

interface BmpHeader {
  width: number;
  height: number;
  topDown: boolean;
  bpp: number;
  compression: number;
  dataOffset: number;
  stride: number;
  dibSize: number;
}

function parseBmpHeader(b: Uint8Array, path: string): BmpHeader {
  if (b.length < 26) throw corrupt(path);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const dataOffset = v.getUint32(10, true);
  const dibSize = v.getUint32(14, true);
  let width: number, rawHeight: number, bpp: number, compression = 0;
  if (dibSize === 12) {
    width = v.getUint16(18, true);
    rawHeight = v.getInt16(20, true);
    bpp = v.getUint16(24, true);
  } else if (dibSize >= 40) {
    if (b.length < 54) throw corrupt(path);
    width = v.getInt32(18, true);
    rawHeight = v.getInt32(22, true);
    bpp = v.getUint16(28, true);
    compression = v.getUint32(30, true);
  } else {
    throw corrupt(path);
  }
  const height = Math.abs(rawHeight);
  if (width <= 0 || height === 0 || width > 1 << 16 || height > 1 << 16) throw corrupt(path);
  if (![1, 4, 8, 16, 24, 32].includes(bpp)) throw corrupt(path);
  if (compression === 1 || compression === 2 || compression === 4 || compression === 5) {
    throw new ImageError(path, `${path}: compressed BMP (RLE, JPEG or PNG inside) is not supported: convert the file to PNG`);
  }
  if (compression !== 0 && compression !== 3 && compression !== 6) throw corrupt(path);
  const stride = Math.floor((bpp * width + 31) / 32) * 4;
  return { width, height, topDown: rawHeight < 0, bpp, compression, dataOffset, stride, dibSize };
}

function maskShift(mask: number): { shift: number; max: number } {
  if (mask === 0) return { shift: 0, max: 0 };
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  return { shift, max: mask >>> shift };
}

/**
 * Decodes an uncompressed BMP (1/4/8-bit palette, 16-bit, 24-bit, 32-bit; BI_RGB or BI_BITFIELDS)
 * to 8-bit RGB. Alpha, if any, is dropped. Throws ImageError.
 */
export function decodeBmp(bytes: Uint8Array, path: string): RawImage {
  if (sniffFormat(bytes) !== 'bmp') throw corrupt(path);
  const h = parseBmpHeader(bytes, path);
  const { width, height, bpp, stride, dataOffset } = h;
  if (bytes.length < dataOffset + stride * height) throw corrupt(path);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Uint8Array(width * height * 3);
  let palette: Uint8Array | undefined;
  if (bpp <= 8) {
    const entry = h.dibSize === 12 ? 3 : 4;
    const used = h.dibSize >= 40 ? v.getUint32(46, true) : 0;
    const count = used > 0 && used <= 1 << bpp ? used : 1 << bpp;
    const at = 14 + h.dibSize;
    palette = new Uint8Array(256 * 3);
    for (let i = 0; i < count; i++) {
      const p = at + i * entry;
      if (p + 3 > bytes.length) throw corrupt(path);
      palette[i * 3] = bytes[p + 2];
      palette[i * 3 + 1] = bytes[p + 1];
      palette[i * 3 + 2] = bytes[p];
    }
  }
  let masks: Array<{ mask: number; shift: number; max: number }> | undefined;
  if (bpp === 16 || bpp === 32) {
    let m: number[];
    if (h.compression === 3 || h.compression === 6) {
      if (bytes.length < 66) throw corrupt(path);
      m = [v.getUint32(54, true), v.getUint32(58, true), v.getUint32(62, true)];
    } else {
      m = bpp === 16 ? [0x7c00, 0x03e0, 0x001f] : [0xff0000, 0x00ff00, 0x0000ff];
    }
    masks = m.map((mask) => ({ mask, ...maskShift(mask) }));
  }
  for (let row = 0; row < height; row++) {
    const y = h.topDown ? row : height - 1 - row;
    const base = dataOffset + row * stride;
    let o = y * width * 3;
    for (let x = 0; x < width; x++, o += 3) {
      if (palette) {
        const bit = x * bpp;
        const byte = bytes[base + (bit >> 3)];
        const idx = bpp === 8 ? byte : (byte >> (8 - bpp - (bit & 7))) & ((1 << bpp) - 1);
        out[o] = palette[idx * 3];
        out[o + 1] = palette[idx * 3 + 1];
        out[o + 2] = palette[idx * 3 + 2];
      } else if (bpp === 24) {
        const p = base + x * 3;
        out[o] = bytes[p + 2];
        out[o + 1] = bytes[p + 1];
        out[o + 2] = bytes[p];
      } else {
        const px = bpp === 16 ? v.getUint16(base + x * 2, true) : v.getUint32(base + x * 4, true);
        for (let c = 0; c < 3; c++) {
          const m = masks![c];
          out[o + c] = m.max === 0 ? 0 : Math.round((((px & m.mask) >>> m.shift) * 255) / m.max);
        }
      }
    }
  }
  return { data: out, width, height, channels: 3 };
}

// ---------------------------------------------------------------------------------------------
// Resize (Pillow BILINEAR, bit-exact)

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

interface Coeffs {
  ksize: number;
  bounds: Int32Array; // [xmin, count] per output
  kk: Int32Array; // fixed-point weights, ksize per output
}

/** Pillow `precompute_coeffs` with the bilinear (triangle) filter, then `normalize_coeffs_8bpc`. */
function pilCoeffs(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 1.0 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      let t = Math.abs((x + xmin - center + 0.5) * ss);
      t = t < 1 ? 1 - t : 0;
      w[x] = t;
      ww += t;
    }
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0 ? w[x] / ww : w[x];
      kk[xx * ksize + x] = k < 0 ? Math.trunc(-0.5 + k * ONE) : Math.trunc(0.5 + k * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, kk };
}

function clip8(ss: number): number {
  const v = Math.floor(ss / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Pillow `Image.resize((dw, dh), Image.BILINEAR)` on an 8-bit image with `channels` interleaved
 * channels (1 = 'L', 3 = 'RGB'): antialiased when shrinking, horizontal pass first, fixed point.
 * Bit-exact with Pillow.
 */
export function resizePilBilinear(src: Uint8Array, width: number, height: number, channels: number, dw: number, dh: number): Uint8Array {
  if (src.length !== width * height * channels) throw new Error(`resizePilBilinear: ${src.length} values for ${width}×${height}×${channels}`);
  if (!(dw > 0 && dh > 0 && Number.isInteger(dw) && Number.isInteger(dh))) throw new Error(`resizePilBilinear: bad output size ${dw}×${dh}`);
  if (dw === width && dh === height) return src.slice();
  const C = channels;
  let cur = src;
  let curW = width;
  let rowFirst = 0;
  const vert = dh !== height ? pilCoeffs(height, dh) : undefined;
  if (dw !== width) {
    const hc = pilCoeffs(width, dw);
    // Only the rows the vertical pass reads (as Pillow does; the result is the same).
    let yFirst = 0;
    let yLast = height;
    if (vert) {
      yFirst = vert.bounds[0];
      yLast = vert.bounds[(dh - 1) * 2] + vert.bounds[(dh - 1) * 2 + 1];
    }
    const rows = yLast - yFirst;
    const tmp = new Uint8Array(dw * rows * C);
    for (let y = 0; y < rows; y++) {
      const inRow = (y + yFirst) * width * C;
      const outRow = y * dw * C;
      for (let xx = 0; xx < dw; xx++) {
        const xmin = hc.bounds[xx * 2];
        const n = hc.bounds[xx * 2 + 1];
        const k0 = xx * hc.ksize;
        for (let c = 0; c < C; c++) {
          let ss = HALF;
          for (let x = 0; x < n; x++) ss += src[inRow + (xmin + x) * C + c] * hc.kk[k0 + x];
          tmp[outRow + xx * C + c] = clip8(ss);
        }
      }
    }
    cur = tmp;
    curW = dw;
    rowFirst = yFirst;
  }
  if (!vert) return cur;
  const out = new Uint8Array(dw * dh * C);
  const rowLen = curW * C;
  for (let yy = 0; yy < dh; yy++) {
    const ymin = vert.bounds[yy * 2] - rowFirst;
    const n = vert.bounds[yy * 2 + 1];
    const k0 = yy * vert.ksize;
    const outRow = yy * rowLen;
    for (let i = 0; i < rowLen; i++) {
      let ss = HALF;
      for (let y = 0; y < n; y++) ss += cur[(ymin + y) * rowLen + i] * vert.kk[k0 + y];
      out[outRow + i] = clip8(ss);
    }
  }
  return out;
}

/**
 * Bilinear resize of a float map as `torch.nn.functional.interpolate(mode='bilinear',
 * align_corners=False)` (no antialiasing): the upsampling the reference applies to anomaly maps
 * and to 448 masks before evaluation at 256.
 */
export function resizeBilinearFloat(src: ArrayLike<number>, width: number, height: number, dw: number, dh: number): Float32Array {
  const out = new Float32Array(dw * dh);
  const sx = width / dw;
  const sy = height / dh;
  const xi0 = new Int32Array(dw);
  const xi1 = new Int32Array(dw);
  const xl = new Float64Array(dw);
  for (let x = 0; x < dw; x++) {
    let f = (x + 0.5) * sx - 0.5;
    if (f < 0) f = 0;
    const i = Math.min(Math.floor(f), width - 1);
    xi0[x] = i;
    xi1[x] = Math.min(i + 1, width - 1);
    xl[x] = f - i;
  }
  for (let y = 0; y < dh; y++) {
    let f = (y + 0.5) * sy - 0.5;
    if (f < 0) f = 0;
    const j0 = Math.min(Math.floor(f), height - 1);
    const j1 = Math.min(j0 + 1, height - 1);
    const ly = f - j0;
    for (let x = 0; x < dw; x++) {
      const a = src[j0 * width + xi0[x]];
      const b = src[j0 * width + xi1[x]];
      const c = src[j1 * width + xi0[x]];
      const d = src[j1 * width + xi1[x]];
      const lx = xl[x];
      out[y * dw + x] = (1 - ly) * ((1 - lx) * a + lx * b) + ly * ((1 - lx) * c + lx * d);
    }
  }
  return out;
}

/** Nearest-neighbour resize of a single-channel byte map (e.g. a 0/1 mask onto an image). */
export function resizeNearest(src: Uint8Array, width: number, height: number, dw: number, dh: number): Uint8Array {
  const out = new Uint8Array(dw * dh);
  for (let y = 0; y < dh; y++) {
    const sy = Math.min(height - 1, Math.floor(((y + 0.5) * height) / dh));
    for (let x = 0; x < dw; x++) {
      const sx = Math.min(width - 1, Math.floor(((x + 0.5) * width) / dw));
      out[y * dw + x] = src[sy * width + sx];
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Model inputs and masks

export interface ModelImage {
  /** NHWC 1×H×W×3, RGB in [0, 1], at the input size. */
  data: Float32Array;
  /** The original image's size. */
  width: number;
  height: number;
}

/** Decodes, converts to RGB and resizes to the input size ([h, w]; one integer: square; see the header). Throws ImageError. */
export async function loadImageForModel(path: string, inputSize: SizeInput): Promise<ModelImage> {
  const [h, w] = toHW(inputSize);
  const img = await decodeImage(path);
  const px = resizePilBilinear(img.data, img.width, img.height, 3, w, h);
  const data = new Float32Array(px.length);
  for (let i = 0; i < px.length; i++) data[i] = px[i] / 255;
  return { data, width: img.width, height: img.height };
}

/** The binary mask (1 = defect) at full resolution: any channel > 0. */
export async function loadMaskFull(path: string): Promise<{ data: Uint8Array; width: number; height: number }> {
  const img = await decodeImage(path);
  const n = img.width * img.height;
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i++) data[i] = img.data[i * 3] | img.data[i * 3 + 1] | img.data[i * 3 + 2] ? 1 : 0;
  return { data, width: img.width, height: img.height };
}

/**
 * The mask at the evaluation size (default: the input size), row-major [th·tw], 1 = defect:
 * binarised at full size, PIL-bilinear resized to the input size, then (when the evaluation size
 * differs) torch-bilinear resized to it, > 0.5. Throws ImageError.
 */
export async function loadMask(path: string, inputSize: SizeInput, targetSize: SizeInput = inputSize): Promise<Uint8Array> {
  const m = await loadMaskFull(path);
  return resizeMask(m.data, m.width, m.height, inputSize, targetSize);
}

/** `loadMask` on a decoded 0/1 mask (width × height, row-major). */
export function resizeMask(mask: ArrayLike<number>, width: number, height: number, inputSize: SizeInput, targetSize: SizeInput = inputSize): Uint8Array {
  const [h, w] = toHW(inputSize);
  const [th, tw] = toHW(targetSize, 'evaluation size');
  const bytes = new Uint8Array(width * height);
  for (let i = 0; i < bytes.length; i++) bytes[i] = mask[i] ? 255 : 0;
  const r = resizePilBilinear(bytes, width, height, 1, w, h);
  const out = new Uint8Array(th * tw);
  if (th === h && tw === w) {
    for (let i = 0; i < out.length; i++) out[i] = r[i] / 255 > 0.5 ? 1 : 0;
    return out;
  }
  const f = new Float32Array(r.length);
  for (let i = 0; i < f.length; i++) f[i] = r[i] / 255;
  const up = resizeBilinearFloat(f, w, h, tw, th);
  for (let i = 0; i < out.length; i++) out[i] = up[i]! > 0.5 ? 1 : 0;
  return out;
}
