/**
 * Transports of the real daemon (dist/server.js): stdio and Node IPC with an LSP initialize, a
 * simple stdio client without initialize, and TCP with its token handshake.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes, PROTOCOL_VERSION, type StatusResult, type UflowServerCapabilities } from '../../server/protocol.js';
import { rejectsWith, SERVER, startDaemon, tcpClient, tempDir, withTimeout, requireBuild } from './harness.js';

test('stdio: initialize answers the uflow capabilities; status reports engine, memory, roots', async () => {
  const { dir, cleanup } = tempDir();
  const d = await startDaemon({ workspaceFolders: [dir] });
  try {
    const status = (await d.conn.sendRequest('uflow/status')) as StatusResult;
    assert.equal(status.protocolVersion, PROTOCOL_VERSION);
    assert.ok(['tensorflow-gpu', 'tensorflow', 'webgpu', 'wasm', 'cpu'].includes(status.engine.backend), status.engine.backend);
    assert.ok(status.engine.device.length > 0);
    assert.equal(typeof status.memory.tensors, 'number');
    assert.ok(status.memory.rss > 0);
    assert.deepEqual(status.models, ['uflow', 'fastflow']);
    assert.deepEqual(status.jobs, []);
    assert.deepEqual(status.roots, [{ path: dir, kind: 'workspace' }]);
    assert.equal(status.versions.node, process.versions.node);
    assert.equal(status.pid, d.proc.pid);
  } finally {
    assert.equal(await d.close(), 0, 'shutdown + exit ends the daemon with 0');
    cleanup();
  }
});

test('node-ipc (what the extension uses): initialize and status', async () => {
  const { dir, cleanup } = tempDir();
  const d = await startDaemon({ transport: 'ipc', initialize: false });
  try {
    const init = (await d.conn.sendRequest('initialize', {
      processId: process.pid,
      rootUri: null,
      capabilities: {},
      workspaceFolders: [{ uri: `file://${dir}`, name: 'ws' }],
    })) as { capabilities: { experimental: { uflow: UflowServerCapabilities } }; serverInfo: { name: string } };
    const caps = init.capabilities.experimental.uflow;
    assert.equal(caps.protocolVersion, PROTOCOL_VERSION);
    assert.ok(caps.methods.includes('uflow/train') && caps.methods.includes('uflow/predict'));
    assert.deepEqual(caps.queue, { train: 1, evaluate: 1, predict: 1 });
    assert.equal(init.serverInfo.name, 'uflow');
    const status = (await d.conn.sendRequest('uflow/status')) as StatusResult;
    assert.deepEqual(status.roots?.map((r) => r.path), [dir]);
  } finally {
    assert.equal(await d.close(), 0);
    cleanup();
  }
});

test('stdio without initialize: served with the --allow folders only', async () => {
  const { dir, cleanup } = tempDir();
  const other = tempDir();
  const d = await startDaemon({ initialize: false, args: ['--allow', dir] });
  try {
    const status = (await d.conn.sendRequest('uflow/status')) as StatusResult;
    assert.deepEqual(status.roots, [{ path: dir, kind: 'allowed' }]);
    assert.deepEqual(await d.conn.sendRequest('uflow/runs', { workspace: dir }), []);
    await rejectsWith(d.conn.sendRequest('uflow/runs', { workspace: other.dir }), ErrorCodes.PathOutsideWorkspace, /outside the folders/);
  } finally {
    d.proc.stdin!.end(); // the client goes away: the daemon stops by itself
    assert.equal(await withTimeout(d.exited, 30_000, 'exit after stdin closed'), 0);
    d.dispose();
    cleanup();
    other.cleanup();
  }
});

test('bad command lines are refused with exit code 2 (TCP without a token above all)', async () => {
  requireBuild();
  const run = (args: string[], env: Record<string, string | undefined> = {}) =>
    new Promise<{ code: number | null; err: string }>((resolve) => {
      const e = { ...process.env, ...env };
      delete e.UFLOW_TOKEN;
      const p = spawn(process.execPath, [SERVER, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: e });
      let err = '';
      p.stderr.on('data', (b: Buffer) => (err += b.toString()));
      p.on('exit', (code) => resolve({ code, err }));
    });
  const noToken = await run(['--port', '0']);
  assert.equal(noToken.code, 2);
  assert.match(noToken.err, /--port needs a token: pass --token T or set UFLOW_TOKEN/);
  const none = await run([]);
  assert.equal(none.code, 2);
  assert.match(none.err, /choose one of --stdio, --node-ipc, --port N/);
  const unknown = await run(['--stdio', '--frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /unknown option '--frobnicate'/);
});

test('TCP: loopback only, a client without the right token is closed before any request is served', async () => {
  requireBuild();
  const { dir, cleanup } = tempDir();
  mkdirSync(join(dir, 'ws'));
  const env = { ...process.env, UFLOW_BACKEND: 'wasm', UFLOW_TOKEN: 's3cret-token-for-tests' };
  const proc = spawn(process.execPath, [SERVER, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const exited = new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  try {
    const port = await withTimeout(
      new Promise<number>((resolve) => {
        let out = '';
        proc.stdout.on('data', (b: Buffer) => {
          out += b.toString();
          const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
        });
      }),
      30_000,
      'the daemon to print its port',
    );

    // 1. A request before initialize: refused, closed, the request never answered with a result.
    const c1 = await tcpClient(port);
    const status1 = c1.conn.sendRequest('uflow/status').then(
      () => 'served',
      (e: { code?: number }) => `error ${e.code}`,
    );
    await withTimeout(c1.closed, 15_000, 'the daemon to close a client that skipped initialize');
    c1.dispose(); // rejects what is still pending
    assert.match(await status1, /^error/);
    assert.notEqual(await status1, 'served');

    // 2. initialize without a token, with a status request pipelined behind it.
    const c2 = await tcpClient(port);
    const init2 = c2.conn.sendRequest('initialize', { processId: null, rootUri: null, capabilities: {}, workspaceFolders: [] });
    const status2 = c2.conn.sendRequest('uflow/status').then(
      () => 'served',
      () => 'not served',
    );
    await rejectsWith(init2, ErrorCodes.Unauthorized, /missing token: send the daemon's token as initializationOptions.token/);
    await withTimeout(c2.closed, 15_000, 'close after a missing token');
    c2.dispose();
    assert.equal(await status2, 'not served');

    // 3. A wrong token.
    const c3 = await tcpClient(port);
    await rejectsWith(
      c3.conn.sendRequest('initialize', { processId: null, rootUri: null, capabilities: {}, workspaceFolders: [], initializationOptions: { token: 'guess' } }),
      ErrorCodes.Unauthorized,
      /wrong token/,
    );
    await withTimeout(c3.closed, 15_000, 'close after a wrong token');
    c3.dispose();

    // 4. The right token: a normal session; its `exit` closes only its own connection.
    const c4 = await tcpClient(port);
    const init4 = (await c4.conn.sendRequest('initialize', {
      processId: process.pid,
      rootUri: null,
      capabilities: {},
      workspaceFolders: [{ uri: `file://${join(dir, 'ws')}`, name: 'ws' }],
      initializationOptions: { token: 's3cret-token-for-tests' },
    })) as { serverInfo: { name: string } };
    assert.equal(init4.serverInfo.name, 'uflow');
    const st = (await c4.conn.sendRequest('uflow/status')) as StatusResult;
    assert.deepEqual(st.roots?.map((r) => r.path), [join(dir, 'ws')]);
    await c4.conn.sendRequest('shutdown');
    await c4.conn.sendNotification('exit');
    await withTimeout(c4.closed, 15_000, 'exit to close the TCP connection');
    c4.dispose();

    // 5. The daemon still serves the next client.
    const c5 = await tcpClient(port);
    await c5.conn.sendRequest('initialize', { processId: null, rootUri: null, capabilities: {}, workspaceFolders: [], initializationOptions: { token: 's3cret-token-for-tests' } });
    const st5 = (await c5.conn.sendRequest('uflow/status')) as StatusResult;
    assert.equal(st5.protocolVersion, PROTOCOL_VERSION);
    c5.socket.destroy();
    c5.dispose();
  } finally {
    proc.kill('SIGTERM');
    assert.equal(await withTimeout(exited, 30_000, 'exit on SIGTERM'), 0);
    cleanup();
  }
});
