// The processes a launcher's children start, found through /proc. A child may start processes that leave its
// process group (mpirun's `ssh … orted` calls setsid) and outlive it as orphans holding the launcher's pipes; a
// process group signal never reaches them, so the launcher finds them two ways: it records every descendant
// while its children run (the parent/child tree), and it tags its children's environment, which every process
// they start inherits (found after reparenting too). Linux only: elsewhere nothing is found and only process
// groups are signalled.
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcEntry {
  pid: number;
  ppid: number;
  pgid: number;
  /** Start time in clock ticks since boot: with the pid, it names one process even after the pid is reused. */
  start: number;
}

/** One /proc/PID/stat line; undefined when it does not parse. The command name may hold spaces and parentheses. */
export function parseStat(text: string): ProcEntry | undefined {
  const open = text.indexOf(' (');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open));
  // After ") ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
  // priority nice num_threads itrealvalue starttime …
  const f = text.slice(close + 2).trim().split(/\s+/);
  const ppid = Number(f[1]);
  const pgid = Number(f[2]);
  const start = Number(f[19]);
  if (![pid, ppid, pgid, start].every(Number.isInteger)) return undefined;
  return { pid, ppid, pgid, start };
}

/** Every process below `roots` in the parent/child tree of `table` (the roots themselves excluded). */
export function descendantsOf(roots: readonly number[], table: readonly ProcEntry[]): ProcEntry[] {
  const children = new Map<number, ProcEntry[]>();
  for (const e of table) children.set(e.ppid, [...(children.get(e.ppid) ?? []), e]);
  const out: ProcEntry[] = [];
  const seen = new Set<number>(roots);
  const queue = [...roots];
  while (queue.length) {
    for (const c of children.get(queue.shift()!) ?? []) {
      if (seen.has(c.pid)) continue;
      seen.add(c.pid);
      out.push(c);
      queue.push(c.pid);
    }
  }
  return out;
}

/** The processes running now (empty where there is no /proc). */
export function readProcTable(): ProcEntry[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: ProcEntry[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const e = parseStat(readFileSync(`/proc/${name}/stat`, 'utf8'));
      if (e) out.push(e);
    } catch {
      /* it exited while we looked */
    }
  }
  return out;
}

/** Every thread's children of `pid` (/proc/PID/task/TID/children); undefined where the kernel does not offer it. */
function childPids(pid: number): number[] | undefined {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return []; // the process is gone
  }
  const out: number[] = [];
  for (const tid of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ')) if (c.trim()) out.push(Number(c));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && tid === String(pid)) return undefined; // no CONFIG_PROC_CHILDREN
    }
  }
  return out;
}

/**
 * The descendants of `roots` now, walking down from them (a few reads per process of the subtree, not the whole
 * table); undefined where /proc has no children lists, for the caller to fall back on readProcTable.
 */
export function readDescendants(roots: readonly number[]): ProcEntry[] | undefined {
  const out: ProcEntry[] = [];
  const seen = new Set<number>(roots);
  const queue = [...roots];
  while (queue.length) {
    const kids = childPids(queue.shift()!);
    if (kids === undefined) return undefined;
    for (const k of kids) {
      if (seen.has(k)) continue;
      seen.add(k);
      try {
        const e = parseStat(readFileSync(`/proc/${k}/stat`, 'utf8'));
        if (e) out.push(e);
      } catch {
        /* exited meanwhile */
      }
      queue.push(k);
    }
  }
  return out;
}

/**
 * Remembers the descendants of some root processes, sampled while they run, so they can be signalled after they
 * were orphaned. A remembered process is signalled only while its pid still has the start time it was seen with.
 */
export class DescendantTracker {
  #seen = new Map<number, ProcEntry>();
  /** `readTable` stands in for /proc in tests; by default the subtree is walked (readDescendants) when it can be. */
  constructor(private readonly readTable: () => ProcEntry[] = readProcTable, private readonly walk = readTable === readProcTable) {}

  /** Records the current descendants of `roots`. */
  sample(roots: readonly number[]): void {
    const found = (this.walk ? readDescendants(roots) : undefined) ?? descendantsOf(roots, this.readTable());
    for (const e of found) this.#seen.set(e.pid, e);
  }

  /** Records these processes too (found another way: see taggedProcesses). */
  remember(pids: readonly number[], table = this.readTable()): void {
    const wanted = new Set(pids);
    for (const e of table) if (wanted.has(e.pid)) this.#seen.set(e.pid, e);
  }

  /** Recorded descendants still running (same pid and start time). */
  alive(table = this.readTable()): ProcEntry[] {
    const now = new Map(table.map((e) => [e.pid, e.start]));
    return [...this.#seen.values()].filter((e) => now.get(e.pid) === e.start);
  }

  /** Sends `signal` to every recorded descendant still running; returns how many were signalled. */
  signalAll(signal: NodeJS.Signals): number {
    let n = 0;
    for (const e of this.alive()) {
      try {
        process.kill(e.pid, signal);
        n += 1;
      } catch {
        /* gone meanwhile */
      }
    }
    return n;
  }
}

/** The variable `nanogpt launch` puts into every child's environment, which every process they start inherits. */
export const LAUNCH_TAG_VAR = 'NANOGPT_LAUNCH_TAG';

/** Whether a /proc/PID/environ text (NUL-separated) holds `name=value` exactly. */
export function environHas(environ: string, name: string, value: string): boolean {
  return `\0${environ}`.includes(`\0${name}=${value}\0`);
}

/**
 * Processes (other than this one) whose environment carries `LAUNCH_TAG_VAR=tag`: everything a launcher's
 * children started, wherever it was reparented, whatever session or process group it moved to — unless it
 * cleared its environment. Only this user's processes can be read, which are the only ones we could signal.
 */
export function taggedProcesses(tag: string): number[] {
  const out: number[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (environHas(readFileSync(`/proc/${name}/environ`, 'latin1'), LAUNCH_TAG_VAR, tag)) out.push(Number(name));
    } catch {
      /* gone, or another user's */
    }
  }
  return out;
}
