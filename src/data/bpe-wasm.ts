/**
 * Loading tiktoken's GPT-2 BPE. tiktoken's default entry compiles a 5.6 MB WebAssembly binary that bundles every
 * encoding and builds GPT-2's from it: ~370 ms of CPU per thread here, paid again by every tokenizer worker. The
 * "lite" build (1.1 MB, no bundled ranks) plus the gpt2.json ranks from the same package gives the same encoder
 * for ~150 ms, and its compiled module can be compiled once and handed to every worker (V8 shares the code).
 */
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import { init, Tiktoken } from 'tiktoken/lite/init';

const require = createRequire(import.meta.url);

interface EncodingFile {
  pat_str: string;
  special_tokens: Record<string, number>;
  bpe_ranks: string;
}

let compiled: Promise<WebAssembly.Module> | undefined;

/** The lite WebAssembly module, compiled once per thread; a WebAssembly.Module can be posted to workers. */
export function compileBpeModule(): Promise<WebAssembly.Module> {
  compiled ??= fs.readFile(require.resolve('tiktoken/lite/tiktoken_bg.wasm')).then((bytes) => WebAssembly.compile(bytes));
  return compiled;
}

let ready: Promise<void> | undefined;

/**
 * A new GPT-2 encoder. `module` is a compiled lite module from compileBpeModule (possibly another thread's);
 * without one this thread compiles its own. The encoder lives in WebAssembly memory: call free() when done.
 */
export async function openGpt2Bpe(module?: WebAssembly.Module): Promise<Tiktoken> {
  ready ??= (async () => {
    const wasm = module ?? (await compileBpeModule());
    await init((imports) => WebAssembly.instantiate(wasm, imports));
  })();
  await ready;
  const gpt2 = require('tiktoken/encoders/gpt2.json') as EncodingFile;
  return new Tiktoken(gpt2.bpe_ranks, gpt2.special_tokens, gpt2.pat_str);
}
