/** A content hash of a run's configuration: sha256 of its JSON with the keys sorted. */
import { createHash } from 'node:crypto';
import type { RunConfig } from '../protocol.js';

function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(v as Record<string, unknown>).sort()) {
      const x = (v as Record<string, unknown>)[k];
      if (x !== undefined) out[k] = canonical(x);
    }
    return out;
  }
  return v;
}

export function configHash(config: RunConfig): string {
  return 'sha256:' + createHash('sha256').update(JSON.stringify(canonical(config))).digest('hex');
}
