import { randomBytes } from 'node:crypto';
import * as fsSync from 'node:fs';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { withPath } from '../util/system-errors.js';
import { createExclusive } from './no-follow.js';

/**
 * A temp-file name beside `finalPath`, so the final rename stays on one file system (and so is atomic):
 * `.<name>.<pid>.<8 hex>.tmp`. parseTempName reads it back; removeStaleTemps relies on that shape.
 */
export function tempPathFor(finalPath: string): string {
  const dir = path.dirname(finalPath);
  return path.join(dir, `.${path.basename(finalPath)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

const TEMP_NAME = /^\.(.+)\.(\d+)\.([0-9a-f]{8})\.tmp$/;

/** The target name and writer pid of one of our temp files (see tempPathFor), or null for any other name. */
export function parseTempName(name: string): { target: string; pid: number } | null {
  const m = TEMP_NAME.exec(name);
  return m ? { target: m[1]!, pid: Number(m[2]) } : null;
}

/** Whether a process with this pid runs on this machine (EPERM: it does, as another user). */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temp files a killed run left in `dir` (a SIGKILL mid-write leaves one; at GPT-2 124M a snapshot's is
 * 1.5 GB). Only files of our own shape (tempPathFor) whose target is one of `targets`, modified before
 * `olderThanMs`, and either written by a pid that no longer runs here or found while the caller holds `dir`'s
 * lock (`locked`: no other nanogpt process writes these names there, whatever host it runs on). Anything else,
 * other users' files included, is left alone. Returns the paths removed.
 */
export async function removeStaleTemps(
  dir: string,
  targets: readonly string[],
  opts: { olderThanMs: number; locked: boolean },
): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch {
    return []; // no directory yet: nothing left behind
  }
  const removed: string[] = [];
  for (const name of names) {
    const parsed = parseTempName(name);
    if (!parsed || !targets.includes(parsed.target)) continue;
    if (!opts.locked && pidAlive(parsed.pid) && parsed.pid !== process.pid) continue;
    const file = path.join(dir, name);
    try {
      const st = await fs.lstat(file);
      if (!st.isFile() || st.mtimeMs >= opts.olderThanMs) continue;
      await fs.rm(file);
      removed.push(file);
    } catch {
      // Gone already, or not ours to remove (permissions): leave it.
    }
  }
  return removed;
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
    throw withPath(err, finalPath);
  }
  try {
    await handle.close();
    await fs.rename(tmp, finalPath);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw withPath(err, finalPath);
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

/**
 * writeBufferAtomic for callers that must not yield to the event loop (the trainer's per-evaluation report, written
 * between two steps): the same temp name, exclusive create without following links, fsync, rename.
 */
export function writeBufferAtomicSync(finalPath: string, data: Uint8Array | string): void {
  fsSync.mkdirSync(path.dirname(path.resolve(finalPath)), { recursive: true });
  const tmp = tempPathFor(finalPath);
  let fd: number;
  try {
    fd = fsSync.openSync(tmp, fsSync.constants.O_WRONLY | fsSync.constants.O_CREAT | fsSync.constants.O_EXCL | fsSync.constants.O_NOFOLLOW, 0o644);
  } catch (err) {
    throw withPath(err, tmp);
  }
  try {
    fsSync.writeFileSync(fd, data);
    fsSync.fsyncSync(fd);
    fsSync.closeSync(fd);
    fsSync.renameSync(tmp, finalPath);
  } catch (err) {
    try {
      fsSync.closeSync(fd);
    } catch {
      // already closed
    }
    fsSync.rmSync(tmp, { force: true });
    throw withPath(err, finalPath);
  }
}
