import { decodeText } from './utf8.js';

/**
 * One document of a corpus: the unit that gets an end-of-text token and goes to train or val as a whole.
 * Its text comes either decoded (`text`) or as the file's raw bytes (`utf8`). Sources that read whole files hand
 * over the bytes: `prepare` moves them to a tokenizer worker without copying, and the worker validates and decodes
 * them, work that would otherwise sit on the main thread, which the workers share cores with (see "tokenize" in
 * docs/benchmarks.md). Whoever consumes a `utf8` document owns its buffer (it may be transferred and detached).
 */
export type Document = {
  /** Where it came from, for error messages and logs: "speeches/1790.txt", "data.jsonl:12", "hub:owner/name:train-00000.parquet#17". */
  origin: string;
} & ({ text: string; utf8?: undefined } | { utf8: Uint8Array; text?: undefined });

/** A document's text; `utf8` documents are checked (UTF-8, no NUL byte) with an error naming origin and line. */
export function documentText(doc: Document): string {
  return doc.text ?? decodeText(doc.utf8!, doc.origin);
}
