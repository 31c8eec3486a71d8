/**
 * JSON-lines records → document texts. Shared by the local-files source (main thread, documents()) and the
 * tokenizer workers, which parse chunks of lines themselves when `prepare` hands them out (units()): parsing on the
 * main thread cost it 19.7 ms per MB of text, capping a run near 50 MB/s whatever the core count.
 */
import { UserError } from '../util/errors.js';
import { DEFAULT_ALPACA_TEMPLATE, formatAlpaca, type AlpacaTemplate } from './sources/alpaca.js';
import { linesOf } from './lines.js';
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
 * The documents in a chunk of JSON-lines bytes, with their line numbers: every line is checked as UTF-8 text,
 * parsed, and turned into text by `opts`; blank lines are skipped; `\r\n` endings are accepted. Errors are
 * UserErrors naming `file:line`.
 */
export function jsonlTexts(bytes: Uint8Array, file: string, firstLine: number, opts: RecordOptions): { texts: string[]; lines: number[] } {
  const texts: string[] = [];
  const lines: number[] = [];
  for (const { bytes: lineBytes, line } of linesOf(bytes, firstLine)) {
    const text = decodeText(lineBytes, file, line);
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
