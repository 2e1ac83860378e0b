/**
 * The fault catalogue's machinery: a category is a table of cases built by generators; each case
 * prepares a fresh folder (a copy of the category's base workspace), plants one fault, runs the
 * real component (the built CLI, or the real daemon), and states the exact behaviour expected:
 *
 *   refuse  — the command fails (exit code ≠ 0, or a JSON-RPC error) with a message naming `names`
 *   warn    — it succeeds and warns, naming `names`
 *   accept  — it succeeds without a warning
 *
 * and, whatever happened, that no file that existed before was changed or removed (`mayChange`
 * lists the exceptions a case declares, e.g. run.json of a resumed run). New files are fine (a run
 * folder, a report).
 *
 * Each category prints its table (cases, refused, warned, accepted) and appends it to
 * $TMPDIR/uflow-faults-table.json (UFLOW_FAULTS_TABLE overrides the file).
 */
import { describe, test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

export type Outcome = 'refuse' | 'warn' | 'accept';

export interface Observed {
  outcome: Outcome;
  /** Everything the person sees: stdout + stderr, or the error message. */
  text: string;
  /** Extra checks of the case (counts in a report, the run's state, …). */
  detail?: unknown;
}

export interface FaultCase {
  name: string;
  expect: Outcome;
  /** Paths (or fragments) the message must name. */
  names?: (dir: string) => string[];
  /** Also matched against the text. */
  match?: RegExp;
  /** Plants the fault in `dir` (a copy of the base workspace). */
  plant(dir: string): Promise<void> | void;
  /** Runs the component. */
  act(dir: string): Promise<Observed>;
  /** More assertions on what was observed. */
  check?(dir: string, seen: Observed): Promise<void> | void;
  /** Relative paths (prefixes) of pre-existing files that may change. */
  mayChange?: string[];
}

export interface CategoryOptions {
  /** Builds the base workspace every case starts from (copied per case). */
  base?(dir: string): Promise<void>;
  /** Per-test timeout (ms). */
  timeout?: number;
  /** Cases at a time (default UFLOW_FAULTS_CONCURRENCY or 2); 1 where cases share one process. */
  concurrency?: number;
}

/** path → content hash (symlinks: their target) of every entry under dir. */
export function snapshotTree(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      return;
    }
    for (const n of names) {
      const p = join(d, n);
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      const rel = relative(dir, p);
      if (st.isSymbolicLink()) out.set(rel, `link:${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.set(rel, 'dir');
        walk(p);
      } else if (st.isFile()) {
        try {
          out.set(rel, createHash('sha256').update(readFileSync(p)).digest('hex'));
        } catch {
          out.set(rel, `unreadable:${st.size}:${st.mtimeMs}`);
        }
      } else out.set(rel, `special:${st.mode}`);
    }
  };
  walk(dir);
  return out;
}

/** Pre-existing entries that changed or vanished (outside `mayChange`). */
export function changedSince(before: Map<string, string>, after: Map<string, string>, mayChange: string[] = []): string[] {
  const bad: string[] = [];
  for (const [rel, h] of before) {
    if (mayChange.some((m) => rel === m || rel.startsWith(m.endsWith('/') ? m : m + '/'))) continue;
    const now = after.get(rel);
    if (now === undefined) bad.push(`${rel} (removed)`);
    else if (now !== h && h !== 'dir') bad.push(`${rel} (changed)`);
  }
  return bad;
}

export interface Tally {
  category: string;
  cases: number;
  refused: number;
  warned: number;
  accepted: number;
}

const TABLE_FILE = process.env.UFLOW_FAULTS_TABLE ?? join(tmpdir(), 'uflow-faults-table.json');

function record(t: Tally): void {
  let all: Tally[] = [];
  try {
    all = JSON.parse(readFileSync(TABLE_FILE, 'utf8')) as Tally[];
  } catch {
    /* first */
  }
  all = all.filter((x) => x.category !== t.category);
  all.push(t);
  writeFileSync(TABLE_FILE, JSON.stringify(all, null, 2) + '\n');
}

export function formatTable(rows: Tally[]): string {
  const head = `${'category'.padEnd(12)} ${'cases'.padStart(5)} ${'refused'.padStart(7)} ${'warned'.padStart(6)} ${'accepted'.padStart(8)}`;
  const lines = rows.map((r) => `${r.category.padEnd(12)} ${String(r.cases).padStart(5)} ${String(r.refused).padStart(7)} ${String(r.warned).padStart(6)} ${String(r.accepted).padStart(8)}`);
  const tot = rows.reduce((a, r) => ({ category: 'total', cases: a.cases + r.cases, refused: a.refused + r.refused, warned: a.warned + r.warned, accepted: a.accepted + r.accepted }), { category: 'total', cases: 0, refused: 0, warned: 0, accepted: 0 });
  return [head, ...lines, `${'total'.padEnd(12)} ${String(tot.cases).padStart(5)} ${String(tot.refused).padStart(7)} ${String(tot.warned).padStart(6)} ${String(tot.accepted).padStart(8)}`].join('\n');
}

/**
 * Registers one test per case, and the category's table at the end. Cases run two at a time
 * (UFLOW_FAULTS_CONCURRENCY): each is mostly a child process.
 */
export function category(name: string, cases: FaultCase[], opts: CategoryOptions = {}): void {
  describe(name, { concurrency: opts.concurrency ?? Number(process.env.UFLOW_FAULTS_CONCURRENCY ?? 2) }, () => categoryBody(name, cases, opts));
}

function categoryBody(name: string, cases: FaultCase[], opts: CategoryOptions): void {
  const tally: Tally = { category: name, cases: 0, refused: 0, warned: 0, accepted: 0 };
  const names = new Set<string>();
  for (const c of cases) {
    assert.ok(!names.has(c.name), `duplicate case name ${c.name}`);
    names.add(c.name);
  }
  let root = '';
  let base = '';
  before(async () => {
    root = realpathSync(mkdtempSync(join(tmpdir(), `uflow-faults-${name}-`)));
    base = join(root, 'base');
    if (opts.base) await opts.base(base);
  });
  after(() => {
    const out = `fault catalogue, ${name}:\n${formatTable([tally])}`;
    console.log(out);
    record(tally);
    if (root) rmSync(root, { recursive: true, force: true });
  });
  cases.forEach((c, i) => {
    test(`${name}: ${c.name}`, { timeout: opts.timeout ?? 120_000 }, async () => {
      const dir = join(root, `case-${String(i).padStart(3, '0')}`);
      if (existsSync(base)) cpSync(base, dir, { recursive: true, verbatimSymlinks: true });
      await c.plant(dir);
      const snap = snapshotTree(dir);
      const seen = await c.act(dir);
      const changed = changedSince(snap, snapshotTree(dir), c.mayChange);
      assert.deepEqual(changed, [], `pre-existing files changed:\n${seen.text.slice(-1500)}`);
      assert.equal(seen.outcome, c.expect, `expected ${c.expect}, got ${seen.outcome}:\n${seen.text.slice(-3000)}`);
      for (const n of c.names?.(dir) ?? []) assert.ok(seen.text.includes(n), `the message must name ${n}:\n${seen.text.slice(-3000)}`);
      if (c.match) assert.match(seen.text, c.match);
      assert.doesNotMatch(seen.text, /internal error|please report it/i, 'nothing a person can cause is an internal error');
      await c.check?.(dir, seen);
      tally.cases++;
      if (seen.outcome === 'refuse') tally.refused++;
      else if (seen.outcome === 'warn') tally.warned++;
      else tally.accepted++;
      rmSync(dir, { recursive: true, force: true });
    });
  });
}
