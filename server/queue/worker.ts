/**
 * `uflow worker --queue redis://host:port`: takes jobs from the BullMQ queue and runs them with
 * this machine's tensor engine, one at a time by default (one device per process).
 *
 * How a job ends:
 * - done: the handler's value is the job's return value;
 * - failed at once (BullMQ UnrecoverableError, no retry): bad input — an unreadable dataset or run
 *   folder, a changed config, an unknown job kind, a training that diverged — with the sentence
 *   that says why; the worker goes on with the next job;
 * - cancelled (`uflow jobs cancel`): a pub/sub message aborts the job's signal and the trainer
 *   stops before its next step; the job fails with a reason starting `cancelled`;
 * - back on the queue, no attempt counted: the worker is stopping (SIGTERM / Ctrl-C: the training
 *   stops at its next step, the last complete epoch is on the shared folder) or the run is locked
 *   by another worker;
 * - a worker that dies (SIGKILL, power) stops renewing BullMQ's job lock: after `lockMs` another
 *   worker's stalled-job check puts the job back and it resumes from the last complete epoch.
 */
import { hostname } from 'node:os';
import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import { PipelineError } from '../runs.js';
import { checkRedis, queueAddress, redisClient } from './connect.js';
import { JOB_HANDLERS } from './jobs/index.js';
import { BadJobError, RequeueError, type JobContext } from './jobs/context.js';
import { RunLock } from './run-lock.js';
import { CANCELLED_PREFIX, QUEUE_JOB_KINDS, queueKeys, type QueueJobData, type QueueJobKind, type QueueProgress } from './types.js';

export interface WorkerOptions {
  url: string;
  /** Default host:pid. */
  name?: string;
  /** Jobs at once (default 1). */
  concurrency?: number;
  /** BullMQ's job lock and the run lock expire after this long without renewal (default 30 s). */
  lockMs?: number;
  backend?: string;
  log?(line: string): void;
}

export interface RunningWorker {
  name: string;
  /** Resolves when the worker has stopped. */
  done: Promise<void>;
  /** Stops taking jobs; running ones stop at their next step and go back on the queue. */
  close(reason?: string): Promise<void>;
}

class Cancelled extends Error {
  constructor(readonly reason: string) {
    super(`${CANCELLED_PREFIX}: ${reason}`);
  }
}
class Stopping extends Error {}
class LockLost extends Error {}

export async function startWorker(opts: WorkerOptions): Promise<RunningWorker> {
  const addr = queueAddress(opts.url);
  await checkRedis(addr);
  const name = opts.name ?? `${hostname()}:${process.pid}`;
  const lockMs = opts.lockMs ?? 30_000;
  const log = (line: string) => opts.log?.(`[worker ${name}] ${line}`);
  const keys = queueKeys(addr.queueName);
  let lastRedisError = '';
  const onRedisError = (e: Error) => {
    if (e.message !== lastRedisError) log(`redis: ${e.message} (reconnecting)`);
    lastRedisError = e.message;
  };
  const redis = redisClient(addr, onRedisError);
  const sub = redisClient(addr, onRedisError);
  const active = new Map<string, AbortController>();
  let stopping = false;

  sub.on('message', (_channel: string, jobId: string) => {
    const ac = active.get(jobId);
    if (ac && !ac.signal.aborted) {
      log(`job ${jobId}: cancel received`);
      ac.abort(new Cancelled('cancelled'));
    }
  });
  await sub.subscribe(keys.cancelChannel);

  const processor = async (job: Job<QueueJobData>, token?: string): Promise<unknown> => {
    const jobId = job.id!;
    const kind = job.name as QueueJobKind;
    const handler = (QUEUE_JOB_KINDS as readonly string[]).includes(kind) ? JOB_HANDLERS[kind] : undefined;
    if (!handler || job.data?.kind !== kind) {
      throw new UnrecoverableError(`unknown job kind '${job.name}': worker ${name} serves ${QUEUE_JOB_KINDS.join(', ')} (a newer submitter? upgrade the workers)`);
    }
    const before = await redis.get(keys.cancelKey(jobId));
    if (before) throw new UnrecoverableError(`${CANCELLED_PREFIX}: ${before} (before it started)`);
    const ac = new AbortController();
    active.set(jobId, ac);
    if (stopping) ac.abort(new Stopping());
    // Progress in order, one Redis write after the other; step counts for the cancel report.
    let chain: Promise<unknown> = Promise.resolve();
    let latest: QueueProgress['update'];
    let steps = 0;
    let stepsAtAbort = -1;
    let whereAtAbort = '';
    ac.signal.addEventListener('abort', () => {
      stepsAtAbort = steps;
      whereAtAbort = latest ? `epoch ${latest.epoch}, step ${latest.step}/${latest.steps}` : 'before training';
    });
    const send = (p: QueueProgress) => {
      chain = chain.then(() => job.updateProgress(p as object)).catch(() => undefined);
    };
    const locks: RunLock[] = [];
    const ctx: JobContext = {
      worker: name,
      jobId,
      signal: ac.signal,
      backend: opts.backend,
      progress: (p) => {
        if (p.update) {
          latest = p.update;
          if (p.update.phase === 'train') steps++;
        }
        send({ worker: name, ...p, ...(latest && !p.update ? { update: latest } : {}) });
      },
      log: (line) => {
        log(`job ${jobId}: ${line}`);
        chain = chain.then(() => job.log(line)).catch(() => undefined);
        send({ worker: name, log: line, ...(latest ? { update: latest } : {}) });
      },
      lockRun: async (runId, runFolder) => {
        const got = await RunLock.acquire(redis, keys.runLock(runId), { worker: name, host: hostname(), pid: process.pid }, lockMs, runFolder);
        if (!(got instanceof RunLock)) {
          const who = typeof got.heldBy === 'string' ? got.heldBy : `worker ${got.heldBy.worker}`;
          throw new RequeueError(`run ${runId} is being written by ${who} (its lock expires in ${Math.ceil(got.ttlMs / 1000)} s): put back on the queue`, got.ttlMs + 500);
        }
        locks.push(got);
        got.lost.addEventListener('abort', () => ac.abort(new LockLost(`run ${runId}: ${(got.lost.reason as Error).message}; stopped so that two workers never write it`)));
        return got;
      },
    };
    log(`job ${jobId} (${kind}${'runId' in job.data ? ` ${job.data.runId}` : ''}) started, attempt ${job.attemptsMade + 1}`);
    try {
      const value = await handler(job.data, ctx);
      await chain;
      log(`job ${jobId} done`);
      return value;
    } catch (e) {
      await chain;
      const reason: unknown = ac.signal.reason;
      if (e instanceof RequeueError || reason instanceof Stopping) {
        const why = e instanceof RequeueError ? e.message : `worker ${name} is stopping`;
        log(`job ${jobId}: ${why}; back on the queue`);
        await job.log(`${why}; back on the queue`).catch(() => undefined);
        await job.moveToDelayed(Date.now() + (e instanceof RequeueError ? e.delayMs : 0), token);
        throw new DelayedError();
      }
      if (reason instanceof Cancelled) {
        const who = (await redis.get(keys.cancelKey(jobId))) ?? reason.reason;
        const after = Math.max(0, steps - stepsAtAbort);
        const msg = `${CANCELLED_PREFIX}: ${who} at ${whereAtAbort}; stopped after ${after} more training step${after === 1 ? '' : 's'} on worker ${name}`;
        log(`job ${jobId} ${msg}`);
        throw new UnrecoverableError(msg);
      }
      if (reason instanceof LockLost) throw new UnrecoverableError(reason.message);
      const msg = (e as Error)?.message ?? String(e);
      log(`job ${jobId} failed: ${msg}`);
      if (e instanceof BadJobError || (e instanceof PipelineError && (e.code !== 'NotAvailable' || e.permanent))) throw new UnrecoverableError(msg);
      throw e;
    } finally {
      active.delete(jobId);
      for (const l of locks) await l.release();
    }
  };

  const worker = new Worker<QueueJobData>(addr.queueName, processor, {
    connection: addr.connection,
    concurrency: opts.concurrency ?? 1,
    lockDuration: lockMs,
    stalledInterval: lockMs,
    maxStalledCount: 5,
  });
  worker.on('error', (e) => onRedisError(e));
  await worker.waitUntilReady();
  log(`serving ${QUEUE_JOB_KINDS.join(', ')} jobs from ${addr.display} (queue ${addr.queueName}, lock ${lockMs} ms)`);

  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  let closing: Promise<void> | undefined;
  const close = (reason = 'stopped') => {
    closing ??= (async () => {
      stopping = true;
      log(`stopping (${reason}): running jobs stop at their next step and go back on the queue`);
      for (const ac of active.values()) if (!ac.signal.aborted) ac.abort(new Stopping());
      await worker.close();
      await Promise.allSettled([sub.quit(), redis.quit()]);
      resolveDone();
    })();
    return closing;
  };
  return { name, done, close };
}
