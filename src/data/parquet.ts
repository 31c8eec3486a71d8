import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { UserError } from '../util/errors.js';
import type { Document } from './document.js';

/** Top-level column names of a Parquet file, in schema order. */
export function parquetColumns(metadata: FileMetaData): string[] {
  return parquetSchema(metadata).children.map((c) => c.element.name);
}

/**
 * Reads only the footer of a Parquet file (a few KB), mapping "not a Parquet file" to a UserError. Used both to
 * stream a file and to count rows/bytes up front for progress estimates.
 */
export async function readParquetMetadata(file: string): Promise<FileMetaData> {
  let buffer;
  try {
    buffer = await asyncBufferFromFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(`cannot read Parquet file ${file} (${code ?? (err as Error).message})`, 'check that the path exists and is readable');
  }
  try {
    return await parquetMetadataAsync(buffer);
  } catch (err) {
    // hyparquet throws plain Errors ("parquet file invalid (footer != PAR1)", "parquet metadata length ...") for
    // anything that is not a well-formed Parquet footer; to the user that is one problem: a bad input file.
    throw new UserError(
      `${file} is not a valid Parquet file (${(err as Error).message})`,
      'pass a .parquet file (a truncated download is removed by deleting it and fetching again)',
    );
  }
}

/** The column's uncompressed size in one row group: about the text bytes it holds. */
function rowGroupColumnBytes(rg: FileMetaData['row_groups'][number], column: string): number {
  let total = 0;
  for (const chunk of rg.columns) if (chunk.meta_data?.path_in_schema?.[0] === column) total += Number(chunk.meta_data.total_uncompressed_size);
  return total;
}

/** Sum over row groups of the column's uncompressed size: a good estimate of the text bytes it holds. */
export function parquetColumnBytes(metadata: FileMetaData, column: string): number {
  return metadata.row_groups.reduce((sum, rg) => sum + rowGroupColumnBytes(rg, column), 0);
}

/**
 * Rows [rowStart, rowEnd) of one Parquet file's text column (one row group): documents that a tokenizer worker
 * reads and decodes itself, so the main thread never touches their text (see DocumentSource.units).
 */
export interface ParquetRows {
  kind: 'parquet-rows';
  file: string;
  column: string;
  rowStart: number;
  rowEnd: number;
  /** Documents are named `${originPrefix}#${row}` in errors. */
  originPrefix: string;
  /** Uncompressed size of the column in these rows: the text bytes, roughly (for batching and progress). */
  estimatedBytes: number;
}

/** The file's row groups as ParquetRows, after checking that the column exists (a UserError listing them if not). */
export async function parquetRowRanges(file: string, column: string, originPrefix?: string): Promise<ParquetRows[]> {
  const metadata = await readParquetMetadata(file);
  const columns = parquetColumns(metadata);
  if (!columns.includes(column)) {
    throw new UserError(
      `${file} has no column '${column}'; its columns are: ${columns.join(', ') || '(none)'}`,
      'choose the text column with --text_column',
    );
  }
  const out: ParquetRows[] = [];
  let rowStart = 0;
  for (const rg of metadata.row_groups) {
    const rowEnd = rowStart + Number(rg.num_rows);
    if (rowEnd === rowStart) continue;
    out.push({ kind: 'parquet-rows', file, column, rowStart, rowEnd, originPrefix: originPrefix ?? file, estimatedBytes: rowGroupColumnBytes(rg, column) });
    rowStart = rowEnd;
  }
  return out;
}

/** For BYTE_ARRAY cells without a UTF8 annotation: strict, so bytes that are not text are an error. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The last file read by readParquetRows in this thread: its row groups are read one after another. */
let lastFile: { file: string; buffer: Promise<AsyncBuffer>; metadata: Promise<FileMetaData> } | undefined;

/**
 * The texts of a row range, in row order, null cells skipped (there is nothing to tokenize), with the row number
 * of each. Bad cells are UserErrors naming `${originPrefix}#${row}`.
 */
export async function readParquetRows(r: ParquetRows): Promise<{ texts: string[]; rows: number[] }> {
  if (lastFile?.file !== r.file) {
    lastFile = { file: r.file, buffer: asyncBufferFromFile(r.file), metadata: readParquetMetadata(r.file) };
    // Failures surface through the awaits below; do not let the cached promises count as unhandled meanwhile.
    lastFile.buffer.catch(() => undefined);
    lastFile.metadata.catch(() => undefined);
  }
  // This call's entry, held locally: a concurrent call for another file may replace lastFile while this one waits.
  const opened = lastFile;
  const metadata = await opened.metadata;
  let records: Record<string, unknown>[];
  try {
    const file = await opened.buffer;
    records = await parquetReadObjects({ file, metadata, columns: [r.column], rowStart: r.rowStart, rowEnd: r.rowEnd, compressors });
  } catch (err) {
    throw new UserError(
      `cannot decode rows ${r.rowStart}..${r.rowEnd - 1} of ${r.file} (${(err as Error).message})`,
      'the file is corrupt or uses an unsupported encoding; re-download or re-export it',
    );
  }
  const texts: string[] = [];
  const rows: number[] = [];
  for (let i = 0; i < records.length; i++) {
    const value = records[i]![r.column];
    if (value === null || value === undefined) continue;
    const row = r.rowStart + i;
    if (typeof value === 'string') texts.push(value);
    else if (value instanceof Uint8Array) {
      // BYTE_ARRAY columns without a UTF8 annotation arrive as bytes; they must still be valid text.
      try {
        texts.push(utf8.decode(value));
      } catch {
        throw new UserError(`${r.originPrefix}#${row}: column '${r.column}' holds bytes that are not valid UTF-8`, 'choose a text column with --text_column');
      }
    } else {
      throw new UserError(
        `${r.originPrefix}#${row}: column '${r.column}' holds ${typeof value} values, not text`,
        `choose a text column with --text_column (columns: ${parquetColumns(metadata).join(', ')})`,
      );
    }
    rows.push(row);
  }
  return { texts, rows };
}

/**
 * Streams one text column of a Parquet file as documents, one row group at a time: memory is bounded by the
 * largest row group, never the whole file. Null cells are skipped; the origin of each document is
 * `${originPrefix ?? file}#${rowIndex}` so an error can point at the exact row.
 */
export async function* parquetDocuments(file: string, column: string, originPrefix?: string): AsyncGenerator<Document> {
  for (const range of await parquetRowRanges(file, column, originPrefix)) {
    const { texts, rows } = await readParquetRows(range);
    for (let i = 0; i < texts.length; i++) yield { text: texts[i]!, origin: `${range.originPrefix}#${rows[i]}` };
  }
}
