// A cluster as users really have one, on one machine: three "hosts" made of network namespaces (see netns.ts),
// each with
//   - its own hostname (a UTS namespace per process started there: `unshare --uts`, then `hostname nodeK`, so the
//     launcher, sshd and every ssh session see nodeK, and `os.hostname()` says so),
//   - its own /etc/hosts (`ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts) as stock Debian writes
//     it — `127.0.0.1 localhost` and `127.0.1.1 nodeK` — plus every node's cluster address, the block users add,
//   - its own /etc/ssh (the directory /etc/netns/<ns>/ssh, bind-mounted over /etc/ssh the same way): sshd_config,
//     a host key, a client key named by ssh_config, and ssh_known_hosts filled with ssh-keyscan, as the docs tell
//     users to do,
//   - an sshd (root login by key only) listening on the node's address, run with -D so this module owns the
//     process and kills it on the way out,
// on an AWS-default-VPC-style subnet 172.31.x.0/24 that exists only inside the namespaces. The filesystem is
// shared by all of them: it stands in for NFS, so data, the install and out_dir are at the same path everywhere.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChildResult } from './children.js';
import { createCluster, destroyCluster, ip, netnsPrefix, netnsUnavailable, waitConnected, type NetnsCluster, type NetnsHost } from './netns.js';
import { findOnPath } from '../../src/util/which.js';

export interface SshNode extends NetnsHost {
  /** Its hostname, as in the hosts file (node0, node1, …). */
  name: string;
  /** /etc/netns/<ns>: what `ip netns exec` lays over /etc inside this node. */
  etc: string;
}

export interface SshCluster extends NetnsCluster {
  nodes: SshNode[];
  /** The first three octets of the cluster's /24, e.g. '172.31.57'. */
  subnet: string;
  /** The bridge port (in `switchNs`) that is node k's cable: `ip -n switchNs link set pK down` cuts node k off. */
  switchPort: (k: number) => string;
  /** A directory with only `ssh` in it: as PATH, it hides mpirun from the launcher (its ssh mode). */
  sshOnlyBin: string;
  /** The sshd of each node (this module's children). */
  sshd: ChildProcess[];
  /** What each sshd wrote (-e: its log goes to stderr), for diagnosing a failed login. */
  sshdLog: string[];
  /** Temporary files of the cluster (client key, sshOnlyBin). */
  tmp: string;
  /** How long each step of building it took (ms), for the test's diagnostics. */
  setupMs: Record<string, number>;
}

const SBIN = ['/usr/sbin', '/sbin', '/usr/local/sbin'];

/** The absolute path of a program on PATH (or the sbin directories, which a test's PATH may lack), or undefined. */
export function findProgram(program: string): string | undefined {
  return findOnPath(program, process.env, SBIN);
}

const TOOLS: Record<string, string> = {
  sshd: 'openssh-server',
  ssh: 'openssh-client',
  'ssh-keygen': 'openssh-client',
  'ssh-keyscan': 'openssh-client',
  unshare: 'util-linux',
  hostname: 'hostname',
  sh: 'dash',
};

function tool(name: string): string {
  const p = findProgram(name);
  if (!p) throw new Error(`${name} not found (package ${TOOLS[name] ?? name})`);
  return p;
}

/**
 * Why this cluster cannot be built here, or null if it can: what netnsUnavailable says, a missing program (sshd,
 * ssh, ssh-keygen, ssh-keyscan, unshare, hostname) named with its Debian package, or no UTS namespaces.
 */
export function sshClusterUnavailable(prefix = netnsPrefix()): string | null {
  const why = netnsUnavailable(prefix);
  if (why) return why;
  const missing = Object.keys(TOOLS).filter((t) => !findProgram(t));
  if (missing.length) {
    const pkgs = [...new Set(missing.map((t) => TOOLS[t]!))];
    return `${missing.join(', ')} not installed (apt-get install ${pkgs.join(' ')}; scripts/setup.sh installs them)`;
  }
  try {
    execFileSync(tool('unshare'), ['--uts', tool('sh'), '-c', `${tool('hostname')} probe-uts`], { stdio: 'pipe', timeout: 10_000 });
  } catch (err) {
    return `cannot create a UTS namespace for per-host hostnames: ${((err as { stderr?: Buffer }).stderr?.toString() ?? (err as Error).message).trim()}`;
  }
  return null;
}

/**
 * The command line that runs `argv` on a node: inside its network namespace (with its /etc/hosts and /etc/ssh) and a
 * fresh UTS namespace named after it. Every wrapper execs the next, so the spawned pid ends up being argv's own.
 */
export function onNode(node: SshNode, argv: readonly string[], setup = ''): string[] {
  return ['netns', 'exec', node.ns, tool('unshare'), '--uts', tool('sh'), '-c', `${tool('hostname')} ${node.name} && ${setup ? `${setup} && ` : ''}exec "$@"`, 'sh', ...argv];
}

// What an sshd's sessions see as the root's ~/.bashrc: Debian's stock one (/etc/skel), which returns at once when
// not interactive. The machine running the tests may have one that is slow to source (pyenv init: ~1 s), and bash
// sources it for every ssh command — every remote rank and orted. The nodes stand for a clean image. The bind
// mount lives in the mount namespace \`ip netns exec\` made for sshd (a slave of the machine's: nothing leaks out).
const STOCK_BASHRC = `if [ -f /etc/skel/.bashrc ] && [ -f "$HOME/.bashrc" ]; then mount --bind /etc/skel/.bashrc "$HOME/.bashrc"; fi`;

/** A process running on a node, with its output kept and searchable as it arrives. */
export class NodeProcess {
  readonly child: ChildProcess;
  readonly started = Date.now();
  stdout = '';
  stderr = '';
  /** stdout and stderr interleaved as they arrived. */
  all = '';
  readonly done: Promise<ChildResult>;
  #waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];

  constructor(node: SshNode, argv: readonly string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number; setup?: string }) {
    this.child = spawn(tool('ip'), onNode(node, argv, opts.setup), { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const take = (which: 'stdout' | 'stderr') => (d: Buffer) => {
      const s = d.toString();
      this[which] += s;
      this.all += s;
      this.#waiters = this.#waiters.filter((w) => {
        const m = w.re.exec(this.all);
        if (m) w.resolve(m);
        return !m;
      });
    };
    this.child.stdout!.on('data', take('stdout'));
    this.child.stderr!.on('data', take('stderr'));
    // Infinity: a server the caller stops itself (sshd).
    const timer = Number.isFinite(opts.timeoutMs)
      ? setTimeout(() => {
          this.all += `\n[test: still running after ${opts.timeoutMs} ms: SIGKILL]\n`;
          this.child.kill('SIGKILL');
        }, opts.timeoutMs)
      : undefined;
    this.done = new Promise((resolve) => {
      let settled = false;
      const settle = (code: number | null, signal: NodeJS.Signals | null, ms: number): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr, ms });
      };
      this.child.on('error', (err) => (this.all += `spawn failed: ${err.message}\n`));
      this.child.on('close', (code, signal) => settle(code, signal, Date.now() - this.started));
      // Bounded even when processes it left behind (an orphaned ssh or orted) hold its stdout/stderr open: 'close'
      // would wait for them. Its output gets 2 s more to drain after it exited; then the pipes are dropped.
      this.child.on('exit', (code, signal) => {
        const ms = Date.now() - this.started;
        setTimeout(() => {
          if (settled) return;
          this.all += `\n[test: exited, but something it started still holds its output pipes]\n`;
          this.child.stdout?.destroy();
          this.child.stderr?.destroy();
          settle(code, signal, ms);
        }, 2000).unref();
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves with the first match of `re` in the output so far or to come; rejects after `timeoutMs` or at exit. */
  waitFor(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const m = re.exec(this.all);
    if (m) return Promise.resolve(m);
    return new Promise((resolve, reject) => {
      const waiter = { re, resolve: (v: RegExpExecArray) => (clearTimeout(timer), resolve(v)) };
      const fail = (why: string): void => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`${why} before its output matched ${re}; output:\n${tail(this.all)}`));
      };
      const timer = setTimeout(() => fail(`waited ${timeoutMs} ms`), timeoutMs);
      this.#waiters.push(waiter);
      void this.done.then((r) => {
        clearTimeout(timer);
        if (this.#waiters.includes(waiter)) fail(`exited (${r.code ?? r.signal})`);
      });
    });
  }
}

/** The last `n` lines of a text, for assertion messages. */
export function tail(text: string, n = 60): string {
  const lines = text.trimEnd().split('\n');
  return (lines.length > n ? [`… (${lines.length - n} lines before)`] : []).concat(lines.slice(-n)).join('\n');
}

/** Runs a short command on a node and returns its output; throws with it on failure or after `timeoutMs`. */
export async function runOn(node: SshNode, argv: readonly string[], timeoutMs = 15_000, env?: NodeJS.ProcessEnv): Promise<string> {
  const p = new NodeProcess(node, argv, { timeoutMs, env });
  const r = await p.done;
  if (r.code !== 0) throw new Error(`${argv.join(' ')} on ${node.name} exited ${r.code ?? r.signal}:\n${p.all}`);
  return r.stdout;
}

/** The processes whose network namespace is `ns`, with their command lines (`ip netns pids`). */
export function processesIn(ns: string): { pid: number; cmd: string }[] {
  let pids: number[];
  try {
    pids = ip(['netns', 'pids', ns]).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
  return pids.flatMap((pid) => {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      return [{ pid, cmd }];
    } catch {
      return []; // gone meanwhile
    }
  });
}

/** sshd itself and its per-connection processes ("sshd: root@notty") are the machine's, not the run's. */
export const isSshd = (cmd: string): boolean => /^(\/usr\/sbin\/)?sshd(\b|:)|^sshd-session|^sshd: /.test(cmd);

/** Processes on the nodes other than sshd's: what a run left behind. */
export function leftovers(cluster: SshCluster): { node: string; pid: number; cmd: string }[] {
  return cluster.nodes.flatMap((n) => processesIn(n.ns).filter((p) => !isSshd(p.cmd)).map((p) => ({ node: n.name, ...p })));
}

/** SIGKILLs every process on the nodes except sshd's: a clean slate between scenarios. */
export function killLeftovers(cluster: SshCluster): void {
  for (const p of leftovers(cluster)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every 100 ms until it returns true or `timeoutMs` passes; returns whether it did. */
export async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(100);
  }
}

function sshdConfig(node: SshNode): string {
  return `# sshd of test node ${node.name} (made by test/helpers/ssh-cluster.ts)
ListenAddress ${node.ip}
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile /etc/ssh/authorized_keys
UsePAM no
PidFile none
PrintMotd no
PrintLastLog no
X11Forwarding no
AcceptEnv LANG LC_*
MaxStartups 64
LogLevel ERROR
`;
}

// ~/.ssh is shared by every "host" (one filesystem), so nothing goes there: the client key and known hosts live in
// each node's /etc/ssh, named by its system-wide ssh_config.
const SSH_CONFIG = `# ssh client of a test node (made by test/helpers/ssh-cluster.ts)
Host *
  IdentityFile /etc/ssh/id_ed25519
  IdentitiesOnly yes
  GlobalKnownHostsFile /etc/ssh/ssh_known_hosts
  UserKnownHostsFile /dev/null
  ConnectTimeout 5
`;

function hostsFile(self: SshNode, nodes: readonly SshNode[]): string {
  // Stock Debian: localhost, then the machine's own name on 127.0.1.1; then the cluster block a user adds.
  return ['127.0.0.1\tlocalhost', `127.0.1.1\t${self.name}`, '', '# the cluster', ...nodes.map((n) => `${n.ip}\t${n.name}`), ''].join('\n');
}

/** A subnet of 172.31.0.0/16 (an AWS default VPC), chosen from the pid only to tell concurrent clusters apart. */
export const clusterSubnet = (pid = process.pid): string => `172.31.${pid & 255}`;

/**
 * Builds the cluster: namespaces and bridge, /etc/netns/<ns>/{hosts,ssh}, keys, one sshd per node; waits (bounded)
 * until every node reaches every other, every sshd answers ssh-keyscan, and `ssh nodeK hostname` from node0 prints
 * nodeK. On failure everything made so far is removed and the error says what did not work.
 */
export async function createSshCluster(n = 3, prefix = netnsPrefix(), timeoutMs = 20_000): Promise<SshCluster> {
  sweepStale();
  destroySshCluster(prefix);
  homeSshExisted ??= existsSync(HOME_SSH);
  const deadline = Date.now() + timeoutMs;
  const began = Date.now();
  const subnet = clusterSubnet();
  const base = createCluster(n, prefix, { subnet });
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-ssh-cluster-'));
  const nodes: SshNode[] = base.hosts.map((h, k) => ({ ...h, name: `node${k}`, etc: path.join('/etc/netns', h.ns) }));
  const cluster: SshCluster = {
    ...base,
    nodes,
    subnet,
    switchPort: (k) => `p${k}`,
    sshOnlyBin: path.join(tmp, 'bin'),
    sshd: [],
    sshdLog: nodes.map(() => ''),
    tmp,
    setupMs: {},
  };
  let mark = began;
  const step = (name: string): void => {
    cluster.setupMs[name] = Date.now() - mark;
    mark = Date.now();
  };
  step('namespaces');
  try {
    mkdirSync(cluster.sshOnlyBin);
    symlinkSync(tool('ssh'), path.join(cluster.sshOnlyBin, 'ssh'));
    // One client key for all nodes: a cloned machine image, as the docs assume.
    const key = path.join(tmp, 'id_ed25519');
    execFileSync(tool('ssh-keygen'), ['-q', '-t', 'ed25519', '-N', '', '-C', 'nanogpt-test', '-f', key], { stdio: 'pipe', timeout: 10_000 });
    const pub = readFileSync(`${key}.pub`, 'utf8');
    for (const node of nodes) {
      const ssh = path.join(node.etc, 'ssh');
      mkdirSync(ssh, { recursive: true, mode: 0o755 });
      chmodSync(node.etc, 0o755);
      writeFileSync(path.join(node.etc, 'hosts'), hostsFile(node, nodes), { mode: 0o644 });
      execFileSync(tool('ssh-keygen'), ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${node.name}`, '-f', path.join(ssh, 'ssh_host_ed25519_key')], { stdio: 'pipe', timeout: 10_000 });
      copyFileSync(key, path.join(ssh, 'id_ed25519'));
      chmodSync(path.join(ssh, 'id_ed25519'), 0o600);
      writeFileSync(path.join(ssh, 'authorized_keys'), pub, { mode: 0o600 });
      writeFileSync(path.join(ssh, 'sshd_config'), sshdConfig(node), { mode: 0o644 });
      writeFileSync(path.join(ssh, 'ssh_config'), SSH_CONFIG, { mode: 0o644 });
      writeFileSync(path.join(ssh, 'ssh_known_hosts'), '', { mode: 0o644 });
    }
    // sshd's privilege-separation directory (the package's tmpfiles.d makes it at boot; a container has no boot).
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
    step('keys and /etc/netns');

    await waitConnected(base, Math.max(1000, deadline - Date.now()));
    step('links up');
    nodes.forEach((node, k) => {
      const p = new NodeProcess(node, [tool('sshd'), '-D', '-e', '-f', '/etc/ssh/sshd_config'], { timeoutMs: Infinity, setup: STOCK_BASHRC });
      p.child.stderr!.on('data', (d: Buffer) => (cluster.sshdLog[k] += d.toString()));
      cluster.sshd.push(p.child);
    });

    // known_hosts the way the docs tell users: ssh-keyscan of the other hosts by name, into the file ssh reads. Each
    // node scans the others (its own name is 127.0.1.1 there, where sshd does not listen); every node gets the
    // union (a cloned image). Retried until every sshd answers.
    const known = new Map<string, string>();
    while (known.size < nodes.length) {
      await Promise.all(
        nodes
          .filter((node) => !known.has(node.name))
          .map(async (node) => {
            const from = nodes.find((o) => o !== node)!;
            const r = await new NodeProcess(from, [tool('ssh-keyscan'), '-T', '2', '-t', 'ed25519', node.name], { timeoutMs: 5000 }).done;
            const line = r.stdout.split('\n').find((l) => l.startsWith(`${node.name} `));
            if (line) known.set(node.name, line);
          }),
      );
      if (known.size < nodes.length) {
        if (Date.now() > deadline) {
          const missing = nodes.filter((nd) => !known.has(nd.name));
          throw new Error(`sshd did not answer ssh-keyscan on ${missing.map((m) => m.name).join(', ')}; sshd logs:\n${missing.map((m) => `${m.name}: ${cluster.sshdLog[nodes.indexOf(m)]}`).join('\n')}`);
        }
        await sleep(200);
      }
    }
    step('sshd up (ssh-keyscan)');
    const knownHosts = [...known.values()].join('\n') + '\n';
    for (const node of nodes) writeFileSync(path.join(node.etc, 'ssh', 'ssh_known_hosts'), knownHosts, { mode: 0o644 });

    // The whole chain a launcher relies on: name resolution, key login, the remote hostname.
    await Promise.all(
      nodes.slice(1).map(async (node) => {
        const out = await runOn(nodes[0]!, [tool('ssh'), '-o', 'BatchMode=yes', node.name, 'hostname'], Math.max(5000, deadline - Date.now()));
        if (out.trim() !== node.name) throw new Error(`ssh ${node.name} hostname printed '${out.trim()}'`);
      }),
    );
    step('ssh login check');
    return cluster;
  } catch (err) {
    destroySshCluster(prefix, cluster);
    throw err;
  }
}

/**
 * Removes everything `createSshCluster` made: every process in the nodes' namespaces (sshd included), the
 * namespaces, /etc/netns/<prefix>*, the temporary files. Never throws; safe to call twice.
 */
export function destroySshCluster(prefix: string, cluster?: SshCluster): void {
  for (const ns of listNetns(prefix)) {
    for (const p of processesIn(ns)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
  for (const c of cluster?.sshd ?? []) c.kill('SIGKILL');
  destroyCluster(prefix);
  try {
    for (const name of readdirSync('/etc/netns')) if (name.startsWith(prefix)) rmSync(path.join('/etc/netns', name), { recursive: true, force: true });
    rmdirSync('/etc/netns'); // only when empty (someone else's entries stay, and so does the directory)
  } catch {
    /* absent, or not empty */
  }
  if (cluster) rmSync(cluster.tmp, { recursive: true, force: true });
  // ssh makes ~/.ssh (root's, shared by all nodes) when it is missing; take back an empty one it made.
  if (homeSshExisted === false) {
    try {
      rmdirSync(HOME_SSH);
    } catch {
      /* absent, or someone put something in it */
    }
  }
}

const HOME_SSH = path.join(os.homedir(), '.ssh');
let homeSshExisted: boolean | undefined;

/**
 * Removes clusters of test processes that no longer exist (`ngt<pid>-…` namespaces and /etc/netns entries whose pid
 * is gone: a run killed before its `after` hook), with their sshds. Clusters of live processes are left alone.
 */
export function sweepStale(): void {
  const dead = (name: string): string | undefined => {
    const m = /^(ngt(\d+)-)/.exec(name);
    if (!m) return undefined;
    try {
      process.kill(Number(m[2]), 0);
      return undefined;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH' ? m[1] : undefined;
    }
  };
  let etc: string[] = [];
  try {
    etc = readdirSync('/etc/netns');
  } catch {
    /* none */
  }
  const prefixes = new Set([...listNetns('ngt'), ...etc].map(dead).filter((p): p is string => p !== undefined));
  for (const p of prefixes) destroySshCluster(p);
}

function listNetns(prefix: string): string[] {
  try {
    return ip(['netns', 'list'])
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
}
