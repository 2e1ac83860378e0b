/**
 * `--queue redis://[user:password@]host:port[/db][?queue=NAME]` → the ioredis options BullMQ
 * connects with. `rediss://` turns TLS on (`?insecure=1` skips the certificate check, for a
 * self-signed test server only). The queue name defaults to `uflow`; every client and worker of
 * one deployment must use the same URL path and name.
 */
import type { RedisOptions } from 'ioredis';

export interface QueueAddress {
  /** For BullMQ's `connection` (maxRetriesPerRequest: null, as BullMQ workers require). */
  connection: RedisOptions;
  /** BullMQ queue name. */
  queueName: string;
  /** The URL with the password hidden, for messages. */
  display: string;
}

export class QueueUrlError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QueueUrlError';
  }
}

export function parseQueueUrl(url: string): QueueAddress {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new QueueUrlError(`--queue '${url}' is not a URL: write redis://host:6379 (rediss:// for TLS, redis://:password@host:6379 with a password)`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new QueueUrlError(`--queue '${url}': the scheme must be redis:// or rediss:// (TLS), not ${u.protocol}//`);
  }
  if (!u.hostname) throw new QueueUrlError(`--queue '${url}' names no host: write redis://host:6379`);
  const port = u.port ? Number(u.port) : 6379;
  const dbText = u.pathname.replace(/^\/+/, '');
  const db = dbText ? Number(dbText) : 0;
  if (!Number.isInteger(db) || db < 0) throw new QueueUrlError(`--queue '${url}': the path must be a database number (redis://host:6379/0), not '/${dbText}'`);
  const queueName = u.searchParams.get('queue') || 'uflow';
  if (!/^[A-Za-z0-9_.-]+$/.test(queueName)) throw new QueueUrlError(`--queue '${url}': the queue name '${queueName}' may hold only letters, digits, '_', '.', '-'`);
  for (const k of u.searchParams.keys()) {
    if (k !== 'queue' && k !== 'insecure') throw new QueueUrlError(`--queue '${url}': unknown parameter '${k}' (known: queue, insecure)`);
  }
  const connection: RedisOptions = {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port,
    db,
    maxRetriesPerRequest: null,
    connectTimeout: 10_000,
  };
  if (u.username) connection.username = decodeURIComponent(u.username);
  if (u.password) connection.password = decodeURIComponent(u.password);
  if (u.protocol === 'rediss:') connection.tls = { servername: connection.host, ...(u.searchParams.get('insecure') === '1' ? { rejectUnauthorized: false } : {}) };
  const shown = new URL(url);
  if (shown.password) shown.password = '***';
  return { connection, queueName, display: shown.toString() };
}
