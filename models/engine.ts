/**
 * Tensor engine selection. Tries, in order: @tensorflow/tfjs-node-gpu (CUDA), @tensorflow/tfjs-node
 * (native CPU), WebGPU through the `webgpu` package (hardware adapters only), wasm, cpu.
 * `UFLOW_BACKEND` (or an explicit `backend` option) forces one. Reports what it took and why each
 * earlier one was skipped.
 */
import * as tf from '@tensorflow/tfjs-core';
// Named imports, not bare side-effect imports: the backends register themselves on import, and
// bundlers drop a bare import of a package that declares "sideEffects": false.
import { version_cpu } from '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths, version_wasm } from '@tensorflow/tfjs-backend-wasm';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerWasmCopyKernels } from './ops/wasm-copy-kernels.js';

export const BACKENDS = ['tensorflow-gpu', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface EngineInfo {
  backend: BackendName;
  /** tfjs's own name for the backend ('tensorflow', 'webgpu', 'wasm', 'cpu'). */
  tfBackend: string;
  reason: string;
  skipped: Array<{ backend: BackendName; why: string }>;
  device: string;
  tfjsVersion: string;
  versions: Record<string, string>;
}

/** Versions of the engine's packages (for status / doctor). */
export function engineVersions(): Record<string, string> {
  return { tfjs: tf.version_core, 'tfjs-backend-cpu': version_cpu, 'tfjs-backend-wasm': version_wasm };
}

let current: EngineInfo | undefined;

export function engineInfo(): EngineInfo | undefined {
  return current;
}

const requireHere = createRequire(import.meta.url);

/** Extra module directories to search for optional native backends (e.g. the extension's global storage). */
function extraModuleDirs(): string[] {
  const env = process.env.UFLOW_BACKEND_MODULES;
  return env ? env.split(':').filter(Boolean) : [];
}

function requireOptional(name: string): unknown {
  for (const dir of extraModuleDirs()) {
    try {
      return createRequire(join(dir, 'noop.js'))(name);
    } catch {
      /* try the next place */
    }
  }
  return requireHere(name);
}

/** Where the wasm binaries are: beside the bundle (dist/) or in node_modules. */
export function wasmDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [here, join(here, '..', 'dist')];
  for (const c of candidates) if (existsSync(join(c, 'tfjs-backend-wasm-simd.wasm'))) return c + '/';
  try {
    return dirname(requireHere.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm')) + '/';
  } catch {
    return here + '/';
  }
}

async function tryNative(gpu: boolean): Promise<string> {
  const pkg = gpu ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  try {
    requireOptional(pkg);
  } catch (e) {
    const msg = (e as Error).message.split('\n')[0] ?? '';
    if (/Cannot find module '@tensorflow\/tfjs-node/.test(msg)) throw new Error(`${pkg} is not installed`);
    throw new Error(`${pkg} is installed but failed to load: ${msg}`);
  }
  if (!(await tf.setBackend('tensorflow'))) throw new Error(`${pkg} loaded but its backend did not initialise`);
  return gpu ? 'CUDA GPU (TensorFlow native)' : 'CPU (TensorFlow native)';
}

/** On Linux Dawn needs the Vulkan loader; without it, it only prints a warning and finds nothing. */
export function vulkanLoaderPresent(): boolean {
  if (process.platform !== 'linux') return true;
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'];
  return dirs.some((d) => existsSync(join(d, 'libvulkan.so.1')));
}

export interface WebgpuAdapterLike {
  info?: { architecture?: string; vendor?: string; description?: string; device?: string };
  isFallbackAdapter?: boolean;
}

/** The software renderer's name when a WebGPU adapter is one (SwiftShader, lavapipe, llvmpipe, a fallback adapter); undefined for hardware. */
export function softwareAdapter(adapter: WebgpuAdapterLike): string | undefined {
  const arch = adapter.info?.architecture ?? '';
  const text = `${arch} ${adapter.info?.description ?? ''} ${adapter.info?.device ?? ''}`;
  const m = /swiftshader|lavapipe|llvmpipe|software/i.exec(text);
  if (m) return m[0].toLowerCase() === 'swiftshader' ? 'SwiftShader' : arch || adapter.info?.description || m[0];
  return adapter.isFallbackAdapter ? arch || adapter.info?.description || 'fallback adapter' : undefined;
}

async function tryWebgpu(): Promise<string> {
  if (!vulkanLoaderPresent()) throw new Error('no Vulkan loader (libvulkan.so.1) on this machine, so no WebGPU adapter');
  let webgpu: { create: (a: string[]) => unknown; globals: Record<string, unknown> };
  try {
    webgpu = requireOptional('webgpu') as typeof webgpu;
  } catch (e) {
    throw new Error(`the webgpu package is not available (${(e as Error).message.split('\n')[0]})`);
  }
  Object.assign(globalThis, webgpu.globals);
  const gpu = webgpu.create([]) as { requestAdapter(): Promise<null | WebgpuAdapterLike> };
  const adapter = await gpu.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter');
  const arch = adapter.info?.architecture ?? '';
  const software = softwareAdapter(adapter);
  if (software) throw new Error(`the WebGPU adapter is a software renderer (${software}): slower than wasm`);
  (globalThis as { navigator?: unknown }).navigator = { gpu };
  try {
    requireOptional('@tensorflow/tfjs-backend-webgpu');
  } catch (e) {
    throw new Error(`@tensorflow/tfjs-backend-webgpu is not available (${(e as Error).message.split('\n')[0]})`);
  }
  if (!(await tf.setBackend('webgpu'))) throw new Error('the webgpu backend did not initialise');
  return `WebGPU ${adapter.info?.vendor ?? ''} ${arch}`.trim();
}

async function tryWasm(): Promise<string> {
  setWasmPaths(wasmDir());
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not initialise');
  // Heap-copying Slice/SplitV/Concat (models/ops/wasm-copy-kernels.ts); UFLOW_WASM_COPY_KERNELS=0
  // keeps the stock ones (for benchmarks comparing the two).
  if (process.env.UFLOW_WASM_COPY_KERNELS !== '0') registerWasmCopyKernels();
  return 'CPU (WebAssembly SIMD, one thread)';
}

async function tryCpu(): Promise<string> {
  if (!(await tf.setBackend('cpu'))) throw new Error('the cpu backend did not initialise');
  return 'CPU (pure JavaScript)';
}

const TRY: Record<BackendName, () => Promise<string>> = {
  'tensorflow-gpu': () => tryNative(true),
  tensorflow: () => tryNative(false),
  webgpu: tryWebgpu,
  wasm: tryWasm,
  cpu: tryCpu,
};

export function parseBackend(name: string): BackendName {
  if ((BACKENDS as readonly string[]).includes(name)) return name as BackendName;
  throw new Error(`unknown backend '${name}': choose one of ${BACKENDS.join(', ')}`);
}

/**
 * Picks and activates a backend. With `backend` (or UFLOW_BACKEND) set, only that one is tried and a
 * failure is an error; otherwise the first that loads wins.
 */
export function initEngine(opts: { backend?: string } = {}): Promise<EngineInfo> {
  // One initialisation at a time: a second caller (the daemon starts the engine at once, and a
  // request may arrive while tf.setBackend is still pending) waits for the first and, when it asks
  // for nothing else, gets the same engine instead of switching backends under it.
  const run = initQueue.then(() => {
    // Without an explicit request the engine in use stays; an explicit one (even the same
    // backend) is set again, so that its reason says it was asked for.
    if (current && !opts.backend) return current;
    return initEngineNow(opts);
  });
  initQueue = run.catch(() => undefined);
  return run;
}

let initQueue: Promise<unknown> = Promise.resolve();

/** Resolves once any initialisation in flight has settled (the engine in use, if any). */
export async function engineSettled(): Promise<EngineInfo | undefined> {
  await initQueue;
  return current;
}

async function initEngineNow(opts: { backend?: string }): Promise<EngineInfo> {
  const forced = opts.backend ?? process.env.UFLOW_BACKEND;
  // Silence tfjs's "Hi there" / platform warnings: we report the backend ourselves.
  tf.env().set('IS_TEST', false);
  const skipped: EngineInfo['skipped'] = [];
  const order: BackendName[] = forced ? [parseBackend(forced)] : [...BACKENDS];
  for (const backend of order) {
    try {
      const device = await TRY[backend]();
      await tf.ready();
      current = {
        backend,
        tfBackend: tf.getBackend(),
        reason: forced ? `forced by ${opts.backend ? '--backend' : 'UFLOW_BACKEND'}` : skipped.length ? `first backend that loaded` : 'best backend',
        skipped,
        device,
        tfjsVersion: tf.version_core,
        versions: engineVersions(),
      };
      return current;
    } catch (e) {
      const why = (e as Error).message;
      if (forced) throw new Error(`backend '${backend}' was requested but cannot be used: ${why}`);
      skipped.push({ backend, why });
    }
  }
  throw new Error(`no tensor backend could be loaded: ${skipped.map((s) => `${s.backend}: ${s.why}`).join('; ')}`);
}

/** Switches to a named backend (tests run the same case on several). */
export async function useBackend(name: BackendName): Promise<EngineInfo> {
  return initEngine({ backend: name });
}

export function describeEngine(info: EngineInfo): string {
  const lines = [`backend: ${info.backend} (${info.reason}) on ${info.device}, tfjs ${info.tfjsVersion}`];
  for (const s of info.skipped) lines.push(`  skipped ${s.backend}: ${s.why}`);
  return lines.join('\n');
}
