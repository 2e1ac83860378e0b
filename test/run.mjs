#!/usr/bin/env node
// Runs a test suite with node's test runner (TypeScript through tsx). Suites are folders of
// *.test.ts files; `all` builds the bundles first (daemon and CLI tests run dist/).
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
};
const which = process.argv[2] ?? 'all';
const names = which === 'all' ? Object.keys(SUITES) : which.split(',');
const files = [];
for (const n of names) {
  if (!SUITES[n]) {
    console.error(`unknown suite '${n}': choose from ${Object.keys(SUITES).join(', ')}, all`);
    process.exit(2);
  }
  for (const d of SUITES[n]) {
    const dir = join(root, d);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir).sort()) if (f.endsWith('.test.ts')) files.push(join(d, f));
  }
}
if (names.some((n) => n === 'cli' || n === 'daemon')) {
  const b = spawnSync(process.execPath, ['esbuild.mjs'], { cwd: root, stdio: 'inherit' });
  if (b.status !== 0) process.exit(b.status ?? 1);
}
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', ...process.argv.slice(3), ...files], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, UFLOW_TESTING: '1' },
});
process.exit(r.status ?? 1);
