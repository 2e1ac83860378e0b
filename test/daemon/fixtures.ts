/**
 * Tiny MVTec-like datasets for the daemon tests, written as real PNG files with sharp: a smooth
 * stripe texture with noise for the normal images, the same with a bright square for the
 * defects, and the square's mask under ground_truth. Deterministic (seeded).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';

/** xorshift32 in [0, 1), seeded. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

function texture(size: number, seed: number, defect?: { x: number; y: number; w: number }): Buffer {
  const r = rng(seed);
  const px = Buffer.alloc(size * size * 3);
  const phase = r() * Math.PI;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const base = 110 + 50 * Math.sin((x + y) * 0.6 + phase) + (r() - 0.5) * 20;
      const inDefect = defect && x >= defect.x && x < defect.x + defect.w && y >= defect.y && y < defect.y + defect.w;
      const v = inDefect ? 250 : base;
      const i = (y * size + x) * 3;
      px[i] = Math.max(0, Math.min(255, Math.round(v)));
      px[i + 1] = Math.max(0, Math.min(255, Math.round(v * 0.9)));
      px[i + 2] = Math.max(0, Math.min(255, Math.round(v * 0.8)));
    }
  }
  return px;
}

async function png(path: string, raw: Buffer, size: number, channels: 1 | 3 = 3): Promise<void> {
  await sharp(raw, { raw: { width: size, height: size, channels } }).png().toFile(path);
}

export interface TinyDatasetOptions {
  size?: number;
  trainGood?: number;
  testGood?: number;
  defects?: number;
  seed?: number;
  /** Write one corrupt file (a truncated PNG) among the training images. */
  corruptTrainImage?: boolean;
}

/** Writes `<root>/<category>/{train/good,test/good,test/spot,ground_truth/spot}`; returns the category folder. */
export async function writeTinyCategory(root: string, category: string, o: TinyDatasetOptions = {}): Promise<string> {
  const size = o.size ?? 32;
  const seed = o.seed ?? 1;
  const cat = join(root, category);
  const dirs = ['train/good', 'test/good', 'test/spot', 'ground_truth/spot'].map((d) => join(cat, d));
  for (const d of dirs) mkdirSync(d, { recursive: true });
  const nTrain = o.trainGood ?? 6;
  for (let i = 0; i < nTrain; i++) await png(join(cat, 'train', 'good', `${String(i).padStart(3, '0')}.png`), texture(size, seed * 1000 + i), size);
  for (let i = 0; i < (o.testGood ?? 2); i++) await png(join(cat, 'test', 'good', `${String(i).padStart(3, '0')}.png`), texture(size, seed * 1000 + 500 + i), size);
  for (let i = 0; i < (o.defects ?? 2); i++) {
    const w = Math.max(2, Math.round(size / 5));
    const d = { x: Math.round(size * 0.2) + i * 3, y: Math.round(size * 0.4), w };
    const name = String(i).padStart(3, '0');
    await png(join(cat, 'test', 'spot', `${name}.png`), texture(size, seed * 1000 + 700 + i, d), size);
    const mask = Buffer.alloc(size * size);
    for (let y = d.y; y < d.y + w; y++) for (let x = d.x; x < d.x + w; x++) mask[y * size + x] = 255;
    await png(join(cat, 'ground_truth', 'spot', `${name}_mask.png`), mask, size, 1);
  }
  if (o.corruptTrainImage) {
    const good = await sharp(texture(size, 99), { raw: { width: size, height: size, channels: 3 } }).png().toBuffer();
    writeFileSync(join(cat, 'train', 'good', '900_corrupt.png'), good.subarray(0, Math.floor(good.length / 2)));
  }
  return cat;
}

/** A tiny training configuration: builtin filter backbone (no downloads), small input, few epochs. */
export function tinyConfig(epochs = 2): { model: Record<string, unknown>; trainer: Record<string, unknown> } {
  return {
    model: { input_size: 32, flow_steps: 1, backbone: 'builtin:filters' },
    trainer: { epochs, batch_train: 2, batch_val: 2, validate_every: 0, log_every_n_epochs: 1, save_ckpt_every: 1, patience: 0, seed: 0 },
  };
}
