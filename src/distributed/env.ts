// Rank discovery: which rank this process is, how many there are, and where rank 0 hosts the rendezvous store,
// read from the environment so that any launcher or scheduler can start us (torchrun and Kubernetes operators,
// Open MPI, MPICH / Intel MPI, Slurm, or `nanogpt launch` itself, which speaks the torchrun dialect).
//
// Policy for the rendezvous address (MASTER_ADDR) and port (MASTER_PORT):
// - The environment wins over the config (`main_process_ip` / `main_process_port`): a launcher that sets them
//   knows the job's actual layout; the config is the fallback for launchers that cannot (plain mpirun, PMI).
// - Slurm names the job's nodes, so the address defaults to the first node of the step's node list (rank 0
//   runs there with srun's block distribution) and the port to 29500 + (job id mod 1000), so that two jobs
//   sharing a node do not fight over one port.
// - Otherwise there is no safe guess: a multi-rank run without an address is a UserError naming what to set.
//   Once an address is known, the port defaults to 29500 (torchrun's default, what users expect).
// - A single-rank run needs no rendezvous: it gets 127.0.0.1 and the default port, which nothing uses.
import { UserError } from '../util/errors.js';

export type RankSource = 'torchrun' | 'openmpi' | 'pmi' | 'slurm' | 'single';

export interface RankInfo {
  rank: number;
  worldSize: number;
  /** This rank's index among the ranks on the same host. */
  localRank: number;
  /** How many ranks share this host (used to split cores into threads per rank). */
  localWorldSize: number;
  masterAddr: string;
  masterPort: number;
  /** Which launcher's variables the values came from. */
  source: RankSource;
}

export interface RendezvousConfig {
  mainProcessIp?: string;
  mainProcessPort?: number;
}

export const DEFAULT_MASTER_PORT = 29500;

type Env = Record<string, string | undefined>;

const has = (env: Env, name: string): boolean => env[name] !== undefined && env[name]!.trim() !== '';

/** Reads a non-negative integer variable; a malformed value is an error naming the variable. */
function intVar(env: Env, name: string, source: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw.trim());
  if (!Number.isInteger(n) || n < 0) {
    throw new UserError(`${name}=${JSON.stringify(raw)} (set by ${source}) is not a non-negative integer`, `unset ${name} or set it to an integer`);
  }
  return n;
}

function requireInt(env: Env, name: string, source: string, sibling: string): number {
  const n = intVar(env, name, source);
  if (n === undefined) {
    throw new UserError(`${sibling} is set but ${name} is not (${source} needs both)`, `set ${name} as well, or unset ${sibling}`);
  }
  return n;
}

interface Layout {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  source: RankSource;
  /** Variables the layout came from, for messages. */
  names: { rank: string; world: string };
  /** Address and port the launcher implies, if any (Slurm). */
  impliedAddr?: string;
  impliedPort?: number;
}

/** Launchers that export rank, world size and (optionally) the local layout as four plain variables. */
interface LauncherVars {
  source: RankSource;
  /** For messages: who sets these variables. */
  label: string;
  rank: string;
  world: string;
  localRank: string;
  localWorld: string;
}

const PLAIN_LAUNCHERS: readonly LauncherVars[] = [
  // Kubernetes training operators set RANK/WORLD_SIZE but no LOCAL_*: one process per pod, so 0 of 1.
  { source: 'torchrun', label: 'a torchrun-style launcher', rank: 'RANK', world: 'WORLD_SIZE', localRank: 'LOCAL_RANK', localWorld: 'LOCAL_WORLD_SIZE' },
  { source: 'openmpi', label: 'Open MPI', rank: 'OMPI_COMM_WORLD_RANK', world: 'OMPI_COMM_WORLD_SIZE', localRank: 'OMPI_COMM_WORLD_LOCAL_RANK', localWorld: 'OMPI_COMM_WORLD_LOCAL_SIZE' },
  // Hydra (MPICH, Intel MPI) exports the two local variables; older process managers do not.
  { source: 'pmi', label: 'MPICH / Intel MPI (PMI)', rank: 'PMI_RANK', world: 'PMI_SIZE', localRank: 'MPI_LOCALRANKID', localWorld: 'MPI_LOCALNRANKS' },
];

/** The layout from the first launcher in PLAIN_LAUNCHERS whose variables are present (torchrun: either one). */
function plainLayout(env: Env): Layout | undefined {
  for (const v of PLAIN_LAUNCHERS) {
    const present = has(env, v.rank) || (v.source === 'torchrun' && has(env, v.world));
    if (!present) continue;
    const rank = requireInt(env, v.rank, v.label, v.world);
    const worldSize = requireInt(env, v.world, v.label, v.rank);
    // Without the local variables, assume one rank per host.
    const localRank = intVar(env, v.localRank, v.label) ?? 0;
    const localWorldSize = intVar(env, v.localWorld, v.label) ?? Math.max(1, localRank + 1);
    return { rank, worldSize, localRank, localWorldSize, source: v.source, names: { rank: v.rank, world: v.world } };
  }
  return undefined;
}

function slurmLayout(env: Env): Layout | undefined {
  if (!has(env, 'SLURM_PROCID')) return undefined;
  const src = 'Slurm';
  const rank = intVar(env, 'SLURM_PROCID', src)!;
  // srun exports the step's own task count; SLURM_NTASKS is the allocation's (equal unless srun -n narrows it).
  const worldName = has(env, 'SLURM_STEP_NUM_TASKS') ? 'SLURM_STEP_NUM_TASKS' : has(env, 'SLURM_NTASKS') ? 'SLURM_NTASKS' : 'SLURM_NPROCS';
  const worldSize = requireInt(env, worldName, src, 'SLURM_PROCID');
  const localRank = intVar(env, 'SLURM_LOCALID', src) ?? 0;
  let localWorldSize = Math.max(1, localRank + 1);
  const perNode = env.SLURM_STEP_TASKS_PER_NODE ?? env.SLURM_TASKS_PER_NODE;
  const nodeId = intVar(env, 'SLURM_NODEID', src);
  if (perNode && nodeId !== undefined) {
    const counts = parseSlurmTasksPerNode(perNode);
    if (counts[nodeId] !== undefined) localWorldSize = counts[nodeId]!;
  }
  const nodeList = env.SLURM_STEP_NODELIST ?? env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST;
  const jobId = intVar(env, 'SLURM_JOB_ID', src) ?? intVar(env, 'SLURM_JOBID', src);
  return {
    rank,
    worldSize,
    localRank,
    localWorldSize,
    source: 'slurm',
    names: { rank: 'SLURM_PROCID', world: worldName },
    impliedAddr: nodeList && nodeList.trim() ? firstSlurmNode(nodeList) : undefined,
    impliedPort: jobId !== undefined ? DEFAULT_MASTER_PORT + (jobId % 1000) : undefined,
  };
}

/**
 * Finds this process's rank from the environment. Precedence: torchrun-style RANK/WORLD_SIZE (also what
 * `nanogpt launch` sets, so it wins when a launcher runs inside an MPI job or a Slurm allocation), then Open MPI,
 * then PMI (MPICH, Intel MPI), then Slurm; none of them → a single rank.
 */
export function discoverRank(env: Env = process.env, config: RendezvousConfig = {}): RankInfo {
  const layout = plainLayout(env) ?? slurmLayout(env);
  if (!layout) {
    return { rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1, masterAddr: '127.0.0.1', masterPort: DEFAULT_MASTER_PORT, source: 'single' };
  }
  const { rank, worldSize, localRank, localWorldSize, names } = layout;
  if (worldSize < 1) {
    throw new UserError(`${names.world}=${worldSize}: a run needs at least one rank`, `set ${names.world} to the number of processes`);
  }
  if (rank >= worldSize) {
    throw new UserError(
      `${names.rank}=${rank} is not below ${names.world}=${worldSize} (ranks are numbered 0..${worldSize - 1})`,
      `give every process a distinct rank in 0..${worldSize - 1} and the same world size`,
    );
  }
  if (localRank >= localWorldSize || localWorldSize > worldSize) {
    throw new UserError(
      `inconsistent local layout from ${layout.source}: local rank ${localRank} of ${localWorldSize} ranks on this host, ${worldSize} ranks in all`,
      'the local rank must be below the local world size, which cannot exceed the world size',
    );
  }

  const envAddr = has(env, 'MASTER_ADDR') ? env.MASTER_ADDR!.trim() : undefined;
  const cfgAddr = config.mainProcessIp?.trim() ? config.mainProcessIp.trim() : undefined;
  const addr = envAddr ?? cfgAddr ?? layout.impliedAddr;
  const envPort = intVar(env, 'MASTER_PORT', 'the environment');
  const cfgPort = config.mainProcessPort ? config.mainProcessPort : undefined;
  const port = envPort ?? cfgPort ?? layout.impliedPort ?? DEFAULT_MASTER_PORT;
  if (port < 1 || port > 65535) {
    const from = envPort !== undefined ? 'MASTER_PORT' : 'main_process_port';
    throw new UserError(`${from}=${port} is not a TCP port`, `set ${from} to a free port in 1..65535 (e.g. ${DEFAULT_MASTER_PORT})`);
  }
  if (addr === undefined) {
    if (worldSize > 1) {
      throw new UserError(
        `rank ${rank} of ${worldSize} (from ${names.rank}/${names.world}) does not know where rank 0 is: MASTER_ADDR is not set`,
        `export MASTER_ADDR=<address of the host running rank 0> (and MASTER_PORT, default ${DEFAULT_MASTER_PORT}) to every rank` +
          ` — with mpirun: -x MASTER_ADDR=... -x MASTER_PORT=... — or set distributed.main_process_ip in the config;` +
          ' `nanogpt launch` sets both for you',
      );
    }
    return { rank, worldSize, localRank, localWorldSize, masterAddr: '127.0.0.1', masterPort: port, source: layout.source };
  }
  return { rank, worldSize, localRank, localWorldSize, masterAddr: addr, masterPort: port, source: layout.source };
}

// ---- Slurm's compressed host lists -------------------------------------------------------------------------

const MAX_EXPANDED = 1_000_000;

/**
 * Expands Slurm's compressed host-list syntax: `node[01-03,07],gpu5` → node01 node02 node03 node07 gpu5.
 * Zero padding is kept (`[08-10]` → 08 09 10); several bracket groups in one name multiply
 * (`r[1-2]n[1-2]` → r1n1 r1n2 r2n1 r2n2), as `scontrol show hostnames` does.
 */
export function expandSlurmNodeList(list: string): string[] {
  const out: string[] = [];
  for (const item of splitTopLevel(list.trim())) {
    if (item === '') continue;
    let names = [''];
    let i = 0;
    while (i < item.length) {
      const open = item.indexOf('[', i);
      if (open < 0) {
        names = names.map((n) => n + item.slice(i));
        break;
      }
      const close = item.indexOf(']', open);
      if (close < 0) throw new UserError(`bad Slurm node list '${list}': '[' without ']'`);
      const prefix = item.slice(i, open);
      const values = expandRanges(item.slice(open + 1, close), list);
      const next: string[] = [];
      for (const n of names) for (const v of values) next.push(n + prefix + v);
      if (next.length > MAX_EXPANDED) throw new UserError(`Slurm node list '${list}' expands to more than ${MAX_EXPANDED} hosts`);
      names = next;
      i = close + 1;
    }
    out.push(...names);
  }
  return out;
}

/** The first host of a Slurm node list, without expanding the rest. */
export function firstSlurmNode(list: string): string {
  const first = splitTopLevel(list.trim())[0] ?? '';
  // Keep only the first value of every bracket group: node[07-09,01] → node07.
  const name = first.replace(/\[([^\]]*)\]/g, (_m, inner: string) => expandRanges(inner.split(',')[0]!, list)[0]!);
  if (name === '' || name.includes('[') || name.includes(']')) throw new UserError(`bad Slurm node list '${list}'`);
  return name;
}

/** Splits on commas that are not inside brackets. */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '[') depth++;
    else if (c === ']') depth = Math.max(0, depth - 1);
    else if (c === ',' && depth === 0) {
      parts.push(s.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(s.slice(start).trim());
  return parts;
}

/** `01-03,07` → 01 02 03 07 (width of the lower bound kept). */
function expandRanges(inner: string, list: string): string[] {
  const out: string[] = [];
  for (const part of inner.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) throw new UserError(`bad Slurm node list '${list}': '${part}' is not a number or a range like 01-03`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new UserError(`bad Slurm node list '${list}': range ${part} runs backwards`);
    if (hi - lo + out.length > MAX_EXPANDED) throw new UserError(`Slurm node list '${list}' expands to more than ${MAX_EXPANDED} hosts`);
    const width = m[1]!.length;
    for (let v = lo; v <= hi; v++) out.push(String(v).padStart(width, '0'));
  }
  return out;
}

/** `2(x3),1` → [2, 2, 2, 1]: tasks per node, in node order (SLURM_TASKS_PER_NODE's syntax). */
export function parseSlurmTasksPerNode(text: string): number[] {
  const out: number[] = [];
  for (const part of text.split(',')) {
    const m = /^\s*(\d+)(?:\(x(\d+)\))?\s*$/.exec(part);
    if (!m) throw new UserError(`bad SLURM_TASKS_PER_NODE '${text}': expected a list like 2(x3),1`);
    const reps = m[2] === undefined ? 1 : Number(m[2]);
    for (let i = 0; i < reps && out.length < MAX_EXPANDED; i++) out.push(Number(m[1]));
  }
  return out;
}
