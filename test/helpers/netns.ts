// A tiny "cluster" of separate hosts on one machine, made of Linux network namespaces (needs root and `ip`).
//
// Layout: one 'switch' namespace holding a bridge, and N 'host' namespaces, each with one veth interface (eth0)
// whose other end is a port of that bridge. Everything — bridge, veth ends, addresses, routes — lives inside
// namespaces this module creates, so the machine's own interfaces and routes are never touched, and the chosen
// subnet cannot collide with anything outside. Each host sees only its own address plus loopback: to reach another
// host's address, packets must leave through its eth0, cross the bridge and enter the other host's eth0.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildResult } from './children.js';

export interface NetnsHost {
  /** Namespace name, for `ip netns exec` / `ip -n`. */
  ns: string;
  ip: string;
  /** The host's one network interface (its veth end). */
  ifname: string;
}

export interface NetnsCluster {
  /** Every namespace created starts with this; `destroyCluster(prefix)` removes them. */
  prefix: string;
  switchNs: string;
  hosts: NetnsHost[];
}

/** Runs `ip …`; throws with ip's own message on failure. */
export function ip(args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')}: ${(e.stderr ?? '').trim() || e.message}`);
  }
}

/** The prefix for this process's namespaces: the pid keeps parallel test runs apart. */
export const netnsPrefix = (pid = process.pid): string => `ngt${pid}-`;

/**
 * Why a cluster cannot be built here, or null if it can: not root, no `ip`, or no permission to create a network
 * namespace (a container without CAP_SYS_ADMIN). Probes with a throwaway namespace.
 */
export function netnsUnavailable(prefix = netnsPrefix()): string | null {
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const probe = `${prefix}probe`;
  try {
    ip(['netns', 'add', probe]);
  } catch (err) {
    const msg = (err as Error).message;
    return /ENOENT/.test(msg) ? '`ip` (iproute2) is not installed' : `cannot create a network namespace: ${msg}`;
  }
  try {
    ip(['netns', 'del', probe]);
  } catch {
    // best effort; destroyCluster sweeps the prefix again
  }
  return null;
}

/** Deletes every namespace named `prefix…` (with them go the bridge and veth ends inside). Never throws. */
export function destroyCluster(prefix: string): void {
  let names: string[] = [];
  try {
    // `ip netns list` prints "name" or "name (id: N)" per line
    names = ip(['netns', 'list']).split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n.startsWith(prefix));
  } catch {
    return;
  }
  for (const n of names) {
    try {
      ip(['netns', 'del', n]);
    } catch {
      // already gone, or busy: nothing else to do without touching what is not ours
    }
  }
}

/**
 * Builds the switch and `n` hosts with addresses 10.a.b.1 … 10.a.b.n /24 (or `subnet`.1 … /24, `subnet` being the
 * first three octets, e.g. '172.31.7'). Leftovers of an earlier crashed run with the same prefix (same pid) are
 * removed first. On failure, whatever was created is removed again.
 */
export function createCluster(n: number, prefix = netnsPrefix(), opts: { subnet?: string } = {}): NetnsCluster {
  destroyCluster(prefix);
  // The subnet is private to our namespaces, so any value works; deriving it from the pid only makes two
  // concurrent clusters easy to tell apart in `ip` output.
  const a = (process.pid >> 8) & 255;
  const b = process.pid & 255;
  const subnet = opts.subnet ?? `10.${a}.${b}`;
  const switchNs = `${prefix}sw`;
  const hosts: NetnsHost[] = Array.from({ length: n }, (_, k) => ({ ns: `${prefix}h${k}`, ip: `${subnet}.${k + 1}`, ifname: 'eth0' }));
  try {
    ip(['netns', 'add', switchNs]);
    ip(['-n', switchNs, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', switchNs, 'link', 'set', 'br0', 'up']);
    hosts.forEach((h, k) => {
      ip(['netns', 'add', h.ns]);
      ip(['-n', h.ns, 'link', 'set', 'lo', 'up']);
      // Created inside the switch namespace with its peer placed straight into the host: neither end ever
      // appears in the machine's own namespace.
      ip(['-n', switchNs, 'link', 'add', `p${k}`, 'type', 'veth', 'peer', 'name', h.ifname, 'netns', h.ns]);
      ip(['-n', switchNs, 'link', 'set', `p${k}`, 'master', 'br0']);
      ip(['-n', switchNs, 'link', 'set', `p${k}`, 'up']);
      ip(['-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', h.ifname]);
      ip(['-n', h.ns, 'link', 'set', h.ifname, 'up']);
    });
  } catch (err) {
    destroyCluster(prefix);
    throw err;
  }
  return { prefix, switchNs, hosts };
}

/** Bytes received and sent so far by an interface inside a namespace (kernel counters, 64-bit). */
export function interfaceBytes(ns: string, ifname: string): { rx: number; tx: number } {
  const info = JSON.parse(ip(['-n', ns, '-s', '-j', 'link', 'show', 'dev', ifname])) as Array<{ stats64: { rx: { bytes: number }; tx: { bytes: number } } }>;
  const s = info[0]!.stats64;
  return { rx: s.rx.bytes, tx: s.tx.bytes };
}

/** Runs `node args…` inside a namespace (`ip netns exec`, which execs node: the child's pid is node's). */
export function runNodeIn(ns: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<ChildResult> {
  const start = Date.now();
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => (stderr += `spawn failed: ${err.message}\n`));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - start });
    });
  });
}

// Run inside a host: tries a TCP connection to each address on a port nobody listens on. "Connection refused"
// means the other host's kernel answered with a reset, i.e. the address is reachable (no ping needed); anything
// else (unreachable, timeout) is retried until the deadline. Prints the addresses still unreachable.
const PROBE = `
const net = require('node:net');
const [deadline, ...addrs] = process.argv.slice(1);
const once = (a) => new Promise((ok) => {
  const s = net.connect({ host: a, port: 9, timeout: 500 });
  const done = (v) => { s.destroy(); ok(v); };
  s.on('connect', () => done(true));
  s.on('error', (e) => done(e.code === 'ECONNREFUSED'));
  s.on('timeout', () => done(false));
});
(async () => {
  let left = addrs;
  while (left.length && Date.now() < Number(deadline)) {
    const ok = await Promise.all(left.map(once));
    left = left.filter((_, i) => !ok[i]);
    if (left.length) await new Promise((r) => setTimeout(r, 100));
  }
  process.stdout.write(left.join(' '));
})();
`;

/** Waits until every host reaches every other host's address; throws naming the pairs that never connected. */
export async function waitConnected(cluster: NetnsCluster, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const results = await Promise.all(
    cluster.hosts.map((h) => {
      const others = cluster.hosts.filter((o) => o !== h).map((o) => o.ip);
      return runNodeIn(h.ns, ['-e', PROBE, String(deadline), ...others], {}, timeoutMs + 5000);
    }),
  );
  const failures = results
    .map((r, k) => (r.code !== 0 ? `${cluster.hosts[k]!.ns}: probe failed: ${r.stderr}` : r.stdout.trim() ? `${cluster.hosts[k]!.ns} cannot reach ${r.stdout.trim()}` : ''))
    .filter(Boolean);
  if (failures.length) throw new Error(`network namespaces not connected:\n${failures.join('\n')}`);
}
