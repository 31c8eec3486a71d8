// Which local address a rank binds Gloo to and advertises to its peers. The choice is a pure function of what the
// machine looks like (chooseAddress, unit-tested); findLocalAddress gathers those facts (interfaces, resolution of
// MASTER_ADDR, the routes) and calls it.
//
// Why not simply "the address that routes to MASTER_ADDR": Debian and Ubuntu put `127.0.1.1 <hostname>` in
// /etc/hosts, so on rank 0 a MASTER_ADDR that is its own hostname resolves to loopback, the route toward it is
// loopback, and rank 0 would advertise 127.0.0.1 to peers on other machines, which then connect to themselves.
import * as dgram from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import * as os from 'node:os';
import { UserError } from '../../util/errors.js';

export interface InterfaceAddress {
  address: string;
  family: 'IPv4' | 'IPv6';
  internal: boolean;
}

export interface AddressFacts {
  /** MASTER_ADDR as the user gave it (a name or a literal). */
  masterAddr: string;
  /** The local address the kernel's route toward MASTER_ADDR uses ('' when there is no route or it did not resolve). */
  routeSource: string;
  /** os.networkInterfaces(): name → addresses. */
  interfaces: Readonly<Record<string, readonly InterfaceAddress[]>>;
  /** The interface that holds the default route, if any (from /proc/net/route). */
  defaultRouteInterface: string | undefined;
  /** distributed.iface from the config ('' or undefined = not set). */
  configIface?: string | undefined;
  /** The environment (GLOO_SOCKET_IFNAME, as PyTorch users set it). */
  env: Readonly<Record<string, string | undefined>>;
}

export interface ChosenAddress {
  address: string;
  /** Why this one, for the log: e.g. "interface eth0 (GLOO_SOCKET_IFNAME)". */
  why: string;
}

export function isLoopbackAddress(addr: string): boolean {
  return addr.startsWith('127.') || addr === '::1' || addr === '::ffff:127.0.0.1';
}

/** A literal the user wrote meaning "this machine only" (not a name that happens to resolve to loopback). */
export function isLoopbackLiteral(masterAddr: string): boolean {
  return masterAddr === 'localhost' || isLoopbackAddress(masterAddr);
}

/** Prefers IPv4 (what MASTER_ADDR almost always is, and what Gloo's peers then dial), link-local IPv6 never. */
function usable(addrs: readonly InterfaceAddress[] | undefined): InterfaceAddress | undefined {
  const ok = (addrs ?? []).filter((a) => !(a.family === 'IPv6' && a.address.toLowerCase().startsWith('fe80')));
  return ok.find((a) => a.family === 'IPv4') ?? ok[0];
}

/**
 * The address to bind and advertise, in this order: the named interface (distributed.iface, else GLOO_SOCKET_IFNAME);
 * the source of the route toward MASTER_ADDR, unless that is loopback while MASTER_ADDR was no loopback literal
 * (a hostname mapped to 127.0.1.1); then the interface of the default route; then the first non-loopback
 * interface; then loopback. A named interface that does not exist is a UserError listing those that do.
 */
export function chooseAddress(f: AddressFacts): ChosenAddress {
  const named = f.configIface ? { name: f.configIface, from: 'distributed.iface' } : f.env.GLOO_SOCKET_IFNAME ? { name: f.env.GLOO_SOCKET_IFNAME, from: 'GLOO_SOCKET_IFNAME' } : undefined;
  if (named) {
    // PyTorch accepts a comma-separated list in GLOO_SOCKET_IFNAME (one device per name); one address is all we use.
    const name = named.name.split(',')[0]!.trim();
    const a = usable(f.interfaces[name]);
    if (!a) {
      const have = Object.entries(f.interfaces)
        .map(([n, list]) => `${n} (${list.map((x) => x.address).join(', ')})`)
        .join(', ');
      throw new UserError(
        `${named.from} is ${named.name}, but this machine has no interface ${name} with an address`,
        `use one of its interfaces: ${have || '(none found)'}; \`ip -br addr\` lists them`,
      );
    }
    return { address: a.address, why: `interface ${name} (${named.from})` };
  }
  if (f.routeSource && !(isLoopbackAddress(f.routeSource) && !isLoopbackLiteral(f.masterAddr))) {
    return { address: f.routeSource, why: `the route toward ${f.masterAddr}` };
  }
  const viaDefault = f.defaultRouteInterface ? usable(f.interfaces[f.defaultRouteInterface]) : undefined;
  const reason = f.routeSource ? `${f.masterAddr} resolves to loopback here` : `no route toward ${f.masterAddr}`;
  if (viaDefault) return { address: viaDefault.address, why: `interface ${f.defaultRouteInterface} (default route; ${reason})` };
  for (const [name, list] of Object.entries(f.interfaces)) {
    const a = usable(list.filter((x) => !x.internal));
    if (a) return { address: a.address, why: `interface ${name} (first non-loopback; ${reason})` };
  }
  return { address: '127.0.0.1', why: `loopback (no other interface; ${reason})` };
}

/**
 * Where rank 0's rendezvous store listens (libtorch 2.4 and later; 1.13 always listens on every address): only
 * where the ranks dial it. A loopback literal keeps it on loopback; an address of this machine is the one every
 * rank dials. Anything else needs every address, '' (the wildcard): a name mapped to loopback here (Debian's
 * 127.0.1.1: rank 0's own client dials loopback, the peers another address), or an address that is not on an
 * interface here (a NAT's).
 */
export function storeBindAddress(masterAddr: string, resolved: string, interfaces: AddressFacts['interfaces']): string {
  if (isLoopbackLiteral(masterAddr)) return masterAddr === '::1' ? '::1' : '127.0.0.1';
  if (!resolved || isLoopbackAddress(resolved)) return '';
  const local = Object.values(interfaces).some((list) => list.some((a) => a.address === resolved));
  return local ? resolved : '';
}

/** The local address whose route reaches `addr` (a UDP connect sends nothing; it only picks a route); '' if none. */
export async function routeSourceToward(addr: string): Promise<string> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(addr.includes(':') ? 'udp6' : 'udp4');
    sock.on('error', () => {
      sock.close();
      resolve('');
    });
    sock.connect(9, addr, () => {
      const { address } = sock.address();
      sock.close();
      resolve(address);
    });
  });
}

/** The interface of the default IPv4 route, from /proc/net/route (Linux); undefined elsewhere or without one. */
export async function defaultRouteInterface(): Promise<string | undefined> {
  try {
    const lines = (await readFile('/proc/net/route', 'utf8')).split('\n').slice(1);
    return lines.map((l) => l.trim().split(/\s+/)).find((c) => c[1] === '00000000' && c[7] === '00000000')?.[0];
  } catch {
    return undefined;
  }
}

/** Gathers the facts for chooseAddress on this machine. An unresolvable MASTER_ADDR gives no route (the rendezvous reports it). */
export async function findLocalAddress(masterAddr: string, configIface: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<ChosenAddress & { storeBind: string }> {
  let resolved = '';
  try {
    resolved = isLoopbackLiteral(masterAddr) ? '127.0.0.1' : (await lookup(masterAddr)).address;
  } catch {
    // resolved stays '': the rendezvous names the unresolvable address with its own message
  }
  const routeSource = resolved ? await routeSourceToward(resolved) : '';
  const interfaces = os.networkInterfaces() as Record<string, InterfaceAddress[]>;
  const chosen = chooseAddress({ masterAddr, routeSource, interfaces, defaultRouteInterface: await defaultRouteInterface(), configIface, env });
  return { ...chosen, storeBind: storeBindAddress(masterAddr, resolved, interfaces) };
}
