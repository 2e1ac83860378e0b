/**
 * NFA and metrics benchmark (standalone): `node --import tsx bench/nfa-metrics.bench.ts [--quick] [--no-reference]`
 *
 * - tree NFA and block NFA for one 64×64 latent with 84 channels (ms/image, median of repeats;
 *   the tree's ℓ map is the per-image, per-scale unit of work of the reference);
 * - AUPRO@0.3 over 100 maps of 256×256 with realistic masks (1–3 elliptic defects on 70 % of the
 *   images, maps = smooth 64×64 noise upsampled ×4 plus bumps over the defects);
 * - beside each, the same work in Python (bench/reference/nfa_metrics.py: skimage max_tree +
 *   networkx, scipy binom.logsf, the official-style AUPRO loop) when /usr/bin/python3 has numpy,
 *   scipy, skimage, networkx and mpmath, with the ratio and the agreement of the results.
 *   `--quick` runs AUPRO on 20 maps (both sides); `--no-reference` skips Python.
 * Wall time is reported with process CPU time, which is steadier on a shared machine.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { treeLog10ProbMap, TreeNfaWorkspace, type TreeNfaStats } from '../models/scores/nfa-tree.js';
import { negLogNfaBlock } from '../models/scores/nfa-block.js';
import type { Latent } from '../models/scores/latent.js';
import { aupro } from '../models/metrics/aupro.js';
import { record, type Reference } from './report.js';
import { PYTHON } from './python.js';

const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
const PY = PYTHON;
const here = dirname(fileURLToPath(import.meta.url));

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
}

/** One 64×64×84 latent (NHWC): N(0,1) with two mildly boosted blobs. */
function makeLatent(): Latent {
  const r = rng(2024);
  const g = () => Math.sqrt(-2 * Math.log(r())) * Math.cos(2 * Math.PI * r());
  const [H, W, C] = [64, 64, 84];
  const data = new Float32Array(H * W * C);
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const boost = Math.hypot(y - 20, x - 40) < 6 ? 1.6 : Math.hypot(y - 48, x - 14) < 4 ? 1.3 : 1;
      for (let c = 0; c < C; c++) data[(y * W + x) * C + c] = g() * boost;
    }
  return { data, shape: [1, H, W, C] };
}

/** n maps of 256² in [0, 1] and their masks. */
function makeMaps(n: number): { maps: Float32Array; masks: Uint8Array } {
  const r = rng(12345);
  const [H, W, g] = [256, 256, 64];
  const maps = new Float32Array(n * H * W);
  const masks = new Uint8Array(n * H * W);
  const field = new Float32Array(g * g);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < g * g; i++) field[i] = r();
    const blobs: number[][] = [];
    if (b % 10 < 7) {
      const k = 1 + Math.floor(r() * 3);
      for (let i = 0; i < k; i++) blobs.push([r() * H, r() * W, 4 + r() * 30, 4 + r() * 30]);
    }
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        const fy = Math.min(g - 1.001, Math.max(0, (y + 0.5) / 4 - 0.5));
        const fx = Math.min(g - 1.001, Math.max(0, (x + 0.5) / 4 - 0.5));
        const y0 = Math.floor(fy);
        const x0 = Math.floor(fx);
        const ly = fy - y0;
        const lx = fx - x0;
        const v =
          (1 - ly) * ((1 - lx) * field[y0 * g + x0]! + lx * field[y0 * g + x0 + 1]!) +
          ly * ((1 - lx) * field[(y0 + 1) * g + x0]! + lx * field[(y0 + 1) * g + x0 + 1]!);
        let inside = 0;
        let bump = 0;
        for (const [cy, cx, ry, rx] of blobs) {
          const d = ((y - cy!) / ry!) ** 2 + ((x - cx!) / rx!) ** 2;
          if (d <= 1) inside = 1;
          bump += 1.5 * Math.exp(-d);
        }
        const i = (b * H + y) * W + x;
        maps[i] = 1 / (1 + Math.exp(-(3 * (v - 0.5) + bump * 2 - 1)));
        masks[i] = inside;
      }
  }
  return { maps, masks };
}

interface Timing {
  wall: number;
  cpu: number;
}
function timeIt<T>(repeats: number, fn: () => T): { median: Timing; min: Timing; result: T } {
  const walls: number[] = [];
  const cpus: number[] = [];
  let result!: T;
  for (let i = 0; i < repeats; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    result = fn();
    walls.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpus.push((c.user + c.system) / 1000);
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  return { median: { wall: med(walls), cpu: med(cpus) }, min: { wall: Math.min(...walls), cpu: Math.min(...cpus) }, result };
}
const ms = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)).padStart(8) + ' ms';

function referenceAvailable(): string | undefined {
  if (args.has('--no-reference')) return 'reference skipped (--no-reference)';
  const r = spawnSync(PY, ['-c', 'import numpy, scipy, skimage, networkx, mpmath'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `reference unavailable (${PY} with numpy/scipy/skimage/networkx/mpmath: ${(r.error?.message ?? r.stderr).trim().split('\n').pop()})`;
  return undefined;
}

// ------------------------------------------------------------------------------------------ run
const z = makeLatent();
const nMaps = quick ? 20 : 100;
const { maps, masks } = makeMaps(nMaps);
console.log(`NFA and metrics benchmark (node ${process.version}); latent 64×64×84, ${nMaps} maps of 256×256${quick ? ' (--quick)' : ''}`);

const ws = new TreeNfaWorkspace();
const stats: TreeNfaStats = { nodes: 0, merges: 0, clusters: 0 };
for (let i = 0; i < 5; i++) treeLog10ProbMap(z, 0, ws); // warm-up
const tree = timeIt(41, () => treeLog10ProbMap(z, 0, ws, stats));
for (let i = 0; i < 3; i++) negLogNfaBlock([z], { targetSize: 256 });
const block = timeIt(21, () => negLogNfaBlock([z], { targetSize: 256 }));
aupro(maps.subarray(0, 4 * 65536), masks.subarray(0, 4 * 65536), 4, 256, 256); // warm-up
const pro = timeIt(3, () => aupro(maps, masks, nMaps, 256, 256, 0.3));

const rows: [string, Timing, Timing, string][] = [
  ['tree NFA ℓ map, 64×64×84 (per image)', tree.median, tree.min, `${stats.nodes} nodes, ${stats.merges} merges, ${stats.clusters} clusters`],
  ['block NFA −logNFA 64×64×84 → 256² (per image)', block.median, block.min, 'win 5, p 0.9'],
  [`AUPRO@0.3, ${nMaps} maps 256²`, pro.median, pro.min, `${pro.result.regions} regions, K = ${pro.result.points}, AUPRO ${pro.result.aupro.toFixed(6)}`],
];
console.log('\nTypeScript (median wall / median cpu; min wall):');
for (const [name, med, min, note] of rows) console.log(`  ${name.padEnd(48)} ${ms(med.wall)} / ${ms(med.cpu)} ; ${ms(min.wall)}   ${note}`);

// Python's times per row (ms), when the reference ran; recorded at the end.
const refMs: { tree?: number; block?: number; aupro?: number } = {};
const why = referenceAvailable();
if (why) {
  console.log(`\nPython: ${why}`);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'uflow-nfa-bench-'));
  try {
    writeFileSync(join(dir, 'z.f32'), Buffer.from(z.data.buffer, z.data.byteOffset, z.data.byteLength));
    writeFileSync(join(dir, 'maps.f32'), Buffer.from(maps.buffer, maps.byteOffset, maps.byteLength));
    writeFileSync(join(dir, 'masks.u8'), Buffer.from(masks.buffer, masks.byteOffset, masks.byteLength));
    writeFileSync(
      join(dir, 'job.json'),
      JSON.stringify({
        tree: { file: 'z.f32', shape: z.shape, repeats: 3 },
        block: { file: 'z.f32', shape: z.shape, repeats: 3, win_size: 5, p: 0.9, target: 256 },
        aupro: { maps: 'maps.f32', masks: 'masks.u8', shape: [nMaps, 256, 256], fpr_limit: 0.3 },
      }),
    );
    console.log(`\nPython reference (${PY} ${resolve(here, 'reference/nfa_metrics.py')}), running…`);
    const t0 = performance.now();
    const pr = spawnSync(PY, [resolve(here, 'reference/nfa_metrics.py'), dir], { encoding: 'utf8', maxBuffer: 1 << 28, timeout: 30 * 60 * 1000 });
    if (pr.status !== 0) {
      console.log(`  reference unavailable (exit ${pr.status}${pr.signal ? `, ${pr.signal}` : ''}): ${(pr.stderr ?? '').trim().split('\n').slice(-3).join(' | ')}`);
    } else {
      const ref = JSON.parse(pr.stdout);
      console.log(`  (python ${ref.python}, numpy ${ref.numpy}; ${((performance.now() - t0) / 1000).toFixed(0)} s in all)`);
      Object.assign(refMs, { tree: ref.tree_ms_per_image, block: ref.block_ms_per_image, aupro: ref.aupro_ms });
      // agreement
      const tm = tree.result;
      let treeMax = 0;
      let cover = 0;
      ref.tree_map.forEach((v: number | null, i: number) => {
        if ((v === null) !== Number.isNaN(tm[i]!)) cover++;
        else if (v !== null) treeMax = Math.max(treeMax, Math.abs(v - tm[i]!) / Math.max(1, Math.abs(v)));
      });
      const bm = block.result;
      let blockMax = 0;
      ref.block_map_sample.forEach((v: number, k: number) => (blockMax = Math.max(blockMax, Math.abs(v - bm[k * ref.block_map_stride]!))));
      const dPro = Math.abs(ref.aupro - pro.result.aupro);
      let curveMax = 0;
      ref.pro_curve_fpr.forEach((f: number, k: number) => {
        const i = k * ref.pro_curve_stride;
        curveMax = Math.max(curveMax, Math.abs(f - pro.result.fpr[i]!), Math.abs(ref.pro_curve_pro[k] - pro.result.pro[i]!));
      });
      const ratio = (py: number, ts: Timing) => `×${(py / ts.wall).toFixed(0)}`;
      console.log(`  ${'tree NFA ℓ map (per image)'.padEnd(48)} ${ms(ref.tree_ms_per_image)}   TS faster ${ratio(ref.tree_ms_per_image, tree.median)}; ℓ rel. max|Δ| ${treeMax.toExponential(1)}, coverage mismatches ${cover}`);
      console.log(`  ${'block NFA (per image)'.padEnd(48)} ${ms(ref.block_ms_per_image)}   TS faster ${ratio(ref.block_ms_per_image, block.median)}; max|Δ| ${blockMax.toExponential(1)}`);
      console.log(
        `  ${`AUPRO@0.3, ${nMaps} maps`.padEnd(48)} ${ms(ref.aupro_ms)}   TS faster ${ratio(ref.aupro_ms, pro.median)}; |ΔAUPRO| ${dPro.toExponential(1)}, curve max|Δ| ${curveMax.toExponential(1)} (K ${ref.aupro_points} vs ${pro.result.points}, regions ${ref.aupro_regions})`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// Figures for bench/results.json (npm run bench): median wall times beside the Python reference's.
const pyRef = (v: number | undefined, what: string): Reference | null => (v === undefined ? null : { value: v, unit: 'ms', what });
record({ name: 'tree NFA ℓ map, 64×64 latent, 84 channels, per image', ours: { value: tree.median.wall, unit: 'ms' }, reference: pyRef(refMs.tree, 'official-style Python (skimage max-tree)'), backend: 'TypeScript' });
record({ name: 'block (binomial) NFA, 64×64×84 latent → 256², per image', ours: { value: block.median.wall, unit: 'ms' }, reference: pyRef(refMs.block, 'scipy binom.logsf'), backend: 'TypeScript' });
record({ name: `AUPRO @ 30 % FPR, ${nMaps} maps of 256²`, ours: { value: pro.median.wall, unit: 'ms' }, reference: pyRef(refMs.aupro, 'official-style Python loop'), backend: 'TypeScript' });
