// Bundles the extension (CommonJS, for the VS Code extension host), the daemon and the `uflow`
// CLI (ES modules for Node) and the webviews (browser IIFEs) into dist/. The wasm binaries of the
// tfjs wasm backend are copied beside the bundles, where models/engine.ts looks for them, and the
// bundled backbone (assets/backbones: model, licence, notice) to dist/backbones, where
// models/backbones/bundled.ts looks for it.
import * as esbuild from 'esbuild';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');
const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');
mkdirSync(dist, { recursive: true });

// Native or optional packages stay outside the bundles and are resolved at run time.
const nodeExternal = ['sharp', 'onnxruntime-node', '@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu', 'webgpu', '@tensorflow/tfjs-backend-webgpu', 'playwright-core'];
// ES-module bundles that contain CommonJS dependencies need `require`, and the wasm backend's
// Emscripten loader reads `__dirname` / `__filename` under Node.
const esmBanner = [
  "import { createRequire as __uflowCreateRequire } from 'node:module';",
  "import { fileURLToPath as __uflowFileURLToPath } from 'node:url';",
  "import { dirname as __uflowDirname } from 'node:path';",
  'const require = __uflowCreateRequire(import.meta.url);',
  'const __filename = __uflowFileURLToPath(import.meta.url);',
  'const __dirname = __uflowDirname(__filename);',
].join(' ');

const common = { bundle: true, sourcemap: !production, minify: production, logLevel: 'warning', absWorkingDir: root };
const builds = [];
const add = (entry, opts) => existsSync(join(root, entry)) && builds.push({ ...common, entryPoints: [entry], ...opts });

add('extension/extension.ts', { outfile: 'dist/extension.cjs', platform: 'node', format: 'cjs', target: 'node18', external: ['vscode', ...nodeExternal] });
for (const [entry, out] of [['server/server.ts', 'dist/server.js'], ['server/cli.ts', 'dist/cli.js'], ['models/train/worker.ts', 'dist/train-worker.js']]) {
  add(entry, { outfile: out, platform: 'node', format: 'esm', target: 'node20', external: nodeExternal, banner: { js: (out.endsWith('cli.js') ? '#!/usr/bin/env node\n' : '') + esmBanner } });
}
if (existsSync(join(root, 'webview'))) {
  for (const f of readdirSync(join(root, 'webview'))) {
    if (/^[a-z-]+\.ts$/.test(f) && !f.endsWith('.d.ts') && f !== 'shared.ts') {
      add(`webview/${f}`, { outfile: `dist/webview/${f.replace(/\.ts$/, '.js')}`, platform: 'browser', format: 'iife', target: 'es2020' });
    }
  }
}

const wasmSrc = join(root, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist');
for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm']) {
  if (existsSync(join(wasmSrc, f))) copyFileSync(join(wasmSrc, f), join(dist, f));
}

const assets = join(root, 'assets', 'backbones');
if (existsSync(assets)) cpSync(assets, join(dist, 'backbones'), { recursive: true });

if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
  console.log('esbuild: watching');
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}
