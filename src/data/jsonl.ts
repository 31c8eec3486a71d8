/**
 * JSON-lines records → document texts. Shared by the local-files source (main thread, documents()) and the
 * tokenizer workers, which parse chunks of lines themselves when `prepare` hands them out (units()): parsing on the
 * main thread cost it 19.7 ms per MB of text, capping a run near 50 MB/s whatever the core count.
 */
import { createReadStream } from 'node:fs';
import { UserError } from '../util/errors.js';
import { DEFAULT_ALPACA_TEMPLATE, formatAlpaca, type AlpacaTemplate } from './sources/alpaca.js';
import { decodeText } from './utf8.js';

/** How a JSON record becomes a document's text. */
export interface RecordOptions {
  /** Field of a JSON / JSON-lines record holding the text (default 'text'). */
  textField?: string;
  /** 'alpaca': JSON / JSON-lines records are instruction/input/output, rendered with `template`. */
  format?: 'text' | 'alpaca';
  template?: AlpacaTemplate;
}

/** Whole lines of a .jsonl file, starting at line `firstLine` (1-based): a unit of work for a tokenizer worker. */
export interface JsonlLines {
  kind: 'jsonl-lines';
  file: string;
  firstLine: number;
  bytes: Uint8Array;
  record: RecordOptions;
  /** The chunk's size: an over-estimate of its text (keys, quotes, escapes), for batching and progress. */
  estimatedBytes: number;
}

/** Default bytes of lines per chunk: a few hundred typical documents, enough to amortise a message. */
export const JSONL_CHUNK_BYTES = 1 << 20;

/** The text of one parsed record; `origin` names it in errors. */
export function recordText(rec: unknown, origin: string, opts: RecordOptions): string {
  if (opts.format === 'alpaca') return formatAlpaca(rec, opts.template ?? DEFAULT_ALPACA_TEMPLATE, origin);
  if (typeof rec === 'string') return rec;
  const field = opts.textField ?? 'text';
  if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) {
    throw new UserError(`${origin}: expected a JSON object with a '${field}' field, got ${Array.isArray(rec) ? 'an array' : typeof rec}`);
  }
  const v = (rec as Record<string, unknown>)[field];
  if (v === undefined) {
    throw new UserError(
      `${origin}: record has no '${field}' field (fields: ${Object.keys(rec).join(', ') || 'none'})`,
      'choose the text field with --text_field, or --format alpaca for instruction/input/output records',
    );
  }
  if (typeof v !== 'string') throw new UserError(`${origin}: field '${field}' must be a string, got ${v === null ? 'null' : typeof v}`);
  return v;
}

/**
 * A file's bytes in chunks of whole lines (~`targetBytes`, more when a single line is longer), each with the number
 * of its first line; the last chunk may lack a final newline. Memory: one chunk plus the longest line. Read errors
 * go through `onError` to be described.
 */
export async function* jsonlLineChunks(
  file: string,
  targetBytes: number,
  onError: (err: unknown) => Error,
): AsyncGenerator<{ bytes: Uint8Array; firstLine: number }> {
  let rest: Uint8Array | undefined;
  let firstLine = 1;
  const stream = createReadStream(file, { highWaterMark: targetBytes });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      const cut = chunk.lastIndexOf(0x0a) + 1;
      if (cut === 0) {
        rest = rest ? Buffer.concat([rest, chunk]) : chunk; // no line ends here yet: one long line
        continue;
      }
      // One copy into a buffer of its own, so prepare can move it to a worker instead of copying it again.
      const bytes = Buffer.allocUnsafeSlow((rest?.length ?? 0) + cut); // every byte is written below
      if (rest) bytes.set(rest);
      bytes.set(chunk.subarray(0, cut), rest?.length ?? 0);
      rest = cut < chunk.length ? chunk.subarray(cut) : undefined;
      // Counted before the yield: the consumer may move (detach) the bytes to a worker.
      let lines = 0;
      for (let at = chunk.indexOf(0x0a); at >= 0 && at < cut; at = chunk.indexOf(0x0a, at + 1)) lines++;
      yield { bytes, firstLine };
      firstLine += lines;
    }
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw onError(err);
  }
  if (rest && rest.length > 0) yield { bytes: rest, firstLine };
}

/**
 * The documents in a chunk of JSON-lines bytes, with their line numbers: every line is checked as UTF-8 text,
 * parsed, and turned into text by `opts`; blank lines are skipped; `\r\n` endings are accepted. Errors are
 * UserErrors naming `file:line`.
 */
export function jsonlTexts(bytes: Uint8Array, file: string, firstLine: number, opts: RecordOptions): { texts: string[]; lines: number[] } {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength); // native indexOf
  const texts: string[] = [];
  const lines: number[] = [];
  let line = firstLine;
  for (let start = 0; start < buf.length; line++) {
    const nl = buf.indexOf(0x0a, start);
    const next = nl < 0 ? buf.length : nl + 1;
    let end = nl < 0 ? buf.length : nl;
    if (end > start && buf[end - 1] === 0x0d) end--;
    const text = decodeText(buf.subarray(start, end), file, line);
    start = next;
    if (text.trim() === '') continue;
    const origin = `${file}:${line}`;
    let rec: unknown;
    try {
      rec = JSON.parse(text);
    } catch (err) {
      throw new UserError(`${origin}: not valid JSON (${(err as Error).message})`, 'each line of a .jsonl file must be one JSON value');
    }
    texts.push(recordText(rec, origin, opts));
    lines.push(line);
  }
  return { texts, lines };
}
