/**
 * uflow/predict with a small cache (hovers ask often for the same image), cleared whenever a
 * training ends (a newer run may change the answer).
 */
import * as vscode from 'vscode';
import { Methods, type Prediction, type PredictParams } from '../server/protocol.js';
import type { Daemon } from './daemon.js';

const MAX_ENTRIES = 24;

export class Predictions implements vscode.Disposable {
  private readonly cache = new Map<string, Promise<Prediction>>();
  private readonly sub: vscode.Disposable;

  constructor(private readonly daemon: Daemon) {
    this.sub = daemon.onJobEnded((e) => {
      if (e.kind === 'train') this.cache.clear();
    });
  }

  async predict(imagePath: string, opts: { runId?: string; includeRaw?: boolean } = {}, token?: vscode.CancellationToken): Promise<Prediction> {
    let mtime = 0;
    try {
      mtime = (await vscode.workspace.fs.stat(vscode.Uri.file(imagePath))).mtime;
    } catch {
      /* the daemon will say it is missing */
    }
    const key = `${opts.runId ?? ''}|${imagePath}|${mtime}|${opts.includeRaw ? 1 : 0}`;
    let p = this.cache.get(key);
    if (!p && !opts.includeRaw) {
      // A prediction with raw maps answers a request without them too.
      p = this.cache.get(`${opts.runId ?? ''}|${imagePath}|${mtime}|1`);
    }
    if (!p) {
      const params: PredictParams = { imagePath, runId: opts.runId, includeRaw: opts.includeRaw };
      p = this.daemon.request<Prediction>(Methods.predict, params, token);
      this.cache.set(key, p);
      p.catch(() => this.cache.delete(key));
      while (this.cache.size > MAX_ENTRIES) this.cache.delete(this.cache.keys().next().value!);
    } else {
      // Recency.
      this.cache.delete(key);
      this.cache.set(key, p);
    }
    return p;
  }

  clear(): void {
    this.cache.clear();
  }

  dispose(): void {
    this.sub.dispose();
    this.cache.clear();
  }
}
