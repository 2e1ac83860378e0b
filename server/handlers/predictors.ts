/**
 * Models kept loaded for `uflow/predict`: an LRU keyed by run, variant (the inference engine asked
 * for: an onnxruntime session and a tfjs model are separate entries) and checkpoint version, evicted by
 * count and by the bytes of their tensors. A model is loaded once per run (and again only when
 * the run's checkpoint changes, e.g. while it trains); an evicted model in use is disposed when its
 * last user releases it.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';

export interface PredictorLike {
  dispose(): void;
  /** Bytes of its tensors, when the predictor knows. */
  readonly bytes?: number;
}

interface Entry<P extends PredictorLike> {
  key: string;
  runId: string;
  version: string;
  predictor?: P;
  loading?: Promise<P>;
  bytes: number;
  refs: number;
  lastUsed: number;
  evicted: boolean;
}

/** The newest modification time of the run's checkpoints: a change means the model must be reloaded. */
export function checkpointVersion(runDirPath: string): string {
  let newest = 0;
  let count = 0;
  try {
    for (const f of readdirSync(runDirPath)) {
      if (!f.endsWith('.safetensors')) continue;
      count++;
      newest = Math.max(newest, statSync(join(runDirPath, f)).mtimeMs);
    }
  } catch {
    /* no folder: version '' */
  }
  return `${count}:${newest}`;
}

export class PredictorCache<P extends PredictorLike = PredictorLike> {
  private readonly entries = new Map<string, Entry<P>>();

  constructor(
    private readonly open: (trainDir: string, runId: string, variant: string) => Promise<P>,
    readonly maxEntries = 4,
    readonly maxBytes = 1024 * 1024 * 1024,
  ) {}

  /** Runs `fn` with the run's loaded model, loading it first when needed. */
  async use<T>(trainDir: string, runId: string, runDirPath: string, fn: (p: P) => Promise<T>, variant = ''): Promise<T> {
    const entry = await this.acquire(trainDir, runId, runDirPath, variant);
    try {
      return await fn(entry.predictor!);
    } finally {
      this.release(entry);
    }
  }

  private async acquire(trainDir: string, runId: string, runDirPath: string, variant: string): Promise<Entry<P>> {
    const version = checkpointVersion(runDirPath);
    const key = `${trainDir}\u0000${runId}\u0000${variant}`;
    let e = this.entries.get(key);
    if (e && e.version !== version && !e.loading) {
      this.evict(e);
      e = undefined;
    }
    if (!e) {
      const entry: Entry<P> = { key, runId, version, bytes: 0, refs: 0, lastUsed: Date.now(), evicted: false };
      const before = tf.memory().numBytes;
      entry.loading = this.open(trainDir, runId, variant).then(
        (p) => {
          entry.predictor = p;
          entry.bytes = typeof p.bytes === 'number' ? p.bytes : Math.max(0, tf.memory().numBytes - before);
          entry.loading = undefined;
          return p;
        },
        (err: unknown) => {
          if (this.entries.get(key) === entry) this.entries.delete(key);
          throw err;
        },
      );
      this.entries.set(key, entry);
      e = entry;
    }
    e.refs++;
    try {
      if (e.loading) await e.loading;
    } catch (err) {
      e.refs--;
      throw err;
    }
    e.lastUsed = Date.now();
    this.trim(e);
    return e;
  }

  private release(e: Entry<P>): void {
    e.refs--;
    e.lastUsed = Date.now();
    if (e.evicted && e.refs === 0) this.disposeEntry(e);
  }

  private evict(e: Entry<P>): void {
    if (this.entries.get(e.key) === e) this.entries.delete(e.key);
    e.evicted = true;
    if (e.refs === 0) this.disposeEntry(e);
  }

  private disposeEntry(e: Entry<P>): void {
    const p = e.predictor;
    e.predictor = undefined;
    try {
      p?.dispose();
    } catch {
      /* already gone */
    }
  }

  /** Evicts least recently used models (never `keep`) until within both limits. */
  private trim(keep: Entry<P>): void {
    const loaded = (): Array<Entry<P>> => [...this.entries.values()].filter((x) => !x.loading);
    const total = (): number => loaded().reduce((s, x) => s + x.bytes, 0);
    for (;;) {
      const list = loaded();
      if (list.length <= this.maxEntries && total() <= this.maxBytes) return;
      const victim = list.filter((x) => x !== keep).sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (!victim) return;
      this.evict(victim);
    }
  }

  /** Drops a run's model (e.g. its folder was deleted). */
  forget(runId: string): void {
    for (const e of [...this.entries.values()]) if (e.runId === runId && !e.loading) this.evict(e);
  }

  clear(): void {
    for (const e of [...this.entries.values()]) if (!e.loading) this.evict(e);
  }

  stats(): { entries: number; bytes: number; maxEntries: number; maxBytes: number; runIds: string[] } {
    const list = [...this.entries.values()].filter((x) => !x.loading);
    return {
      entries: list.length,
      bytes: list.reduce((s, x) => s + x.bytes, 0),
      maxEntries: this.maxEntries,
      maxBytes: this.maxBytes,
      runIds: list.map((x) => x.runId),
    };
  }
}
