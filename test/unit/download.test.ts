/**
 * server/download.ts against a local HTTP server: progress events, resume with Range (only the
 * remainder is fetched), a server that ignores Range, checksum mismatch (file removed), 404,
 * a stalled server (bounded), proxies (HTTP_PROXY / NO_PROXY) and the proxy rules themselves.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { bypassesProxy, download, DownloadError, proxyFor, type DownloadProgress } from '../../server/download.js';
import { sendFile, startProxy, startServer } from './download-server.js';

const dir = mkdtempSync(join(tmpdir(), 'uflow-download-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const body = randomBytes(64 * 1024);
const sha = createHash('sha256').update(body).digest('hex');
const NOPROXY = {}; // an empty environment: no proxy variables, whatever the machine has
const T = { timeout: 5000 };

describe('download', () => {
  test('success: file, sha256, atomic rename, progress events', T, async () => {
    const srv = await startServer((req, res, e) => sendFile(req, res, e, body, { chunks: 8, delayMs: 2 }));
    try {
      const dest = join(dir, 'ok.bin');
      const events: DownloadProgress[] = [];
      const r = await download({ url: `${srv.base}/f.bin`, dest, sha256: sha, expectedBytes: body.length, env: NOPROXY, progressIntervalMs: 0, onProgress: (p) => events.push(p) });
      assert.deepEqual(readFileSync(dest), body);
      assert.equal(existsSync(`${dest}.part`), false);
      assert.equal(r.sha256, sha);
      assert.equal(r.bytes, body.length);
      assert.equal(r.resumedFrom, 0);
      assert.ok(events.length >= 3, `several progress events (${events.length})`);
      assert.equal(events[0]!.bytes, 0);
      assert.equal(events.at(-1)!.bytes, body.length);
      assert.ok(events.every((p, i) => p.total === body.length && p.rate >= 0 && (i === 0 || p.bytes >= events[i - 1]!.bytes)));
    } finally {
      await srv.close();
    }
  });

  test('resume: a .part is continued with Range and only the remainder is sent', T, async () => {
    const srv = await startServer((req, res, e) => sendFile(req, res, e, body));
    try {
      const dest = join(dir, 'resume.bin');
      const k = 20_000;
      writeFileSync(`${dest}.part`, body.subarray(0, k));
      const events: DownloadProgress[] = [];
      const r = await download({ url: `${srv.base}/f.bin`, dest, sha256: sha, env: NOPROXY, onProgress: (p) => events.push(p) });
      assert.deepEqual(readFileSync(dest), body);
      assert.equal(r.resumedFrom, k);
      assert.equal(srv.log.length, 1);
      assert.equal(srv.log[0]!.range, `bytes=${k}-`);
      assert.equal(srv.log[0]!.sent, body.length - k, 'only the remainder crossed the wire');
      assert.equal(events[0]!.bytes, k);
    } finally {
      await srv.close();
    }
  });

  test('a complete .part (server answers 416) is verified and finished without a transfer', T, async () => {
    const srv = await startServer((req, res, e) => sendFile(req, res, e, body));
    try {
      const dest = join(dir, 'complete.bin');
      writeFileSync(`${dest}.part`, body);
      const r = await download({ url: `${srv.base}/f.bin`, dest, sha256: sha, env: NOPROXY });
      assert.equal(r.bytes, body.length);
      assert.deepEqual(readFileSync(dest), body);
      assert.equal(srv.log[0]!.sent, 0);
    } finally {
      await srv.close();
    }
  });

  test('a server that ignores Range: the download starts over (no duplicated bytes)', T, async () => {
    const srv = await startServer((req, res, e) => sendFile(req, res, e, body, { honourRange: false }));
    try {
      const dest = join(dir, 'norange.bin');
      writeFileSync(`${dest}.part`, Buffer.alloc(5000, 0x58));
      const r = await download({ url: `${srv.base}/f.bin`, dest, sha256: sha, env: NOPROXY });
      assert.equal(srv.log[0]!.range, 'bytes=5000-');
      assert.equal(r.resumedFrom, 0);
      assert.deepEqual(readFileSync(dest), body);
    } finally {
      await srv.close();
    }
  });

  test('checksum mismatch: the file is rejected and removed', T, async () => {
    const srv = await startServer((req, res, e) => sendFile(req, res, e, body));
    try {
      const dest = join(dir, 'bad.bin');
      const url = `${srv.base}/f.bin`;
      await assert.rejects(
        download({ url, dest, sha256: 'ab'.repeat(32), env: NOPROXY }),
        (e: unknown) => e instanceof DownloadError && e.kind === 'checksum' && e.message.includes(url) && e.message.includes(sha) && /removed/.test(e.message),
      );
      assert.equal(existsSync(dest), false);
      assert.equal(existsSync(`${dest}.part`), false);
    } finally {
      await srv.close();
    }
  });

  test('404 and 500: clear HTTP errors naming the URL', T, async () => {
    const srv = await startServer((req, res) => {
      res.statusCode = req.url === '/missing' ? 404 : 500;
      res.end('no');
    });
    try {
      const dest = join(dir, 'missing.bin');
      await assert.rejects(
        download({ url: `${srv.base}/missing`, dest, env: NOPROXY }),
        (e: unknown) => e instanceof DownloadError && e.kind === 'http' && e.status === 404 && e.message.includes(`${srv.base}/missing`) && /HTTP 404 Not Found/.test(e.message),
      );
      await assert.rejects(download({ url: `${srv.base}/boom`, dest, env: NOPROXY }), /HTTP 500 Internal Server Error; the server has a problem/);
      assert.equal(existsSync(dest), false);
    } finally {
      await srv.close();
    }
  });

  test('a stalled server: aborted after the stall timeout with a clear error; the .part is kept for resuming', T, async () => {
    const srv = await startServer((req, res, e) => {
      res.writeHead(200, { 'content-length': body.length });
      res.write(body.subarray(0, 1000));
      e.sent = 1000; // then nothing more
    });
    try {
      const dest = join(dir, 'stall.bin');
      const url = `${srv.base}/slow`;
      const t0 = Date.now();
      await assert.rejects(
        download({ url, dest, timeoutMs: 300, env: NOPROXY }),
        (e: unknown) => e instanceof DownloadError && e.kind === 'stall' && e.message.includes(url) && /no data for 0\.3 s/.test(e.message) && /resume/.test(e.message),
      );
      const took = Date.now() - t0;
      assert.ok(took >= 250 && took < 2000, `stopped after ${took} ms`);
      assert.equal(readFileSync(`${dest}.part`).length, 1000);
      assert.equal(existsSync(dest), false);
    } finally {
      await srv.close();
    }
  });

  test('a server that never answers: the stall timeout covers waiting for headers too', T, async () => {
    const srv = await startServer(() => {});
    try {
      await assert.rejects(download({ url: `${srv.base}/x`, dest: join(dir, 'never.bin'), timeoutMs: 200, env: NOPROXY }), (e: unknown) => e instanceof DownloadError && e.kind === 'stall');
    } finally {
      await srv.close();
    }
  });

  test('cancel through the signal', T, async () => {
    const srv = await startServer((req, res, e) => sendFile(req, res, e, body, { chunks: 64, delayMs: 20 }));
    try {
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 100);
      await assert.rejects(download({ url: `${srv.base}/f`, dest: join(dir, 'cancel.bin'), signal: ac.signal, env: NOPROXY }), (e: unknown) => e instanceof DownloadError && e.kind === 'aborted');
    } finally {
      await srv.close();
    }
  });

  test('unreachable host: a network error naming the URL', T, async () => {
    const srv = await startServer(() => {});
    const url = `${srv.base}/x`;
    await srv.close();
    await assert.rejects(download({ url, dest: join(dir, 'offline.bin'), env: NOPROXY }), (e: unknown) => e instanceof DownloadError && e.kind === 'network' && e.message.includes(url) && /ECONNREFUSED/.test(e.message));
  });
});

describe('proxies', () => {
  test('proxyFor / NO_PROXY rules', () => {
    const env = { HTTPS_PROXY: 'http://proxy:3128', http_proxy: 'proxy2:8080', NO_PROXY: 'localhost, .internal.example, 10.0.0.1:8443, *.corp' };
    assert.equal(proxyFor('https://huggingface.co/x', env), 'http://proxy:3128');
    assert.equal(proxyFor('http://example.com/x', env), 'http://proxy2:8080');
    assert.equal(proxyFor('https://localhost/x', env), undefined);
    assert.equal(proxyFor('https://a.internal.example/x', env), undefined);
    assert.equal(proxyFor('https://internal.example/x', env), undefined);
    assert.equal(proxyFor('https://10.0.0.1:8443/x', env), undefined);
    assert.equal(proxyFor('https://10.0.0.1/x', env), 'http://proxy:3128');
    assert.equal(proxyFor('https://x.corp/y', env), undefined);
    assert.equal(proxyFor('https://notinternal.example/x', env), 'http://proxy:3128');
    assert.equal(proxyFor('https://x.org', {}), undefined);
    assert.equal(bypassesProxy(new URL('https://anything'), '*'), true);
  });

  test('HTTP_PROXY is used, NO_PROXY bypasses it', T, async () => {
    const srv = await startServer((req, res, e) => sendFile(req, res, e, body));
    const proxy = await startProxy();
    try {
      const dest = join(dir, 'proxied.bin');
      await download({ url: `${srv.base}/via-proxy`, dest, sha256: sha, env: { HTTP_PROXY: proxy.url } });
      assert.deepEqual(readFileSync(dest), body);
      assert.equal(proxy.seen.length, 1, `the proxy carried the request: ${proxy.seen.join(', ')}`);
      assert.ok(proxy.seen[0]!.includes(`127.0.0.1:${srv.port}`));
      await download({ url: `${srv.base}/direct`, dest: join(dir, 'direct.bin'), sha256: sha, env: { HTTP_PROXY: proxy.url, NO_PROXY: '127.0.0.1' } });
      assert.equal(proxy.seen.length, 1, 'NO_PROXY: not through the proxy');
      assert.equal(srv.log.length, 2);
    } finally {
      await proxy.close();
      await srv.close();
    }
  });
});
