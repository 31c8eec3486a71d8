/**
 * Reading files line by line, as bytes: in chunks of whole lines (what `prepare` hands a tokenizer worker) and
 * line by line within a chunk. Shared by the local-files source and the workers, so both number lines alike.
 */
import { createReadStream } from 'node:fs';
import { UserError } from '../util/errors.js';

/** Default bytes of lines per chunk: a few hundred typical documents, enough to amortise a message. */
export const LINE_CHUNK_BYTES = 1 << 20;

/**
 * A file's bytes in chunks of whole lines (~`targetBytes`, more when a single line is longer), each with the number
 * of its first line; the last chunk may lack a final newline. Memory: one chunk plus the longest line. Read errors
 * go through `onError` to be described.
 */
export async function* lineChunks(
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

/** The lines of a chunk from lineChunks, numbered from `firstLine`, without their `\n` or `\r\n`. */
export function* linesOf(bytes: Uint8Array, firstLine: number): Generator<{ bytes: Uint8Array; line: number }> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength); // native indexOf
  let line = firstLine;
  for (let start = 0; start < buf.length; line++) {
    const nl = buf.indexOf(0x0a, start);
    let end = nl < 0 ? buf.length : nl;
    if (end > start && buf[end - 1] === 0x0d) end--;
    yield { bytes: buf.subarray(start, end), line };
    start = nl < 0 ? buf.length : nl + 1;
  }
}
