/**
 * A pickle writer (protocol 2 opcodes, the few torch.save uses, and what the unpickler's tests
 * build by hand: LONG1, views, NONE), for tests and benchmarks only: the product only reads pickles
 * (models/io/pickle.ts).
 */
export class P {
  private b: number[] = [];
  raw(...bytes: number[]): this {
    this.b.push(...bytes);
    return this;
  }
  text(s: string): this {
    for (const c of Buffer.from(s, 'latin1')) this.b.push(c);
    return this;
  }
  proto(v = 2): this {
    return this.raw(0x80, v);
  }
  mark(): this {
    return this.raw(0x28);
  }
  str(s: string): this {
    const u = Buffer.from(s, 'utf8');
    const n = Buffer.alloc(4);
    n.writeUInt32LE(u.length);
    return this.raw(0x58, ...n, ...u);
  }
  int(v: number): this {
    const n = Buffer.alloc(4);
    n.writeInt32LE(v);
    return this.raw(0x4a, ...n);
  }
  long1(v: bigint): this {
    const out: number[] = [];
    let x = v;
    do {
      out.push(Number(x & 0xffn));
      x >>= 8n;
    } while (x !== 0n && x !== -1n);
    if ((out[out.length - 1]! & 0x80) !== (v < 0n ? 0x80 : 0)) out.push(v < 0n ? 0xff : 0);
    return this.raw(0x8a, out.length, ...out);
  }
  global(mod: string, name: string): this {
    return this.raw(0x63).text(`${mod}\n${name}\n`);
  }
  tuple(): this {
    return this.raw(0x74);
  }
  ints(xs: number[]): this {
    this.mark();
    for (const x of xs) this.int(x);
    return this.tuple();
  }
  reduce(): this {
    return this.raw(0x52);
  }
  emptyDict(): this {
    return this.raw(0x7d);
  }
  setitems(): this {
    return this.raw(0x75);
  }
  none(): this {
    return this.raw(0x4e);
  }
  f(): this {
    return this.raw(0x89);
  }
  bool(v: boolean): this {
    return this.raw(v ? 0x88 : 0x89);
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  build(): this {
    return this.raw(0x62);
  }
  orderedDict(): this {
    return this.global('collections', 'OrderedDict').emptyTuple().reduce();
  }
  value(v: string | number): this {
    return typeof v === 'number' ? this.int(v) : this.str(v);
  }
  stop(): this {
    return this.raw(0x2e);
  }
  /** _rebuild_tensor_v2(persid('storage', torch.<type>, key, location, numel[, view]), offset, size, stride, False, OrderedDict()) */
  tensor(type: string, key: string, location: string, n: number, offset: number, size: number[], stride: number[], view?: [string, number, number] | null): this {
    this.global('torch._utils', '_rebuild_tensor_v2').mark();
    this.mark().str('storage').global('torch', type).str(key).str(location).int(n);
    if (view === null) this.none();
    else if (view) this.mark().str(view[0]).int(view[1]).int(view[2]).tuple();
    this.tuple().raw(0x51); // BINPERSID
    this.int(offset).ints(size).ints(stride).f().global('collections', 'OrderedDict').raw(0x29).reduce();
    return this.tuple().reduce();
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.b);
  }
}
