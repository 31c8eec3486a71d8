// The hosts file (the original's `~/hosts`: one machine per line, `localhost` for the one you launch from) and
// the command lines that start ranks on those machines: one `mpirun` when Open MPI is installed, else one `ssh`
// per remote rank. The syntax is a subset of Open MPI's hostfile, so the same file works with mpirun directly.
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as dgram from 'node:dgram';
import { readBoundedFileSync, READ_LIMITS } from '../io/bounded-read.js';
import { isUserError, UserError } from '../util/errors.js';

export interface HostEntry {
  host: string;
  /** Ranks to start there (`slots=N`; 1 when absent: the original ran one process per machine). */
  slots: number;
  /** 1-based line in the file, for messages. */
  line: number;
}

/**
 * Parses a hosts file: `host [slots=N]` per line, `#` starts a comment, blank lines are skipped. Open MPI's
 * `max_slots=N` is accepted and ignored; anything else is an error naming the line.
 */
export function parseHosts(text: string, file = 'hosts file'): HostEntry[] {
  const out: HostEntry[] = [];
  const seen = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, idx) => {
    const line = idx + 1;
    const body = raw.replace(/#.*/, '').trim();
    if (body === '') return;
    const [host, ...opts] = body.split(/\s+/);
    if (!/^[A-Za-z0-9_.:%-]+$/.test(host!) || host!.startsWith('-')) {
      throw new UserError(`${file}:${line}: '${host}' is not a host name or address`, 'write one host per line, e.g. `node1 slots=2`');
    }
    let slots = 1;
    for (const opt of opts) {
      const m = /^(slots|max_slots|max-slots)=(\d+)$/.exec(opt);
      if (!m) throw new UserError(`${file}:${line}: unknown option '${opt}'`, 'the only option is slots=N (ranks to start on that host)');
      if (m[1] === 'slots') {
        slots = Number(m[2]);
        if (slots < 1) throw new UserError(`${file}:${line}: slots must be at least 1, got ${m[2]}`);
      }
    }
    if (seen.has(host!)) {
      throw new UserError(`${file}:${line}: host '${host}' is listed twice (first on line ${seen.get(host!)})`, 'list each host once and give it slots=N');
    }
    seen.set(host!, line);
    out.push({ host: host!, slots, line });
  });
  if (out.length === 0) throw new UserError(`${file} lists no hosts`, 'write one host per line, e.g. localhost, node1, node2');
  return out;
}

export function readHostsFile(file: string): HostEntry[] {
  let text: string;
  try {
    text = readBoundedFileSync(file, READ_LIMITS.config, 'hosts file').toString('utf8');
  } catch (err) {
    if (isUserError(err)) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new UserError(`cannot read hosts file '${file}' (${code ?? (err as Error).message})`, 'pass --hosts FILE with one host per line (localhost, node1, node2, ...)');
  }
  return parseHosts(text, file);
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1' || host === 'ip6-localhost';
}

/** True when `host` names this machine: loopback, its hostname, or one of its interface addresses. */
export function isThisMachine(host: string): boolean {
  if (isLoopback(host)) return true;
  const h = host.toLowerCase();
  const name = os.hostname().toLowerCase();
  if (h === name || h === name.split('.')[0]) return true;
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.address === host) return true;
  }
  return false;
}

/** The local address whose route reaches `host` (a UDP connect only picks a route; it sends nothing). */
export function addressToward(host: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    const done = (v: string | undefined): void => {
      try {
        sock.close();
      } catch {
        /* already closed */
      }
      resolve(v);
    };
    sock.on('error', () => done(undefined));
    sock.connect(9, host, () => done(sock.address().address));
  });
}

/**
 * Where the other hosts reach rank 0 (which runs on the first host). A loopback name only works when every
 * host is this machine; otherwise this machine's address on the route toward the first remote host.
 */
export async function masterAddressFor(hosts: readonly HostEntry[]): Promise<string> {
  const first = hosts[0]!.host;
  const allLocal = hosts.every((h) => isThisMachine(h.host));
  if (allLocal) return isLoopback(first) ? '127.0.0.1' : first;
  if (!isLoopback(first)) return first;
  const remote = hosts.find((h) => !isThisMachine(h.host))!;
  const addr = await addressToward(remote.host);
  if (!addr) {
    throw new UserError(
      `the hosts file starts with '${first}', but no route from this machine to '${remote.host}' was found to tell the other hosts where rank 0 is`,
      `pass --master_addr <this machine's address as the other hosts see it>, or write that address instead of ${first}`,
    );
  }
  return addr;
}

// ---- command lines -------------------------------------------------------------------------------------------

export interface RemoteLaunchPlan {
  hosts: readonly HostEntry[];
  /** Ranks per host (already resolved from --nproc_per_node or slots). */
  perHost: readonly number[];
  /** The program and its arguments, identical on every host (same install path everywhere, as in the original). */
  command: readonly string[];
  /** Variables every rank must see (MASTER_ADDR/PORT, threads, LD_PRELOAD, NANOGPT_*). */
  env: Readonly<Record<string, string>>;
  /** Run as root: Open MPI refuses without --allow-run-as-root. */
  asRoot?: boolean;
  /** Working directory on every host. */
  cwd: string;
  /** Open MPI's major version (4 when absent): some settings are spelled differently in 5. */
  openMpiMajor?: number;
}

/**
 * ssh keep-alives: a host that stops answering (cable, power, a security-group change) ends the connection after
 * about INTERVAL × COUNT seconds instead of never — TCP alone waits for hours on an idle or blocked connection.
 * The ranks themselves notice a lost peer through their own collective timeout; this is for mpirun's daemons and
 * for our ssh children, which otherwise wait forever.
 */
export const SSH_KEEPALIVE = ['-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=2'] as const;

/**
 * The mpirun command (Open MPI's syntax). Ranks fill hosts in file order (`--map-by slot`), so rank 0 is on the
 * first host; `--bind-to none` leaves thread placement to the OS, since each rank runs many intra-op threads and
 * Open MPI would otherwise pin it to one core; `--tag-output` lets us rewrite its line tags into `[rank k]`.
 */
export function mpirunArgs(plan: RemoteLaunchPlan): string[] {
  const total = plan.perHost.reduce((a, b) => a + b, 0);
  const args = ['mpirun'];
  if (plan.asRoot) args.push('--allow-run-as-root');
  args.push('-np', String(total));
  args.push('--host', plan.hosts.map((h, i) => `${h.host}:${plan.perHost[i]}`).join(','));
  args.push('--map-by', 'slot', '--bind-to', 'none', '--tag-output', '--wdir', plan.cwd);
  // Open MPI 4 calls its launcher component `rsh` (parameters via --mca); Open MPI 5's PRRTE renamed it `ssh`
  // (parameters via --prtemca): a wrong name is silently ignored, so the spelling follows the version.
  const keepAlive = SSH_KEEPALIVE.join(' ');
  if ((plan.openMpiMajor ?? 4) >= 5) {
    args.push('--prtemca', 'plm_ssh_args', keepAlive);
  } else {
    args.push('--mca', 'plm_rsh_args', keepAlive);
  }
  // No kill delay is set: a stop reaches the ranks as SIGUSR2, which mpirun forwards and which kills nothing (see
  // supervise), so mpirun's SIGTERM-then-SIGKILL only ever ends a job that failed. Open MPI 4 sleeps its
  // odls_base_sigkill_timeout twice, unconditionally, on every such abort (measured: 18 s at 10, 1.1 s at the
  // default 1), and Open MPI 5 has no such setting.
  for (const [k, v] of Object.entries(plan.env)) args.push('-x', `${k}=${v}`);
  args.push(...plan.command);
  return args;
}

/** The major version in `mpirun --version` output ("mpirun (Open MPI) 4.1.4", Open MPI 5: "mpirun (Open MPI) 5.0.7"). */
export function parseOpenMpiMajor(versionText: string): number | undefined {
  const m = /Open MPI\)?\s+(\d+)\./.exec(versionText);
  return m ? Number(m[1]) : undefined;
}

/** The Open MPI major version of `mpirun` (4 when it cannot be told: the format we parsed first). */
export function openMpiMajorVersion(mpirun: string): number {
  const r = spawnSync(mpirun, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  return parseOpenMpiMajor(`${r.stdout ?? ''}\n${r.stderr ?? ''}`) ?? 4;
}

/** Quotes one word for a POSIX shell (what ssh hands the remote command to). */
export function shellQuote(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * One ssh command for one remote rank, with the torchrun-style variables that rank needs. `-tt` gives the remote
 * process a terminal, so that when ssh ends (we stop it, or it loses the connection) the remote rank gets SIGHUP
 * instead of living on as an orphan, and so that a Ctrl-C character written to ssh's stdin reaches the rank as
 * SIGINT while the connection (and its output) stays up. BatchMode makes a missing key or an unknown host key
 * fail at once instead of prompting; LogLevel=ERROR keeps errors but drops the "Connection to host closed." line
 * every rank's exit would print; the keep-alives end the connection when the host stops answering.
 */
export function sshArgs(host: string, cwd: string, env: Readonly<Record<string, string>>, command: readonly string[]): string[] {
  const assignments = Object.entries(env).map(([k, v]) => `${k}=${shellQuote(v)}`);
  const remote = `cd ${shellQuote(cwd)} && exec env ${assignments.join(' ')} ${command.map(shellQuote).join(' ')}`;
  return ['ssh', '-tt', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', ...SSH_KEEPALIVE, host, remote];
}

/** A command line as one copy-pasteable string. */
export function formatCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' ');
}
