/**
 * Fuzzing the real daemon over stdio: a few thousand random and mutated JSON-RPC messages (seeded,
 * bounded in count and time), each with correct LSP framing. For every message an independent
 * oracle (JSON-RPC 2.0 rules, written here) says what must come back:
 *   not JSON                         → one error -32700 with id null
 *   JSON but not a valid message     → one error -32600 with id null
 *   a request (method + string/number id) → exactly one response with its id (result or error)
 *   a notification or a response     → nothing
 * After each message a ping request (an unknown method: -32601) marks the end of what the message
 * caused. The workspace holds a tiny trained run, so mutated predict / evaluate requests load and
 * run a real model; uflow/estimate and uflow/export are among the methods. A mutated uflow/train can
 * be a valid one (a real training); jobs still running or queued at the end are cancelled. Then
 * the daemon must still be the same process (0 restarts), answer uflow/status, and hold as many
 * tensors as after one warm-up prediction (tf.memory().numTensors through uflow/status; the model
 * cache keeps that model loaded).
 *
 * UFLOW_FUZZ_COUNT (default 3000), UFLOW_FUZZ_SEED (default 1), UFLOW_FUZZ_SECONDS (default 60).
 * The figures are printed and written to $TMPDIR/uflow-fuzz-figures.json.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { requireBuild, SERVER, tempDir } from './harness.js';
import { RawClient } from './raw-client.js';
import { rng, writeTinyCategory } from './fixtures.js';
import { cli } from '../cli/cli-helpers.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };


/** The oracle: what the daemon must do with this body (JSON-RPC 2.0 §4–5, LSP base protocol: no batches). */
function classify(body: Buffer): { kind: 'parse' | 'invalid' | 'request' | 'silent'; id?: string | number } {
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    return { kind: 'parse' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { kind: 'invalid' };
  const o = v as Record<string, unknown>;
  if (o.jsonrpc !== '2.0') return { kind: 'invalid' };
  const validId = (x: unknown) => typeof x === 'string' || (typeof x === 'number' && Number.isFinite(x));
  if ('method' in o) {
    if (typeof o.method !== 'string' || o.method === '') return { kind: 'invalid' };
    if ('params' in o && (typeof o.params !== 'object' || o.params === null)) return { kind: 'invalid' };
    if (!('id' in o)) return { kind: 'silent' };
    return validId(o.id) ? { kind: 'request', id: o.id as string | number } : { kind: 'invalid' };
  }
  if (!('id' in o) || !(validId(o.id) || o.id === null)) return { kind: 'invalid' };
  if (('result' in o) === ('error' in o)) return { kind: 'invalid' };
  if ('error' in o) {
    const e = o.error as Record<string, unknown> | null;
    if (typeof e !== 'object' || e === null || Array.isArray(e) || typeof e.code !== 'number' || typeof e.message !== 'string') return { kind: 'invalid' };
  }
  return { kind: 'silent' };
}

function randomJson(r: () => number, depth = 0): Json {
  const k = Math.floor(r() * (depth > 2 ? 6 : 8));
  switch (k) {
    case 0:
      return null;
    case 1:
      return r() < 0.5;
    case 2:
      return [0, -1, 1.5, 2 ** 53, -0, 1e308, Math.floor(r() * 1000)][Math.floor(r() * 7)]!;
    case 3:
      return ['', 'a', '../../etc/passwd', '/etc', 'tfjs:/etc', 'file:///etc', '\u0000', 'é✓', 'x'.repeat(300)][Math.floor(r() * 9)]!;
    case 4:
      return Math.random.name + String(Math.floor(r() * 1e6));
    case 5:
      return String.fromCharCode(...Array.from({ length: 1 + Math.floor(r() * 8) }, () => 32 + Math.floor(r() * 90)));
    case 6:
      return Array.from({ length: Math.floor(r() * 4) }, () => randomJson(r, depth + 1));
    default: {
      const o: Record<string, Json> = {};
      for (let i = Math.floor(r() * 4); i > 0; i--) o[['path', 'runId', 'datasetPath', 'model', 'config', 'imagePath', 'jobId', 'token', 'x'][Math.floor(r() * 9)]!] = randomJson(r, depth + 1);
      return o;
    }
  }
}

/** Replaces one random leaf (or inserts a key) somewhere in a JSON value. */
function mutateDeep(v: Json, r: () => number): Json {
  if (v === null || typeof v !== 'object' || r() < 0.25) return randomJson(r);
  if (Array.isArray(v)) {
    if (!v.length) return [randomJson(r)];
    const c = [...v];
    const i = Math.floor(r() * c.length);
    c[i] = mutateDeep(c[i]!, r);
    return c;
  }
  const c = { ...v };
  const keys = Object.keys(c);
  if (!keys.length || r() < 0.2) c[['path', 'model', 'config', 'extra', 'runId'][Math.floor(r() * 5)]!] = randomJson(r);
  else {
    const k = keys[Math.floor(r() * keys.length)]!;
    if (r() < 0.2) delete c[k];
    else c[k] = mutateDeep(c[k]!, r);
  }
  return c;
}

test('fuzz: thousands of random and mutated messages are answered or ignored by the book; the daemon stays up and leaks no tensors', { timeout: 240_000 }, async () => {
  requireBuild();
  const count = Number(process.env.UFLOW_FUZZ_COUNT ?? 3000);
  const seed = Number(process.env.UFLOW_FUZZ_SEED ?? 1);
  const seconds = Number(process.env.UFLOW_FUZZ_SECONDS ?? 60);
  const r = rng(seed);
  const { dir, cleanup } = tempDir('uflow-fuzz-');
  const ws = join(dir, 'ws');
  mkdirSync(ws, { recursive: true });
  const cat = await writeTinyCategory(join(ws, 'data'), 'grid', { size: 32, trainGood: 4, testGood: 1, defects: 1 });
  const trained = await cli(['train', '-data', cat, '-train_dir', join(ws, '.uflow'), '--backbone', 'builtin:filters', '--input-size', '32', '--epochs', '1', '--batch', '2', '--validate-every', '0']);
  assert.equal(trained.code, 0, trained.stderr);
  const runId = /run (\S+) finished/.exec(trained.stdout)![1]!;
  const image = join(cat, 'test', 'spot', '000.png');
  // Predictions on tfjs (not onnxruntime, the default): the leak check counts tfjs tensors, and an
  // onnxruntime session holds none, so on onnx it would count nothing.
  const proc = spawn(process.execPath, [SERVER, '--stdio'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, UFLOW_BACKEND: 'wasm', UFLOW_INFERENCE_ENGINE: 'tfjs', UFLOW_CACHE_DIR: join(dir, 'cache'), HF_ENDPOINT: 'http://127.0.0.1:9' } });
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  proc.once('exit', () => (exited = true));
  const c = new RawClient(proc);
  const byId = (id: unknown) => c.received.filter((m) => (m as { id?: unknown }).id === id && !('method' in (m as object)));
  try {
    c.send({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: { processId: null, rootUri: null, capabilities: {}, workspaceFolders: [{ uri: pathToFileURL(ws).href, name: 'ws' }] } });
    await c.until(() => byId('init').length === 1, 60_000, 'the initialize answer');
    c.send({ jsonrpc: '2.0', method: 'initialized', params: {} });
    c.send({ jsonrpc: '2.0', id: 'warm', method: 'uflow/predict', params: { imagePath: image, runId } });
    await c.until(() => byId('warm').length === 1, 60_000, 'the warm-up prediction');
    assert.ok('result' in (byId('warm')[0] as object), JSON.stringify(byId('warm')[0]).slice(0, 300));
    c.send({ jsonrpc: '2.0', id: 'status-0', method: 'uflow/status' });
    await c.until(() => byId('status-0').length === 1, 60_000, 'status');
    const before = (byId('status-0')[0] as { result: { memory: { tensors: number }; pid: number } }).result;
    assert.ok(before.memory.tensors > 0, 'the warm-up model holds tfjs tensors, so that the leak check below counts something');

    const methods = ['uflow/status', 'uflow/runs', 'uflow/inspectDataset', 'uflow/train', 'uflow/estimate', 'uflow/evaluate', 'uflow/predict', 'uflow/export', 'uflow/cancel', '$/cancelRequest', 'window/workDoneProgress/cancel', 'workspace/didChangeWorkspaceFolders', 'initialized', 'no/such', '$/setTrace'];
    const seeds: Array<Record<string, Json>> = [
      { jsonrpc: '2.0', id: 1, method: 'uflow/status' },
      { jsonrpc: '2.0', id: 1, method: 'uflow/runs', params: { workspace: ws } },
      { jsonrpc: '2.0', id: 1, method: 'uflow/inspectDataset', params: { path: join(ws, 'data') } },
      { jsonrpc: '2.0', id: 1, method: 'uflow/inspectDataset', params: { path: '/etc' } },
      { jsonrpc: '2.0', id: 1, method: 'uflow/train', params: { datasetPath: '/etc', model: 'uflow' } },
      { jsonrpc: '2.0', id: 1, method: 'uflow/train', params: { datasetPath: join(ws, 'data'), model: 'uflow', config: { model: { backbone: 'tfjs:/etc' } } } },
      { jsonrpc: '2.0', id: 1, method: 'uflow/estimate', params: { datasetPath: '/etc', model: 'uflow' } },
      { jsonrpc: '2.0', id: 1, method: 'uflow/estimate', params: { datasetPath: join(ws, 'nope'), model: 'fastflow', config: { trainer: { epochs: -3 } } } },
      { jsonrpc: '2.0', id: 1, method: 'uflow/evaluate', params: { runId: 'no-such-run' } },
      { jsonrpc: '2.0', id: 1, method: 'uflow/export', params: { runId: 'no-such-run' } },
      { jsonrpc: '2.0', id: 1, method: 'uflow/predict', params: { imagePath: join(ws, 'nope.png') } },
      { jsonrpc: '2.0', id: 1, method: 'uflow/predict', params: { imagePath: image, runId } },
      { jsonrpc: '2.0', id: 1, method: 'uflow/predict', params: { imagePath: image, runId, includeRaw: true } },
      { jsonrpc: '2.0', id: 1, method: 'uflow/evaluate', params: { runId } },
      { jsonrpc: '2.0', id: 1, method: 'uflow/cancel', params: { jobId: 'job-9' } },
      { jsonrpc: '2.0', method: '$/cancelRequest', params: { id: 7 } },
      { jsonrpc: '2.0', method: 'window/workDoneProgress/cancel', params: { token: 'x' } },
      { jsonrpc: '2.0', method: 'workspace/didChangeWorkspaceFolders', params: { event: { added: [], removed: [] } } },
      { jsonrpc: '2.0', id: 424242, result: null },
      { jsonrpc: '2.0', id: 'x', error: { code: 1, message: 'm' } },
    ];
    const stats = { sent: 0, answered: 0, requests: 0, parseErrors: 0, invalidRequests: 0, ignored: 0, generated: 0 };
    const usedIds = new Set<string | number>();
    let nextId = 1;
    const t0 = Date.now();
    for (let i = 0; i < count && Date.now() - t0 < seconds * 1000; i++) {
      stats.generated++;
      const seedMsg = seeds[Math.floor(r() * seeds.length)]!;
      let body: Buffer;
      const op = Math.floor(r() * 10);
      if (op === 0) body = Buffer.from(Array.from({ length: 1 + Math.floor(r() * 40) }, () => Math.floor(r() * 256)));
      else if (op === 1) body = Buffer.from(JSON.stringify(randomJson(r)), 'utf8');
      else {
        let m: Json = { ...seedMsg };
        if ('id' in seedMsg && 'method' in seedMsg) (m as Record<string, Json>).id = r() < 0.5 ? nextId++ : `f-${nextId++}`;
        const o = m as Record<string, Json>;
        if (op === 2) delete o[['jsonrpc', 'id', 'method', 'params'][Math.floor(r() * 4)]!];
        else if (op === 3) o.jsonrpc = randomJson(r);
        else if (op === 4) o.id = randomJson(r);
        else if (op === 5) o.method = r() < 0.5 ? methods[Math.floor(r() * methods.length)]! : (randomJson(r) as Json);
        else if (op === 6) o.params = randomJson(r);
        else if (op === 7) m = mutateDeep(m, r);
        let text = JSON.stringify(m);
        if (op === 8) text = text.slice(0, Math.floor(r() * text.length));
        if (op === 9 && r() < 0.5) {
          const at = Math.floor(r() * text.length);
          text = text.slice(0, at) + String.fromCharCode(32 + Math.floor(r() * 95)) + text.slice(at);
        }
        body = Buffer.from(text, 'utf8');
      }
      const cls = classify(body);
      // Never end the session (LSP lifecycle) from the fuzzer; request ids stay unique.
      try {
        const o = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
        if (o && typeof o === 'object' && ['initialize', 'shutdown', 'exit', 'uflow/downloadModels'].includes(o.method as string)) continue;
      } catch {
        /* not JSON: fine */
      }
      if (cls.kind === 'request') {
        if (usedIds.has(cls.id!) || String(cls.id).startsWith('ping-') || String(cls.id).startsWith('status-') || cls.id === 'init') continue;
        usedIds.add(cls.id!);
      }
      const mark = c.received.length;
      c.sendRaw(body);
      stats.sent++;
      const ping = `ping-${i}`;
      c.send({ jsonrpc: '2.0', id: ping, method: 'fuzz/ping' });
      await c.until(() => byId(ping).length === 1, 30_000, `the ping after message ${i} (${cls.kind}: ${body.toString('utf8').slice(0, 200)})`);
      const between = c.received.slice(mark).filter((m) => (m as { id?: unknown }).id === null);
      const nullCodes = between.map((m) => (m as { error?: { code?: number } }).error?.code);
      if (cls.kind === 'parse') {
        assert.deepEqual(nullCodes, [-32700], `message ${i} is not JSON: one -32700 with id null (${body.toString('utf8').slice(0, 120)})`);
        stats.parseErrors++;
        stats.answered++;
      } else if (cls.kind === 'invalid') {
        assert.deepEqual(nullCodes, [-32600], `message ${i} is not a valid JSON-RPC message: one -32600 with id null (${body.toString('utf8').slice(0, 200)})`);
        stats.invalidRequests++;
        stats.answered++;
      } else {
        assert.deepEqual(nullCodes, [], `message ${i} (${cls.kind}) must not get an id-null error (${body.toString('utf8').slice(0, 200)})`);
        if (cls.kind === 'request') stats.requests++;
        else stats.ignored++;
      }
      assert.equal(exited, false, `the daemon exited after message ${i}: ${stderr.slice(-2000)}`);
    }
    // Every request got exactly one response with its id (some answer after their ping).
    await c.until(() => [...usedIds].every((id) => byId(id).length >= 1), 60_000, 'answers to every fuzz request');
    for (const id of usedIds) assert.equal(byId(id).length, 1, `request ${String(id)}: exactly one response`);
    stats.answered += usedIds.size;
    // Nothing else: no response to an id we did not send.
    const known = new Set<unknown>([...usedIds, 'init', 'warm', 'status-0', null]);
    for (const m of c.received) {
      const o = m as { id?: unknown; method?: string };
      if (o.method !== undefined) continue; // daemon notifications (uflow/log)
      if (typeof o.id === 'string' && o.id.startsWith('ping-')) continue;
      assert.ok(known.has(o.id), `a response to an id never sent: ${JSON.stringify(m).slice(0, 200)}`);
    }
    // End every job the fuzz started (a mutated uflow/train can be a valid one, a real training of
    // many epochs): cancel what still runs or waits, wait until nothing does, then compare tensors.
    let after: { memory: { tensors: number }; pid: number; jobs: Array<{ jobId: string; state: string }> } | undefined;
    const cancelled = new Set<string>();
    const ended = Date.now() + 120_000;
    for (let k = 1; ; k++) {
      const sid = `status-${k}`;
      known.add(sid);
      c.send({ jsonrpc: '2.0', id: sid, method: 'uflow/status' });
      await c.until(() => byId(sid).length === 1, 30_000, 'status after the fuzz');
      after = (byId(sid)[0] as { result: typeof after }).result;
      const live = after!.jobs.filter((j) => j.state === 'running' || j.state === 'queued');
      if (!live.length) break;
      assert.ok(Date.now() < ended, `jobs still running 2 min after they were cancelled: ${JSON.stringify(live)}`);
      for (const j of live) {
        if (cancelled.has(j.jobId)) continue;
        cancelled.add(j.jobId);
        const cid = `status-cancel-${j.jobId}`;
        known.add(cid);
        c.send({ jsonrpc: '2.0', id: cid, method: 'uflow/cancel', params: { jobId: j.jobId } });
      }
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.equal(exited, false, 'the daemon is still running');
    assert.equal(after!.pid, before.pid, 'the same daemon process answers: 0 restarts');
    assert.equal(after!.memory.tensors, before.memory.tensors, `tensors before ${before.memory.tensors}, after ${after!.memory.tensors}`);
    const figures = { seed, ...stats, jobsCancelledAtTheEnd: cancelled.size, daemonRestarts: 0, tensorsBefore: before.memory.tensors, tensorsAfter: after!.memory.tensors, seconds: (Date.now() - t0) / 1000 };
    console.log(`fuzz figures: ${JSON.stringify(figures)}`);
    writeFileSync(join(tmpdir(), 'uflow-fuzz-figures.json'), JSON.stringify(figures, null, 2) + '\n');
    assert.ok(stats.sent >= Math.min(count, 1000), `sent ${stats.sent} messages in ${seconds} s`);
    assert.ok(stats.parseErrors > 0 && stats.invalidRequests > 0 && stats.requests > 0 && stats.ignored > 0, `every kind of message was sent: ${JSON.stringify(stats)}`);
  } finally {
    proc.kill('SIGKILL');
    cleanup();
  }
});
