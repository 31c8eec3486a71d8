// The public API of the nanogpt-ts package (`import { loadModel, complete } from 'nanogpt-ts'`): a trained model
// inside a Node.js application, without HTTP. The same engine as `nanogpt serve`: the model runs on its own thread,
// and concurrent complete() calls are decoded together as one batch.
import { ApiError } from './serve/api-error.js';
import { runCompletion, type ChoiceFinish } from './serve/completion.js';
import { ServedModel, type LoadOptions, type ModelSource } from './serve/model.js';
import { parseCompletionRequest } from './serve/request.js';

export { ServedModel, type LoadOptions, type ModelSource } from './serve/model.js';
export type { ModelInfo } from './serve/protocol.js';
export { CompletionServer, type ServerOptions } from './serve/server.js';

/**
 * Loads a model to generate from: a checkpoint path (`'out/ckpt.pt'`, a run's out_dir, a Hugging Face
 * model.safetensors), `{ initFrom: 'gpt2' }` for pretrained GPT-2 (downloaded once), or `{ randomInit: config }`.
 * Call `close()` on the result when done: the model's thread keeps the process alive until then.
 */
export function loadModel(source: ModelSource, opts: LoadOptions = {}): Promise<ServedModel> {
  return ServedModel.load(source, opts);
}

export interface CompleteOptions {
  /** Tokens to generate at most per choice (default 16, as OpenAI's API). */
  maxTokens?: number;
  /** 0 to 2; 0 is greedy (default 1). */
  temperature?: number;
  /** Nucleus sampling, in (0, 1] (default 1: off). */
  topP?: number;
  /** Choices per prompt (default 1). */
  n?: number;
  /** Up to 4 strings; generation ends before the first one found. */
  stop?: string | string[];
  /** Choice i draws from a generator seeded with (seed, i): same seed, same text, whatever else runs. */
  seed?: number;
  /** Streaming: each piece of text as soon as it is certain, with its choice index. */
  onText?: (text: string, index: number) => void;
  /** Aborting cancels generation (the promise rejects). */
  signal?: AbortSignal;
}

export interface Completion {
  /** The first choice's text (the prompt not included). */
  text: string;
  choices: { index: number; text: string; finishReason: ChoiceFinish; tokens: number[] }[];
  usage: { promptTokens: number; completionTokens: number; totalTokens: number };
  /** Notes, e.g. a prompt longer than the context was cut from the left. */
  warnings: string[];
}

/** Continues `prompt` (or each of several prompts). Invalid options throw a RangeError naming the option. */
export async function complete(model: ServedModel, prompt: string | string[], opts: CompleteOptions = {}): Promise<Completion> {
  let params;
  try {
    ({ params } = parseCompletionRequest(
      { prompt, max_tokens: opts.maxTokens, temperature: opts.temperature, top_p: opts.topP, n: opts.n, stop: opts.stop, seed: opts.seed },
      { maxTokens: Number.MAX_SAFE_INTEGER, maxSequences: 1024 },
    ));
  } catch (err) {
    if (err instanceof ApiError) throw new RangeError(err.message.replace(/'(\w+)'/, (_, k: string) => `'${k.replace(/_(\w)/g, (_m, c: string) => c.toUpperCase())}'`));
    throw err;
  }
  const result = await runCompletion(model, params, { onText: opts.onText && ((index, text) => opts.onText!(text, index)) }, opts.signal);
  return { text: result.choices[0]?.text ?? '', ...result };
}
