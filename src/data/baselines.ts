// Reference losses a language model must beat to have learnt anything beyond token frequencies: the uniform
// distribution over the vocabulary (what an untrained model scores) and the unigram distribution of the training
// tokens, scored on the validation tokens. A val loss near the unigram figure means the model predicts the common
// tokens and nothing of context.
import { closeSync, openSync, readSync } from 'node:fs';

export interface TokenBaselines {
  /** ln(vocab): cross-entropy of the uniform distribution, in nats. */
  uniform: number;
  /** Cross-entropy on val of the train tokens' unigram distribution (add-one smoothed over the vocabulary), in nats. */
  unigram: number;
  vocab: number;
  trainTokens: number;
  valTokens: number;
}

const CHUNK_TOKENS = 1 << 22; // 8 MB per read: memory stays flat for a 17 GB OpenWebText train.bin

/** Calls `each` with successive uint16 token chunks of a token file (little-endian, as `nanogpt prepare` writes). */
function forEachChunk(file: string, each: (tokens: Uint16Array) => void): void {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(CHUNK_TOKENS * 2);
    let offset = 0;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, offset);
      if (n < 2) break;
      const whole = n - (n % 2);
      each(new Uint16Array(buf.buffer, buf.byteOffset, whole / 2));
      offset += whole;
    }
  } finally {
    closeSync(fd);
  }
}

/** Both baselines for a prepared data set; tokens at or above `vocab` count in the smoothing mass only. */
export function tokenBaselines(trainBin: string, valBin: string, vocab = 50257): TokenBaselines {
  const counts = new Float64Array(vocab);
  let trainTokens = 0;
  forEachChunk(trainBin, (t) => {
    for (let i = 0; i < t.length; i++) if (t[i]! < vocab) counts[t[i]!]! += 1;
    trainTokens += t.length;
  });
  // Add-one smoothing: a token never seen in train still gets a finite probability (as any real model gives it).
  const denominator = trainTokens + vocab;
  let nll = 0;
  let valTokens = 0;
  forEachChunk(valBin, (t) => {
    for (let i = 0; i < t.length; i++) nll -= Math.log(((t[i]! < vocab ? counts[t[i]!]! : 0) + 1) / denominator);
    valTokens += t.length;
  });
  return { uniform: Math.log(vocab), unigram: valTokens ? nll / valTokens : NaN, vocab, trainTokens, valTokens };
}
