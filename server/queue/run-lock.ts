/**
 * The lock on a run: a Redis key per run (`uflow:<queue>:run-lock:<runId>`) set with NX and an
 * expiry, renewed every third of its lifetime while the holder works, released at the end, and a
 * `run.lock` file in the run folder saying who holds it until when (for people looking at the
 * shared folder). BullMQ's own lock is on the job; this one is on the run folder, so that a job
 * handed to a second worker (its first worker looked dead: a long pause, a network partition)
 * can never write the same run while the first still does. A holder that cannot renew
 * (Redis unreachable, the key taken over after expiry) is told (`lost`) and stops at its next
 * training step: it renews at ttl/3, so it stops well before anyone else may take the key.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { atomicWriteJson } from '../../models/io/atomic.js';

const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

export interface LockHolder {
  worker: string;
  host: string;
  pid: number;
}

export class RunLock {
  private timer: NodeJS.Timeout | undefined;
  private readonly ac = new AbortController();
  private released = false;

  private constructor(
    private readonly redis: Redis,
    private readonly key: string,
    private readonly value: string,
    private readonly ttlMs: number,
    private readonly file: string | undefined,
    private readonly holder: LockHolder,
  ) {}

  /** Aborted when the lock is lost (renewal failed or the key belongs to someone else). */
  get lost(): AbortSignal {
    return this.ac.signal;
  }

  /** Takes the lock, or returns who holds it and for how long still. */
  static async acquire(redis: Redis, key: string, holder: LockHolder, ttlMs: number, runFolder?: string): Promise<RunLock | { heldBy: LockHolder | string; ttlMs: number }> {
    const value = JSON.stringify({ ...holder, token: randomBytes(8).toString('hex') });
    const ok = await redis.set(key, value, 'PX', ttlMs, 'NX');
    if (ok !== 'OK') {
      const [cur, ttl] = await Promise.all([redis.get(key), redis.pttl(key)]);
      let heldBy: LockHolder | string = cur ?? 'someone (the lock just expired: try again)';
      try {
        if (cur) heldBy = JSON.parse(cur) as LockHolder;
      } catch {
        /* a foreign value */
      }
      return { heldBy, ttlMs: Math.max(0, ttl) };
    }
    const lock = new RunLock(redis, key, value, ttlMs, runFolder ? join(runFolder, 'run.lock') : undefined, holder);
    lock.writeFile();
    lock.timer = setInterval(() => void lock.renew(), Math.max(100, Math.floor(ttlMs / 3)));
    lock.timer.unref();
    return lock;
  }

  private writeFile(): void {
    if (!this.file) return;
    try {
      atomicWriteJson(this.file, { ...this.holder, key: this.key, expiresAt: new Date(Date.now() + this.ttlMs).toISOString() });
    } catch {
      /* informational only */
    }
  }

  private async renew(): Promise<void> {
    if (this.released) return;
    try {
      const r = await this.redis.eval(RENEW, 1, this.key, this.value, String(this.ttlMs));
      if (r !== 1) return this.lose('the run lock was taken over after it expired');
      this.writeFile();
    } catch (e) {
      return this.lose(`the run lock could not be renewed (${(e as Error).message})`);
    }
  }

  private lose(why: string): void {
    if (this.ac.signal.aborted) return;
    this.ac.abort(new Error(why));
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.timer) clearInterval(this.timer);
    if (this.file && !this.ac.signal.aborted) rmSync(this.file, { force: true });
    try {
      await this.redis.eval(RELEASE, 1, this.key, this.value);
    } catch {
      /* it expires by itself */
    }
  }
}
