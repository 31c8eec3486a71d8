import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import picomatch from 'picomatch';
import { readBoundedFileSync, READ_LIMITS } from '../../io/bounded-read.js';
import { isUserError, UserError } from '../../util/errors.js';
import type { Document } from '../document.js';
import type { DocumentSource, WorkerUnit } from '../source.js';
import type { ParquetRows } from '../parquet.js';
import { decodeText } from '../utf8.js';
import { jsonlTexts, recordText, type JsonlLines, type RecordOptions } from '../jsonl.js';
import { LINE_CHUNK_BYTES, lineChunks, linesOf } from '../lines.js';

/** Extensions picked up when a directory or glob is given; an explicitly named file of another type is read as text. */
export const LOCAL_EXTENSIONS = ['.txt', '.jsonl', '.json', '.parquet'] as const;

/** What to read, and (RecordOptions) how a JSON / JSON-lines record becomes text. */
export interface LocalSourceOptions extends RecordOptions {
  /** Files, directories (searched recursively) and globs (`*`, `?`, `**`, `[abc]`, `{txt,jsonl}`). */
  paths: string[];
  /** Column of a Parquet file holding the text (default 'text'). */
  textColumn?: string;
  /** .txt: one document per blank-line-separated block instead of one per file. */
  splitOnBlankLines?: boolean;
}

function describeFsError(p: string, err: unknown): UserError {
  const code = (err as NodeJS.ErrnoException)?.code;
  const why =
    code === 'ENOENT' ? 'does not exist' : code === 'EACCES' || code === 'EPERM' ? 'is not readable (permission denied)' : code === 'EISDIR' ? 'is a directory' : (err as Error)?.message ?? String(err);
  return new UserError(`cannot read ${p}: it ${why}`, 'check the path and its permissions');
}

/** A glob by picomatch's reading (`*`, `?`, `**`, `[abc]`, `{a,b}`, extglobs), not a path that exists as written. */
const isGlob = (p: string): boolean => picomatch.scan(p).isGlob;

async function walk(dir: string, out: string[]): Promise<void> {
  let entries;
  try {
    entries = await fs.readdir(dir, { withFileTypes: true });
  } catch (err) {
    throw describeFsError(dir, err);
  }
  for (const e of entries) {
    if (e.name.startsWith('.')) continue; // hidden files and our own temp files
    const p = path.join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else if (e.isFile() || e.isSymbolicLink()) out.push(p);
  }
}

const known = (p: string): boolean => (LOCAL_EXTENSIONS as readonly string[]).includes(path.extname(p).toLowerCase());

const exists = (p: string): Promise<boolean> => fs.lstat(p).then(() => true, () => false);

/** Expands files, directories and globs into a sorted, de-duplicated file list (sorted so runs are repeatable). */
export async function expandPaths(patterns: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const pattern of patterns) {
    // A name that exists is taken as written, even with glob characters in it (`notes[1].txt`).
    if (isGlob(pattern) && !(await exists(pattern))) {
      // picomatch splits off the literal directory in front of the first glob character; only that tree is walked.
      const { base, glob } = picomatch.scan(pattern.split(path.sep).join('/'));
      const root = base || '.';
      const matches = picomatch(glob, { dot: false });
      const found: string[] = [];
      await walk(root, found).catch((err) => {
        if (err instanceof UserError) throw new UserError(`no files match ${pattern}: ${err.message}`, 'check the directory part of the pattern');
        throw err;
      });
      const matched = found.filter((f) => matches(path.relative(root, f).split(path.sep).join('/')) && known(f));
      if (matched.length === 0) throw new UserError(`no files match ${pattern}`, `supported file types: ${LOCAL_EXTENSIONS.join(', ')}; quote the pattern so that the shell does not expand it first`);
      files.push(...matched.sort());
      continue;
    }
    let st;
    try {
      st = await fs.stat(pattern);
    } catch (err) {
      throw describeFsError(pattern, err);
    }
    if (st.isDirectory()) {
      const found: string[] = [];
      await walk(pattern, found);
      const matched = found.filter(known).sort();
      if (matched.length === 0) throw new UserError(`${pattern} holds no ${LOCAL_EXTENSIONS.join(' / ')} files`, 'point at the corpus files');
      files.push(...matched);
    } else files.push(pattern);
  }
  return [...new Set(files)];
}

/** Streams a file's lines as bytes with their 1-based numbers; memory is one chunk plus the longest line. */
async function* lines(file: string): AsyncGenerator<{ bytes: Uint8Array; line: number }> {
  for await (const { bytes, firstLine } of fileLineChunks(file)) yield* linesOf(bytes, firstLine);
}

/** The file's whole lines in chunks, read errors described with the file's name. */
function fileLineChunks(file: string): AsyncGenerator<{ bytes: Uint8Array; firstLine: number }> {
  return lineChunks(file, LINE_CHUNK_BYTES, (err) => describeFsError(file, err));
}

/**
 * One document file, read synchronously: the next batch needs it before anything else can happen, and
 * fs.promises.readFile costs the main thread 3-4x the CPU (measured on 233 small files), CPU that the tokenizer
 * workers share.
 */
async function readWhole(file: string): Promise<Buffer> {
  try {
    return readBoundedFileSync(file, READ_LIMITS.document, 'document file', 'split it into smaller files, or pass --split_on_blank_lines to read it as one document per block');
  } catch (err) {
    if (isUserError(err)) throw err;
    throw describeFsError(file, err);
  }
}

async function* txtDocuments(file: string, opts: LocalSourceOptions): AsyncGenerator<Document> {
  if (!opts.splitOnBlankLines) {
    // Bytes, not text: a tokenizer worker validates and decodes them (see Document.utf8).
    yield { utf8: await readWhole(file), origin: file };
    return;
  }
  // Streamed line by line so one huge text file does not have to fit in memory.
  let para: string[] = [];
  let startLine = 0;
  for await (const { bytes, line } of lines(file)) {
    const text = decodeText(bytes, file, line);
    if (text.trim() === '') {
      if (para.length > 0) yield { text: para.join('\n'), origin: `${file}:${startLine}` };
      para = [];
    } else {
      if (para.length === 0) startLine = line;
      para.push(text);
    }
  }
  if (para.length > 0) yield { text: para.join('\n'), origin: `${file}:${startLine}` };
}

async function* jsonlDocuments(file: string, opts: LocalSourceOptions): AsyncGenerator<Document> {
  for await (const { bytes, firstLine } of fileLineChunks(file)) {
    const { texts, lines } = jsonlTexts(bytes, file, firstLine, opts);
    for (let i = 0; i < texts.length; i++) yield { text: texts[i]!, origin: `${file}:${lines[i]}` };
  }
}

/** The same lines as chunks for the tokenizer workers to parse (see DocumentSource.units). */
async function* jsonlUnits(file: string, opts: LocalSourceOptions): AsyncGenerator<JsonlLines> {
  const record = { textField: opts.textField, format: opts.format, template: opts.template };
  for await (const { bytes, firstLine } of fileLineChunks(file)) {
    yield { kind: 'jsonl-lines', file, firstLine, bytes, record, estimatedBytes: bytes.byteLength };
  }
}

/** Start offsets of the top-level array's elements, so an error about element k can name its line. */
function elementOffsets(text: string): number[] {
  const out: number[] = [];
  let depth = 0;
  let inString = false;
  let expectValue = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === ' ' || c === '\n' || c === '\r' || c === '\t') continue;
    if (depth === 1 && expectValue && c !== ']') {
      out.push(i);
      expectValue = false;
    }
    if (c === '"') inString = true;
    else if (c === '[' || c === '{') {
      depth++;
      if (depth === 1) expectValue = true;
    } else if (c === ']' || c === '}') depth--;
    else if (c === ',' && depth === 1) expectValue = true;
  }
  return out;
}

function lineOfChar(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

async function* jsonDocuments(file: string, opts: LocalSourceOptions): AsyncGenerator<Document> {
  // A .json file is one value and is parsed whole; corpora too big for that belong in .jsonl.
  const text = decodeText(await readWhole(file), file);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    const msg = (err as Error).message;
    const pos = /position (\d+)/.exec(msg);
    const where = pos ? `${file}:${lineOfChar(text, Number(pos[1]))}` : file;
    throw new UserError(`${where}: not valid JSON (${msg})`, 'fix the JSON, or use .jsonl with one record per line');
  }
  const records = Array.isArray(value) ? value : [value];
  const offsets = Array.isArray(value) ? elementOffsets(text) : [0];
  let lineCursor = 1;
  let charCursor = 0;
  for (let k = 0; k < records.length; k++) {
    // Line numbers are computed incrementally: element offsets increase, so the scan is linear overall.
    const off = offsets[k] ?? charCursor;
    for (; charCursor < off; charCursor++) if (text.charCodeAt(charCursor) === 10) lineCursor++;
    const origin = `${file}:${lineCursor}`;
    yield { text: recordText(records[k], `${origin} (element ${k})`, opts), origin };
  }
}

/** The Parquet reader, loaded on first use: corpora without Parquet files never pay for loading it. */
async function parquetModule(file: string, opts: LocalSourceOptions): Promise<typeof import('../parquet.js')> {
  if (opts.format === 'alpaca') throw new UserError(`${file}: --format alpaca reads .json / .jsonl records, not Parquet`);
  return import('../parquet.js');
}

async function* parquetFileDocuments(file: string, opts: LocalSourceOptions): AsyncGenerator<Document> {
  yield* (await parquetModule(file, opts)).parquetDocuments(file, opts.textColumn ?? 'text');
}

async function* parquetFileUnits(file: string, opts: LocalSourceOptions): AsyncGenerator<ParquetRows> {
  yield* await (await parquetModule(file, opts)).parquetRowRanges(file, opts.textColumn ?? 'text');
}

/** How .jsonl and .parquet files are read: as decoded documents, or as units for the tokenizer workers. */
interface FileReaders<U> {
  jsonl(file: string, opts: LocalSourceOptions): AsyncGenerator<U>;
  parquet(file: string, opts: LocalSourceOptions): AsyncGenerator<U>;
}

/** The files' documents in order. */
async function* fileDocuments<U>(files: string[], opts: LocalSourceOptions, read: FileReaders<U>): AsyncGenerator<Document | U> {
  for (const f of files) {
    const ext = path.extname(f).toLowerCase();
    if (ext === '.jsonl') yield* read.jsonl(f, opts);
    else if (ext === '.json') yield* jsonDocuments(f, opts);
    else if (ext === '.parquet') yield* read.parquet(f, opts);
    else {
      if (opts.format === 'alpaca') throw new UserError(`${f}: --format alpaca reads .json / .jsonl records, not text files`);
      yield* txtDocuments(f, opts);
    }
  }
}

/**
 * The number of documents when it is known without reading the text: one per text file (unless split on blank
 * lines), a Parquet file's row count from its footer. Undefined when any file's count needs a full read (JSON).
 */
async function countDocuments(files: string[], opts: LocalSourceOptions): Promise<number | undefined> {
  let n = 0;
  for (const f of files) {
    const ext = path.extname(f).toLowerCase();
    if (ext === '.parquet') n += Number((await (await parquetModule(f, opts)).readParquetMetadata(f)).num_rows);
    else if (ext !== '.jsonl' && ext !== '.json' && !opts.splitOnBlankLines) n += 1;
    else return undefined;
  }
  return n;
}

/** Local files as a document source; files are validated up front (they exist) and read lazily, one at a time. */
export async function localFilesSource(opts: LocalSourceOptions): Promise<DocumentSource> {
  if (opts.paths.length === 0) throw new UserError('no input files given');
  const files = await expandPaths(opts.paths);
  let bytes = 0;
  for (const f of files) {
    try {
      bytes += (await fs.stat(f)).size;
    } catch (err) {
      throw describeFsError(f, err);
    }
  }
  return {
    id: `files:${opts.paths.join(',')}`,
    describe: files.length === 1 ? files[0]! : `${files.length} local files (${opts.paths.join(', ')})`,
    // File sizes: exact for text, an over-estimate for JSON (keys, quotes) and a rough guide for Parquet.
    estimatedBytes: bytes,
    estimatedDocuments: await countDocuments(files, opts),
    documents: () => fileDocuments(files, opts, { jsonl: jsonlDocuments, parquet: parquetFileDocuments }),
    units: () => fileDocuments<WorkerUnit>(files, opts, { jsonl: jsonlUnits, parquet: parquetFileUnits }),
  };
}
