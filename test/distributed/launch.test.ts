import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNode, type ChildResult } from '../helpers/children.js';
import { LineSplitter, pickCulprit, prefixLine, rewriteMpiLine, watchMpiReport, watchPeerReport, type MpiReport } from '../../src/distributed/launch.js';
import { PEER_LOST_EXIT } from '../../src/util/errors.js';
import { parseOpenMpiMajor } from '../../src/distributed/hosts.js';
import { physicalCores } from '../../src/runtime/threads.js';

const bin = fileURLToPath(new URL('../../../bin/nanogpt', import.meta.url));
const worker = fileURLToPath(new URL('./rank-worker.js', import.meta.url));
const hasMpirun = (process.env.PATH ?? '').split(':').some((d) => d && existsSync(path.join(d, 'mpirun')));
const tmp = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-launch-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function launch(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<ChildResult> {
  return runNode([bin, 'launch', ...args], env, timeoutMs);
}

/** `[rank k] RESULT {...}` lines, by rank. */
function results(stdout: string, tag = 'RESULT'): Map<number, Record<string, unknown>> {
  const out = new Map<number, Record<string, unknown>>();
  for (const m of stdout.matchAll(new RegExp(`^\\[rank (\\d+)\\] ${tag} (.*)$`, 'gm'))) out.set(Number(m[1]), JSON.parse(m[2]!) as Record<string, unknown>);
  return out;
}

function pids(stdout: string): number[] {
  return [...stdout.matchAll(/^\[rank \d+\] pid=(\d+)/gm)].map((m) => Number(m[1]));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('output lines are split, prefixed once, and UTF-8 survives chunk boundaries', () => {
  const lines: string[] = [];
  const s = new LineSplitter((l) => lines.push(l), 8);
  const bytes = Buffer.from('ab\ncö\r\nrest-of-a-long-line', 'utf8');
  for (let i = 0; i < bytes.length; i += 3) s.push(bytes.subarray(i, i + 3));
  s.end();
  assert.deepEqual(lines, ['ab', 'cö', 'rest-of-', 'a-long-l', 'ine']);
  assert.equal(prefixLine(2, 'hello'), '[rank 2] hello');
  assert.equal(prefixLine(2, '[rank 2] step 1'), '[rank 2] step 1');
  assert.equal(prefixLine(2, '[rank 20] x'), '[rank 2] [rank 20] x');
  assert.deepEqual(rewriteMpiLine('[1,0]<stdout>:hi'), ['[rank 0] hi']);
  assert.deepEqual(rewriteMpiLine('[1,0]<stdout>:partial[1,2]<stdout>:next'), ['[rank 0] partial', '[rank 2] next']);
  assert.deepEqual(rewriteMpiLine('mpirun noticed something'), ['mpirun noticed something']);
  // Open MPI 4 keeps a rank's leading space; Open MPI 5 puts one of its own after every tag.
  assert.deepEqual(rewriteMpiLine('[1,0]<stdout>: indented'), ['[rank 0]  indented']);
  assert.deepEqual(rewriteMpiLine('[1,0]<stdout>: hi', 5), ['[rank 0] hi']);
  assert.deepEqual(rewriteMpiLine('[1,0]<stdout>: partial[1,2]<stderr>: next', 5), ['[rank 0] partial', '[rank 2] next']);
});

test("mpirun's report names the failing rank, Open MPI 4 and 5; its version is read from --version", () => {
  for (const name of ['[[487,1],2]', '[prterun-node0-8123@1,2]']) {
    const into: MpiReport = {};
    for (const line of ['The first process to do so was:', '', `   Process name: ${name}`, '   Exit code:    7']) watchMpiReport(line, into);
    assert.deepEqual(into, { rank: 2, detail: 'exit code 7' }, name);
  }
  // A rank killed by a signal. Open MPI 4.1.4's report, as this machine's mpirun printed it after kill -9 of rank 1:
  const ompi4 = [
    '--------------------------------------------------------------------------',
    'Primary job  terminated normally, but 1 process returned',
    'a non-zero exit code. Per user-direction, the job has been aborted.',
    '--------------------------------------------------------------------------',
    '--------------------------------------------------------------------------',
    'mpirun noticed that process rank 1 with PID 0 on node vm exited on signal 9 (Killed).',
    '--------------------------------------------------------------------------',
  ];
  // Open MPI 5 (PRRTE's help-prterun.txt, "prun:proc-aborted-strsignal"), on one line and wrapped before "signal".
  const ompi5 = ['prterun noticed that process rank 2 with PID 4242 on node node2 exited on signal 9 (Killed).'];
  const ompi5Wrapped = ['prterun noticed that process rank 2 with PID 4242 on node node2 exited on', 'signal 9 (Killed).'];
  const cases: [string[], MpiReport][] = [
    [ompi4, { rank: 1, detail: 'signal 9 (Killed) on node vm' }],
    [ompi5, { rank: 2, detail: 'signal 9 (Killed) on node node2' }],
    [ompi5Wrapped, { rank: 2, detail: 'signal 9 (Killed) on node node2', pendingSignal: false }],
    // Only the first report counts: ranks killed by mpirun afterwards are not the culprit.
    [[...ompi4, 'mpirun noticed that process rank 0 with PID 0 on node vm exited on signal 15 (Terminated).'], { rank: 1, detail: 'signal 9 (Killed) on node vm' }],
  ];
  // A lost host: ssh's keep-alive timeout, then mpirun's misleading report (Open MPI 4.1.4, a frozen remote sshd).
  cases.push([['Timeout, server 127.0.0.1 not responding.', 'ORTE was unable to reliably start one or more daemons.'], { lostHost: '127.0.0.1' }]);
  for (const [lines, want] of cases) {
    const into: MpiReport = {};
    for (const line of lines) watchMpiReport(line, into);
    assert.deepEqual(into, want, lines.join('\n'));
  }
  assert.equal(parseOpenMpiMajor('mpirun (Open MPI) 4.1.4\n\nReport bugs to http://www.open-mpi.org/community/help/'), 4);
  assert.equal(parseOpenMpiMajor('mpirun (Open MPI) 5.0.7\n'), 5);
  assert.equal(parseOpenMpiMajor('HYDRA build details:'), undefined);
});

test("the ranks a surviving rank reports gone are collected from its error line, as the trainer words it", () => {
  const gone = new Set<number>();
  watchPeerReport('[rank 0] error: rank 0: allreduce(max) #117 failed: rank 2 did not respond (exited, crashed or hung); Gloo said: x', gone);
  watchPeerReport('[rank 1] error: rank 1: broadcast #3 failed: ranks 0, 3 did not respond (exited, crashed or hung)', gone);
  watchPeerReport('[rank 1] iter 3/50 (6%, ETA 2s): loss 4.1', gone);
  assert.deepEqual([...gone].sort(), [0, 2, 3]);
});

test('launch --nproc_per_node 3: ranks discover the env, rendezvous and allreduce (sum of ranks = 3)', async () => {
  const r = await launch(['--nproc_per_node', '3', '--', worker], { SCENARIO: 'allreduce' });
  assert.equal(r.code, 0, r.stderr);
  const res = results(r.stdout);
  assert.deepEqual([...res.keys()].sort(), [0, 1, 2], r.stdout);
  for (const [rank, o] of res) {
    assert.equal(o.rank, rank);
    assert.equal(o.worldSize, 3);
    assert.equal(o.localRank, rank);
    assert.equal(o.localWorldSize, 3);
    assert.equal(o.source, 'torchrun');
    assert.equal(o.masterAddr, '127.0.0.1');
    assert.equal(o.sum, 3);
    assert.ok(Number(o.threads) >= 1);
  }
  assert.match(r.stderr, /nanogpt launch: 3 ranks on this machine, \d+ threads? each, MASTER_ADDR=127\.0\.0\.1 MASTER_PORT=\d+/);
});

test('launch prefixes every line once, joins partial writes, keeps stdout and stderr apart', async () => {
  const r = await launch(['--nproc_per_node', '2', '--threads', '1', '--', worker], { SCENARIO: 'lines' });
  assert.equal(r.code, 0, r.stderr);
  for (const k of [0, 1]) {
    assert.match(r.stdout, new RegExp(`^\\[rank ${k}\\] hello wörld$`, 'm'));
    assert.match(r.stdout, new RegExp(`^\\[rank ${k}\\] second$`, 'm'));
    assert.match(r.stdout, new RegExp(`^\\[rank ${k}\\] last-${k}$`, 'm'));
    assert.match(r.stderr, new RegExp(`^\\[rank ${k}\\] already prefixed$`, 'm'));
    assert.doesNotMatch(r.stdout, /already prefixed/);
  }
  for (const line of r.stdout.trimEnd().split('\n')) assert.match(line, /^\[rank [01]\] /);
});

test('a failing rank tears the others down: exit non-zero naming the rank and code, no orphans', async () => {
  const r = await launch(['--nproc_per_node', '3', '--timeout', '3', '--', worker], { SCENARIO: 'fail', FAIL_RANK: '1' }, 30_000);
  assert.equal(r.code, 7, r.stderr);
  assert.match(r.stderr, /rank 1 exited with code 7; stopping rank 0, rank 2/);
  assert.match(r.stderr, /failed: rank 1 exited with code 7; all ranks stopped/);
  assert.match(r.stderr, /\[rank 1\] failing on purpose/);
  const ps = pids(r.stdout);
  assert.equal(ps.length, 3, r.stdout);
  for (const pid of ps) assert.ok(!alive(pid), `rank process ${pid} is still running`);
  assert.ok(r.ms < 15_000, `took ${r.ms} ms`);
});

test('a rank that ignores SIGTERM is killed after --timeout', async () => {
  const r = await launch(['--nproc_per_node', '2', '--timeout', '1', '--', worker], { SCENARIO: 'fail', FAIL_RANK: '1', IGNORE_TERM: '1' }, 30_000);
  assert.equal(r.code, 7, r.stderr);
  assert.match(r.stdout, /\[rank 0\] ignoring SIGTERM/);
  assert.match(r.stderr, /rank 0 still running after 1000 ms: SIGKILL/);
  for (const pid of pids(r.stdout)) assert.ok(!alive(pid), `rank process ${pid} is still running`);
});

/** Starts a launcher whose ranks wait for a signal, sends it `sig` once they are ready, returns how it ended. */
async function signalRun(launchArgs: string[], ranks: number, sig: NodeJS.Signals): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [bin, 'launch', ...launchArgs, '--', worker], { env: { ...process.env, SCENARIO: 'signal' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = new Promise<void>((resolve) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if ((stdout.match(/ ready$/gm) ?? []).length === ranks) resolve();
    });
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await ready;
  child.kill(sig);
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout, stderr };
}

test('SIGTERM through mpirun reaches every rank as SIGUSR2, which mpirun forwards without killing anyone', { skip: !hasMpirun && 'mpirun is not installed' }, async () => {
  const hosts = path.join(tmp, 'hosts-local-signal');
  writeFileSync(hosts, 'localhost slots=2\n');
  const r = await signalRun(['--hosts', hosts], 2, 'SIGTERM');
  // mpirun kills ranks on SIGTERM (Open MPI 5 at once, 4 after odls_base_sigkill_timeout), so the launcher sends
  // SIGUSR2 through it: the ranks exit on their own, and so does mpirun, with 0.
  for (const k of [0, 1]) assert.match(r.stdout, new RegExp(`^\\[rank ${k}\\] got SIGUSR2$`, 'm'), r.stdout + r.stderr);
  assert.match(r.stderr, /SIGTERM: forwarding to mpirun as SIGUSR2/);
  assert.equal(r.code, 0, r.stderr);
});

test('SIGTERM and SIGINT sent to the launcher reach every rank', async () => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    const r = await signalRun(['--nproc_per_node', '2'], 2, sig);
    assert.equal(r.code, 0, r.stderr);
    for (const k of [0, 1]) assert.match(r.stdout, new RegExp(`^\\[rank ${k}\\] got ${sig}$`, 'm'));
    assert.match(r.stderr, new RegExp(`${sig}: forwarding to 2 rank process`));
  }
});

test('bad usage exits 2 with a message that says what to do', async () => {
  const unreadable = path.join(tmp, 'no-such-hosts');
  const cases: [string[], RegExp][] = [
    [['--nproc_per_node', '2', worker], /unexpected argument .* before --/],
    [['--nproc_per_node', '2'], /missing -- before the command/],
    [['--nproc_per_node', '2', '--'], /nothing to launch/],
    [['--nproc_per_node', '0', '--', worker], /--nproc_per_node must be >= 1, got 0/],
    [['--nproc_per_node', 'two', '--', worker], /--nproc_per_node must be an integer/],
    [['--hosts', unreadable, '--', worker], /cannot read hosts file .*no-such-hosts.* \(ENOENT\)/],
    [['--nproc_per_node', '2', '--', 'missing.js'], /script 'missing.js' does not exist/],
    [['--nproc_per_node', '2', '--', 'Bad!'], /neither a nanogpt subcommand nor a \.js script/],
    [['--nproc_per_node', '2', '--', 'launch'], /cannot launch itself/],
    [['--nprocs', '2', '--', worker], /unknown option --nprocs/],
    // A train flag where launch's options are: the fix is the same command line with -- in place.
    [['--nproc_per_node', '2', 'train', '--config', 'x.yaml'], /unknown option --config .*must follow --\n\s+fix: write: nanogpt launch --nproc_per_node 2 -- train --config x\.yaml$/m],
    [['--nproc-per-node=2', '--tcmalloc', '--trainer_config.max_iters=5'], /fix: write: nanogpt launch --nproc-per-node=2 --tcmalloc -- --trainer_config\.max_iters=5$/m],
    [['--master_port', '99999', '--', worker], /--master_port must be <= 65535/],
  ];
  const hostsBad = path.join(tmp, 'hosts-bad');
  writeFileSync(hostsBad, 'localhost\nnode1 cpus=4\n');
  cases.push([['--hosts', hostsBad, '--', worker], /hosts-bad:2: unknown option 'cpus=4'/]);
  for (const [args, match] of cases) {
    const r = await launch(args, {}, 20_000);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^error: /, args.join(' '));
    assert.match(r.stderr, match, args.join(' '));
  }
});

test('more local ranks than physical cores is a warning that says what it costs and what to use', async () => {
  const cores = physicalCores();
  const over = await launch(['--nproc_per_node', String(cores + 1), '--dry_run', '--', worker], {}, 20_000);
  assert.equal(over.code, 0, over.stderr);
  assert.match(over.stderr, new RegExp(`warning: ${cores + 1} ranks on ${cores} physical cores?: .*use --nproc_per_node ${cores} or fewer`));
  const fits = await launch(['--nproc_per_node', String(cores), '--dry_run', '--', worker], {}, 20_000);
  assert.doesNotMatch(fits.stderr, /warning: .* ranks on/);
});

test('--tcmalloc preloads tcmalloc, or says which package to install', async () => {
  const r = await launch(['--nproc_per_node', '1', '--tcmalloc', '--', worker], { SCENARIO: 'env' }, 20_000);
  if (r.code === 2) {
    assert.match(r.stderr, /tcmalloc is not installed[\s\S]*apt-get install libtcmalloc-minimal4/);
  } else {
    assert.equal(r.code, 0, r.stderr);
    const o = results(r.stdout, 'ENV').get(0)!;
    assert.match(String(o.preload), /libtcmalloc(_minimal)?\.so\.4/);
  }
});

test('--hosts --dry_run prints the exact mpirun command', { skip: !hasMpirun && 'mpirun is not installed' }, async () => {
  const hosts = path.join(tmp, 'hosts-3');
  writeFileSync(hosts, '# the original three machines\nlocalhost\nnode1 slots=2   # two ranks here\n\nnode2\n');
  const r = await launch(['--hosts', hosts, '--master_addr', '10.0.0.1', '--master_port', '29555', '--threads', '8', '--dry_run', '--', 'train', '--config', 'c.yaml'], { NANOGPT_SEED: '5' }, 20_000);
  assert.equal(r.code, 0, r.stderr);
  const line = r.stdout.trim();
  assert.match(line, /^mpirun (--allow-run-as-root )?-np 4 --host localhost:1,node1:2,node2:1 --map-by slot --bind-to none --tag-output --wdir \S+ /);
  assert.match(line, / -x NANOGPT_SEED=5 /);
  assert.match(line, / -x NANOGPT_THREADS=8 -x OMP_NUM_THREADS=8 -x MKL_NUM_THREADS=8 /);
  assert.match(line, / -x MASTER_ADDR=10\.0\.0\.1 -x MASTER_PORT=29555 \S*node \S*bin\/nanogpt train --config c\.yaml$/);
  // --nproc_per_node overrides every host's slots.
  const r2 = await launch(['--hosts', hosts, '--nproc_per_node', '3', '--master_addr', '10.0.0.1', '--dry_run', '--', 'train'], {}, 20_000);
  assert.match(r2.stdout, /-np 9 --host localhost:3,node1:3,node2:3 /);
});

test('--hosts runs a real mpirun: 3 ranks discover Open MPI variables and allreduce', { skip: !hasMpirun && 'mpirun is not installed' }, async () => {
  const hosts = path.join(tmp, 'hosts-local');
  writeFileSync(hosts, 'localhost slots=3\n');
  const r = await launch(['--hosts', hosts, '--threads', '1', '--', worker], { SCENARIO: 'allreduce' }, 90_000);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stderr, /through mpirun; running:\n {2}mpirun (--allow-run-as-root )?-np 3 --host localhost:3 .* -x MASTER_ADDR=127\.0\.0\.1 -x MASTER_PORT=\d+ /);
  const res = results(r.stdout);
  assert.deepEqual([...res.keys()].sort(), [0, 1, 2], r.stdout);
  for (const [rank, o] of res) {
    assert.equal(o.rank, rank);
    assert.equal(o.source, 'openmpi');
    assert.equal(o.worldSize, 3);
    assert.equal(o.localWorldSize, 3);
    assert.equal(o.sum, 3);
    assert.equal(o.threads, '1');
  }
});

test('--hosts through mpirun: a failing rank fails the launch', { skip: !hasMpirun && 'mpirun is not installed' }, async () => {
  const hosts = path.join(tmp, 'hosts-local-fail');
  writeFileSync(hosts, 'localhost slots=3\n');
  const r = await launch(['--hosts', hosts, '--', worker], { SCENARIO: 'fail', FAIL_RANK: '2' }, 60_000);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /failed: mpirun exited with code 7 \(mpirun reports rank 2 failed first: exit code 7\)/);
  // mpirun may return a moment before the ranks it killed are reaped (they are its children, not ours).
  const ps = pids(r.stdout);
  assert.ok(ps.length >= 2, r.stdout);
  const deadline = Date.now() + 5000;
  while (ps.some(alive) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
  for (const pid of ps) assert.ok(!alive(pid), `rank process ${pid} is still running`);
});

test('without mpirun, --hosts starts remote ranks through ssh (a stand-in ssh runs them here)', async () => {
  // A fake `ssh` on a PATH without mpirun: it drops ssh's options and runs the remote command with sh,
  // which exercises the exact command line and quoting a real ssh would hand the remote shell.
  const dir = mkdtempSync(path.join(tmp, 'fake-ssh-'));
  const ssh = path.join(dir, 'ssh');
  writeFileSync(
    ssh,
    '#!/bin/sh\n' +
      'while [ "$1" = -tt ] || [ "$1" = -o ]; do if [ "$1" = -o ]; then shift; fi; shift; done\n' +
      'host=$1; shift\n' +
      'echo "ssh to $host" >&2\n' +
      'PATH=/usr/bin:/bin exec /bin/sh -c "$1"\n',
  );
  chmodSync(ssh, 0o755);
  const hosts = path.join(tmp, 'hosts-ssh');
  writeFileSync(hosts, 'localhost\nfakehost slots=2\n');
  const args = ['--hosts', hosts, '--master_addr', '127.0.0.1', '--threads', '1', '--', worker, "it's quoted"];
  const dry = await launch([...args.slice(0, -3), '--dry_run', ...args.slice(-3)], { PATH: dir }, 20_000);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /^\[rank 0\] .*RANK=0 .*node\S* \S+rank-worker\.js 'it'\\''s quoted'$/m);
  assert.match(dry.stdout, /^\[rank 2\] ssh -tt -o BatchMode=yes -o LogLevel=ERROR -o ServerAliveInterval=5 -o ServerAliveCountMax=2 fakehost 'cd .* && exec env .*RANK=2 WORLD_SIZE=3 LOCAL_RANK=1 LOCAL_WORLD_SIZE=2 /m);

  const empty = mkdtempSync(path.join(tmp, 'empty-path-'));
  const none = await launch(args, { PATH: empty }, 20_000);
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /needs mpirun or ssh .* neither is on PATH[\s\S]*apt-get install openmpi-bin/);

  const r = await launch(args, { PATH: dir, SCENARIO: 'allreduce' }, 90_000);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stderr, /mpirun not found; 3 ranks on 2 hosts through ssh/);
  const res = results(r.stdout);
  assert.deepEqual([...res.keys()].sort(), [0, 1, 2], r.stdout);
  for (const [rank, o] of res) {
    assert.equal(o.sum, 3);
    assert.equal(o.source, 'torchrun');
    assert.equal(o.localWorldSize, rank === 0 ? 1 : 2);
  }
});

/** A launcher left running: its output so far, a bounded wait for a line, and how it ended (killed after 60 s). */
function startLaunch(args: string[], env: NodeJS.ProcessEnv): { child: ReturnType<typeof spawn>; out: () => string; waitFor: (re: RegExp, ms?: number) => Promise<RegExpMatchArray>; ended: Promise<{ code: number | null; ms: number }> } {
  const child = spawn(process.execPath, [bin, 'launch', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  let exitedAt = 0;
  const ended = new Promise<{ code: number | null; ms: number }>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, ms: Date.now() - exitedAt });
    }),
  );
  const waitFor = async (re: RegExp, ms = 30_000): Promise<RegExpMatchArray> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = re.exec(out);
      if (m) {
        exitedAt = Date.now();
        return m;
      }
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no ${re} within ${ms} ms:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { child, out: () => out, waitFor, ended };
}

test('a rank that exits while an orphan it started holds its output: the launcher returns after a bounded drain and kills the orphan', async () => {
  const run = startLaunch(['--nproc_per_node', '1', '--', worker], { SCENARIO: 'orphan' });
  const m = await run.waitFor(/grandchild=(\d+) ready/);
  const { code, ms } = await run.ended;
  assert.equal(code, 0, run.out());
  assert.ok(ms < 6000, `took ${ms} ms after the rank was ready`);
  assert.match(run.out(), new RegExp(`rank 0 exited, but its output is still open after 2000 ms \\(held by process\\(es\\) ${m[1]} it left behind\\)[\\s\\S]*killed 1 process\\(es\\) the ranks left behind`));
  const orphan = Number(m[1]);
  const deadline = Date.now() + 3000;
  while (alive(orphan) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(!alive(orphan), `orphan ${orphan} is still running`);
});

test('a third Ctrl-C kills every rank and the processes they started in their own sessions', async () => {
  const run = startLaunch(['--nproc_per_node', '2', '--', worker], { SCENARIO: 'escape' });
  await run.waitFor(/(grandchild=\d+ ready[\s\S]*){2}/);
  const grandchildren = [...run.out().matchAll(/grandchild=(\d+)/g)].map((x) => Number(x[1]));
  await new Promise((r) => setTimeout(r, 1200)); // one sampling of the process tree at least
  for (let i = 0; i < 3; i++) {
    run.child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 200));
  }
  await run.ended;
  assert.match(run.out(), /SIGINT again: killing all ranks and every process they started/);
  const deadline = Date.now() + 3000;
  while (grandchildren.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const pid of grandchildren) assert.ok(!alive(pid), `grandchild ${pid} is still running`);
});

test('the rank named is the one that failed, not one that stopped because a peer was gone', () => {
  const f = (code: number | null, ours = false, signal: NodeJS.Signals | null = null) => ({ code, ours, signal });
  const lost = f(PEER_LOST_EXIT);
  const killed = f(null, false, 'SIGKILL');
  assert.equal(pickCulprit([lost, killed]), killed);
  assert.equal(pickCulprit([lost, f(null, true, 'SIGTERM')]).signal, 'SIGTERM'); // stopped by us, but not a peer-lost exit
  assert.equal(pickCulprit([lost, f(PEER_LOST_EXIT)]), lost);
  assert.equal(pickCulprit([f(7), lost]).code, 7);
});

test('when a rank that lost a peer exits first, the launcher names the peer it reported, not a rank the teardown stopped', async () => {
  // The order the ssh cluster test once met: rank 0 (local) reports rank 2 gone and exits 3 before rank 2's end
  // reaches the launcher; the teardown's SIGTERM then ends ranks 1 and 2, and rank 1 is the first non-3 failure.
  const r = await launch(['--nproc_per_node', '3', '--threads', '1', '--timeout', '2', '--', worker], { SCENARIO: 'peer-lost', GONE_RANK: '2' });
  assert.equal(r.code, PEER_LOST_EXIT, r.stderr);
  assert.match(r.stderr, /failed: rank 2 stopped answering \(reported by the ranks that exited with code 3\)/, r.stderr);
  assert.doesNotMatch(r.stderr, /failed: rank 1/, r.stderr);
});

test('kill -9 of a rank is named: local ranks, and through mpirun from its report', async () => {
  const modes: [string, string[]][] = [['local', ['--nproc_per_node', '3', '--timeout', '2']]];
  if (hasMpirun) {
    const hosts = path.join(tmp, 'hosts-local-kill');
    writeFileSync(hosts, 'localhost slots=3\n');
    modes.push(['mpirun', ['--hosts', hosts]]);
  }
  for (const [mode, args] of modes) {
    const run = startLaunch([...args, '--', worker], { SCENARIO: 'fail', FAIL_RANK: '99' });
    const m = await run.waitFor(/^\[rank 1\] pid=(\d+)$/m);
    await run.waitFor(/(pid=\d+[\s\S]*){3}/);
    process.kill(Number(m[1]), 'SIGKILL');
    const { code } = await run.ended;
    assert.notEqual(code, 0, run.out());
    if (mode === 'local') assert.match(run.out(), /failed: rank 1 was killed by SIGKILL/, run.out());
    else assert.match(run.out(), /failed: mpirun .*\(mpirun reports rank 1 failed first: signal 9 \(Killed\) on node \S+\)/, run.out());
  }
});
