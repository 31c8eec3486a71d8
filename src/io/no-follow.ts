// Opening files that nanogpt writes in place (metrics.jsonl, partial downloads) without following a symbolic link
// at their name. A link planted at out_dir/metrics.jsonl would otherwise make a training run truncate and
// overwrite whatever file it points to, with the permissions of whoever runs the training.
import { closeSync, constants, fstatSync, openSync, promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { UserError } from '../util/errors.js';
import { fileKind } from '../util/format.js';

/** How the file is opened: appended to, emptied first, or read and written at any offset (must exist). */
export type WriteMode = 'append' | 'truncate' | 'update';

// O_NOFOLLOW makes open(2) fail with ELOOP when the last component is a symbolic link. O_NONBLOCK keeps the open of
// a FIFO from waiting for a reader; the fstat below then refuses anything that is not a regular file.
// (Windows has neither flag; there the link check is not made.)
const NOFOLLOW = (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0);

function flagsFor(mode: WriteMode): number {
  const { O_WRONLY, O_RDWR, O_CREAT, O_APPEND, O_TRUNC } = constants;
  const base = mode === 'append' ? O_WRONLY | O_CREAT | O_APPEND : mode === 'truncate' ? O_WRONLY | O_CREAT | O_TRUNC : O_RDWR;
  return base | NOFOLLOW;
}

function openError(file: string, what: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ELOOP' || code === 'EMLINK') {
    return new UserError(
      `${what} ${file} is a symbolic link; nanogpt does not write through links (one planted there could make it overwrite the file it points to)`,
      `remove the link (rm ${file}) or use another output folder`,
    );
  }
  if (code === 'ENXIO') return notRegular(file, what, 'a FIFO');
  return err as Error;
}

function notRegular(file: string, what: string, kind: string): UserError {
  return new UserError(`${what} ${file} is ${kind}, not a regular file`, `remove it or use another output folder`);
}

/** Opens `file` for writing, refusing a symbolic link or anything but a regular file there. Returns the fd. */
export function openForWriteSync(file: string, mode: WriteMode, what: string): number {
  let fd: number;
  try {
    fd = openSync(file, flagsFor(mode), 0o666);
  } catch (err) {
    throw openError(file, what, err);
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw notRegular(file, what, fileKind(st));
  }
  return fd;
}

/** Opens `file` for writing, refusing a symbolic link or anything but a regular file there. */
export async function openForWrite(file: string, mode: WriteMode, what: string): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await fs.open(file, flagsFor(mode), 0o666);
  } catch (err) {
    throw openError(file, what, err);
  }
  const st = await handle.stat();
  if (!st.isFile()) {
    await handle.close();
    throw notRegular(file, what, fileKind(st));
  }
  return handle;
}

/**
 * Creates a new file that must not exist yet (O_CREAT | O_EXCL), for temp files: the kernel then refuses a file or
 * a symbolic link planted at the name instead of writing through it.
 */
export async function createExclusive(file: string, what: string): Promise<FileHandle> {
  try {
    return await fs.open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o666);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new UserError(`${what} ${file} already exists (a file or link there is not overwritten)`, `remove it, then run again`);
    }
    throw err;
  }
}
