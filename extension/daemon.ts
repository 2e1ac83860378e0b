/**
 * The daemon connection: forks dist/server.js with --node-ipc and speaks JSON-RPC to it through
 * vscode-languageclient. Restarts it when it dies (exponential backoff), tells the user after
 * repeated crashes, forwards its log (uflow/log notifications and stderr) to the Output channel,
 * and re-emits its notifications as VS Code events.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import * as vscode from 'vscode';
import {
  CloseAction,
  ErrorAction,
  IPCMessageReader,
  IPCMessageWriter,
  LanguageClient,
  WorkDoneProgress,
  type InitializeParams,
  type LanguageClientOptions,
  type WorkDoneProgressBegin,
  type WorkDoneProgressReport,
  type WorkDoneProgressEnd,
} from 'vscode-languageclient/node';
import { Methods, type JobEnded, type StatusResult, type TrainingUpdate } from '../server/protocol.js';
import { DATASET_REPORT_NOTIFICATION, type DatasetReportNote } from './datasetReport.js';

export type DaemonState = 'starting' | 'ready' | 'restarting' | 'stopped' | 'failed';

export interface DaemonExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Whether the extension asked for it (stop/restart) rather than a crash. */
  expected: boolean;
}

/** Crashes within this window count towards the "keeps crashing" notification. */
const CRASH_WINDOW_MS = 3 * 60_000;
const CRASHES_BEFORE_NOTICE = 3;
const CRASHES_BEFORE_GIVING_UP = 6;

type MethodParams = Record<string, unknown> | object | undefined;

/**
 * The language client without server-initiated progress: the daemon would otherwise create a
 * window progress per job, duplicating the extension's own status bar item. Requests that want
 * progress pass their own workDoneToken (requestWithProgress).
 */
class DaemonClient extends LanguageClient {
  protected override fillInitializeParams(params: InitializeParams): void {
    super.fillInitializeParams(params);
    if (params.capabilities.window) params.capabilities.window.workDoneProgress = false;
  }
}

export class Daemon implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private child: ChildProcess | undefined;
  private readonly crashes: number[] = [];
  private restartTimer: NodeJS.Timeout | undefined;
  private stopping = false;
  private _state: DaemonState = 'stopped';
  private _status: StatusResult | undefined;
  private starting: Promise<void> | undefined;
  private generation = 0;
  /** serverPath + backend the running daemon was started with. */
  private startedWith: string | undefined;

  private readonly _onState = new vscode.EventEmitter<DaemonState>();
  readonly onDidChangeState = this._onState.event;
  private readonly _onStatus = new vscode.EventEmitter<StatusResult>();
  readonly onDidChangeStatus = this._onStatus.event;
  private readonly _onTraining = new vscode.EventEmitter<TrainingUpdate>();
  readonly onTrainingUpdate = this._onTraining.event;
  private readonly _onJobEnded = new vscode.EventEmitter<JobEnded>();
  readonly onJobEnded = this._onJobEnded.event;
  private readonly _onDatasetReport = new vscode.EventEmitter<DatasetReportNote>();
  /** A dataset report (start of a training or an evaluation). */
  readonly onDatasetReport = this._onDatasetReport.event;
  private readonly _onExit = new vscode.EventEmitter<DaemonExit>();
  /** The daemon process ended (crash or requested stop). */
  readonly onDidExit = this._onExit.event;

  constructor(
    private readonly context: vscode.ExtensionContext,
    readonly output: vscode.OutputChannel,
  ) {}

  get state(): DaemonState {
    return this._state;
  }
  get status(): StatusResult | undefined {
    return this._status;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }

  private setState(s: DaemonState): void {
    if (this._state === s) return;
    this._state = s;
    this._onState.fire(s);
  }

  /** The daemon script: UFLOW_SERVER_PATH, the uflow.serverPath setting, or the bundled dist/server.js. */
  serverPath(): string {
    const fromEnv = process.env.UFLOW_SERVER_PATH;
    const fromSetting = vscode.workspace.getConfiguration('uflow').get<string>('serverPath');
    return fromEnv || fromSetting || join(this.context.extensionPath, 'dist', 'server.js');
  }

  /** Where Install GPU Backend puts @tensorflow/tfjs-node(-gpu). */
  backendDir(): string {
    return join(this.context.globalStorageUri.fsPath, 'backend');
  }

  /**
   * The folders the daemon may use besides the workspace folders (its path guard): the extension's
   * storage and the `uflow.allowedFolders` setting (absolute paths), as `--allow DIR` flags.
   */
  allowArgs(): string[] {
    const out = ['--allow', this.context.globalStorageUri.fsPath];
    for (const f of vscode.workspace.getConfiguration('uflow').get<string[]>('allowedFolders') ?? []) {
      if (typeof f === 'string' && isAbsolute(f)) out.push('--allow', f);
      else this.output.appendLine(`[extension] uflow.allowedFolders: '${String(f)}' is not an absolute path: ignored`);
    }
    return out;
  }

  private environment(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env };
    const modules = join(this.backendDir(), 'node_modules');
    if (existsSync(modules)) env.UFLOW_BACKEND_MODULES = env.UFLOW_BACKEND_MODULES ? `${modules}:${env.UFLOW_BACKEND_MODULES}` : modules;
    const backend = vscode.workspace.getConfiguration('uflow').get<string>('backend');
    if (backend && backend !== 'auto') env.UFLOW_BACKEND = backend;
    const queue = vscode.workspace.getConfiguration('uflow').get<string>('queue');
    if (queue) env.UFLOW_QUEUE = queue;
    const engine = vscode.workspace.getConfiguration('uflow').get<string>('inferenceEngine');
    if (engine === 'onnx' || engine === 'tfjs') env.UFLOW_INFERENCE_ENGINE = engine;
    // Electron (desktop VS Code) must act as plain Node for the fork.
    env.ELECTRON_RUN_AS_NODE = '1';
    return env;
  }

  /** Starts the daemon (no-op while it runs). Resolves once it answered uflow/status. */
  start(): Promise<void> {
    if (this.client && this._state === 'ready') return Promise.resolve();
    this.starting ??= this.doStart().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async doStart(): Promise<void> {
    this.stopping = false;
    const generation = ++this.generation;
    this.setState(this.crashes.length ? 'restarting' : 'starting');
    const script = this.serverPath();
    this.startedWith = this.configKey();
    if (!existsSync(script)) {
      this.output.appendLine(`[extension] daemon not found at ${script}`);
      this.setState('failed');
      throw new Error(`The U-Flow daemon was not found at ${script}. Rebuild the extension (npm run build) or fix the uflow.serverPath setting.`);
    }
    const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
    this.output.appendLine(`[extension] starting daemon ${script} (workspace: ${folders.join(', ') || 'none'})`);
    const clientOptions: LanguageClientOptions = {
      documentSelector: [],
      outputChannel: this.output,
      revealOutputChannelOn: 4 /* RevealOutputChannelOn.Never */,
      initializationOptions: { workspaceFolders: folders, client: 'vscode', extensionVersion: this.context.extension.packageJSON.version },
      errorHandler: {
        error: () => ({ action: ErrorAction.Continue, handled: true }),
        closed: () => {
          // We restart ourselves (with backoff and a fresh client), so the client must not.
          return { action: CloseAction.DoNotRestart, handled: true };
        },
      },
      connectionOptions: { maxRestartCount: 0 },
    };
    const client = new DaemonClient(
      'uflow',
      'U-Flow daemon',
      async () => {
        const child = fork(script, ['--node-ipc', ...this.allowArgs()], {
          env: this.environment(),
          execArgv: [],
          silent: true,
          cwd: folders[0] ?? this.context.extensionPath,
        });
        this.child = child;
        child.stderr?.on('data', (d: Buffer) => this.output.append(d.toString()));
        child.stdout?.on('data', (d: Buffer) => this.output.append(d.toString()));
        child.once('exit', (code, signal) => this.onChildExit(generation, child, code, signal));
        return { reader: new IPCMessageReader(child), writer: new IPCMessageWriter(child), detached: false };
      },
      clientOptions,
    );
    this.client = client;
    client.onNotification(Methods.log, (p: { level?: string; message?: string } | string) => {
      if (typeof p === 'string') this.output.appendLine(p);
      else this.output.appendLine(`${p.level ? `[${p.level}] ` : ''}${p.message ?? JSON.stringify(p)}`);
    });
    client.onNotification(Methods.trainingUpdate, (u: TrainingUpdate) => this._onTraining.fire(u));
    client.onNotification(DATASET_REPORT_NOTIFICATION, (n: DatasetReportNote) => this._onDatasetReport.fire(n));
    client.onNotification(Methods.jobEnded, (e: JobEnded) => {
      this._onJobEnded.fire(e);
      void this.refreshStatus();
    });
    try {
      await client.start();
      const status = await this.refreshStatus();
      if (generation !== this.generation) return;
      // A daemon that died while starting can leave start() resolved: only an answer counts.
      if (!status || this.client !== client || !this.child) throw new Error('the daemon did not answer uflow/status');
      this.setState('ready');
      this.output.appendLine(`[extension] daemon ready (pid ${this.child?.pid}, backend ${this._status?.engine.backend ?? '?'})`);
    } catch (e) {
      this.output.appendLine(`[extension] daemon failed to start: ${errorMessage(e)}`);
      if (generation === this.generation && this.child && this.child.exitCode === null) {
        // It runs but does not answer: treat as a crash.
        this.child.kill();
      }
      throw e;
    }
  }

  private onChildExit(generation: number, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child === child) this.child = undefined;
    const expected = this.stopping || generation !== this.generation;
    this.output.appendLine(`[extension] daemon exited (${signal ?? `code ${code}`})${expected ? '' : ' unexpectedly'}`);
    this._onExit.fire({ code, signal, expected });
    if (expected) return;
    // The old client stops by itself once it sees its connection close (our error handler keeps
    // it quiet and says not to restart): disposing it here would make it report the close itself,
    // or fail to stop a client that never finished starting. A fresh client replaces it.
    this.client = undefined;
    const now = Date.now();
    this.crashes.push(now);
    while (this.crashes.length && now - this.crashes[0]! > CRASH_WINDOW_MS) this.crashes.shift();
    const n = this.crashes.length;
    if (n >= CRASHES_BEFORE_GIVING_UP) {
      this.setState('failed');
      void vscode.window
        .showErrorMessage(`The U-Flow daemon crashed ${n} times in ${Math.round(CRASH_WINDOW_MS / 60000)} minutes and was not restarted.`, 'Show Log', 'Restart')
        .then((a) => {
          if (a === 'Show Log') this.output.show();
          if (a === 'Restart') {
            this.crashes.length = 0;
            void this.start().catch(() => undefined);
          }
        });
      return;
    }
    if (n >= CRASHES_BEFORE_NOTICE) {
      void vscode.window.showWarningMessage(`The U-Flow daemon keeps crashing (${n} times in the last few minutes); restarting it.`, 'Show Log').then((a) => {
        if (a === 'Show Log') this.output.show();
      });
    }
    const delay = Math.min(30_000, 500 * 2 ** (n - 1));
    this.setState('restarting');
    this.output.appendLine(`[extension] restarting the daemon in ${delay} ms`);
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      // A start still failing from the crash must settle first, or start() would just return it.
      void (this.starting ?? Promise.resolve())
        .catch(() => undefined)
        .then(() => this.start())
        .catch((e) => this.output.appendLine(`[extension] restart failed: ${errorMessage(e)}`));
    }, delay);
  }

  /** Stops the daemon (no automatic restart). */
  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    const client = this.client;
    const child = this.child;
    this.client = undefined;
    if (client) {
      try {
        await client.stop(3000);
      } catch {
        /* it may be gone already */
      }
    }
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((res) => child.once('exit', () => res()));
      child.kill();
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    this.setState('stopped');
  }

  private configKey(): string {
    const c = vscode.workspace.getConfiguration('uflow');
    return `${this.serverPath()}|${c.get<string>('backend') ?? 'auto'}|${c.get<string>('inferenceEngine') ?? 'auto'}|${c.get<string>('queue') ?? ''}|${JSON.stringify(c.get<string[]>('allowedFolders') ?? [])}`;
  }

  /** After a settings change: restarts the daemon if its script or backend changed (or it had given up). */
  async configurationChanged(): Promise<void> {
    const key = this.configKey();
    if (key === this.startedWith && this._state !== 'failed') return;
    this.startedWith = key; // a second change event for the same edit must not restart again
    await this.restart();
  }

  async restart(): Promise<void> {
    await this.stop();
    this.crashes.length = 0;
    await this.start();
  }

  async refreshStatus(): Promise<StatusResult | undefined> {
    const client = this.client;
    if (!client) return undefined;
    try {
      const s = await client.sendRequest<StatusResult>(Methods.status, {});
      this._status = s;
      this._onStatus.fire(s);
      return s;
    } catch (e) {
      this.output.appendLine(`[extension] uflow/status failed: ${errorMessage(e)}`);
      return undefined;
    }
  }

  /** Sends a request, starting the daemon first if needed; a cancelled token sends $/cancelRequest. */
  async request<R>(method: string, params: MethodParams, token?: vscode.CancellationToken): Promise<R> {
    if (!this.client || this._state !== 'ready') await this.start();
    const client = this.client;
    if (!client) throw new Error('The U-Flow daemon is not running.');
    return token ? client.sendRequest<R>(method, params, token) : client.sendRequest<R>(method, params);
  }

  /**
   * Runs a request that reports work-done progress: a fresh token goes in `workDoneToken` and its
   * begin/report/end messages reach `onProgress`.
   */
  async requestWithProgress<R>(
    method: string,
    params: Record<string, unknown> | object,
    onProgress: (p: { message?: string; percentage?: number; title?: string }) => void,
    token?: vscode.CancellationToken,
  ): Promise<R> {
    if (!this.client || this._state !== 'ready') await this.start();
    const client = this.client;
    if (!client) throw new Error('The U-Flow daemon is not running.');
    const workDoneToken = `uflow-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    const sub = client.onProgress(WorkDoneProgress.type, workDoneToken, (v: WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd) => {
      if (v.kind === 'begin') onProgress({ title: v.title, message: v.message, percentage: v.percentage });
      else if (v.kind === 'report') onProgress({ message: v.message, percentage: v.percentage });
    });
    try {
      return await this.request<R>(method, { ...params, workDoneToken }, token);
    } finally {
      sub.dispose();
    }
  }

  dispose(): void {
    void this.stop();
    this._onState.dispose();
    this._onStatus.dispose();
    this._onTraining.dispose();
    this._onJobEnded.dispose();
    this._onExit.dispose();
  }
}

export function errorMessage(e: unknown): string {
  if (e && typeof e === 'object' && 'message' in e) return String((e as { message: unknown }).message);
  return String(e);
}

/** True when the error is the JSON-RPC answer to a cancelled request. */
export function isCancellation(e: unknown): boolean {
  const code = e && typeof e === 'object' && 'code' in e ? (e as { code: unknown }).code : undefined;
  return code === -32800 || e instanceof vscode.CancellationError;
}
