/**
 * Which WebGPU adapter Dawn (the `webgpu` package) gives here: prints one JSON line
 * { kind: 'hardware' | 'software' | 'none', name, vendor, architecture, description, why }.
 * scripts/bench-gpu.mjs runs it in a child process with a timeout and refuses anything but a
 * hardware adapter; the classification is the engine's own (models/engine.ts softwareAdapter).
 *
 *   node --import tsx bench/gpu-adapter.ts
 */
import { createRequire } from 'node:module';
import { softwareAdapter, vulkanLoaderPresent, type WebgpuAdapterLike } from '../models/engine.js';

interface Probe {
  kind: 'hardware' | 'software' | 'none';
  name?: string;
  vendor?: string;
  architecture?: string;
  description?: string;
  why?: string;
}

async function probe(): Promise<Probe> {
  if (!vulkanLoaderPresent()) return { kind: 'none', why: 'no Vulkan loader (libvulkan.so.1): install libvulkan1 and the GPU driver\'s Vulkan ICD' };
  let webgpu: { create: (a: string[]) => { requestAdapter(o?: object): Promise<WebgpuAdapterLike | null> }; globals: Record<string, unknown> };
  try {
    webgpu = createRequire(import.meta.url)('webgpu');
  } catch (e) {
    return { kind: 'none', why: `the webgpu package does not load (${(e as Error).message.split('\n')[0]}): npm install webgpu` };
  }
  Object.assign(globalThis, webgpu.globals);
  const gpu = webgpu.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (!adapter) return { kind: 'none', why: 'Dawn found no WebGPU adapter (no Vulkan driver for a GPU, or only one Dawn rejects, such as Mesa lavapipe)' };
  const info = { vendor: adapter.info?.vendor, architecture: adapter.info?.architecture, description: adapter.info?.description };
  const software = softwareAdapter(adapter);
  return software ? { kind: 'software', name: software, ...info } : { kind: 'hardware', name: [info.vendor, info.architecture, info.description].filter(Boolean).join(' '), ...info };
}

const p = await probe().catch((e: Error): Probe => ({ kind: 'none', why: `the adapter probe failed: ${e.message.split('\n')[0]}` }));
console.log(JSON.stringify(p));
// Dawn's instance can keep the event loop alive.
process.exit(0);
