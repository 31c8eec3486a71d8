// Node system errors (err.code + err.syscall, from fs and net) that come from the user's environment — a full disk,
// a read-only mount, a permission, a port someone else holds — turned into UserErrors naming the path and a fix.
// Only the codes listed here are mapped: any other system error may be a bug and stays an internal error.
import { UserError } from './errors.js';

interface SystemError extends Error {
  code: string;
  syscall: string;
  path?: string;
  dest?: string;
  address?: string;
  port?: number;
}

function isSystemError(err: unknown): err is SystemError {
  const e = err as Partial<SystemError> | null;
  return err instanceof Error && typeof e?.code === 'string' && typeof e.syscall === 'string';
}

/** What was being done, for the message: "writing /out/ckpt.pt", "renaming a → b", "listening on 0.0.0.0:29500". */
function action(e: SystemError): string {
  if (e.syscall === 'listen' || e.syscall === 'bind') return `listening on ${e.address ?? '?'}:${e.port ?? '?'}`;
  const verb: Record<string, string> = {
    open: 'opening',
    write: 'writing',
    read: 'reading',
    mkdir: 'creating the directory',
    rename: 'renaming',
    unlink: 'removing',
    rmdir: 'removing',
    fsync: 'syncing',
    copyfile: 'copying',
    stat: 'reading',
    lstat: 'reading',
    scandir: 'listing',
    ftruncate: 'truncating',
  };
  const what = e.path ? `${e.path}${e.dest ? ` → ${e.dest}` : ''}` : 'a file';
  return `${verb[e.syscall] ?? e.syscall} ${what}`;
}

/** The directory to look at in a fix: the path's parent, or the path itself when that is all we know. */
function dirOf(p: string | undefined): string {
  if (!p) return 'the output directory';
  const i = p.lastIndexOf('/');
  return i > 0 ? p.slice(0, i) : i === 0 ? '/' : '.';
}

type Explain = (e: SystemError) => { problem: string; fix: string };

const KNOWN: Record<string, Explain> = {
  ENOSPC: (e) => ({
    problem: `no space left on the device while ${action(e)}`,
    fix: `free space on that file system (see \`df -h ${dirOf(e.path)}\`) or write somewhere else, then rerun; files written before are unchanged`,
  }),
  EDQUOT: (e) => ({
    problem: `disk quota exceeded while ${action(e)}`,
    fix: `free space within your quota (see \`quota -s\`) or write somewhere else, then rerun; files written before are unchanged`,
  }),
  EFBIG: (e) => ({
    problem: `file too large for its file system while ${action(e)}`,
    fix: 'write to a file system that allows large files (not FAT32), or raise `ulimit -f`',
  }),
  EROFS: (e) => ({
    problem: `read-only file system: cannot write while ${action(e)}`,
    fix: `choose a directory on a writable file system, or remount ${dirOf(e.path)} read-write`,
  }),
  EACCES: (e) => ({
    problem: `permission denied while ${action(e)}`,
    fix: `check the permissions (\`ls -ld ${dirOf(e.path)}\`), or choose a path you may use`,
  }),
  EPERM: (e) => ({
    problem: `operation not permitted while ${action(e)}`,
    fix: `check the permissions and attributes (\`ls -ld ${dirOf(e.path)}\`, \`lsattr\`), or choose a path you may use`,
  }),
  EEXIST: (e) => ({
    problem: `${e.path ?? 'a path'} already exists (while ${action(e)})`,
    fix: 'remove or rename what is in the way, or choose another path',
  }),
  EISDIR: (e) => ({
    // rename(2) reports it for the destination; its path is our temp file.
    problem: `${(e.syscall === 'rename' ? e.dest : e.path) ?? 'the path'} is a directory where a file was expected (while ${action(e)})`,
    fix: 'give the path of a file, or move the directory out of the way',
  }),
  ENOTDIR: (e) => ({
    problem: `a part of ${e.path ?? 'the path'} is a file where a directory was expected (while ${action(e)})`,
    fix: 'check the path: every component before the last must be a directory',
  }),
  ENAMETOOLONG: (e) => ({ problem: `a path is too long (while ${action(e)})`, fix: 'use a shorter path' }),
  ELOOP: (e) => ({ problem: `too many levels of symbolic links (while ${action(e)})`, fix: 'check the symbolic links along the path for a cycle' }),
  EMFILE: (e) => ({ problem: `too many open files (while ${action(e)})`, fix: 'raise the limit (`ulimit -n 65536`), or use fewer workers' }),
  ENFILE: (e) => ({ problem: `the system has too many open files (while ${action(e)})`, fix: 'close other programs, or raise fs.file-max' }),
  EIO: (e) => ({ problem: `input/output error (while ${action(e)})`, fix: 'the disk or network file system is failing; check `dmesg`, then rerun' }),
  EADDRINUSE: (e) => ({
    problem: `the address is in use (while ${action(e)}): another process holds that port`,
    fix: 'choose another port, or stop the process that holds it (`ss -ltnp` lists them)',
  }),
  EADDRNOTAVAIL: (e) => ({
    problem: `the address is not available on this machine (while ${action(e)})`,
    fix: 'use an address of one of this machine’s interfaces (see `ip addr`)',
  }),
};

/**
 * A UserError for a system error caused by the environment (see KNOWN), or undefined for anything else, which the
 * caller treats as a bug.
 */
export function environmentError(err: unknown): UserError | undefined {
  if (!isSystemError(err)) return undefined;
  const explain = KNOWN[err.code];
  if (!explain) return undefined;
  const { problem, fix } = explain(err);
  return new UserError(`${problem} (${err.code})`, fix);
}

/**
 * Gives a system error the path it was about: writes through a file descriptor (write, fsync) report none, and
 * the user needs to know which file could not be written. Returns the same error, for `throw withPath(err, p)`.
 */
export function withPath(err: unknown, path: string): unknown {
  if (isSystemError(err) && err.path === undefined) err.path = path;
  return err;
}
