import { native } from './native.js';
import type { Tensor } from './tensor.js';

/** Registered gradient-ready hooks; dispose() unhooks them. */
export interface GradReadyHooks extends Disposable {
  /**
   * Sets the tag that notifications from now on carry. Notifications are delivered asynchronously, so one from an
   * earlier backward can arrive after a later backward has begun; a new tag per pass tells them apart.
   */
  setTag(tag: number): void;
  dispose(): void;
}

/**
 * Calls `onReady(i, tag)` on the main thread each time a backward pass has accumulated `leaves[i].grad` (after the
 * update, so the gradient is final for that pass); `tag` is the one set by setTag() before that pass (0 at first).
 * Calls arrive while an async backward (`backwardAsync`) is still running, in the order autograd finished the
 * leaves; a synchronous backward delivers them after it returns.
 * `onReady` must not throw (nothing could catch it): record failures instead.
 */
export function onGradReady(leaves: readonly Tensor[], onReady: (index: number, tag: number) => void): GradReadyHooks {
  let handle: unknown = native.onGradReady(
    leaves.map((t) => t.handle),
    onReady,
  );
  const dispose = (): void => {
    if (handle === undefined) return;
    native.removeGradReady(handle);
    handle = undefined;
  };
  const setTag = (tag: number): void => {
    if (!Number.isSafeInteger(tag)) throw new RangeError(`a gradient hook tag must be an integer, got ${tag}`);
    if (handle !== undefined) native.setGradReadyTag(handle, tag);
  };
  return { setTag, dispose, [Symbol.dispose]: dispose };
}
