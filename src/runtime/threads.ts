// Threads per process and the tcmalloc library to preload. Hyper-threads share a core's vector units, so intra-op threads
// beyond the physical cores slow matmuls down; the default gives each local rank an equal share of the
// physical cores (the original's advice for num_cpu_threads_per_process).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { UserError } from '../util/errors.js';
import { tcmallocPath } from './allocator.js';

/** Distinct (socket, core) pairs in /proc/cpuinfo text; 0 when it does not say (some ARM kernels, some VMs). */
export function physicalCoresFromCpuinfo(text: string): number {
  const cores = new Set<string>();
  for (const block of text.split(/\n\s*\n/)) {
    const phys = /^physical id\s*:\s*(\S+)/m.exec(block);
    const core = /^core id\s*:\s*(\S+)/m.exec(block);
    if (phys && core) cores.add(`${phys[1]}:${core[1]}`);
  }
  return cores.size;
}

/** Distinct (socket, core) pairs in `lscpu -p=Core,Socket` output (comment lines start with '#'). */
export function physicalCoresFromLscpu(text: string): number {
  const cores = new Set<string>();
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const [core, socket] = t.split(',');
    if (core !== undefined && core !== '') cores.add(`${socket ?? ''}:${core}`);
  }
  return cores.size;
}

let cachedCores: number | undefined;

/**
 * Physical cores this process may use: /proc/cpuinfo, else `lscpu`, else the logical CPU count; never more than
 * the CPUs the affinity mask / container allows (os.availableParallelism).
 */
export function physicalCores(): number {
  if (cachedCores !== undefined) return cachedCores;
  const allowed = os.availableParallelism();
  let n = 0;
  try {
    n = physicalCoresFromCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    /* not Linux, or /proc is hidden: try lscpu */
  }
  if (n === 0) {
    const r = spawnSync('lscpu', ['-p=Core,Socket'], { encoding: 'utf8', timeout: 5000 });
    if (r.status === 0) n = physicalCoresFromLscpu(r.stdout);
  }
  cachedCores = Math.max(1, Math.min(n || allowed, allowed));
  return cachedCores;
}

/** Default intra-op threads for each of `localRanks` processes on this host: an equal share of physical cores. */
export function defaultThreads(localRanks: number, cores = physicalCores()): number {
  return Math.max(1, Math.floor(cores / Math.max(1, localRanks)));
}

/**
 * More intra-op threads than this many per logical CPU only add contention: past it a setting is a typo (100000
 * threads were once spawned, and the process hung), not a choice.
 */
export const MAX_THREADS_PER_CPU = 4;

/** The most intra-op threads a setting may ask for on this machine: MAX_THREADS_PER_CPU × its logical CPUs. */
export function maxThreads(): number {
  return MAX_THREADS_PER_CPU * os.availableParallelism();
}

/** Why `threads` is too many for this machine (for a message naming the setting), or null when it is not. */
export function tooManyThreads(threads: number): string | null {
  const max = maxThreads();
  if (threads <= max) return null;
  return `${threads} threads is more than ${MAX_THREADS_PER_CPU} × the ${os.availableParallelism()} logical CPUs of this machine (at most ${max})`;
}

/**
 * Intra-op threads for this process: an explicit choice (a flag or config key, when > 0), else NANOGPT_THREADS
 * (set by `nanogpt launch` for its ranks), else an equal share of the physical cores among `localRanks`.
 */
export function chooseThreads(explicit: number | undefined, localRanks: number, env: NodeJS.ProcessEnv = process.env): number {
  if (explicit !== undefined && explicit > 0) return explicit;
  const fromEnv = Number(env.NANOGPT_THREADS);
  if (Number.isInteger(fromEnv) && fromEnv > 0) {
    const tooMany = tooManyThreads(fromEnv);
    if (tooMany !== null) throw new UserError(`NANOGPT_THREADS=${env.NANOGPT_THREADS}: ${tooMany}`, 'set NANOGPT_THREADS to at most the number of cores, or unset it');
    return fromEnv;
  }
  return defaultThreads(localRanks);
}

/** The environment a rank needs for `threads` intra-op threads (ours, OpenMP's, and MKL's if present). */
export function threadEnv(threads: number): Record<string, string> {
  const n = String(threads);
  return { NANOGPT_THREADS: n, OMP_NUM_THREADS: n, MKL_NUM_THREADS: n };
}

// ---- tcmalloc ------------------------------------------------------------------------------------------------

/**
 * The tcmalloc shared library to preload for `nanogpt launch --tcmalloc`, which insists on it. The minimal build
 * (package libtcmalloc-minimal4) is the allocator alone, which is all we want; the full one (libgoogle-perftools4,
 * what the original installed through libgoogle-perftools-dev) is accepted too.
 */
export function findTcmalloc(dirs?: readonly string[]): string {
  const lib = tcmallocPath(dirs);
  if (lib !== null) return lib;
  throw new UserError(
    '--tcmalloc: tcmalloc is not installed (looked for libtcmalloc_minimal.so.4 and libtcmalloc.so.4 in the system library folders)',
    'install it with `sudo apt-get install libtcmalloc-minimal4` (Debian/Ubuntu; or libgoogle-perftools4), or drop --tcmalloc',
  );
}

