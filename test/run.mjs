#!/usr/bin/env node
// Runs test suites. unit/golden/cli/daemon are folders of *.test.ts files run by node's test runner
// (TypeScript through tsx); cli and daemon build dist/ first (they run the bundles). vscode and e2e
// run in a real VS Code (code-server + Chromium) through their own runners (test/vscode/run.mjs,
// test/e2e/run.mjs), which skip with a message when UFLOW_E2E=skip. `all` runs everything.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SUITES = {
  unit: ['test/unit'],
  golden: ['test/golden'],
  cli: ['test/cli'],
  daemon: ['test/daemon'],
  queue: ['test/queue'],
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
if (names.some((n) => n === 'cli' || n === 'daemon' || n === 'queue')) {
  const b = spawnSync(process.execPath, ['esbuild.mjs'], { cwd: root, stdio: 'inherit' });
  if (b.status !== 0) process.exit(b.status ?? 1);
}
if (files.length === 0 && runners.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
let status = 0;
if (files.length) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...process.argv.slice(3), ...files], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, UFLOW_TESTING: '1' },
  });
  status = r.status ?? 1;
}
for (const n of runners) {
  console.log(`\n=== ${n} (${RUNNERS[n]}) ===`);
  const r = spawnSync(process.execPath, [RUNNERS[n]], { cwd: root, stdio: 'inherit', env: { ...process.env, UFLOW_TESTING: '1' } });
  if (r.status !== 0) status = r.status ?? 1;
}
process.exit(status);
