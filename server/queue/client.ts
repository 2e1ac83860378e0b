/**
 * The submitting side of the Redis queue (the CLI's `--queue`, `uflow jobs`, `train-all`, the
 * daemon with `uflow.queue`): submit, list, cancel and follow jobs. A follower sees the worker's
 * training updates and log lines live (BullMQ progress events) and the end (completed / failed,
 * with a poll as a safety net, e.g. across a Redis restart).
 */
import { hostname, userInfo } from 'node:os';
import { Queue, QueueEvents, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { RunInfo, TrainingUpdate } from '../protocol.js';
import { readRun, writeRun, type StoredRun } from '../runs.js';
import { checkRedis, queueAddress, redisClient } from './connect.js';
import { configHash } from './config-hash.js';
import type { QueueAddress } from './redis-url.js';
import { CANCELLED_PREFIX, queueKeys, type QueueJobData, type QueueJobKind, type QueueJobState, type QueueJobSummary, type QueueProgress, type TrainJobData } from './types.js';

/** run.json's `host` while a run waits on the queue: no local process owns it (markInterrupted leaves it alone). */
export const QUEUED_HOST = 'queue';

export type FollowEnd<T = unknown> = { state: 'done'; value: T } | { state: 'failed' | 'cancelled'; error: string };

export interface FollowHooks {
  onUpdate?(u: TrainingUpdate): void;
  onLog?(line: string): void;
  onProgress?(p: QueueProgress): void;
}

/** Retries for errors a worker could not classify (BullMQ attempts); bad input fails at once. */
const ATTEMPTS = 3;
const KEEP = { age: 7 * 24 * 3600, count: 1000 };

function submitter(): string {
  let user = '';
  try {
    user = userInfo().username;
  } catch {
    /* no user */
  }
  return `${user ? user + '@' : ''}${hostname()}:${process.pid}`;
}

function stateOf(bull: string, failedReason?: string): QueueJobState {
  if (bull === 'active') return 'running';
  if (bull === 'completed') return 'done';
  if (bull === 'failed') return failedReason?.startsWith(CANCELLED_PREFIX) ? 'cancelled' : 'failed';
  return 'queued';
}

export class QueueClient {
  private events: Promise<QueueEvents> | undefined;
  private closed = false;

  private constructor(
    readonly addr: QueueAddress,
    readonly queue: Queue,
    private readonly redis: Redis,
  ) {}

  /** Opens the queue; throws a PipelineError when the URL is wrong or Redis cannot be reached. */
  static async open(url: string): Promise<QueueClient> {
    const addr = queueAddress(url);
    await checkRedis(addr);
    const queue = new Queue(addr.queueName, { connection: addr.connection });
    queue.on('error', () => undefined);
    return new QueueClient(addr, queue, redisClient(addr));
  }

  get display(): string {
    return this.addr.display;
  }

  async submit(kind: QueueJobKind, data: QueueJobData, jobId: string): Promise<string> {
    const job = await this.queue.add(kind, { ...data, submittedBy: data.submittedBy ?? submitter() }, { jobId, attempts: ATTEMPTS, backoff: { type: 'fixed', delay: 2000 }, removeOnComplete: KEEP, removeOnFail: KEEP });
    return job.id!;
  }

  /**
   * Queues the training of a prepared run (run.json in state 'queued' on the shared train dir):
   * run.json is marked as waiting on the queue, the job carries the run and dataset locations
   * and the config's content hash.
   */
  async submitTrain(trainDir: string, run: RunInfo, opts: { evaluate?: boolean } = {}): Promise<string> {
    const stored = readRun(trainDir, run.runId);
    writeRun({ ...stored, pid: undefined, host: QUEUED_HOST });
    const data: TrainJobData = {
      kind: 'train',
      trainDir,
      runId: run.runId,
      datasetPath: stored.datasetPath,
      category: stored.category,
      model: stored.model,
      configHash: configHash(stored.config),
      ...(opts.evaluate ? { evaluate: true } : {}),
    };
    return this.submit('train', data, `train-${run.runId}-${Date.now().toString(36)}`);
  }

  async job(jobId: string): Promise<Job | undefined> {
    return (await this.queue.getJob(jobId)) ?? undefined;
  }

  summary(job: Job, bullState: string): QueueJobSummary {
    const d = (job.data ?? {}) as Partial<TrainJobData>;
    const p = (job.progress && typeof job.progress === 'object' ? job.progress : {}) as Partial<QueueProgress>;
    const u = p.update;
    const s: QueueJobSummary = {
      jobId: job.id!,
      kind: job.name,
      state: stateOf(bullState, job.failedReason),
      attempts: job.attemptsMade,
      createdAt: new Date(job.timestamp).toISOString(),
    };
    if (d.runId) s.runId = d.runId;
    if (d.category) s.category = d.category;
    const worker = p.worker ?? (job.returnvalue as { worker?: string } | undefined)?.worker;
    if (worker) s.worker = worker;
    if (u && s.state === 'running') s.progress = u.phase === 'train' ? `epoch ${u.epoch}/${u.epochs} step ${u.step}/${u.steps}` : `${u.phase} ${u.step}/${u.steps}`;
    if (job.failedReason && s.state !== 'done') s.error = job.failedReason;
    return s;
  }

  /** Jobs running, waiting, then recently ended (newest first in each group). */
  async list(limit = 100): Promise<QueueJobSummary[]> {
    const out: QueueJobSummary[] = [];
    for (const t of ['active', 'waiting', 'prioritized', 'delayed', 'completed', 'failed'] as const) {
      const jobs = await this.queue.getJobs([t], 0, limit - 1, false);
      for (const j of jobs) if (j) out.push(this.summary(j, t === 'prioritized' || t === 'delayed' ? 'waiting' : t));
    }
    return out;
  }

  /**
   * Cancels a job: a waiting one is removed (its run marked cancelled); a running one is told
   * (a Redis key and a pub/sub message) and its worker stops it at its next training step.
   */
  async cancel(jobId: string, reason = 'cancelled by the submitter'): Promise<'removed' | 'signalled' | 'ended' | 'unknown'> {
    const job = await this.job(jobId);
    if (!job) return 'unknown';
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') return 'ended';
    const keys = queueKeys(this.addr.queueName);
    await this.redis.set(keys.cancelKey(jobId), reason, 'EX', 7 * 24 * 3600);
    if (state === 'waiting' || state === 'delayed' || state === 'prioritized' || state === 'waiting-children') {
      try {
        await job.remove();
        this.settleRemoved(job.data as QueueJobData, reason);
        return 'removed';
      } catch {
        /* it became active meanwhile: signal it */
      }
    }
    await this.redis.publish(keys.cancelChannel, jobId);
    return 'signalled';
  }

  /** A train job removed before it started: its run.json says so. */
  private settleRemoved(data: QueueJobData, reason: string): void {
    if (data?.kind !== 'train') return;
    try {
      const run = readRun(data.trainDir, data.runId);
      if (run.state === 'queued') writeRun({ ...(run as StoredRun), state: 'cancelled', error: `${reason} before it started`, pid: undefined, host: undefined });
    } catch {
      /* the run folder is not visible here */
    }
  }

  private queueEvents(): Promise<QueueEvents> {
    this.events ??= (async () => {
      const ev = new QueueEvents(this.addr.queueName, { connection: this.addr.connection });
      ev.on('error', () => undefined);
      await ev.waitUntilReady();
      return ev;
    })();
    return this.events;
  }

  /** Follows a job to its end: its progress (training updates, log lines) as it comes, then the outcome. */
  async follow<T = unknown>(jobId: string, hooks: FollowHooks = {}): Promise<FollowEnd<T>> {
    const events = await this.queueEvents();
    return new Promise<FollowEnd<T>>((resolve) => {
      let done = false;
      let lastUpdate = '';
      const emit = (p: QueueProgress) => {
        if (p.log !== undefined) hooks.onLog?.(p.log);
        else if (p.update) {
          const key = JSON.stringify(p.update);
          if (key !== lastUpdate) hooks.onUpdate?.(p.update);
          lastUpdate = key;
        }
        hooks.onProgress?.(p);
      };
      const onProgress = (a: { jobId: string; data: unknown }) => {
        if (a.jobId === jobId && a.data && typeof a.data === 'object') emit(a.data as QueueProgress);
      };
      const onEnd = (a: { jobId: string }) => {
        if (a.jobId === jobId) void check();
      };
      const finish = (e: FollowEnd<T>) => {
        if (done) return;
        done = true;
        clearInterval(timer);
        events.off('progress', onProgress);
        for (const n of ['completed', 'failed', 'removed'] as const) events.off(n, onEnd);
        resolve(e);
      };
      let first = true;
      const check = async () => {
        if (done || this.closed) return;
        let job: Job | undefined;
        try {
          job = await this.job(jobId);
          if (!job) {
            const why = await this.redis.get(queueKeys(this.addr.queueName).cancelKey(jobId));
            return finish({ state: 'cancelled', error: why ? `${why} (removed from the queue before it started)` : `job ${jobId} is not on the queue (removed, or expired from the history)` });
          }
          if (first && job.progress && typeof job.progress === 'object') emit({ ...(job.progress as QueueProgress), log: undefined });
          first = false;
          const st = await job.getState();
          // The job was read before its state: it may have ended in between, and the copy in hand
          // then lacks the return value or the failure reason. An ended job is read again.
          if (st === 'completed' || st === 'failed') job = (await this.job(jobId)) ?? job;
          if (st === 'completed') finish({ state: 'done', value: job.returnvalue as T });
          else if (st === 'failed') {
            const reason = job.failedReason ?? 'failed';
            finish({ state: reason.startsWith(CANCELLED_PREFIX) ? 'cancelled' : 'failed', error: reason });
          }
        } catch {
          /* Redis away for a moment: the next poll tries again */
        }
      };
      events.on('progress', onProgress);
      for (const n of ['completed', 'failed', 'removed'] as const) events.on(n, onEnd);
      const timer = setInterval(() => void check(), 2000);
      void check();
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const ev = this.events;
    await Promise.allSettled([this.queue.close(), ev ? ev.then((e) => e.close()) : Promise.resolve(), this.redis.quit()]);
  }
}
