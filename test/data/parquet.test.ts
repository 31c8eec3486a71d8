import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { parquetDocuments } from '../../src/data/parquet.js';
import { UserError } from '../../src/util/errors.js';
import { makeParquet } from '../helpers/hub-server.js';

let dir: string;
before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-parquet-'));
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

test('streams a text column across row groups in order, skipping nulls', async () => {
  const texts = Array.from({ length: 25 }, (_, i) => (i === 7 ? null : `document ${i} ✓ ${'x'.repeat(i)}`));
  const file = path.join(dir, 'docs.parquet');
  await fs.writeFile(file, makeParquet(texts, 4)); // 7 row groups
  const docs = await collect(parquetDocuments(file, 'text', 'src:docs.parquet'));
  assert.equal(docs.length, 24);
  assert.deepEqual(
    docs.map((d) => d.text),
    texts.filter((t) => t !== null),
  );
  assert.equal(docs[0]!.origin, 'src:docs.parquet#0');
  assert.equal(docs[7]!.origin, 'src:docs.parquet#8'); // row 7 was null: origins keep the file's row numbers
});

test('a missing column is a UserError listing the columns', async () => {
  const file = path.join(dir, 'cols.parquet');
  await fs.writeFile(file, makeParquet(['a', 'b']));
  await assert.rejects(collect(parquetDocuments(file, 'content')), (err: unknown) => {
    assert.ok(err instanceof UserError);
    assert.match(err.message, /no column 'content'/);
    assert.match(err.message, /id, text/);
    assert.match(err.message, /--text_column/);
    return true;
  });
});

test('a non-text column is a UserError', async () => {
  const file = path.join(dir, 'ints.parquet');
  await fs.writeFile(file, makeParquet(['a']));
  await assert.rejects(collect(parquetDocuments(file, 'id')), (err: unknown) => err instanceof UserError && /not text/.test(err.message));
});

test('a file that is not Parquet is a UserError naming it', async () => {
  const file = path.join(dir, 'garbage.parquet');
  await fs.writeFile(file, 'this is not a parquet file at all, just some text that is long enough');
  await assert.rejects(collect(parquetDocuments(file, 'text')), (err: unknown) => {
    assert.ok(err instanceof UserError);
    assert.match(err.message, /garbage\.parquet is not a valid Parquet file/);
    return true;
  });
  // Truncated real file: the footer is gone.
  const trunc = path.join(dir, 'trunc.parquet');
  await fs.writeFile(trunc, makeParquet(['a', 'b', 'c']).subarray(0, 40));
  await assert.rejects(collect(parquetDocuments(trunc, 'text')), UserError);
  await assert.rejects(collect(parquetDocuments(path.join(dir, 'nope.parquet'), 'text')), (err: unknown) => err instanceof UserError && /cannot read/.test(err.message));
});
