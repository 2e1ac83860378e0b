import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeBmp, decodeImage, isImagePath, loadImageForModel, loadMask, readImageHeader, resizeBilinearFloat, resizeNearest, resizePilBilinear, sniffFormat } from '../../models/data/images.js';
import { colorize, colormapRgb, drawContour, encodePng, heatmapPng, maskPng, overlayHeatmap, pngDataUri } from '../../models/data/render.js';

const tmp = mkdtempSync(join(tmpdir(), 'uflow-images-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

/** The LCG used to make the Pillow reference images (same sequence in Python; BigInt keeps it exact). */
function lcgExact(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = BigInt(seed);
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245n + 12345n) % 2147483648n;
    out[i] = Number((x >> 16n) & 255n);
  }
  return out;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('resizePilBilinear is bit-exact with Pillow Image.resize(BILINEAR) (reference values from Pillow 12.3)', () => {
  // 16×16 L → 7×7 (downscale, antialiased)
  assert.deepEqual(
    [...resizePilBilinear(lcgExact(256, 1), 16, 16, 1, 7, 7)],
    [121, 125, 142, 130, 137, 123, 115, 120, 123, 156, 133, 136, 116, 81, 139, 107, 154, 124, 141, 126, 109, 105, 85, 121, 118, 107, 109, 97, 111, 130, 118, 131, 109, 122, 100, 122, 139, 138, 153, 85, 109, 148, 186, 167, 118, 97, 125, 129, 147],
  );
  // 6×5 L → 13×11 (upscale: plain bilinear)
  assert.deepEqual(
    [...resizePilBilinear(lcgExact(30, 3), 6, 5, 1, 13, 11)],
    [83, 105, 156, 187, 155, 125, 123, 120, 129, 139, 155, 173, 180, 82, 104, 154, 184, 148, 115, 112, 107, 119, 132, 144, 156, 160, 79, 100, 150, 176, 132, 91, 83, 74, 93, 115, 117, 113, 110, 76, 93, 136, 159, 121, 85, 70, 54, 74, 97, 92, 77, 71, 68, 74, 87, 104, 132, 155, 121, 85, 77, 71, 71, 73, 73, 61, 54, 37, 49, 143, 225, 171, 116, 80, 45, 50, 68, 76, 118, 112, 97, 103, 168, 224, 165, 106, 115, 130, 121, 103, 96, 176, 170, 157, 157, 194, 222, 159, 95, 150, 216, 192, 138, 116, 161, 167, 182, 193, 195, 193, 158, 123, 160, 204, 178, 130, 110, 129, 149, 198, 224, 189, 156, 159, 161, 164, 167, 143, 111, 97, 116, 142, 204, 237, 187, 141, 159, 176, 165, 152, 129, 103, 92],
  );
  // 23×17 RGB → 9×11: first and last pixels
  const rgb = resizePilBilinear(lcgExact(23 * 17 * 3, 2), 23, 17, 3, 9, 11);
  assert.deepEqual([...rgb.slice(0, 9)], [104, 141, 157, 148, 119, 78, 212, 149, 109]);
  assert.deepEqual([...rgb.slice(-5)], [136, 174, 162, 108, 91]);
  // non-square to 448² (down in x, up in y), RGB and L: hashes of Pillow's output
  assert.equal(sha(resizePilBilinear(lcgExact(700 * 300 * 3, 4), 700, 300, 3, 448, 448)), '1f42681d0934c9be27b6cc183d9e71e13767419593a50e95da2223c9863a1c2c');
  assert.equal(sha(resizePilBilinear(lcgExact(620 * 103, 5), 620, 103, 1, 448, 448)), '399379b67ff5154208cf22fed3b40b232321e1b9ba91f74fea81b2bcd81dc56f');
});

/** Independent reference: continuous triangle filter of half-width max(scale, 1), normalised, per axis. */
function triangle1d(src: number[], outN: number): number[] {
  const inN = src.length;
  const scale = inN / outN;
  const fs = Math.max(1, scale);
  const out: number[] = [];
  for (let o = 0; o < outN; o++) {
    const center = (o + 0.5) * scale;
    let acc = 0;
    let wsum = 0;
    for (let i = 0; i < inN; i++) {
      const w = Math.max(0, 1 - Math.abs((i + 0.5 - center) / fs));
      acc += w * src[i];
      wsum += w;
    }
    out.push(acc / wsum);
  }
  return out;
}

test('the resize matches a hand-computed antialiased triangle downscale; sharp linear differs (documented)', async (t) => {
  // 4 → 2: weights (3/7, 3/7, 1/7) and (1/7, 3/7, 3/7)
  assert.deepEqual([...resizePilBilinear(Uint8Array.from([0, 70, 140, 210]), 4, 1, 1, 2, 1)], [50, 160]);
  assert.deepEqual(triangle1d([0, 70, 140, 210], 2), [50, 160]);
  // 2-D separable with a uint8 intermediate: within one grey level of the float reference
  const W = 19, H = 13, DW = 6, DH = 5;
  const src = lcgExact(W * H, 9);
  const ours = resizePilBilinear(src, W, H, 1, DW, DH);
  const rows: number[][] = [];
  for (let y = 0; y < H; y++) rows.push(triangle1d([...src.slice(y * W, (y + 1) * W)], DW).map((v) => Math.min(255, Math.max(0, Math.floor(v + 0.5)))));
  let maxDiff = 0;
  for (let x = 0; x < DW; x++) {
    const col = triangle1d(rows.map((r) => r[x]), DH);
    for (let y = 0; y < DH; y++) maxDiff = Math.max(maxDiff, Math.abs(col[y] - ours[y * DW + x]));
  }
  assert.ok(maxDiff <= 1, `max difference ${maxDiff}`);
  // sharp's 'linear' kernel is not Pillow's antialiased bilinear: record the residual
  const sh = await sharp(Buffer.from([0, 70, 140, 210]), { raw: { width: 4, height: 1, channels: 1 } })
    .resize(2, 1, { fit: 'fill', kernel: 'linear' })
    .extractChannel(0)
    .raw()
    .toBuffer();
  t.diagnostic(`sharp kernel 'linear' on [0,70,140,210] → [${[...sh]}], Pillow → [50,160]`);
  assert.notDeepEqual([...sh], [50, 160]);
});

test('resizeBilinearFloat follows torch interpolate(bilinear, align_corners=False)', () => {
  assert.deepEqual([...resizeBilinearFloat([0, 1], 2, 1, 4, 1)], [0, 0.25, 0.75, 1]);
  const up = resizeBilinearFloat([0, 1, 2, 3], 2, 2, 4, 4);
  assert.deepEqual([...up.slice(0, 4)], [0, 0.25, 0.75, 1]);
  assert.deepEqual([...up.slice(12)], [2, 2.25, 2.75, 3]);
  // downscale by 2 averages pairs (no antialiasing beyond that)
  assert.deepEqual([...resizeBilinearFloat([0, 2, 4, 6], 4, 1, 2, 1)], [1, 5]);
  assert.deepEqual([...resizeNearest(Uint8Array.from([1, 0, 0, 1]), 2, 2, 4, 4)], [1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1]);
});

async function writeRaw(name: string, data: Uint8Array, width: number, height: number, channels: 1 | 2 | 3 | 4, fmt: 'png' | 'jpeg' | 'tiff', sixteen = false): Promise<string> {
  let s = sharp(Buffer.from(data), { raw: { width, height, channels } });
  if (sixteen) s = s.toColourspace('grey16');
  const buf = fmt === 'png' ? await s.png().toBuffer() : fmt === 'jpeg' ? await s.jpeg({ quality: 100 }).toBuffer() : await s.tiff({ compression: 'lzw' }).toBuffer();
  const p = join(tmp, name);
  writeFileSync(p, buf);
  return p;
}

test('grayscale, gray+alpha, RGBA, 16-bit, JPEG and TIFF inputs decode to 8-bit RGB', async () => {
  const gray = Uint8Array.from([0, 50, 100, 150, 200, 250]);
  const g = await decodeImage(await writeRaw('g.png', gray, 3, 2, 1, 'png'));
  assert.equal(g.channels, 3);
  assert.deepEqual([...g.data], [...gray].flatMap((v) => [v, v, v]));
  const rgba = Uint8Array.from([10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255, 1, 2, 3, 4]);
  const a = await decodeImage(await writeRaw('a.png', rgba, 2, 2, 4, 'png'));
  assert.deepEqual([...a.data], [10, 20, 30, 40, 50, 60, 70, 80, 90, 1, 2, 3]); // alpha dropped, as PIL convert('RGB')
  const ga = await decodeImage(await writeRaw('ga.png', Uint8Array.from([7, 0, 9, 255]), 2, 1, 2, 'png'));
  assert.deepEqual([...ga.data], [7, 7, 7, 9, 9, 9]);
  const g16 = await decodeImage(await writeRaw('g16.png', gray, 3, 2, 1, 'png', true));
  assert.deepEqual([...g16.data], [...gray].flatMap((v) => [v, v, v]));
  const flat = new Uint8Array(8 * 8).fill(77);
  const j = await decodeImage(await writeRaw('g.jpg', flat, 8, 8, 1, 'jpeg'));
  assert.equal(j.width, 8);
  assert.ok([...j.data].every((v) => Math.abs(v - 77) <= 1));
  const tf = await decodeImage(await writeRaw('c.tif', Uint8Array.from([1, 2, 3, 4, 5, 6]), 2, 1, 3, 'tiff'));
  assert.deepEqual([...tf.data], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(await readImageHeader(join(tmp, 'c.tif')), { width: 2, height: 1, format: 'tiff' });
  assert.deepEqual(await readImageHeader(join(tmp, 'g.jpg')), { width: 8, height: 8, format: 'jpeg' });
  assert.ok(isImagePath('x/A.PNG') && isImagePath('b.jpeg') && isImagePath('c.bmp') && !isImagePath('d.txt') && !isImagePath('e.gif'));
});

/** A BMP file: header fields as given, rows written bottom-up unless topDown. */
function makeBmp(o: { width: number; height: number; bpp: number; rows: number[][]; palette?: number[][]; compression?: number; masks?: number[]; topDown?: boolean; dib?: number }): Uint8Array {
  const dib = o.dib ?? (o.masks ? 108 : 40);
  const stride = Math.floor((o.bpp * o.width + 31) / 32) * 4;
  const pal = o.palette ?? [];
  const dataOffset = 14 + dib + pal.length * 4;
  const size = dataOffset + stride * o.height;
  const b = new Uint8Array(size);
  const v = new DataView(b.buffer);
  b[0] = 0x42;
  b[1] = 0x4d;
  v.setUint32(2, size, true);
  v.setUint32(10, dataOffset, true);
  v.setUint32(14, dib, true);
  v.setInt32(18, o.width, true);
  v.setInt32(22, o.topDown ? -o.height : o.height, true);
  v.setUint16(26, 1, true);
  v.setUint16(28, o.bpp, true);
  v.setUint32(30, o.compression ?? 0, true);
  v.setUint32(46, pal.length, true);
  if (o.masks) o.masks.forEach((m, i) => v.setUint32(54 + 4 * i, m, true));
  pal.forEach(([r, g, bb], i) => b.set([bb, g, r, 0], 14 + dib + i * 4));
  for (let y = 0; y < o.height; y++) {
    const fileRow = o.topDown ? y : o.height - 1 - y;
    b.set(o.rows[y], dataOffset + fileRow * stride);
  }
  return b;
}

test('BMP: 24-bit, 32-bit top-down, bit fields, 16-bit, 8/4/1-bit palette decode; RLE and truncated are refused', async () => {
  // 24-bit, width 3 (row padded to 12 bytes), bottom-up; bytes are B,G,R
  const b24 = makeBmp({ width: 3, height: 2, bpp: 24, rows: [[3, 2, 1, 6, 5, 4, 9, 8, 7], [12, 11, 10, 15, 14, 13, 18, 17, 16]] });
  assert.equal(sniffFormat(b24), 'bmp');
  assert.deepEqual([...decodeBmp(b24, 'x.bmp').data], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]);
  // 32-bit BI_RGB top-down (B,G,R,X)
  const b32 = makeBmp({ width: 2, height: 2, bpp: 32, topDown: true, rows: [[3, 2, 1, 255, 6, 5, 4, 0], [9, 8, 7, 1, 12, 11, 10, 2]] });
  assert.deepEqual([...decodeBmp(b32, 'x.bmp').data], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  // 32-bit BI_BITFIELDS, RGBA byte order in memory (R mask 0x000000ff)
  const bf = makeBmp({ width: 1, height: 1, bpp: 32, compression: 3, masks: [0x000000ff, 0x0000ff00, 0x00ff0000, 0xff000000], rows: [[11, 22, 33, 44]] });
  assert.deepEqual([...decodeBmp(bf, 'x.bmp').data], [11, 22, 33]);
  // 16-bit 5-5-5: pure red 0x7c00, white 0x7fff
  const b16 = makeBmp({ width: 2, height: 1, bpp: 16, rows: [[0x00, 0x7c, 0xff, 0x7f]] });
  assert.deepEqual([...decodeBmp(b16, 'x.bmp').data], [255, 0, 0, 255, 255, 255]);
  // 8-bit palette
  const pal = [[0, 0, 0], [255, 0, 0], [0, 128, 255]];
  const b8 = makeBmp({ width: 3, height: 1, bpp: 8, palette: pal, rows: [[2, 1, 0]] });
  assert.deepEqual([...decodeBmp(b8, 'x.bmp').data], [0, 128, 255, 255, 0, 0, 0, 0, 0]);
  // 4-bit and 1-bit palette (high bits first)
  const b4 = makeBmp({ width: 3, height: 1, bpp: 4, palette: pal, rows: [[0x21, 0x00]] });
  assert.deepEqual([...decodeBmp(b4, 'x.bmp').data], [0, 128, 255, 255, 0, 0, 0, 0, 0]);
  const b1 = makeBmp({ width: 10, height: 1, bpp: 1, palette: [[0, 0, 0], [255, 255, 255]], rows: [[0b10100000, 0b01000000]] });
  assert.deepEqual([...decodeBmp(b1, 'x.bmp').data].filter((_, i) => i % 3 === 0), [255, 0, 255, 0, 0, 0, 0, 0, 0, 255]);
  // through the file API, with header
  const p = join(tmp, 'rgb.bmp');
  writeFileSync(p, b24);
  assert.deepEqual(await readImageHeader(p), { width: 3, height: 2, format: 'bmp' });
  assert.deepEqual([...(await decodeImage(p)).data.slice(0, 3)], [1, 2, 3]);
  const m = await loadImageForModel(p, 4);
  assert.equal(m.data.length, 4 * 4 * 3);
  // RLE8 and truncated
  const rle = join(tmp, 'rle.bmp');
  writeFileSync(rle, makeBmp({ width: 3, height: 1, bpp: 8, palette: pal, compression: 1, rows: [[0, 0, 0]] }));
  await assert.rejects(decodeImage(rle), { message: `${rle}: compressed BMP (RLE, JPEG or PNG inside) is not supported: convert the file to PNG` });
  const cut = join(tmp, 'cut.bmp');
  writeFileSync(cut, b24.slice(0, b24.length - 5));
  const msg = `${cut}: cannot be decoded as an image (truncated or corrupt): replace or remove the file`;
  await assert.rejects(decodeImage(cut), { message: msg });
  await assert.rejects(readImageHeader(cut), { message: msg });
});

test('truncated PNG / JPEG, a text file named .png and a missing file give clear errors', async () => {
  const full = await sharp(Buffer.from(lcgExact(32 * 32 * 3, 7)), { raw: { width: 32, height: 32, channels: 3 } }).png().toBuffer();
  const cut = join(tmp, 'cut.png');
  writeFileSync(cut, full.subarray(0, Math.floor(full.length * 0.6)));
  const msg = (p: string) => `${p}: cannot be decoded as an image (truncated or corrupt): replace or remove the file`;
  await assert.rejects(readImageHeader(cut), { message: msg(cut) });
  await assert.rejects(decodeImage(cut), { message: msg(cut) });
  const jpg = await sharp(Buffer.from(lcgExact(64 * 64 * 3, 8)), { raw: { width: 64, height: 64, channels: 3 } }).jpeg().toBuffer();
  const cutj = join(tmp, 'cut.jpg');
  writeFileSync(cutj, jpg.subarray(0, Math.floor(jpg.length * 0.6)));
  await assert.rejects(readImageHeader(cutj), { message: msg(cutj) });
  await assert.rejects(decodeImage(cutj), { message: msg(cutj) });
  const txt = join(tmp, 'notes.png');
  writeFileSync(txt, 'this is not an image\n');
  await assert.rejects(readImageHeader(txt), { message: msg(txt) });
  await assert.rejects(decodeImage(txt), { message: msg(txt) });
  const none = join(tmp, 'missing.png');
  await assert.rejects(decodeImage(none), { message: `${none}: no such file: check the path` });
  // a valid PNG with bytes after IEND still reads
  const extra = join(tmp, 'extra.png');
  writeFileSync(extra, Buffer.concat([full, Buffer.alloc(200, 1)]));
  assert.deepEqual(await readImageHeader(extra), { width: 32, height: 32, format: 'png' });
});

test('loadImageForModel: NHWC RGB in [0,1] at S×S (non-square resized to S×S), original size reported', async () => {
  const px = lcgExact(40 * 30 * 3, 11);
  const p = await writeRaw('ns.png', px, 40, 30, 3, 'png');
  const m = await loadImageForModel(p, 16);
  assert.equal(m.width, 40);
  assert.equal(m.height, 30);
  assert.equal(m.data.length, 16 * 16 * 3);
  const ref = resizePilBilinear(px, 40, 30, 3, 16, 16);
  for (let i = 0; i < ref.length; i++) assert.equal(m.data[i], Math.fround(ref[i] / 255));
  const gp = await writeRaw('gm.png', new Uint8Array(10 * 10).fill(255), 10, 10, 1, 'png');
  const gm = await loadImageForModel(gp, 8);
  assert.ok(gm.data.every((v) => v === 1));
});

test('loadMask binarises (> 0) at full size, then Pillow-bilinear resizes and thresholds at 0.5', async () => {
  const W = 50, H = 40;
  const m = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) if ((x - 20) ** 2 + (y - 17) ** 2 < 150 || (x > 40 && y < 8)) m[y * W + x] = 1; // value 1, not 255
  const p = await writeRaw('mask.png', m, W, H, 1, 'png');
  const got = await loadMask(p, 16);
  const rows: string[] = [];
  for (let y = 0; y < 16; y++) rows.push([...got.slice(y * 16, (y + 1) * 16)].join(''));
  // reference: Pillow resize of the 0/255 mask, /255 > 0.5
  const ref = '0000000000000111|0000000000000111|0000011100000111|0000111110000000|0001111111000000|0001111111000000|0001111111100000|0001111111100000|0001111111000000|0001111111000000|0000111110000000|0000011100000000|0000000000000000|0000000000000000|0000000000000000|0000000000000000';
  assert.equal(rows.join('|'), ref);
});

test('encodePng round-trips gray, RGB and RGBA through sharp, with stable bytes', async () => {
  for (const c of [1, 3, 4] as const) {
    const w = 13, h = 7;
    const px = lcgExact(w * h * c, 20 + c);
    const png = encodePng(px, w, h, c);
    assert.deepEqual(encodePng(px, w, h), png);
    assert.equal((await sharp(png).metadata()).channels, c);
    const { data } = await (c === 1 ? sharp(png).extractChannel(0) : sharp(png)).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([...data], [...px]);
  }
  assert.match(pngDataUri(encodePng(new Uint8Array(4), 2, 2, 1)), /^data:image\/png;base64,iVBORw0KGgo/);
  assert.throws(() => encodePng(new Uint8Array(5), 2, 2), /5 bytes do not make a 2×2 image/);
});

test('colour maps, heatmap PNG, overlay and contour', async () => {
  const [r0, , b0] = colormapRgb(0, 'turbo');
  const [r1, , b1] = colormapRgb(1, 'turbo');
  const [, gm] = colormapRgb(0.5, 'turbo');
  assert.ok(b0 > r0 && r1 > b1 && gm > 200, `turbo ${colormapRgb(0)} ${colormapRgb(0.5)} ${colormapRgb(1)}`);
  assert.deepEqual(colormapRgb(0, 'jet'), [0, 0, 128]);
  assert.deepEqual(colormapRgb(1, 'jet'), [128, 0, 0]);
  assert.deepEqual(colormapRgb(0.5, 'jet'), [128, 255, 128]);
  assert.deepEqual(colormapRgb(0.3, 'gray'), [77, 77, 77]);
  // colorize: explicit range clamps; auto range spans min..max
  assert.deepEqual([...colorize([0, 5, 10], { colormap: 'gray' })], [0, 0, 0, 128, 128, 128, 255, 255, 255]);
  assert.deepEqual([...colorize([-1, 2], { colormap: 'gray', range: [0, 1] })], [0, 0, 0, 255, 255, 255]);
  const hp = heatmapPng(new Float32Array([0, 0.5, 1, 0.25]), 2, 2);
  const { info } = await sharp(hp).raw().toBuffer({ resolveWithObject: true });
  assert.deepEqual([info.width, info.height, info.channels], [2, 2, 3]);
  assert.deepEqual(heatmapPng([0, 1], 2, 1, 'gray'), heatmapPng([0, 1], 2, 1, { colormap: 'gray' }));
  const mp = await sharp(maskPng([0, 1, 0, 7], 2, 2)).extractChannel(0).raw().toBuffer();
  assert.deepEqual([...mp], [0, 255, 0, 255]);
  // overlay: alpha 0 = image, alpha 1 = colours (map resized to the image)
  const img = { data: new Uint8Array(4 * 4 * 3).fill(100), width: 4, height: 4, channels: 3 };
  assert.deepEqual(overlayHeatmap(img, [0, 1, 0, 1], 2, 2, { alpha: 0 }), img.data);
  const full = overlayHeatmap(img, [0, 0, 0, 0], 2, 2, { alpha: 1, colormap: 'gray', range: [0, 1] });
  assert.ok(full.every((v) => v === 0));
  const half = overlayHeatmap(img, [1, 1, 1, 1], 2, 2, { alpha: 0.5, colormap: 'gray', range: [0, 1] });
  assert.ok(half.every((v) => v === 178));
  // contour of a 3×3 square in a 5×5 image: the 8 ring pixels, not the centre
  const im5 = { data: new Uint8Array(75), width: 5, height: 5, channels: 3 };
  const mask = new Uint8Array(25);
  for (let y = 1; y <= 3; y++) for (let x = 1; x <= 3; x++) mask[y * 5 + x] = 1;
  const c = drawContour(im5, mask, { color: [0, 255, 0] });
  const drawn: string[] = [];
  for (let y = 0; y < 5; y++) drawn.push([...Array(5).keys()].map((x) => (c[(y * 5 + x) * 3 + 1] === 255 ? '#' : '.')).join(''));
  assert.deepEqual(drawn, ['.....', '.###.', '.#.#.', '.###.', '.....']);
});
