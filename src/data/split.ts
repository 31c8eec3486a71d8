import { UserError } from '../util/errors.js';

/** The original prepare.py's defaults: `train_test_split(test_size=0.0005, seed=2357)`. */
export const DEFAULT_VAL_FRACTION = 0.0005;
export const DEFAULT_SPLIT_SEED = 2357;

export type SplitName = 'train' | 'val';

const MASK64 = (1n << 64n) - 1n;

/** splitmix64's finaliser: a fixed bijective mix, so nearby (seed, index) pairs give unrelated outputs. */
function mix64(x: bigint): bigint {
  x = (x + 0x9e3779b97f4a7c15n) & MASK64;
  x = ((x ^ (x >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  x = ((x ^ (x >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return x ^ (x >> 31n);
}

/**
 * A uniform number in [0, 1) for document `index` under `seed`. It depends on nothing else (not the corpus
 * size, not the worker count), which is what lets the split be decided while streaming.
 */
export function splitDraw(seed: number, index: number): number {
  const h = mix64(mix64(BigInt.asUintN(64, BigInt(seed))) ^ BigInt(index));
  return Number(h >> 11n) / 2 ** 53;
}

/**
 * Deterministic document-level train/val assignment for a stream of unknown length.
 *
 * Document i goes to val when splitDraw(seed, i) < valFraction, so about valFraction of the documents land in
 * val, the same ones on every run. The original shuffled with the known corpus size; a stream does not know its
 * size, hence the per-document draw.
 *
 * "val never empty" (and train never empty): the most recent document is held back (see `push`) and decided only
 * when the next one arrives or at `finish`; if at the end one split is still empty, the held-back last document
 * goes there. So a corpus of N ≥ 2 documents always gives both splits at least one document; N = 1 is an error
 * (a single document cannot be split at document level).
 */
export class StreamingSplitter<T> {
  private index = 0;
  private held: { item: T; draw: number } | undefined;
  readonly counts = { train: 0, val: 0 };

  constructor(
    readonly valFraction: number,
    readonly seed: number,
    private readonly emit: (split: SplitName, item: T) => void,
  ) {
    if (!(valFraction > 0 && valFraction < 1)) throw new UserError(`the validation fraction must be in (0, 1), got ${valFraction}`);
  }

  /** Adds the next document; the previous one is emitted now that it is known not to be the last. */
  push(item: T): void {
    const draw = splitDraw(this.seed, this.index++);
    if (this.held) this.send(this.held.draw < this.valFraction ? 'val' : 'train', this.held.item);
    this.held = { item, draw };
  }

  /** Emits the last document, into whichever split is empty if one is. Throws a UserError for < 2 documents. */
  finish(what: string): void {
    if (this.index === 0) {
      throw new UserError(`${what} has no documents (nothing to tokenize)`, 'check the input path, format and text field');
    }
    if (this.index === 1) {
      throw new UserError(
        `${what} has only 1 document; the train/val split is by document and needs at least 2`,
        'add documents, or for one long .txt file split it into documents with --split_on_blank_lines',
      );
    }
    const held = this.held!;
    this.held = undefined;
    let split: SplitName = held.draw < this.valFraction ? 'val' : 'train';
    if (this.counts.val === 0) split = 'val';
    else if (this.counts.train === 0) split = 'train';
    this.send(split, held.item);
  }

  get documents(): number {
    return this.index;
  }

  private send(split: SplitName, item: T): void {
    this.counts[split]++;
    this.emit(split, item);
  }
}
