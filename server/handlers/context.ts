/**
 * What a request handler sees: the daemon (job queue, model cache, engine, all sessions) and the
 * session of the client that asked (its workspace folders, its progress support).
 */
import type { CancellationToken } from 'vscode-languageserver/node.js';
import type { EngineInfo } from '../../models/engine.js';
import type { JobQueue } from '../jobs.js';
import type { Predictor } from '../predict.js';
import type { PathPolicy } from '../paths.js';
import type { QueueClient } from '../queue/client.js';
import type { AutoBackboneChoice, LogParams } from '../protocol.js';
import type { PredictorCache } from './predictors.js';
import type { WorkDoneReporter } from './progress.js';

export interface SessionApi {
  readonly id: number;
  readonly policy: PathPolicy;
  /** Sends a notification to this client (dropped when it has gone). */
  notify(method: string, params: unknown): void;
  /**
   * A work-done progress for this client: with the client's token when given, else one the
   * daemon creates (`window/workDoneProgress/create`) when the client supports that, else none.
   * `onCancel` runs when the client cancels it (`window/workDoneProgress/cancel`).
   */
  progress(clientToken: string | number | undefined, onCancel?: () => void): Promise<WorkDoneReporter | undefined>;
  readonly closed: boolean;
}

export interface DaemonApi {
  readonly jobs: JobQueue;
  readonly predictors: PredictorCache<Predictor>;
  readonly startedAt: number;
  readonly backend: string | undefined;
  /** Resolves when the engine is up (undefined when none could be loaded: see engineError). */
  engine(): Promise<EngineInfo | undefined>;
  engineError(): string | undefined;
  /** What `backbone: auto` would choose for a U-Flow run on this engine now (probed at most once a minute). */
  autoBackbone(): Promise<AutoBackboneChoice | undefined>;
  /** To every connected client. */
  broadcast(method: string, params: unknown): void;
  session(id: number): SessionApi | undefined;
  log(level: LogParams['level'], message: string, jobId?: string): void;
  /** Set when trainings go to a Redis queue (`--queue`): the client, opened on first use. */
  readonly queue?: () => Promise<QueueClient>;
  /** Runs markInterrupted on a train dir the first time the daemon meets it. */
  adoptTrainDir(trainDir: string): void;
}

export interface RequestContext {
  method: string;
  daemon: DaemonApi;
  session: SessionApi;
  token: CancellationToken;
}

export type Handler = (params: unknown, ctx: RequestContext) => Promise<unknown>;
