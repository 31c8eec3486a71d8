import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { openGpt2Bpe } from '../../src/data/bpe-wasm.js';
import { GPT2_EOT } from '../../src/data/tokenizer.js';
import { mulberry32 } from '../helpers/random.js';

// dist/test/data → repository root.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = path.join(root, 'bin', 'nanogpt');

let dir: string;
before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-cli-prepare-'));
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function nanogpt(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: dir, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('nanogpt prepare (embedded corpus) writes train.bin, val.bin, meta.json', () => {
  const out = path.join(dir, 'out');
  const r = nanogpt('prepare', '--out_dir', out, '--workers', '2');
  assert.equal(r.status, 0, r.stderr);
  return (async () => {
    assert.deepEqual((await fs.readdir(out)).sort(), ['meta.json', 'train.bin', 'val.bin']);
    const meta = JSON.parse(await fs.readFile(path.join(out, 'meta.json'), 'utf8'));
    assert.equal(meta.source.id, 'embedded:sotu');
    assert.equal(meta.documents, 233);
    assert.ok(meta.tokens > 2_000_000 && meta.tokens < 2_150_000, `tokens ${meta.tokens}`);
    assert.ok(meta.val.documents >= 1);
    const train = await fs.readFile(path.join(out, 'train.bin'));
    assert.equal(train.length, meta.train.tokens * 2);
    assert.equal(createHash('sha256').update(train).digest('hex'), meta.train.sha256);
    assert.match(r.stderr, /wrote .*train\.bin/);
  })();
});

test('bad flags and bad inputs exit 2 with a clear message', () => {
  let r = nanogpt('prepare', '--bogus');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown option --bogus/);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/); // no stack trace
  r = nanogpt('prepare', '--val_fraction', '2');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--val_fraction/);
  r = nanogpt('prepare', path.join(dir, 'missing.jsonl'));
  assert.equal(r.status, 2);
  assert.match(r.stderr, /missing\.jsonl.*does not exist/);
  const latin1 = path.join(dir, 'latin1.txt');
  writeFileSync(latin1, Buffer.from('first line\ncaf\xe9 au lait\n', 'latin1'));
  r = nanogpt('prepare', latin1, '--out_dir', path.join(dir, 'latin1-out'));
  assert.equal(r.status, 2);
  assert.match(r.stderr, /latin1\.txt:2: invalid UTF-8 \(byte 0xe9\)/);
  assert.match(r.stderr, /iconv/);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/);
  r = nanogpt('prepare', '--help');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /--val_fraction/);
});

test('nanogpt prepare tokenizes files that are one 1M-character run (a word, spaces, digits, punctuation)', async () => {
  // Web text has these; tiktoken alone crashed on each ("RuntimeError: unreachable") and took minutes on shorter ones.
  const next = mulberry32(31);
  const drawn = (alphabet: string, n: number): string => {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(next() * alphabet.length)];
    return s;
  };
  const M = 1 << 20;
  const runs: Record<string, string> = {
    'word.txt': drawn('abcdefghijklmnopqrstuvwxyz', M),
    'spaces.txt': ' '.repeat(M),
    'digits.txt': drawn('0123456789', M),
    'punctuation.txt': drawn('.,;:!?-=*#()[]{}<>/|', M),
  };
  const files = Object.keys(runs).map((name) => path.join(dir, name));
  for (const f of files) writeFileSync(f, runs[path.basename(f)]!);
  const out = path.join(dir, 'runs-out');
  const t0 = performance.now();
  const r = nanogpt('prepare', ...files, '--out_dir', out, '--workers', '2', '--quiet');
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(r.status, 0, r.stderr);
  // Measured 1.6–2.4 s per MB of input (the whole command, 2 workers, on a 2-core machine busy with other work);
  // before LongPieceBpe it crashed, and shorter runs took minutes (tiktoken is quadratic in a piece's length).
  const mb = (4 * M) / 1e6;
  assert.ok(seconds < 12 * mb, `prepare took ${seconds.toFixed(1)} s for ${mb.toFixed(1)} MB`);
  // The tokens decode back to the files: documents are separated by EOT, in input order within each split.
  const enc = await openGpt2Bpe();
  const decoded: string[] = [];
  try {
    for (const split of ['train.bin', 'val.bin']) {
      const bin = await fs.readFile(path.join(out, split));
      const tokens = new Uint16Array(bin.buffer, bin.byteOffset, bin.length / 2);
      let start = 0;
      for (let i = 0; i < tokens.length; i++) {
        if (tokens[i] !== GPT2_EOT) continue;
        decoded.push(new TextDecoder().decode(enc.decode(Uint32Array.from(tokens.subarray(start, i)))));
        start = i + 1;
      }
      assert.equal(start, tokens.length, `${split} does not end with EOT`);
    }
  } finally {
    enc.free();
  }
  assert.equal(decoded.length, 4);
  assert.deepEqual(new Set(decoded), new Set(Object.values(runs)));
});
