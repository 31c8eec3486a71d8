// The choice of the address a rank binds Gloo to and advertises: a pure function of the machine's facts.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseAddress, storeBindAddress, type AddressFacts, type InterfaceAddress } from '../../../src/torch/distributed/address.js';
import { UserError } from '../../../src/util/errors.js';

const v4 = (address: string, internal = false): InterfaceAddress => ({ address, family: 'IPv4', internal });
const v6 = (address: string): InterfaceAddress => ({ address, family: 'IPv6', internal: false });

// A stock Debian/Ubuntu cloud machine: loopback, one NIC on an AWS-style private subnet, default route through it.
const machine: AddressFacts['interfaces'] = {
  lo: [v4('127.0.0.1', true), { address: '::1', family: 'IPv6', internal: true }],
  ens5: [v6('fe80::1'), v4('172.31.5.10'), v6('fd00::5')],
  docker0: [v4('192.168.99.1')],
};
const facts = (over: Partial<AddressFacts>): AddressFacts => ({
  masterAddr: '172.31.5.10',
  routeSource: '172.31.5.10',
  interfaces: machine,
  defaultRouteInterface: 'ens5',
  env: {},
  ...over,
});

test('the route toward MASTER_ADDR decides when it leaves through a real interface', () => {
  assert.deepEqual(chooseAddress(facts({ masterAddr: '172.31.9.9', routeSource: '172.31.5.10' })), { address: '172.31.5.10', why: 'the route toward 172.31.9.9' });
});

test("rank 0's own hostname mapped to 127.0.1.1 (Debian's /etc/hosts) gives the default route's interface, not loopback", () => {
  const c = chooseAddress(facts({ masterAddr: 'node0', routeSource: '127.0.1.1' }));
  assert.equal(c.address, '172.31.5.10');
  assert.match(c.why, /interface ens5 \(default route; node0 resolves to loopback here\)/);
});

test('a loopback literal stays on loopback (a single-machine run)', () => {
  for (const masterAddr of ['127.0.0.1', 'localhost', '::1']) {
    assert.equal(chooseAddress(facts({ masterAddr, routeSource: '127.0.0.1' })).address, '127.0.0.1', masterAddr);
  }
});

test('without a default route: the first non-loopback interface, IPv4 first; with none at all: loopback', () => {
  assert.equal(chooseAddress(facts({ masterAddr: 'node0', routeSource: '127.0.1.1', defaultRouteInterface: undefined })).address, '172.31.5.10');
  assert.equal(chooseAddress(facts({ masterAddr: 'node0', routeSource: '', defaultRouteInterface: undefined, interfaces: { lo: [v4('127.0.0.1', true)], eth1: [v6('fe80::2'), v6('fd00::7')] } })).address, 'fd00::7');
  const only = chooseAddress(facts({ masterAddr: 'node0', routeSource: '127.0.1.1', defaultRouteInterface: undefined, interfaces: { lo: [v4('127.0.0.1', true)] } }));
  assert.equal(only.address, '127.0.0.1');
  assert.match(only.why, /^loopback/);
});

test('distributed.iface, then GLOO_SOCKET_IFNAME, win over the route', () => {
  assert.deepEqual(chooseAddress(facts({ configIface: 'docker0', env: { GLOO_SOCKET_IFNAME: 'ens5' } })), { address: '192.168.99.1', why: 'interface docker0 (distributed.iface)' });
  assert.deepEqual(chooseAddress(facts({ env: { GLOO_SOCKET_IFNAME: 'docker0,ens5' } })), { address: '192.168.99.1', why: 'interface docker0 (GLOO_SOCKET_IFNAME)' });
});

test('an interface that does not exist is a UserError listing those that do', () => {
  assert.throws(
    () => chooseAddress(facts({ configIface: 'eth9' })),
    (e: unknown) => e instanceof UserError && /distributed\.iface is eth9, but this machine has no interface eth9/.test(e.problem) && /lo \(127\.0\.0\.1, ::1\), ens5 \(fe80::1, 172\.31\.5\.10, fd00::5\), docker0/.test(e.fix ?? ''),
  );
  assert.throws(() => chooseAddress(facts({ env: { GLOO_SOCKET_IFNAME: 'eth9' } })), /GLOO_SOCKET_IFNAME is eth9/);
});

test("rank 0's store listens where every rank dials it: loopback for a loopback literal, an address of this machine, else every address", () => {
  assert.equal(storeBindAddress('127.0.0.1', '127.0.0.1', machine), '127.0.0.1');
  assert.equal(storeBindAddress('localhost', '127.0.0.1', machine), '127.0.0.1');
  assert.equal(storeBindAddress('node0', '172.31.5.10', machine), '172.31.5.10');
  assert.equal(storeBindAddress('node0', '127.0.1.1', machine), '', "rank 0's own client dials 127.0.1.1, the peers 172.31.5.10");
  assert.equal(storeBindAddress('203.0.113.7', '203.0.113.7', machine), '', 'an address not on this machine (NAT)');
});
