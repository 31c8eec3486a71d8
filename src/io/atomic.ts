import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { createExclusive } from './no-follow.js';

/** A temp-file name beside `finalPath`, so the final rename stays on one file system (and so is atomic). */
export function tempPathFor(finalPath: string): string {
  const dir = path.dirname(finalPath);
  return path.join(dir, `.${path.basename(finalPath)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/**
 * Writes a file atomically: `write` fills a temp file beside the target, which is fsynced and renamed over it.
 * If `write` throws (or the process dies), no partial file ever appears under `finalPath`.
 */
export async function writeFileAtomic(
  finalPath: string,
  write: (handle: FileHandle, tempPath: string) => Promise<void>,
): Promise<void> {
  await fs.mkdir(path.dirname(path.resolve(finalPath)), { recursive: true });
  const tmp = tempPathFor(finalPath);
  // Exclusive: a file or symbolic link already at the temp name is refused, never written through.
  const handle = await createExclusive(tmp, 'temp file');
  try {
    await write(handle, tmp);
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  try {
    await fs.rename(tmp, finalPath);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(path.resolve(finalPath)));
}

/** Atomic write of a whole buffer or string. */
export async function writeBufferAtomic(finalPath: string, data: Uint8Array | string): Promise<void> {
  await writeFileAtomic(finalPath, async (h) => {
    await h.writeFile(data);
  });
}

/** Makes a rename durable: fsync the directory that holds the entry (best effort where unsupported). */
async function fsyncDir(dir: string): Promise<void> {
  let h: FileHandle | undefined;
  try {
    h = await fs.open(dir, 'r');
    await h.sync();
  } catch {
    // Some file systems refuse fsync on directories; the rename is still atomic.
  } finally {
    await h?.close();
  }
}
