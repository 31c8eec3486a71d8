// Reading a whole user-supplied file (a config, a prompt, a hosts file) with a size limit. readFileSync keeps
// reading as long as the file gives bytes: `--prompt_file /dev/zero` grew until libtorch's allocator aborted the
// process at 16.8 GB, and a FIFO blocks forever. Here the file is opened without blocking, must be a regular file,
// and no more than `maxBytes` are ever read.
import { closeSync, readSync, type Stats } from 'node:fs';
import { openRegularFile, openRegularFileSync } from './regular-file.js';
import { UserError } from '../util/errors.js';
import { fileKind } from '../util/format.js';

/** The usual limits, by what the file is. A file over its limit is almost surely the wrong file. */
export const READ_LIMITS = {
  /** YAML configs, hosts files, JSON templates and configs: kilobytes in practice. */
  config: 4 * 2 ** 20,
  /** A prompt: the model sees at most block_size tokens of it (GPT-2: 1024, ~4 KB of text). */
  prompt: 16 * 2 ** 20,
  /** metrics.jsonl, which the report reads whole: a million records at ~250 bytes. */
  metrics: 256 * 2 ** 20,
  /** A .txt file that is one document: decoded into one string, which V8 caps at ~512 M characters. */
  document: 256 * 2 ** 20,
} as const;

const CHUNK = 64 * 1024;

function mib(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${n} bytes`;
}

function notRegular(file: string, what: string, st: Stats): UserError {
  return new UserError(`${what} ${file} is ${fileKind(st)}, not a regular file`, `pass a regular file as the ${what}`);
}

function tooLarge(file: string, what: string, size: string, maxBytes: number, fix?: string): UserError {
  return new UserError(`${what} ${file} is ${size}, over the limit of ${mib(maxBytes)}`, fix ?? `check that this is the right file: a ${what} is read whole into memory`);
}

/**
 * The bytes of a regular file of at most `maxBytes`. A FIFO, device, socket or directory, or a larger file, is a
 * UserError naming the file (`what` says which input it is: 'config file', '--prompt_file'; `fix` replaces the
 * generic advice for a file over the limit); errors of the open itself (ENOENT, EACCES) are thrown as they are,
 * for the caller to describe.
 */
export function readBoundedFileSync(file: string, maxBytes: number, what: string, fix?: string): Buffer {
  const { fd, stat: st } = openRegularFileSync(file, (s) => notRegular(file, what, s));
  try {
    if (st.size > maxBytes) throw tooLarge(file, what, mib(st.size), maxBytes, fix);
    // The size may be wrong (a file still growing, or 0 for /proc files): read until EOF, never past the limit.
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(CHUNK, maxBytes + 1 - total));
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      chunks.push(buf.subarray(0, n));
      total += n;
      if (total > maxBytes) throw tooLarge(file, what, `more than ${mib(maxBytes)}`, maxBytes, fix);
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}

/** readBoundedFileSync, without blocking the event loop. */
export async function readBoundedFile(file: string, maxBytes: number, what: string, fix?: string): Promise<Buffer> {
  const { handle, stat: st } = await openRegularFile(file, (s) => notRegular(file, what, s));
  try {
    if (st.size > maxBytes) throw tooLarge(file, what, mib(st.size), maxBytes, fix);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const buf = Buffer.allocUnsafe(Math.min(4 * CHUNK, maxBytes + 1 - total));
      const { bytesRead } = await handle.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      chunks.push(buf.subarray(0, bytesRead));
      total += bytesRead;
      if (total > maxBytes) throw tooLarge(file, what, `more than ${mib(maxBytes)}`, maxBytes, fix);
    }
    return Buffer.concat(chunks, total);
  } finally {
    await handle.close();
  }
}

/**
 * The text of a small file we keep beside user data (a lock, a cache), or undefined when it is missing,
 * unreadable, not a regular file or larger than `maxBytes`: for files whose absence or damage the caller handles.
 */
export function readSmallFileSync(file: string, maxBytes = 64 * 1024): string | undefined {
  try {
    return readBoundedFileSync(file, maxBytes, 'file').toString('utf8');
  } catch {
    return undefined;
  }
}
