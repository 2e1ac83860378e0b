/**
 * `npm test` on a bare machine (scripts/e2e/system-deps.mjs, system-deps.sh): the decision to do
 * nothing, install or stop, from the facts; and the script and the install path run against a fake
 * dpkg / apt-get / sudo on PATH (nothing on this machine is installed or removed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { decideSystemDeps, ensureSystemDeps, SCRIPT } from '../../scripts/e2e/system-deps.mjs';

const ALL = ['chromium', 'libkrb5-dev', 'ripgrep', 'g++', 'make', 'python3', 'redis-server'];
const facts = { skip: undefined, missing: ['chromium', 'ripgrep'], root: false, sudo: false, aptGet: true };

test('UFLOW_E2E=skip: nothing checked, whatever is missing', () => {
  for (const root of [false, true]) assert.equal(decideSystemDeps({ ...facts, root, skip: 'UFLOW_E2E=skip' }).action, 'skip');
});

test('nothing missing: nothing to do, root or not, apt-get or not', () => {
  for (const root of [false, true]) for (const aptGet of [false, true]) assert.equal(decideSystemDeps({ ...facts, missing: [], root, aptGet }).action, 'none');
});

test('missing, root with apt-get: installs with the script itself', () => {
  const d = decideSystemDeps({ ...facts, root: true });
  assert.equal(d.action, 'install');
  assert.deepEqual(d.command, ['bash', SCRIPT]);
  assert.match(d.message, /chromium ripgrep/);
});

test('missing, passwordless sudo with apt-get: installs through sudo -n', () => {
  const d = decideSystemDeps({ ...facts, sudo: true });
  assert.equal(d.action, 'install');
  assert.deepEqual(d.command, ['sudo', '-n', 'bash', SCRIPT]);
});

test('missing, neither root nor passwordless sudo: stops with the one command to run', () => {
  const d = decideSystemDeps(facts);
  assert.equal(d.action, 'stop');
  assert.equal(d.command, undefined);
  assert.match(d.message, /\n {2}sudo bash scripts\/e2e\/system-deps\.sh\n/);
  assert.match(d.message, /chromium ripgrep/);
  assert.match(d.message, /then npm test again \(UFLOW_E2E=skip npm test leaves the VS Code suites out\)/);
  assert.match(decideSystemDeps({ ...facts, rerun: 'npm run test:vscode' }).message, /then npm run test:vscode again/);
});

test('missing, no apt-get: stops (root or not), naming the packages, with no apt command', () => {
  for (const root of [false, true]) {
    const d = decideSystemDeps({ ...facts, root, sudo: true, aptGet: false });
    assert.equal(d.action, 'stop');
    assert.match(d.message, /no apt-get/);
    assert.doesNotMatch(d.message, /sudo bash/);
  }
});

/** A folder with fake dpkg (knows the names in `installed`), apt-get (logs, and installs into that list) and sudo. */
function fakeSystem(installed: string[]): { dir: string; env: NodeJS.ProcessEnv; apt(): string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'uflow-system-deps-'));
  const list = join(dir, 'installed');
  const log = join(dir, 'apt.log');
  writeFileSync(list, installed.map((p) => p + '\n').join(''));
  const script = (name: string, body: string) => {
    writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(dir, name), 0o755);
  };
  // Like the real one, dpkg -s also knows removed-not-purged packages (list.rc).
  script('dpkg', `[ "$1" = "-s" ] || exit 2\ngrep -qxF -- "$2" '${list}' || grep -qxF -- "$2" '${list}.rc' 2>/dev/null`);
  // dpkg-query -W -f='${Status}' NAME: installed ones from the list, removed-not-purged ones ("rc") from list.rc.
  script(
    'dpkg-query',
    `[ "$1" = "-W" ] || exit 2\nname="$3"\nif grep -qxF -- "$name" '${list}'; then printf 'install ok installed'; elif grep -qxF -- "$name" '${list}.rc' 2>/dev/null; then printf 'deinstall ok config-files'; else echo "dpkg-query: no packages found matching $name" >&2; exit 1; fi`,
  );
  script('apt-get', `echo "$*" >> '${log}'\nif [ "$1" = install ]; then for a in "$@"; do case "$a" in -*|install) ;; *) echo "$a" >> '${list}' ;; esac; done; fi`);
  script('sudo', `[ "$1" = "-n" ] && shift\nexec "$@"`);
  return { dir, env: { ...process.env, PATH: `${dir}:${process.env.PATH}` }, apt: () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []) };
}

test('system-deps.sh: --missing names the missing packages; with all present it runs no apt-get at all', () => {
  const fake = fakeSystem(['ripgrep', 'make', 'python3']);
  try {
    const run = (...args: string[]) => spawnSync('bash', [SCRIPT, ...args], { encoding: 'utf8', env: fake.env });
    assert.deepEqual(run('--missing').stdout.split('\n').filter(Boolean), ['chromium', 'libkrb5-dev', 'g++', 'redis-server']);
    assert.deepEqual(run('--list').stdout.split('\n').filter(Boolean), ALL);
    // Removed but not purged (dpkg -s still knows it, its files are gone): missing.
    writeFileSync(join(fake.dir, 'installed'), ALL.filter((p) => p !== 'chromium').join('\n') + '\n');
    writeFileSync(join(fake.dir, 'installed.rc'), 'chromium\n');
    assert.deepEqual(run('--missing').stdout.split('\n').filter(Boolean), ['chromium']);
    writeFileSync(join(fake.dir, 'installed'), ALL.join('\n') + '\n');
    assert.equal(run('--missing').stdout, '');
    const r = run();
    assert.equal(r.status, 0);
    assert.match(r.stdout, /all present/);
    assert.deepEqual(fake.apt(), []);
  } finally {
    rmSync(fake.dir, { recursive: true, force: true });
  }
});

test('ensureSystemDeps: nothing missing pays nothing; missing ones are installed (as root, or via sudo)', () => {
  const path = process.env.PATH;
  const fake = fakeSystem(ALL);
  try {
    process.env.PATH = fake.env.PATH;
    assert.deepEqual(ensureSystemDeps({ skip: undefined }), { ok: true });
    assert.deepEqual(fake.apt(), []);
    writeFileSync(join(fake.dir, 'installed'), 'make\npython3\n');
    assert.deepEqual(ensureSystemDeps({ skip: undefined }), { ok: true });
    assert.deepEqual(fake.apt(), ['update -qq', 'install -y --no-install-recommends chromium libkrb5-dev ripgrep g++ redis-server']);
  } finally {
    process.env.PATH = path;
    rmSync(fake.dir, { recursive: true, force: true });
  }
});

test('ensureSystemDeps: skipped, it looks at nothing', () => {
  const path = process.env.PATH;
  try {
    process.env.PATH = '/nonexistent';
    assert.deepEqual(ensureSystemDeps({ skip: 'UFLOW_E2E=skip' }), { ok: true });
  } finally {
    process.env.PATH = path;
  }
});
