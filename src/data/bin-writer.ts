import { createHash, type Hash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { tempPathFor } from '../io/atomic.js';
import { withPath } from '../util/system-errors.js';
import { createExclusive } from '../io/no-follow.js';

/** Bytes gathered before one write(2): large enough that syscalls are not the cost, small enough to be bounded. */
const FLUSH_BYTES = 4 * 1024 * 1024;

/**
 * A uint16 little-endian token file written through a temp file beside its final name: nothing appears under the
 * final name until commit(), and abort() (or a crash) leaves at most a hidden `.name.pid.rand.tmp` file.
 * The sha256 is computed while writing, so a 17 GB train.bin is never read back to hash it.
 */
export class BinWriter {
  readonly tempPath: string;
  private handle: FileHandle | undefined;
  private readonly hash: Hash = createHash('sha256');
  private chunks: Uint8Array[] = [];
  private pendingBytes = 0;
  private written = 0;
  private writing: Promise<void> = Promise.resolve();
  private staging = new Uint8Array(0);
  tokens = 0;

  private constructor(readonly finalPath: string, handle: FileHandle, tempPath: string) {
    this.handle = handle;
    this.tempPath = tempPath;
  }

  static async open(finalPath: string): Promise<BinWriter> {
    await fs.mkdir(path.dirname(path.resolve(finalPath)), { recursive: true });
    const tmp = tempPathFor(finalPath);
    return new BinWriter(finalPath, await createExclusive(tmp, 'temp file'), tmp);
  }

  /**
   * Appends tokens. The caller must not modify `tokens` afterwards (it is queued, not copied). Returns a promise
   * only when a flush was started, so the caller can await it for backpressure.
   */
  append(tokens: Uint16Array): Promise<void> | undefined {
    // The files are little-endian by contract; typed arrays use the host order, which is LE on every platform
    // Node supports in practice. Guarded so a big-endian host fails loudly instead of writing swapped bytes.
    if (!LITTLE_ENDIAN) throw new Error('big-endian hosts are not supported for writing token files');
    if (tokens.length === 0) return undefined;
    const bytes = new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength);
    this.chunks.push(bytes);
    this.pendingBytes += bytes.byteLength;
    this.tokens += tokens.length;
    return this.pendingBytes >= FLUSH_BYTES ? this.flush() : undefined;
  }

  /** Writes what is queued; writes are chained so bytes reach the file in append order. */
  flush(): Promise<void> {
    if (this.chunks.length === 0) return this.writing;
    const chunks = this.chunks;
    this.chunks = [];
    this.pendingBytes = 0;
    const handle = this.handle!;
    this.writing = this.writing.then(async () => {
      const buf = chunks.length === 1 ? chunks[0]! : this.gather(chunks);
      // Hashed here, in the write chain, so the hash sees bytes in file order; one update per flush, not per document.
      this.hash.update(buf);
      let off = 0;
      while (off < buf.byteLength) {
        // A write through a handle reports no path; the user needs to know which file hit the full disk.
        const { bytesWritten } = await handle.write(buf, off, buf.byteLength - off, this.written + off).catch((err: unknown) => {
          throw withPath(err, this.finalPath);
        });
        off += bytesWritten;
      }
      this.written += buf.byteLength;
    });
    return this.writing;
  }

  /**
   * Copies chunks into one staging buffer that is reused from flush to flush (writes are chained, so only one
   * uses it at a time). A fresh Buffer.concat per flush cost the main thread ~10 ms per 4 MB on this VM, almost
   * all of it first-touch page faults on the new memory; the copy into touched memory is ~1 ms.
   */
  private gather(chunks: Uint8Array[]): Uint8Array {
    let total = 0;
    for (const c of chunks) total += c.byteLength;
    if (this.staging.byteLength < total) this.staging = new Uint8Array(Math.max(total, FLUSH_BYTES + (FLUSH_BYTES >> 2)));
    let at = 0;
    for (const c of chunks) {
      this.staging.set(c, at);
      at += c.byteLength;
    }
    return this.staging.subarray(0, total);
  }

  /** Flushes, fsyncs and closes the temp file; returns its size and sha256. The file is not yet renamed. */
  async finish(): Promise<{ bytes: number; sha256: string; tokens: number }> {
    await this.flush();
    await this.handle!.sync().catch((err: unknown) => {
      throw withPath(err, this.finalPath);
    });
    await this.handle!.close();
    this.handle = undefined;
    return { bytes: this.written, sha256: this.hash.digest('hex'), tokens: this.tokens };
  }

  /** Renames the finished temp file to its final name (atomic on one file system). */
  async commit(): Promise<void> {
    await fs.rename(this.tempPath, this.finalPath);
  }

  /** Drops the temp file; safe to call in any state. */
  async abort(): Promise<void> {
    await this.writing.catch(() => undefined);
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
    await fs.rm(this.tempPath, { force: true });
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
