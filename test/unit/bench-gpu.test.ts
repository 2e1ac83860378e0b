// npm run bench:gpu on a machine without a GPU: it stops at once, non-zero, saying there is no GPU
// adapter and why (software adapter SwiftShader / none); and the engine's software-adapter rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { softwareAdapter } from '../../models/engine.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const hasNvidia = spawnSync('nvidia-smi', ['-L'], { timeout: 10_000 }).status === 0;

test('software adapters are named, hardware ones pass', () => {
  assert.equal(softwareAdapter({ info: { vendor: 'google', architecture: 'swiftshader', description: 'SwiftShader Device (Subzero)' } }), 'SwiftShader');
  assert.equal(softwareAdapter({ info: { vendor: 'mesa', architecture: '', description: 'llvmpipe (LLVM 15.0.6, 256 bits)' } }), 'llvmpipe (LLVM 15.0.6, 256 bits)');
  assert.equal(softwareAdapter({ info: { vendor: 'x', architecture: 'y' }, isFallbackAdapter: true }), 'y');
  assert.equal(softwareAdapter({ info: { vendor: 'nvidia', architecture: 'hopper', description: 'NVIDIA H100 80GB HBM3' } }), undefined);
  assert.equal(softwareAdapter({}), undefined);
});

function benchGpu(env: Record<string, string>): { status: number | null; out: string; ms: number } {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'bench-gpu.mjs')], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, UFLOW_GPU_NO_INSTALL: '1', ...env } });
  return { status: r.status, out: `${r.stdout}${r.stderr}`, ms: Date.now() - t0 };
}

test('bench:gpu refuses a software adapter at once, non-zero, naming it', { skip: hasNvidia ? 'this machine has an NVIDIA GPU: bench:gpu would go on with the CUDA paths' : false }, () => {
  const r = benchGpu({ UFLOW_GPU_ADAPTER_JSON: JSON.stringify({ kind: 'software', name: 'SwiftShader', architecture: 'swiftshader' }) });
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /FAILED: no GPU adapter \(software adapter SwiftShader\), and no NVIDIA GPU/);
  assert.ok(r.ms < 20_000, `took ${r.ms} ms`);
  const none = benchGpu({ UFLOW_GPU_ADAPTER_JSON: JSON.stringify({ kind: 'none', why: 'Dawn found no WebGPU adapter' }) });
  assert.equal(none.status, 1, none.out);
  assert.match(none.out, /no GPU adapter \(none: Dawn found no WebGPU adapter\)/);
});

test('bench:gpu with the real adapter probe on this machine: no GPU adapter, exit 1, in seconds', { skip: hasNvidia ? 'this machine has an NVIDIA GPU' : false }, (t) => {
  const probe = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'bench', 'gpu-adapter.ts')], { cwd: root, encoding: 'utf8', timeout: 30_000 });
  const answer = JSON.parse(probe.stdout.trim().split('\n').pop() ?? '{}') as { kind?: string };
  assert.ok(['hardware', 'software', 'none'].includes(answer.kind ?? ''), probe.stdout + probe.stderr);
  if (answer.kind === 'hardware') return t.skip('this machine has a hardware WebGPU adapter: bench:gpu would run the whole check');
  const r = benchGpu({});
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /bench:gpu: FAILED: no GPU adapter \((software adapter \S+|none: .+)\), and no NVIDIA GPU/);
  assert.ok(r.ms < 20_000, `took ${r.ms} ms`);
});
