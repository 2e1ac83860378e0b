/**
 * bench/results.json: the figures of the last `npm run bench` of each bench, merged run after run
 * (running a subset keeps the others with their dates), the table printed at the end of a run and
 * written into the README by `npm run bench:table`, and one line per issue-#13 target.
 */
import { existsSync, readFileSync } from 'node:fs';
import { atomicWriteJson } from '../models/io/atomic.js';
import { TARGETS, type BenchRecord, type Machine, type TargetId } from './report.js';

export interface ResultsFile {
  schema: 1;
  updated: string;
  entries: BenchRecord[];
}

export function readResults(path: string): ResultsFile {
  if (!existsSync(path)) return { schema: 1, updated: '', entries: [] };
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path} is not valid JSON (${(e as Error).message}): delete it (npm run bench writes it again) or restore it with git checkout`);
  }
  const f = v as Partial<ResultsFile>;
  if (f.schema !== 1 || !Array.isArray(f.entries)) throw new Error(`${path} is not a bench results file (schema 1 with entries[]): delete it or restore it with git checkout`);
  return f as ResultsFile;
}

export function writeResults(path: string, entries: BenchRecord[], now = new Date().toISOString()): ResultsFile {
  const f: ResultsFile = { schema: 1, updated: now, entries };
  atomicWriteJson(path, f);
  return f;
}

/** The JSON lines one bench appended (record()); a broken line is an error naming the file. */
export function parseRecordLines(text: string, source: string): BenchRecord[] {
  return text
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => {
      try {
        const r = JSON.parse(l) as BenchRecord;
        if (typeof r.name !== 'string' || typeof r.ours?.value !== 'number') throw new Error('no name or ours.value');
        return r;
      } catch (e) {
        throw new Error(`${source} line ${i + 1} is not a bench record (${(e as Error).message}); it is written by bench/report.ts record()`);
      }
    });
}

const keyOf = (r: Pick<BenchRecord, 'name' | 'backend'>) => `${r.name}\u0000${r.backend}`;

/**
 * Merges a run's records into the previous entries: a figure measured again (same name and backend)
 * replaces the old one in place; a new one is appended; the others stay with their dates, except
 * those of a bench that completed in this run without recording them again (renamed or gone).
 */
export function mergeResults(old: BenchRecord[], fresh: BenchRecord[], completed: string[] = []): BenchRecord[] {
  const freshByKey = new Map(fresh.map((r) => [keyOf(r), r]));
  const done = new Set(completed);
  const out: BenchRecord[] = [];
  const used = new Set<string>();
  for (const r of old) {
    const k = keyOf(r);
    const f = freshByKey.get(k);
    if (f) {
      if (!used.has(k)) out.push(f);
      used.add(k);
    } else if (!done.has(r.bench)) out.push(r);
  }
  for (const r of fresh) {
    const k = keyOf(r);
    if (!used.has(k)) {
      out.push(r);
      used.add(k);
    }
  }
  return out;
}

const num = (v: number): string => {
  const a = Math.abs(v);
  return a >= 100 ? v.toFixed(0) : a >= 10 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toPrecision(2);
};

/** A time for the table: ms from 10 s up shown in s. */
export function formatTime(f: { value: number; unit: string }): string {
  return f.unit === 'ms' && f.value >= 10_000 ? `${num(f.value / 1000)} s` : `${num(f.value)} ${f.unit}`;
}

export function formatRatio(r: number | null): string {
  if (r === null || !Number.isFinite(r)) return '';
  return r >= 1 ? `${num(r)}×` : `${r.toPrecision(2)}× (${num(1 / r)}× faster)`;
}

function formatTarget(r: BenchRecord): string {
  if (!r.target) return '';
  if (r.met === null) return `${r.target}: not judged (no reference)`;
  return r.met ? 'met' : `missed by ${num(r.missedBy!)}×`;
}

/** One line per issue-#13 target: met, missed by N× (each figure judged against it), or not measured. */
export function targetLines(entries: BenchRecord[]): string[] {
  const lines: string[] = [];
  for (const id of Object.keys(TARGETS) as TargetId[]) {
    const t = TARGETS[id];
    const rs = entries.filter((r) => r.targetId === id);
    if (!rs.length) {
      lines.push(`${t.text}: not measured (no bench records it)`);
      continue;
    }
    for (const r of rs) {
      const fig = t.kind === 'ratio' ? (r.ratio === null ? 'no reference' : `${num(r.ratio)}×`) : `${num(r.ours.value)} ${r.ours.unit}`;
      const verdict = r.met === null ? 'not judged (no reference in this run)' : r.met ? 'met' : `missed by ${num(r.missedBy!)}×`;
      const caveats = [r.load >= r.machine.cores ? `load ${r.load.toFixed(1)} on ${r.machine.cores} cores: not an idle-machine figure` : '', r.options ? `options ${r.options}` : ''].filter(Boolean);
      lines.push(`${t.text}: ${verdict} (${fig}; ${r.name}, ${r.backend}, ${r.date.slice(0, 10)})${caveats.length ? ` [${caveats.join('; ')}]` : ''}`);
    }
  }
  return lines;
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function machineText(m: Machine): string {
  return `${m.cores} cores, ${m.cpu}, ${m.memoryGiB} GiB, ${m.platform}, node ${m.node}`;
}

/** The performance table (markdown): one row per figure, then the machines and the load. */
export function formatTable(entries: BenchRecord[]): string {
  const rows = [
    '| work | ours | reference | ratio (ours / ref. time) | target | backend | measured |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const r of entries) {
    const ref = r.reference ? `${r.reference.what}: ${formatTime(r.reference)}` : '';
    const when = `${r.date.slice(0, 10)}, load ${r.load.toFixed(1)}${r.options ? `, \`${r.options}\`` : ''}`;
    rows.push(`| ${cell(r.name)} (\`${r.bench}\`) | ${formatTime(r.ours)}${r.note ? ` (${cell(r.note)})` : ''} | ${cell(ref)} | ${formatRatio(r.ratio)} | ${cell(formatTarget(r))} | ${cell(r.backend)} | ${when} |`);
  }
  const machines = [...new Set(entries.map((r) => machineText(r.machine)))];
  return [...rows, '', `Machine${machines.length > 1 ? 's' : ''}: ${machines.join('; ') || 'none recorded'}. Load is the 1-minute load average when the figure was taken.`].join('\n');
}

export const TABLE_START = '<!-- bench-table:start (npm run bench:table writes this from bench/results.json) -->';
export const TABLE_END = '<!-- bench-table:end -->';

/** The README with the text between the markers replaced; an error naming the file if they are missing. */
export function replaceTable(readme: string, table: string, file = 'README.md'): string {
  const a = readme.indexOf(TABLE_START);
  const b = readme.indexOf(TABLE_END);
  if (a < 0 || b < a) throw new Error(`${file} has no bench table markers: put the lines\n${TABLE_START}\n${TABLE_END}\nwhere the table goes`);
  return `${readme.slice(0, a + TABLE_START.length)}\n${table}\n${readme.slice(b)}`;
}
