// Training batches from nanoGPT-format token files (uint16 little-endian): random windows of block_size + 1
// tokens read with positional reads, so a 17 GB train.bin is never loaded whole. Sampling is seeded and its state
// goes into snapshots, so a resumed run draws exactly the batches an uninterrupted run would.
import { closeSync, fstatSync, read, readSync, type Stats } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as torch from '../torch/index.js';
import { removeStaleTemps, writeBufferAtomic } from '../io/atomic.js';
import { readSmallFileSync } from '../io/bounded-read.js';
import { openRegularFileSync } from '../io/regular-file.js';
import { isUserError, UserError } from '../util/errors.js';
import { fileKind } from '../util/format.js';
import { withPath } from '../util/system-errors.js';
import { SamplerRng } from '../util/rng.js';

export type Split = 'train' | 'val';

/** uint16 ids: a vocabulary this large accepts every id, so no check is needed. */
const ALL_IDS = 65536;

const readAsync = promisify(read);

const DATA_FIX = 'point data_dir at a directory holding regular train.bin and val.bin files (from `nanogpt prepare`)';

/** What a non-regular file is, for messages. */
/**
 * Facts about a token file cached beside it (`.<name>.tokens.json`), keyed by size, mtime and inode, so the
 * full scan for out-of-vocabulary ids runs once per file version rather than at every start.
 */
interface ScanRecord {
  format: 'nanogpt-ts/token-scan';
  size: number;
  mtimeMs: number;
  ino: number;
  maxToken: number;
}

export class TokenFile {
  readonly numTokens: number;
  #fd: number;

  /** `vocabSize`: ids at or above it are errors (the model's embedding has no row for them). */
  constructor(
    readonly file: string,
    readonly vocabSize = ALL_IDS,
  ) {
    let opened: Stats;
    try {
      ({ fd: this.#fd, stat: opened } = openRegularFileSync(file, (st) => new UserError(`${file} is ${fileKind(st)}, not a token file`, DATA_FIX)));
    } catch (err) {
      if (isUserError(err)) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      throw new UserError(
        `cannot open ${file} (${code ?? (err as Error).message})`,
        code === 'ENOENT' ? 'run `nanogpt prepare` first, or point data_dir at a directory with train.bin and val.bin' : 'check the file permissions',
      );
    }
    const size = opened.size;
    if (size % 2 !== 0) {
      closeSync(this.#fd);
      throw new UserError(`${file} has an odd size (${size} bytes), so it is not a uint16 token file`, 'regenerate it with `nanogpt prepare`');
    }
    this.numTokens = size / 2;
  }

  /** Reads tokens [offset, offset + dst.length) into `dst`, and checks each is inside the vocabulary. */
  read(offset: number, dst: Uint16Array): void {
    const bytes = new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
    let done = 0;
    while (done < bytes.length) {
      let n: number;
      try {
        n = readSync(this.#fd, bytes, done, bytes.length - done, offset * 2 + done);
      } catch (err) {
        throw withPath(err, this.file);
      }
      if (n === 0) {
        throw new UserError(
          `${this.file} ended at byte ${offset * 2 + done} (token ${offset + Math.floor(done / 2)}), but held ${this.numTokens} tokens ` +
            'when training started: it was truncated or rewritten during the run',
          'do not change data files while a run reads them: restore the file (or prepare into a new directory and point data_dir there), then rerun the same command to resume from the last snapshot',
        );
      }
      done += n;
    }
    // ~45 µs for a 32 × 1025 batch: cheap next to a step, and it guards what actually reaches the embedding, even
    // in a file changed after the start-up scan.
    if (this.vocabSize < ALL_IDS) {
      for (let i = 0; i < dst.length; i++) if (dst[i]! >= this.vocabSize) throw this.#outOfVocab(offset + i, dst[i]!);
    }
  }

  #outOfVocab(index: number, id: number): UserError {
    return new UserError(
      `${this.file}: token id ${id} at token index ${index} (byte offset ${index * 2}) is outside the model's vocabulary ` +
        `(vocab_size ${this.vocabSize}, ids 0..${this.vocabSize - 1})`,
      'the file was written for another tokenizer or model: regenerate it with `nanogpt prepare` from the text, or train a model whose vocab_size covers its ids (model.vocab_size when training from scratch)',
    );
  }

  /**
   * Scans the whole file once for ids outside the vocabulary (0.2-0.3 s per 100 MB from the page cache), so a bad
   * id fails the run at the start instead of whenever a batch first draws it. The file's largest id is cached in
   * a sidecar keyed by size, mtime and inode (written when the directory allows; a read-only data_dir just scans
   * each time). Reads are asynchronous, so signals are still handled during a long scan.
   */
  async checkIds(log: (line: string) => void = () => undefined): Promise<void> {
    if (this.vocabSize >= ALL_IDS) return;
    const st = fstatSync(this.#fd);
    const sidecar = path.join(path.dirname(this.file), `.${path.basename(this.file)}.tokens.json`);
    const key = { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
    const cached = readScanRecord(sidecar);
    let maxToken: number;
    let scanned: Awaited<ReturnType<TokenFile['scan']>> | undefined;
    if (cached && cached.size === key.size && cached.mtimeMs === key.mtimeMs && cached.ino === key.ino) {
      maxToken = cached.maxToken;
    } else {
      const started = Date.now();
      if (st.size > 1e9) log(`checking the token ids of ${this.file} (${(st.size / 1e9).toFixed(1)} GB, once per file version)…`);
      scanned = await this.scan(this.vocabSize);
      maxToken = scanned.maxToken;
      if (st.size > 1e9) log(`checked ${this.file} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      await writeScanRecord(sidecar, { format: 'nanogpt-ts/token-scan', ...key, maxToken });
    }
    if (maxToken >= this.vocabSize) {
      const first = scanned ?? (await this.scan(this.vocabSize));
      if (first.badIndex >= 0) throw this.#outOfVocab(first.badIndex, first.badId);
      // Only a wrong (hand-edited) cache gets here: correct it.
      await writeScanRecord(sidecar, { format: 'nanogpt-ts/token-scan', ...key, maxToken: first.maxToken });
    }
  }

  /** The largest id, and the first id at or above `limit` (index -1 when none). */
  async scan(limit: number): Promise<{ maxToken: number; badIndex: number; badId: number }> {
    const chunk = new Uint16Array(4 << 20);
    const bytes = new Uint8Array(chunk.buffer);
    const end = this.numTokens * 2;
    let maxToken = 0;
    let badIndex = -1;
    let badId = 0;
    for (let pos = 0; pos < end; ) {
      let n: number;
      try {
        n = (await readAsync(this.#fd, bytes, 0, Math.min(bytes.length, end - pos), pos)).bytesRead;
      } catch (err) {
        throw withPath(err, this.file);
      }
      if (n === 0 || n % 2 !== 0) break; // shrank meanwhile: the batch reads will say so
      const ids = chunk.subarray(0, n / 2);
      let m = maxToken;
      for (let i = 0; i < ids.length; i++) if (ids[i]! > m) m = ids[i]!;
      if (m >= limit && badIndex < 0) {
        const i = ids.findIndex((id) => id >= limit);
        badIndex = pos / 2 + i;
        badId = ids[i]!;
      }
      maxToken = m;
      pos += n;
    }
    return { maxToken, badIndex, badId };
  }

  close(): void {
    closeSync(this.#fd);
  }
}

/** Only a cache: a data_dir we may not write is fine. Temp files a killed writer left beside it go first. */
async function writeScanRecord(file: string, record: ScanRecord): Promise<void> {
  await removeStaleTemps(path.dirname(file), [path.basename(file)], { olderThanMs: Date.now(), locked: false });
  await writeBufferAtomic(file, JSON.stringify(record) + '\n').catch(() => undefined);
}

function readScanRecord(file: string): ScanRecord | undefined {
  try {
    const r = JSON.parse(readSmallFileSync(file) ?? 'null') as Partial<ScanRecord> | null;
    if (!r) return undefined;
    const numbers = [r.size, r.mtimeMs, r.ino, r.maxToken].every((v) => typeof v === 'number' && Number.isFinite(v));
    return r.format === 'nanogpt-ts/token-scan' && numbers ? (r as ScanRecord) : undefined;
  } catch {
    return undefined;
  }
}

export interface SamplerState {
  train: number[];
  val: number[];
}

export interface Batch {
  x: torch.Tensor;
  y: torch.Tensor;
}

export class BatchLoader {
  readonly files: Record<Split, TokenFile>;
  readonly rngs: Record<Split, SamplerRng>;

  constructor(
    dataDir: string,
    readonly blockSize: number,
    readonly batchSize: number,
    seed: number,
    readonly device = 'cpu',
    vocabSize = ALL_IDS,
  ) {
    const train = new TokenFile(path.join(dataDir, 'train.bin'), vocabSize);
    let val: TokenFile;
    try {
      val = new TokenFile(path.join(dataDir, 'val.bin'), vocabSize);
    } catch (err) {
      train.close();
      throw err;
    }
    this.files = { train, val };
    for (const split of ['train', 'val'] as const) {
      const n = this.files[split].numTokens;
      if (n < blockSize + 2) {
        this.close();
        throw new UserError(
          `${this.files[split].file} holds ${n} tokens, fewer than block_size + 2 = ${blockSize + 2}`,
          'use a smaller block_size, or prepare more data (a larger corpus or a larger --val_fraction)',
        );
      }
    }
    // Two independent streams so evaluation never shifts the training batches.
    this.rngs = { train: new SamplerRng(seed), val: new SamplerRng(seed ^ 0x5bd1e995) };
  }

  /** A batch of `batchSize` random windows: x = tokens[i, i+T), y = tokens[i+1, i+T+1). Shapes [B, T], int64. */
  next(split: Split): Batch {
    const T = this.blockSize;
    const B = this.batchSize;
    const file = this.files[split];
    const buf = new Uint16Array(B * (T + 1));
    for (let b = 0; b < B; b++) {
      const start = this.rngs[split].below(file.numTokens - T - 1 + 1);
      file.read(start, buf.subarray(b * (T + 1), (b + 1) * (T + 1)));
    }
    return torch.scope(() => {
      const win = torch.tensor(buf, { shape: [B, T + 1], device: this.device });
      return { x: win.narrow(1, 0, T), y: win.narrow(1, 1, T) };
    });
  }

  /** The start-up scan of both files for ids outside the vocabulary (see TokenFile.checkIds). */
  async checkIds(log?: (line: string) => void): Promise<void> {
    for (const split of ['train', 'val'] as const) await this.files[split].checkIds(log);
  }

  getState(): SamplerState {
    return { train: this.rngs.train.getState(), val: this.rngs.val.getState() };
  }

  setState(s: SamplerState): void {
    this.rngs.train.setState(s.train);
    this.rngs.val.setState(s.val);
  }

  close(): void {
    for (const f of Object.values(this.files ?? {})) f?.close();
  }
}
