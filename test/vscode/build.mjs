// Bundles the extension-host suites (test/vscode/suite/*.ts) to CommonJS under
// .cache/vscode-test/suite/ (git-ignored); `vscode` and `mocha` stay external.
import * as esbuild from 'esbuild';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const outDir = join(root, '.cache', 'vscode-test', 'suite');

export async function buildSuites() {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const src = join(root, 'test', 'vscode', 'suite');
  const entries = readdirSync(src).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
  await esbuild.build({
    absWorkingDir: root,
    entryPoints: entries.map((f) => join(src, f)),
    outdir: outDir,
    outExtension: { '.js': '.cjs' },
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    sourcemap: 'inline',
    external: ['vscode', 'mocha', 'playwright-core', 'sharp'],
    logLevel: 'warning',
  });
  return join(outDir, 'index.cjs');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(await buildSuites());
