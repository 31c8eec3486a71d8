// Tiny synthetic token corpora for trainer tests: structured sequences a small model can learn quickly.
import { mkdtempSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** Writes train.bin / val.bin (uint16 LE) of a repeating-pattern language over `vocab` tokens; returns the dir. */
export function writePatternCorpus(opts: { vocab?: number; trainTokens?: number; valTokens?: number; seed?: number } = {}): string {
  const vocab = opts.vocab ?? 64;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-corpus-'));
  let s = opts.seed ?? 7;
  const rand = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 2 ** 32;
  };
  // "Words": fixed random token sequences; the corpus is words drawn at random, so the next token is predictable
  // inside a word and uncertain only at word boundaries.
  const words = Array.from({ length: 12 }, () => Array.from({ length: 3 + Math.floor(rand() * 5) }, () => Math.floor(rand() * vocab)));
  const make = (n: number): Uint16Array => {
    const out = new Uint16Array(n);
    let i = 0;
    while (i < n) for (const tok of words[Math.floor(rand() * words.length)]!) if (i < n) out[i++] = tok;
    return out;
  };
  writeFileSync(path.join(dir, 'train.bin'), make(opts.trainTokens ?? 20000));
  writeFileSync(path.join(dir, 'val.bin'), make(opts.valTokens ?? 4000));
  return dir;
}
