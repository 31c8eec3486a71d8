// Grad mode, autocast, threads, RNG and memory accounting: process-wide engine state.
import { native } from './native.js';
import { dtypeCode, type DType } from './dtype.js';

function isPromise(v: unknown): v is Promise<unknown> {
  return v instanceof Promise;
}

/**
 * Runs `fn` with a piece of thread-local engine state changed and restores it afterwards, also when `fn` throws.
 * For an async `fn`, the state is restored when its promise settles; the state is per-thread, not per-async-task,
 * so do not interleave other tensor work with an async region that changes it.
 */
function withState<T>(enter: () => () => void, fn: () => T): T {
  const exit = enter();
  let result: T;
  try {
    result = fn();
  } catch (err) {
    exit();
    throw err;
  }
  if (isPromise(result)) return result.finally(exit) as T;
  exit();
  return result;
}

/** Runs `fn` without recording operations for autograd (evaluation, optimizer updates, sampling). */
export function noGrad<T>(fn: () => T): T {
  return withState(() => {
    const prev = native.setGradEnabled(false) as boolean;
    return () => native.setGradEnabled(prev);
  }, fn);
}

export function enableGrad<T>(fn: () => T): T {
  return withState(() => {
    const prev = native.setGradEnabled(true) as boolean;
    return () => native.setGradEnabled(prev);
  }, fn);
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled() as boolean;
}

export interface AutocastOptions {
  /** The low-precision dtype for matmul-like ops: bfloat16 (default) or float16. */
  dtype?: DType;
  enabled?: boolean;
}

/**
 * CPU autocast, as torch.autocast('cpu'): linear/matmul run in bfloat16 while precision-sensitive ops (softmax,
 * layer norm, losses) stay float32. Parameters stay float32; gradients flow back in their dtype.
 */
export function autocast<T>(fn: () => T, opts: AutocastOptions = {}): T {
  const dtype = opts.dtype ?? 'bfloat16';
  if (dtype !== 'bfloat16' && dtype !== 'float16') throw new TypeError(`autocast dtype must be bfloat16 or float16, got ${dtype}`);
  return withState(() => {
    const [prevEnabled, prevDtype] = native.autocastEnter(dtypeCode(dtype), opts.enabled ?? true) as [boolean, number];
    return () => native.autocastExit(prevEnabled, prevDtype);
  }, fn);
}

export function isAutocastEnabled(): boolean {
  return native.isAutocast() as boolean;
}

export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}
export function getNumThreads(): number {
  return native.getNumThreads() as number;
}
/** Must be called before any inter-op parallel work starts (libtorch refuses afterwards). */
export function setNumInteropThreads(n: number): void {
  native.setNumInteropThreads(n);
}
export function getNumInteropThreads(): number {
  return native.getNumInteropThreads() as number;
}
/** libtorch's own description of its threading and BLAS setup. */
export function parallelInfo(): string {
  return native.parallelInfo() as string;
}
export function version(): { torch: string; cuda: boolean; mkldnn: boolean } {
  return native.version() as { torch: string; cuda: boolean; mkldnn: boolean };
}

/** Seeds the default CPU generator. */
export function manualSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
  native.manualSeed(seed);
}
/** The full CPU generator state: restoring it repeats the same draws bit for bit. */
export function getRngState(): Uint8Array {
  return new Uint8Array(native.getRngState() as Buffer);
}
export function setRngState(state: Uint8Array): void {
  native.setRngState(state);
}

/** Live native tensor handles and the bytes they hold (views count their own extent). */
export function memory(): { tensors: number; bytes: number } {
  return native.memory() as { tensors: number; bytes: number };
}
