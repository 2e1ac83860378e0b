#!/usr/bin/env node
// A stand-in for the `code` executable that @vscode/test-electron's runTests() launches
// (`vscodeExecutablePath`): it takes the same flags (folder, --extensionDevelopmentPath=,
// --extensionTestsPath=, --user-data-dir=, --extensions-dir=), starts code-server 4.100.3 with
// them and opens the web workbench in headless Chromium with a `payload` that makes the Node
// extension host run the tests. Exits with the tests' exit code (window.codeAutomationExit).
// The mocha output of the extension host is printed on stdout.
// Env: UFLOW_E2E_TIMEOUT_MS (default 900000), UFLOW_E2E_SETTINGS (JSON of extra user settings),
//      UFLOW_E2E_KEEP (keep the scratch folders), UFLOW_E2E_VERBOSE (print code-server's log).
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { format } from 'node:util';
import {
  cleanup, ensureCodeServer, launchChromium, prepareDirs, remoteUri, repoRoot, scratchDir, startCodeServer, workbenchUrl,
} from './harness.mjs';

const argv = process.argv.slice(2);
const flag = (name) => {
  const values = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith(`--${name}=`)) values.push(a.slice(name.length + 3));
    else if (a === `--${name}` && i + 1 < argv.length) values.push(argv[++i]);
  }
  return values;
};
const VALUE_FLAGS = new Set(['--user-data-dir', '--extensions-dir', '--extensionDevelopmentPath', '--extensionTestsPath', '--locale']);
const positional = [];
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a.startsWith('-')) { if (VALUE_FLAGS.has(a)) i++; continue; }
  positional.push(a);
}

const devPaths = flag('extensionDevelopmentPath').map((p) => resolve(p));
const testsPath = flag('extensionTestsPath').map((p) => resolve(p))[0];
if (!testsPath) {
  console.error('code-launcher: --extensionTestsPath is required');
  process.exit(2);
}
const folder = resolve(positional[0] ?? process.cwd());
const timeoutMs = Number(process.env.UFLOW_E2E_TIMEOUT_MS ?? 900_000);
const verbose = !!process.env.UFLOW_E2E_VERBOSE;
// Workbench log lines that say nothing about the tests (no network here: the gallery is unreachable).
const NOISE = /^(Resolving connection token|Resolved connection token|Creating a socket|getaddrinfo ENOTFOUND|\s+at )|open-vsx\.org|marketplace/;

const root = scratchDir('vscode-suite');
const dirs = prepareDirs({
  root,
  userData: flag('user-data-dir')[0],
  extensions: flag('extensions-dir')[0],
  settings: process.env.UFLOW_E2E_SETTINGS ? JSON.parse(process.env.UFLOW_E2E_SETTINGS) : {},
});

let server;
let browser;
let code = 1;
const started = Date.now();
try {
  const entry = ensureCodeServer();
  server = await startCodeServer({ entry, dirs, onOutput: verbose ? (s) => process.stderr.write(`[code-server] ${s}`) : undefined });
  browser = await launchChromium({ profileRoot: join(root, 'chromium') });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  let resolveExit;
  const exited = new Promise((res) => { resolveExit = res; });
  await page.exposeFunction('codeAutomationLog', (type, args) => {
    const text = Array.isArray(args) ? format(...args) : String(args);
    if (verbose) process.stdout.write(`[${type}] ${text}\n`);
    else if (!NOISE.test(text)) process.stdout.write(`${text}\n`);
  });
  await page.exposeFunction('codeAutomationExit', (exitCode) => resolveExit(Number(exitCode)));
  if (verbose) page.on('console', (m) => process.stderr.write(`[browser:${m.type()}] ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`[browser:pageerror] ${e.message}\n`));
  const payload = [
    ...devPaths.map((p) => ['extensionDevelopmentPath', remoteUri(server.port, p)]),
    ['extensionTestsPath', remoteUri(server.port, testsPath)],
  ];
  await page.goto(workbenchUrl(server, folder, payload));
  let timer;
  const timeout = new Promise((res) => { timer = setTimeout(() => res('timeout'), timeoutMs); });
  const serverGone = new Promise((res) => server.proc.once('exit', () => res('server-exit')));
  const result = await Promise.race([exited, timeout, serverGone]);
  clearTimeout(timer);
  if (typeof result === 'number') code = result;
  else {
    console.error(`code-launcher: ${result === 'timeout' ? `no exit code after ${timeoutMs} ms` : 'code-server exited'}`);
    code = 1;
  }
  if (code !== 0) {
    const dir = join(repoRoot, 'test', 'e2e', 'artifacts');
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: join(dir, 'vscode-suite-failure.png') }).catch(() => {});
    if (!verbose) process.stderr.write(`code-server log (tail):\n${server.log().slice(-4000)}\n`);
  }
} catch (e) {
  console.error(`code-launcher: ${e?.stack ?? e}`);
  code = 1;
} finally {
  await browser?.close().catch(() => {});
  await server?.stop().catch(() => {});
  cleanup(root);
}
console.error(`code-launcher: exit ${code} after ${((Date.now() - started) / 1000).toFixed(1)} s`);
process.exit(code);
