#!/usr/bin/env node
// `npm run test:e2e`: packs the extension (npm run package → .cache/e2e/uflow-vscode.vsix) and runs
// the UI end-to-end tests (test/e2e/*.test.ts, node:test + playwright-core) in code-server 4.100.3
// with headless Debian Chromium. Screenshots go to test/e2e/artifacts/.
// UFLOW_E2E=skip skips. Args: --no-package (reuse the last .vsix), any other node --test flags.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { missingPrerequisites, repoRoot, skipReason } from '../../scripts/e2e/harness.mjs';
import { ensureSystemDeps } from '../../scripts/e2e/system-deps.mjs';

const reason = skipReason();
if (reason) {
  console.log(`test:e2e skipped (${reason})`);
  process.exit(0);
}
// Installs the system packages when it can (root or passwordless sudo), as npm test does.
const deps = ensureSystemDeps({ rerun: 'npm run test:e2e' });
const missing = deps.ok ? missingPrerequisites() : [deps.message];
if (missing.length) {
  console.error(`test:e2e cannot run: ${missing.join('; ')}\n(set UFLOW_E2E=skip to skip)`);
  process.exit(1);
}
const args = process.argv.slice(2);
const started = Date.now();
const vsix = join(repoRoot, '.cache', 'e2e', 'uflow-vscode.vsix');
mkdirSync(join(repoRoot, '.cache', 'e2e'), { recursive: true });
if (!args.includes('--no-package') || !existsSync(vsix)) {
  const p = spawnSync(process.execPath, [join(repoRoot, 'scripts', 'package-vsix.mjs'), '--out', vsix], { cwd: repoRoot, stdio: 'inherit' });
  if (p.status !== 0) process.exit(p.status ?? 1);
}
const files = readdirSync(join(repoRoot, 'test', 'e2e')).filter((f) => f.endsWith('.test.ts')).sort().map((f) => join('test', 'e2e', f));
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...args.filter((a) => a !== '--no-package'), ...files], {
  cwd: repoRoot,
  stdio: 'inherit',
  env: { ...process.env, UFLOW_E2E_VSIX: vsix },
});
console.log(`test:e2e: ${r.status === 0 ? 'passed' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(1)} s (screenshots: test/e2e/artifacts/)`);
process.exit(r.status ?? 1);
