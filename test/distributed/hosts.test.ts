import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { masterAddressFor, mpirunArgs, parseHosts, shellQuote, sshArgs, isThisMachine } from '../../src/distributed/hosts.js';
import { UserError } from '../../src/util/errors.js';

test('hosts file: the original three lines, slots, comments and blank lines', () => {
  assert.deepEqual(
    parseHosts('localhost\nnode1\nnode2\n').map((h) => [h.host, h.slots]),
    [['localhost', 1], ['node1', 1], ['node2', 1]],
  );
  const hs = parseHosts('# cluster\n\nlocalhost slots=2   # me\n  10.0.0.7 slots=4 max_slots=8\r\nnode-3.example.org\n');
  assert.deepEqual(hs.map((h) => [h.host, h.slots, h.line]), [['localhost', 2, 3], ['10.0.0.7', 4, 4], ['node-3.example.org', 1, 5]]);
});

test('hosts file errors name the file and line', () => {
  const bad: [string, RegExp][] = [
    ['', /lists no hosts/],
    ['# only a comment\n', /lists no hosts/],
    ['node1 slots=0\n', /hosts:1: slots must be at least 1/],
    ['node1\nnode2 gpus=2\n', /hosts:2: unknown option 'gpus=2'/],
    ['node1\nnode1\n', /hosts:2: host 'node1' is listed twice \(first on line 1\)/],
    ['-np 4\n', /'-np' is not a host name/],
    ['user@node1\n', /'user@node1' is not a host name/],
  ];
  for (const [text, match] of bad) assert.throws(() => parseHosts(text, 'hosts'), (e: unknown) => e instanceof UserError && match.test(e.message), text);
});

test('mpirun command line: ranks per host, env forwarding, root flag', () => {
  const hosts = parseHosts('localhost\nnode1 slots=2\n');
  const args = mpirunArgs({ hosts, perHost: [1, 2], command: ['/usr/bin/node', '/opt/nanogpt/bin/nanogpt', 'train'], env: { MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500', NANOGPT_THREADS: '8' }, asRoot: true, cwd: '/work' });
  assert.deepEqual(args, [
    'mpirun', '--allow-run-as-root', '-np', '3', '--host', 'localhost:1,node1:2', '--map-by', 'slot', '--bind-to', 'none', '--tag-output', '--wdir', '/work',
    '--mca', 'plm_rsh_args', '-o ServerAliveInterval=5 -o ServerAliveCountMax=2',
    '-x', 'MASTER_ADDR=10.0.0.1', '-x', 'MASTER_PORT=29500', '-x', 'NANOGPT_THREADS=8',
    '/usr/bin/node', '/opt/nanogpt/bin/nanogpt', 'train',
  ]);
  assert.ok(!mpirunArgs({ hosts, perHost: [1, 1], command: ['x'], env: {}, cwd: '/' }).includes('--allow-run-as-root'));
  // Keep-alives for mpirun's own ssh: Open MPI 4 calls its component rsh (--mca); Open MPI 5's PRRTE calls it
  // ssh and takes it through --prtemca.
  const four = mpirunArgs({ hosts, perHost: [1, 1], command: ['x'], env: {}, cwd: '/', openMpiMajor: 4 }).join(' ');
  assert.match(four, / --mca plm_rsh_args -o ServerAliveInterval=5 -o ServerAliveCountMax=2 x$/);
  const five = mpirunArgs({ hosts, perHost: [1, 1], command: ['x'], env: {}, cwd: '/', openMpiMajor: 5 }).join(' ');
  assert.match(five, / --prtemca plm_ssh_args -o ServerAliveInterval=5 -o ServerAliveCountMax=2 x$/);
  assert.doesNotMatch(five, /--mca/);
});

test('ssh command line quotes for the remote shell', () => {
  assert.equal(shellQuote('plain/path-1.js'), 'plain/path-1.js');
  assert.equal(shellQuote("it's"), `'it'\\''s'`);
  assert.equal(shellQuote('a b'), `'a b'`);
  const a = sshArgs('node1', '/my dir', { RANK: '1', X: 'a b' }, ['/usr/bin/node', 'script.js', "it's"]);
  assert.deepEqual(a.slice(0, -1), ['ssh', '-tt', '-o', 'BatchMode=yes', '-o', 'LogLevel=ERROR', '-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=2', 'node1']);
  assert.equal(a.at(-1), `cd '/my dir' && exec env RANK=1 X='a b' /usr/bin/node script.js 'it'\\''s'`);
});

test('master address: loopback when every host is this machine, else the first host', async () => {
  assert.ok(isThisMachine('localhost') && isThisMachine('127.0.0.1'));
  assert.equal(await masterAddressFor(parseHosts('localhost slots=3\n')), '127.0.0.1');
  assert.equal(await masterAddressFor(parseHosts('node0\nnode1\n')), 'node0');
});
