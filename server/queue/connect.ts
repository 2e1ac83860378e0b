/** Opening Redis: a fail-fast check first, so a wrong address is one clear sentence, not a hang. */
import { Redis } from 'ioredis';
import { PipelineError } from '../runs.js';
import { parseQueueUrl, QueueUrlError, type QueueAddress } from './redis-url.js';

export function queueAddress(url: string): QueueAddress {
  try {
    return parseQueueUrl(url);
  } catch (e) {
    if (e instanceof QueueUrlError) throw new PipelineError(e.message, 'Usage');
    throw e;
  }
}

/** Connects once without retries and PINGs; throws a PipelineError naming the address and the fix. */
export async function checkRedis(addr: QueueAddress, timeoutMs = 5000): Promise<void> {
  const r = new Redis({ ...addr.connection, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs, enableOfflineQueue: false });
  let last: Error | undefined;
  r.on('error', (e: Error) => (last = e));
  try {
    await r.connect();
    await r.ping();
  } catch (e) {
    const msg = last?.message ?? (e as Error)?.message ?? String(e);
    const auth = /NOAUTH|WRONGPASS|invalid password|AUTH/i.test(msg);
    throw new PipelineError(
      auth
        ? `Redis at ${addr.display} refused the credentials (${msg}): put the password in the URL, redis://:PASSWORD@host:port (or user:PASSWORD@ for an ACL user)`
        : `cannot reach Redis at ${addr.display} (${msg}): start it (redis-server --port ${addr.connection.port} --appendonly yes) or correct --queue`,
      'NotAvailable',
    );
  } finally {
    r.disconnect();
  }
}

/** A long-lived connection (reconnects by itself; errors are reported, not thrown at random). */
export function redisClient(addr: QueueAddress, onError?: (e: Error) => void): Redis {
  const r = new Redis(addr.connection);
  r.on('error', (e: Error) => onError?.(e));
  return r;
}
