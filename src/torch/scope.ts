// Deterministic release of native tensor memory. A scope records every tensor created while it runs (sync or
// async, via AsyncLocalStorage so concurrent async scopes never mix) and disposes them when it ends, except the
// tensors found in its return value, which move to the enclosing scope. TensorFlow.js's tidy() is the model.
import { AsyncLocalStorage } from 'node:async_hooks';

export interface Disposable {
  dispose(): void;
  readonly disposed: boolean;
}

interface Frame {
  tracked: Set<Disposable>;
  parent: Frame | undefined;
}

const storage = new AsyncLocalStorage<Frame>();

/** Called by every Tensor constructor. */
export function track(t: Disposable): void {
  storage.getStore()?.tracked.add(t);
}

/** Removes `t` from every enclosing scope: it lives until disposed explicitly (or garbage-collected). */
export function keep<T extends Disposable>(t: T): T {
  for (let f = storage.getStore(); f; f = f.parent) f.tracked.delete(t);
  return t;
}

/** Tensors reachable from a scope's result: a tensor, or arrays / plain objects / Maps holding them. */
function collect(value: unknown, out: Set<Disposable>, isTensor: (v: unknown) => v is Disposable, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 8) return;
  if (isTensor(value)) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) {
    for (const v of value) collect(v, out, isTensor, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, isTensor, depth + 1);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, isTensor, depth + 1);
  }
}

let isTensorFn: (v: unknown) => v is Disposable = (v): v is Disposable => false;
/** The Tensor module registers its type test here (avoids an import cycle). */
export function setTensorTest(fn: (v: unknown) => v is Disposable): void {
  isTensorFn = fn;
}

function close(frame: Frame, result: unknown): void {
  const kept = new Set<Disposable>();
  collect(result, kept, isTensorFn);
  for (const t of frame.tracked) {
    if (kept.has(t)) frame.parent?.tracked.add(t);
    else if (!t.disposed) t.dispose();
  }
  frame.tracked.clear();
}

/**
 * Runs `fn` and disposes every tensor created inside it, except those in its result (which the enclosing scope
 * then owns). Works for async functions too: the scope ends when the promise settles. On an exception everything
 * created inside is disposed and the exception propagates.
 */
export function scope<T>(fn: () => T): T {
  const frame: Frame = { tracked: new Set(), parent: storage.getStore() };
  let result: T;
  try {
    result = storage.run(frame, fn);
  } catch (err) {
    close(frame, undefined);
    throw err;
  }
  if (result instanceof Promise) {
    return result.then(
      (v) => {
        close(frame, v);
        return v;
      },
      (err) => {
        close(frame, undefined);
        throw err;
      },
    ) as T;
  }
  close(frame, result);
  return result;
}

/** Number of tensors the innermost scope currently tracks (for tests and debugging). */
export function trackedInScope(): number {
  return storage.getStore()?.tracked.size ?? 0;
}
