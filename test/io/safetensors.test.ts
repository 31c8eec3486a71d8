import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fs, readdirSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  DTYPE_BYTES,
  parseSafetensorsHeader,
  SAFETENSORS_DTYPES,
  SafetensorsFile,
  writeSafetensors,
  type SafetensorsDtype,
  type TensorToWrite,
} from '../../src/io/safetensors.js';
import { UserError } from '../../src/util/errors.js';

let dir: string;
let counter = 0;
before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-safetensors-'));
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** A fresh empty directory per test, so "no stray files" checks see only that test's writes. */
async function freshDir(): Promise<string> {
  const d = path.join(dir, `t${counter++}`);
  await fs.mkdir(d);
  return d;
}

/** A hand-made file: 8-byte length (the real one unless overridden), the header text as given, then `data`. */
function rawFile(header: string | Uint8Array | object, data: Uint8Array | number = 0, claimedLength?: bigint): Buffer {
  const json =
    header instanceof Uint8Array ? Buffer.from(header) : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(claimedLength ?? BigInt(json.byteLength));
  return Buffer.concat([prefix, json, typeof data === 'number' ? Buffer.alloc(data) : data]);
}

const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

function isUserErrorMatching(re: RegExp, file?: string) {
  return (err: unknown) => {
    assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)}`);
    assert.match(err.message, re);
    if (file !== undefined) assert.ok(err.message.includes(file), `message should name the file: ${err.message}`);
    assert.ok(err.fix && err.fix.length > 0, 'a UserError should say how to fix it');
    return true;
  };
}

describe('writeSafetensors + SafetensorsFile round trip', () => {
  test('every dtype, including a 0-element tensor and a scalar', async () => {
    const d = await freshDir();
    const file = path.join(d, 'all.safetensors');
    const shapes: number[][] = [[2, 3], [], [0, 4], [5]];
    const written: { name: string; dtype: SafetensorsDtype; shape: number[]; bytes: Uint8Array }[] = [];
    for (const dtype of SAFETENSORS_DTYPES) {
      for (const shape of shapes) {
        const bytes = new Uint8Array(randomBytes(numel(shape) * DTYPE_BYTES[dtype]));
        written.push({ name: `${dtype}.${shape.join('x') || 'scalar'}`, dtype, shape, bytes });
      }
    }
    await writeSafetensors(file, written.map(({ name, dtype, shape, bytes }) => ({ name, dtype, shape, data: bytes })));

    const f = await SafetensorsFile.open(file);
    try {
      assert.deepEqual(
        f.tensors.map((t) => t.name),
        written.map((t) => t.name),
        'tensors come back in file order, which is the order written',
      );
      for (const w of written) {
        const info = f.info(w.name);
        assert.equal(info.dtype, w.dtype);
        assert.deepEqual(info.shape, w.shape);
        assert.equal(info.byteLength, w.bytes.byteLength);
        assert.deepEqual(await f.read(w.name), w.bytes);
      }
      assert.deepEqual(f.metadata, {});
      assert.equal(f.info('F32.0x4').byteLength, 0);
      assert.deepEqual(await f.read('F32.0x4'), new Uint8Array(0));
      assert.deepEqual(f.info('BF16.scalar').shape, []);
      assert.equal(f.info('BF16.scalar').byteLength, 2);
    } finally {
      await f.close();
    }
  });

  test('U16 (readable and writable too)', async () => {
    const file = path.join(await freshDir(), 'u16.safetensors');
    const data = new Uint8Array(new Uint16Array([1, 65535, 256]).buffer);
    await writeSafetensors(file, [{ name: 'u', dtype: 'U16', shape: [3], data }]);
    const f = await SafetensorsFile.open(file);
    assert.deepEqual(await f.read('u'), data);
    await f.close();
  });

  test('metadata round trip, including awkward keys and non-ASCII text', async () => {
    const file = path.join(await freshDir(), 'meta.safetensors');
    const metadata: Record<string, string> = Object.fromEntries([
      ['iteration', '1200'],
      ['config', JSON.stringify({ n_layer: 2, lr: 6e-4, name: 'gpt' })],
      ['unicode', 'héllo — 世界 🚀'],
      ['empty', ''],
      ['__proto__', 'just a key'],
      ['10', 'integer-like key'],
    ]);
    await writeSafetensors(file, [{ name: 'w', dtype: 'F32', shape: [1], data: new Uint8Array(4) }], metadata);
    const f = await SafetensorsFile.open(file);
    assert.deepEqual({ ...f.metadata }, { ...metadata });
    assert.equal(Object.getPrototypeOf(f.metadata), Object.prototype, 'a "__proto__" key must stay a plain key');
    assert.equal(f.metadata['__proto__'], 'just a key');
    await f.close();
  });

  test('tensor names that an object would reorder or misread keep their order and identity', async () => {
    const file = path.join(await freshDir(), 'names.safetensors');
    const names = ['z', '10', '__proto__', 'constructor', 'a.b.c', '', 'ünï'];
    await writeSafetensors(file, names.map((name, i) => ({ name, dtype: 'U8' as const, shape: [1], data: new Uint8Array([i]) })));
    const f = await SafetensorsFile.open(file);
    assert.deepEqual(f.tensors.map((t) => t.name), names);
    for (const [i, name] of names.entries()) assert.deepEqual(await f.read(name), new Uint8Array([i]));
    assert.equal(f.has('toString'), false);
    await f.close();
  });

  test('an empty file (no tensors, no metadata) round trips', async () => {
    const file = path.join(await freshDir(), 'empty.safetensors');
    await writeSafetensors(file, []);
    const f = await SafetensorsFile.open(file);
    assert.deepEqual(f.tensors, []);
    assert.deepEqual(f.metadata, {});
    await f.close();
  });

  test('lazy data callbacks run once each, in order, sync or async, after all up-front validation', async () => {
    const file = path.join(await freshDir(), 'lazy.safetensors');
    const calls: string[] = [];
    const tensors: TensorToWrite[] = [
      { name: 'a', dtype: 'F32', shape: [2], data: () => (calls.push('a'), new Uint8Array(8).fill(1)) },
      {
        name: 'b',
        dtype: 'I64',
        shape: [1],
        data: async () => {
          await new Promise((r) => setTimeout(r, 5));
          calls.push('b');
          return new Uint8Array(8).fill(2);
        },
      },
      { name: 'c', dtype: 'U8', shape: [3], data: new Uint8Array([7, 8, 9]) },
    ];
    await writeSafetensors(file, tensors);
    assert.deepEqual(calls, ['a', 'b']);
    const f = await SafetensorsFile.open(file);
    assert.deepEqual(await f.read('a'), new Uint8Array(8).fill(1));
    assert.deepEqual(await f.read('b'), new Uint8Array(8).fill(2));
    assert.deepEqual(await f.read('c'), new Uint8Array([7, 8, 9]));
    await f.close();

    // A bad entry later in the list is caught before any callback produces (possibly expensive) data.
    calls.length = 0;
    const bad = [...tensors, { name: 'd', dtype: 'F32' as const, shape: [-1], data: new Uint8Array(0) }];
    await assert.rejects(writeSafetensors(path.join(path.dirname(file), 'bad.safetensors'), bad), isUserErrorMatching(/"d".*shape/));
    assert.deepEqual(calls, []);
  });

  test('a typed array other than Uint8Array is written as its raw bytes', async () => {
    const file = path.join(await freshDir(), 'typed.safetensors');
    const values = new Float32Array([1.5, -2, 3.25]);
    await writeSafetensors(file, [{ name: 'x', dtype: 'F32', shape: [3], data: values as unknown as Uint8Array }]);
    const f = await SafetensorsFile.open(file);
    assert.deepEqual(new Float32Array((await f.read('x')).buffer), values);
    await f.close();
  });
});

describe('writer: atomicity and validation', () => {
  test('a data callback that throws leaves no file under the final name and no temp file', async () => {
    const d = await freshDir();
    const file = path.join(d, 'model.safetensors');
    const boom = new Error('producer failed');
    const tensors: TensorToWrite[] = [
      { name: 'ok', dtype: 'F32', shape: [4], data: new Uint8Array(16) },
      {
        name: 'fails',
        dtype: 'F32',
        shape: [4],
        data: () => {
          throw boom;
        },
      },
    ];
    await assert.rejects(writeSafetensors(file, tensors), (err) => err === boom);
    assert.deepEqual(readdirSync(d), []);
  });

  test('a failed write keeps the previous file intact', async () => {
    const d = await freshDir();
    const file = path.join(d, 'ckpt.safetensors');
    await writeSafetensors(file, [{ name: 'v', dtype: 'U8', shape: [2], data: new Uint8Array([1, 2]) }], { iter: '1' });
    const before = await fs.readFile(file);
    const wrongLength: TensorToWrite = { name: 'v', dtype: 'F32', shape: [2], data: async () => new Uint8Array(7) };
    await assert.rejects(writeSafetensors(file, [wrongLength], { iter: '2' }), isUserErrorMatching(/"v".*7 bytes.*needs 8/, file));
    assert.deepEqual(await fs.readFile(file), before);
    assert.deepEqual(readdirSync(d), ['ckpt.safetensors']);
  });

  test('overwrites an existing file', async () => {
    const file = path.join(await freshDir(), 'over.safetensors');
    await writeSafetensors(file, [{ name: 'a', dtype: 'U8', shape: [1], data: new Uint8Array([1]) }]);
    await writeSafetensors(file, [{ name: 'b', dtype: 'U8', shape: [1], data: new Uint8Array([2]) }]);
    const f = await SafetensorsFile.open(file);
    assert.deepEqual(f.tensors.map((t) => t.name), ['b']);
    await f.close();
  });

  const u8 = (n: number) => new Uint8Array(n);
  const invalid: [string, TensorToWrite[], Record<string, string> | undefined, RegExp][] = [
    ['duplicate names', [{ name: 'a', dtype: 'U8', shape: [1], data: u8(1) }, { name: 'a', dtype: 'U8', shape: [1], data: u8(1) }], undefined, /"a" appears twice/],
    ['unknown dtype', [{ name: 'a', dtype: 'F8' as SafetensorsDtype, shape: [1], data: u8(1) }], undefined, /"F8" is not one of F64, F32/],
    ['negative dimension', [{ name: 'a', dtype: 'U8', shape: [2, -1], data: u8(1) }], undefined, /shape \[2,-1\] is not an array of non-negative integers/],
    ['fractional dimension', [{ name: 'a', dtype: 'U8', shape: [1.5], data: u8(1) }], undefined, /non-negative integers/],
    ['shape too large', [{ name: 'a', dtype: 'F32', shape: [2 ** 30, 2 ** 30], data: u8(1) }], undefined, /too large/],
    ['reserved name', [{ name: '__metadata__', dtype: 'U8', shape: [1], data: u8(1) }], undefined, /reserved/],
    ['data length mismatch', [{ name: 'a', dtype: 'I32', shape: [2], data: u8(7) }], undefined, /"a".*7 bytes.*I32.*needs 8/],
    ['non-string metadata', [], { step: 3 as unknown as string }, /metadata "step" is a number.*must be strings/],
  ];
  for (const [what, tensors, metadata, re] of invalid) {
    test(`rejects ${what} with a UserError and writes nothing`, async () => {
      const d = await freshDir();
      const file = path.join(d, 'x.safetensors');
      await assert.rejects(writeSafetensors(file, tensors, metadata), isUserErrorMatching(re, file));
      assert.deepEqual(readdirSync(d), []);
    });
  }
});

describe('byte layout', () => {
  test('byte-exact against a hand-built file', async () => {
    const file = path.join(await freshDir(), 'exact.safetensors');
    await writeSafetensors(
      file,
      [{ name: 'a', dtype: 'F32', shape: [2], data: new Uint8Array([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]) }],
      { k: 'v' },
    );
    // Counted by hand: 79 bytes of JSON, padded with one space to 80 (0x50) so the data region starts at 88.
    const json = '{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
    assert.equal(json.length, 79);
    const expected = Buffer.concat([
      Buffer.from([0x50, 0, 0, 0, 0, 0, 0, 0]),
      Buffer.from(json + ' ', 'ascii'),
      Buffer.from([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]), // 1.0f, -2.0f little-endian
    ]);
    assert.equal(expected.length, 96);
    assert.deepEqual(await fs.readFile(file), expected);

    const f = await SafetensorsFile.open(file);
    assert.deepEqual(f.info('a'), { name: 'a', dtype: 'F32', shape: [2], byteOffset: 88, byteLength: 8 });
    assert.deepEqual(new Float32Array((await f.read('a')).slice().buffer), new Float32Array([1, -2]));
    await f.close();
  });

  test('byte-exact: an empty file is {} padded to 8 bytes', async () => {
    const file = path.join(await freshDir(), 'none.safetensors');
    await writeSafetensors(file, []);
    assert.deepEqual(await fs.readFile(file), Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20]));
  });

  test('the header is padded with spaces to a multiple of 8 bytes, whatever the name lengths', async () => {
    const d = await freshDir();
    for (let n = 1; n <= 17; n++) {
      const file = path.join(d, `pad${n}.safetensors`);
      await writeSafetensors(file, [{ name: 'é'.repeat(n), dtype: 'F64', shape: [1], data: new Uint8Array(8) }]);
      const bytes = await fs.readFile(file);
      const headerLength = Number(bytes.readBigUInt64LE(0));
      assert.equal(headerLength % 8, 0, `header length ${headerLength} for a ${n}-char name`);
      const header = bytes.subarray(8, 8 + headerLength).toString('utf8');
      assert.match(header, /^\{.*\} *$/);
      assert.ok(header.length - header.trimEnd().length < 8, 'at most 7 spaces of padding');
      assert.equal(bytes.length, 8 + headerLength + 8);
      const f = await SafetensorsFile.open(file);
      assert.equal(f.info('é'.repeat(n)).byteOffset % 8, 0);
      await f.close();
    }
  });
});

describe('SafetensorsFile', () => {
  let file: string;
  before(async () => {
    file = path.join(await freshDir(), 'r.safetensors');
    const tensors = Array.from({ length: 12 }, (_, i) => ({ name: `t${i}`, dtype: 'I16' as const, shape: [i], data: new Uint8Array(2 * i).fill(i) }));
    await writeSafetensors(file, tensors, { note: 'hi' });
  });

  test('has / info / read / read into a caller buffer', async () => {
    const f = await SafetensorsFile.open(file);
    assert.equal(f.has('t3'), true);
    assert.equal(f.has('nope'), false);
    assert.equal(f.info('t3').byteLength, 6);
    assert.deepEqual(await f.read('t3'), new Uint8Array(6).fill(3));
    const into = new Uint8Array(8);
    const got = await f.read('t4', into);
    assert.equal(got, into);
    assert.deepEqual(into, new Uint8Array(8).fill(4));
    await assert.rejects(f.read('t4', new Uint8Array(3)), RangeError);
    // Concurrent reads use positional I/O, so they do not disturb each other.
    const all = await Promise.all(f.tensors.map((t) => f.read(t.name)));
    all.forEach((b, i) => assert.deepEqual(b, new Uint8Array(2 * i).fill(i)));
    await f.close();
  });

  test('a missing tensor is a UserError listing some available names', async () => {
    const f = await SafetensorsFile.open(file);
    assert.throws(() => f.info('wte'), isUserErrorMatching(/no tensor named "wte"; it holds "t0", "t1", .*\(4 more\)/, file));
    await assert.rejects(f.read('wte'), isUserErrorMatching(/no tensor named "wte"/));
    await f.close();
  });

  test('the header view cannot be mutated by callers', async () => {
    const f = await SafetensorsFile.open(file);
    assert.throws(() => {
      (f.tensors[0] as { byteOffset: number }).byteOffset = 0;
    }, TypeError);
    assert.throws(() => f.tensors.pop(), TypeError);
    await f.close();
  });

  test('close is idempotent; read after close is an error; await using closes', async () => {
    const f = await SafetensorsFile.open(file);
    await f.close();
    await f.close();
    await assert.rejects(f.read('t1'), /after close/);
    let escaped: SafetensorsFile | undefined;
    {
      await using g = await SafetensorsFile.open(file);
      escaped = g;
      assert.equal(g.metadata.note, 'hi');
    }
    await assert.rejects(escaped.read('t1'), /after close/);
  });

  test('missing file and directory are UserErrors', async () => {
    const missing = path.join(dir, 'does-not-exist.safetensors');
    await assert.rejects(SafetensorsFile.open(missing), isUserErrorMatching(/no such file/, missing));
    await assert.rejects(SafetensorsFile.open(dir), isUserErrorMatching(/is a directory, not a checkpoint file/, dir));
  });

  test('a file truncated after opening gives a UserError on read', async () => {
    const d = await freshDir();
    const p = path.join(d, 'shrinks.safetensors');
    await writeSafetensors(p, [{ name: 'big', dtype: 'U8', shape: [1000], data: new Uint8Array(1000) }]);
    const f = await SafetensorsFile.open(p);
    await fs.truncate(p, 500);
    await assert.rejects(f.read('big'), isUserErrorMatching(/"big".*ended after \d+ of its 1000 bytes/, p));
    await f.close();
  });

  test('accepts valid files other writers produce: odd padding, extra entry keys, null metadata, shared zero-length offsets', async () => {
    const p = path.join(await freshDir(), 'foreign.safetensors');
    const header =
      '{"__metadata__":null,"b":{"dtype":"U8","shape":[0],"data_offsets":[2,2],"extra":1},' +
      '"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"c":{"dtype":"BOOL","shape":[0,3],"data_offsets":[2,2]},' +
      '"d":{"dtype":"I8","shape":[1],"data_offsets":[2,3]}}   \n\t ';
    await fs.writeFile(p, rawFile(header, Buffer.from([1, 2, 3])));
    const f = await SafetensorsFile.open(p);
    assert.deepEqual(f.metadata, {});
    assert.deepEqual(f.tensors.map((t) => t.name), ['a', 'b', 'c', 'd']);
    assert.deepEqual(await f.read('a'), new Uint8Array([1, 2]));
    assert.deepEqual(await f.read('c'), new Uint8Array(0));
    assert.deepEqual(await f.read('d'), new Uint8Array([3]));
    await f.close();
  });
});

describe('malformed files are rejected with a UserError before any large allocation', () => {
  const okEntry = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  type Case = { what: string; bytes: Buffer; re: RegExp; maxHeaderBytes?: number };
  const cases: Case[] = [
    { what: 'empty file', bytes: Buffer.alloc(0), re: /has 0 bytes, shorter than the 8-byte header length/ },
    { what: '5-byte file', bytes: Buffer.from([1, 0, 0, 0, 0]), re: /has 5 bytes, shorter than the 8-byte header length/ },
    { what: 'header length beyond the file', bytes: rawFile('{}', 0, 100n), re: /header claims 100 bytes, but only 2 follow/ },
    { what: 'header length 2^62', bytes: rawFile('{}', 0, 2n ** 62n), re: /header claims 4611686018427387904 bytes, more than the 100000000-byte limit/ },
    { what: 'header length 2^64 - 1', bytes: rawFile('{}', 0, 2n ** 64n - 1n), re: /header claims 18446744073709551615 bytes/ },
    { what: 'header longer than maxHeaderBytes', bytes: rawFile({ a: okEntry }, 8), re: /more than the 16-byte limit/, maxHeaderBytes: 16 },
    { what: 'zero-length header', bytes: rawFile('', 0), re: /header is not valid JSON/ },
    { what: 'header not UTF-8', bytes: rawFile(Buffer.from('{"\xff":1}', 'latin1'), 0), re: /header is not valid UTF-8/ },
    { what: 'header not JSON', bytes: rawFile('{"a": {"dtype": "F32",', 0), re: /header is not valid JSON/ },
    { what: 'header a JSON array', bytes: rawFile('[1, 2]', 0), re: /header is an array, not a JSON object/ },
    { what: 'header JSON null', bytes: rawFile('null', 0), re: /header is null, not a JSON object/ },
    { what: 'header a JSON number', bytes: rawFile('42', 0), re: /header is a number \(42\), not a JSON object/ },
    { what: 'header with a byte-order mark', bytes: rawFile('\ufeff{}', 0), re: /header is not valid JSON/ },
    { what: 'entry not an object', bytes: rawFile({ w: 5 }, 0), re: /tensor "w": the header entry is a number \(5\), not an object/ },
    { what: 'entry an array', bytes: rawFile({ w: [] }, 0), re: /tensor "w": the header entry is an array/ },
    { what: 'unknown dtype', bytes: rawFile({ w: { ...okEntry, dtype: 'F8_E4M3' } }, 8), re: /tensor "w": dtype is a string \("F8_E4M3"\); supported dtypes are F64, F32, F16, BF16, I64, I32, I16, U16, I8, U8, BOOL/ },
    { what: 'lower-case dtype', bytes: rawFile({ w: { ...okEntry, dtype: 'f32' } }, 8), re: /dtype is a string \("f32"\); supported dtypes/ },
    { what: 'missing dtype', bytes: rawFile({ w: { shape: [2], data_offsets: [0, 8] } }, 8), re: /tensor "w": dtype is missing; supported/ },
    { what: 'shape not an array', bytes: rawFile({ w: { ...okEntry, shape: 2 } }, 8), re: /tensor "w": shape is 2, not an array of non-negative integers/ },
    { what: 'missing shape', bytes: rawFile({ w: { dtype: 'F32', data_offsets: [0, 8] } }, 8), re: /tensor "w": shape is missing/ },
    { what: 'negative dimension', bytes: rawFile({ w: { ...okEntry, shape: [-2] } }, 8), re: /shape is \[-2\], not an array of non-negative integers/ },
    { what: 'fractional dimension', bytes: rawFile({ w: { ...okEntry, shape: [0.5, 4] } }, 8), re: /shape is \[0\.5,4\]/ },
    { what: 'string dimension', bytes: rawFile({ w: { ...okEntry, shape: ['2'] } }, 8), re: /shape is \["2"\]/ },
    { what: 'dimension beyond 2^53', bytes: rawFile('{"w":{"dtype":"U8","shape":[1e300],"data_offsets":[0,8]}}', 8), re: /shape is \[1e\+300\]/ },
    { what: 'data_offsets missing', bytes: rawFile({ w: { dtype: 'F32', shape: [2] } }, 8), re: /tensor "w": data_offsets is missing, not two non-negative integers/ },
    { what: 'data_offsets of three numbers', bytes: rawFile({ w: { ...okEntry, data_offsets: [0, 4, 8] } }, 8), re: /data_offsets is \[0,4,8\], not two/ },
    { what: 'negative data_offsets', bytes: rawFile({ w: { ...okEntry, data_offsets: [-8, 0] } }, 8), re: /data_offsets is \[-8,0\], not two non-negative/ },
    { what: 'data_offsets begin after end', bytes: rawFile({ w: { ...okEntry, data_offsets: [8, 0] } }, 8), re: /data_offsets \[8, 0\] begin after they end/ },
    { what: 'byte length not dtype × shape', bytes: rawFile({ w: { ...okEntry, data_offsets: [0, 4] } }, 4), re: /tensor "w": data_offsets \[0, 4\] span 4 bytes, but F32 of shape \[2\] needs 8/ },
    {
      what: 'a 2^60-byte tensor',
      bytes: rawFile({ w: { dtype: 'F32', shape: [2 ** 28, 2 ** 30], data_offsets: [0, 8] } }, 8),
      re: /tensor "w": shape \[268435456, 1073741824\] of F32 describes more bytes than any file can hold/,
    },
    {
      what: 'a 2^52-byte tensor in a tiny file',
      bytes: rawFile({ w: { dtype: 'U8', shape: [2 ** 26, 2 ** 26], data_offsets: [0, 2 ** 52] } }, 8),
      re: /tensor "w": data_offsets \[0, 4503599627370496\] run past the end of the data region \(8 bytes\)/,
    },
    { what: 'truncated data region', bytes: rawFile({ w: okEntry }, 5), re: /tensor "w": data_offsets \[0, 8\] run past the end of the data region \(5 bytes\)/ },
    {
      what: 'overlapping tensors',
      bytes: rawFile({ a: okEntry, b: { dtype: 'U8', shape: [4], data_offsets: [6, 10] } }, 10),
      re: /tensor "b": data_offsets \[6, 10\] overlap tensor "a" \[0, 8\]/,
    },
    {
      what: 'two tensors on the same bytes',
      bytes: rawFile({ a: okEntry, b: okEntry }, 8),
      re: /tensor "b": data_offsets \[0, 8\] overlap tensor "a"/,
    },
    {
      what: 'a gap between tensors',
      bytes: rawFile({ a: okEntry, b: { dtype: 'U8', shape: [2], data_offsets: [10, 12] } }, 12),
      re: /bytes \[8, 10\) of the data region belong to no tensor \(gap before tensor "b"\)/,
    },
    { what: 'data region not starting at 0', bytes: rawFile({ a: { ...okEntry, data_offsets: [4, 12] } }, 12), re: /bytes \[0, 4\) of the data region belong to no tensor/ },
    { what: 'trailing bytes after the last tensor', bytes: rawFile({ a: okEntry }, 11), re: /3 trailing bytes after the last tensor/ },
    { what: 'bytes but no tensors', bytes: rawFile({}, 4), re: /4 trailing bytes after the last tensor/ },
    { what: '__metadata__ a string', bytes: rawFile({ __metadata__: 'x' }, 0), re: /"__metadata__" is a string \("x"\), not an object of string values/ },
    { what: '__metadata__ an array', bytes: rawFile({ __metadata__: ['a'] }, 0), re: /"__metadata__" is an array/ },
    { what: '__metadata__ with a number value', bytes: rawFile({ __metadata__: { step: 3 } }, 0), re: /"__metadata__" key "step" is a number \(3\), not a string/ },
    { what: '__metadata__ with a nested object', bytes: rawFile({ __metadata__: { cfg: { a: 1 } } }, 0), re: /"__metadata__" key "cfg" is an object, not a string/ },
  ];

  let d: string;
  before(async () => {
    d = await freshDir();
  });

  test(`${cases.length} distinct malformed files`, async (t) => {
    assert.ok(cases.length >= 20);
    assert.equal(new Set(cases.map((c) => c.bytes.toString('hex'))).size, cases.length, 'every case is a distinct file');
    // Linux-only leak check: count open descriptors around the loop.
    const openFds = () => (existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : 0);
    const fdsBefore = openFds();
    for (const [i, c] of cases.entries()) {
      await t.test(c.what, async () => {
        const p = path.join(d, `bad${i}.safetensors`);
        await fs.writeFile(p, c.bytes);
        const memBefore = process.memoryUsage().arrayBuffers;
        const started = performance.now();
        await assert.rejects(SafetensorsFile.open(p, { maxHeaderBytes: c.maxHeaderBytes }), isUserErrorMatching(c.re, p));
        assert.ok(performance.now() - started < 1000, 'rejected quickly');
        assert.ok(process.memoryUsage().arrayBuffers - memBefore < 16 * 2 ** 20, 'no large allocation');
      });
    }
    assert.equal(openFds(), fdsBefore, 'every rejected file was closed');
  });

  test('a header just over the default 100 MB cap is refused without reading it (sparse file)', async () => {
    const p = path.join(d, 'huge-header.safetensors');
    await fs.writeFile(p, rawFile('{}', 0, 100_000_001n));
    await fs.truncate(p, 8 + 100_000_001); // sparse: costs no disk, and the header claim is consistent with the size
    const memBefore = process.memoryUsage().arrayBuffers;
    await assert.rejects(SafetensorsFile.open(p), isUserErrorMatching(/header claims 100000001 bytes, more than the 100000000-byte limit/, p));
    assert.ok(process.memoryUsage().arrayBuffers - memBefore < 16 * 2 ** 20);
  });

  test('parseSafetensorsHeader directly: a header longer than the file, and the tensor name in messages', () => {
    const header = new TextEncoder().encode(JSON.stringify({ 'h.0.attn': { dtype: 'BF16', shape: [3], data_offsets: [0, 5] } }));
    assert.throws(() => parseSafetensorsHeader(header, 10, 'src.safetensors'), isUserErrorMatching(/src\.safetensors: the header \(\d+ bytes\) is longer than the file allows/));
    assert.throws(
      () => parseSafetensorsHeader(header, 8 + header.byteLength + 5, 'src.safetensors'),
      isUserErrorMatching(/^src\.safetensors: tensor "h\.0\.attn": data_offsets \[0, 5\] span 5 bytes, but BF16 of shape \[3\] needs 6/),
    );
    const ok = new TextEncoder().encode(JSON.stringify({ x: { dtype: 'BF16', shape: [3], data_offsets: [0, 6] } }));
    const parsed = parseSafetensorsHeader(ok, 8 + ok.byteLength + 6, 'mem');
    assert.deepEqual(parsed.tensors, [{ name: 'x', dtype: 'BF16', shape: [3], byteOffset: 8 + ok.byteLength, byteLength: 6 }]);
  });
});
