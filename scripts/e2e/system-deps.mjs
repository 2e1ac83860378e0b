// The system packages of the VS Code suites (test:vscode, test:e2e) before `npm test` runs
// anything: nothing to do when they are all there (scripts/e2e/system-deps.sh --missing says which
// are not, from dpkg: no apt-get update on a machine that has them); installed by that script when
// this process can (root, or passwordless sudo, and apt-get); otherwise a stop, before any test,
// with the one command to run. UFLOW_E2E=skip leaves the VS Code suites, and this check, out.
// Plain ESM JavaScript (like harness.mjs) so test/run.mjs uses it without a build step.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { CHROMIUM, repoRoot, skipReason } from './harness.mjs';

export const SCRIPT = 'scripts/e2e/system-deps.sh';

/**
 * What to do, from the facts alone: `skip` (why the VS Code suites do not run, or undefined),
 * `missing` (package names; empty: all present), `root`, `sudo` (passwordless sudo works),
 * `aptGet` (apt-get is on the PATH), `rerun` (the command the person runs again afterwards).
 * Returns { action: 'skip' | 'none' | 'install' | 'stop', command?: argv to run for 'install', message }.
 */
export function decideSystemDeps({ skip, missing, root, sudo, aptGet, rerun = 'npm test' }) {
  if (skip) return { action: 'skip', message: `system packages not checked (${skip})` };
  if (!missing.length) return { action: 'none', message: 'system packages: all present' };
  const list = missing.join(' ');
  const without = `UFLOW_E2E=skip ${rerun} leaves the VS Code suites out`;
  if (aptGet && root) return { action: 'install', command: ['bash', SCRIPT], message: `installing the system packages the VS Code suites need: ${list} (bash ${SCRIPT})` };
  if (aptGet && sudo) return { action: 'install', command: ['sudo', '-n', 'bash', SCRIPT], message: `installing the system packages the VS Code suites need: ${list} (sudo bash ${SCRIPT})` };
  if (aptGet) {
    return {
      action: 'stop',
      message: `the VS Code suites need system packages that are missing here (${list}), and installing them needs root. Run once:\n\n  sudo bash ${SCRIPT}\n\nthen ${rerun} again (${without}).`,
    };
  }
  return {
    action: 'stop',
    message: `the VS Code suites need ${list}, missing here, and there is no apt-get (${SCRIPT} is for Debian and Ubuntu): install them with this system's package manager (Chromium at ${CHROMIUM}, or set UFLOW_CHROMIUM), then ${rerun} again (${without}).`,
  };
}

function has(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/** The missing packages: system-deps.sh --missing where dpkg is; elsewhere what the suites look for (chromium, rg). */
export function missingSystemPackages() {
  if (has('dpkg')) {
    const r = spawnSync('bash', [SCRIPT, '--missing'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) throw new Error(`${SCRIPT} --missing failed (${r.status})`);
    return r.stdout.split('\n').filter(Boolean);
  }
  return [...(existsSync(CHROMIUM) ? [] : ['chromium']), ...(has('rg') ? [] : ['ripgrep'])];
}

/**
 * Checks, and installs when it can (opts.skip: as skipReason(), which it defaults to; opts.rerun: as
 * for decideSystemDeps). Returns { ok: true } (nothing missing now, or skipped) or
 * { ok: false, message } (the caller prints it and exits before any test).
 */
export function ensureSystemDeps(opts = {}) {
  const skip = 'skip' in opts ? opts.skip : skipReason();
  const rerun = opts.rerun ?? 'npm test';
  const missing = skip ? [] : missingSystemPackages();
  const root = process.getuid?.() === 0;
  const aptGet = missing.length > 0 && has('apt-get');
  const sudo = aptGet && !root && has('sudo') && spawnSync('sudo', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
  const d = decideSystemDeps({ skip, missing, root, sudo, aptGet, rerun });
  if (d.action === 'stop') return { ok: false, message: d.message };
  if (d.action !== 'install') return { ok: true };
  console.log(d.message);
  const r = spawnSync(d.command[0], d.command.slice(1), { cwd: repoRoot, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  const still = r.status === 0 ? missingSystemPackages() : missing;
  if (r.status !== 0 || still.length) {
    return { ok: false, message: `installing ${still.join(' ')} failed (${d.command.join(' ')} exited ${r.status}; see above): fix that and run  sudo bash ${SCRIPT}, then ${rerun} again (UFLOW_E2E=skip ${rerun} leaves the VS Code suites out).` };
  }
  return { ok: true };
}
