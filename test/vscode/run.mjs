#!/usr/bin/env node
// `npm run test:vscode`: the extension-host integration suites (mocha inside VS Code, with the
// real `vscode` API and the real daemon dist/server.js). Uses @vscode/test-electron's runTests()
// with `vscodeExecutablePath` pointing at scripts/e2e/code-launcher.mjs, which runs them in
// code-server 4.100.3 + headless Chromium (nothing is downloaded). On a machine with a desktop
// VS Code, set UFLOW_VSCODE_EXECUTABLE to its binary to run the same suites there.
// UFLOW_E2E=skip skips. Args: --no-build (reuse dist/), --grep <pattern>.
import { runTests } from '@vscode/test-electron';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cleanup, missingPrerequisites, repoRoot, scratchDir, skipReason } from '../../scripts/e2e/harness.mjs';
import { ensureSystemDeps } from '../../scripts/e2e/system-deps.mjs';
import { buildSuites } from './build.mjs';
import { makeWorkspace } from './workspace.mjs';

const reason = skipReason();
if (reason) {
  console.log(`test:vscode skipped (${reason})`);
  process.exit(0);
}
const executable = process.env.UFLOW_VSCODE_EXECUTABLE ?? join(repoRoot, 'scripts', 'e2e', 'code-launcher.mjs');
if (!process.env.UFLOW_VSCODE_EXECUTABLE) {
  // Installs the system packages when it can (root or passwordless sudo), as npm test does.
  const deps = ensureSystemDeps({ rerun: 'npm run test:vscode' });
  const missing = deps.ok ? missingPrerequisites() : [deps.message];
  if (missing.length) {
    console.error(`test:vscode cannot run: ${missing.join('; ')}\n(set UFLOW_E2E=skip to skip)`);
    process.exit(1);
  }
}
const args = process.argv.slice(2);
const started = Date.now();
if (!args.includes('--no-build')) {
  const b = spawnSync(process.execPath, ['esbuild.mjs'], { cwd: repoRoot, stdio: 'inherit' });
  if (b.status !== 0) process.exit(b.status ?? 1);
}
// Plain Node unit tests of extension modules that need no VS Code (fast, run first).
const unitFiles = readdirSync(join(repoRoot, 'test', 'vscode', 'unit')).filter((f) => f.endsWith('.test.ts')).map((f) => join('test', 'vscode', 'unit', f));
const unit = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=spec', ...unitFiles], { cwd: repoRoot, stdio: 'inherit' });
if (unit.status !== 0) {
  console.error('test:vscode: unit tests failed');
  process.exit(1);
}
const testsPath = await buildSuites();
const scratch = scratchDir('vscode');
const workspace = await makeWorkspace(join(scratch, 'workspace'));
const userData = join(scratch, 'user-data');
const extensions = join(scratch, 'extensions');
mkdirSync(userData, { recursive: true });
mkdirSync(extensions, { recursive: true });
const gi = args.indexOf('--grep');
let code = 0;
try {
  await runTests({
    vscodeExecutablePath: executable,
    extensionDevelopmentPath: repoRoot,
    extensionTestsPath: testsPath,
    launchArgs: [workspace, `--user-data-dir=${userData}`, `--extensions-dir=${extensions}`, '--disable-extensions'],
    extensionTestsEnv: {
      UFLOW_TEST_WORKSPACE: workspace,
      // Offline with an empty model cache (backbone auto then takes the bundled backbone): the daemon inherits these.
      HF_ENDPOINT: 'http://127.0.0.1:9',
      UFLOW_CACHE_DIR: join(scratch, 'model-cache'),
      ...(gi >= 0 ? { UFLOW_VSCODE_GREP: args[gi + 1] } : {}),
    },
  });
} catch (e) {
  console.error(`test:vscode failed: ${e?.message ?? e}`);
  code = 1;
}
if (code === 0) cleanup(scratch);
else if (existsSync(scratch)) console.error(`scratch folder kept for inspection: ${scratch}`);
console.log(`test:vscode: ${code === 0 ? 'passed' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(code);
