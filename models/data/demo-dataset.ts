/**
 * A small, deterministic MVTec-layout demo dataset: category `demo_tile`, a woven-fabric texture
 * (plain weave with fibre streaks, low-frequency shading and grain, slight per-image rotation,
 * shift, colour and brightness changes), with three defect types and exact masks:
 *
 * - `scratch`: a pulled, lighter (or darker) thread: a thin curved line 1.2–2.4 px wide;
 * - `stain`: an irregular blot that tints the fabric brown/red while the weave stays visible;
 * - `hole`: a small frayed dark opening.
 *
 * Every defect changes pixels only inside its mask, and every mask pixel is changed visibly (the
 * unit test checks both against the defect-free rendering of the same sample). Same seed, size
 * and counts → the same bytes (own PRNG, own PNG encoder: no dependence on libvips' encoder).
 *
 * Written as `<root>/<category>/{train/good,test/<type>,ground_truth/<type>}`; the category folder
 * is built in a temporary sibling and renamed into place, with a stamp (`.uflow-demo.json`, hidden
 * from inspection) recording the parameters, so a second call with the same parameters does
 * nothing and an interrupted one leaves no half dataset.
 */
import { existsSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { atomicWriteFile, atomicWriteJson } from '../io/atomic.js';
import { encodePng } from './render.js';
import { mulberry32 } from '../flows/rng.js';

export type DemoDefect = 'scratch' | 'stain' | 'hole';
export const DEMO_DEFECTS: readonly DemoDefect[] = ['hole', 'scratch', 'stain'];

export interface DemoCounts {
  train: number;
  testGood: number;
  defects: Record<DemoDefect, number>;
}

export interface DemoOptions {
  seed?: number;
  /** Image side in pixels (square). */
  size?: number;
  counts?: Partial<Omit<DemoCounts, 'defects'>> & { defects?: Partial<Record<DemoDefect, number>> };
  category?: string;
}

export const DEMO_DEFAULTS = {
  seed: 7,
  size: 128,
  category: 'demo_tile',
  counts: { train: 40, testGood: 10, defects: { hole: 5, scratch: 6, stain: 5 } } as DemoCounts,
};

/** Bump when the rendering changes: old stamped datasets are then regenerated. */
export const DEMO_GENERATOR_VERSION = 1;
const STAMP = '.uflow-demo.json';

// ---------------------------------------------------------------------------------------------
// Deterministic randomness

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}


/** A hash of integer lattice coordinates to [0, 1). */
function lattice(ix: number, iy: number, seed: number): number {
  let h = Math.imul(ix | 0, 0x27d4eb2d) ^ Math.imul(iy | 0, 0x165667b1) ^ Math.imul(seed | 0, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

const smooth = (t: number) => t * t * (3 - 2 * t);

/** Smooth value noise in [0, 1) at real coordinates. */
function valueNoise(x: number, y: number, seed: number): number {
  const ix = Math.floor(x);
  const iy = Math.floor(y);
  const fx = smooth(x - ix);
  const fy = smooth(y - iy);
  const a = lattice(ix, iy, seed);
  const b = lattice(ix + 1, iy, seed);
  const c = lattice(ix, iy + 1, seed);
  const d = lattice(ix + 1, iy + 1, seed);
  return (a + (b - a) * fx) * (1 - fy) + (c + (d - c) * fx) * fy;
}

/** Fractal (fBm) value noise in about [0, 1). */
function fbm(x: number, y: number, seed: number, octaves: number): number {
  let sum = 0;
  let amp = 0.5;
  let norm = 0;
  let f = 1;
  for (let o = 0; o < octaves; o++) {
    sum += amp * valueNoise(x * f, y * f, seed + o * 101);
    norm += amp;
    amp *= 0.5;
    f *= 2;
  }
  return sum / norm;
}

// ---------------------------------------------------------------------------------------------
// Rendering

export interface DemoSample {
  /** RGB bytes, size×size×3. */
  rgb: Uint8Array;
  /** 0/1 per pixel (all zero for a good sample). */
  mask: Uint8Array;
}

/** Fabric texture as floats in [0, 1], RGB interleaved. */
function renderFabric(size: number, seed: number): Float32Array {
  const rnd = mulberry32(seed);
  const s = size / 128; // texture scale follows the image size
  const period = 8 * s * (0.97 + 0.06 * rnd());
  const angle = ((rnd() - 0.5) * 4 * Math.PI) / 180; // ±2°
  const ox = rnd() * 64 * s;
  const oy = rnd() * 64 * s;
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const bright = 0.96 + 0.08 * rnd();
  const tint = [0.66 + 0.02 * rnd(), 0.6 + 0.02 * rnd(), 0.5 + 0.02 * rnd()];
  const nseed = fnv1a(`noise${seed}`);
  const out = new Float32Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const u = (x - size / 2) * cos - (y - size / 2) * sin + size / 2 + ox;
      const v = (x - size / 2) * sin + (y - size / 2) * cos + size / 2 + oy;
      const i = Math.floor(u / period);
      const j = Math.floor(v / period);
      const fu = u / period - i;
      const fv = v / period - j;
      const warpUp = (i + j) % 2 === 0; // plain weave: the vertical thread is on top here
      // thread cross-section (rounded) and the gap between threads
      const across = warpUp ? fu : fv;
      const along = warpUp ? fv : fu;
      const profile = Math.sin(Math.PI * Math.min(1, Math.max(0, (across - 0.06) / 0.88)));
      const dip = 0.75 + 0.25 * Math.sin(Math.PI * along); // the thread dives under at the cell ends
      // fibres: streaks along the thread direction
      const fib = warpUp ? valueNoise(u * 1.7, v / (3 * s), nseed + 7) : valueNoise(u / (3 * s), v * 1.7, nseed + 11);
      let lum = (0.45 + 0.55 * profile * dip) * (0.88 + 0.24 * fib);
      // low-frequency shading and fine grain
      lum *= 0.92 + 0.16 * fbm(x / (40 * s), y / (40 * s), nseed + 3, 3);
      lum += 0.035 * (lattice(x, y, nseed + 5) - 0.5);
      lum *= bright;
      const warm = warpUp ? 1.0 : 0.96; // weft threads are a little cooler
      const o = (y * size + x) * 3;
      out[o] = lum * tint[0] * warm + 0.08;
      out[o + 1] = lum * tint[1] + 0.08;
      out[o + 2] = lum * tint[2] * (2 - warm) + 0.08;
    }
  }
  return out;
}

function distToSegment(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax;
  const dy = by - ay;
  const l2 = dx * dx + dy * dy;
  const t = l2 > 0 ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / l2)) : 0;
  const qx = ax + t * dx - px;
  const qy = ay + t * dy - py;
  return Math.sqrt(qx * qx + qy * qy);
}

/** Applies one defect in place (inside the returned mask only). */
function applyDefect(img: Float32Array, size: number, kind: DemoDefect, seed: number): Uint8Array {
  const rnd = mulberry32(seed);
  const s = size / 128;
  const mask = new Uint8Array(size * size);
  const margin = 14 * s;
  const cx = margin + rnd() * (size - 2 * margin);
  const cy = margin + rnd() * (size - 2 * margin);
  if (kind === 'scratch') {
    const len = size * (0.3 + 0.35 * rnd());
    const a = rnd() * Math.PI;
    const bend = (rnd() - 0.5) * 0.5 * len;
    const p0 = [cx - (Math.cos(a) * len) / 2, cy - (Math.sin(a) * len) / 2];
    const p2 = [cx + (Math.cos(a) * len) / 2, cy + (Math.sin(a) * len) / 2];
    const p1 = [cx - Math.sin(a) * bend, cy + Math.cos(a) * bend];
    const pts: number[][] = [];
    for (let k = 0; k <= 40; k++) {
      const t = k / 40;
      pts.push([0, 1].map((d) => (1 - t) ** 2 * p0[d] + 2 * (1 - t) * t * p1[d] + t * t * p2[d]));
    }
    const half = (0.6 + 0.6 * rnd()) * s;
    const lighter = rnd() < 0.7;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        let d = Infinity;
        for (let k = 0; k < pts.length - 1; k++) d = Math.min(d, distToSegment(x + 0.5, y + 0.5, pts[k][0], pts[k][1], pts[k + 1][0], pts[k + 1][1]));
        if (d > half + 0.5) continue;
        mask[y * size + x] = 1;
        const o = (y * size + x) * 3;
        const g = 0.9 + 0.1 * lattice(x, y, seed);
        for (let c = 0; c < 3; c++) img[o + c] = lighter ? 0.62 * img[o + c] + 0.38 * g + 0.06 : img[o + c] * 0.5;
      }
    }
  } else if (kind === 'stain') {
    const r0 = (7 + 8 * rnd()) * s;
    const sx = 0.75 + 0.5 * rnd();
    const tintR = 0.8 + 0.1 * rnd();
    const nseed = fnv1a(`stain${seed}`);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const dx = (x + 0.5 - cx) / sx;
        const dy = (y + 0.5 - cy) * sx;
        const r = Math.sqrt(dx * dx + dy * dy);
        const th = Math.atan2(dy, dx);
        const edge = r0 * (0.75 + 0.5 * fbm(Math.cos(th) * 1.5 + 10, Math.sin(th) * 1.5 + 10, nseed, 3));
        if (r > edge) continue;
        mask[y * size + x] = 1;
        const depth = 0.55 + 0.45 * Math.min(1, (edge - r) / (0.35 * edge)); // darker towards the centre, a visible rim
        const o = (y * size + x) * 3;
        img[o] *= 1 - (1 - tintR) * depth;
        img[o + 1] *= 1 - 0.3 * depth;
        img[o + 2] *= 1 - 0.45 * depth;
      }
    }
  } else {
    const rx = (3 + 4 * rnd()) * s;
    const ry = rx * (0.7 + 0.6 * rnd());
    const nseed = fnv1a(`hole${seed}`);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const dx = (x + 0.5 - cx) / rx;
        const dy = (y + 0.5 - cy) / ry;
        const r = Math.sqrt(dx * dx + dy * dy);
        const th = Math.atan2(dy, dx);
        const edge = 1 + 0.35 * (valueNoise(Math.cos(th) * 3 + 5, Math.sin(th) * 3 + 5, nseed) - 0.5) + 0.25 * (lattice(Math.round(th * 12), 0, nseed) - 0.5);
        if (r > edge) continue;
        mask[y * size + x] = 1;
        const o = (y * size + x) * 3;
        const frayed = r > edge - 0.3;
        const v = frayed ? 0.38 : 0.07 + 0.05 * lattice(x, y, nseed);
        for (let c = 0; c < 3; c++) img[o + c] = frayed ? img[o + c] * v + 0.1 : v * (c === 2 ? 0.9 : 1);
      }
    }
  }
  return mask;
}

function toBytes(f: Float32Array): Uint8Array {
  const out = new Uint8Array(f.length);
  for (let i = 0; i < f.length; i++) out[i] = Math.max(0, Math.min(255, Math.round(f[i] * 255)));
  return out;
}

/**
 * One sample: `key` names it (e.g. 'train/3', 'test/scratch/0'); the defect-free rendering of a
 * key is the same whether or not a defect is then applied (`defect` undefined → good).
 */
export function renderDemoSample(seed: number, size: number, key: string, defect?: DemoDefect): DemoSample {
  const img = renderFabric(size, fnv1a(`${seed}/${key}`));
  const mask = defect ? applyDefect(img, size, defect, fnv1a(`${seed}/${key}/defect`)) : new Uint8Array(size * size);
  return { rgb: toBytes(img), mask };
}

// ---------------------------------------------------------------------------------------------
// Writing

interface Stamp {
  generator: 'uflow-demo';
  version: number;
  seed: number;
  size: number;
  category: string;
  counts: DemoCounts;
}

function resolveOptions(opts: DemoOptions): Stamp {
  const seed = opts.seed ?? DEMO_DEFAULTS.seed;
  const size = opts.size ?? DEMO_DEFAULTS.size;
  const d = DEMO_DEFAULTS.counts;
  const counts: DemoCounts = {
    train: opts.counts?.train ?? d.train,
    testGood: opts.counts?.testGood ?? d.testGood,
    defects: {
      hole: opts.counts?.defects?.hole ?? d.defects.hole,
      scratch: opts.counts?.defects?.scratch ?? d.defects.scratch,
      stain: opts.counts?.defects?.stain ?? d.defects.stain,
    },
  };
  if (!Number.isInteger(seed)) throw new Error(`demo dataset: seed must be an integer, got ${seed}`);
  if (!Number.isInteger(size) || size < 32 || size > 1024) throw new Error(`demo dataset: size must be an integer from 32 to 1024, got ${size}`);
  for (const [k, v] of [['train', counts.train], ['testGood', counts.testGood], ...Object.entries(counts.defects)] as Array<[string, number]>) {
    if (!Number.isInteger(v) || v < 0 || v > 10000) throw new Error(`demo dataset: counts.${k} must be an integer from 0 to 10000, got ${v}`);
  }
  if (counts.train < 1) throw new Error('demo dataset: counts.train must be at least 1');
  const category = opts.category ?? DEMO_DEFAULTS.category;
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(category)) throw new Error(`demo dataset: category must be a plain folder name (letters, digits, _ . -), got ${JSON.stringify(category)}`);
  return { generator: 'uflow-demo', version: DEMO_GENERATOR_VERSION, seed, size, category, counts };
}

function readStamp(dir: string): Stamp | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, STAMP), 'utf8')) as Stamp;
  } catch {
    return undefined;
  }
}

const sameStamp = (a: Stamp | undefined, b: Stamp) => a !== undefined && JSON.stringify(a) === JSON.stringify(b);
const name3 = (i: number) => String(i).padStart(3, '0');

function writeAll(dir: string, st: Stamp): void {
  const { seed, size, counts } = st;
  for (let i = 0; i < counts.train; i++) {
    const s = renderDemoSample(seed, size, `train/${i}`);
    atomicWriteFile(join(dir, 'train', 'good', `${name3(i)}.png`), encodePng(s.rgb, size, size, 3));
  }
  for (let i = 0; i < counts.testGood; i++) {
    const s = renderDemoSample(seed, size, `test/good/${i}`);
    atomicWriteFile(join(dir, 'test', 'good', `${name3(i)}.png`), encodePng(s.rgb, size, size, 3));
  }
  for (const defect of DEMO_DEFECTS) {
    for (let i = 0; i < counts.defects[defect]; i++) {
      const s = renderDemoSample(seed, size, `test/${defect}/${i}`, defect);
      atomicWriteFile(join(dir, 'test', defect, `${name3(i)}.png`), encodePng(s.rgb, size, size, 3));
      const m = new Uint8Array(s.mask.length);
      for (let k = 0; k < m.length; k++) m[k] = s.mask[k] ? 255 : 0;
      atomicWriteFile(join(dir, 'ground_truth', defect, `${name3(i)}_mask.png`), encodePng(m, size, size, 1));
    }
  }
  atomicWriteJson(join(dir, STAMP), st);
}

/**
 * Writes the demo dataset under `root` (unless it is already there with the same parameters) and
 * returns the category folder. Refuses to touch a non-empty folder it did not make.
 */
export function generateDemoDataset(root: string, opts: DemoOptions = {}): string {
  const st = resolveOptions(opts);
  const dir = join(resolve(root), st.category);
  const existing = readStamp(dir);
  if (sameStamp(existing, st)) return dir;
  if (existsSync(dir) && !existing && readdirSync(dir).length > 0) {
    throw new Error(`${dir}: exists and was not made by the demo generator: remove it or choose another folder`);
  }
  const tmp = join(dirname(dir), `.${st.category}.tmp-${process.pid}-${Date.now()}`);
  try {
    writeAll(tmp, st);
    if (existsSync(dir)) {
      const old = join(dirname(dir), `.${st.category}.old-${process.pid}-${Date.now()}`);
      renameSync(dir, old);
      rmSync(old, { recursive: true, force: true });
    }
    try {
      renameSync(tmp, dir);
    } catch (e) {
      // Another process finished the same dataset first: fine if it is the one we wanted.
      if (!sameStamp(readStamp(dir), st)) throw e;
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}
