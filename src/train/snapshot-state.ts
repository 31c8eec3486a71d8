// A snapshot's training state (train_state) and per-rank sampler and RNG states (rank_states), read back from its
// metadata. Both are JSON a person or a broken disk may have changed, and the trainer acts on every field (where
// to resume, AdamW's bias correction, which batches come next), so each field is checked here, with the same care
// as the safetensors header: the message names the field, shows the value and says what was expected.
import * as torch from '../torch/index.js';
import { UserError } from '../util/errors.js';
import { describeValue } from '../util/format.js';
import type { SamplerState } from './data.js';

export interface TrainState {
  /** Next iteration to run. */
  iter: number;
  /** Optimizer steps taken (AdamW bias correction). */
  optimizerStep: number;
  bestValLoss: number;
  /** Tokens consumed so far across all ranks. */
  tokens: number;
  sampler: SamplerState;
  /** libtorch CPU generator state, base64. */
  rng: string;
  worldSize: number;
}

/** Every rank's sampler and RNG state, index = rank. */
export interface RankStates {
  sampler: SamplerState[];
  rng: string[];
}

/** A trillion: at a millisecond a step, 31 years of training. Anything larger is damage, not a run. */
export const MAX_ITER = 1_000_000_000_000;
/** Ranks a snapshot may describe. */
export const MAX_WORLD_SIZE = 1_000_000;

export const SNAPSHOT_FIX = 'the snapshot is damaged or was edited; move it away to start the run over, or put back a good copy';

/** Checks a parsed train_state; `source` is the snapshot's path. */
export function parseTrainState(raw: unknown, source: string): TrainState {
  const at = (field: string): string => `${source}: train_state.${field}`;
  const obj = expectObject(raw, `${source}: train_state`);
  const iter = wholeNumber(obj.iter, at('iter'), MAX_ITER, 'the next iteration to run');
  const optimizerStep = wholeNumber(obj.optimizerStep, at('optimizerStep'), MAX_ITER, 'the optimizer steps taken');
  if (optimizerStep > iter) {
    throw new UserError(`${at('optimizerStep')} is ${optimizerStep}, more than train_state.iter (${iter}); a run takes one optimizer step per iteration`, SNAPSHOT_FIX);
  }
  // Infinity (no evaluation improved yet) is written by JSON.stringify as null.
  const best = obj.bestValLoss;
  if (best !== null && !(typeof best === 'number' && Number.isFinite(best) && best >= 0)) {
    throw new UserError(`${at('bestValLoss')} is ${describeValue(best)}; expected a loss (a number >= 0) or null (none yet)`, SNAPSHOT_FIX);
  }
  const tokens = wholeNumber(obj.tokens, at('tokens'), Number.MAX_SAFE_INTEGER, 'the tokens consumed so far');
  const sampler = samplerState(obj.sampler, at('sampler'));
  const rng = rngState(obj.rng, at('rng'));
  const worldSize = wholeNumber(obj.worldSize, at('worldSize'), MAX_WORLD_SIZE, 'the number of ranks that wrote the snapshot', 1);
  return { iter, optimizerStep, bestValLoss: best === null ? Infinity : best, tokens, sampler, rng, worldSize };
}

/** Checks a parsed rank_states: one sampler and one RNG state per rank of the run that wrote it (train_state.worldSize). */
export function parseRankStates(raw: unknown, source: string, worldSize: number): RankStates {
  const obj = expectObject(raw, `${source}: rank_states`);
  const lists = { sampler: obj.sampler, rng: obj.rng };
  for (const [key, list] of Object.entries(lists)) {
    if (!Array.isArray(list) || list.length !== worldSize) {
      throw new UserError(
        `${source}: rank_states.${key} is ${describeValue(list)}; expected an array of ${worldSize} entr${worldSize === 1 ? 'y' : 'ies'}, one per rank (train_state.worldSize is ${worldSize})`,
        SNAPSHOT_FIX,
      );
    }
  }
  return {
    sampler: (lists.sampler as unknown[]).map((s, r) => samplerState(s, `${source}: rank_states.sampler[${r}]`)),
    rng: (lists.rng as unknown[]).map((s, r) => rngState(s, `${source}: rank_states.rng[${r}]`)),
  };
}

function expectObject(raw: unknown, where: string): Record<string, unknown> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new UserError(`${where} is ${describeValue(raw)}; expected a JSON object`, SNAPSHOT_FIX);
  }
  return raw as Record<string, unknown>;
}

function wholeNumber(v: unknown, where: string, max: number, what: string, min = 0): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) {
    throw new UserError(`${where} is ${describeValue(v)}; expected a whole number from ${min} to ${max.toLocaleString('en-US')} (${what})`, SNAPSHOT_FIX);
  }
  return v;
}

/** xoshiro128** state: four 32-bit words, not all zero (an all-zero state only ever yields zeros). */
function samplerState(v: unknown, where: string): SamplerState {
  const obj = expectObject(v, where);
  const out: Partial<SamplerState> = {};
  for (const split of ['train', 'val'] as const) {
    const words = obj[split];
    if (!Array.isArray(words) || words.length !== 4 || !words.every((w) => Number.isInteger(w) && (w as number) >= 0 && (w as number) <= 0xffffffff)) {
      throw new UserError(`${where}.${split} is ${describeValue(words)}; expected 4 whole numbers from 0 to 4294967295 (a sampler state)`, SNAPSHOT_FIX);
    }
    if (words.every((w) => w === 0)) throw new UserError(`${where}.${split} is all zeros, which is not a sampler state (it would draw only zeros)`, SNAPSHOT_FIX);
    out[split] = words as number[];
  }
  return out as SamplerState;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * libtorch's CPU generator state, base64: the right length for this libtorch, and one it accepts (it checks the
 * Mersenne Twister's position fields). Tried on the generator, then the generator's own state is put back.
 */
function rngState(v: unknown, where: string): string {
  const expected = torch.getRngState();
  const expectation = `base64 of ${expected.byteLength} bytes (libtorch's CPU generator state)`;
  if (typeof v !== 'string' || v.length % 4 !== 0 || !BASE64.test(v)) throw new UserError(`${where} is ${describeValue(v)}; expected ${expectation}`, SNAPSHOT_FIX);
  const bytes = Buffer.from(v, 'base64');
  if (bytes.byteLength !== expected.byteLength) {
    throw new UserError(`${where} decodes to ${bytes.byteLength} bytes; expected ${expectation}`, SNAPSHOT_FIX);
  }
  try {
    torch.setRngState(bytes);
  } catch (err) {
    throw new UserError(`${where} is not a generator state libtorch accepts (${firstLine(err)})`, SNAPSHOT_FIX);
  } finally {
    torch.setRngState(expected);
  }
  return v;
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0]!;
}
