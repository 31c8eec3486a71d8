// A small seeded generator (xoshiro128**), in TypeScript so its state is a few integers: the trainer's data sampler
// (its state goes into snapshots) and text generation (one per sample, so a sample's tokens depend on its seed only,
// not on what else is decoded in the same batch). libtorch's generator stays reserved for model randomness.
export class SamplerRng {
  #s: Uint32Array;

  constructor(seed: number) {
    // SplitMix32-style expansion of the seed into four non-zero state words.
    this.#s = new Uint32Array(4);
    let x = (seed >>> 0) ^ 0x9e3779b9;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.#s[i] = (z ^ (z >>> 16)) >>> 0 || 1;
    }
  }

  nextUint32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform integer in [0, n) for n up to 2^53 (token files beyond 4G tokens included). */
  below(n: number): number {
    if (!(n >= 1) || !Number.isSafeInteger(n)) throw new RangeError(`below(${n}): need a positive safe integer`);
    return Math.floor(this.uniform() * n);
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  getState(): number[] {
    return Array.from(this.#s);
  }

  setState(state: readonly number[]): void {
    if (state.length !== 4 || state.some((v) => !Number.isInteger(v) || v < 0 || v > 0xffffffff)) throw new Error('invalid sampler state');
    this.#s = Uint32Array.from(state);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
