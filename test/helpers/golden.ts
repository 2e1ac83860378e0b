/**
 * Golden test vectors (../shared/golden by default, or UFLOW_GOLDEN_DIR). Tests that need them call
 * `goldenCase(t, name)`, which skips the test with a clear message when the folder is absent.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { readSafetensors, toFloat32, toFloat64, type TensorMap } from '../../models/io/safetensors.js';
import { nchwToNhwcArray } from '../../models/layout.js';
import type { Latent } from '../../models/scores/latent.js';
import { parseBackend, type BackendName } from '../../models/engine.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The backends each golden case runs on: wasm and cpu, or UFLOW_GOLDEN_BACKENDS=webgpu,… (npm run bench:gpu). */
export function goldenBackends(): BackendName[] {
  const env = process.env.UFLOW_GOLDEN_BACKENDS;
  return env ? env.split(',').map((b) => b.trim()).filter(Boolean).map(parseBackend) : ['wasm', 'cpu'];
}

export function goldenRoot(): string {
  return resolve(repoRoot, process.env.UFLOW_GOLDEN_DIR ?? join('..', 'shared', 'golden'));
}

export interface GoldenCase {
  name: string;
  dir: string;
  manifest: Record<string, any>;
  /** safetensors files of the case, keyed by file stem ('data', 'weights', ...). */
  files: Record<string, TensorMap>;
  get(file: string, tensor: string): Float32Array;
  get64(file: string, tensor: string): Float64Array;
  shape(file: string, tensor: string): number[];
}

/** Case directories whose name starts with `prefix` (e.g. '01_'); other case dirs in the same format may be dropped in. */
export function goldenCases(prefix: string): string[] {
  const root = goldenRoot();
  if (!existsSync(root)) return [];
  return readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name.startsWith(prefix) && existsSync(join(root, d.name, 'manifest.json')))
    .map((d) => d.name)
    .sort();
}

export function skipReason(): string | undefined {
  const root = goldenRoot();
  return existsSync(root)
    ? undefined
    : `golden vectors not found at ${root}: set UFLOW_GOLDEN_DIR to the golden folder (../shared/golden) to run this test`;
}

export function loadGolden(name: string): GoldenCase {
  const dir = join(goldenRoot(), name);
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  const files: Record<string, TensorMap> = {};
  for (const f of readdirSync(dir)) {
    if (f.endsWith('.safetensors')) files[f.replace(/\.safetensors$/, '')] = readSafetensors(join(dir, f)).tensors;
  }
  const raw = (file: string, tensor: string) => {
    const t = files[file]?.get(tensor);
    if (!t) throw new Error(`golden ${name}: no tensor '${tensor}' in ${file}.safetensors`);
    return t;
  };
  return {
    name,
    dir,
    manifest,
    files,
    get: (file, tensor) => toFloat32(raw(file, tensor)),
    get64: (file, tensor) => toFloat64(raw(file, tensor)),
    shape: (file, tensor) => raw(file, tensor).shape,
  };
}

/** z_scale1..S (NCHW in the file) → NHWC latents, finest first; and the file they live in. */
export function goldenLatents(g: GoldenCase): { file: string; z: Latent[] } {
  const file = Object.keys(g.files).find((f) => g.files[f]!.has('z_scale1'));
  assert.ok(file, `${g.name}: no z_scale1 tensor`);
  const z: Latent[] = [];
  for (let s = 1; g.files[file]!.has(`z_scale${s}`); s++) {
    const shape = g.shape(file, `z_scale${s}`);
    assert.equal(shape.length, 4, `z_scale${s} must be NCHW`);
    const [n, c, h, w] = shape as [number, number, number, number];
    z.push({ data: nchwToNhwcArray(g.get(file, `z_scale${s}`), shape), shape: [n, h, w, c] });
  }
  return { file, z };
}
