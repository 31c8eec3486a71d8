// Progress that means what it says: 100% only when the run is done, whatever the source's bytes are worth.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatProgress, progressFraction } from '../../src/data/progress.js';
import { localFilesSource } from '../../src/data/sources/local.js';
import type { PrepareProgress } from '../../src/data/prepare.js';
import { makeParquet } from '../helpers/hub-server.js';

const base: PrepareProgress = { documents: 0, bytes: 0, tokens: 0, elapsedS: 10, done: false };

test('text bytes beyond the source size (decompressed Parquet, Alpaca templates) stay below 100% until done', () => {
  const p = { ...base, bytes: 3e6, estimatedBytes: 1e6, documents: 10 };
  assert.ok(progressFraction(p)! < 1);
  assert.doesNotMatch(formatProgress(p), /100\.0%/);
  assert.match(formatProgress({ ...p, done: true }), /^100\.0% .*done in/);
});

test('a known document count is the measure: exact fraction and an ETA from it', () => {
  const p = { ...base, bytes: 5e6, estimatedBytes: 1e6, documents: 250, estimatedDocuments: 1000 };
  assert.equal(progressFraction(p), 0.25);
  assert.match(formatProgress(p), /^ 25\.0% .*ETA 30s$/);
  assert.equal(progressFraction({ ...base }), undefined);
  assert.match(formatProgress({ ...base }), /10s elapsed$/);
});

test('local sources know their document count for text files and Parquet (from the footer), not for JSON', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-progress-'));
  try {
    writeFileSync(path.join(dir, 'a.txt'), 'one');
    writeFileSync(path.join(dir, 'b.txt'), 'two');
    writeFileSync(path.join(dir, 'c.parquet'), makeParquet(['x', 'y', 'z', 'w', 'v'], 2));
    assert.equal((await localFilesSource({ paths: [dir] })).estimatedDocuments, 7);
    assert.equal((await localFilesSource({ paths: [dir], splitOnBlankLines: true })).estimatedDocuments, undefined);
    writeFileSync(path.join(dir, 'd.jsonl'), '{"text":"q"}\n');
    assert.equal((await localFilesSource({ paths: [dir] })).estimatedDocuments, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
