/**
 * Parameter checks for the daemon's requests. A missing or wrong-typed parameter is answered with
 * JSON-RPC InvalidParams (-32602) and a message naming it, e.g.
 * `uflow/train: params.datasetPath must be an absolute path (string); got undefined`.
 */
import { isAbsolute } from 'node:path';
import { ErrorCodes } from '../protocol.js';
import { RpcError } from '../paths.js';

export type Params = Record<string, unknown>;

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 80 ? v.slice(0, 77) + '...' : v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

export function invalid(method: string, name: string, expected: string, got: unknown): RpcError {
  return new RpcError(ErrorCodes.InvalidParams, `${method}: params.${name} must be ${expected}; got ${describe(got)}`);
}

/** The params object (absent params count as `{}` when `optional`). */
export function paramsObject(method: string, params: unknown, optional = false): Params {
  if ((params === undefined || params === null) && optional) return {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) {
    throw new RpcError(ErrorCodes.InvalidParams, `${method}: params must be an object; got ${describe(params)}`);
  }
  return params as Params;
}

export function reqString(method: string, p: Params, name: string): string {
  const v = p[name];
  if (typeof v !== 'string' || v.length === 0) throw invalid(method, name, 'a non-empty string', v);
  return v;
}

export function optString(method: string, p: Params, name: string): string | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.length === 0) throw invalid(method, name, 'a non-empty string when given', v);
  return v;
}

export function reqPath(method: string, p: Params, name: string): string {
  const v = p[name];
  if (typeof v !== 'string' || !isAbsolute(v) || v.includes('\0')) throw invalid(method, name, 'an absolute path (string)', v);
  return v;
}

export function optPath(method: string, p: Params, name: string): string | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || !isAbsolute(v) || v.includes('\0')) throw invalid(method, name, 'an absolute path (string) when given', v);
  return v;
}

export function optBool(method: string, p: Params, name: string): boolean | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalid(method, name, 'true or false when given', v);
  return v;
}

export function reqEnum<T extends string>(method: string, p: Params, name: string, values: readonly T[]): T {
  const v = p[name];
  if (typeof v !== 'string' || !(values as readonly string[]).includes(v)) throw invalid(method, name, `one of ${values.map((x) => `'${x}'`).join(', ')}`, v);
  return v as T;
}

export function optEnum<T extends string>(method: string, p: Params, name: string, values: readonly T[]): T | undefined {
  return p[name] === undefined || p[name] === null ? undefined : reqEnum(method, p, name, values);
}

export function optStringArray(method: string, p: Params, name: string): string[] | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string' || x.length === 0)) throw invalid(method, name, 'an array of non-empty strings when given', v);
  return v as string[];
}

export function optToken(method: string, p: Params, name: string): string | number | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' && !(typeof v === 'number' && Number.isInteger(v))) throw invalid(method, name, 'a string or an integer (a progress token) when given', v);
  return v;
}

/** An optional plain object whose listed keys, when present, are plain objects too. */
export function optObject(method: string, p: Params, name: string, objectKeys: string[] = []): Params | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw invalid(method, name, 'an object when given', v);
  for (const k of objectKeys) {
    const inner = (v as Params)[k];
    if (inner !== undefined && inner !== null && (typeof inner !== 'object' || Array.isArray(inner))) throw invalid(method, `${name}.${k}`, 'an object when given', inner);
  }
  return v as Params;
}
