// `npm run bench -- generate [--max_new_tokens N] [--prompt_len N] [--runs N] [--threads N] [--bf16] [--samples N]`
//
// What does the KV cache buy when sampling? A GPT-2 124M-shaped model (random weights: speed does not depend on
// what the weights are) generates max_new_tokens tokens after the original's default prompt "It is interesting "
// (or prompt_len random tokens), greedily so both paths do identical work per step, once with incremental
// decoding and once recomputing the whole context for every token as nanoGPT's generate() does. Without the cache
// step t runs the transformer over prompt + t tokens; with it, over one. The LM head (a 768 × 50257 matmul, the
// largest single cost of a cached step) runs on one position either way.
//
// Then `--samples` (3) samples decoded together as one batch against the same samples one after another (sampled,
// temperature 0.8, each from its own seeded generator, so both produce the same texts: checked).
import * as torch from '../src/torch/index.js';
import { GPT } from '../src/gpt/model.js';
import { generate, generateBatch } from '../src/gpt/generate.js';
import { encodeOrdinary } from '../src/data/tokenizer.js';
import { fixed, intFlag, machineLine, median, parseFlags, peakRssMiB, printTable, timeOnceMs } from './util.js';

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, ['max_new_tokens', 'prompt_len', 'runs', 'threads', 'bf16', 'samples']);
  const bf16 = flags.has('bf16');
  const samples = intFlag(flags, 'samples') ?? 3;
  const maxNewTokens = intFlag(flags, 'max_new_tokens') ?? 100;
  const promptLen = intFlag(flags, 'prompt_len');
  const runs = intFlag(flags, 'runs') ?? 2;
  const threads = intFlag(flags, 'threads');
  if (threads !== undefined) torch.setNumThreads(threads);

  torch.manualSeed(0);
  const model = new GPT({ nLayer: 12, nHead: 12, nEmbd: 768, blockSize: 1024, vocabSize: 50257, dropout: 0, bias: true });
  model.eval();
  const prompt = promptLen === undefined ? await encodeOrdinary('It is interesting ') : Array.from({ length: promptLen }, (_, i) => (i * 7919) % 50257);
  if (prompt.length + maxNewTokens > model.config.blockSize) {
    console.log(`note: ${prompt.length} + ${maxNewTokens} tokens exceed block_size ${model.config.blockSize}; the cached run slides (a full forward per token past the limit)`);
  }

  console.log(machineLine());
  console.log(`libtorch ${torch.version().torch}, ${torch.getNumThreads()} threads; GPT-2 124M shape (${(model.countParameters(false) / 1e6).toFixed(1)}M parameters), random weights, ${bf16 ? 'bf16 autocast' : 'fp32'}`);
  console.log(`${maxNewTokens} new tokens after a ${prompt.length}-token prompt, greedy; median of ${runs} run(s) each, cached and uncached alternating`);

  // Warm-up: first calls pay for allocations and oneDNN primitive creation.
  generate(model, prompt, { maxNewTokens: 3, temperature: 0, useCache: true, bf16 });
  generate(model, prompt, { maxNewTokens: 3, temperature: 0, useCache: false, bf16 });

  const cachedMs: number[] = [];
  const uncachedMs: number[] = [];
  let cachedTokens: number[] = [];
  let uncachedTokens: number[] = [];
  // Alternating, so a burst of load from other processes does not land on one side only.
  for (let r = 0; r < runs; r++) {
    cachedMs.push(timeOnceMs(() => (cachedTokens = generate(model, prompt, { maxNewTokens, temperature: 0, useCache: true, bf16 }))));
    uncachedMs.push(timeOnceMs(() => (uncachedTokens = generate(model, prompt, { maxNewTokens, temperature: 0, useCache: false, bf16 }))));
  }
  const same = cachedTokens.length === uncachedTokens.length && cachedTokens.every((t, i) => t === uncachedTokens[i]);
  const c = median(cachedMs);
  const u = median(uncachedMs);
  const tps = (ms: number): number => (maxNewTokens / ms) * 1000;
  printTable(
    ['decoding', 'ms total', 'ms/token', 'tokens/s'],
    [
      ['KV cache', fixed(c, 0), fixed(c / maxNewTokens, 1), fixed(tps(c), 1)],
      ['no cache (full recompute)', fixed(u, 0), fixed(u / maxNewTokens, 1), fixed(tps(u), 1)],
    ],
  );
  console.log(`speed-up from the cache: ${fixed(u / c, 1)}x (target >= 5x)`);
  console.log(`greedy tokens identical with and without the cache: ${same ? 'yes' : 'NO'}`);

  // Several samples: one batch against one after another (KV cache both ways).
  const sampling = { maxNewTokens, temperature: 0.8, topK: 200, seed: 1337, useCache: true, bf16 };
  const batchMs: number[] = [];
  const oneByOneMs: number[] = [];
  let batch: number[][] = [];
  let oneByOne: number[][] = [];
  for (let r = 0; r < runs; r++) {
    batchMs.push(timeOnceMs(() => (batch = generateBatch(model, prompt, samples, sampling))));
    oneByOneMs.push(timeOnceMs(() => (oneByOne = Array.from({ length: samples }, (_, i) => generateBatch(model, prompt, 1, { ...sampling, firstSample: i })[0]!))));
  }
  const b = median(batchMs);
  const o = median(oneByOneMs);
  console.log('');
  printTable(
    [`${samples} samples × ${maxNewTokens} tokens`, 'ms total', 'tokens/s'],
    [
      ['decoded together (one batch)', fixed(b, 0), fixed(((samples * maxNewTokens) / b) * 1000, 1)],
      ['one after another', fixed(o, 0), fixed(((samples * maxNewTokens) / o) * 1000, 1)],
    ],
  );
  const sameTexts = JSON.stringify(batch) === JSON.stringify(oneByOne);
  console.log(`speed-up from batching: ${fixed(o / b, 2)}x (target >= 2x); same samples both ways: ${sameTexts ? 'yes' : 'NO'}; peak RSS ${fixed(peakRssMiB(), 0)} MiB`);
  model.dispose();
}
