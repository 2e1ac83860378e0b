/**
 * What a benchmark measured, machine-readable: each bench calls `record({...})` once per figure
 * beside its printed output. `npm run bench` (bench/run.ts) passes a file in UFLOW_BENCH_RECORD; each
 * record is one JSON line appended to it, and run.ts gathers them into bench/results.json. A bench
 * run by hand (no UFLOW_BENCH_RECORD) records nothing.
 *
 * A figure is a time (ms or s, lower is better); the reference is the same work done by what a user
 * would otherwise run (PyTorch, the official Python), in the same run on the same machine, and
 * ratio = our time / the reference's time (< 1: we are faster).
 */
import { appendFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { basename } from 'node:path';

export interface Figure {
  value: number;
  unit: string;
}

export interface Reference extends Figure {
  /** What the reference is: 'PyTorch 1.13 CPU, 2 threads', 'official evaluate.py', … */
  what: string;
}

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  platform: string;
  node: string;
}

/** The issue-#13 targets. `ratio`: ratio ≤ limit (or < limit when strict); `absolute`: ours < limit in ours' unit. */
export const TARGETS = {
  inference: { text: 'inference per image ≤ 1.5× PyTorch CPU', kind: 'ratio', limit: 1.5, strict: false },
  hover: { text: 'hover map on a loaded run < 150 ms', kind: 'absolute', limit: 150, unit: 'ms', strict: true },
  evaluation: { text: 'full metal_plate evaluation faster than the official evaluate.py', kind: 'ratio', limit: 1, strict: true },
  'train-step': { text: 'training step ≤ 2.5× PyTorch wall time', kind: 'ratio', limit: 2.5, strict: false },
  epoch: { text: 'metal_plate epoch ≤ 2.5× PyTorch wall time', kind: 'ratio', limit: 2.5, strict: false },
} as const satisfies Record<string, { text: string; kind: 'ratio' | 'absolute'; limit: number; strict: boolean; unit?: string }>;
export type TargetId = keyof typeof TARGETS;

export interface RecordInput {
  /** One line of the table: what was measured, with its shapes ('U-Flow training step, 64@64² …, two workers'). */
  name: string;
  ours: Figure;
  reference?: Reference | null;
  /** The issue-#13 target this figure is judged against, if any. */
  target?: TargetId;
  /** The tensor backend or engine ours ran on ('tfjs wasm', 'onnxruntime-node cpu', 'TypeScript'). */
  backend: string;
  note?: string;
}

export interface BenchRecord {
  name: string;
  /** The bench file that recorded it (train-step, epoch, …). */
  bench: string;
  ours: Figure;
  reference: Reference | null;
  /** Our time / the reference's time; null without a reference. */
  ratio: number | null;
  /** The target's text, null if none. */
  target: string | null;
  targetId: TargetId | null;
  met: boolean | null;
  /** How far from the target when missed (our ratio / the limit, or ours / the limit): 2.3 = 'missed by 2.3×'. */
  missedBy: number | null;
  backend: string;
  machine: Machine;
  /** 1-minute load average when recorded (figures taken on a busy machine are inflated). */
  load: number;
  date: string;
  note?: string;
  /** Options the bench was run with when not its defaults (set by bench/run.ts). */
  options?: string;
}

export function machine(): Machine {
  return {
    cpu: (cpus()[0]?.model ?? 'unknown').trim(),
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    platform: `${process.platform}-${process.arch}`,
    node: process.version,
  };
}

const TO_MS: Record<string, number> = { ms: 1, s: 1000, min: 60_000 };

/** our/reference in time; refuses units that are not the same kind of time. */
export function timeRatio(ours: Figure, ref: Figure): number {
  const a = TO_MS[ours.unit];
  const b = TO_MS[ref.unit];
  if (a === undefined || b === undefined) throw new Error(`bench record: ratio needs times in ms, s or min, got '${ours.unit}' and '${ref.unit}'`);
  return (ours.value * a) / (ref.value * b);
}

/** Met / missed by how much, for a figure judged against a target. */
export function judge(targetId: TargetId, ours: Figure, ratio: number | null): { met: boolean | null; missedBy: number | null } {
  const t = TARGETS[targetId];
  let x: number;
  if (t.kind === 'ratio') {
    if (ratio === null || !Number.isFinite(ratio)) return { met: null, missedBy: null };
    x = ratio;
  } else {
    x = timeRatio(ours, { value: 1, unit: t.unit }); // ours in the target's unit
  }
  const met = t.strict ? x < t.limit : x <= t.limit;
  return { met, missedBy: met ? null : x / t.limit };
}

export function makeRecord(input: RecordInput, bench: string, date = new Date().toISOString()): BenchRecord {
  if (!input.name) throw new Error('bench record: name is empty');
  if (!Number.isFinite(input.ours.value)) throw new Error(`bench record '${input.name}': ours is ${input.ours.value}`);
  const reference = input.reference ?? null;
  const ratio = reference ? timeRatio(input.ours, reference) : null;
  const targetId = input.target ?? null;
  const { met, missedBy } = targetId ? judge(targetId, input.ours, ratio) : { met: null, missedBy: null };
  return {
    name: input.name,
    bench,
    ours: input.ours,
    reference,
    ratio,
    target: targetId ? TARGETS[targetId].text : null,
    targetId,
    met,
    missedBy,
    backend: input.backend,
    machine: machine(),
    load: Number(loadavg()[0]!.toFixed(2)),
    date,
    ...(input.note ? { note: input.note } : {}),
  };
}

/** The bench's name from its file: bench/train-step.bench.ts → train-step. */
export function benchName(file = process.argv[1] ?? 'unknown'): string {
  return basename(file).replace(/\.bench\.[cm]?[jt]s$/, '').replace(/\.[cm]?[jt]s$/, '');
}

/** Appends one figure to UFLOW_BENCH_RECORD (one JSON line); does nothing when it is unset. */
export function record(input: RecordInput): BenchRecord {
  const r = makeRecord(input, process.env.UFLOW_BENCH_NAME || benchName());
  const file = process.env.UFLOW_BENCH_RECORD;
  if (file) appendFileSync(file, JSON.stringify(r) + '\n');
  return r;
}
