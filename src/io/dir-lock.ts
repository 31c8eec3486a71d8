// One writer per output directory: a lock file created with O_EXCL, holding who owns it. Two training runs (or
// two `prepare`s) in one directory would otherwise both "succeed", interleaving metrics and overwriting each
// other's checkpoints and token files.
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { UserError } from '../util/errors.js';
import { pidAlive } from './atomic.js';
import { readSmallFileSync } from './bounded-read.js';

export const LOCK_FILE = '.nanogpt.lock';

/** What the lock file records about its holder. */
export interface LockOwner {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  started: string;
  command: string;
  /** Linux: the boot and the process start time (clock ticks since boot), so a reused pid is not taken for the holder. */
  boot?: string;
  procStart?: string;
  /** Random, so release() removes only the lock this process took. */
  token: string;
}

function readProcFile(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function bootId(): string | undefined {
  return readProcFile('/proc/sys/kernel/random/boot_id')?.trim();
}

/** Field 22 of /proc/<pid>/stat (start time); the command name before it may hold spaces and parentheses. */
function processStart(pid: number): string | undefined {
  const stat = readProcFile(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

/** Whether the holder, on this host, still runs: its pid is alive and is the same process (same boot, start time). */
function holderRunsHere(owner: LockOwner): boolean {
  if (owner.boot && bootId() && owner.boot !== bootId()) return false;
  if (!pidAlive(owner.pid)) return false;
  const start = processStart(owner.pid);
  return !(owner.procStart && start && owner.procStart !== start);
}

function parseOwner(text: string): LockOwner | undefined {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    if (typeof o.pid === 'number' && typeof o.host === 'string' && typeof o.token === 'string') {
      return { started: '?', command: 'nanogpt', ...o } as LockOwner;
    }
  } catch {
    // not ours, or being written right now
  }
  return undefined;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export class DirLock {
  #released = false;
  readonly #onExit = (): void => this.release();

  private constructor(
    readonly file: string,
    readonly owner: LockOwner,
  ) {
    // On process.exit (a second Ctrl-C, an uncaught error) finally blocks do not run; the exit event does.
    process.on('exit', this.#onExit);
  }

  /**
   * Takes `dir`'s lock for `command` (e.g. "nanogpt train"), creating `dir` if needed. A lock whose holder is gone
   * (same host, process not running) is taken over with a note on `log`; a live one, or one from another host
   * (whose process cannot be checked from here), is a UserError naming the holder and what to do.
   */
  static acquire(dir: string, command: string, log: (line: string) => void = () => undefined): DirLock {
    mkdirSync(dir, { recursive: true });
    const file = path.join(dir, LOCK_FILE);
    const owner: LockOwner = {
      pid: process.pid,
      host: os.hostname(),
      started: new Date().toISOString(),
      command,
      boot: bootId(),
      procStart: processStart(process.pid),
      token: randomBytes(8).toString('hex'),
    };
    for (let attempt = 0; attempt < 5; attempt++) {
      let fd: number;
      try {
        fd = openSync(file, 'wx', 0o644);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const text = readSmallFileSync(file);
        if (text === undefined && !existsSync(file)) continue; // released between our open and our read: try again
        const holder = text === undefined ? undefined : parseOwner(text);
        if (!holder) {
          // Its holder may be between creating it and writing it: look again shortly before calling it foreign.
          if (attempt < 3) {
            sleepSync(50);
            continue;
          }
          throw new UserError(
            `${dir} is locked by ${file}, which does not name its holder (it is not a lock file nanogpt wrote, or it is damaged)`,
            `if no nanogpt command is using ${dir}, delete it (rm -r ${file}) and rerun`,
          );
        }
        if (holder.host === owner.host && !holderRunsHere(holder)) {
          log(`removing a stale lock ${file} (${holder.command}, pid ${holder.pid}, started ${holder.started}, is no longer running)`);
          try {
            // Only if it is still the stale one: another process may have replaced it meanwhile.
            if (readSmallFileSync(file) === text) unlinkSync(file);
          } catch {
            // someone else removed it first
          }
          continue;
        }
        throw heldError(dir, file, holder, owner.host);
      }
      try {
        writeSync(fd, JSON.stringify(owner) + '\n');
      } catch (err) {
        closeSync(fd);
        unlinkSync(file);
        throw err;
      }
      closeSync(fd);
      return new DirLock(file, owner);
    }
    throw new UserError(`could not take the lock ${file}: other processes keep taking and releasing it`, `make sure only one nanogpt command writes ${dir}, then rerun`);
  }

  /** Removes the lock if it is still ours. Idempotent; also runs at process exit. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    process.off('exit', this.#onExit);
    try {
      if (parseOwner(readSmallFileSync(this.file) ?? '')?.token === this.owner.token) unlinkSync(this.file);
    } catch {
      // already gone (or the directory was removed): nothing to release
    }
  }
}

/** The directory is locked by a process that runs (sameHost) or may run (another host). */
export class LockHeldError extends UserError {
  constructor(
    problem: string,
    fix: string,
    readonly holder: LockOwner,
    readonly sameHost: boolean,
  ) {
    super(problem, fix);
  }
}

function heldError(dir: string, file: string, holder: LockOwner, thisHost: string): LockHeldError {
  const who = `${holder.command} (pid ${holder.pid} on ${holder.host}, started ${holder.started})`;
  if (holder.host === thisHost) {
    return new LockHeldError(
      `${dir} is in use by ${who}`,
      `wait for it to finish, stop it (kill ${holder.pid}), or use another directory; if that process is not nanogpt, delete the lock (rm ${file})`,
      holder,
      true,
    );
  }
  return new LockHeldError(
    `${dir} is in use by ${who}; that is another host, so nanogpt cannot tell from here whether it still runs`,
    `if that run is over (check on ${holder.host}: ps -p ${holder.pid}), delete the lock (rm ${file}) and rerun; else use another directory`,
    holder,
    false,
  );
}
