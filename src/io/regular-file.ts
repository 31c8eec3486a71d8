// Opening a user-named file for reading, safely: without blocking (opening a FIFO for reading would wait for a
// writer forever) and then checking what was actually opened (fstat, not a stat of the name, which could be
// swapped in between). Anything but a regular file — FIFO, device, socket, directory — is closed again and refused
// with the caller's error. Errors of the open itself (ENOENT, EACCES) are thrown as they are, for the caller to
// describe in its own terms.
import { closeSync, constants, fstatSync, openSync, promises as fs, type Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

const READ_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/** Synchronous: the open file descriptor and its stat. `refuse` builds the error for a file that is not regular. */
export function openRegularFileSync(file: string, refuse: (st: Stats) => Error): { fd: number; stat: Stats } {
  const fd = openSync(file, READ_FLAGS);
  let stat: Stats;
  try {
    stat = fstatSync(fd);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  if (!stat.isFile()) {
    closeSync(fd);
    throw refuse(stat);
  }
  return { fd, stat };
}

/** openRegularFileSync without blocking the event loop. */
export async function openRegularFile(file: string, refuse: (st: Stats) => Error): Promise<{ handle: FileHandle; stat: Stats }> {
  const handle = await fs.open(file, READ_FLAGS);
  let stat: Stats;
  try {
    stat = await handle.stat();
  } catch (err) {
    await handle.close();
    throw err;
  }
  if (!stat.isFile()) {
    await handle.close();
    throw refuse(stat);
  }
  return { handle, stat };
}
