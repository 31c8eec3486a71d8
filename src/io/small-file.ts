import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';

/**
 * The text of a small regular file we keep beside user data (a lock, a cache), or undefined when it is missing,
 * unreadable, not a regular file or larger than `maxBytes`. Opened non-blocking, so a FIFO planted under that name
 * can never hang the caller.
 */
export function readSmallFileSync(file: string, maxBytes = 64 * 1024): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > maxBytes) return undefined;
    const buf = Buffer.alloc(st.size);
    let done = 0;
    while (done < buf.length) {
      const n = readSync(fd, buf, done, buf.length - done, done);
      if (n === 0) break;
      done += n;
    }
    return buf.subarray(0, done).toString('utf8');
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}
