// Loads the compiled libtorch addon. Everything native goes through this one object; the Tensor class is the typed
// boundary above it, so the binding itself stays loosely typed (a handle is an opaque object).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { UserError } from '../util/errors.js';

/** An opaque native tensor handle (a plain object the addon attaches its tensor to with napi_wrap). */
export type Handle = { readonly __nativeTensor: unique symbol };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeBinding = Record<string, (...args: any[]) => any>;

function load(): NativeBinding {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const file = `${root}build/Release/nanogpt_torch.node`;
  if (!existsSync(file)) {
    throw new UserError(`the libtorch addon is not built (${file} is missing)`, 'run `npm run setup` (installs libtorch and builds the addon)');
  }
  // libtorch's own log lines (c10d's connection retries in 2.x print a C++ backtrace, at WARNING and at ERROR)
  // would bury the one message we print for the same failure: only FATAL ones show by default. Applied when the
  // addon loads (c10::initLogging in native/addon.cc); a user's own TORCH_CPP_LOG_LEVEL (e.g. INFO) wins.
  process.env.TORCH_CPP_LOG_LEVEL ??= 'FATAL';
  const require = createRequire(import.meta.url);
  try {
    return require(file) as NativeBinding;
  } catch (err) {
    throw new UserError(
      `the libtorch addon failed to load: ${(err as Error).message}`,
      'rebuild it with `npm run setup`; if you set LIBTORCH, make sure the same libtorch is used at run time',
    );
  }
}

// Loaded on first use, not at import: libtorch's start-up (~0.9 s of CPU, mostly its operator registry) is then
// spent only by commands that compute, and a command that fails on its input (a bad flag, a lying checkpoint
// header) fails at once. The get trap costs ~20 ns a call (measured) against ~10 µs for the cheapest op.
let binding: NativeBinding | undefined;
export const native: NativeBinding = new Proxy({} as NativeBinding, {
  get(_target, name) {
    binding ??= load();
    return binding[name as string];
  },
});

// Native calls a deadline gave up on that have not returned yet (a store call to a machine that is gone): while one
// runs, the process cannot end by itself, so a failed command need not wait to see whether it will.
let abandoned = 0;

/** Counts `work` as abandoned until it settles (if it ever does). */
export function abandonNativeCall(work: Promise<unknown>): void {
  abandoned += 1;
  const settled = (): void => {
    abandoned -= 1;
  };
  work.then(settled, settled);
}

/** How many abandoned native calls are still running. */
export function nativeCallsAbandoned(): number {
  return abandoned;
}

/**
 * Ends the process with `code` without waiting for libuv's worker threads, when libtorch was loaded (a native call
 * may be stuck in one of them); otherwise process.exit. For the last moment of a failed command only.
 */
export function exitNow(code: number): never {
  if (binding) binding.hardExit!(code);
  process.exit(code);
}
