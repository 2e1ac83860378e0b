/**
 * The daemon's job queue. Jobs run in lanes, each with its own concurrency:
 *
 * - `train`: one training at a time (the daemon drives one tensor device); the others wait in
 *   order and know their position (0 = running, 1 = next, …).
 * - `evaluate`: one evaluation at a time, *alongside* a training rather than behind it, so that
 *   evaluating a finished run never waits hours behind an unrelated training. tfjs is
 *   single-threaded in one process: the trainer and the evaluator yield between steps (a macrotask)
 *   and the two interleave.
 * - `predict`: one prediction at a time, between the steps of whatever else runs, so a hover is
 *   answered while a model trains; waiting predictions are a queue, not a pile of half-done tensors.
 * - `download`: one at a time.
 *
 * Cancelling a queued job removes it from its lane; cancelling a running one aborts its
 * AbortSignal, and the job ends at its next step (the job's own code decides what that means).
 */
import type { JobInfo } from './protocol.js';

export type JobKind = JobInfo['kind'];
export type Lane = 'train' | 'evaluate' | 'predict' | 'download';
export type JobState = JobInfo['state'];
export type EndState = 'done' | 'failed' | 'cancelled';

export interface JobContext {
  jobId: string;
  signal: AbortSignal;
}

export interface JobSpec<T> {
  kind: JobKind;
  /** Default: the lane named like the kind. */
  lane?: Lane;
  title: string;
  runId?: string;
  /** Predictions are not listed in `uflow/status` (there can be hundreds in flight). */
  listed?: boolean;
  /** Who asked (a connection id), for routing progress. */
  owner?: number;
  run(ctx: JobContext): Promise<T>;
  /** How a resolved value ends the job (default 'done'); e.g. a RunInfo whose state is 'failed'. */
  outcome?(value: T): { state: EndState; error?: string };
  /**
   * Runs once when the job ends (also when it is cancelled before it started), before the queue
   * announces the end; what it returns travels with the end (e.g. the final run for jobEnded).
   */
  finalize?(end: JobEnd<T>): Record<string, unknown> | void;
}

export interface JobEnd<T> {
  state: EndState;
  value?: T;
  error?: string;
  /** The thrown value, when the job threw. */
  thrown?: unknown;
  /** What the job's finalize returned. */
  extra?: Record<string, unknown>;
}

export class JobCancelledError extends Error {
  constructor(message = 'cancelled') {
    super(message);
    this.name = 'JobCancelledError';
  }
}

export class Job<T = unknown> {
  state: JobState = 'queued';
  readonly controller = new AbortController();
  readonly createdAt = Date.now();
  startedAt?: number;
  endedAt?: number;
  error?: string;
  /** Resolves when the job ends, whatever the outcome (never rejects). */
  readonly ended: Promise<JobEnd<T>>;
  private resolveEnded!: (e: JobEnd<T>) => void;

  constructor(
    readonly id: string,
    readonly spec: JobSpec<T>,
    readonly lane: Lane,
  ) {
    this.ended = new Promise((r) => (this.resolveEnded = r));
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** @internal */
  finish(end: JobEnd<T>): void {
    this.state = end.state;
    this.error = end.error;
    this.endedAt = Date.now();
    this.resolveEnded(end);
  }
}

export interface QueueEvents {
  start?(job: Job): void;
  end?(job: Job, end: JobEnd<unknown>): void;
  /** Queued jobs' positions changed in this lane. */
  positions?(lane: Lane, jobs: Array<{ job: Job; position: number }>): void;
}

const DEFAULT_CONCURRENCY: Record<Lane, number> = { train: 1, evaluate: 1, predict: 1, download: 1 };

function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  return String(e);
}

export class JobQueue {
  private seq = 0;
  private readonly concurrency: Record<Lane, number>;
  private readonly waiting: Record<Lane, Job[]> = { train: [], evaluate: [], predict: [], download: [] };
  private readonly running: Record<Lane, Set<Job>> = { train: new Set(), evaluate: new Set(), predict: new Set(), download: new Set() };
  private readonly jobs = new Map<string, Job>();
  /** Recently ended listed jobs, newest last (for status). */
  private readonly recent: Job[] = [];
  private readonly listeners: QueueEvents[] = [];

  constructor(concurrency: Partial<Record<Lane, number>> = {}, private readonly keepRecent = 10) {
    this.concurrency = { ...DEFAULT_CONCURRENCY, ...concurrency };
  }

  on(events: QueueEvents): () => void {
    this.listeners.push(events);
    return () => {
      const i = this.listeners.indexOf(events);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  private emit<K extends keyof QueueEvents>(name: K, ...args: Parameters<NonNullable<QueueEvents[K]>>): void {
    for (const l of [...this.listeners]) {
      try {
        (l[name] as ((...a: unknown[]) => void) | undefined)?.(...args);
      } catch {
        /* a listener's failure must not stop the queue */
      }
    }
  }

  /** Queues a job; it starts as soon as its lane has room (possibly before this returns). */
  submit<T>(spec: JobSpec<T>): Job<T> {
    const lane = spec.lane ?? (spec.kind as Lane);
    const id = `${spec.kind}-${++this.seq}`;
    const job = new Job<T>(id, spec, lane);
    this.jobs.set(id, job as Job);
    this.waiting[lane].push(job as Job);
    this.pump(lane);
    return job;
  }

  get(jobId: string): Job | undefined {
    return this.jobs.get(jobId);
  }

  /** Position in its lane: 0 running, n ≥ 1 the n-th in line. */
  positionOf(job: { state: JobState; lane: Lane }): number {
    if (job.state !== 'queued') return 0;
    const i = this.waiting[job.lane].indexOf(job as Job);
    return i < 0 ? 0 : i + 1;
  }

  /**
   * Cancels a job: a queued one ends at once ('cancelled'); a running one gets its signal aborted
   * and ends when its code notices. Returns false for an unknown or already ended job.
   */
  cancel(jobId: string, reason = 'cancelled'): boolean {
    const job = this.jobs.get(jobId);
    if (!job || job.endedAt !== undefined) return false;
    if (job.state === 'queued') {
      const w = this.waiting[job.lane];
      const i = w.indexOf(job);
      if (i >= 0) w.splice(i, 1);
      job.controller.abort(new JobCancelledError(reason));
      this.end(job, { state: 'cancelled', error: reason });
      this.emitPositions(job.lane);
      return true;
    }
    if (!job.signal.aborted) job.controller.abort(new JobCancelledError(reason));
    return true;
  }

  /** Cancels every job (daemon shutdown); resolves when the running ones have ended. */
  async cancelAll(reason: string): Promise<void> {
    const live = [...this.jobs.values()].filter((j) => j.endedAt === undefined);
    for (const lane of Object.keys(this.waiting) as Lane[]) {
      for (const j of [...this.waiting[lane]]) this.cancel(j.id, reason);
    }
    for (const j of live) this.cancel(j.id, reason);
    await Promise.all(live.map((j) => j.ended));
  }

  /** Jobs not ended (listed ones), then recently ended ones. */
  list(): JobInfo[] {
    const out: JobInfo[] = [];
    for (const j of this.jobs.values()) if (j.spec.listed !== false) out.push(this.info(j));
    for (const j of this.recent) out.push(this.info(j));
    return out;
  }

  info(j: Job): JobInfo {
    const info: JobInfo = { jobId: j.id, kind: j.spec.kind, state: j.state, title: j.spec.title };
    if (j.spec.runId) info.runId = j.spec.runId;
    if (j.lane === 'train' && j.endedAt === undefined) info.position = this.positionOf(j);
    return info;
  }

  /** Jobs that have not ended. */
  active(): Job[] {
    return [...this.jobs.values()];
  }

  runningIn(lane: Lane): Job[] {
    return [...this.running[lane]];
  }

  private emitPositions(lane: Lane): void {
    const w = this.waiting[lane];
    if (w.length) this.emit('positions', lane, w.map((job, i) => ({ job, position: i + 1 })));
  }

  private pump(lane: Lane): void {
    const w = this.waiting[lane];
    let started = false;
    while (w.length && this.running[lane].size < this.concurrency[lane]) {
      const job = w.shift()!;
      started = true;
      this.start(job);
    }
    if (started) this.emitPositions(lane);
  }

  private start(job: Job): void {
    job.state = 'running';
    job.startedAt = Date.now();
    this.running[job.lane].add(job);
    this.emit('start', job);
    // The job's code runs on the next macrotask: a request that submits a job is answered first,
    // whatever synchronous work the job begins with.
    const p = new Promise<unknown>((resolve, reject) => {
      setImmediate(() => {
        if (job.signal.aborted) return reject(job.signal.reason ?? new JobCancelledError());
        try {
          resolve(job.spec.run({ jobId: job.id, signal: job.signal }));
        } catch (e) {
          reject(e);
        }
      });
    });
    p.then(
      (value) => {
        let end: JobEnd<unknown> = { state: 'done', value };
        if (job.spec.outcome) {
          try {
            const o = job.spec.outcome(value);
            end = { state: o.state, value, error: o.error };
          } catch (e) {
            end = { state: 'failed', value, error: errorMessage(e), thrown: e };
          }
        }
        this.end(job, end);
      },
      (e: unknown) => {
        // Asked to stop, then threw: whatever the job's own cancel error looks like, it was cancelled.
        const cancelled = job.signal.aborted;
        this.end(job, { state: cancelled ? 'cancelled' : 'failed', error: errorMessage(e), thrown: e });
      },
    );
  }

  private end(job: Job, end: JobEnd<unknown>): void {
    if (job.endedAt !== undefined) return;
    this.running[job.lane].delete(job);
    this.jobs.delete(job.id);
    if (job.spec.finalize) {
      try {
        const extra = job.spec.finalize(end);
        if (extra) end.extra = extra;
      } catch {
        /* finalize is best effort */
      }
    }
    job.finish(end);
    if (job.spec.listed !== false) {
      this.recent.push(job);
      while (this.recent.length > this.keepRecent) this.recent.shift();
    }
    this.emit('end', job, end);
    // Start the next one on a fresh macrotask: a job that ends synchronously inside submit()
    // must not recurse, and listeners see the end before the next start.
    setImmediate(() => this.pump(job.lane));
  }
}
