// The body of POST /v1/completions, checked field by field: every problem is a 400 naming the field, so a client
// learns what to change. Fields OpenAI defines that we do not implement (logprobs, echo, suffix, penalties, …) are
// refused rather than ignored: silently ignoring them would return something other than what was asked.
import { ApiError } from './api-error.js';
import type { CompletionParams } from './completion.js';

export interface CompletionRequest {
  params: CompletionParams;
  model: string | undefined;
  stream: boolean;
  includeUsage: boolean;
}

export interface RequestLimits {
  /** Largest max_tokens a request may ask for. */
  maxTokens: number;
  /** Most sequences (prompts × n) in one request. */
  maxSequences: number;
}

const FIELDS = ['model', 'prompt', 'max_tokens', 'temperature', 'top_p', 'n', 'stop', 'seed', 'stream', 'stream_options', 'user'] as const;
const MAX_STOPS = 4;
/** OpenAI's default max_tokens for completions. */
export const DEFAULT_MAX_TOKENS = 16;

const bad = (param: string | null, message: string, code: string | null = null): ApiError => new ApiError(400, message, 'invalid_request_error', param, code);

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

function number(body: Record<string, unknown>, key: string, fallback: number, check: (x: number) => boolean, expected: string): number {
  const v = body[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw bad(key, `'${key}' must be ${expected}, got ${typeName(v)}`);
  return v;
}

export function parseCompletionRequest(raw: unknown, limits: RequestLimits): CompletionRequest {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad(null, `the request body must be a JSON object, got ${typeName(raw)}`);
  const body = raw as Record<string, unknown>;
  const unknown = Object.keys(body).find((k) => !(FIELDS as readonly string[]).includes(k));
  if (unknown !== undefined) {
    throw bad(unknown, `Unrecognized request argument supplied: ${unknown} (this server supports ${FIELDS.join(', ')})`, 'unknown_parameter');
  }

  const model = body.model;
  if (model !== undefined && typeof model !== 'string') throw bad('model', `'model' must be a string, got ${typeName(model)}`);

  let prompts: string[];
  const p = body.prompt;
  if (p === undefined || p === null) prompts = [''];
  else if (typeof p === 'string') prompts = [p];
  else if (Array.isArray(p) && p.length > 0 && p.every((x) => typeof x === 'string')) prompts = p as string[];
  else throw bad('prompt', `'prompt' must be a string or a non-empty array of strings, got ${typeName(p)}`);

  const maxTokens = number(body, 'max_tokens', Math.min(DEFAULT_MAX_TOKENS, limits.maxTokens), (x) => Number.isInteger(x) && x >= 0, 'an integer >= 0');
  if (maxTokens > limits.maxTokens) {
    throw bad('max_tokens', `'max_tokens' is ${maxTokens}, more than this server's limit of ${limits.maxTokens} (its --max_tokens flag)`);
  }
  const temperature = number(body, 'temperature', 1, (x) => x >= 0 && x <= 2, 'a number from 0 to 2');
  const topP = number(body, 'top_p', 1, (x) => x > 0 && x <= 1, 'a number in (0, 1]');
  const n = number(body, 'n', 1, (x) => Number.isInteger(x) && x >= 1, 'an integer >= 1');
  const seedRaw = number(body, 'seed', -1, (x) => Number.isSafeInteger(x) && x >= 0, 'an integer >= 0');
  const seed = seedRaw < 0 ? undefined : seedRaw;
  if (prompts.length * n > limits.maxSequences) {
    throw bad('n', `${prompts.length} prompt${prompts.length === 1 ? '' : 's'} × n=${n} is ${prompts.length * n} sequences, more than this server's limit of ${limits.maxSequences} per request`);
  }

  let stop: string[] = [];
  const s = body.stop;
  if (typeof s === 'string') stop = [s];
  else if (Array.isArray(s) && s.every((x) => typeof x === 'string')) stop = s as string[];
  else if (s !== undefined && s !== null) throw bad('stop', `'stop' must be a string or an array of strings, got ${typeName(s)}`);
  if (stop.length > MAX_STOPS) throw bad('stop', `'stop' has ${stop.length} strings; at most ${MAX_STOPS} are allowed`);
  if (stop.some((x) => x.length === 0)) throw bad('stop', "'stop' strings must not be empty");

  const stream = body.stream ?? false;
  if (typeof stream !== 'boolean') throw bad('stream', `'stream' must be a boolean, got ${typeName(stream)}`);
  let includeUsage = false;
  const so = body.stream_options;
  if (so !== undefined && so !== null) {
    if (!stream) throw bad('stream_options', "'stream_options' is only allowed with 'stream': true");
    if (typeof so !== 'object' || Array.isArray(so)) throw bad('stream_options', `'stream_options' must be an object, got ${typeName(so)}`);
    const extra = Object.keys(so).find((k) => k !== 'include_usage');
    if (extra !== undefined) throw bad(`stream_options.${extra}`, `Unrecognized stream option: ${extra} (supported: include_usage)`, 'unknown_parameter');
    const iu = (so as Record<string, unknown>).include_usage ?? false;
    if (typeof iu !== 'boolean') throw bad('stream_options.include_usage', `'stream_options.include_usage' must be a boolean, got ${typeName(iu)}`);
    includeUsage = iu;
  }
  if (body.user !== undefined && typeof body.user !== 'string') throw bad('user', `'user' must be a string, got ${typeName(body.user)}`);

  return { params: { prompts, maxTokens, temperature, topP, n, stop, seed }, model, stream, includeUsage };
}
