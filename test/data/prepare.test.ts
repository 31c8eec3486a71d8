import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { prepareDataset } from '../../src/data/prepare.js';
import type { Document } from '../../src/data/document.js';
import type { DocumentSource } from '../../src/data/source.js';
import { localFilesSource } from '../../src/data/sources/local.js';
import { encodeOrdinary, GPT2_EOT } from '../../src/data/tokenizer.js';
import { UserError } from '../../src/util/errors.js';
import { makeParquet } from '../helpers/hub-server.js';

let dir: string;
before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-prepare-'));
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function memorySource(texts: string[], opts: { failAt?: number } = {}): DocumentSource {
  return {
    id: 'memory:test',
    describe: 'test corpus',
    async *documents(): AsyncGenerator<Document> {
      for (let i = 0; i < texts.length; i++) {
        if (i === opts.failAt) throw new UserError(`doc${i}: broken`);
        yield { text: texts[i]!, origin: `doc${i}` };
      }
    },
  };
}

/** A few thousand varied documents: enough for many batches and a non-trivial val split. */
function corpus(n: number): string[] {
  const words = ['Hello', 'world', 'naïve', 'café', '数据', '<|endoftext|>', 'token', '\n\n', 'GPT-2', '🙂'];
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const len = (i * 7919) % 60;
    out.push(Array.from({ length: len }, (_, k) => words[(i + k * 31) % words.length]).join(' '));
  }
  return out;
}

const readU16 = async (f: string): Promise<number[]> => {
  const b = await fs.readFile(f);
  return Array.from(new Uint16Array(b.buffer, b.byteOffset, b.byteLength / 2));
};

test('output is byte-identical for 1 and 2 workers; meta.json is consistent', async () => {
  const texts = corpus(3000);
  const a = await prepareDataset({ source: memorySource(texts), outDir: path.join(dir, 'w1'), workers: 1, valFraction: 0.05, batchBytes: 2048 });
  const b = await prepareDataset({ source: memorySource(texts), outDir: path.join(dir, 'w2'), workers: 2, valFraction: 0.05, batchBytes: 1024 });
  for (const f of ['train.bin', 'val.bin', 'meta.json']) {
    assert.ok((await fs.readFile(path.join(dir, 'w1', f))).equals(await fs.readFile(path.join(dir, 'w2', f))), f);
  }
  const meta = JSON.parse(await fs.readFile(path.join(dir, 'w1', 'meta.json'), 'utf8'));
  assert.deepEqual(meta, JSON.parse(JSON.stringify(a.meta)));
  assert.equal(meta.tokenizer, 'gpt2');
  assert.equal(meta.vocab_size, 50257);
  assert.equal(meta.eot_token, 50256);
  assert.equal(meta.dtype, 'uint16');
  assert.equal(meta.source.id, 'memory:test');
  assert.equal(meta.train.documents + meta.val.documents, 3000);
  assert.ok(meta.val.documents > 50 && meta.val.documents < 250, `val docs ${meta.val.documents}`);
  for (const split of ['train', 'val'] as const) {
    const bytes = await fs.readFile(path.join(dir, 'w1', `${split}.bin`));
    assert.equal(meta[split].bytes, bytes.length);
    assert.equal(meta[split].tokens * 2, bytes.length);
    assert.equal(meta[split].sha256, createHash('sha256').update(bytes).digest('hex'));
    // One EOT per document: the EOT count is the document count.
    const ids = await readU16(path.join(dir, 'w1', `${split}.bin`));
    assert.equal(ids.filter((t) => t === GPT2_EOT).length, meta[split].documents);
    assert.equal(ids[ids.length - 1], GPT2_EOT);
  }
  assert.equal(b.meta.train.sha256, a.meta.train.sha256);
  // No temp files left behind.
  assert.deepEqual((await fs.readdir(path.join(dir, 'w2'))).sort(), ['meta.json', 'train.bin', 'val.bin']);
});

test('tokens are each document followed by EOT, in order (little-endian uint16)', async () => {
  const texts = ['Hello world', 'Hello', 'a<|endoftext|>b', 'world'];
  const r = await prepareDataset({ source: memorySource(texts), outDir: path.join(dir, 'small'), workers: 2, valFraction: 0.3 });
  const train = await readU16(r.files.train);
  const val = await readU16(r.files.val);
  // Reconstruct the split from meta-independent facts: concatenating both splits' documents in order must
  // give each input document exactly once.
  const all = [...train, ...val];
  assert.equal(all.filter((t) => t === GPT2_EOT).length, 4);
  const docsOf = (ids: number[]): number[][] => {
    const out: number[][] = [];
    let cur: number[] = [];
    for (const t of ids) {
      if (t === GPT2_EOT) {
        out.push(cur);
        cur = [];
      } else cur.push(t);
    }
    return out;
  };
  const got = [...docsOf(train), ...docsOf(val)].map((d) => JSON.stringify(d)).sort();
  const want = (await Promise.all(texts.map(async (t) => JSON.stringify(await encodeOrdinary(t))))).sort();
  assert.deepEqual(got, want);
  assert.ok(docsOf(train).length >= 1 && docsOf(val).length >= 1);
  // Raw bytes are little-endian: "Hello" = 15496 = 0x3C88 → 88 3C.
  const raw = await fs.readFile(r.files.train);
  const first = train[0]!;
  assert.equal(raw[0], first & 0xff);
  assert.equal(raw[1], first >> 8);
});

test('a failed run leaves no file under the final names and no temp files', async () => {
  const out = path.join(dir, 'fail');
  await assert.rejects(
    prepareDataset({ source: memorySource(corpus(500), { failAt: 400 }), outDir: out, workers: 2, batchBytes: 512 }),
    (e: unknown) => e instanceof UserError && /doc400/.test(e.message),
  );
  assert.deepEqual(await fs.readdir(out), []);
});

test('an interrupted run (abort) leaves previous output untouched', async () => {
  const out = path.join(dir, 'abort');
  await prepareDataset({ source: memorySource(['one doc', 'two docs']), outDir: out, workers: 1 });
  const before = await fs.readFile(path.join(out, 'meta.json'), 'utf8');
  const ac = new AbortController();
  await assert.rejects(
    prepareDataset({
      source: memorySource(corpus(2000)),
      outDir: out,
      workers: 2,
      batchBytes: 256,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.documents > 100) ac.abort();
      },
    }),
  );
  assert.equal(await fs.readFile(path.join(out, 'meta.json'), 'utf8'), before);
  assert.deepEqual((await fs.readdir(out)).sort(), ['meta.json', 'train.bin', 'val.bin']);
});

/** The same texts as UTF-8 byte documents, in the three shapes a source can hand over. */
function bytesSource(texts: string[], extra: Document[] = []): DocumentSource {
  return {
    id: 'memory:bytes',
    describe: 'test corpus as bytes',
    async *documents(): AsyncGenerator<Document> {
      const shared = Buffer.from(texts.join(''));
      let at = 0;
      for (let i = 0; i < texts.length; i++) {
        const n = Buffer.byteLength(texts[i]!);
        // An owned buffer (moved to the worker), a small pooled Buffer and a view into a shared one (both copied).
        const utf8 = i % 3 === 0 ? new Uint8Array(Buffer.from(texts[i]!)) : i % 3 === 1 ? Buffer.from(texts[i]!) : shared.subarray(at, at + n);
        at += n;
        yield { utf8, origin: `doc${i}` };
      }
      yield* extra;
    },
  };
}

test('UTF-8 byte documents give the same files as text; bad bytes are a UserError naming document and line', async () => {
  const texts = corpus(300);
  for (const workers of [1, 2]) {
    const a = await prepareDataset({ source: memorySource(texts), outDir: path.join(dir, `t${workers}`), workers, batchBytes: 700 });
    const b = await prepareDataset({ source: bytesSource(texts), outDir: path.join(dir, `b${workers}`), workers, batchBytes: 700 });
    assert.equal(b.meta.train.sha256, a.meta.train.sha256);
    assert.equal(b.meta.val.sha256, a.meta.val.sha256);
    assert.equal(b.bytes, a.bytes);
  }
  const bad: [Uint8Array, RegExp][] = [
    [Buffer.from('line one\nline two\ncaf\xe9', 'latin1'), /bad\.txt:3: invalid UTF-8 \(byte 0xe9\)/],
    [Buffer.from('text\n\0\x01\x02', 'latin1'), /bad\.txt:2: binary data/],
  ];
  for (const [utf8, message] of bad) {
    const out = path.join(dir, 'bad-bytes');
    await assert.rejects(
      prepareDataset({ source: bytesSource(texts, [{ utf8, origin: 'bad.txt' }]), outDir: out, workers: 2, batchBytes: 700 }),
      (e: unknown) => e instanceof UserError && message.test(e.message) && /fix: /.test(e.message),
    );
    assert.deepEqual(await fs.readdir(out), []);
  }
});

test('Parquet row groups are read by the workers: same files as decoded rows, with txt and jsonl in order; bad rows named', async () => {
  const texts = corpus(400).map((t, i) => (i % 37 === 5 ? null : t));
  const src = path.join(dir, 'mixed');
  await fs.mkdir(src, { recursive: true });
  await fs.writeFile(path.join(src, 'a.txt'), 'a text file first');
  await fs.writeFile(path.join(src, 'b.parquet'), makeParquet(texts, 32)); // 13 row groups
  await fs.writeFile(path.join(src, 'c.jsonl'), '{"text":"then a record"}\n{"text":"and another"}\n');
  const local = await localFilesSource({ paths: [src] });
  assert.ok(local.units, 'local files offer units()');
  const decoded: DocumentSource = { id: local.id, describe: local.describe, documents: () => local.documents() };
  const ref = await prepareDataset({ source: decoded, outDir: path.join(dir, 'pq-main'), workers: 1 });
  for (const workers of [1, 2]) {
    const r = await prepareDataset({ source: local, outDir: path.join(dir, `pq-w${workers}`), workers });
    assert.equal(r.meta.train.sha256, ref.meta.train.sha256);
    assert.equal(r.meta.val.sha256, ref.meta.val.sha256);
    assert.equal(r.bytes, ref.bytes);
  }
  assert.equal(ref.meta.train.documents + ref.meta.val.documents, 1 + texts.filter((t) => t !== null).length + 2);

  // The 'id' column is INT32: the worker's error names the file and row, and nothing is left behind.
  const out = path.join(dir, 'pq-bad');
  await assert.rejects(
    prepareDataset({ source: await localFilesSource({ paths: [path.join(src, 'b.parquet')], textColumn: 'id' }), outDir: out, workers: 2 }),
    (e: unknown) => e instanceof UserError && /b\.parquet#0: column 'id' holds number values, not text/.test(e.message),
  );
  assert.deepEqual(await fs.readdir(out), []);
});

test('JSON lines are parsed by the workers in chunks: same files as parsed on the main thread; errors name the line', async () => {
  // ~1.6 MB: two chunks of LINE_CHUNK_BYTES, with CRLF endings, blank lines and a record longer than a read.
  const records = corpus(3000).map((t, i) => JSON.stringify({ id: i, text: i === 1500 ? t + ' long'.repeat(300_000) : t }));
  const body = records.map((r, i) => (i % 100 === 7 ? `${r}\r\n\n` : `${r}\n`)).join('');
  const file = path.join(dir, 'big.jsonl');
  await fs.writeFile(file, body);
  const local = await localFilesSource({ paths: [file] });
  const decoded: DocumentSource = { id: local.id, describe: local.describe, documents: () => local.documents() };
  const ref = await prepareDataset({ source: decoded, outDir: path.join(dir, 'jl-main'), workers: 1 });
  const r = await prepareDataset({ source: local, outDir: path.join(dir, 'jl-w2'), workers: 2 });
  assert.equal(r.meta.train.sha256, ref.meta.train.sha256);
  assert.equal(r.meta.val.sha256, ref.meta.val.sha256);
  assert.equal(r.meta.train.documents + r.meta.val.documents, 3000);

  // A bad record far into the file (a later chunk): the worker names its line.
  const lines = body.split('\n');
  const badLine = lines.length - 40;
  lines[badLine - 1] = '{"text": oops}';
  await fs.writeFile(file, lines.join('\n'));
  const out = path.join(dir, 'jl-bad');
  await assert.rejects(
    prepareDataset({ source: await localFilesSource({ paths: [file] }), outDir: out, workers: 2 }),
    (e: unknown) => e instanceof UserError && e.message.includes(`big.jsonl:${badLine}: not valid JSON`),
  );
  assert.deepEqual(await fs.readdir(out), []);
});

test('empty corpus and single document are clear UserErrors', async () => {
  await assert.rejects(prepareDataset({ source: memorySource([]), outDir: path.join(dir, 'e0'), workers: 1 }), /no documents/);
  await assert.rejects(prepareDataset({ source: memorySource(['x']), outDir: path.join(dir, 'e1'), workers: 1 }), /only 1 document/);
  assert.deepEqual(await fs.readdir(path.join(dir, 'e1')), []);
});
