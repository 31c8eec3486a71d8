import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema, type FileMetaData } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { UserError } from '../util/errors.js';
import type { Document } from './source.js';

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

/** Sum over row groups of the column's uncompressed size: a good estimate of the text bytes it holds. */
export function parquetColumnBytes(metadata: FileMetaData, column: string): number {
  let total = 0;
  for (const rg of metadata.row_groups) {
    for (const chunk of rg.columns) {
      const pathInSchema = chunk.meta_data?.path_in_schema;
      if (pathInSchema && pathInSchema[0] === column) total += Number(chunk.meta_data!.total_uncompressed_size);
    }
  }
  return total;
}

/**
 * Streams one text column of a Parquet file as documents, one row group at a time: memory is bounded by the
 * largest row group, never the whole file. Null cells are skipped (there is nothing to tokenize); the origin of
 * each document is `${originPrefix ?? file}#${rowIndex}` so an error can point at the exact row.
 */
export async function* parquetDocuments(file: string, column: string, originPrefix?: string): AsyncGenerator<Document> {
  const metadata = await readParquetMetadata(file);
  const columns = parquetColumns(metadata);
  if (!columns.includes(column)) {
    throw new UserError(
      `${file} has no column '${column}'; its columns are: ${columns.join(', ') || '(none)'}`,
      'choose the text column with --text_column',
    );
  }
  const buffer = await asyncBufferFromFile(file);
  const prefix = originPrefix ?? file;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let rowStart = 0;
  for (const rg of metadata.row_groups) {
    const rowEnd = rowStart + Number(rg.num_rows);
    if (rowEnd === rowStart) continue;
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({ file: buffer, metadata, columns: [column], rowStart, rowEnd, compressors });
    } catch (err) {
      throw new UserError(`cannot decode rows ${rowStart}..${rowEnd - 1} of ${file} (${(err as Error).message})`, 'the file is corrupt or uses an unsupported encoding; re-download or re-export it');
    }
    for (let i = 0; i < rows.length; i++) {
      const value = rows[i]![column];
      const origin = `${prefix}#${rowStart + i}`;
      if (value === null || value === undefined) continue;
      if (typeof value === 'string') {
        yield { text: value, origin };
      } else if (value instanceof Uint8Array) {
        // BYTE_ARRAY columns without a UTF8 annotation arrive as bytes; they must still be valid text.
        let text: string;
        try {
          text = decoder.decode(value);
        } catch {
          throw new UserError(`${origin}: column '${column}' holds bytes that are not valid UTF-8`, 'choose a text column with --text_column');
        }
        yield { text, origin };
      } else {
        throw new UserError(
          `${origin}: column '${column}' holds ${typeof value} values, not text`,
          `choose a text column with --text_column (columns: ${columns.join(', ')})`,
        );
      }
    }
    rowStart = rowEnd;
  }
}

