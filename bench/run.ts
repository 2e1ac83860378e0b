/**
 * `npm run bench`: runs every bench/*.bench.ts in its own process, one after another (they measure
 * wall time and must not share the 2 cores), and prints each one's output. Each benchmark prints its
 * figure beside a reference run (PyTorch / Python where /usr/bin/python3 has it) as a ratio, and
 * records it (bench/report.ts); at the end the figures are merged into bench/results.json (a subset
 * run keeps the other benches' figures and their dates), and the table and one line per issue-#13
 * target (met, or missed by how much) are printed.
 *
 *   npm run bench                                  # all
 *   npm run bench -- train-step                    # the ones whose name contains a word
 *   npm run bench -- train-step -- --steps 2       # options after a second -- go to each bench
 *                                                  # (recorded as the entries' options)
 * UFLOW_BENCH_RESULTS=FILE writes another results file (bench:gpu writes bench/results-gpu.json).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatTable, mergeResults, parseRecordLines, readResults, targetLines, writeResults } from './results.js';
import type { BenchRecord } from './report.js';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const dd = argv.indexOf('--');
const own = dd >= 0 ? argv.slice(0, dd) : argv;
const passOn = dd >= 0 ? argv.slice(dd + 1) : [];
const filters = own.filter((a) => !a.startsWith('-'));
const all = readdirSync(here).filter((f) => f.endsWith('.bench.ts'));
const files = all.filter((f) => filters.length === 0 || filters.some((w) => f.includes(w))).sort();
if (files.length === 0) {
  console.error(`no benchmark matches ${filters.join(', ')}; available: ${all.join(', ')}`);
  process.exit(2);
}
const resultsPath = resolve(process.env.UFLOW_BENCH_RESULTS ?? join(here, 'results.json'));
const previous = readResults(resultsPath); // a broken file stops here, before anything is measured
const tmp = mkdtempSync(join(tmpdir(), 'uflow-bench-records-'));
const fresh: BenchRecord[] = [];
const completed: string[] = [];
let failed = 0;
try {
  for (const f of files) {
    const name = f.replace(/\.bench\.ts$/, '');
    const recordFile = join(tmp, `${name}.jsonl`);
    console.log(`\n=== ${f} ===`);
    const t0 = Date.now();
    const r = spawnSync(process.execPath, ['--import', 'tsx', join(here, f), ...passOn], {
      stdio: 'inherit',
      cwd: join(here, '..'),
      env: { ...process.env, UFLOW_BENCH_RECORD: recordFile, UFLOW_BENCH_NAME: name },
    });
    console.log(`--- ${f}: ${r.status === 0 ? 'ok' : `exit ${r.status ?? r.signal}`} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    if (r.status !== 0) failed++;
    else completed.push(name);
    if (existsSync(recordFile)) {
      const recs = parseRecordLines(readFileSync(recordFile, 'utf8'), recordFile);
      for (const rec of recs) fresh.push(passOn.length ? { ...rec, options: passOn.join(' ') } : rec);
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
// Merge with what is on disk now (another bench run may have written it meanwhile).
const merged = mergeResults(readResults(resultsPath).entries, fresh, completed);
writeResults(resultsPath, merged);
console.log(`\n${fresh.length} figure${fresh.length === 1 ? '' : 's'} recorded in this run; ${resultsPath} holds ${merged.length} (${previous.entries.length} before)\n`);
console.log(formatTable(merged));
console.log('\nissue #13 targets:');
for (const l of targetLines(merged)) console.log(`  ${l}`);
process.exit(failed ? 1 : 0);
