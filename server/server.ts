/**
 * The U-Flow daemon: JSON-RPC 2.0 over the LSP base protocol (vscode-languageserver's
 * createConnection), serving the requests of protocol.ts to the VS Code extension (`--node-ipc`),
 * to scripts (`--stdio`) or to loopback TCP clients with a token (`--port N`).
 *
 * Runs directly (`node dist/server.js --node-ipc`) or through the CLI (`uflow serve …`, which
 * calls `runServer` / `serveMain`).
 *
 * Sessions. A client normally starts with LSP `initialize` (its `workspaceFolders` are the folders
 * its requests may name; `capabilities.window.workDoneProgress` lets the daemon create progress
 * tokens itself). A simple client on stdio or IPC may skip `initialize`: its requests are served
 * with the daemon's `--allow` folders only. Over TCP `initialize` with the token is mandatory.
 *
 * Jobs. See jobs.ts: one training at a time, evaluations one at a time alongside it, predictions
 * in between. Notifications: `uflow/trainingUpdate` and `uflow/jobEnded` go to every client,
 * `$/progress` to the client that asked, `uflow/log` to every client.
 *
 * Failure containment. A job that throws ends 'failed' (jobEnded with the reason, the run marked
 * failed); an exception that escapes anywhere else is logged and the daemon goes on serving.
 * Runs left 'running' by a daemon that died are marked 'interrupted' when their folder is first met.
 */
import { realpathSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';
import {
  createConnection,
  DidChangeWorkspaceFoldersNotification,
  ExitNotification,
  WorkDoneProgress,
  WorkDoneProgressCancelNotification,
  WorkDoneProgressCreateRequest,
  type Connection,
  type InitializeParams,
  type InitializeResult,
} from 'vscode-languageserver/node.js';
import * as tf from '@tensorflow/tfjs-core';
import { initEngine, type EngineInfo } from '../models/engine.js';
import { resolveAutoBackbone } from './backbone-policy.js';
import { Predictor } from './predict.js';
import { markInterrupted } from './runs.js';
import {
  ipcChannel,
  listenTcp,
  parseServeArgs,
  SERVE_USAGE,
  stdioChannel,
  UsageError,
  type Channel,
  type ServeOptions,
  type TcpListener,
} from './connection.js';
import { JobQueue } from './jobs.js';
import { QueueClient } from './queue/client.js';
import { makeRoot, PathPolicy, trainDirOf, uriToPath, type Root } from './paths.js';
import { Methods, PROTOCOL_VERSION, type AutoBackboneChoice, type JobEnded, type LogParams, type UflowServerCapabilities } from './protocol.js';
import { toResponseError } from './handlers/common.js';
import { GuardedReader } from './rpc-guard.js';
import { modelCacheRoot } from './path-guard.js';
import type { DaemonApi, RequestContext, SessionApi } from './handlers/context.js';
import { handlers } from './handlers/index.js';
import { PredictorCache } from './handlers/predictors.js';
import { parseEngine } from './onnx-engine.js';
import { WorkDoneReporter } from './handlers/progress.js';
import { DAEMON_VERSION } from './handlers/status.js';

export { parseServeArgs, SERVE_USAGE, UsageError, type ServeOptions } from './connection.js';

export interface RunningServer {
  /** TCP mode: the port listened on. */
  port?: number;
  /** Resolves when the daemon has stopped (its client went away, `exit`, or close()). */
  done: Promise<void>;
  /** Cancels the jobs (the last checkpoints stay), closes the connections. */
  close(reason?: string): Promise<void>;
}

class Session implements SessionApi {
  readonly policy: PathPolicy;
  private progressSupported = false;
  private readonly progressCancels = new Map<string | number, () => void>();
  closed = false;
  ready = false;

  constructor(
    readonly id: number,
    readonly conn: Connection,
    readonly channel: Channel,
    readonly tcp: boolean,
    private readonly daemon: Daemon,
  ) {
    // The model cache (backbone weights) passes the guard too, but is not a place for runs.
    this.policy = new PathPolicy(daemon.allowRoots, [modelCacheRoot()]);
  }

  notify(method: string, params: unknown): void {
    // LSP: nothing unasked before the initialize answer (a client without initialize: before
    // its first request).
    if (this.closed || !this.ready) return;
    try {
      void this.conn.sendNotification(method, params).catch(() => undefined);
    } catch {
      /* the client has gone */
    }
  }

  async progress(clientToken: string | number | undefined, onCancel?: () => void): Promise<WorkDoneReporter | undefined> {
    if (this.closed) return undefined;
    let token = clientToken;
    if (token === undefined) {
      if (!this.progressSupported) return undefined;
      token = `uflow-${randomUUID()}`;
      try {
        await this.conn.sendRequest(WorkDoneProgressCreateRequest.type, { token });
      } catch {
        return undefined;
      }
    }
    const t = token;
    if (onCancel) this.progressCancels.set(t, onCancel);
    return new WorkDoneReporter(
      t,
      (value) => {
        if (this.closed) return;
        try {
          void this.conn.sendProgress(WorkDoneProgress.type, t, value).catch(() => undefined);
        } catch {
          /* gone */
        }
      },
      () => this.progressCancels.delete(t),
    );
  }

  /** initialize: workspace folders, capabilities; answers what the daemon serves. */
  initialize(params: InitializeParams): InitializeResult {
    const folders: string[] = [];
    if (Array.isArray(params.workspaceFolders)) {
      for (const f of params.workspaceFolders) {
        const p = typeof f?.uri === 'string' ? uriToPath(f.uri) : undefined;
        if (p) folders.push(p);
        else this.daemon.log('warn', `workspace folder '${f?.uri}' is not a file: URI; requests cannot name paths in it`);
      }
    } else if (typeof params.rootUri === 'string') {
      const p = uriToPath(params.rootUri);
      if (p) folders.push(p);
    } else if (typeof params.rootPath === 'string') {
      folders.push(params.rootPath);
    }
    this.policy.setWorkspaces(folders);
    for (const r of this.policy.roots()) this.daemon.adoptTrainDir(trainDirOf(r.path));
    this.progressSupported = params.capabilities?.window?.workDoneProgress === true;

    // Registered here, after vscode-languageserver's own handlers (set up while it processes
    // initialize), so that these win: cancel of any progress token we handed out, folder changes.
    this.conn.onNotification(WorkDoneProgressCancelNotification.type, ({ token }) => {
      const cancel = this.progressCancels.get(token);
      if (cancel) cancel();
    });
    this.conn.onNotification(DidChangeWorkspaceFoldersNotification.type, ({ event }) => {
      for (const f of event.removed) {
        const p = uriToPath(f.uri);
        if (p) this.policy.removeWorkspace(p);
      }
      for (const f of event.added) {
        const p = uriToPath(f.uri);
        if (p) {
          this.policy.addWorkspace(p);
          this.daemon.adoptTrainDir(trainDirOf(this.policy.check(p, 'workspace folder').path));
        }
      }
    });

    const uflow: UflowServerCapabilities = {
      protocolVersion: PROTOCOL_VERSION,
      version: DAEMON_VERSION,
      methods: Object.keys(handlers),
      queue: { train: 1, evaluate: 1, predict: 1 },
    };
    this.ready = true;
    return {
      capabilities: {
        workspace: { workspaceFolders: { supported: true, changeNotifications: true } },
        experimental: { uflow },
      },
      serverInfo: { name: 'uflow', version: DAEMON_VERSION },
    };
  }
}

class Daemon implements DaemonApi {
  readonly jobs: JobQueue;
  readonly queue?: () => Promise<QueueClient>;
  private queueClient: Promise<QueueClient> | undefined;
  readonly predictors: PredictorCache<Predictor>;
  readonly startedAt = Date.now();
  readonly allowRoots: Root[];
  readonly backend: string | undefined;
  private readonly sessions = new Map<number, Session>();
  private nextSession = 1;
  private readonly adopted = new Set<string>();
  private engineErr: string | undefined;
  private readonly enginePromise: Promise<EngineInfo | undefined>;
  private stopping: Promise<void> | undefined;
  private quiescing: Promise<void> | undefined;
  private resolveDone!: () => void;
  readonly done = new Promise<void>((r) => (this.resolveDone = r));
  tcp?: TcpListener;

  constructor(readonly opts: ServeOptions) {
    this.backend = opts.backend;
    // With a Redis queue the training lane only forwards: the workers are the limit, not this process.
    this.jobs = new JobQueue(opts.queue ? { train: 1000 } : {});
    if (opts.queue) {
      const url = opts.queue;
      this.queue = () => (this.queueClient ??= QueueClient.open(url).catch((e: unknown) => ((this.queueClient = undefined), Promise.reject(e))));
    }
    this.allowRoots = (opts.allow ?? []).map((d) => makeRoot(d, 'allowed'));

    this.predictors = new PredictorCache<Predictor>(
      (trainDir, runId, engine) =>
        Predictor.open({ trainDir, runId, backend: this.backend, engine: parseEngine(engine, 'params.engine'), warn: (line) => this.log('warn', `predict ${runId}: ${line}`) }),
      opts.predictCacheEntries ?? 4,
      (opts.predictCacheMiB ?? 1024) * 1024 * 1024,
    );
    this.enginePromise = initEngine({ backend: opts.backend }).then(
      (info) => {
        this.log('info', `engine: ${info.backend} on ${info.device} (${info.reason})`);
        return info;
      },
      (e: unknown) => {
        this.engineErr = (e as Error)?.message ?? String(e);
        this.log('error', `engine: ${this.engineErr}`);
        return undefined;
      },
    );
    for (const r of this.allowRoots) this.adoptTrainDir(trainDirOf(r.path));
    // What backbone auto would choose, probed in the background (uflow/status reports it).
    void this.autoBackbone();

    // Tensor hygiene: a job that ran alone (and did not change the model cache) must leave
    // tf.memory().numTensors where it found it; a difference is logged as a leak.
    const alone = new Map<string, { tensors: number; cache: string }>();
    const cacheKey = () => JSON.stringify(this.predictors.stats().runIds);
    this.jobs.on({
      start: (job) => {
        if (this.jobs.active().length === 1) alone.set(job.id, { tensors: tf.memory().numTensors, cache: cacheKey() });
        else alone.clear();
        if (job.spec.listed !== false) this.log('info', `job ${job.id} started: ${job.spec.title}`, job.id);
      },
      end: (job, end) => {
        const a = alone.get(job.id);
        alone.delete(job.id);
        if (a && this.jobs.active().length === 0 && a.cache === cacheKey()) {
          const now = tf.memory().numTensors;
          if (now !== a.tensors) this.log('warn', `job ${job.id} (${job.spec.kind}) left ${now - a.tensors} tensors behind (${a.tensors} → ${now})`, job.id);
        }
        if (job.spec.listed === false) return;
        const msg: JobEnded = { jobId: job.id, kind: job.spec.kind, state: end.state };
        if (job.spec.runId) msg.runId = job.spec.runId;
        if (end.error && end.state !== 'done') msg.error = end.error;
        Object.assign(msg, end.extra ?? {});
        this.log(end.state === 'failed' ? 'error' : 'info', `job ${job.id} ${end.state}${msg.error ? `: ${msg.error}` : ''}`, job.id);
        this.broadcast(Methods.jobEnded, msg);
      },
    });
  }

  engine(): Promise<EngineInfo | undefined> {
    return this.enginePromise;
  }

  private autoChoice: { at: number; value: Promise<AutoBackboneChoice | undefined> } | undefined;

  autoBackbone(): Promise<AutoBackboneChoice | undefined> {
    const stale = this.autoChoice && Date.now() - this.autoChoice.at > 60_000 ? this.autoChoice.value : undefined;
    if (!this.autoChoice || stale) {
      const value = this.enginePromise.then((info) => (info ? resolveAutoBackbone('uflow', info.backend, undefined) : undefined)).catch(() => undefined);
      this.autoChoice = { at: Date.now(), value };
    }
    // A stale answer serves while the next probe runs (at most a few seconds offline).
    return stale ?? this.autoChoice.value;
  }

  engineError(): string | undefined {
    return this.engineErr;
  }

  session(id: number): Session | undefined {
    return this.sessions.get(id);
  }

  broadcast(method: string, params: unknown): void {
    for (const s of this.sessions.values()) s.notify(method, params);
  }

  log(level: LogParams['level'], message: string, jobId?: string): void {
    const line = `[uflow ${new Date().toISOString()}] ${level}: ${message}`;
    try {
      process.stderr.write(line + '\n');
    } catch {
      /* no stderr */
    }
    const p: LogParams = { level, message };
    if (jobId) p.jobId = jobId;
    this.broadcast(Methods.log, p);
  }

  adoptTrainDir(trainDir: string): void {
    if (this.adopted.has(trainDir)) return;
    this.adopted.add(trainDir);
    try {
      for (const r of markInterrupted(trainDir)) this.log('warn', `run ${r.runId} was left unfinished by a process that stopped: marked interrupted (resume it with uflow/train resumeRunId)`);
    } catch (e) {
      this.log('warn', `could not check the runs in ${trainDir}: ${(e as Error).message}`);
    }
  }

  /** Serves one client on a channel. */
  attach(channel: Channel, tcp: boolean): Session {
    const sid = this.nextSession;
    const conn = createConnection(new GuardedReader(channel.reader, channel.writer, (line) => this.log('warn', `client ${sid}: ${line}`)), channel.writer);
    const session = new Session(this.nextSession++, conn, channel, tcp, this);
    this.sessions.set(session.id, session);

    conn.onInitialize((params) => session.initialize(params));
    conn.onShutdown(async () => {
      // A TCP client's shutdown ends its own session only; the single client of stdio / IPC
      // owns the daemon: stop the jobs (the last checkpoints stay) before answering.
      if (!tcp) await this.quiesce('the client asked the daemon to shut down');
    });
    if (tcp) {
      // vscode-languageserver exits the process on `exit`: over TCP that would stop the daemon
      // for every other client, so `exit` closes this connection only.
      conn.onNotification(ExitNotification.type, () => channel.close());
    } else {
      conn.onExit(() => this.log('info', 'exit'));
    }
    for (const [method, handler] of Object.entries(handlers)) {
      conn.onRequest(method, async (params: unknown, token) => {
        session.ready = true;
        const ctx: RequestContext = { method, daemon: this, session, token };
        try {
          return await handler(params, ctx);
        } catch (e) {
          const err = toResponseError(method, e);
          if (!(e instanceof Error) || (e.name !== 'RpcError' && e.name !== 'PipelineError' && e.name !== 'JobCancelledError')) {
            this.log('error', `${method} failed: ${(e as Error)?.stack ?? String(e)}`);
          }
          throw err;
        }
      });
    }
    channel.reader.onClose(() => {
      session.closed = true;
      this.sessions.delete(session.id);
      if (!tcp) void this.stop('the client went away');
      else this.log('info', `client ${session.id} disconnected`);
    });
    channel.reader.onError((e) => this.log('warn', `client ${session.id}: ${(e as Error)?.message ?? String(e)}`));
    conn.listen();
    return session;
  }

  /** Cancels every job and waits (at most 15 s) for them to end; frees the cached models. */
  quiesce(reason: string): Promise<void> {
    this.quiescing ??= (async () => {
      this.log('info', `stopping the jobs: ${reason}`);
      const jobsDone = this.jobs.cancelAll(`the daemon is stopping (${reason})`);
      const timeout = new Promise<void>((r) => setTimeout(r, 15_000).unref());
      await Promise.race([jobsDone, timeout]);
      this.predictors.clear();
    })();
    return this.quiescing;
  }

  /** quiesce, close the listener, and let the process end (`done`). */
  stop(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      await this.quiesce(reason);
      for (const sess of this.sessions.values()) if (sess.tcp) sess.channel.close();
      await this.tcp?.close();
      await this.queueClient?.then((c) => c.close(), () => undefined);
      this.resolveDone();
    })();
    return this.stopping;
  }
}

let processHooksInstalled = false;

/** Logs go to stderr: stdout may be the protocol channel. Escaping exceptions are logged, not fatal. */
function installProcessHooks(daemon: Daemon): void {
  if (processHooksInstalled) return;
  processHooksInstalled = true;
  const toStderr =
    (level: string) =>
    (...args: unknown[]): void => {
      process.stderr.write(`[uflow ${level}] ${args.map((a) => (typeof a === 'string' ? a : a instanceof Error ? (a.stack ?? a.message) : JSON.stringify(a))).join(' ')}\n`);
    };
  console.log = toStderr('log');
  console.info = toStderr('info');
  console.debug = toStderr('debug');
  console.warn = toStderr('warn');
  process.on('uncaughtException', (e) => daemon.log('error', `uncaught exception (the daemon goes on): ${e?.stack ?? e}`));
  process.on('unhandledRejection', (e) => daemon.log('error', `unhandled rejection (the daemon goes on): ${(e as Error)?.stack ?? e}`));
}

/** Starts the daemon on the transport the options name. */
export async function runServer(opts: ServeOptions): Promise<RunningServer> {
  const daemon = new Daemon(opts);
  installProcessHooks(daemon);
  let port: number | undefined;
  if (opts.transport === 'port') {
    if (!opts.token) throw new UsageError('--port needs a token: pass --token T or set UFLOW_TOKEN');
    daemon.tcp = await listenTcp(opts.port ?? 0, opts.token, (ch) => daemon.attach(ch, true), (line) => daemon.log('info', line));
    port = daemon.tcp.port;
    process.stdout.write(`uflow daemon listening on 127.0.0.1:${port}\n`);
  } else if (opts.transport === 'node-ipc') {
    daemon.attach(ipcChannel(), false);
    process.once('disconnect', () => void daemon.stop('the IPC channel closed'));
  } else {
    daemon.attach(stdioChannel(), false);
  }
  daemon.log('info', `uflow daemon ${DAEMON_VERSION} (protocol ${PROTOCOL_VERSION}, pid ${process.pid}) serving on ${opts.transport === 'port' ? `127.0.0.1:${port}` : opts.transport}`);
  return { port, done: daemon.done, close: (reason = 'closed') => daemon.stop(reason) };
}

/** `uflow serve` / `node dist/server.js`: parses the flags, serves until done; returns the exit code. */
export async function serveMain(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(SERVE_USAGE + '\n');
    return 0;
  }
  let opts: ServeOptions;
  try {
    opts = parseServeArgs(argv);
  } catch (e) {
    process.stderr.write(`uflow serve: ${(e as Error).message}\n`);
    return 2;
  }
  let server: RunningServer;
  try {
    server = await runServer(opts);
  } catch (e) {
    process.stderr.write(`uflow serve: ${(e as Error).message}\n`);
    return e instanceof UsageError ? 2 : 1;
  }
  const onSignal = (sig: string): void => void server.close(`received ${sig}`);
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  await server.done;
  return 0;
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  let self: string;
  try {
    self = fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
  if (!/^server\.(js|mjs|ts)$/.test(basename(self))) return false;
  try {
    return realpathSync(entry) === realpathSync(self);
  } catch {
    return false;
  }
}

if (isMain()) {
  void serveMain(process.argv.slice(2)).then((code) => process.exit(code));
}
