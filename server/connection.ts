/**
 * Transports of the daemon and their command-line flags.
 *
 *   --stdio            JSON-RPC (LSP base protocol framing) on stdin/stdout; logs go to stderr
 *   --node-ipc         Node's IPC channel (what the extension uses: it forks dist/server.js)
 *   --port N           TCP on 127.0.0.1 only (N = 0 picks a free port, printed on stdout);
 *                      needs a token: --token T or the UFLOW_TOKEN environment variable
 *
 * TCP handshake: the first message on a connection must be the LSP `initialize` request carrying
 * the token as `initializationOptions.token`. The daemon reads that first message itself, before
 * any JSON-RPC machinery sees the connection: a wrong or missing token (or anything but
 * `initialize`, or nothing within 10 s) is answered with an Unauthorized error and the socket is
 * closed, so no request is ever served to a client without the token. With the right token the
 * message is handed on (the token removed) and the connection continues as a normal LSP session.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import {
  IPCMessageReader,
  IPCMessageWriter,
  StreamMessageReader,
  StreamMessageWriter,
  type MessageReader,
  type MessageWriter,
} from 'vscode-languageserver/node.js';
import { ErrorCodes } from './protocol.js';

export type Transport = 'stdio' | 'node-ipc' | 'port';

export interface ServeOptions {
  transport: Transport;
  /** TCP port (0: any free port). */
  port?: number;
  /** TCP mode: the token clients must present (default: UFLOW_TOKEN). */
  token?: string;
  /** Folders requests may name besides the client's workspace folders (runs go to `<dir>/.uflow`). */
  allow?: string[];
  /** Force a tensor backend ('wasm', 'cpu', 'tensorflow', …). */
  backend?: string;
  /** uflow/predict model cache: at most this many models … */
  predictCacheEntries?: number;
  /** … and at most this many MiB of their tensors. */
  predictCacheMiB?: number;
  /** Trainings go to this Redis queue (BullMQ) instead of this process: `--queue URL` or UFLOW_QUEUE. */
  queue?: string;
  /** Where diagnostics go (default: stderr). */
  log?: (line: string) => void;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export const SERVE_USAGE = `usage: uflow serve (--stdio | --node-ipc | --port N [--token T]) [--allow DIR]... [--backend NAME]
                   [--predict-cache N] [--predict-cache-mb MB] [--queue redis://host:port]
  --stdio            JSON-RPC on stdin/stdout (logs on stderr)
  --node-ipc         JSON-RPC over Node's IPC channel (the VS Code extension's way)
  --port N           JSON-RPC over TCP on 127.0.0.1:N (0 = a free port, printed on stdout);
                     requires a token (--token or UFLOW_TOKEN) sent as initializationOptions.token
  --allow DIR        also allow paths under DIR (repeatable); runs are kept in DIR/.uflow
  --backend NAME     tensor backend: tensorflow-gpu, tensorflow, webgpu, wasm, cpu
  --predict-cache N  models kept loaded for uflow/predict (default 4)
  --predict-cache-mb MB  their tensors' total size (default 1024)
  --queue URL        submit trainings to this Redis queue for \`uflow worker\`s (default: UFLOW_QUEUE;
                     none: train in this process)`;

/**
 * Parses the serve flags (`--flag value` or `--flag=value`). Unknown flags are an error, except the
 * ones LSP clients add on their own (`--clientProcessId`).
 */
export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeOptions {
  const opts: Partial<ServeOptions> & { allow: string[] } = { allow: [] };
  const transports: Transport[] = [];
  for (let i = 0; i < argv.length; i++) {
    let arg = argv[i]!;
    let inline: string | undefined;
    const eq = arg.indexOf('=');
    if (arg.startsWith('--') && eq > 0) {
      inline = arg.slice(eq + 1);
      arg = arg.slice(0, eq);
    }
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || (inline === undefined && v.startsWith('--'))) throw new UsageError(`${arg} needs a value\n${SERVE_USAGE}`);
      return v;
    };
    const int = (name: string, min: number): number => {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < min) throw new UsageError(`${name} must be an integer ≥ ${min}, got '${v}'`);
      return n;
    };
    switch (arg) {
      case '--stdio':
        transports.push('stdio');
        break;
      case '--node-ipc':
        transports.push('node-ipc');
        break;
      case '--port':
      case '--socket': {
        transports.push('port');
        const n = int('--port', 0);
        if (n > 65535) throw new UsageError(`--port must be at most 65535, got ${n}`);
        opts.port = n;
        break;
      }
      case '--token':
        opts.token = value();
        break;
      case '--allow':
        opts.allow.push(value());
        break;
      case '--backend':
        opts.backend = value();
        break;
      case '--predict-cache':
        opts.predictCacheEntries = int('--predict-cache', 1);
        break;
      case '--predict-cache-mb':
        opts.predictCacheMiB = int('--predict-cache-mb', 1);
        break;
      case '--queue':
        opts.queue = value();
        break;
      case '--clientProcessId':
        value();
        break;
      default:
        throw new UsageError(`unknown option '${argv[i]}'\n${SERVE_USAGE}`);
    }
  }
  if (transports.length !== 1) {
    throw new UsageError(`${transports.length ? 'choose only one' : 'choose one'} of --stdio, --node-ipc, --port N\n${SERVE_USAGE}`);
  }
  opts.transport = transports[0];
  if (opts.queue === undefined && env.UFLOW_QUEUE) opts.queue = env.UFLOW_QUEUE;
  if (opts.transport === 'port') {
    opts.token ??= env.UFLOW_TOKEN;
    if (!opts.token) throw new UsageError('--port needs a token: pass --token T or set UFLOW_TOKEN (clients send it as initializationOptions.token)');
  } else if (opts.token) {
    throw new UsageError('--token only applies to --port');
  }
  return opts as ServeOptions;
}

export interface Channel {
  reader: MessageReader;
  writer: MessageWriter;
  /** Closes the channel (TCP: the socket). */
  close(): void;
}

export function stdioChannel(): Channel {
  return {
    reader: new StreamMessageReader(process.stdin),
    writer: new StreamMessageWriter(process.stdout),
    close: () => process.stdin.destroy(),
  };
}

export function ipcChannel(): Channel {
  if (!process.send) throw new UsageError('--node-ipc: this process has no IPC channel (start it with child_process.fork)');
  return {
    reader: new IPCMessageReader(process),
    writer: new IPCMessageWriter(process),
    close: () => process.disconnect?.(),
  };
}

// ---------------------------------------------------------------------------------------------
// TCP with a token

const FIRST_MESSAGE_TIMEOUT_MS = 10_000;
const FIRST_MESSAGE_MAX_BYTES = 1 << 20;

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time comparison of two tokens. */
export function tokenMatches(expected: string, given: unknown): boolean {
  if (typeof given !== 'string' || given.length === 0) return false;
  return timingSafeEqual(digest(expected), digest(given));
}

interface FirstMessage {
  message: Record<string, unknown> | undefined;
  rest: Buffer;
  problem?: string;
}

/** Reads one LSP-framed message from the socket (headers, then Content-Length bytes of JSON). */
function readFirstMessage(socket: Socket): Promise<FirstMessage> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (r: FirstMessage): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('error', onEnd);
      socket.pause();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ message: undefined, rest: Buffer.alloc(0), problem: `no initialize within ${FIRST_MESSAGE_TIMEOUT_MS / 1000} s` }), FIRST_MESSAGE_TIMEOUT_MS);
    const onEnd = (): void => finish({ message: undefined, rest: Buffer.alloc(0), problem: 'connection closed before initialize' });
    const onData = (chunk: Buffer): void => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length > FIRST_MESSAGE_MAX_BYTES) return finish({ message: undefined, rest: Buffer.alloc(0), problem: 'first message too large' });
      const headerEnd = buf.indexOf('\r\n\r\n');
      if (headerEnd < 0) return;
      const headers = buf.subarray(0, headerEnd).toString('ascii');
      const m = /(?:^|\r\n)content-length:\s*(\d+)\s*(?:\r\n|$)/i.exec(headers);
      if (!m) return finish({ message: undefined, rest: Buffer.alloc(0), problem: 'the first message has no Content-Length header (LSP base protocol framing expected)' });
      const len = Number(m[1]);
      if (len > FIRST_MESSAGE_MAX_BYTES) return finish({ message: undefined, rest: Buffer.alloc(0), problem: 'first message too large' });
      const bodyStart = headerEnd + 4;
      if (buf.length < bodyStart + len) return;
      const body = buf.subarray(bodyStart, bodyStart + len).toString('utf8');
      const rest = Buffer.from(buf.subarray(bodyStart + len));
      try {
        const msg = JSON.parse(body) as unknown;
        if (!msg || typeof msg !== 'object' || Array.isArray(msg)) return finish({ message: undefined, rest, problem: 'the first message is not a JSON-RPC object' });
        finish({ message: msg as Record<string, unknown>, rest });
      } catch {
        finish({ message: undefined, rest, problem: 'the first message is not valid JSON' });
      }
    };
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('error', onEnd);
  });
}

function frame(msg: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(msg), 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${body.length}\r\n\r\n`, 'ascii'), body]);
}

function refuse(socket: Socket, id: unknown, message: string): void {
  const validId = typeof id === 'number' || typeof id === 'string' ? id : null;
  try {
    socket.end(frame({ jsonrpc: '2.0', id: validId, error: { code: ErrorCodes.Unauthorized, message } }));
  } catch {
    /* already gone */
  }
  setTimeout(() => socket.destroy(), 1000).unref();
}

export interface TcpListener {
  server: Server;
  port: number;
  close(): Promise<void>;
}

/**
 * Listens on 127.0.0.1:port. Each connection that presents the token in its `initialize` gets a
 * Channel (whose reader replays that `initialize`, token removed); the others are refused.
 */
export function listenTcp(port: number, token: string, onChannel: (ch: Channel, socket: Socket) => void, log: (line: string) => void): Promise<TcpListener> {
  const sockets = new Set<Socket>();
  const server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const peer = `${socket.remoteAddress}:${socket.remotePort}`;
    void readFirstMessage(socket).then(({ message, rest, problem }) => {
      if (!message) {
        log(`tcp ${peer}: refused (${problem})`);
        refuse(socket, undefined, `uflow daemon: ${problem}; send initialize with initializationOptions.token first`);
        return;
      }
      const params = (message.params ?? {}) as Record<string, unknown>;
      const initOpts = (params.initializationOptions ?? {}) as Record<string, unknown>;
      if (message.method !== 'initialize' || typeof params !== 'object') {
        log(`tcp ${peer}: refused (first message was '${String(message.method)}', not initialize)`);
        refuse(socket, message.id, 'uflow daemon: the first message must be initialize with initializationOptions.token');
        return;
      }
      if (!tokenMatches(token, initOpts?.token)) {
        log(`tcp ${peer}: refused (${initOpts?.token === undefined ? 'no token' : 'wrong token'})`);
        refuse(socket, message.id, `uflow daemon: ${initOpts?.token === undefined ? 'missing' : 'wrong'} token: send the daemon's token as initializationOptions.token of initialize`);
        return;
      }
      // Hand the initialize on without the token, and without processId: a TCP client's process
      // going away must close its connection, not stop a daemon that serves others.
      const { token: _t, ...keptOpts } = initOpts;
      void _t;
      const forwarded = { ...message, params: { ...params, processId: null, initializationOptions: keptOpts } };
      const input = new PassThrough();
      input.write(frame(forwarded));
      if (rest.length) input.write(rest);
      socket.pipe(input);
      socket.resume();
      log(`tcp ${peer}: accepted`);
      onChannel({ reader: new StreamMessageReader(input), writer: new StreamMessageWriter(socket), close: () => socket.destroy() }, socket);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      const addr = server.address();
      const actual = typeof addr === 'object' && addr ? addr.port : port;
      resolve({
        server,
        port: actual,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            for (const s of sockets) s.destroy();
          }),
      });
    });
  });
}
