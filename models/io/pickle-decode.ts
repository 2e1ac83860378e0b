/**
 * The unpickler's small decoders (pickle.ts): opcode names for messages, a value's description,
 * integer checks, LONG1/LONG4 bytes, protocol-0 string and integer literals.
 */
import { PyGlobal } from './py-values.js';

export const OPNAMES: Record<number, string> = {
  0x69: 'INST',
  0x6f: 'OBJ',
  0x82: 'EXT1',
  0x83: 'EXT2',
  0x84: 'EXT4',
  0x97: 'NEXT_BUFFER',
  0x98: 'READONLY_BUFFER',
  0x50: 'PERSID',
};

export function describe(v: unknown): string {
  if (v === null) return 'None';
  if (v instanceof PyGlobal) return v.qualname;
  if (v instanceof Map) return 'dict';
  if (Array.isArray(v)) return 'list/tuple';
  if (v instanceof Set) return 'set';
  if (v instanceof Uint8Array) return 'bytes';
  if (typeof v === 'object') return 'tensor';
  return typeof v;
}

export function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

export function intList(v: unknown): number[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const out: number[] = [];
  for (const x of v) {
    if (isInt(x)) out.push(x);
    else if (typeof x === 'bigint' && x >= BigInt(Number.MIN_SAFE_INTEGER) && x <= BigInt(Number.MAX_SAFE_INTEGER)) out.push(Number(x));
    else return undefined;
  }
  return out;
}

export function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/** A protocol-0 STRING argument: 'text' or "text" with backslash escapes. */
export function pyLiteral(s: string, bad: (problem: string) => never): string {
  const t = s.trimEnd();
  const q = t[0];
  if (t.length < 2 || (q !== "'" && q !== '"') || t[t.length - 1] !== q) bad('STRING argument is not quoted');
  const body = t.slice(1, -1);
  const esc: Record<string, string> = { n: '\n', r: '\r', t: '\t', '\\': '\\', "'": "'", '"': '"', '0': '\0' };
  return body.replace(/\\(x[0-9a-fA-F]{2}|.)/g, (_, e: string) => (e[0] === 'x' && e.length === 3 ? String.fromCharCode(parseInt(e.slice(1), 16)) : esc[e] ?? `\\${e}`));
}

export function parseDecimalInt(s: string): number | bigint {
  const t = s.trim().replace(/L$/, '');
  if (!/^[+-]?\d+$/.test(t)) throw new Error(`not an integer: ${JSON.stringify(s)}`);
  const v = BigInt(t);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

