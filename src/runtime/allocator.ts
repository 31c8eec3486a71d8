// tcmalloc for the commands that compute. glibc's malloc hands every freed block above its mmap threshold
// (32 MiB at most) back to the kernel, so the logits and activations of every step are mapped and page-faulted
// in afresh: on the 2-core development machine a gpt2-mini step (batch 8 × 128, 1 thread) took 1800 ms with
// glibc and 220 ms with tcmalloc preloaded, identical losses (docs/benchmarks.md, "allocator"). An allocator can
// only be chosen when a process starts (LD_PRELOAD), so `nanogpt train`, `sample` and `demo` start themselves
// again with it when it is installed and not yet loaded; `nanogpt launch` sets it for the ranks it starts.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

/** NANOGPT_ALLOCATOR=system keeps glibc's malloc (for debugging with tools that replace malloc themselves). */
export const ALLOCATOR_ENV = 'NANOGPT_ALLOCATOR';
/** Set in a process that was started again with tcmalloc, so that it never starts itself a second time. */
const REEXEC_ENV = 'NANOGPT_REEXEC';
const COMMANDS_THAT_COMPUTE = new Set(['train', 'sample', 'serve', 'demo']);
// Every signal a command treats as a request (the trainer: stop after this step), SIGUSR2 included: mpirun and
// orted deliver the launcher's stop request as SIGUSR2 to the rank's process, which is this one.
const FORWARDED_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR2'] as const;

function libDirs(): string[] {
  const triplet: Record<string, string> = { x64: 'x86_64-linux-gnu', arm64: 'aarch64-linux-gnu', ppc64: 'powerpc64le-linux-gnu', s390x: 's390x-linux-gnu' };
  const t = triplet[process.arch];
  return [...(t ? [`/usr/lib/${t}`, `/lib/${t}`] : []), '/usr/lib64', '/usr/lib', '/usr/local/lib'];
}

/** The installed tcmalloc library (minimal build first), or null. */
export function tcmallocPath(dirs: readonly string[] = libDirs()): string | null {
  for (const name of ['libtcmalloc_minimal.so.4', 'libtcmalloc.so.4']) {
    for (const dir of dirs) {
      const p = path.join(dir, name);
      if (existsSync(p)) return p;
    }
  }
  return null;
}

/** LD_PRELOAD with `lib` added in front of whatever the user already preloads. */
export function withPreload(existing: string | undefined, lib: string): string {
  const parts = (existing ?? '').split(/[:\s]+/).filter((p) => p !== '' && p !== lib);
  return [lib, ...parts].join(':');
}

/**
 * The LD_PRELOAD value that adds tcmalloc to `env`, or null when there is nothing to do: the user chose the
 * system allocator, a tcmalloc is already preloaded, or none is installed.
 */
export function tcmallocPreload(env: NodeJS.ProcessEnv, lib: string | null = tcmallocPath()): string | null {
  if (env[ALLOCATOR_ENV] === 'system' || lib === null) return null;
  if (/tcmalloc/.test(env.LD_PRELOAD ?? '')) return null;
  return withPreload(env.LD_PRELOAD, lib);
}

/**
 * Runs this command again in a child process with tcmalloc preloaded and resolves to its exit code; resolves to
 * null (run in this process) when the command does not compute or no preload is needed. The child's stdio is
 * ours. Signals: the child runs in a session of its own, so nothing reaches it directly — not a terminal's Ctrl-C,
 * not a signal to this process's group (`nanogpt launch`), not mpirun's — and this process forwards each signal
 * exactly once. (In one process group, a group-wide SIGINT arrived twice, directly and forwarded, and the trainer
 * took the second as "quit now, no snapshot".) If this process dies without a word (SIGKILL), the child sees the
 * IPC channel close and exits too, so no orphan trains on.
 */
export function reexecWithTcmalloc(argv: readonly string[], script: string): Promise<number | null> {
  if (process.env[REEXEC_ENV] === '1') {
    watchParent();
    return Promise.resolve(null);
  }
  const command = argv.find((a) => !a.startsWith('-'));
  const preload = command !== undefined && COMMANDS_THAT_COMPUTE.has(command) ? tcmallocPreload(process.env) : null;
  if (preload === null) return Promise.resolve(null);
  const child = spawn(process.execPath, [...process.execArgv, script, ...argv], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, LD_PRELOAD: preload, [REEXEC_ENV]: '1' },
    detached: true,
  });
  const forward = (sig: NodeJS.Signals): void => {
    child.kill(sig);
  };
  for (const sig of FORWARDED_SIGNALS) process.on(sig, forward);
  return new Promise((resolve) => {
    child.on('error', (err) => {
      process.stderr.write(`error: could not start ${process.execPath} again with tcmalloc (${err.message})\n  fix: set ${ALLOCATOR_ENV}=system to run without it\n`);
      resolve(2);
    });
    child.on('exit', (code, signal) => {
      for (const sig of FORWARDED_SIGNALS) process.off(sig, forward);
      // A child killed by a signal: report it the way a shell does.
      resolve(code ?? 128 + (signal ? signalNumber(signal) : 1));
    });
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  const numbers: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGTERM: 15 };
  return numbers[signal] ?? 1;
}

/** In the re-started child: exit when the parent goes away, without keeping the event loop alive meanwhile. */
function watchParent(): void {
  if (!process.channel) return;
  process.channel.unref();
  process.on('disconnect', () => {
    process.stderr.write('nanogpt: the parent process went away; exiting\n');
    process.exit(137);
  });
}

/** The malloc this process runs on, read from its own memory map: 'tcmalloc', 'glibc malloc' or 'unknown'. */
export function activeAllocator(): string {
  try {
    return /tcmalloc/.test(readFileSync('/proc/self/maps', 'utf8')) ? 'tcmalloc' : 'glibc malloc';
  } catch {
    return 'unknown';
  }
}
