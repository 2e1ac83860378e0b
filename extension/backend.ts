/**
 * Install GPU Backend: npm-installs @tensorflow/tfjs-node-gpu (CUDA) or @tensorflow/tfjs-node
 * (native CPU) into the extension's global storage, then restarts the daemon with
 * UFLOW_BACKEND_MODULES=<dir>/node_modules so models/engine.ts can load it.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { Daemon } from './daemon.js';

const TFJS_VERSION = '4.22.0';

export async function installBackend(daemon: Daemon, choice?: 'gpu' | 'cpu'): Promise<boolean> {
  if (!choice) {
    const picked = await vscode.window.showQuickPick(
      [
        { label: '$(chip) TensorFlow with CUDA', description: '@tensorflow/tfjs-node-gpu', detail: 'NVIDIA GPU on Linux with CUDA 11.2 / cuDNN 8.1', choice: 'gpu' as const },
        { label: '$(server) TensorFlow native CPU', description: '@tensorflow/tfjs-node', detail: 'Much faster than the wasm backend on any x64 machine', choice: 'cpu' as const },
      ],
      { title: 'Install a U-Flow tensor backend', placeHolder: 'Which TensorFlow build?' },
    );
    if (!picked) return false;
    choice = picked.choice;
  }
  const pkg = choice === 'gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
  const dir = daemon.backendDir();
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, 'package.json'))) writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'uflow-backend', private: true }, null, 2));
  const out = daemon.output;
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const ok = await vscode.window.withProgress(
    { location: vscode.ProgressLocation.Notification, title: `Installing ${pkg}`, cancellable: true },
    (progress, token) =>
      new Promise<boolean>((resolve) => {
        out.appendLine(`[extension] npm install ${pkg}@${TFJS_VERSION} in ${dir}`);
        progress.report({ message: 'npm install… (downloads TensorFlow, a few hundred MB)' });
        const child = spawn(npm, ['install', '--no-audit', '--no-fund', '--no-save', `${pkg}@${TFJS_VERSION}`], {
          cwd: dir,
          env: { ...process.env, ELECTRON_RUN_AS_NODE: undefined },
          shell: process.platform === 'win32',
        });
        const onLine = (d: Buffer) => {
          const s = d.toString();
          out.append(s);
          const last = s.trim().split('\n').pop();
          if (last) progress.report({ message: last.slice(0, 120) });
        };
        child.stdout.on('data', onLine);
        child.stderr.on('data', onLine);
        const cancel = token.onCancellationRequested(() => child.kill());
        child.on('error', (e) => {
          out.appendLine(`[extension] npm failed to start: ${e.message}`);
          cancel.dispose();
          resolve(false);
        });
        child.on('close', (code) => {
          cancel.dispose();
          out.appendLine(`[extension] npm exited with ${code}`);
          resolve(code === 0 && !token.isCancellationRequested);
        });
      }),
  );
  if (!ok) {
    const a = await vscode.window.showErrorMessage(`Installing ${pkg} did not complete. The daemon keeps its current backend.`, 'Show Log');
    if (a) out.show();
    return false;
  }
  await daemon.restart();
  const s = daemon.status;
  const backend = s?.engine.backend ?? '?';
  if (/^tensorflow/.test(backend)) void vscode.window.showInformationMessage(`U-Flow now uses ${backend} (${s?.engine.device}).`);
  else {
    const why = s?.engine.skipped.find((k) => /tensorflow/.test(k.backend))?.why;
    void vscode.window.showWarningMessage(`${pkg} installed, but the daemon still uses ${backend}${why ? `: ${why}` : ''}.`, 'Show Log').then((a) => a && out.show());
  }
  return true;
}
