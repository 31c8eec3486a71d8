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

/** The GPT-2 ranks, special tokens and pattern that tiktoken ships (loaded once per thread by require's cache). */
function gpt2Encoding(): EncodingFile {
  return require('tiktoken/encoders/gpt2.json') as EncodingFile;
}

const BASE64 = (() => {
  const t = new Int8Array(128).fill(-1);
  const abc = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  for (let i = 0; i < abc.length; i++) t[abc.charCodeAt(i)] = i;
  return t;
})();

/**
 * Calls `visit` with the bytes and rank of every GPT-2 token (not <|endoftext|>), read from the same gpt2.json that
 * tiktoken is built from: lines of `base64 rank`, or the compact `! first_rank base64 base64 …` form (consecutive
 * ranks) that the package ships. Hand-decoded because Buffer.from(…, 'base64') per token cost 155 ms here (with a
 * TextDecoder each), this ~40 ms. `bytes` is a view into a reused buffer, valid only during the call.
 */
function forEachGpt2Token(visit: (bytes: Uint8Array, rank: number, ascii: boolean) => void): void {
  const bytes = new Uint8Array(1024);
  const add = (b64: string, rank: number): void => {
    let n = 0;
    let acc = 0;
    let bits = 0;
    let ascii = true;
    for (let i = 0; i < b64.length; i++) {
      const c = b64.charCodeAt(i);
      const v = c < 128 ? BASE64[c]! : -1;
      if (v < 0) continue; // '=' padding
      acc = ((acc << 6) | v) & 0xffffff;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        const b = (acc >> bits) & 0xff;
        bytes[n++] = b;
        if (b >= 0x80) ascii = false;
      }
    }
    visit(bytes.subarray(0, n), rank, ascii);
  };
  for (const line of gpt2Encoding().bpe_ranks.split('\n')) {
    const parts = line.split(' ');
    if (parts[0] === '!') {
      const first = Number(parts[1]);
      for (let k = 2; k < parts.length; k++) if (parts[k]) add(parts[k]!, first + k - 2);
    } else if (parts.length === 2) add(parts[0]!, Number(parts[1]));
  }
}

/**
 * GPT-2's vocabulary as text → rank: every token whose bytes are a whole UTF-8 string (49,912 of the 50,256; the
 * rest are fragments of multi-byte characters, which no piece of text can be).
 */
export function gpt2VocabPieces(): Map<string, number> {
  const out = new Map<string, number>();
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  forEachGpt2Token((view, rank, ascii) => {
    // apply, not spread: spreading a typed array goes through its iterator (3x slower here).
    if (ascii) out.set(String.fromCharCode.apply(null, view as unknown as number[]), rank);
    else {
      try {
        out.set(utf8.decode(view), rank);
      } catch {
        // a fragment of a multi-byte character: not text
      }
    }
  });
  return out;
}

/** The bytes of every GPT-2 token, indexed by rank (all 50,256 but <|endoftext|>; copies, not views). */
export function gpt2TokenBytes(): Uint8Array[] {
  const out: Uint8Array[] = [];
  forEachGpt2Token((view, rank) => {
    out[rank] = view.slice();
  });
  return out;
}

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
  const gpt2 = gpt2Encoding();
  return new Tiktoken(gpt2.bpe_ranks, gpt2.special_tokens, gpt2.pat_str);
}
