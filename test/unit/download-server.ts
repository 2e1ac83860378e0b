/**
 * A local HTTP server for the download tests: 127.0.0.1, port 0, a log of every request, and a
 * close() that drops open connections (stalled responses included), so tests stay bounded.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';

export interface LoggedRequest {
  method: string;
  url: string;
  range?: string;
  cookie?: string;
  /** body bytes the handler sent (counted by `send`) */
  sent: number;
}

export interface TestServer {
  base: string;
  port: number;
  log: LoggedRequest[];
  close(): Promise<void>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, entry: LoggedRequest) => void | Promise<void>;

export async function startServer(handler: Handler): Promise<TestServer> {
  const log: LoggedRequest[] = [];
  const server = createServer((req, res) => {
    const entry: LoggedRequest = { method: req.method ?? 'GET', url: req.url ?? '/', range: req.headers.range, cookie: req.headers.cookie, sent: 0 };
    log.push(entry);
    Promise.resolve(handler(req, res, entry)).catch((e) => {
      res.statusCode = 500;
      res.end(String(e));
    });
  });
  return listen(server, log);
}

function listen(server: Server, log: LoggedRequest[]): Promise<TestServer> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as AddressInfo).port;
      resolve({
        base: `http://127.0.0.1:${port}`,
        port,
        log,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}

/** Sends `body` (or its part from a Range header when `honourRange`) and records the bytes sent. */
export function sendFile(req: IncomingMessage, res: ServerResponse, entry: LoggedRequest, body: Uint8Array, opts: { honourRange?: boolean; type?: string; chunks?: number; delayMs?: number } = {}): void {
  const type = opts.type ?? 'application/octet-stream';
  let start = 0;
  const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
  if (opts.honourRange !== false && m) {
    start = Number(m[1]);
    if (start >= body.length) {
      res.writeHead(416, { 'content-range': `bytes */${body.length}` });
      res.end();
      return;
    }
    res.writeHead(206, { 'content-type': type, 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}`, 'accept-ranges': 'bytes' });
  } else {
    res.writeHead(200, { 'content-type': type, 'content-length': body.length });
  }
  const part = body.subarray(start);
  if (req.method === 'HEAD') {
    res.end();
    return;
  }
  const n = opts.chunks ?? 1;
  const size = Math.ceil(part.length / n);
  let i = 0;
  const next = () => {
    if (i >= part.length) {
      res.end();
      return;
    }
    const c = part.subarray(i, i + size);
    i += c.length;
    entry.sent += c.length;
    res.write(c);
    if (opts.delayMs) setTimeout(next, opts.delayMs);
    else next();
  };
  next();
}

/** A forward proxy (CONNECT tunnels and absolute-URI requests) that counts what it carried. */
export async function startProxy(): Promise<{ url: string; seen: string[]; close(): Promise<void> }> {
  const seen: string[] = [];
  const sockets = new Set<Socket>();
  const server = createServer(async (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const target = new URL(req.url ?? '');
    const headers: Record<string, string> = req.headers.range ? { range: req.headers.range } : {};
    const r = await fetch(target, { method: req.method, headers });
    const out: Record<string, string> = {};
    r.headers.forEach((v, k) => (out[k] = v));
    res.writeHead(r.status, out);
    res.end(Buffer.from(await r.arrayBuffer()));
  });
  server.on('connect', (req, client: Socket, head) => {
    seen.push(`CONNECT ${req.url}`);
    const [host, port] = (req.url ?? '').split(':');
    const upstream = connect(Number(port), host!, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(client).add(upstream);
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  const s = await listen(server, []);
  return {
    url: s.base,
    seen,
    close: async () => {
      for (const so of sockets) so.destroy();
      await s.close();
    },
  };
}
