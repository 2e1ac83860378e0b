/**
 * A restricted unpickler for the pickles that `torch.save` writes (protocols 2–5; the few
 * protocol-0/1 data opcodes are read too). It never executes anything: every GLOBAL is checked
 * against an allow-list of names (tensor rebuild functions, storage classes, a few container
 * types) and yields an inert token; REDUCE / NEWOBJ / BUILD are interpreted here, only for the
 * allowed names, as plain data operations. Anything else (`os.system`, `builtins.eval`, an unknown
 * class, INST / OBJ, extension codes, out-of-band buffers) is refused with an error naming the file
 * and the offending global or opcode.
 *
 * Python values map to JavaScript as follows:
 * - None → null; bool → boolean; int → number (bigint beyond ±2^53); float → number;
 * - str → string; bytes / bytearray → Uint8Array;
 * - list and tuple → Array; dict and OrderedDict → Map (insertion order and key types kept);
 *   set / frozenset → Set;
 * - tensors → whatever `TorchHooks.rebuildTensor` returns (a RawTensor in `torch-checkpoint.ts`);
 * - attributes restored by BUILD on a dict (e.g. a state_dict's `_metadata`) → `pyAttributes(obj)`.
 */
import { TensorFileError } from './safetensors.js';
import { ALLOWED_GLOBALS, PY2_MODULES, TENSOR_REBUILDERS, UnsafePickleError } from './pickle-policy.js';
import { ownAttributes, PyGlobal } from './py-values.js';
import { OPNAMES, describe, isInt, intList, decodeLong, pyLiteral, parseDecimalInt } from './pickle-decode.js';

export { ALLOWED_GLOBALS, TORCH_STORAGE_CLASSES, UnsafePickleError } from './pickle-policy.js';
export { PyGlobal, pyAttributes, pyToJson, type ToJsonOptions } from './py-values.js';

export interface TorchHooks {
  /** BINPERSID: the persistent id tuple, e.g. ['storage', PyGlobal(torch.FloatStorage), key, location, numel]. */
  persistentLoad(pid: unknown): unknown;
  /** `_rebuild_tensor[_v2]`: returns the tensor value to put in the structure. */
  rebuildTensor(storage: unknown, storageOffset: number, size: number[], stride: number[]): unknown;
}

export interface UnpickleOptions {
  /** the file name, for error messages */
  source: string;
  /** where the pickle starts in `bytes` (default 0) */
  offset?: number;
  /** needed for pickles with tensors (BINPERSID); without hooks persistent ids are refused */
  torch?: TorchHooks;
}

export interface UnpickleResult {
  value: unknown;
  /** the byte just after STOP */
  end: number;
}

const MARK = Symbol('MARK');
const utf8 = new TextDecoder('utf-8');
const latin1 = new TextDecoder('latin1');

/**
 * Unpickles one pickle from `bytes` (starting at `opts.offset`), refusing anything that is not
 * plain data or an allowed tensor/container global. Throws TensorFileError (malformed input) or
 * UnsafePickleError (refused global or opcode), both naming `opts.source`.
 */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions): UnpickleResult {
  const src = opts.source;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = bytes.byteLength;
  let pos = opts.offset ?? 0;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();

  const bad: (problem: string) => never = (problem) => {
    throw new TensorFileError(
      src,
      `${problem} (pickle byte ${pos}); the file is damaged or is not a PyTorch checkpoint: download or save it again`,
    );
  };
  const refuse: (what: string, why: string) => never = (what, why) => {
    throw new UnsafePickleError(
      src,
      what,
      `refused to load: ${why}. Nothing in the file was executed. A weights file needs only tensors and plain containers; ` +
        `if this file is yours, re-save the weights alone (torch.save(model.state_dict(), path) or safetensors) and load that`,
    );
  };
  const refuseGlobal: (qual: string) => never = (qual) =>
    refuse(qual, `the pickle asks for the Python global '${qual}', which is not on the allow-list of a weights file`);

  const need = (k: number): void => {
    if (k < 0 || pos + k > n) bad(`truncated: an opcode needs ${k} more bytes but the data ends`);
  };
  const u8 = (): number => {
    need(1);
    return bytes[pos++]!;
  };
  const u16 = (): number => {
    need(2);
    const v = view.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    need(4);
    const v = view.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = (): number => {
    need(4);
    const v = view.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(n)) bad(`truncated: a length of ${v} bytes runs past the end of the data`);
    return Number(v);
  };
  const take = (k: number): Uint8Array => {
    need(k);
    const out = bytes.subarray(pos, pos + k);
    pos += k;
    return out;
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) bad('truncated: a text argument has no end of line');
    const s = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1]!)) bad('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0 || (marks.length && stack.length <= marks[marks.length - 1]!)) bad('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    if (!marks.length) bad('MARK expected on the stack');
    const m = marks.pop()!;
    return stack.splice(m);
  };
  const copyBytes = (b: Uint8Array): Uint8Array => b.slice();

  const makeGlobal = (module: string, name: string): PyGlobal => {
    const mod = PY2_MODULES[module] ?? module;
    const qual = `${mod}.${name}`;
    if (!ALLOWED_GLOBALS.has(qual)) refuseGlobal(qual);
    return new PyGlobal(mod, name);
  };

  const setItem = (d: unknown, k: unknown, v: unknown): void => {
    if (!(d instanceof Map)) bad(`SETITEM on a ${describe(d)}, not a dict`);
    (d as Map<unknown, unknown>).set(k, v);
  };
  const appendTo = (l: unknown, items: unknown[]): void => {
    if (!Array.isArray(l)) bad(`APPEND on a ${describe(l)}, not a list`);
    for (const it of items) (l as unknown[]).push(it);
  };

  const rebuildTensor = (qual: string, args: unknown[]): unknown => {
    if (!opts.torch) refuse(qual, `'${qual}' rebuilds a tensor, which this reader only accepts inside a PyTorch checkpoint`);
    const hooks = opts.torch!;
    if (qual === 'torch._utils._rebuild_parameter' || qual === 'torch._utils._rebuild_parameter_with_state') {
      if (args.length < 3) bad(`${qual} called with ${args.length} arguments`);
      return args[0]; // Parameter(data): the data tensor itself
    }
    const [storage, offset, size, stride] = args;
    const sz = intList(size);
    const st = intList(stride);
    if (args.length < 4 || !isInt(offset) || !sz || !st || sz.length !== st.length) {
      bad(`${qual} called with unexpected arguments (storage, offset, size, stride expected)`);
    }
    return hooks.rebuildTensor(storage, offset as number, sz!, st!);
  };

  const reduce = (fn: unknown, args: unknown): unknown => {
    if (!(fn instanceof PyGlobal)) {
      return refuse('REDUCE', `the pickle calls a ${describe(fn)} (REDUCE), which is not an allowed function`);
    }
    if (!Array.isArray(args)) bad(`REDUCE arguments are a ${describe(args)}, not a tuple`);
    const a = args as unknown[];
    const qual = fn.qualname;
    if (TENSOR_REBUILDERS.has(qual)) return rebuildTensor(qual, a);
    switch (qual) {
      case 'collections.OrderedDict': {
        const m = new Map<unknown, unknown>();
        if (a.length > 0 && a[0] !== null) {
          const items = a[0] instanceof Map ? [...a[0].entries()] : a[0];
          if (!Array.isArray(items)) bad('OrderedDict(...) with a non-list argument');
          for (const kv of items as unknown[]) {
            if (!Array.isArray(kv) || kv.length !== 2) bad('OrderedDict(...) item is not a pair');
            m.set((kv as unknown[])[0], (kv as unknown[])[1]);
          }
        }
        return m;
      }
      case 'builtins.set':
      case 'builtins.frozenset': {
        const it = a[0] ?? [];
        if (!Array.isArray(it) && !(it instanceof Set)) bad(`${qual}(...) with a ${describe(it)}`);
        return new Set(it as Iterable<unknown>);
      }
      case 'builtins.bytearray':
      case '_codecs.encode': {
        if (a.length === 0) return new Uint8Array(0);
        if (a[0] instanceof Uint8Array) return copyBytes(a[0]);
        const s = a[0];
        const enc = String(a[1] ?? 'utf-8').toLowerCase().replace(/[-_]/g, '');
        if (typeof s !== 'string') bad(`${qual}(...) with a ${describe(s)}`);
        if (enc === 'latin1' || enc === 'iso88591') {
          const out = new Uint8Array((s as string).length);
          for (let i = 0; i < out.length; i++) {
            const c = (s as string).charCodeAt(i);
            if (c > 255) bad(`${qual}: a latin-1 string holds character ${c}`);
            out[i] = c;
          }
          return out;
        }
        if (enc === 'utf8' || enc === 'ascii') return new TextEncoder().encode(s as string);
        return bad(`${qual}(...) with encoding ${JSON.stringify(a[1])}`);
      }
      case 'torch.Size': {
        const l = intList(a[0] ?? []);
        if (!l) bad('torch.Size(...) of non-integers');
        return l;
      }
      case 'torch._tensor._rebuild_from_type_v2': {
        // (func, new_type, args, state): a tensor subclass or a tensor with Python attributes.
        const [func, newType, fargs] = a;
        const ft = newType instanceof PyGlobal ? newType.qualname : describe(newType);
        if (ft !== 'torch.Tensor' && ft !== 'torch.nn.parameter.Parameter') {
          refuse(ft, `the pickle rebuilds a tensor of type '${ft}', which is not on the allow-list`);
        }
        return reduce(func, fargs);
      }
    }
    return refuse(qual, `the pickle calls '${qual}', which is only allowed as a type, not as a function`);
  };

  const newobj = (cls: unknown, args: unknown): unknown => {
    if (!(cls instanceof PyGlobal)) return refuse('NEWOBJ', `the pickle creates an instance of a ${describe(cls)} (NEWOBJ)`);
    if (!Array.isArray(args)) bad('NEWOBJ arguments are not a tuple');
    switch (cls.qualname) {
      case 'collections.OrderedDict':
        return new Map();
      case 'builtins.set':
      case 'builtins.frozenset':
        return new Set();
      case 'builtins.bytearray':
      case 'torch.Size':
        return reduce(cls, args);
    }
    return refuse(cls.qualname, `the pickle creates an instance of '${cls.qualname}', which a weights file never needs`);
  };

  const build = (obj: unknown, state: unknown): void => {
    let dictState = state;
    if (Array.isArray(state) && state.length === 2) {
      // (dict state, slot state)
      if (state[1] !== null) refuse('BUILD', 'the pickle restores slot state (BUILD)');
      dictState = state[0];
    }
    if (obj instanceof Map) {
      if (dictState === null) return;
      if (!(dictState instanceof Map)) bad('BUILD state on a dict is not a dict');
      const a = ownAttributes(obj);
      for (const [k, v] of dictState as Map<unknown, unknown>) a.set(k, v);
      return;
    }
    refuse('BUILD', `the pickle restores the state of a ${describe(obj)} (BUILD), which is only allowed on dicts`);
  };

  for (;;) {
    if (pos >= n) bad('truncated: the pickle ends without STOP');
    const opPos = pos;
    const op = bytes[pos++]!;
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) bad('unsupported pickle protocol (newer than 5)');
        break;
      case 0x95: // FRAME
        u64();
        break;
      case 0x2e: {
        // STOP
        const value = pop();
        return { value, end: pos };
      }
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (marks.length && stack.length === marks[marks.length - 1]) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      // ---- constants and numbers
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(i32());
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x8a: // LONG1
        stack.push(decodeLong(take(u8())));
        break;
      case 0x8b: {
        // LONG4
        const k = i32();
        if (k < 0) bad('LONG4 with a negative length');
        stack.push(decodeLong(take(k)));
        break;
      }
      case 0x47: {
        // BINFLOAT (big-endian double)
        need(8);
        stack.push(view.getFloat64(pos, false));
        pos += 8;
        break;
      }
      case 0x49: {
        // INT (text; "01"/"00" are True/False in protocol 0)
        const s = line().trim();
        if (s === '01') stack.push(true);
        else if (s === '00') stack.push(false);
        else {
          try {
            stack.push(parseDecimalInt(s));
          } catch {
            bad(`INT with ${JSON.stringify(s)}`);
          }
        }
        break;
      }
      case 0x4c: // LONG (text)
        try {
          stack.push(parseDecimalInt(line()));
        } catch {
          bad('LONG with a malformed number');
        }
        break;
      case 0x46: {
        // FLOAT (text)
        const s = line().trim();
        const v = Number(s);
        if (Number.isNaN(v) && !/^[+-]?nan$/i.test(s)) bad(`FLOAT with ${JSON.stringify(s)}`);
        stack.push(v);
        break;
      }
      // ---- strings and bytes
      case 0x53: // STRING (protocol 0: a quoted Python 2 str literal)
        stack.push(pyLiteral(line(), bad));
        break;
      case 0x56: // UNICODE (protocol 0: raw-unicode-escape)
        stack.push(line().replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))));
        break;
      case 0x58: // BINUNICODE
        stack.push(utf8.decode(take(u32())));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(utf8.decode(take(u8())));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(utf8.decode(take(u64())));
        break;
      case 0x55: // SHORT_BINSTRING (Python 2 str, read as torch.load does with encoding utf-8)
        stack.push(utf8.decode(take(u8())));
        break;
      case 0x54: {
        // BINSTRING
        const k = i32();
        if (k < 0) bad('BINSTRING with a negative length');
        stack.push(utf8.decode(take(k)));
        break;
      }
      case 0x42: // BINBYTES
        stack.push(copyBytes(take(u32())));
        break;
      case 0x43: // SHORT_BINBYTES
        stack.push(copyBytes(take(u8())));
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(copyBytes(take(u64())));
        break;
      // ---- containers
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x85: // TUPLE1
        stack.push([pop()]);
        break;
      case 0x86: {
        // TUPLE2
        const b = pop();
        const a = pop();
        stack.push([a, b]);
        break;
      }
      case 0x87: {
        // TUPLE3
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push([a, b, c]);
        break;
      }
      case 0x74: // TUPLE
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x64: {
        // DICT
        const items = popMark();
        if (items.length % 2) bad('DICT with an odd number of items');
        const m = new Map<unknown, unknown>();
        for (let i = 0; i < items.length; i += 2) m.set(items[i], items[i + 1]);
        stack.push(m);
        break;
      }
      case 0x91: // FROZENSET
        stack.push(new Set(popMark()));
        break;
      case 0x61: {
        // APPEND
        const v = pop();
        appendTo(top(), [v]);
        break;
      }
      case 0x65: {
        // APPENDS
        const items = popMark();
        appendTo(top(), items);
        break;
      }
      case 0x73: {
        // SETITEM
        const v = pop();
        const k = pop();
        setItem(top(), k, v);
        break;
      }
      case 0x75: {
        // SETITEMS
        const items = popMark();
        if (items.length % 2) bad('SETITEMS with an odd number of items');
        const d = top();
        for (let i = 0; i < items.length; i += 2) setItem(d, items[i], items[i + 1]);
        break;
      }
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) bad('ADDITEMS on a non-set');
        for (const it of items) (s as Set<unknown>).add(it);
        break;
      }
      // ---- memo
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x70: {
        // PUT
        const k = Number(line());
        if (!Number.isInteger(k)) bad('PUT with a malformed index');
        memo.set(k, top());
        break;
      }
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x68: // BINGET
      case 0x6a: // LONG_BINGET
      case 0x67: {
        // GET
        const k = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(k)) bad(`memo entry ${k} read before it was written`);
        stack.push(memo.get(k));
        break;
      }
      // ---- globals and object construction (interpreted, never executed)
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        stack.push(makeGlobal(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') bad('STACK_GLOBAL with non-string names');
        stack.push(makeGlobal(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const fn = pop();
        stack.push(reduce(fn, args));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        stack.push(newobj(cls, args));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof Map) || kwargs.size) refuse('NEWOBJ_EX', 'the pickle creates an object with keyword arguments (NEWOBJ_EX)');
        stack.push(newobj(cls, args));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        build(top(), state);
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!opts.torch) refuse('BINPERSID', 'the pickle refers to external objects (persistent ids, BINPERSID), which plain pickles never do');
        stack.push(opts.torch!.persistentLoad(pid));
        break;
      }
      default: {
        pos = opPos;
        const name = OPNAMES[op];
        if (name) refuse(name, `the pickle uses the opcode ${name}, which can run code or needs resources a weights file never uses`);
        bad(`unknown pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
      }
    }
  }
}
