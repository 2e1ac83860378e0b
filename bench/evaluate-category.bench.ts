/**
 * A full category evaluation, cold, beside the official evaluate.py's work (issue #13's target
 * "a full category evaluation … faster than the official evaluate.py").
 *
 * Ours: a run of metal_plate made here with a short training (`uflow train --epochs 1
 * --validate-every 0`, the default backbone: the bundled mobilenet_v2 at 256 on a CPU), then
 * `uflow evaluate` timed as a user runs it: a fresh process on a fresh copy of the run in an empty
 * train_dir (no feature cache, no evaluation.json, no dataset report), so it loads the 91 test
 * images and masks, runs the backbone and the flow, the anomaly maps, the NFA, image/pixel AUROC,
 * AUPRO and mIoU, and writes evaluation.json and the per-image PNGs. Twice: with the product's
 * default detection (the calibrated NFA) and with `--nfa tree`, the official evaluate.py's tree NFA
 * (`--no-tree` skips that one).
 *
 * Reference: bench/reference/evaluate_official.py, the official evaluate.py's work on the same
 * test split at the same input size and model shapes in PyTorch/NumPy (/usr/bin/python3, or
 * UFLOW_BENCH_PYTHON), random flow weights (the work is the official's, the metric values are not
 * the run's); a lower bound of evaluate.py's time (it also runs the test split once per metric's
 * checkpoint, a training-set pass for its fair threshold, and an mIoU threshold sweep). Its AUPRO
 * loop runs on `--aupro-regions` (16) of the regions and is scaled to all; `--full-reference`
 * runs every region. Checked once (2026-12-05, load 3.3–4.5 on 2 cores, metal_plate's 103 regions):
 * all regions 110.9 s, 16 regions scaled 106.4 s.
 *
 *   node --import tsx bench/evaluate-category.bench.ts [--category metal_plate] [--engine onnx|tfjs]
 *        [--no-tree] [--aupro-regions 16] [--full-reference] [--no-reference] [--keep]
 *
 * The dataset comes from UFLOW_DATASETS_DIR, else ../shared/datasets beside the repository; the
 * bench says so and records nothing when it is absent. It runs dist/cli.js (npm run bench builds it).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { record } from './report.js';
import { PYTHON } from './python.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '..');
const args = process.argv.slice(2);
const flag = (name: string) => args.includes(`--${name}`);
const arg = (name: string, dflt: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1]! : dflt;
};
const category = arg('category', 'metal_plate');
const engine = arg('engine', '');
const auproRegions = flag('full-reference') ? 0 : Number(arg('aupro-regions', '16'));
const datasets = resolve(process.env.UFLOW_DATASETS_DIR ?? join(repoRoot, '..', 'shared', 'datasets'));
const cli = join(repoRoot, 'dist', 'cli.js');

if (!existsSync(join(datasets, category, 'test'))) {
  console.log(`skipped: no ${category} test split at ${join(datasets, category)} (set UFLOW_DATASETS_DIR to the folder holding ${category}/); nothing recorded`);
  process.exit(0);
}
if (!existsSync(cli)) {
  console.error(`${cli} is missing: build it with \`node esbuild.mjs\` (npm run bench does)`);
  process.exit(1);
}

interface Timed {
  seconds: number;
  cpuSeconds: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command in a fresh process; wall time, and the child's CPU time from the shell's `times`. */
function timed(cmd: string[], what: string): Timed {
  const t0 = performance.now();
  const r = spawnSync('/bin/sh', ['-c', '"$@"; rc=$?; times >&2; exit $rc', 'sh', ...cmd], { encoding: 'utf8', maxBuffer: 1 << 28, cwd: repoRoot });
  const seconds = (performance.now() - t0) / 1000;
  if (r.error || r.status !== 0) {
    const tail = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
    throw new Error(`${what} failed (${r.error?.message ?? `exit ${r.status ?? r.signal}`}):\n${tail}`);
  }
  // `times` prints the shell's own user/sys, then its children's: "0m20.278s 0m2.457s".
  const last = r.stderr.trim().split('\n').pop() ?? '';
  const m = /^(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s$/.exec(last.trim());
  const cpuSeconds = m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : null;
  return { seconds, cpuSeconds, stdout: r.stdout, stderr: r.stderr };
}

const tmp = mkdtempSync(join(tmpdir(), 'uflow-bench-evaluate-'));
const s = (v: number) => `${v.toFixed(1)} s`;
try {
  console.log(`full ${category} evaluation, cold, against the official evaluate.py's work (${datasets})`);
  console.log(`load average before: ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cores (wall times grow when other processes share the cores)`);

  // 1. A run to evaluate (not timed).
  const trainDir = join(tmp, 'train');
  const train = timed([process.execPath, cli, 'train', '-cat', category, '-data', datasets, '-train_dir', trainDir, '--epochs', '1', '--validate-every', '0'], 'uflow train');
  const runs = readdirSync(join(trainDir, 'runs'));
  if (runs.length !== 1) throw new Error(`expected one run under ${join(trainDir, 'runs')}, found ${runs.length}`);
  const runId = runs[0]!;
  const cfg = readFileSync(join(trainDir, 'runs', runId, 'config.yaml'), 'utf8');
  const backbone = /^\s*backbone:\s*(\S+)/m.exec(cfg)?.[1] ?? '?';
  const inputSize = /^\s*input_size:\s*(\S+)/m.exec(cfg)?.[1] ?? '?';
  console.log(`run ${runId} (backbone ${backbone} at ${inputSize}, 1 epoch) trained in ${s(train.seconds)} (not timed in the figure)`);

  // 2. Ours: a fresh process on a fresh copy of the run, per detection mode.
  const modes: { label: string; flags: string[] }[] = [{ label: 'default detection (calibrated NFA)', flags: [] }];
  if (!flag('no-tree')) modes.push({ label: 'official tree NFA (--nfa tree)', flags: ['--nfa', 'tree'] });
  const ours: { label: string; flags: string[]; t: Timed; overall: Record<string, number>; nfa: string; engine: string }[] = [];
  for (const mode of modes) {
    const evalDir = join(tmp, `eval-${ours.length}`);
    mkdirSync(join(evalDir, 'runs'), { recursive: true });
    cpSync(join(trainDir, 'runs', runId), join(evalDir, 'runs', runId), { recursive: true });
    const t = timed([process.execPath, cli, 'evaluate', '-cat', category, '-train_dir', evalDir, ...mode.flags, ...(engine ? ['--engine', engine] : [])], `uflow evaluate ${mode.flags.join(' ')}`);
    const ev = JSON.parse(readFileSync(join(evalDir, 'runs', runId, 'evaluation.json'), 'utf8')) as {
      overall: Record<string, number>;
      nfa: string;
      inference?: { engine: string; providers?: string[] };
    };
    const eng = ev.inference ? `${ev.inference.engine === 'onnx' ? 'onnxruntime-node' : `tfjs`} ${(ev.inference.providers ?? ['cpu']).join('+')}` : 'tfjs';
    ours.push({ ...mode, t, overall: ev.overall, nfa: ev.nfa, engine: eng });
    const o = ev.overall;
    console.log(
      `ours, ${mode.label}: ${s(t.seconds)} wall${t.cpuSeconds !== null ? `, ${s(t.cpuSeconds)} CPU` : ''} (${eng}; nfa ${ev.nfa}; image AUROC ${o.image_auroc?.toFixed(3)}, pixel AUROC ${o.pixel_auroc?.toFixed(3)}, AUPRO ${o.aupro?.toFixed(3)}, mIoU ${o.miou?.toFixed(3)}, ${o.images} images)`,
    );
  }

  // 3. The reference.
  let ref: { total: number; measured: number; cpu: number | null; stages: Record<string, number>; regions: number; ran: number; torch: string; threads: number; values: Record<string, number | null> } | string;
  if (flag('no-reference')) ref = 'reference skipped (--no-reference)';
  else {
    const probe = spawnSync(PYTHON, ['-c', 'import torch, numpy, scipy, skimage, networkx, mpmath, PIL'], { encoding: 'utf8' });
    if (probe.error || probe.status !== 0) {
      ref = `reference unavailable (${PYTHON} needs torch, numpy, scipy, skimage, networkx, mpmath and PIL — Debian: python3-torch python3-scipy python3-skimage python3-networkx python3-mpmath python3-pil; ${(probe.error?.message ?? probe.stderr).trim().split('\n').pop()})`;
    } else {
      const t = timed([PYTHON, join(here, 'reference', 'evaluate_official.py'), '--data', datasets, '--category', category, '--input-size', String(inputSize), '--threads', '2', '--aupro-regions', String(auproRegions)], 'evaluate_official.py');
      const o = JSON.parse(t.stdout.trim().split('\n').pop()!);
      ref = { total: o.total_seconds, measured: o.measured_seconds, cpu: t.cpuSeconds, stages: o.seconds, regions: o.aupro_regions, ran: o.aupro_regions_run, torch: o.torch, threads: o.threads, values: o.values };
    }
  }
  let what = '';
  if (typeof ref === 'string') console.log(ref);
  else {
    const st = Object.entries(ref.stages).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ');
    const scaled = ref.ran < ref.regions ? `; AUPRO loop run on ${ref.ran} of ${ref.regions} regions and scaled: ${s(ref.measured)} measured` : '';
    what = `official evaluate.py's work in PyTorch ${ref.torch} CPU, ${ref.threads} threads (lower bound; random flow weights${ref.ran < ref.regions ? `; AUPRO loop scaled from ${ref.ran}/${ref.regions} regions` : ''})`;
    console.log(`reference (evaluate_official.py, random flow weights): ${s(ref.total)}${scaled}${ref.cpu !== null ? `; process ${s(ref.cpu)} CPU` : ''} [stages, s: ${st}]`);
    for (const o of ours) {
      console.log(`ratio ours / reference, ${o.label}: ${(o.t.seconds / ref.total).toFixed(2)}× (${(ref.total / o.t.seconds).toFixed(1)}× faster)${ref.ran < ref.regions ? `; against the measured part alone ${(o.t.seconds / ref.measured).toFixed(2)}×` : ''}`);
    }
  }

  const refRecord = typeof ref === 'string' ? null : { value: ref.total, unit: 's', what };
  for (const o of ours) {
    const m = o.overall;
    record({
      name: `full ${category} evaluation, cold (${o.overall.images} test images, ${backbone} at ${inputSize}, ${o.label}, metrics and PNG maps)`,
      ours: { value: o.t.seconds, unit: 's' },
      reference: refRecord,
      target: 'evaluation',
      backend: o.engine,
      note: `fresh process and run copy, no caches; ${o.t.cpuSeconds !== null ? `CPU ${o.t.cpuSeconds.toFixed(1)} s; ` : ''}values of a 1-epoch run: pixel AUROC ${m.pixel_auroc?.toFixed(3)}, AUPRO ${m.aupro?.toFixed(3)}, mIoU ${m.miou?.toFixed(3)}`,
    });
  }
} finally {
  if (flag('keep')) console.log(`kept ${tmp}`);
  else rmSync(tmp, { recursive: true, force: true });
}
