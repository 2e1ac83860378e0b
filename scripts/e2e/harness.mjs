// Test harness for a real VS Code on machines that cannot download one: code-server 4.100.3
// (VS Code 1.100.3, cached outside the repository by install-code-server.sh) driven by Debian's
// Chromium through playwright-core. Used by the extension-host test launcher (code-launcher.mjs)
// and the UI end-to-end tests (test/e2e). Plain ESM JavaScript so it runs without a build step.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CHROMIUM = process.env.UFLOW_CHROMIUM ?? '/usr/bin/chromium';

/** `UFLOW_E2E=skip` skips the VS Code suites; returns the reason or undefined. */
export function skipReason() {
  if (process.env.UFLOW_E2E === 'skip') return 'UFLOW_E2E=skip';
  return undefined;
}

/** Checks the machine has what the suites need; returns a list of problems (empty when fine). */
export function missingPrerequisites() {
  const problems = [];
  if (!existsSync(CHROMIUM)) problems.push(`${CHROMIUM} missing (scripts/e2e/system-deps.sh installs chromium)`);
  if (spawnSync('sh', ['-c', 'command -v rg'], { stdio: 'ignore' }).status !== 0) problems.push('ripgrep missing (scripts/e2e/system-deps.sh)');
  return problems;
}

/** Installs code-server once (cached); returns its entry script. */
export function ensureCodeServer() {
  const r = spawnSync('bash', [join(repoRoot, 'scripts', 'e2e', 'install-code-server.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`install-code-server.sh failed (${r.status})`);
  const entry = r.stdout.trim().split('\n').pop();
  if (!entry || !existsSync(entry)) throw new Error(`code-server entry not found: ${entry}`);
  return entry;
}

export async function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** A fresh scratch folder under the repository's ignored .cache/ (or $UFLOW_E2E_TMP). */
export function scratchDir(prefix) {
  const base = process.env.UFLOW_E2E_TMP ?? join(repoRoot, '.cache', 'e2e');
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, `${prefix}-`));
}

export const defaultUserSettings = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'workbench.enableExperiments': false,
  'workbench.welcomePage.walkthroughs.openOnInstall': false,
  'security.workspace.trust.enabled': false,
  'telemetry.telemetryLevel': 'off',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'update.mode': 'none',
  'editor.hover.delay': 150,
  'workbench.hover.delay': 150,
  'files.watcherExclude': { '**/.uflow/**': true, '**/node_modules/**': true },
  'chat.commandCenter.enabled': false,
  'workbench.colorTheme': 'Default Dark Modern',
  'git.enabled': false,
  'explorer.compactFolders': false,
  'git.openRepositoryInParentFolders': 'never',
  'workbench.editor.enablePreview': false,
  'notifications.compact': false,
};

function codeServerArgs(dirs) {
  return [
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--config', join(dirs.root, 'config.yaml'),
    '--user-data-dir', dirs.userData,
    '--extensions-dir', dirs.extensions,
  ];
}

function codeServerEnv(dirs, extraEnv) {
  return {
    ...process.env,
    XDG_CONFIG_HOME: join(dirs.root, 'xdg-config'),
    XDG_DATA_HOME: join(dirs.root, 'xdg-data'),
    XDG_CACHE_HOME: join(dirs.root, 'xdg-cache'),
    ...extraEnv,
  };
}

/**
 * Prepares the isolated folders of one code-server instance.
 * opts.root (default: a fresh scratch folder), opts.userData, opts.extensions, opts.settings.
 */
export function prepareDirs(opts = {}) {
  const root = opts.root ?? scratchDir('code-server');
  const dirs = {
    root,
    userData: opts.userData ?? join(root, 'user-data'),
    extensions: opts.extensions ?? join(root, 'extensions'),
  };
  for (const d of [dirs.userData, dirs.extensions, join(dirs.userData, 'User'), join(root, 'xdg-config'), join(root, 'xdg-data')]) mkdirSync(d, { recursive: true });
  writeFileSync(join(root, 'config.yaml'), 'auth: none\ncert: false\n');
  writeFileSync(join(dirs.userData, 'User', 'settings.json'), JSON.stringify({ ...defaultUserSettings, ...(opts.settings ?? {}) }, null, 2));
  return dirs;
}

/** `code-server --install-extension <vsix>` into the instance's extensions folder. */
export function installExtension(entry, dirs, vsix) {
  const r = spawnSync(process.execPath, [entry, ...codeServerArgs(dirs), '--install-extension', vsix, '--force'], {
    env: codeServerEnv(dirs, {}),
    encoding: 'utf8',
  });
  if (r.status !== 0 || /failed|error/i.test(r.stderr ?? '')) {
    throw new Error(`installing ${vsix} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

/**
 * Starts code-server on a free loopback port and waits for /healthz.
 * Returns { url, port, dirs, proc, log(), stop() }.
 */
export async function startCodeServer({ entry, dirs, env = {}, onOutput } = {}) {
  entry ??= ensureCodeServer();
  dirs ??= prepareDirs();
  const port = await freePort();
  let output = '';
  const proc = spawn(process.execPath, [entry, ...codeServerArgs(dirs), '--auth', 'none', '--bind-addr', `127.0.0.1:${port}`], {
    env: codeServerEnv(dirs, env),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const onData = (d) => {
    const s = d.toString();
    output += s;
    if (output.length > 2_000_000) output = output.slice(-1_000_000);
    onOutput?.(s);
  };
  proc.stdout.on('data', onData);
  proc.stderr.on('data', onData);
  const exited = new Promise((res) => proc.once('exit', (code, signal) => res({ code, signal })));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    const state = await Promise.race([exited.then((e) => ({ exited: e })), fetch(`${url}/healthz`).then((r) => ({ ok: r.ok }), () => ({ ok: false }))]);
    if (state.exited) throw new Error(`code-server exited (${JSON.stringify(state.exited)}):\n${output}`);
    if (state.ok) break;
    if (Date.now() > deadline) throw new Error(`code-server did not answer /healthz in 60 s:\n${output}`);
    // Wait for the next line of output or a short poll interval, whichever comes first.
    await new Promise((res) => {
      const t = setTimeout(res, 200);
      proc.stdout.once('data', () => { clearTimeout(t); res(); });
    });
  }
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    try { process.kill(-proc.pid, 'SIGTERM'); } catch { /* gone */ }
    const t = setTimeout(() => { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 5000);
    await exited;
    clearTimeout(t);
  };
  return { url, port, dirs, proc, log: () => output, stop };
}

/** Turns a local absolute path into the URI the web workbench uses for files on the server. */
export function remoteUri(port, path) {
  return `vscode-remote://127.0.0.1:${port}${path.startsWith('/') ? '' : '/'}${path}`;
}

/** The workbench URL for a folder, with an optional `payload` (list of [key, value]). */
export function workbenchUrl(server, folder, payload) {
  let u = `${server.url}/?folder=${encodeURIComponent(folder)}`;
  if (payload) u += `&payload=${encodeURIComponent(JSON.stringify(payload))}`;
  return u;
}

/** Launches headless Chromium with a fresh profile. Returns the playwright Browser. */
export async function launchChromium({ profileRoot } = {}) {
  const { chromium } = await import('playwright-core');
  const root = profileRoot ?? scratchDir('chromium');
  mkdirSync(join(root, 'xdg'), { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
    ],
    env: { ...process.env, XDG_CONFIG_HOME: join(root, 'xdg'), HOME: root },
  });
  return browser;
}

/** Removes a scratch folder unless UFLOW_E2E_KEEP is set. */
export function cleanup(dir) {
  if (process.env.UFLOW_E2E_KEEP) return;
  try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
}
