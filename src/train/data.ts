// Training batches from nanoGPT-format token files (uint16 little-endian): random windows of block_size + 1
// tokens read with positional reads, so a 17 GB train.bin is never loaded whole. Sampling is seeded and its state
// goes into snapshots, so a resumed run draws exactly the batches an uninterrupted run would.
import { closeSync, constants as fsConstants, fstatSync, openSync, readSync } from 'node:fs';
import * as path from 'node:path';
import * as torch from '../torch/index.js';
import { UserError } from '../util/errors.js';
import { SamplerRng } from '../util/rng.js';

export type Split = 'train' | 'val';

export class TokenFile {
  readonly numTokens: number;
  #fd: number;

  constructor(readonly file: string) {
    try {
      // Non-blocking: a FIFO under that name must be refused below, not waited on forever.
      this.#fd = openSync(file, fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new UserError(
        `cannot open ${file} (${code ?? (err as Error).message})`,
        code === 'ENOENT' ? 'run `nanogpt prepare` first, or point data_dir at a directory with train.bin and val.bin' : 'check the file permissions',
      );
    }
    const st = fstatSync(this.#fd);
    if (!st.isFile()) {
      closeSync(this.#fd);
      throw new UserError(`${file} is not a regular file`, 'point data_dir at a directory with the train.bin and val.bin that nanogpt prepare wrote');
    }
    const size = st.size;
    if (size % 2 !== 0) {
      closeSync(this.#fd);
      throw new UserError(`${file} has an odd size (${size} bytes), so it is not a uint16 token file`, 'regenerate it with `nanogpt prepare`');
    }
    this.numTokens = size / 2;
  }

  /** Reads tokens [offset, offset + dst.length) into `dst`. */
  read(offset: number, dst: Uint16Array): void {
    const bytes = new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength);
    let done = 0;
    while (done < bytes.length) {
      const n = readSync(this.#fd, bytes, done, bytes.length - done, offset * 2 + done);
      if (n === 0) throw new Error(`${this.file}: unexpected end of file at token ${offset + done / 2}`);
      done += n;
    }
  }

  close(): void {
    closeSync(this.#fd);
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
  ) {
    this.files = { train: new TokenFile(path.join(dataDir, 'train.bin')), val: new TokenFile(path.join(dataDir, 'val.bin')) };
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
