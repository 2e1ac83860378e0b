/**
 * The Python values the restricted unpickler (pickle.ts) produces beyond plain JavaScript ones: the
 * inert token for an allowed global, the attributes BUILD restores on a dict-like object, and a
 * JSON-like copy for display and comparison.
 */
/** An allowed Python global (a class or function name): an inert token, never called. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {
    Object.freeze(this);
  }
  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
  toString(): string {
    return this.qualname;
  }
}

const attributes = new WeakMap<object, Map<unknown, unknown>>();

/** The attribute map of `obj`, made on first use (BUILD on a dict-like object). */
export function ownAttributes(obj: object): Map<unknown, unknown> {
  let a = attributes.get(obj);
  if (!a) attributes.set(obj, (a = new Map()));
  return a;
}


/** Attributes BUILD restored on a dict-like object (e.g. an OrderedDict state_dict's `_metadata`). */
export function pyAttributes(obj: object): Map<unknown, unknown> | undefined {
  return attributes.get(obj);
}

export interface ToJsonOptions {
  /** what to put in place of a non-plain object (a tensor); default '<tensor>' */
  replace?: (v: object) => unknown;
}

/**
 * A JSON-like copy for display and comparison: dicts become objects (keys as strings), tuples and
 * lists arrays, sets arrays, bytes arrays of numbers, safe bigints numbers (others decimal strings),
 * anything else (tensors) what `replace` says.
 */
export function pyToJson(v: unknown, opts: ToJsonOptions = {}): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (Array.isArray(v)) return v.map((x) => pyToJson(x, opts));
  if (v instanceof Set) return [...v].map((x) => pyToJson(x, opts));
  if (v instanceof Uint8Array) return [...v];
  if (v instanceof PyGlobal) return v.qualname;
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of v) {
      Object.defineProperty(o, String(k), { value: pyToJson(x, opts), enumerable: true, writable: true, configurable: true });
    }
    return o;
  }
  return opts.replace ? opts.replace(v as object) : '<tensor>';
}
