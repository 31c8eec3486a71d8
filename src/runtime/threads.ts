// Threads per process and the tcmalloc library to preload. Hyper-threads share a core's vector units, so intra-op threads
// beyond the physical cores slow matmuls down; the default gives each local rank an equal share of the
// physical cores (the original's advice for num_cpu_threads_per_process).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { UserError } from '../util/errors.js';
import { tcmallocPath } from './allocator.js';

/**
 * Distinct (socket, core) pairs in /proc/cpuinfo text, counting only the logical CPUs in `allowed` when given
 * (this process's affinity mask: a Slurm task or a container may hold both hyper-threads of fewer cores); 0 when
 * it does not say (some ARM kernels, some VMs).
 */
export function physicalCoresFromCpuinfo(text: string, allowed?: ReadonlySet<number>): number {
  const cores = new Set<string>();
  for (const block of text.split(/\n\s*\n/)) {
    const cpu = /^processor\s*:\s*(\d+)/m.exec(block);
    const phys = /^physical id\s*:\s*(\S+)/m.exec(block);
    const core = /^core id\s*:\s*(\S+)/m.exec(block);
    if (allowed && cpu && !allowed.has(Number(cpu[1]))) continue;
    if (phys && core) cores.add(`${phys[1]}:${core[1]}`);
  }
  return cores.size;
}

/**
 * Distinct (socket, core) pairs in `lscpu -p=Core,Socket` output (comment lines start with '#'), or, from
 * `lscpu -p=CPU,Core,Socket`, among the logical CPUs in `allowed`.
 */
export function physicalCoresFromLscpu(text: string, allowed?: ReadonlySet<number>): number {
  const cores = new Set<string>();
  const withCpu = /^#\s*CPU,Core,Socket/m.test(text);
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const fields = t.split(',');
    const [cpu, core, socket] = withCpu ? fields : [undefined, ...fields];
    if (allowed && cpu !== undefined && !allowed.has(Number(cpu))) continue;
    if (core !== undefined && core !== '') cores.add(`${socket ?? ''}:${core}`);
  }
  return cores.size;
}

/** A kernel CPU list ("0-3,8-11", as in /proc/self/status Cpus_allowed_list) as a set; undefined when malformed. */
export function parseCpuList(text: string): Set<number> | undefined {
  const out = new Set<number>();
  for (const part of text.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return undefined;
    const lo = Number(m[1]);
    const hi = m[2] !== undefined ? Number(m[2]) : lo;
    for (let c = lo; c <= hi; c++) out.add(c);
  }
  return out.size ? out : undefined;
}

/** The logical CPUs this process may run on, from /proc/self/status text (undefined when it does not say). */
export function allowedCpusFromStatus(statusText: string): Set<number> | undefined {
  const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(statusText);
  return m ? parseCpuList(m[1]!) : undefined;
}

let cachedCores: number | undefined;

/**
 * Physical cores this process may use: the cores behind the logical CPUs of its affinity mask (/proc/cpuinfo,
 * else `lscpu`), else the logical CPU count; never more than the CPUs allowed (os.availableParallelism also sees
 * a container's CPU quota). Counting cores of the whole machine and capping by the allowed logical CPUs would
 * give a task holding both hyper-threads of 4 cores 8 threads, not 4.
 */
export function physicalCores(): number {
  if (cachedCores !== undefined) return cachedCores;
  const allowedCount = os.availableParallelism();
  let allowed: Set<number> | undefined;
  try {
    allowed = allowedCpusFromStatus(readFileSync('/proc/self/status', 'utf8'));
  } catch {
    /* not Linux: no mask to honour beyond availableParallelism */
  }
  let n = 0;
  try {
    n = physicalCoresFromCpuinfo(readFileSync('/proc/cpuinfo', 'utf8'), allowed);
  } catch {
    /* not Linux, or /proc is hidden: try lscpu */
  }
  if (n === 0) {
    const r = spawnSync('lscpu', ['-p=CPU,Core,Socket'], { encoding: 'utf8', timeout: 5000 });
    if (r.status === 0) n = physicalCoresFromLscpu(r.stdout, allowed);
  }
  cachedCores = Math.max(1, Math.min(n || allowedCount, allowedCount));
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

/**
 * Puts OMP_NUM_THREADS / MKL_NUM_THREADS for `threads` into this process's environment unless they are set. The
 * OpenMP runtime reads them once, when libtorch loads (on first use, see torch/native.ts); a thread other than
 * the one that called torch.setNumThreads (the worker threads long calls run on) otherwise starts its parallel
 * regions with one thread per logical CPU. `nanogpt launch` sets them for local ranks; ranks started by mpirun,
 * srun or ssh get them here.
 */
export function exportThreadEnv(threads: number, env: NodeJS.ProcessEnv = process.env): void {
  for (const k of ['OMP_NUM_THREADS', 'MKL_NUM_THREADS'] as const) if (!env[k]) env[k] = String(threads);
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

