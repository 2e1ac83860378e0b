/**
 * The restricted unpickler: plain containers from real CPython pickles (protocols 2–5) parse;
 * hand-built malicious pickles (os.system, builtins.eval, subprocess, INST/OBJ, REDUCE on a type,
 * BUILD on a non-dict, ...) are refused with an error naming the file and the offending global,
 * without executing anything; malformed pickles fail with a clear error. Synthetic torch.save
 * files exercise what the golden files do not: big-endian storages, other dtypes, a custom zip
 * root, GPU locations and legacy storage views.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { zipSync } from 'fflate';
import { pyAttributes, pyToJson, unpickle, UnsafePickleError } from '../../models/io/pickle.js';
import { TensorFileError, toFloat64, type RawTensor } from '../../models/io/safetensors.js';
import { parseTorchCheckpoint, readTorchCheckpoint, stateDictFromCheckpoint, tensorSource, uflowStateDict } from '../../models/io/torch-checkpoint.js';
import { P } from '../helpers/pickle-writer.js';

const hex = (s: string) => Uint8Array.from(Buffer.from(s, 'hex'));
const SRC = '/models/suspicious.ckpt';



/** Rewrites a small zip as ZIP64: 0xFFFF/0xFFFFFFFF end-of-archive fields with a ZIP64 record and
 * locator, and every directory entry's local offset moved into a ZIP64 extra field. */
function toZip64(zip: Uint8Array): Uint8Array {
  const b = Buffer.from(zip);
  const eocd = b.length - 22;
  assert.equal(b.readUInt32LE(eocd), 0x06054b50);
  const count = b.readUInt16LE(eocd + 10);
  const cdOff = b.readUInt32LE(eocd + 16);
  const entries: Buffer[] = [];
  let p = cdOff;
  for (let i = 0; i < count; i++) {
    const n = b.readUInt16LE(p + 28);
    const x = b.readUInt16LE(p + 30);
    const c = b.readUInt16LE(p + 32);
    const head = Buffer.from(b.subarray(p, p + 46));
    const local = head.readUInt32LE(42);
    head.writeUInt32LE(0xffffffff, 42);
    head.writeUInt16LE(x + 12, 30);
    const extra = Buffer.alloc(12);
    extra.writeUInt16LE(1, 0);
    extra.writeUInt16LE(8, 2);
    extra.writeBigUInt64LE(BigInt(local), 4);
    entries.push(head, b.subarray(p + 46, p + 46 + n), extra, b.subarray(p + 46 + n, p + 46 + n + x + c));
    p += 46 + n + x + c;
  }
  const cd = Buffer.concat(entries);
  const z64 = Buffer.alloc(56);
  z64.writeUInt32LE(0x06064b50, 0);
  z64.writeBigUInt64LE(44n, 4);
  z64.writeUInt16LE(45, 12);
  z64.writeBigUInt64LE(BigInt(count), 24);
  z64.writeBigUInt64LE(BigInt(count), 32);
  z64.writeBigUInt64LE(BigInt(cd.length), 40);
  z64.writeBigUInt64LE(BigInt(cdOff), 48);
  const loc = Buffer.alloc(20);
  loc.writeUInt32LE(0x07064b50, 0);
  loc.writeBigUInt64LE(BigInt(cdOff + cd.length), 8);
  loc.writeUInt32LE(1, 16);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(0xffff, 8);
  end.writeUInt16LE(0xffff, 10);
  end.writeUInt32LE(0xffffffff, 12);
  end.writeUInt32LE(0xffffffff, 16);
  return Buffer.concat([b.subarray(0, cdOff), cd, z64, loc, end]);
}

// ---------------------------------------------------------------------------------------------

// pickle.dumps(obj, protocol=p) from CPython 3.11 of:
// {'a': 1, 'neg': -70000, 'big': 2**70, 'negbig': -(2**65)-3, 'f': 0.1, 's': 'héllo ✓', 'b': b'\x00\xffab',
//  'n': None, 't': True, 'l': [1, 2.5, 'x', (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)], 'nested': {'k': [[], {}]},
//  'od': OrderedDict([('z', 1), ('y', 2)]), 'set': {3}, 'fs': frozenset(), 'int_key': {0: 'zero', 10: 'ten'},
//  'ba': bytearray(b'xy'), 'shared': (shared, shared)} with shared = [7, 8]
const CPYTHON: Record<number, string> = {
  2: '80027d71002858010000006171014b0158030000006e656771024a90eefeff580300000062696771038a0900000000000000004058060000006e656762696771048a09fdfffffffffffffffd5801000000667105473fb999999999999a5801000000737106580a00000068c3a96c6c6f20e29c9371075801000000627108635f636f646563730a656e636f64650a7109580500000000c3bf6162710a58060000006c6174696e31710b86710c52710d58010000006e710e4e580100000074710f8858010000006c71105d7111284b0147400400000000000058010000007871124b018571134b014b028671144b014b024b03877115284b014b024b034b047471166558060000006e657374656471177d711858010000006b71195d711a285d711b7d711c657358020000006f64711d63636f6c6c656374696f6e730a4f726465726564446963740a711e2952711f2858010000007a71204b0158010000007971214b027558030000007365747122635f5f6275696c74696e5f5f0a7365740a71235d71244b0361857125527126580200000066737127635f5f6275696c74696e5f5f0a66726f7a656e7365740a71285d712985712a52712b5807000000696e745f6b6579712c7d712d284b0058040000007a65726f712e4b0a580300000074656e712f75580200000062617130635f5f6275696c74696e5f5f0a6279746561727261790a71316809580200000078797132680b867133527134857135527136580600000073686172656471375d7138284b074b08656838867139752e',
  3: '80037d71002858010000006171014b0158030000006e656771024a90eefeff580300000062696771038a0900000000000000004058060000006e656762696771048a09fdfffffffffffffffd5801000000667105473fb999999999999a5801000000737106580a00000068c3a96c6c6f20e29c9371075801000000627108430400ff6162710958010000006e710a4e580100000074710b8858010000006c710c5d710d284b01474004000000000000580100000078710e4b0185710f4b014b028671104b014b024b03877111284b014b024b034b047471126558060000006e657374656471137d711458010000006b71155d7116285d71177d7118657358020000006f64711963636f6c6c656374696f6e730a4f726465726564446963740a711a2952711b2858010000007a711c4b01580100000079711d4b02755803000000736574711e636275696c74696e730a7365740a711f5d71204b0361857121527122580200000066737123636275696c74696e730a66726f7a656e7365740a71245d71258571265271275807000000696e745f6b657971287d7129284b0058040000007a65726f712a4b0a580300000074656e712b7558020000006261712c636275696c74696e730a6279746561727261790a712d43027879712e85712f527130580600000073686172656471315d7132284b074b08656832867133752e',
  4: '8004955d010000000000007d94288c0161944b018c036e6567944a90eefeff8c03626967948a090000000000000000408c066e6567626967948a09fdfffffffffffffffd8c016694473fb999999999999a8c0173948c0a68c3a96c6c6f20e29c93948c016294430400ff6162948c016e944e8c017494888c016c945d94284b014740040000000000008c0178944b0185944b014b0286944b014b024b038794284b014b024b034b047494658c066e6573746564947d948c016b945d94285d947d9465738c026f64948c0b636f6c6c656374696f6e73948c0b4f72646572656444696374949394295294288c017a944b018c0179944b02758c03736574948f94284b03908c026673942891948c07696e745f6b6579947d94284b008c047a65726f944b0a8c0374656e94758c026261948c086275696c74696e73948c096279746561727261799493944302787994859452948c06736861726564945d94284b074b086568308694752e',
  5: '80059547010000000000007d94288c0161944b018c036e6567944a90eefeff8c03626967948a090000000000000000408c066e6567626967948a09fdfffffffffffffffd8c016694473fb999999999999a8c0173948c0a68c3a96c6c6f20e29c93948c016294430400ff6162948c016e944e8c017494888c016c945d94284b014740040000000000008c0178944b0185944b014b0286944b014b024b038794284b014b024b034b047494658c066e6573746564947d948c016b945d94285d947d9465738c026f64948c0b636f6c6c656374696f6e73948c0b4f72646572656444696374949394295294288c017a944b018c0179944b02758c03736574948f94284b03908c026673942891948c07696e745f6b6579947d94284b008c047a65726f944b0a8c0374656e94758c026261949602000000000000007879948c06736861726564945d94284b074b0865682b8694752e',
};

// pickle.dumps({'x': Evil()}) where Evil.__reduce__ returns (os.system, ('touch /tmp/uflow-pwned',))
const EVIL: Record<number, string> = {
  2: '80027d7100580100000078710163706f7369780a73797374656d0a71025816000000746f756368202f746d702f75666c6f772d70776e65647103857104527105732e',
  4: '80049538000000000000007d948c0178948c05706f736978948c0673797374656d9493948c16746f756368202f746d702f75666c6f772d70776e65649485945294732e',
};

describe('plain containers', () => {
  for (const [proto, h] of Object.entries(CPYTHON)) {
    test(`CPython protocol ${proto}`, () => {
      const { value, end } = unpickle(hex(h), { source: 'x.pkl' });
      assert.equal(end, h.length / 2);
      const m = value as Map<string, unknown>;
      assert.ok(m instanceof Map);
      assert.deepEqual([...m.keys()], ['a', 'neg', 'big', 'negbig', 'f', 's', 'b', 'n', 't', 'l', 'nested', 'od', 'set', 'fs', 'int_key', 'ba', 'shared']);
      assert.equal(m.get('a'), 1);
      assert.equal(m.get('neg'), -70000);
      assert.equal(m.get('big'), 2n ** 70n);
      assert.equal(m.get('negbig'), -(2n ** 65n) - 3n);
      assert.equal(m.get('f'), 0.1);
      assert.equal(m.get('s'), 'héllo ✓');
      assert.deepEqual(m.get('b'), Uint8Array.from([0, 255, 97, 98]));
      assert.equal(m.get('n'), null);
      assert.equal(m.get('t'), true);
      assert.deepEqual(m.get('l'), [1, 2.5, 'x', [1], [1, 2], [1, 2, 3], [1, 2, 3, 4]]);
      assert.deepEqual(pyToJson(m.get('nested')), { k: [[], {}] });
      assert.deepEqual([...(m.get('od') as Map<string, number>)], [['z', 1], ['y', 2]]);
      assert.deepEqual(m.get('set'), new Set([3]));
      assert.deepEqual(m.get('fs'), new Set());
      assert.deepEqual([...(m.get('int_key') as Map<number, string>)], [[0, 'zero'], [10, 'ten']]);
      assert.deepEqual(m.get('ba'), Uint8Array.from([120, 121]));
      const shared = m.get('shared') as unknown[][];
      assert.equal(shared[0], shared[1], 'memo keeps shared objects shared');
      assert.deepEqual(shared[0], [7, 8]);
    });
  }

  test('hand-built: LONG1 round trip, BUILD restores attributes on an OrderedDict, pyToJson', () => {
    const p = new P().proto().global('collections', 'OrderedDict').raw(0x29).reduce();
    p.mark().str('k').long1(-(2n ** 60n)).setitems();
    p.emptyDict().str('_metadata').emptyDict().raw(0x73).raw(0x62); // BUILD {'_metadata': {}}
    const { value } = unpickle(p.stop().bytes(), { source: 'x' });
    const m = value as Map<string, unknown>;
    assert.equal(m.get('k'), -(2n ** 60n));
    assert.ok(pyAttributes(m)?.has('_metadata'));
    assert.deepEqual(pyToJson(m), { k: String(-(2n ** 60n)) });
  });

  test('a dict key __proto__ stays data in pyToJson', () => {
    const p = new P().proto().emptyDict().str('__proto__').int(1).raw(0x73).stop();
    const o = pyToJson(unpickle(p.bytes(), { source: 'x' }).value) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(o), Object.prototype);
    assert.deepEqual(Object.keys(o), ['__proto__']);
  });
});

describe('malicious pickles are refused, nothing runs', () => {
  const marker = '/tmp/uflow-pwned';
  const refused = (bytes: Uint8Array, offending: string | RegExp) => {
    assert.throws(
      () => unpickle(bytes, { source: SRC }),
      (e: unknown) => {
        assert.ok(e instanceof UnsafePickleError, `UnsafePickleError expected, got ${String(e)}`);
        assert.ok(e.message.startsWith(`${SRC}: refused to load`), e.message);
        assert.match(e.message, /Nothing in the file was executed/);
        if (typeof offending === 'string') {
          assert.equal(e.offending, offending);
          assert.ok(e.message.includes(offending), e.message);
        } else assert.match(e.offending, offending);
        return true;
      },
    );
  };

  for (const [proto, h] of Object.entries(EVIL)) {
    test(`CPython __reduce__ → os.system, protocol ${proto}`, () => {
      rmSync(marker, { force: true });
      refused(hex(h), 'posix.system');
      assert.equal(existsSync(marker), false);
    });
  }
  test('protocol 0 GLOBAL os.system + REDUCE', () => {
    refused(new P().text("cos\nsystem\n(S'echo pwned'\ntR.").bytes(), 'os.system');
  });
  test('STACK_GLOBAL builtins.eval (protocol 4)', () => {
    const p = new P().proto(4).raw(0x8c, 8).text('builtins').raw(0x8c, 4).text('eval').raw(0x93);
    refused(p.mark().str('1+1').tuple().reduce().stop().bytes(), 'builtins.eval');
  });
  test('Python 2 module names are mapped before the check (__builtin__.eval)', () => {
    refused(new P().proto().global('__builtin__', 'eval').stop().bytes(), 'builtins.eval');
  });
  test('subprocess.Popen, builtins.getattr, torch.storage._load_from_bytes, nested names', () => {
    refused(new P().proto().global('subprocess', 'Popen').stop().bytes(), 'subprocess.Popen');
    refused(new P().proto().global('builtins', 'getattr').stop().bytes(), 'builtins.getattr');
    refused(new P().proto().global('torch.storage', '_load_from_bytes').stop().bytes(), 'torch.storage._load_from_bytes');
    refused(new P().proto().global('torch', 'load').stop().bytes(), 'torch.load');
    refused(new P().proto().global('collections', 'OrderedDict.__init__').stop().bytes(), 'collections.OrderedDict.__init__');
  });
  test('an allowed type is not callable: REDUCE on torch.FloatStorage / torch.Tensor', () => {
    refused(new P().proto().global('torch', 'FloatStorage').ints([4]).reduce().stop().bytes(), 'torch.FloatStorage');
    refused(new P().proto().global('torch', 'Tensor').raw(0x29).raw(0x81).stop().bytes(), 'torch.Tensor');
  });
  test('REDUCE on a non-global (a string)', () => {
    refused(new P().proto().str('os.system').ints([]).reduce().stop().bytes(), 'REDUCE');
  });
  test('protocol 0 text opcodes are read as data', () => {
    const { value } = unpickle(new P().text("(S'a\\'b\\x41'\nI42\nF0.5\nVhi\\u00e9\nl.").bytes(), { source: 'x' });
    assert.deepEqual(value, ["a'bA", 42, 0.5, 'hié']);
  });
  test('INST, OBJ, EXT1 and out-of-band buffers', () => {
    refused(new P().text('(S\'ls\'\nios\nsystem\n.').bytes(), 'INST');
    refused(new P().proto().mark().global('collections', 'OrderedDict').raw(0x6f).stop().bytes(), 'OBJ');
    refused(new P().proto().raw(0x82, 1).stop().bytes(), 'EXT1');
    refused(new P().proto(5).raw(0x97).stop().bytes(), 'NEXT_BUFFER');
  });
  test('BUILD on a list, persistent ids in a plain pickle', () => {
    refused(new P().proto().raw(0x5d).emptyDict().raw(0x62).stop().bytes(), 'BUILD');
    refused(new P().proto().str('x').raw(0x51).stop().bytes(), 'BINPERSID');
  });
  test('a tensor rebuild outside a checkpoint', () => {
    refused(new P().proto().global('torch._utils', '_rebuild_tensor_v2').ints([]).reduce().stop().bytes(), 'torch._utils._rebuild_tensor_v2');
  });
  test('inside a checkpoint file: the error names the file and the global', () => {
    const dir = mkdtempSync(join(tmpdir(), 'uflow-pickle-'));
    try {
      const pkl = new P().proto().emptyDict().str('x').global('os', 'system').str('id').raw(0x85).reduce().raw(0x73).stop().bytes();
      const file = join(dir, 'evil.ckpt');
      writeFileSync(file, zipSync({ 'evil/data.pkl': [pkl, { level: 0 }], 'evil/version': [Buffer.from('3\n'), { level: 0 }] }));
      assert.throws(() => readTorchCheckpoint(file), (e: unknown) => e instanceof UnsafePickleError && e.offending === 'os.system' && e.message.includes(file));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('malformed pickles: clear errors', () => {
  const malformed = (bytes: Uint8Array, re: RegExp) =>
    assert.throws(
      () => unpickle(bytes, { source: SRC }),
      (e: unknown) => e instanceof TensorFileError && !(e instanceof UnsafePickleError) && e.message.startsWith(SRC) && re.test(e.message),
    );
  test('truncated data, missing STOP, a length past the end', () => {
    const good = hex(CPYTHON[2]!);
    malformed(good.subarray(0, 40), /truncated/);
    malformed(new P().proto().emptyDict().bytes(), /truncated: the pickle ends without STOP/);
    malformed(new P().proto().raw(0x58, 0xff, 0xff, 0xff, 0x7f).bytes(), /truncated/);
  });
  test('memo read before write, stack underflow, unknown opcode', () => {
    malformed(new P().proto().raw(0x68, 3).stop().bytes(), /memo entry 3/);
    malformed(new P().proto().raw(0x86).stop().bytes(), /stack underflow/);
    malformed(new P().proto().mark().stop().bytes(), /stack underflow/);
    malformed(new P().proto().raw(0xff).bytes(), /unknown pickle opcode 0xff/);
    malformed(new P().proto().str('a').str('k').int(1).raw(0x73).stop().bytes(), /SETITEM on a string/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('synthetic torch.save files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'uflow-torch-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const be = (dtype: 'f64' | 'bf16', vals: number[]): Uint8Array => {
    const b = Buffer.alloc(vals.length * (dtype === 'f64' ? 8 : 2));
    vals.forEach((v, i) => {
      if (dtype === 'f64') b.writeDoubleBE(v, i * 8);
      else {
        const f = Buffer.alloc(4);
        f.writeFloatBE(v);
        b.writeUInt16BE(f.readUInt16BE(0), i * 2);
      }
    });
    return b;
  };

  test('zip: custom root, big-endian, F64 transposed, BF16, Bool/I32/I8/U8, cuda location, bare state dict', () => {
    const p = new P().proto().global('collections', 'OrderedDict').raw(0x29).reduce().mark();
    p.str('w').tensor('DoubleStorage', '0', 'cuda:0', 6, 0, [3, 2], [1, 3]);
    p.str('bf').tensor('BFloat16Storage', '1', 'cuda:0', 3, 1, [2], [1]);
    p.str('mask').tensor('BoolStorage', '2', 'cpu', 4, 0, [2, 2], [2, 1]);
    p.str('i32').tensor('IntStorage', '3', 'cpu', 2, 0, [2], [1]);
    p.str('i8').tensor('CharStorage', '4', 'cpu', 3, 2, [], []);
    p.str('u8').tensor('ByteStorage', '5', 'cpu', 2, 0, [0, 2], [2, 1]);
    p.setitems().stop();
    const i32 = Buffer.alloc(8);
    i32.writeInt32BE(-5, 0);
    i32.writeInt32BE(70000, 4);
    const z = zipSync({
      'my_model/data.pkl': [p.bytes(), { level: 6 }],
      'my_model/byteorder': [Buffer.from('big'), { level: 0 }],
      'my_model/data/0': [be('f64', [1, 2, 3, 4, 5, 6]), { level: 0 }],
      'my_model/data/1': [be('bf16', [0.5, -2, 3]), { level: 0 }],
      'my_model/data/2': [Uint8Array.from([1, 0, 0, 1]), { level: 0 }],
      'my_model/data/3': [i32, { level: 0 }],
      'my_model/data/4': [Uint8Array.from([1, 2, 0xfd]), { level: 0 }],
      'my_model/data/5': [Uint8Array.from([9, 9]), { level: 0 }],
    });
    const file = join(dir, 'my_model.pt');
    writeFileSync(file, z);
    const ck = readTorchCheckpoint(file);
    assert.equal(ck.format, 'zip');
    assert.equal(ck.zipRoot, 'my_model');
    const sd = ck.stateDict!;
    assert.deepEqual([...sd.keys()], ['w', 'bf', 'mask', 'i32', 'i8', 'u8']);
    const w = sd.get('w')!;
    assert.equal(w.dtype, 'F64');
    assert.deepEqual(w.shape, [3, 2]);
    assert.deepEqual([...w.data], [1, 4, 2, 5, 3, 6], 'transposed strides materialised in C order');
    assert.equal(tensorSource(w)!.location, 'cuda:0');
    assert.deepEqual([...toFloat64(sd.get('bf')!)], [-2, 3]);
    assert.equal(sd.get('mask')!.dtype, 'BOOL');
    assert.deepEqual([...sd.get('mask')!.data], [1, 0, 0, 1]);
    assert.deepEqual([...sd.get('i32')!.data], [-5, 70000]);
    const i8 = sd.get('i8')!;
    assert.deepEqual([i8.dtype, i8.shape, [...i8.data]], ['I8', [], [-3]]);
    assert.deepEqual([sd.get('u8')!.shape, sd.get('u8')!.data.length], [[0, 2], 0]);
    // in memory too, and the same archive written with ZIP64 records (as for files over 4 GB)
    assert.deepEqual([...(parseTorchCheckpoint(z, 'mem').stateDict!.get('w') as RawTensor).data], [1, 4, 2, 5, 3, 6]);
    const z64 = parseTorchCheckpoint(toZip64(z), 'mem64').stateDict!;
    assert.deepEqual([...z64.get('w')!.data], [1, 4, 2, 5, 3, 6]);
    assert.deepEqual([...z64.get('i32')!.data], [-5, 70000]);
  });

  test('zip: a tensor reaching past its storage, an unsupported storage type', () => {
    const mk = (type: string, n: number, size: number[]) => {
      const p = new P().proto().emptyDict().str('t').tensor(type, '0', 'cpu', n, 0, size, [1]).raw(0x73).stop();
      const file = join(dir, `bad-${type}.pt`);
      writeFileSync(file, zipSync({ 'a/data.pkl': [p.bytes(), { level: 0 }], 'a/data/0': [new Uint8Array(64), { level: 0 }] }));
      return file;
    };
    assert.throws(() => readTorchCheckpoint(mk('FloatStorage', 4, [5])), /reaches past its storage '0' of 4 elements/);
    assert.throws(() => readTorchCheckpoint(mk('ComplexFloatStorage', 4, [2])), /refused to load.*torch\.ComplexFloatStorage/);
    assert.throws(() => readTorchCheckpoint(mk('ShortStorage', 4, [2])), /storage type 'ShortStorage', which this product cannot read/);
  });

  test('legacy: storage views (view_metadata), storages in key-list order, Lightning state_dict + official key mapping', () => {
    const magic = new P().proto().long1(0x1950a86a20f9469cfc6cn).stop();
    const version = new P().proto().int(1001).stop();
    const sys = new P().proto().emptyDict().str('little_endian').raw(0x88).raw(0x73).stop();
    const main = new P().proto().emptyDict().str('state_dict').emptyDict().mark();
    main.str('model.flow.a').tensor('FloatStorage', 'root', 'cpu', 10, 1, [3], [2], ['view', 4, 6]);
    main.str('model.log_loss_weights').tensor('FloatStorage', 'other', 'cpu', 1, 0, [], [], null);
    main.str('model.feature_extractor.model.x').tensor('FloatStorage', 'root', 'cpu', 10, 0, [2], [1], null);
    main.setitems().raw(0x73).str('epoch').int(3).raw(0x73).stop();
    const keys = new P().proto().mark().str('other').str('root').raw(0x6c).stop();
    const storage = (vals: number[]) => {
      const b = Buffer.alloc(8 + vals.length * 4);
      b.writeBigUInt64LE(BigInt(vals.length));
      vals.forEach((v, i) => b.writeFloatLE(v, 8 + i * 4));
      return b;
    };
    const parts = [magic.bytes(), version.bytes(), sys.bytes(), main.bytes(), keys.bytes(), storage([42]), storage([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])];
    const file = join(dir, 'legacy.pt');
    writeFileSync(file, Buffer.concat(parts));
    const ck = readTorchCheckpoint(file);
    assert.equal(ck.format, 'legacy');
    assert.equal((ck.object as Map<string, unknown>).get('epoch'), 3);
    const sd = ck.stateDict!;
    assert.deepEqual([...sd.get('model.flow.a')!.data], [5, 7, 9], 'view offset 4 + storage offset 1, stride 2');
    assert.equal(tensorSource(sd.get('model.flow.a')!)!.storageOffset, 5);
    assert.deepEqual([...sd.get('model.log_loss_weights')!.data], [42]);
    const mapped = uflowStateDict(sd);
    assert.deepEqual([...mapped.keys()], ['flow.a', 'x'], "key.split('model.')[-1], leftovers dropped");
    assert.equal(stateDictFromCheckpoint(sd.get('model.flow.a')), undefined);

    writeFileSync(file, Buffer.concat(parts.slice(0, 6)));
    assert.throws(() => readTorchCheckpoint(file), (e: unknown) => e instanceof TensorFileError && e.message.includes(file) && /truncated: storage 'root' is missing/.test(e.message));
  });

  test('not a checkpoint: HTML page, empty file, plain pickle, safetensors', () => {
    const cases: Array<[string, Uint8Array, RegExp]> = [
      ['page.ckpt', Buffer.from('<!DOCTYPE html><html><title>Google Drive</title>'), /web page \(HTML\)/],
      ['empty.ckpt', new Uint8Array(0), /empty/],
      ['plain.pkl', new P().proto().emptyDict().stop().bytes(), /without the torch\.save magic number/],
      ['w.safetensors', Uint8Array.from([2, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x22]), /safetensors file/],
    ];
    for (const [name, bytes, re] of cases) {
      const f = join(dir, name);
      writeFileSync(f, bytes);
      assert.throws(() => readTorchCheckpoint(f), (e: unknown) => e instanceof TensorFileError && e.message.startsWith(f) && re.test(e.message), name);
    }
  });
});
