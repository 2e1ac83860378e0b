#!/usr/bin/env node
/**
 * `npm run bench:gpu`: the GPU check for a machine with a GPU and nothing but this repository (and,
 * where it can be reached, the npm registry). In about 5 minutes at most (each step time-boxed):
 *
 *  1. installs what it needs: `npm ci` when node_modules is missing; the optional `webgpu` (Dawn)
 *     and `@tensorflow/tfjs-backend-webgpu` packages when npm ci left them out;
 *  2. asks Dawn for its WebGPU adapter and fails loudly on a software one (SwiftShader, lavapipe,
 *     llvmpipe, a fallback adapter) or none; on a machine with no NVIDIA GPU either it stops there,
 *     in a few seconds, with "no GPU adapter (…)" and exit 1;
 *  3. checks `python3 -c 'import torch; torch.cuda.is_available()'`: when it says yes, the benches'
 *     PyTorch references run on CUDA with that python3 (ratios against PyTorch CUDA);
 *  4. onnxruntime-node's CUDA provider: .npmrc skips its download, so its install script is run
 *     with ONNXRUNTIME_NODE_INSTALL=cuda12 (it fetches from NuGet, not npm: it may fail offline);
 *  5. the golden suite on webgpu (UFLOW_GOLDEN_BACKENDS=webgpu) with UFLOW_GOLDEN_DIR, or
 *     ../shared/golden, or shared/golden; skipped with a message when none is there;
 *  6. the benches train-step, epoch and onnx-vs-tfjs on webgpu (onnxruntime on CUDA where its
 *     provider loads), then train-step and epoch on tensorflow-gpu where @tensorflow/tfjs-node-gpu
 *     loads (its install downloads libtensorflow from Google and needs CUDA 11.2 + cuDNN 8.1);
 *     figures go to bench/results-gpu.json (`npm run bench:table -- --results bench/results-gpu.json --print`).
 *
 * Exit 0 when the adapter is hardware, the golden suite passed (or was skipped for want of data)
 * and the webgpu benches ran; 1 otherwise. UFLOW_GPU_BUDGET_S changes the 290 s budget.
 * For tests: UFLOW_GPU_NO_INSTALL=1 installs nothing; UFLOW_GPU_ADAPTER_JSON replaces the probe's answer.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const budget = Number(process.env.UFLOW_GPU_BUDGET_S ?? 290);
const t0 = Date.now();
const left = () => budget - (Date.now() - t0) / 1000;
const summary = [];
const note = (line) => {
  summary.push(line);
  console.log(`bench:gpu: ${line}`);
};
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const versionOf = (name) => pkg.optionalDependencies?.[name] ?? pkg.dependencies?.[name] ?? 'latest';

/** Runs a command in the repository, time-boxed by its own limit and what is left of the budget. */
function run(what, cmd, args, { timeoutS, env = {}, quiet = false } = {}) {
  const limit = Math.min(timeoutS, left());
  if (limit < 5) {
    note(`${what}: skipped, the ${budget} s budget is spent`);
    return { ok: false, skipped: true, out: '' };
  }
  const s = Date.now();
  const r = spawnSync(cmd, args, {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    stdio: quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit',
    timeout: limit * 1000,
    killSignal: 'SIGKILL',
    maxBuffer: 1 << 26,
  });
  const secs = ((Date.now() - s) / 1000).toFixed(0);
  const timedOut = r.error?.code === 'ETIMEDOUT' || (r.signal === 'SIGKILL' && Date.now() - s >= limit * 1000 - 50);
  const ok = r.status === 0;
  const how = ok ? 'ok' : timedOut ? `timed out after ${limit.toFixed(0)} s` : r.error ? r.error.message : `exit ${r.status ?? r.signal}`;
  if (!quiet) note(`${what}: ${how} (${secs} s)`);
  return { ok, timedOut, how, out: `${r.stdout ?? ''}${r.stderr ?? ''}`, stdout: r.stdout ?? '' };
}

const resolvable = (name) => {
  try {
    createRequire(join(root, 'noop.js')).resolve(name);
    return true;
  } catch {
    return false;
  }
};
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const tsx = ['--import', 'tsx'];

// 1. Install what is needed (UFLOW_GPU_NO_INSTALL=1 skips it: the tests do).
const install = process.env.UFLOW_GPU_NO_INSTALL !== '1';
if (install && !existsSync(join(root, 'node_modules', '.package-lock.json'))) {
  if (!run('npm ci', npm, ['ci', '--no-audit', '--no-fund'], { timeoutS: 150 }).ok) {
    note('cannot go on without the dependencies (npm ci failed: see above)');
    process.exit(1);
  }
}
for (const name of ['webgpu', '@tensorflow/tfjs-backend-webgpu']) {
  if (install && !resolvable(name)) run(`npm install ${name}`, npm, ['install', '--no-save', '--no-audit', '--no-fund', `${name}@${versionOf(name)}`], { timeoutS: 60 });
}
// The NVIDIA driver's Vulkan ICD where the lent machines keep it.
const nvIcd = '/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json';
if (!process.env.VK_DRIVER_FILES && !process.env.VK_ICD_FILENAMES && existsSync(nvIcd)) process.env.VK_DRIVER_FILES = nvIcd;

// 2. The WebGPU adapter: hardware, or fail loudly.
// UFLOW_GPU_ADAPTER_JSON stands in for the probe's answer (the tests use it for a software adapter).
const probe = process.env.UFLOW_GPU_ADAPTER_JSON
  ? { stdout: process.env.UFLOW_GPU_ADAPTER_JSON, how: 'given', out: '' }
  : run('WebGPU adapter probe', process.execPath, [...tsx, 'bench/gpu-adapter.ts'], { timeoutS: 40, quiet: true });
let adapter;
try {
  adapter = JSON.parse(probe.stdout.trim().split('\n').pop() ?? '');
} catch {
  adapter = { kind: 'none', why: `the probe printed no answer (${probe.how}): ${probe.out.trim().split('\n').slice(-2).join(' | ')}` };
}
const hardware = adapter.kind === 'hardware';
if (hardware) note(`WebGPU adapter: ${adapter.name} (hardware)`);
else {
  const what = adapter.kind === 'software' ? `software adapter ${adapter.name}` : `none: ${adapter.why}`;
  note(`no GPU adapter (${what})${adapter.kind === 'software' ? ': WebGPU would run on the CPU, slower than wasm; this is no GPU check' : ''}`);
  const smi = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 15_000 });
  if (smi.status !== 0) {
    console.error(`\nbench:gpu: FAILED: no GPU adapter (${what}), and no NVIDIA GPU (nvidia-smi ${smi.error ? 'not found' : `exit ${smi.status}`}). Run this on a machine with a GPU.`);
    process.exit(1);
  }
  note(`nvidia-smi sees ${smi.stdout.trim().split('\n').join('; ')}: going on with the CUDA paths; the webgpu steps are skipped (a Vulkan loader libvulkan1 and the driver's ICD would enable them)`);
}

// 3. PyTorch CUDA for the references.
const refEnv = {};
const torch = run('PyTorch CUDA check', 'python3', ['-c', 'import sys, torch; print(torch.__version__, torch.cuda.is_available()); sys.exit(0 if torch.cuda.is_available() else 1)'], { timeoutS: 60, quiet: true });
if (torch.ok) {
  const py = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).stdout.trim();
  Object.assign(refEnv, { UFLOW_BENCH_PYTHON: py, UFLOW_BENCH_TORCH_DEVICE: 'cuda' });
  note(`PyTorch ${torch.stdout.trim().split(' ')[0]} with CUDA (${py}): ratios against PyTorch CUDA`);
} else note(`no PyTorch CUDA (${torch.stdout.trim() || torch.out.trim().split('\n').pop() || torch.how}): the references run on PyTorch CPU where /usr/bin/python3 has torch`);

// 4. onnxruntime-node's CUDA provider.
const ortBin = join(root, 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', process.platform, process.arch);
if (install && process.platform === 'linux' && process.arch === 'x64' && !existsSync(join(ortBin, 'libonnxruntime_providers_cuda.so'))) {
  run('onnxruntime-node CUDA provider install (ONNXRUNTIME_NODE_INSTALL=cuda12)', process.execPath, [join(root, 'node_modules', 'onnxruntime-node', 'script', 'install.js')], { timeoutS: 60, env: { ONNXRUNTIME_NODE_INSTALL: 'cuda12' } });
}
const ortCuda = existsSync(join(ortBin, 'libonnxruntime_providers_cuda.so'));
note(`onnxruntime-node CUDA provider ${ortCuda ? 'present' : 'absent: onnx-vs-tfjs runs onnxruntime on CPU'}`);

const benchEnv = { ...refEnv, UFLOW_BENCH_RESULTS: join(root, 'bench', 'results-gpu.json'), ...(ortCuda ? { UFLOW_ORT_PROVIDERS: 'cuda' } : {}) };
const benchArgs = ['--', '--steps', '5', '--warmup', '2', '--epochs', '2'];
let benchOk = false;
let goldenOk = true;
if (hardware) {
  // 5. Golden suite on webgpu.
  const golden = [process.env.UFLOW_GOLDEN_DIR, join(root, '..', 'shared', 'golden'), join(root, 'shared', 'golden')].find((d) => d && existsSync(d));
  if (!golden) note(`golden suite skipped: no golden data (set UFLOW_GOLDEN_DIR, or put it at ../shared/golden or shared/golden)`);
  else goldenOk = run(`golden suite on webgpu (${golden})`, process.execPath, ['test/run.mjs', 'golden'], { timeoutS: 100, env: { UFLOW_GOLDEN_BACKENDS: 'webgpu', UFLOW_GOLDEN_DIR: golden } }).ok;
  // 6. The benches on webgpu.
  benchOk = run('benches on webgpu', process.execPath, [...tsx, 'bench/run.ts', 'train-step', 'epoch', 'onnx-vs-tfjs', ...benchArgs], { timeoutS: 100, env: { ...benchEnv, UFLOW_BACKEND: 'webgpu' } }).ok;
} else if (ortCuda) {
  run('onnx-vs-tfjs (onnxruntime CUDA against tfjs wasm)', process.execPath, [...tsx, 'bench/run.ts', 'onnx-vs-tfjs', ...benchArgs], { timeoutS: 60, env: { ...benchEnv, UFLOW_BACKEND: 'wasm' } });
}

// tensorflow-gpu where it loads.
const tfGpuLoads = () => run('load @tensorflow/tfjs-node-gpu', process.execPath, ['-e', "require('@tensorflow/tfjs-node-gpu')"], { timeoutS: 60, quiet: true });
let tf = tfGpuLoads();
if (install && !tf.ok && !tf.skipped) {
  run('npm install @tensorflow/tfjs-node-gpu', npm, ['install', '--no-save', '--no-audit', '--no-fund', `@tensorflow/tfjs-node-gpu@${versionOf('@tensorflow/tfjs-node-gpu')}`], { timeoutS: 90 });
  tf = tfGpuLoads();
}
if (tf.ok) run('benches on tensorflow-gpu', process.execPath, [...tsx, 'bench/run.ts', 'train-step', 'epoch', ...benchArgs], { timeoutS: 90, env: { ...benchEnv, UFLOW_BACKEND: 'tensorflow-gpu' } });
else if (!tf.skipped) note(`tensorflow-gpu not benched: @tensorflow/tfjs-node-gpu does not load (${tf.out.trim().split('\n').find((l) => /Error|Cannot/.test(l)) ?? tf.how})`);

// Ratios against PyTorch CUDA from this run's figures.
const resultsPath = join(root, 'bench', 'results-gpu.json');
if (existsSync(resultsPath)) {
  const entries = JSON.parse(readFileSync(resultsPath, 'utf8')).entries.filter((e) => Date.parse(e.date) >= t0);
  console.log(`\nbench:gpu: figures of this run (${resultsPath}):`);
  for (const e of entries) {
    const ref = e.reference ? ` vs ${e.reference.what} ${e.reference.value.toFixed(2)} ${e.reference.unit}: ${e.ratio.toFixed(2)}×` : '';
    console.log(`  ${e.name} [${e.backend}]: ${e.ours.value.toFixed(2)} ${e.ours.unit}${ref}`);
  }
  if (ortCuda && !entries.some((e) => /cuda/i.test(e.backend))) note('onnxruntime did not run on CUDA (its provider fell back to CPU: see the bench output)');
}
console.log(`\nbench:gpu summary (${((Date.now() - t0) / 1000).toFixed(0)} s):\n${summary.map((l) => `  - ${l}`).join('\n')}`);
process.exit(hardware && goldenOk && benchOk ? 0 : 1);
