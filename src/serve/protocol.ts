// Messages between the HTTP process's main thread (engine.ts) and the thread that owns the model
// (engine-worker.ts). Plain objects only: they cross threads by structured clone.
import type { GPTConfig } from '../gpt/config.js';
import type { FinishReason, SequenceParams, StepReport } from './scheduler.js';

/** Where the weights come from: a resolved local file, or a freshly initialised model of a given shape (benchmarks). */
export type WeightsSource = { file: string; id: string } | { randomInit: GPTConfig; seed: number; id: string };

export interface WorkerData {
  source: WeightsSource;
  maxBatch: number;
  bf16: boolean;
  /** libtorch intra-op threads, set once in the worker before any work; undefined keeps libtorch's choice. */
  threads: number | undefined;
}

export interface ModelInfo {
  id: string;
  kind: string;
  nLayer: number;
  nHead: number;
  nEmbd: number;
  blockSize: number;
  vocabSize: number;
  parameters: number;
  threads: number;
}

export type ToWorker =
  | { type: 'submit'; id: number; params: SequenceParams }
  | { type: 'cancel'; id: number }
  | { type: 'shutdown' };

export type FromWorker =
  | { type: 'ready'; info: ModelInfo }
  | { type: 'load-error'; problem: string; fix: string | undefined; userError: boolean; stack: string | undefined }
  | ({ type: 'step'; active: number; waiting: number; ms: number } & StepReport)
  | { type: 'state'; active: number; waiting: number }
  | { type: 'closed' };

export type { FinishReason, SequenceParams };
