/**
 * UTF-8 checks shared by the sources (main thread) and the tokenizer workers: a document's bytes become text only
 * if they are UTF-8 text, and the error names the file and line of the first bad byte.
 */
import { UserError } from '../util/errors.js';

/** Offset of the first byte that breaks UTF-8 (overlongs, surrogates and > U+10FFFF included), or -1. */
export function firstInvalidUtf8(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let n: number;
    let min: number;
    let cp: number;
    if (c >= 0xc2 && c <= 0xdf) [n, min, cp] = [1, 0x80, c & 0x1f];
    else if (c >= 0xe0 && c <= 0xef) [n, min, cp] = [2, 0x800, c & 0x0f];
    else if (c >= 0xf0 && c <= 0xf4) [n, min, cp] = [3, 0x10000, c & 0x07];
    else return i;
    for (let k = 1; k <= n; k++) {
      const cc = b[i + k];
      if (cc === undefined || (cc & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += n + 1;
  }
  return -1;
}

function lineAt(b: Uint8Array, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < b.length; i++) if (b[i] === 0x0a) line++;
  return line;
}

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/**
 * Decodes bytes as UTF-8 text, refusing binary data (a NUL byte) and invalid UTF-8 with an error that names the
 * file and line. `firstLine` is the line number of bytes[0] within the file.
 */
export function decodeText(bytes: Uint8Array, file: string, firstLine = 1): string {
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    throw new UserError(
      `${file}:${firstLine + lineAt(bytes, nul) - 1}: binary data (a NUL byte), not text`,
      'pass text files (UTF-8 .txt, .jsonl, .json) or .parquet; remove binary files from the input',
    );
  }
  try {
    return decoder.decode(bytes);
  } catch {
    const bad = firstInvalidUtf8(bytes);
    throw new UserError(
      `${file}:${firstLine + lineAt(bytes, Math.max(0, bad)) - 1}: invalid UTF-8${bad >= 0 ? ` (byte 0x${bytes[bad]!.toString(16).padStart(2, '0')})` : ''}`,
      'convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8)',
    );
  }
}
