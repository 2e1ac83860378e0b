// extension/png.ts against sharp: every PNG flavour decodes to the same pixels; thumbnails stay small.
import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encode } from 'fast-png';
import sharp from 'sharp';
import { decodePng, downscale, encodePalettePng, hoverImages, thumbnailDataUri } from '../../../extension/png.js';

function noise(w: number, h: number, c: number, seed = 1): Buffer {
  const b = Buffer.alloc(w * h * c);
  let s = seed;
  for (let i = 0; i < b.length; i++) {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    b[i] = (s >> 16) & 255;
  }
  return b;
}

async function rgbaOf(png: Buffer): Promise<Buffer> {
  return sharp(png).ensureAlpha().raw().toBuffer();
}

describe('extension/png.ts', () => {
  for (const [name, make] of [
    ['rgb 8-bit', () => sharp(noise(37, 23, 3), { raw: { width: 37, height: 23, channels: 3 } }).png({ compressionLevel: 9, adaptiveFiltering: true })],
    ['rgba 8-bit', () => sharp(noise(31, 17, 4), { raw: { width: 31, height: 17, channels: 4 } }).png({ adaptiveFiltering: true })],
    ['grey 8-bit', () => sharp(noise(29, 19, 1), { raw: { width: 29, height: 19, channels: 1 } }).png()],
    ['grey 16-bit', () => sharp(noise(13, 11, 1), { raw: { width: 13, height: 11, channels: 1 } }).png().toColourspace('grey16')],
    ['palette', () => sharp(noise(33, 21, 3), { raw: { width: 33, height: 21, channels: 3 } }).png({ palette: true, colours: 16, dither: 0 })],
    ['1-bit grey', () => sharp(noise(45, 9, 1).map((v) => (v > 127 ? 255 : 0)), { raw: { width: 45, height: 9, channels: 1 } }).png({ palette: true, colours: 2, dither: 0 })],
    ['rgba 16-bit interlaced', () => sharp(noise(13, 11, 4), { raw: { width: 13, height: 11, channels: 4 } }).toColourspace('rgb16').png({ progressive: true })],
    ['grey+alpha 8-bit', () => encode({ width: 19, height: 7, channels: 2, depth: 8, data: noise(19, 7, 2) })],
    ['grey 4-bit', () => encode({ width: 19, height: 7, channels: 1, depth: 4, data: noise(10, 7, 1) })],
  ] as const) {
    it(`decodes ${name} like sharp`, async () => {
      const made = make();
      const png = made instanceof Uint8Array ? Buffer.from(made) : await made.toBuffer();
      if (name === 'grey+alpha 8-bit' || name === 'grey 4-bit') assert.equal((await sharp(png).metadata()).channels, name === 'grey 4-bit' ? 1 : 2);
      const img = decodePng(png);
      assert.ok(img, 'decoded');
      const meta = await sharp(png).metadata();
      assert.equal(img.width, meta.width);
      assert.equal(img.height, meta.height);
      const want = await rgbaOf(png);
      let maxDiff = 0;
      for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(want[i]! - img.data[i]!));
      assert.ok(maxDiff <= 1, `max channel difference ${maxDiff}`);
    });
  }

  it('returns undefined, never throws, for what is not a whole PNG', async () => {
    const good = await sharp(noise(37, 23, 3), { raw: { width: 37, height: 23, channels: 3 } }).png().toBuffer();
    const flipped = Buffer.from(good);
    for (let i = 60; i < 90; i++) flipped[i]! ^= 0x5a;
    const huge = Buffer.from(good);
    huge.writeUInt32BE(100_000, 16);
    huge.writeUInt32BE(100_000, 20);
    const jpeg = await sharp(noise(8, 8, 3), { raw: { width: 8, height: 8, channels: 3 } }).jpeg().toBuffer();
    for (const [what, bytes] of [['empty', new Uint8Array(0)], ['a JPEG', jpeg], ['the signature alone', good.subarray(0, 8)], ['half a PNG', good.subarray(0, good.length >> 1)], ['corrupt IDAT', flipped], ['10^10 pixels', huge]] as const) {
      assert.equal(decodePng(bytes), undefined, what);
    }
    assert.ok(decodePng(good), 'the intact PNG decodes');
  });

  it('downscales with a box filter and writes a palette PNG sharp can read', async () => {
    const png = await sharp({ create: { width: 300, height: 200, channels: 3, background: { r: 200, g: 40, b: 40 } } }).png().toBuffer();
    const small = downscale(decodePng(png)!, 120);
    assert.equal(small.width, 120);
    assert.equal(small.height, 80);
    const out = encodePalettePng(small);
    const meta = await sharp(out).metadata();
    assert.equal(meta.width, 120);
    assert.equal(meta.isPalette, true, 'an 8-bit palette PNG');
    const px = await sharp(out).raw().toBuffer();
    assert.ok(Math.abs(px[0]! - 200) <= 30 && px[1]! <= 60 && px[2]! <= 60, `colour kept: ${px[0]},${px[1]},${px[2]}`);
  });

  it('keeps hover images under VS Code\'s 100,000-character markdown limit', async () => {
    const big = await sharp(noise(1024, 1024, 3), { raw: { width: 1024, height: 1024, channels: 3 } }).png().toBuffer();
    const uri = `data:image/png;base64,${big.toString('base64')}`;
    const thumb = thumbnailDataUri(uri, 160)!;
    assert.ok(thumb.length < 40_000, `thumbnail of noise: ${thumb.length} chars`);
    const html = hoverImages([{ src: uri, alt: 'image', optional: true }, { src: uri, alt: 'anomaly map' }, { src: uri, alt: 'seg', optional: true }]);
    assert.ok(html.length < 95_000, `${html.length} chars`);
    assert.ok(html.includes('alt="anomaly map"'), 'the anomaly map is never dropped');
    assert.equal(thumbnailDataUri('data:image/jpeg;base64,' + 'A'.repeat(50_000)), undefined, 'a large JPEG is dropped');
  });
});
