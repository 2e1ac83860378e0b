/**
 * Daemon test harness: starts the real bundled daemon (dist/server.js) as a child process and
 * talks to it with vscode-jsonrpc over stdio, Node IPC or TCP. Notifications and `$/progress`
 * values are recorded; tests wait on them with timeouts (no sleeps).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  createMessageConnection,
  IPCMessageReader,
  IPCMessageWriter,
  StreamMessageReader,
  StreamMessageWriter,
  type MessageConnection,
} from 'vscode-jsonrpc/node.js';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SERVER = join(ROOT, 'dist', 'server.js');

export interface Note {
  method: string;
  params: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  at: number;
}

/** Everything the daemon sent unasked: notifications and $/progress values, in order. */
export class Inbox {
  readonly notes: Note[] = [];
  private waiters: Array<{ test: (n: Note) => boolean; resolve: (n: Note) => void }> = [];

  push(method: string, params: unknown): void {
    const n: Note = { method, params, at: Date.now() };
    this.notes.push(n);
    for (const w of [...this.waiters]) {
      if (w.test(n)) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(n);
      }
    }
  }

  all(method: string, test: (p: any) => boolean = () => true): Note[] { // eslint-disable-line @typescript-eslint/no-explicit-any
    return this.notes.filter((n) => n.method === method && test(n.params));
  }

  /** The first note (already received or still to come) that matches; rejects after `ms`. */
  wait(method: string, test: (p: any) => boolean = () => true, ms = 60_000, what = method): Promise<Note> { // eslint-disable-line @typescript-eslint/no-explicit-any
    const have = this.notes.find((n) => n.method === method && test(n.params));
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const w = { test: (n: Note) => n.method === method && test(n.params), resolve: (n: Note) => (clearTimeout(timer), resolve(n)) };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}; got: ${this.notes.map((n) => n.method).slice(-20).join(', ')}`));
      }, ms);
      this.waiters.push(w);
    });
  }
}

export interface Client {
  conn: MessageConnection;
  inbox: Inbox;
  /** Progress values by token. */
  progress(token: string | number): any[]; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Tokens the daemon asked to create (window/workDoneProgress/create). */
  createdTokens: Array<string | number>;
  dispose(): void;
}

export function attachClient(conn: MessageConnection): Client {
  const inbox = new Inbox();
  const createdTokens: Array<string | number> = [];
  conn.onUnhandledNotification((n) => inbox.push(n.method, n.params));
  conn.onUnhandledProgress((p) => inbox.push('$/progress', p));
  conn.onRequest('window/workDoneProgress/create', (p: { token: string | number }) => {
    createdTokens.push(p.token);
    return null;
  });
  conn.listen();
  return {
    conn,
    inbox,
    createdTokens,
    progress: (token) => inbox.all('$/progress', (p) => p.token === token).map((n) => n.params.value),
    dispose: () => conn.dispose(),
  };
}

export interface DaemonProcess extends Client {
  proc: ChildProcess;
  stderr(): string;
  /** Asks for shutdown + exit and waits for the process to end; returns its exit code. */
  close(): Promise<number | null>;
  exited: Promise<number | null>;
}

export interface StartOptions {
  transport?: 'stdio' | 'ipc';
  args?: string[];
  env?: Record<string, string>;
  /** Workspace folders to declare in initialize (none: no initialize at all when `initialize` is false). */
  workspaceFolders?: string[];
  initialize?: boolean;
  /** Declare window.workDoneProgress support. */
  workDoneProgress?: boolean;
}

export function requireBuild(): void {
  if (!existsSync(SERVER)) throw new Error(`${SERVER} is missing: build first with 'node esbuild.mjs'`);
}

export async function startDaemon(opts: StartOptions = {}): Promise<DaemonProcess> {
  requireBuild();
  const transport = opts.transport ?? 'stdio';
  const env = { ...process.env, UFLOW_BACKEND: process.env.UFLOW_BACKEND ?? 'wasm', ...opts.env };
  let proc: ChildProcess;
  let conn: MessageConnection;
  if (transport === 'ipc') {
    proc = fork(SERVER, ['--node-ipc', ...(opts.args ?? [])], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env });
    conn = createMessageConnection(new IPCMessageReader(proc), new IPCMessageWriter(proc));
  } else {
    proc = spawn(process.execPath, [SERVER, '--stdio', ...(opts.args ?? [])], { stdio: ['pipe', 'pipe', 'pipe'], env });
    conn = createMessageConnection(new StreamMessageReader(proc.stdout!), new StreamMessageWriter(proc.stdin!));
  }
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    if (process.env.UFLOW_TEST_VERBOSE) process.stderr.write(d);
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const client = attachClient(conn);
  if (opts.initialize !== false) {
    await conn.sendRequest('initialize', {
      processId: process.pid,
      rootUri: null,
      capabilities: opts.workDoneProgress ? { window: { workDoneProgress: true } } : {},
      workspaceFolders: (opts.workspaceFolders ?? []).map((p, i) => ({ uri: pathToFileURL(p).href, name: `ws${i}` })),
    });
    conn.sendNotification('initialized', {});
  }
  return {
    ...client,
    proc,
    exited,
    stderr: () => err,
    close: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        try {
          await withTimeout(conn.sendRequest('shutdown'), 30_000, 'shutdown');
          await conn.sendNotification('exit');
        } catch {
          proc.kill('SIGKILL');
        }
      }
      const code = await withTimeout(exited, 30_000, 'daemon exit').catch(() => {
        proc.kill('SIGKILL');
        return null;
      });
      client.dispose();
      return code;
    },
  };
}

/** A raw TCP connection to a daemon (no initialize sent). */
export function tcpClient(port: number): Promise<Client & { socket: import('node:net').Socket; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      const conn = createMessageConnection(new StreamMessageReader(socket), new StreamMessageWriter(socket));
      const closed = new Promise<void>((r) => socket.once('close', () => r()));
      resolve({ ...attachClient(conn), socket, closed });
    });
    socket.once('error', reject);
  });
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

/** A fresh temporary folder (its real path); removed by the returned cleanup. */
export function tempDir(prefix = 'uflow-daemon-'): { dir: string; cleanup: () => void } {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), prefix)));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Expects a JSON-RPC error with this code whose message matches. */
export async function rejectsWith(p: Promise<unknown>, code: number, message: RegExp): Promise<{ code: number; message: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as { code: number; message: string };
    if (err.code !== code || !message.test(err.message)) {
      throw new Error(`expected error ${code} ${message}, got ${err.code} '${err.message}'`);
    }
    return err;
  }
  throw new Error(`expected error ${code} ${message}, but the request succeeded`);
}
