/**
 * Fault catalogue: the daemon over JSON-RPC (one real daemon on stdio for the category; each
 * case's folder joins the session's workspace folders). Malformed and invalid messages get the
 * JSON-RPC 2.0 error with id null; bad requests an error naming the parameter or path; dataset
 * faults behave as in the CLI (report notification, refusal, --allowMaskProblems); a clean
 * evaluation is accepted.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after } from 'node:test';
import { pathToFileURL } from 'node:url';
import { requireBuild, SERVER } from '../daemon/harness.js';
import { RawClient } from '../daemon/raw-client.js';
import { category, type FaultCase, type Observed } from './catalogue.js';
import { baseWithRun, hugePng, onlyRun, write } from './helpers.js';

let proc: ChildProcess | undefined;
let client: RawClient | undefined;
let nextId = 1;

type Msg = { id?: unknown; method?: string; params?: any; result?: any; error?: { code: number; message: string } }; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The category's daemon, started on first use with the category folder allowed. */
async function daemon(dir: string): Promise<RawClient> {
  if (client) return client;
  requireBuild();
  proc = spawn(process.execPath, [SERVER, '--stdio', '--allow', dirname(dir)], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, UFLOW_BACKEND: 'wasm', UFLOW_TRAIN_WORKERS: '1' } });
  proc.stderr!.on('data', () => undefined);
  client = new RawClient(proc);
  const r = await request(client, 'initialize', { processId: null, rootUri: null, capabilities: {}, workspaceFolders: [] });
  assert.ok(r.result, JSON.stringify(r));
  client.send({ jsonrpc: '2.0', method: 'initialized', params: {} });
  return client;
}
after(() => proc?.kill('SIGKILL'));

async function request(c: RawClient, method: string, params?: unknown): Promise<Msg> {
  const id = nextId++;
  c.send({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
  await c.until(() => c.received.some((m) => (m as Msg).id === id), 120_000, `the answer to ${method}`);
  return c.received.find((m) => (m as Msg).id === id) as Msg;
}

/** Sends a raw body; the id-null answer that follows it (a ping marks the end). */
async function raw(c: RawClient, body: string): Promise<Msg[]> {
  const mark = c.received.length;
  c.sendRaw(Buffer.from(body, 'utf8'));
  const ping = `ping-${nextId++}`;
  c.send({ jsonrpc: '2.0', id: ping, method: 'fault/ping' });
  await c.until(() => c.received.some((m) => (m as Msg).id === ping), 30_000, 'the ping');
  return c.received.slice(mark).filter((m) => (m as Msg).id === null) as Msg[];
}

const notes = (c: RawClient, method: string, from: number) => c.received.slice(from).filter((m) => (m as Msg).method === method) as Msg[];

let joined: string | undefined;
/** Makes the case folder the session's workspace folder (its .uflow holds the case's runs), in place of the previous case's. */
function join_(c: RawClient, dir: string): void {
  const removed = joined ? [{ uri: pathToFileURL(joined).href, name: 'case' }] : [];
  c.send({ jsonrpc: '2.0', method: 'workspace/didChangeWorkspaceFolders', params: { event: { added: [{ uri: pathToFileURL(dir).href, name: 'case' }], removed } } });
  joined = dir;
}

function answer(m: Msg, from: number, c: RawClient): Observed {
  const reports = notes(c, 'uflow/datasetReport', from);
  const text = `${m.error ? `${m.error.code} ${m.error.message}` : JSON.stringify(m.result).slice(0, 2000)}\n${reports.map((n) => n.params.text).join('\n')}`;
  if (m.error) return { outcome: 'refuse', text, detail: m };
  const warned = reports.some((n) => n.params.report.issues.length > 0);
  return { outcome: warned ? 'warn' : 'accept', text, detail: m };
}

const data = (dir: string) => join(dir, 'data', 'grid');
const cases: FaultCase[] = [];

const MALFORMED: Array<[id: string, body: string, code: number]> = [
  ['not JSON', '{"jsonrpc": "2.0", "id": 1, "method": ', -32700],
  ['binary garbage', '\u0000\u0001\u00ff{{', -32700],
  ['an empty batch', '[]', -32600],
  ['a batch of one request', '[{"jsonrpc":"2.0","id":5,"method":"uflow/status"}]', -32600],
  ['jsonrpc "1.0"', '{"jsonrpc":"1.0","id":5,"method":"uflow/status"}', -32600],
  ['no jsonrpc member', '{"id":5,"method":"uflow/status"}', -32600],
  ['an object as id', '{"jsonrpc":"2.0","id":{"a":1},"method":"uflow/status"}', -32600],
  ['a string as params', '{"jsonrpc":"2.0","id":5,"method":"uflow/status","params":"x"}', -32600],
  ['a number as method', '{"jsonrpc":"2.0","id":5,"method":5}', -32600],
  ['a response with both result and error', '{"jsonrpc":"2.0","id":5,"result":1,"error":{"code":1,"message":"m"}}', -32600],
  ['a bare string', '"hello"', -32600],
];
for (const [id, body, code] of MALFORMED) {
  cases.push({
    name: `${id}: error ${code} with id null`,
    expect: 'refuse',
    match: code === -32700 ? /^-32700 Parse error/ : /^-32600 Invalid Request/,
    plant: () => undefined,
    act: async (dir) => {
      const c = await daemon(dir);
      const got = await raw(c, body);
      assert.equal(got.length, 1, JSON.stringify(got));
      assert.equal(got[0]!.error!.code, code);
      return { outcome: 'refuse', text: `${got[0]!.error!.code} ${got[0]!.error!.message}` };
    },
  });
}

const BAD_REQUESTS: Array<{ id: string; method: string; params: (dir: string) => unknown; code: number; names: (dir: string) => string[] }> = [
  { id: 'an unknown method', method: 'uflow/nonesuch', params: () => ({}), code: -32601, names: () => ['uflow/nonesuch'] },
  { id: 'train outside the folders (/etc)', method: 'uflow/train', params: () => ({ datasetPath: '/etc', model: 'uflow' }), code: -32001, names: () => ['/etc'] },
  { id: 'train with a tfjs: backbone in /etc', method: 'uflow/train', params: (dir) => ({ datasetPath: data(dir), model: 'uflow', config: { model: { backbone: 'tfjs:/etc' } } }), code: -32001, names: () => ['/etc', 'params.config.model.backbone'] },
  { id: 'train with a tfjs: backbone reached through ..', method: 'uflow/train', params: (dir) => ({ datasetPath: data(dir), model: 'uflow', config: { model: { backbone: `tfjs:${dir}/../../../etc` } } }), code: -32001, names: () => ['/etc'] },
  { id: 'train without a model', method: 'uflow/train', params: (dir) => ({ datasetPath: data(dir) }), code: -32602, names: () => ['params.model'] },
  { id: 'train with a relative path', method: 'uflow/train', params: () => ({ datasetPath: 'data/grid', model: 'uflow' }), code: -32602, names: () => ['params.datasetPath'] },
  { id: 'inspectDataset on a file', method: 'uflow/inspectDataset', params: (dir) => ({ path: join(data(dir), 'train', 'good', '000.png') }), code: -32003, names: (dir) => [join(data(dir), 'train', 'good', '000.png'), 'not a folder'] },
  { id: 'evaluate an unknown run', method: 'uflow/evaluate', params: () => ({ runId: 'grid-uflow-20000101-000000-zzzz' }), code: -32002, names: () => ['grid-uflow-20000101-000000-zzzz'] },
];
for (const b of BAD_REQUESTS) {
  cases.push({
    name: `${b.id}: error ${b.code} naming it`,
    expect: 'refuse',
    names: b.names,
    match: new RegExp(`^${b.code} `),
    plant: () => undefined,
    act: async (dir) => {
      const c = await daemon(dir);
      join_(c, dir);
      const from = c.received.length;
      return answer(await request(c, b.method, b.params(dir)), from, c);
    },
  });
}

/** Dataset faults through uflow/evaluate and uflow/train. */
const img = (dir: string) => join(data(dir), 'test', 'spot', '000.png');
const gt = (dir: string) => join(data(dir), 'ground_truth', 'spot', '000_mask.png');
const DATASET: Array<{ id: string; expect: 'refuse' | 'warn' | 'accept'; plant(dir: string): void; act: 'evaluate' | 'evaluate-allow' | 'train' | 'predict'; names?: (dir: string) => string[]; image?: (dir: string) => string }> = [
  { id: 'evaluate with a missing mask is refused naming the image', expect: 'refuse', plant: (dir) => rmSync(gt(dir)), act: 'evaluate', names: (dir) => [img(dir), 'allow-mask-problems'] },
  { id: 'evaluate with a mis-sized mask is refused naming the mask', expect: 'refuse', plant: (dir) => writeFileSync(gt(dir), readFileSync(join(data(dir), 'train', 'good', '000.png')).subarray(0, 0)), act: 'evaluate', names: (dir) => [gt(dir)] },
  { id: 'evaluate allowMaskProblems with a missing mask: done without it, listed', expect: 'warn', plant: (dir) => rmSync(gt(dir)), act: 'evaluate-allow', names: (dir) => [`excluded: 1 image(s): ${img(dir)}`] },
  { id: 'evaluate a clean dataset', expect: 'accept', plant: () => undefined, act: 'evaluate' },
  { id: 'train with a README.txt in train/good: warned, trained', expect: 'warn', plant: (dir) => write(join(data(dir), 'train', 'good', 'README.txt'), 'x'), act: 'train', names: (dir) => [join(data(dir), 'train', 'good', 'README.txt')] },
  {
    id: 'train with a truncated image: the job fails naming it',
    expect: 'refuse',
    plant: (dir) => write(join(data(dir), 'train', 'good', '900.png'), readFileSync(join(data(dir), 'train', 'good', '000.png')).subarray(0, 40)),
    act: 'train',
    names: (dir) => [join(data(dir), 'train', 'good', '900.png')],
  },
  { id: 'predict a 30000x30000 image: too large, the limit named', expect: 'refuse', plant: (dir) => write(join(dir, 'huge.png'), hugePng()), act: 'predict', image: (dir) => join(dir, 'huge.png'), names: (dir) => [join(dir, 'huge.png'), 'UFLOW_MAX_IMAGE_PIXELS'] },
  { id: 'predict a truncated image', expect: 'refuse', plant: (dir) => write(join(dir, 'bad.png'), readFileSync(img(dir)).subarray(0, 50)), act: 'predict', image: (dir) => join(dir, 'bad.png'), names: (dir) => [join(dir, 'bad.png')] },
];
for (const f of DATASET) {
  cases.push({
    name: f.id,
    expect: f.expect,
    names: f.names,
    plant: f.plant,
    act: async (dir) => {
      const c = await daemon(dir);
      join_(c, dir);
      const from = c.received.length;
      const runId = onlyRun(dir);
      if (f.act === 'predict') return answer(await request(c, 'uflow/predict', { imagePath: f.image!(dir), runId }), from, c);
      if (f.act !== 'train') return answer(await request(c, 'uflow/evaluate', { runId, datasetPath: data(dir), ...(f.act === 'evaluate-allow' ? { allowMaskProblems: true } : {}) }), from, c);
      const res = await request(c, 'uflow/train', { datasetPath: data(dir), model: 'uflow', config: { model: { backbone: 'builtin:filters', input_size: 32, flow_steps: 1 }, trainer: { epochs: 1, batch_train: 2, validate_every: 0 } } });
      if (res.error) return answer(res, from, c);
      const jobId = res.result.jobs[0].jobId;
      await c.until(() => notes(c, 'uflow/jobEnded', from).some((n) => n.params.jobId === jobId), 120_000, 'jobEnded');
      const end = notes(c, 'uflow/jobEnded', from).find((n) => n.params.jobId === jobId)!;
      const seen = answer(res, from, c);
      if (end.params.state !== 'done') return { outcome: 'refuse', text: `${end.params.error}\n${seen.text}` };
      return seen;
    },
  });
}

// One daemon for the category: cases one at a time, so that id-null answers belong to their case.
category('rpc', cases, { base: async (dir) => void (await baseWithRun(dir)), timeout: 180_000, concurrency: 1 });
