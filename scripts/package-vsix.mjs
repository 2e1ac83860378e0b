#!/usr/bin/env node
// `npm run package`: builds the bundles and packs the extension into uflow-vscode-<version>.vsix
// with @vscode/vsce 3.9.2 (`vsce package --no-dependencies`), runnable offline:
//   - dist/ (extension, daemon, CLI, train worker, webviews, the tfjs wasm binaries), media/;
//   - the daemon's native run-time dependency `sharp` (external to the bundle) with its own
//     dependencies and the prebuilt @img/* binaries installed here, vendored as dist/node_modules/,
//     which Node's resolution from dist/server.js finds first;
//   - onnxruntime-node (the inference engine, external too) with onnxruntime-common and only the
//     target's native binary (bin/napi-v6/<platform>/<arch>); for a target it has no binary for it
//     is left out and the daemon runs inference on tfjs (the reason is in its results).
// The package is assembled in a staging folder (.cache/vsix-stage) so dist/ itself is not changed.
// Args: --out <file.vsix> (default: ./uflow-vscode-<version>.vsix), --target <vsce target> (default:
// this platform, e.g. linux-x64), --no-build.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const oi = args.indexOf('--out');
const out = resolve(oi >= 0 ? args[oi + 1] : join(root, `${pkg.name}-${pkg.version}.vsix`));
const started = Date.now();

const run = (cmd, argv, cwd = root) => {
  const r = spawnSync(cmd, argv, { cwd, stdio: 'inherit', env: { ...process.env, npm_config_yes: 'true' } });
  if (r.status !== 0) {
    console.error(`package: ${cmd} ${argv.join(' ')} failed (${r.status})`);
    process.exit(r.status ?? 1);
  }
};

if (!args.includes('--no-build')) run(process.execPath, ['esbuild.mjs']);
for (const f of ['dist/extension.cjs', 'dist/server.js', 'dist/webview/training.js', 'dist/webview/results.js', 'dist/webview/image-view.js']) {
  if (!existsSync(join(root, f))) {
    console.error(`package: ${f} is missing after the build`);
    process.exit(1);
  }
}

// ---------------------------------------------------------------------------------------------
// Staging folder

const stage = join(root, '.cache', 'vsix-stage');
rmSync(stage, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
const copy = (rel) => existsSync(join(root, rel)) && cpSync(join(root, rel), join(stage, rel), { recursive: true, filter: (src) => !src.endsWith('.map') });
for (const rel of ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE', 'LICENSE.md', '.vscodeignore', 'media', 'dist']) copy(rel);
rmSync(join(stage, 'dist', 'node_modules'), { recursive: true, force: true });

// ---------------------------------------------------------------------------------------------
// Native run-time dependencies of the daemon: `sharp` and its closure (installed packages only:
// the @img/* optional dependencies are the prebuilt binaries for this platform).

// The vendored binaries are for this platform: the package says so (VS Code then offers it only
// there). --target overrides (e.g. alpine-x64 on musl).
const ti = args.indexOf('--target');
const target = ti >= 0 ? args[ti + 1] : `${process.platform}-${process.arch}`;
const [targetOs, targetArch] = target.replace(/^alpine-/, 'linux-').split('-');
// onnxruntime-node's own dependencies that only its install script uses (the CUDA download).
const INSTALL_ONLY = new Set(['adm-zip', 'global-agent']);
// Keeps only the target's binary of onnxruntime-node (paths relative to the package).
const ortBinary = (rel) => !rel.startsWith('/node_modules') && (!/^\/bin\/napi-v\d+\/[^/]+\/[^/]+/.test(rel) || rel.startsWith(`/bin/napi-v6/${targetOs}/${targetArch}`));

const RUNTIME = ['sharp', 'onnxruntime-node'];
const vendored = [];
const seen = new Set();
function vendor(name, fromDir) {
  if (INSTALL_ONLY.has(name)) return;
  if (seen.has(name)) return;
  // Node's lookup, done by hand (`exports` maps may hide package.json from require.resolve).
  let pkgJson;
  for (let d = fromDir; ; d = dirname(d)) {
    const candidate = join(d, 'node_modules', name, 'package.json');
    if (existsSync(candidate)) {
      pkgJson = candidate;
      break;
    }
    if (dirname(d) === d) return; // not installed: an optional dependency for another platform
  }
  seen.add(name);
  const dir = dirname(pkgJson);
  const meta = JSON.parse(readFileSync(pkgJson, 'utf8'));
  if (name === 'onnxruntime-node' && !existsSync(join(dir, 'bin', 'napi-v6', targetOs, targetArch))) {
    console.log(`package: onnxruntime-node has no binary for ${target}: left out (inference runs on tfjs there)`);
    return;
  }
  const keep = name === 'onnxruntime-node' ? ortBinary : () => true;
  cpSync(dir, join(stage, 'dist', 'node_modules', name), { recursive: true, dereference: true, filter: (src) => !/\/(docs?|test|\.github)(\/|$)/.test(src.slice(dir.length)) && keep(src.slice(dir.length)) });
  vendored.push(`${name}@${meta.version}`);
  for (const dep of [...Object.keys(meta.dependencies ?? {}), ...Object.keys(meta.optionalDependencies ?? {})]) vendor(dep, dir);
}
for (const name of RUNTIME) vendor(name, root);
if (!vendored.some((v) => v.startsWith('sharp@'))) {
  console.error('package: sharp is not installed (npm install first)');
  process.exit(1);
}
console.log(`package: vendored into dist/node_modules: ${vendored.join(', ')}`);

// The staged manifest: no dependencies to resolve (everything is bundled or vendored).
const staged = JSON.parse(readFileSync(join(stage, 'package.json'), 'utf8'));
delete staged.devDependencies;
writeFileSync(join(stage, 'package.json'), JSON.stringify(staged, null, 2) + '\n');

// ---------------------------------------------------------------------------------------------
// vsce

const vsce = join(root, 'node_modules', '@vscode', 'vsce', 'vsce');
run(process.execPath, [vsce, 'package', '--no-dependencies', '--allow-missing-repository', '--skip-license', '--allow-star-activation', '--target', target, '--out', out], stage);
if (!process.env.UFLOW_KEEP_STAGE) rmSync(stage, { recursive: true, force: true });
const mb = (statSync(out).size / 1024 / 1024).toFixed(1);
console.log(`package: ${out} (${mb} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
