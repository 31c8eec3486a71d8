// One completion request, whatever asks for it (the HTTP API or the library): prompts to tokens (cut to the
// context with a warning), n sequences per prompt submitted to the engine, tokens back to text as they arrive
// (UTF-8 split across tokens and stop strings across pieces handled), finish reasons and token counts.
import { EOT_TOKEN } from '../gpt/config.js';
import type { ServedModel } from './model.js';
import { StopMatcher } from './stop.js';

export interface CompletionParams {
  prompts: string[];
  maxTokens: number;
  temperature: number;
  topP: number;
  n: number;
  stop: string[];
  /** Choice i of each prompt draws from the generator seeded with (seed, i); random when undefined. */
  seed: number | undefined;
}

export type ChoiceFinish = 'stop' | 'length';

export interface ChoiceResult {
  /** prompt index × n + sample index, as OpenAI numbers choices. */
  index: number;
  text: string;
  finishReason: ChoiceFinish;
  /** Generated token ids (up to the stop, the end-of-text token excluded). */
  tokens: number[];
}

export interface CompletionResult {
  choices: ChoiceResult[];
  usage: { promptTokens: number; completionTokens: number; totalTokens: number };
  /** Notes on the request, e.g. a prompt cut to the context. */
  warnings: string[];
}

export interface CompletionSink {
  /** Text of choice `index`, as soon as it is certain (streaming). */
  onText?(index: number, text: string): void;
  /** Choice `index` is complete. */
  onChoiceEnd?(index: number, reason: ChoiceFinish): void;
}

/** 'invalid': the request cannot be served as asked; 'engine': generation failed; 'cancelled': aborted. */
export class CompletionError extends Error {
  constructor(
    message: string,
    readonly kind: 'invalid' | 'engine' | 'cancelled',
    readonly param?: string,
  ) {
    super(message);
  }
}

export interface PreparedPrompts {
  tokens: number[][];
  warnings: string[];
}

/**
 * Prompts to token ids. An empty prompt starts from <|endoftext|>, as GPT-2 begins documents. A prompt longer than
 * the context is cut from the left (the model sees its last block_size tokens, as `nanogpt sample` does) and the
 * response says so in `warnings`.
 */
export function preparePrompts(model: ServedModel, prompts: readonly string[]): PreparedPrompts {
  const { blockSize, vocabSize } = model.info;
  const warnings: string[] = [];
  const tokens = prompts.map((p, i) => {
    let ids = model.codec.encode(p);
    if (ids.length === 0) ids = [EOT_TOKEN];
    const bad = ids.find((t) => t >= vocabSize);
    if (bad !== undefined) throw new CompletionError(`prompt ${i} has GPT-2 token ${bad}, outside this model's vocabulary of ${vocabSize}`, 'invalid', 'prompt');
    if (ids.length > blockSize) {
      warnings.push(`prompt ${i} has ${ids.length} tokens, more than the model's context of ${blockSize}: it was cut from the left to its last ${blockSize} tokens`);
      ids = ids.slice(-blockSize);
    }
    return ids;
  });
  return { tokens, warnings };
}

/** Runs a completion to its end. Rejects with CompletionError; aborting `signal` cancels every sequence at once. */
export function runCompletion(
  model: ServedModel,
  params: CompletionParams,
  sink: CompletionSink = {},
  signal?: AbortSignal,
  prepared: PreparedPrompts = preparePrompts(model, params.prompts),
): Promise<CompletionResult> {
  const seed = params.seed ?? Math.floor(Math.random() * 2 ** 32);
  const engine = model.engine;
  return new Promise<CompletionResult>((resolve, reject) => {
    const choices: ChoiceResult[] = [];
    const running = new Map<number, number>(); // choice index → engine sequence id
    let pending = prepared.tokens.length * params.n;
    let settled = false;
    const cancelAll = (): void => {
      for (const id of running.values()) engine.cancel(id);
      running.clear();
    };
    const fail = (err: CompletionError): void => {
      if (settled) return;
      settled = true;
      cancelAll();
      signal?.removeEventListener('abort', onAbort);
      reject(err);
    };
    const onAbort = (): void => fail(new CompletionError('the request was cancelled', 'cancelled'));
    const finishChoice = (c: ChoiceResult, reason: ChoiceFinish): void => {
      c.finishReason = reason;
      running.delete(c.index);
      sink.onChoiceEnd?.(c.index, reason);
      if (--pending === 0 && !settled) {
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        const promptTokens = prepared.tokens.reduce((s, t) => s + t.length, 0);
        const completionTokens = choices.reduce((s, c) => s + c.tokens.length, 0);
        resolve({ choices, usage: { promptTokens, completionTokens, totalTokens: promptTokens + completionTokens }, warnings: prepared.warnings });
      }
    };
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort);

    prepared.tokens.forEach((promptTokens, p) => {
      for (let i = 0; i < params.n; i++) {
        const c: ChoiceResult = { index: p * params.n + i, text: '', finishReason: 'length', tokens: [] };
        choices.push(c);
        const decoder = model.codec.stream();
        const stops = new StopMatcher(params.stop);
        const emit = (text: string): void => {
          if (!text) return;
          c.text += text;
          sink.onText?.(c.index, text);
        };
        if (params.maxTokens === 0) {
          queueMicrotask(() => finishChoice(c, 'length'));
          continue;
        }
        const id = engine.submit(
          { promptTokens, maxTokens: params.maxTokens, temperature: params.temperature, topP: params.topP, seed, sampleIndex: i },
          {
            onToken: (token) => {
              if (settled) return;
              c.tokens.push(token);
              const r = stops.push(decoder.push(token));
              emit(r.text);
              if (r.stopped) {
                engine.cancel(id); // frees the slot now; the engine would otherwise run to max_tokens
                finishChoice(c, 'stop');
              }
            },
            onFinish: (reason, error) => {
              if (settled) return;
              if (reason === 'error') return fail(new CompletionError(`generation failed: ${error ?? 'unknown error'}`, 'engine'));
              emit(stops.push(decoder.end()).text);
              emit(stops.flush());
              finishChoice(c, reason);
            },
          },
        );
        running.set(c.index, id);
      }
    });
  });
}
