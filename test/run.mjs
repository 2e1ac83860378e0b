#!/usr/bin/env node
// Runs test suites. unit/golden/cli/daemon are folders of *.test.ts files run by node's test runner
// (TypeScript through tsx); cli and daemon build dist/ first (they run the bundles). vscode and e2e
// run in a real VS Code (code-server + Chromium) through their own runners (test/vscode/run.mjs,
// test/e2e/run.mjs), which skip with a message when UFLOW_E2E=skip. `all` runs everything.
// faults is the fault catalogue (test/faults, built on dist/ too): its table by category
// (cases, refused, warned, accepted) is printed at the end.
// Before any test: when vscode or e2e is among the suites, their system packages are checked and,
// where this process can, installed (scripts/e2e/system-deps.mjs); otherwise it stops at once with
// the command to run.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureSystemDeps } from '../scripts/e2e/system-deps.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SUITES = {
  unit: ['test/unit'],
  golden: ['test/golden'],
  cli: ['test/cli'],
  daemon: ['test/daemon'],
  queue: ['test/queue'],
  faults: ['test/faults'],
};
const RUNNERS = { vscode: 'test/vscode/run.mjs', e2e: 'test/e2e/run.mjs' };
const which = process.argv[2] ?? 'all';
const names = which === 'all' ? [...Object.keys(SUITES), ...Object.keys(RUNNERS)] : which.split(',');
const runners = names.filter((n) => RUNNERS[n]);
const files = [];
for (const n of names) {
  if (RUNNERS[n]) continue;
  if (!SUITES[n]) {
    console.error(`unknown suite '${n}': choose from ${[...Object.keys(SUITES), ...Object.keys(RUNNERS)].join(', ')}, all`);
    process.exit(2);
  }
  for (const d of SUITES[n]) {
    const dir = join(root, d);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).sort()) if (f.endsWith('.test.ts')) files.push(join(d, f));
  }
}
if (runners.includes('e2e') || (runners.includes('vscode') && !process.env.UFLOW_VSCODE_EXECUTABLE)) {
  const deps = ensureSystemDeps({ rerun: which === 'all' ? 'npm test' : `node test/run.mjs ${which}` });
  if (!deps.ok) {
    console.error(`\n${deps.message}\n`);
    process.exit(1);
  }
}
if (names.some((n) => n === 'cli' || n === 'daemon' || n === 'queue' || n === 'faults')) {
  const b = spawnSync(process.execPath, ['esbuild.mjs'], { cwd: root, stdio: 'inherit' });
  if (b.status !== 0) process.exit(b.status ?? 1);
}
if (files.length === 0 && runners.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
let status = 0;
const faultsTable = join(tmpdir(), `uflow-faults-table-${process.pid}.json`);
if (files.length) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...process.argv.slice(3), ...files], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, UFLOW_TESTING: '1', UFLOW_FAULTS_TABLE: faultsTable },
  });
  status = r.status ?? 1;
}
if (existsSync(faultsTable)) {
  const rows = JSON.parse(readFileSync(faultsTable, 'utf8'));
  const line = (r) => `${r.category.padEnd(12)} ${String(r.cases).padStart(5)} ${String(r.refused).padStart(7)} ${String(r.warned).padStart(6)} ${String(r.accepted).padStart(8)}`;
  const total = rows.reduce((a, r) => ({ ...a, cases: a.cases + r.cases, refused: a.refused + r.refused, warned: a.warned + r.warned, accepted: a.accepted + r.accepted }), { category: 'total', cases: 0, refused: 0, warned: 0, accepted: 0 });
  console.log(`\nfault catalogue (test/faults):\n${'category'.padEnd(12)} ${'cases'.padStart(5)} ${'refused'.padStart(7)} ${'warned'.padStart(6)} ${'accepted'.padStart(8)}`);
  for (const r of rows) console.log(line(r));
  console.log(line(total));
  rmSync(faultsTable, { force: true });
}
for (const n of runners) {
  console.log(`\n=== ${n} (${RUNNERS[n]}) ===`);
  const r = spawnSync(process.execPath, [RUNNERS[n]], { cwd: root, stdio: 'inherit', env: { ...process.env, UFLOW_TESTING: '1' } });
  if (r.status !== 0) status = r.status ?? 1;
}
process.exit(status);
