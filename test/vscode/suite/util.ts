// Helpers of the extension-host suites: the extension's API, and waiting on events (never on time).
import * as assert from 'node:assert/strict';
import { join } from 'node:path';
import * as vscode from 'vscode';
import type { UFlowApi } from '../../../extension/extension.js';

export const EXTENSION_ID = 'uflow.uflow-vscode';

export async function api(): Promise<UFlowApi> {
  const ext = vscode.extensions.getExtension<UFlowApi>(EXTENSION_ID);
  assert.ok(ext, `${EXTENSION_ID} is not loaded`);
  const a = ext.isActive ? ext.exports : await ext.activate();
  if (a.daemon.state !== 'ready') await a.daemon.start();
  return a;
}

export function workspaceRoot(): string {
  const f = vscode.workspace.workspaceFolders?.[0];
  assert.ok(f, 'the suites need a workspace folder');
  return f.uri.fsPath;
}

export function demoCategory(): string {
  return join(workspaceRoot(), 'datasets', 'demo_tile');
}

/**
 * Resolves with the first value of `event` that satisfies `pred` (subscribed before `trigger`
 * runs, so nothing is missed). Rejects after `timeoutMs` as a failure bound, not as a wait.
 */
export function waitForEvent<T>(event: vscode.Event<T>, pred: (v: T) => boolean, what: string, timeoutMs = 240_000, trigger?: () => unknown): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.dispose();
      reject(new Error(`timed out waiting for ${what}`));
    }, timeoutMs);
    const sub = event((v) => {
      let ok = false;
      try {
        ok = pred(v);
      } catch (e) {
        clearTimeout(timer);
        sub.dispose();
        reject(e);
        return;
      }
      if (ok) {
        clearTimeout(timer);
        sub.dispose();
        resolve(v);
      }
    });
    if (trigger) {
      Promise.resolve()
        .then(trigger)
        .catch((e) => {
          clearTimeout(timer);
          sub.dispose();
          reject(e);
        });
    }
  });
}

/** Polls a condition on every change of `events` (or immediately): for state that has no event of its own. */
export async function until(cond: () => boolean | Promise<boolean>, events: vscode.Event<unknown>[], what: string, timeoutMs = 60_000): Promise<void> {
  if (await cond()) return;
  await new Promise<void>((resolve, reject) => {
    const subs: vscode.Disposable[] = [];
    const done = (e?: Error) => {
      clearTimeout(timer);
      for (const s of subs) s.dispose();
      if (e) reject(e);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error(`timed out waiting for ${what}`)), timeoutMs);
    for (const ev of events) {
      subs.push(
        ev(async () => {
          try {
            if (await cond()) done();
          } catch (e) {
            done(e as Error);
          }
        }),
      );
    }
  });
}
