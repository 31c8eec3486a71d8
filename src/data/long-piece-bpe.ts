/**
 * GPT-2 BPE for pieces too long for tiktoken. tiktoken's merge loop rescans every part of a piece for each merge,
 * so a piece of n bytes costs O(n²): a 64 KB run of letters takes ~3 s, and 1M-character runs (a minified file, a
 * line of dashes, a long number) end in "RuntimeError: unreachable" inside its WebAssembly. Web text has such
 * runs, and one of them must not stop `nanogpt prepare`. This is the same BPE in O(n log n).
 *
 * Why the tokens are tiktoken's. tiktoken encodes a piece that is itself a token as that token (so does `encode`);
 * otherwise it runs BPE (its `_byte_pair_merge`): start with one part per byte; while some adjacent pair of parts
 * has a rank (the concatenated bytes are a token), merge the pair with the lowest rank, the leftmost one on ties
 * (its scan keeps the first minimum); the tokens are the final parts. Here:
 * - The same parts: a doubly linked list over byte offsets; a part is named by the offset it starts at, which no
 *   merge changes (merging p with the next part removes the next part's name), so offsets order the parts as the
 *   list does.
 * - The same ranks: every part is a token (a byte, or a merge of two parts that had a rank), so the concatenation
 *   of two parts is determined by their two tokens; `pairs` maps (left token, right token) → the token of the
 *   concatenation, built from every way of cutting every GPT-2 token in two tokens. That is exactly tiktoken's
 *   lookup of the concatenated bytes.
 * - The same choice: `pairRank[p]` always holds the current rank of the pair (p, next part), or NONE; each time it
 *   is set to a rank, (rank, p) goes into a min-heap ordered by rank, then offset. A popped entry is acted on only
 *   if pairRank[p] still equals its rank, i.e. its key is the key of a pair that exists now; entries of pairs
 *   that merging destroyed are dropped when they surface. Every existing pair has an entry with its current key,
 *   so the first entry that passes is the minimum over existing pairs of (rank, offset): lowest rank, leftmost on
 *   ties, the pair tiktoken merges. After a merge only the pairs touching the new part change (with the previous
 *   part and with the next one); both are recomputed and pushed, as tiktoken recomputes both neighbours.
 * Each step therefore merges the same pair as tiktoken, so the final parts are the same. There are at most n - 1
 * merges and 3n pushes, each O(log n); memory is ~21 bytes per byte of the piece (the heap's 8 per entry most of
 * it), freed when it returns.
 */
import { gpt2TokenBytes } from './bpe-wasm.js';

/** Offsets and ranks are packed into one heap key: rank · 2^32 + offset, exact in a double (rank < 2^16). */
const OFFSET_SPAN = 2 ** 32;
const EMPTY = 0xffffffff;
/** "No pair": GPT-2's ranks stop at 50,256, so 16 bits hold them and this. */
const NONE = 0xffff;

/** (left token, right token) → the token of their concatenation, as an open-addressing hash table. */
class PairTable {
  private readonly keys: Uint32Array;
  private readonly values: Uint16Array;
  private readonly mask: number;
  private readonly shift: number;

  constructor(pairs: ReadonlyArray<readonly [number, number, number]>) {
    let bits = 4;
    while (1 << bits < pairs.length * 2) bits++;
    this.keys = new Uint32Array(1 << bits).fill(EMPTY);
    this.values = new Uint16Array(1 << bits);
    this.mask = (1 << bits) - 1;
    this.shift = 32 - bits;
    for (const [left, right, merged] of pairs) {
      const key = ((left << 16) | right) >>> 0;
      let i = this.slot(key);
      while (this.keys[i] !== EMPTY && this.keys[i] !== key) i = (i + 1) & this.mask;
      this.keys[i] = key;
      this.values[i] = merged;
    }
  }

  /** Fibonacci hashing: the top bits of the product (its low bits would depend on the right token alone). */
  private slot(key: number): number {
    return Math.imul(key, 0x9e3779b1) >>> this.shift;
  }

  /** The merged token, or NONE when the two tokens' bytes together are not a token. */
  get(left: number, right: number): number {
    const key = ((left << 16) | right) >>> 0;
    for (let i = this.slot(key); ; i = (i + 1) & this.mask) {
      const k = this.keys[i]!;
      if (k === key) return this.values[i]!;
      if (k === EMPTY) return NONE;
    }
  }
}

/** GPT-2 BPE of single pieces in O(n log n); see the file comment for why it equals tiktoken's. */
export class LongPieceBpe {
  private readonly utf8 = new TextEncoder();

  private constructor(
    /** Token bytes (one char per byte) → rank, for the whole-piece lookup tiktoken does first. */
    private readonly tokenOf: Map<string, number>,
    private readonly maxTokenBytes: number,
    private readonly byteToken: Uint16Array,
    private readonly pairs: PairTable,
  ) {}

  /** Built from the GPT-2 ranks tiktoken ships (~100 ms); one per thread is enough (see `forThread`). */
  static build(): LongPieceBpe {
    const bytesOf = gpt2TokenBytes();
    const latin1 = (b: Uint8Array): string => String.fromCharCode.apply(null, b as unknown as number[]);
    const tokenOf = new Map<string, number>();
    bytesOf.forEach((b, rank) => {
      const key = latin1(b);
      // tiktoken keys its table by bytes, so two ranks with the same bytes would be one token there.
      if (tokenOf.has(key)) throw new Error(`internal error: GPT-2 ranks ${tokenOf.get(key)} and ${rank} have the same bytes`);
      tokenOf.set(key, rank);
    });
    const byteToken = new Uint16Array(256);
    for (let b = 0; b < 256; b++) {
      const rank = tokenOf.get(String.fromCharCode(b));
      if (rank === undefined) throw new Error(`internal error: GPT-2 has no token for byte ${b}`);
      byteToken[b] = rank;
    }
    const pairs: [number, number, number][] = [];
    let maxTokenBytes = 0;
    for (const [key, merged] of tokenOf) {
      maxTokenBytes = Math.max(maxTokenBytes, key.length);
      for (let cut = 1; cut < key.length; cut++) {
        const left = tokenOf.get(key.slice(0, cut));
        const right = tokenOf.get(key.slice(cut));
        if (left !== undefined && right !== undefined) pairs.push([left, right, merged]);
      }
    }
    return new LongPieceBpe(tokenOf, maxTokenBytes, byteToken, new PairTable(pairs));
  }

  private static shared: LongPieceBpe | undefined;

  /** The thread's instance, built on first use (most corpora never need it). */
  static forThread(): LongPieceBpe {
    LongPieceBpe.shared ??= LongPieceBpe.build();
    return LongPieceBpe.shared;
  }

  /** The tokens of one pre-tokenization piece: those tiktoken's encode_ordinary gives for it. */
  encode(piece: string): Uint32Array {
    const bytes = this.utf8.encode(piece);
    const n = bytes.length;
    if (n === 0) return new Uint32Array(0);
    if (n <= this.maxTokenBytes) {
      // tiktoken looks a whole piece up before running BPE on it (a token's own merges need not rebuild it).
      const whole = this.tokenOf.get(String.fromCharCode.apply(null, bytes as unknown as number[]));
      if (whole !== undefined) return Uint32Array.of(whole);
    }
    const token = new Uint16Array(n); // the token of the part starting at each offset (parts only)
    const next = new Int32Array(n); // offset of the next part, n at the end
    const prev = new Int32Array(n); // offset of the previous part, -1 at the start
    const pairRank = new Uint16Array(n); // rank of (part, next part); NONE when there is none or no part starts here
    // Live entries stay near n (at most 1.07n for the runs the test tries); the worst case is 2n: n - 1 initial
    // pushes, then each merge pops at least one entry and pushes at most two.
    let heap = new Float64Array(Math.max(16, n));
    let size = 0;
    const push = (rank: number, offset: number): void => {
      if (size === heap.length) {
        const grown = new Float64Array(Math.min(2 * n, Math.ceil(heap.length * 1.5)));
        grown.set(heap);
        heap = grown;
      }
      const key = rank * OFFSET_SPAN + offset;
      let i = size++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        if (heap[parent]! <= key) break;
        heap[i] = heap[parent]!;
        i = parent;
      }
      heap[i] = key;
    };
    const pop = (): number => {
      const top = heap[0]!;
      const last = heap[--size]!;
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= size) break;
        if (child + 1 < size && heap[child + 1]! < heap[child]!) child++;
        if (heap[child]! >= last) break;
        heap[i] = heap[child]!;
        i = child;
      }
      heap[i] = last;
      return top;
    };

    for (let i = 0; i < n; i++) {
      token[i] = this.byteToken[bytes[i]!]!;
      next[i] = i + 1;
      prev[i] = i - 1;
    }
    for (let i = 0; i < n - 1; i++) {
      const rank = this.pairs.get(token[i]!, token[i + 1]!);
      pairRank[i] = rank;
      if (rank !== NONE) push(rank, i);
    }
    pairRank[n - 1] = NONE;

    let parts = n;
    while (size > 0) {
      const key = pop();
      const rank = Math.floor(key / OFFSET_SPAN);
      const at = key - rank * OFFSET_SPAN;
      if (pairRank[at] !== rank) continue; // a pair that a merge destroyed
      // Merge the part at `at` with the next one.
      const gone = next[at]!;
      const after = next[gone]!;
      token[at] = rank;
      next[at] = after;
      if (after < n) prev[after] = at;
      pairRank[gone] = NONE;
      parts--;
      const right = after < n ? this.pairs.get(rank, token[after]!) : NONE;
      pairRank[at] = right;
      if (right !== NONE) push(right, at);
      const before = prev[at]!;
      if (before >= 0) {
        const left = this.pairs.get(token[before]!, rank);
        pairRank[before] = left;
        if (left !== NONE) push(left, before);
      }
    }

    const out = new Uint32Array(parts);
    for (let at = 0, k = 0; at < n; at = next[at]!) out[k++] = token[at]!;
    return out;
  }
}
