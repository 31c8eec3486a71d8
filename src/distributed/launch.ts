// The process supervisor behind `nanogpt launch`: starts one child per rank (or one mpirun for all of them),
// prefixes their output lines with the rank, forwards the signals the launcher gets, and tears every rank down
// when one fails, so a crashed rank never leaves its peers blocked in a collective until their timeout.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import type { Writable, Readable } from 'node:stream';
import { PEER_LOST_EXIT, UserError } from '../util/errors.js';
import { named } from '../util/format.js';
import { DescendantTracker, LAUNCH_TAG_VAR, taggedProcesses } from './proc-tree.js';
import { randomBytes } from 'node:crypto';

/** One process to supervise. `rank: null` is an mpirun whose output carries Open MPI's per-rank tags. */
export interface ProcSpec {
  /** null: an mpirun that starts every rank itself. */
  rank: number | null;
  /** For mpirun: its Open MPI major version (output tags changed in 5). */
  openMpiMajor?: number;
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
  /** An `ssh -tt`: the first stop signal goes to the remote rank as a Ctrl-C written to ssh's stdin. */
  interruptViaStdin?: boolean;
}

export interface SuperviseOptions {
  /** After a rank fails: how long the others get to exit after SIGTERM before SIGKILL. */
  graceMs: number;
  stdout?: Writable;
  stderr?: Writable;
  /** The launcher's own messages (default: stderr with a `nanogpt launch:` prefix). */
  log?: (line: string) => void;
  /** Forward SIGINT/SIGTERM/SIGHUP sent to this process (default true). */
  forwardSignals?: boolean;
}

export interface LaunchOutcome {
  exitCode: number;
  /** The first rank that ended badly, if any. */
  failure?: { rank: number | null; code: number | null; signal: NodeJS.Signals | null };
  /** The first signal the launcher received and forwarded. */
  interrupted?: NodeJS.Signals;
}

/** Variables a launcher may have in its own environment that must not leak into ranks it starts. */
export const RANK_VARS = ['RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'LOCAL_WORLD_SIZE', 'GROUP_RANK', 'ROLE_RANK', 'NODE_RANK'] as const;

const SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function who(rank: number | null): string {
  return rank === null ? 'mpirun' : `rank ${rank}`;
}

function describeEnd(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `was killed by ${signal}` : `exited with code ${code}`;
}

/** The shell convention for a process that ended by a signal: 128 + its number. */
function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (signal) return 128 + (os.constants.signals[signal] ?? 0);
  return code ?? 1;
}

/**
 * Splits a byte stream into lines (UTF-8 safe across chunk boundaries) and hands each complete line to `emit`.
 * A line longer than `maxLine` is emitted in pieces rather than buffered without bound.
 */
export class LineSplitter {
  #decoder = new StringDecoder('utf8');
  #partial = '';
  constructor(
    private readonly emit: (line: string) => void,
    private readonly maxLine = 64 * 1024,
  ) {}

  push(chunk: Buffer | string): void {
    const text = this.#partial + (typeof chunk === 'string' ? chunk : this.#decoder.write(chunk));
    const lines = text.split('\n');
    this.#partial = lines.pop()!;
    // ssh -tt turns \n into \r\n; a lone \r at a line end is never meant to be seen.
    for (const l of lines) this.emit(l.endsWith('\r') ? l.slice(0, -1) : l);
    while (this.#partial.length > this.maxLine) {
      this.emit(this.#partial.slice(0, this.maxLine));
      this.#partial = this.#partial.slice(this.maxLine);
    }
  }

  /** Emits what is left (a last line without a newline). */
  end(): void {
    const rest = this.#partial + this.#decoder.end();
    this.#partial = '';
    if (rest !== '') this.emit(rest);
  }
}

/** `[rank k] ` unless the line already starts with it (the trainer prefixes its own log lines when distributed). */
export function prefixLine(rank: number, line: string): string {
  const tag = `[rank ${rank}]`;
  return line.startsWith(tag) ? line : `${tag} ${line}`;
}

// Open MPI's --tag-output writes `[jobid,rank]<stdout>:` before each line (Open MPI 5: `[jobid,rank]<stdout>: `,
// with a space that is not the rank's); a rank's unterminated last line runs straight into the next tag, so tags
// are found anywhere in a line, not only at its start.
const MPI_TAG = /\[\d+,(\d+)\]<(?:stdout|stderr|stddiag)>:/g;
const MPI5_TAG = /\[\d+,(\d+)\]<(?:stdout|stderr|stddiag)>: /g;

/**
 * Rewrites one line of mpirun output into `[rank k] …` lines; untagged text (mpirun's own) passes unchanged.
 * `openMpiMajor` ≥ 5 strips the space Open MPI 5 puts after each tag.
 */
export function rewriteMpiLine(line: string, openMpiMajor = 4): string[] {
  const out: string[] = [];
  const matches = [...line.matchAll(openMpiMajor >= 5 ? MPI5_TAG : MPI_TAG)];
  if (matches.length === 0) return [line];
  const head = line.slice(0, matches[0]!.index);
  if (head !== '') out.push(head);
  matches.forEach((m, i) => {
    const end = i + 1 < matches.length ? matches[i + 1]!.index : line.length;
    out.push(prefixLine(Number(m[1]), line.slice(m.index! + m[0].length, end)));
  });
  return out;
}

/** What mpirun's closing report says about the rank that failed first. */
export interface MpiReport {
  rank?: number;
  detail?: string;
  /** A "noticed that process rank N … exited on" line whose signal is on the next line (the text is wrapped). */
  pendingSignal?: boolean;
  /** A host whose ssh connection timed out (the keep-alives went unanswered: a cut or a machine gone). */
  lostHost?: string;
}

/**
 * Picks the failing rank out of mpirun's closing report, so the launcher can name it the way it does for local
 * ranks. Two forms, in Open MPI 4 and 5 alike:
 * - a non-zero exit: "Process name: [[487,1],2]" (Open MPI 5: "[prterun-host-1234@1,2]"), then "Exit code: 7";
 * - a signal: "mpirun noticed that process rank 2 with PID 1234 on node node2 exited on signal 9 (Killed)."
 *   (Open MPI 5's prterun prints the same sentence, and may wrap it before "signal").
 */
export function watchMpiReport(line: string, into: MpiReport): void {
  // ssh's own words when its keep-alives go unanswered; mpirun then blames "unable to reliably start daemons".
  const lost = /^Timeout, server (\S+) not responding\.?\s*$/.exec(line);
  if (lost) {
    into.lostHost ??= lost[1];
    return;
  }
  if (into.pendingSignal) {
    into.pendingSignal = false;
    const sig = /^\s*signal (\d+)(?: \(([^)]+)\))?/.exec(line);
    if (sig) into.detail = `signal ${sig[1]}${sig[2] ? ` (${sig[2]})` : ''}${into.detail ?? ''}`;
    return;
  }
  if (into.rank !== undefined && into.detail !== undefined) return;
  const noticed = /noticed that process rank (\d+) with PID \d+ on node (\S+) exited on(?: signal (\d+)(?: \(([^)]+)\))?)?/.exec(line);
  if (noticed && into.rank === undefined) {
    into.rank = Number(noticed[1]);
    const where = ` on node ${noticed[2]}`;
    if (noticed[3] !== undefined) into.detail = `signal ${noticed[3]}${noticed[4] ? ` (${noticed[4]})` : ''}${where}`;
    else {
      into.detail = where;
      into.pendingSignal = true;
    }
    return;
  }
  const name = /^\s*Process name:\s*\[(?:\[\d+,\d+\]|[^\]\s@]+@\d+),(\d+)\]/.exec(line);
  if (name && into.rank === undefined) {
    into.rank = Number(name[1]);
    return;
  }
  const detail = /^\s*(Exit code|Signal):\s*(.+?)\s*$/.exec(line);
  if (detail && into.rank !== undefined && into.detail === undefined) into.detail = `${detail[1]!.toLowerCase()} ${detail[2]}`;
}

/**
 * Collects the ranks a rank's own diagnosis names as gone — the trainer's "… failed: rank 2 did not respond" (or
 * "ranks 1, 2 did not respond") — from a `[rank k]`-prefixed output line.
 */
export function watchPeerReport(line: string, into: Set<number>): void {
  const m = /failed: ranks? ([\d, ]+) did not respond/.exec(line);
  if (!m) return;
  for (const r of m[1]!.split(',')) if (r.trim() !== '') into.add(Number(r.trim()));
}

function ranksText(ranks: number[]): string {
  const sorted = [...ranks].sort((a, b) => a - b);
  return named('rank', sorted);
}

function pipeLines(from: Readable, to: Writable, rewrite: (line: string) => string[]): LineSplitter {
  const splitter = new LineSplitter((line) => {
    const text = rewrite(line).map((l) => l + '\n').join('');
    // Back-pressure: if the terminal or pipe is slow, stop reading this rank until it drains.
    if (!to.write(text)) {
      from.pause();
      to.once('drain', () => from.resume());
    }
  });
  from.on('data', (chunk: Buffer) => splitter.push(chunk));
  from.on('end', () => splitter.end());
  return splitter;
}

/** Sends `signal` to the child's whole process group (it leads one: spawned detached), else to the child. */
function signalProc(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

/** The exit code of a process that stopped on request (128 + SIGINT, what `nanogpt train` returns after a snapshot). */
export const INTERRUPTED_EXIT = 130;

/** ssh's own exit code: it could not connect, lost the connection, or the remote command died of a signal. */
const SSH_FAILED_EXIT = 255;

/** How long a child's pipes may stay open after it exited (an orphaned grandchild may hold them forever). */
export const DRAIN_MS = 2000;
/** How often the launcher records its children's descendants (see DescendantTracker). */
const SAMPLE_MS = 1000;

/**
 * Runs the processes to completion. Each child leads its own process group, so a Ctrl-C in the terminal reaches
 * only the launcher, which forwards it exactly once (a trainer treats a second SIGINT as "quit now, skip the
 * snapshot"). First and second signals are forwarded as they are; a third one kills every rank and every process
 * they started, including those that left their process group.
 */
export function supervise(specs: readonly ProcSpec[], opts: SuperviseOptions): Promise<LaunchOutcome> {
  const stdout = opts.stdout ?? process.stdout;
  const stderr = opts.stderr ?? process.stderr;
  const log = opts.log ?? ((line: string) => void stderr.write(`nanogpt launch: ${line}\n`));
  const forward = opts.forwardSignals ?? true;

  return new Promise((resolve) => {
    interface Entry {
      spec: ProcSpec;
      child: ChildProcess;
      /** It exited (its pipes may still be draining). */
      done: boolean;
      /** We sent it a signal: a bad end after that is ours, not its failure. */
      signalled: boolean;
    }
    const children: Entry[] = [];
    const failures: Failure[] = [];
    const stopped: (number | null)[] = [];
    let interrupted: NodeJS.Signals | undefined;
    let signalsSeen = 0;
    let killTimer: NodeJS.Timeout | undefined;
    let tornDown = false;
    let remaining = specs.length;
    const mpiFailure: MpiReport = {};
    // Ranks a surviving rank reported gone ("rank 2 did not respond"): the culprit when the ranks that print are
    // only those that stopped because of it (a cut link, a frozen machine, a rank mpirun cannot see die).
    const reportedGone = new Set<number>();
    let mpirunDeadline: NodeJS.Timeout | undefined;
    const tracker = new DescendantTracker();
    const tag = `${process.pid}-${randomBytes(6).toString('hex')}`;
    const rememberTagged = (): void => tracker.remember(taggedProcesses(tag));
    const roots = (): number[] => children.filter((c) => !c.done && c.child.pid !== undefined).map((c) => c.child.pid!);
    const sampler = setInterval(() => tracker.sample(roots()), SAMPLE_MS);
    sampler.unref();

    const live = () => children.filter((c) => !c.done);
    const signal = (c: Entry, sig: NodeJS.Signals): void => {
      c.signalled = true;
      signalProc(c.child, sig);
    };
    const killAllNow = (): void => {
      tracker.sample(roots());
      rememberTagged();
      for (const c of live()) signal(c, 'SIGKILL');
      tracker.signalAll('SIGKILL');
    };

    const onSignal = (sig: NodeJS.Signals): void => {
      signalsSeen += 1;
      interrupted ??= sig;
      if (signalsSeen >= 3) {
        log(`${sig} again: killing all ranks and every process they started`);
        killAllNow();
        return;
      }
      const targets = live();
      const mpirun = targets.length === 1 && targets[0]!.spec.rank === null ? targets[0]! : undefined;
      const what = mpirun ? 'mpirun' : `${targets.length} rank process(es)`;
      // mpirun answers SIGTERM/SIGINT by killing the job: Open MPI 5 at once (what ranks print on the way out is
      // lost), Open MPI 4 after odls_base_sigkill_timeout. Both forward SIGUSR2 to every rank and kill nothing, and
      // the trainer treats SIGUSR2 as a request to stop; so the first signal reaches its ranks as SIGUSR2, and a
      // repeated one goes to mpirun as it is.
      const asUsr2 = mpirun !== undefined && signalsSeen === 1;
      const viaTty = signalsSeen === 1 ? targets.filter((c) => c.spec.interruptViaStdin) : [];
      log(
        `${sig}: forwarding to ${what}${asUsr2 ? ' as SIGUSR2 (mpirun forwards that one to its ranks)' : ''}` +
          `${viaTty.length ? ` (ranks through ssh get it as a Ctrl-C on their terminal)` : ''}${signalsSeen === 1 ? ' (send it twice more to kill them)' : ''}`,
      );
      for (const c of targets) {
        // A Ctrl-C character on an ssh -tt terminal reaches the remote rank as SIGINT and keeps the connection
        // (and the rank's output) up; signalling the local ssh would end the connection and hang the rank up.
        if (viaTty.includes(c) && c.child.stdin?.writable) {
          c.signalled = true;
          c.child.stdin.write('\x03');
        } else if (asUsr2) {
          // To mpirun alone, not its process group: the group holds its ssh connections to the other hosts (which
          // SIGUSR2 would kill, aborting the job) and its local ranks (which would get the request twice).
          c.signalled = true;
          c.child.kill('SIGUSR2');
        } else signal(c, sig);
      }
    };
    // If the launcher itself dies of an exception, take the ranks with it rather than orphaning them.
    const onExit = (): void => killAllNow();
    if (forward) for (const s of SIGNALS) process.on(s, onSignal);
    process.on('exit', onExit);

    const teardown = (failed: ProcSpec, code: number | null, sig: NodeJS.Signals | null): void => {
      // mpirun stops its own ranks; there is nothing else of ours to stop.
      if (failed.rank === null || tornDown) return;
      tornDown = true;
      const others = live();
      log(`${who(failed.rank)} ${describeEnd(code, sig)}; stopping ${others.length ? others.map((c) => who(c.spec.rank)).join(', ') : 'nothing (no other rank is running)'}`);
      for (const c of others) signal(c, 'SIGTERM');
      if (others.length > 0) {
        killTimer = setTimeout(() => {
          const stuck = live();
          if (stuck.length) log(`${stuck.map((c) => who(c.spec.rank)).join(', ')} still running after ${opts.graceMs} ms: SIGKILL`);
          killAllNow();
        }, opts.graceMs);
      }
    };

    const finish = (): void => {
      if (killTimer) clearTimeout(killTimer);
      if (mpirunDeadline) clearTimeout(mpirunDeadline);
      clearInterval(sampler);
      if (forward) for (const s of SIGNALS) process.off(s, onSignal);
      process.off('exit', onExit);
      // Whatever the children left running (an orphaned ssh of mpirun's after a lost node) belongs to this run.
      rememberTagged();
      const left = tracker.signalAll('SIGKILL');
      if (left > 0) log(`killed ${left} process(es) the ranks left behind`);
      const failure = failures[0];
      if (failure) {
        const culprit = pickCulprit(failures);
        const { rank, code, signal: sig } = culprit;
        // mpirun names the first rank that exited non-zero; when that is one that only stopped because a peer was
        // gone (exit PEER_LOST_EXIT), the peer the ranks reported is the one to name.
        const mpiNamesBystander = mpiFailure.rank !== undefined && new RegExp(`^exit code ${PEER_LOST_EXIT}\\b`).test(mpiFailure.detail?.trim() ?? '');
        const mpiCulprit =
          rank !== null
            ? ''
            : mpiFailure.rank !== undefined && !(mpiNamesBystander && reportedGone.size > 0)
              ? ` (mpirun reports rank ${mpiFailure.rank} failed first${mpiFailure.detail ? `: ${mpiFailure.detail.trim()}` : ''})`
              : reportedGone.size > 0
                ? ` (${ranksText([...reportedGone])} stopped answering; the other ranks exited because of it)`
                : '';
        const lost = failures.filter((f) => f !== culprit && f.code === PEER_LOST_EXIT).map((f) => who(f.rank));
        const lostNote = culprit.code !== PEER_LOST_EXIT && lost.length ? `; ${lost.join(', ')} stopped because a peer was gone` : '';
        // The exit code is the culprit's; when the culprit is a rank the others reported gone (its own end unknown,
        // or ours: mpirun or ssh ended by the launcher), it is theirs, PEER_LOST_EXIT.
        let exitCode = exitCodeOf(code, sig);
        if (interrupted) log(`stopped by ${interrupted}: ${who(rank)} ${describeEnd(code, sig)}`);
        else if (rank === null) {
          if (reportedGone.size > 0 && culprit.ours) exitCode = PEER_LOST_EXIT;
          const lostNote = mpiFailure.lostHost ? ` (its ssh connection to ${mpiFailure.lostHost} timed out: that host stopped answering — a network cut, or the machine is down)` : '';
          log(`failed: mpirun ${describeEnd(code, sig)}${mpiCulprit}${lostNote}`);
        }
        // The rank picked only lost a peer, or its ssh ended (255) or was stopped by us in the teardown, while the
        // survivors name a rank as gone (a cut link, a frozen host): the ranks they name are the ones to blame.
        else if (reportedGone.size > 0 && rank !== null && (code === PEER_LOST_EXIT || code === SSH_FAILED_EXIT || culprit.ours)) {
          log(`failed: ${ranksText([...reportedGone])} stopped answering (reported by the ranks that exited with code ${PEER_LOST_EXIT}); all ranks stopped`);
          exitCode = PEER_LOST_EXIT;
        }
        else if (code === PEER_LOST_EXIT) log(`failed: ${who(rank)} lost a peer (${describeEnd(code, sig)}; no rank reported a failure of its own); all ranks stopped`);
        else log(`failed: ${who(rank)} ${describeEnd(code, sig)}${lostNote}; all ranks stopped`);
        resolve({ exitCode, failure: { rank, code, signal: sig }, interrupted });
      } else if (stopped.length) {
        log(`stopped${interrupted ? ` by ${interrupted}` : ''}: ${stopped.map(who).join(', ')} exited with code ${INTERRUPTED_EXIT} (interrupted)`);
        resolve({ exitCode: INTERRUPTED_EXIT, interrupted });
      } else {
        resolve({ exitCode: 0, interrupted });
      }
    };

    for (const spec of specs) {
      const [file, ...args] = spec.argv;
      const child = spawn(file!, args, { env: { ...spec.env, [LAUNCH_TAG_VAR]: tag }, cwd: spec.cwd, stdio: [spec.interruptViaStdin ? 'pipe' : 'ignore', 'pipe', 'pipe'], detached: true });
      const entry: Entry = { spec, child, done: false, signalled: false };
      children.push(entry);
      child.stdin?.on('error', () => {
        /* ssh gone: a Ctrl-C written after it exited has nowhere to go */
      });
      const rewrite =
        spec.rank === null
          ? (line: string) => {
              watchMpiReport(line, mpiFailure);
              const lines = rewriteMpiLine(line, spec.openMpiMajor);
              for (const l of lines) watchPeerReport(l, reportedGone);
              // mpirun may wait on a lost host's daemon long after its ranks are gone (an ssh connection that only
              // its keep-alives will end): once a rank says a peer is gone, it gets the launcher's grace period.
              if (reportedGone.size > 0 && !interrupted && mpirunDeadline === undefined) {
                mpirunDeadline = setTimeout(() => {
                  if (live().length === 0) return;
                  log(`mpirun still runs ${opts.graceMs} ms after a rank reported ${ranksText([...reportedGone])} gone (it may be waiting for a host it cannot reach): ending it and everything it started`);
                  killAllNow();
                }, opts.graceMs);
              }
              return lines;
            }
          : spec.interruptViaStdin
            ? // The remote terminal echoes the Ctrl-C we wrote as "^C" in front of the rank's next line.
              (line: string) => {
                watchPeerReport(line, reportedGone);
                return line.startsWith('^C') && line.length > 2 ? [prefixLine(spec.rank!, line.slice(2))] : line === '^C' ? [] : [prefixLine(spec.rank!, line)];
              }
            : (line: string) => {
                // A local rank's report matters as much as one through mpirun: when it exits first, the ranks the
                // teardown stops end badly too, and only this line says which rank was really gone.
                watchPeerReport(line, reportedGone);
                return [prefixLine(spec.rank!, line)];
              };
      const outs = [pipeLines(child.stdout!, stdout, rewrite), pipeLines(child.stderr!, stderr, rewrite)];

      let ended = false;
      const onEnd = (): void => {
        if (ended) return;
        ended = true;
        remaining -= 1;
        if (remaining === 0) finish();
      };
      const onExited = (code: number | null, sig: NodeJS.Signals | null, spawnError?: Error): void => {
        if (entry.done) return;
        entry.done = true;
        if (spawnError) log(`${who(spec.rank)}: cannot start ${file}: ${spawnError.message}`);
        // 130: the process stopped on request (a trainer writes its snapshot first), by a signal the launcher
        // forwarded or one it got itself (a hung-up ssh session); the others are stopping at the same step.
        if (code === INTERRUPTED_EXIT && !spawnError) stopped.push(spec.rank);
        const bad = spawnError !== undefined || (code !== 0 && code !== INTERRUPTED_EXIT);
        if (bad && spec.interruptViaStdin && code === SSH_FAILED_EXIT) {
          log(
            entry.signalled
              ? `${who(spec.rank)}: ssh exited with ${SSH_FAILED_EXIT} after the launcher stopped it`
              : `${who(spec.rank)}: ssh exited with ${SSH_FAILED_EXIT}: the connection failed or was lost, or the remote rank was killed by a signal`,
          );
        }
        if (bad) {
          failures.push({ rank: spec.rank, code: spawnError ? 127 : code, signal: sig, ours: entry.signalled });
          // After a forwarded signal the ranks are already shutting down in their own way; don't pile on.
          if (!interrupted) teardown(spec, spawnError ? 127 : code, sig);
        }
      };
      // 'exit', then the rest of its output: 'close' comes once every process holding its pipes let go, which an
      // orphaned grandchild may never do; after DRAIN_MS the pipes are cut (their last partial lines flushed).
      child.on('exit', (code, sig) => {
        onExited(code, sig);
        const drain = setTimeout(() => {
          // Someone it started still holds its output (an orphan, perhaps missed by the tree sampling): found by
          // the tag, ended with the rest when the run is over.
          const running = new Set(live().map((c) => c.child.pid));
          const holders = taggedProcesses(tag).filter((pid) => !running.has(pid));
          log(`${who(spec.rank)} exited, but its output is still open after ${DRAIN_MS} ms${holders.length ? ` (held by process(es) ${holders.join(', ')} it left behind)` : ''}; not waiting for it`);
          tracker.remember(holders);
          for (const o of outs) o.end();
          child.stdout?.destroy();
          child.stderr?.destroy();
          onEnd();
        }, DRAIN_MS);
        child.once('close', () => {
          clearTimeout(drain);
          onEnd();
        });
      });
      child.on('error', (err) => {
        // A spawn failure emits 'error' (and 'close', no 'exit'); a failed kill() emits only 'error' (ignored here).
        if (child.pid === undefined) {
          onExited(null, null, err);
          onEnd();
        }
      });
    }
    tracker.sample(roots());
  });
}

interface Failure {
  rank: number | null;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** It ended after the launcher signalled it (teardown or forwarding). */
  ours: boolean;
}

/**
 * The rank to name when several ended badly: the first one that failed on its own — not one that stopped because
 * a peer was gone (PEER_LOST_EXIT: the trainer's collective found a rank missing), and not one the launcher
 * stopped itself; else the first failure.
 */
export function pickCulprit<T extends { code: number | null; ours: boolean }>(failures: readonly T[]): T {
  return failures.find((f) => f.code !== PEER_LOST_EXIT && !f.ours) ?? failures.find((f) => f.code !== PEER_LOST_EXIT) ?? failures[0]!;
}

// ---- what to run ---------------------------------------------------------------------------------------------

/** bin/nanogpt of this installation (dist/src/distributed/launch.js → ../../../bin/nanogpt). */
export function nanogptBin(): string {
  return fileURLToPath(new URL('../../../bin/nanogpt', import.meta.url));
}

const SCRIPT = /\.(c|m)?js$/;

/**
 * Turns what follows `--` into a node command line: a `.js`/`.mjs`/`.cjs` file runs as a node script, a bare
 * word is a nanogpt subcommand (`train --config x.yaml` → node bin/nanogpt train --config x.yaml). Paths are made
 * absolute so the same command works from any working directory on every host.
 */
export function resolveCommand(rest: readonly string[], cwd = process.cwd()): string[] {
  const [first, ...args] = rest;
  if (first === undefined || first === '') {
    throw new UserError('nothing to launch: no command after --', 'write e.g. nanogpt launch --nproc_per_node 2 -- train --config config.yaml');
  }
  if (SCRIPT.test(first)) {
    const script = path.resolve(cwd, first);
    if (!existsSync(script)) throw new UserError(`script '${first}' does not exist (looked at ${script})`);
    return [process.execPath, script, ...args];
  }
  if (first === 'launch') throw new UserError('nanogpt launch cannot launch itself', 'put the command each rank runs after --, e.g. -- train --config config.yaml');
  if (!/^[a-z][a-z0-9-]*$/.test(first)) {
    throw new UserError(
      `'${first}' is neither a nanogpt subcommand nor a .js script`,
      'after -- write a subcommand (train --config x.yaml) or a node script (path/to/script.js args...)',
    );
  }
  return [process.execPath, nanogptBin(), first, ...args];
}

/** A TCP port free on this machine a moment ago (the OS picks it); rank 0 binds it shortly after. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Whether `port` can be listened on here, the way rank 0's TCPStore will (all addresses): the error code when
 * not (EADDRINUSE: someone holds it), undefined when it is free.
 */
export function portProblem(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    srv.listen(port, () => srv.close(() => resolve(undefined)));
  });
}

/** The environment a rank inherits: ours, without rank variables meant for the launcher itself. */
export function baseEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out = { ...env };
  for (const k of RANK_VARS) delete out[k];
  return out;
}

export interface LocalPlan {
  nproc: number;
  command: readonly string[];
  masterAddr: string;
  masterPort: number;
  /** Added to every rank (threads, LD_PRELOAD, …). */
  extraEnv: Readonly<Record<string, string>>;
  env?: NodeJS.ProcessEnv;
}

/** N ranks on this machine, torchrun-style: each gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_*. */
export function localSpecs(plan: LocalPlan): ProcSpec[] {
  const base = baseEnv(plan.env);
  return Array.from({ length: plan.nproc }, (_, rank) => ({
    rank,
    argv: plan.command,
    env: {
      ...base,
      ...plan.extraEnv,
      RANK: String(rank),
      WORLD_SIZE: String(plan.nproc),
      LOCAL_RANK: String(rank),
      LOCAL_WORLD_SIZE: String(plan.nproc),
      MASTER_ADDR: plan.masterAddr,
      MASTER_PORT: String(plan.masterPort),
    },
  }));
}
