// `nanogpt launch --hosts` on a cluster as users have one (issue 18): three hosts node0..node2, each a network
// namespace with its own hostname, a stock-Debian /etc/hosts (`127.0.1.1 <own name>` plus the cluster block), its
// own sshd (root, key only) and known_hosts filled by ssh-keyscan, on 172.31.x.0/24 (an AWS default VPC's range)
// that exists only inside the namespaces. The filesystem is shared (it stands in for NFS). The launcher runs inside
// node0 with node0's hostname and a hosts file naming node0 node1 node2, as a user writes it, so MASTER_ADDR is
// `node0` — which is 127.0.1.1 on node0 itself.
//
// Scenarios, each through mpirun (Open MPI) and through ssh (PATH without mpirun: the launcher's fallback):
//   (a) both modes train to identical weights;
//   (b) kill -9 of the rank on node2: the launcher exits non-zero within a bound, naming rank 2;
//   (c) node2's cable cut mid-run: every process of the run (launcher, mpirun, orted, ssh, ranks) is gone within the
//       documented bound, rank 2 named;
//   (d) Ctrl-C (SIGINT) to the launcher: a snapshot is written, and rerunning the same command ends bit-identical
//       to the uninterrupted run of (a).
// Needs root, iproute2, util-linux's unshare and openssh (scripts/setup.sh installs them); skipped with the reason
// otherwise. Every wait is bounded; the cluster (namespaces, processes, /etc/netns entries) is removed in `after`
// (and a cluster left by a killed run is swept by the next one).
//
// Environment: NANOGPT_SSH_CLUSTER=off skips these tests; =on runs them in the Debian 13 chroot pass too (skipped
// there by default, for time). NANOGPT_SSH_CLUSTER_MASTER_ADDR=ip (diagnostic, never in CI) passes node0's address
// as --master_addr, to look at the launcher's behaviour apart from the rendezvous bug of issue 18 item 1.
import { after, before, test, type TestContext } from 'node:test';
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { ChildResult } from '../helpers/children.js';
import { writePatternCorpus } from '../helpers/corpus.js';
import { bin, tinyTrainArgs } from '../helpers/nanogpt-cli.js';
import { ip, netnsPrefix } from '../helpers/netns.js';
import { createSshCluster, destroySshCluster, killLeftovers, leftovers, NodeProcess, processesIn, runOn, sshClusterUnavailable, tail, until, type SshCluster } from '../helpers/ssh-cluster.js';

const prefix = netnsPrefix();

type Mode = 'mpirun' | 'ssh';

// Long enough that a signal, kill or cut sent at iteration 1-2 lands mid-run; short enough for the time budget
// (20-50 ms an iteration for 3 ranks on a 2-core machine, depending on its load).
const ITERS = 50;
/** distributed.timeout_s of every run: small, so the failure scenarios end quickly. */
const TIMEOUT_S = 5;
/** The launcher's --timeout: how long ranks get between SIGTERM and SIGKILL after one fails. */
const GRACE_S = 2;
/**
 * The documented bound for a dead or cut-off rank (README: "the others stop within distributed.timeout_s"), plus
 * what it takes for processes to be reaped and the launcher's grace before SIGKILL. If the docs change the bound
 * (issue 18 item 4), change this with them.
 */
const STOP_BOUND_MS = TIMEOUT_S * 1000 + GRACE_S * 1000 + 3000;
/** No single launch in this file may take longer than this (then it is SIGKILLed and the test fails). */
const RUN_LIMIT_MS = 60_000;

let cluster: SshCluster | undefined;
let why: string | null = null;
let data = '';
let work = '';

/** Why these tests do not run here, or null. */
function skipReason(): string | null {
  const env = process.env.NANOGPT_SSH_CLUSTER;
  if (env === 'off') return 'NANOGPT_SSH_CLUSTER=off';
  if (process.env.NANOGPT_IN_DEBIAN13_ROOT === '1' && env !== 'on') {
    return 'not run in the Debian 13 chroot pass: the host pass runs these scenarios, and their ~90 s would push the suite past its time limit; NANOGPT_SSH_CLUSTER=on runs them there (Open MPI 5)';
  }
  const cannot = sshClusterUnavailable(prefix);
  return cannot ? `cannot build the ssh cluster: ${cannot}` : null;
}

before(async () => {
  why = skipReason();
  if (why) return;
  work = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-ssh-cluster-work-'));
  data = writePatternCorpus({ seed: 33 });
  // As a user writes it: names, not addresses; the first line is the machine launch runs on.
  writeFileSync(path.join(work, 'hosts'), 'node0\nnode1\nnode2\n');
  cluster = await createSshCluster(3, prefix);
});

// Also after a failed or interrupted test: namespaces, /etc/netns entries and sshd outlive the process otherwise.
after(() => {
  destroySshCluster(prefix, cluster);
  if (work) rmSync(work, { recursive: true, force: true });
  if (data) rmSync(data, { recursive: true, force: true });
});

function ready(t: TestContext): SshCluster | undefined {
  if (why || !cluster) {
    t.skip(why ?? 'no cluster');
    return undefined;
  }
  killLeftovers(cluster); // whatever an earlier failed scenario left
  return cluster;
}

/** The tests' tiny fp32 run, `ITERS` iterations, a weight checksum every 20. */
function trainArgs(outDir: string): string[] {
  return tinyTrainArgs(data, outDir, [], {
    'trainer_config.max_iters': ITERS,
    'trainer_config.eval_interval': ITERS,
    'trainer_config.eval_iters': 2,
    'trainer_config.lr_decay_iters': ITERS,
    'distributed.check_interval': 20,
    'distributed.timeout_s': TIMEOUT_S,
  });
}

/**
 * Starts `nanogpt launch --hosts` on node0 (its namespace and hostname), in `work`. ssh mode is the launcher's
 * fallback when mpirun is not on PATH: PATH holds only ssh.
 */
function launch(c: SshCluster, mode: Mode, outDir: string): NodeProcess {
  const env = mode === 'ssh' ? { ...process.env, PATH: c.sshOnlyBin } : process.env;
  // Diagnostic only (never set in CI): NANOGPT_SSH_CLUSTER_MASTER_ADDR=ip passes node0's cluster address as
  // --master_addr, to look at the launcher's behaviour apart from the rendezvous bug of issue 18 item 1.
  const masterAddr = process.env.NANOGPT_SSH_CLUSTER_MASTER_ADDR === 'ip' ? ['--master_addr', c.nodes[0]!.ip] : [];
  const argv = [process.execPath, bin, 'launch', '--hosts', path.join(work, 'hosts'), ...masterAddr, '--timeout', String(GRACE_S), '--', ...trainArgs(outDir)];
  return new NodeProcess(c.nodes[0]!, argv, { env, cwd: work, timeoutMs: RUN_LIMIT_MS });
}

const MODE_BANNER: Record<Mode, RegExp> = { mpirun: /ranks on 3 hosts through mpirun/, ssh: /mpirun not found; 3 ranks on 3 hosts through ssh/ };

/** Rank 0's `parameter checksum at iteration N: X` lines, by iteration. */
function checksums(output: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const m of output.matchAll(/\[rank 0\] parameter checksum at iteration (\d+): (\S+)/g)) out.set(Number(m[1]), m[2]!);
  return out;
}

/** A digest of every tensor in a safetensors file (names, dtypes, shapes, bytes), metadata left out. */
function tensorDigest(file: string): string {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const h = createHash('sha256');
  for (const name of Object.keys(header).filter((k) => k !== '__metadata__').sort()) {
    const e = header[name]!;
    h.update(`${name} ${e.dtype} ${e.shape.join('x')}\n`);
    h.update(bytes.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]));
  }
  return h.digest('hex');
}

/** The iteration a snapshot was taken at (its train_state metadata). */
function snapshotIter(file: string): number {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const meta = (JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as { __metadata__: Record<string, string> }).__metadata__;
  return (JSON.parse(meta.train_state!) as { iter: number }).iter;
}

/** The launcher's closing line ("nanogpt launch: failed: …" / "stopped by …"), if it printed one. */
const closingLine = (output: string): string | undefined => [...output.matchAll(/^nanogpt launch: (?:failed|stopped by)\b.*$/gm)].pop()?.[0];

/** The ranks a closing line names ("rank 2", "ranks 1, 2"). */
const ranksNamed = (line: string): number[] => [...line.matchAll(/\brank (\d+)\b/g)].map((m) => Number(m[1]));
/** The ranks a closing line blames: every rank it names, except those it says only stopped because a peer was gone. */
const culpritsNamed = (line: string): number[] => [...new Set(ranksNamed(line.replace(/; (?:ranks? [\d, ]+|(?:rank \d+(?:, )?)+) stopped because a peer was gone/g, '')))];

function describe(r: ChildResult, p: NodeProcess): string {
  return `launcher exited ${r.code ?? r.signal} after ${r.ms} ms; output:\n${tail(p.all, 80)}`;
}

// ---- the cluster itself ----------------------------------------------------------------------------------------

test('the cluster: node0..node2 with their own hostname, sshd and stock-Debian /etc/hosts, on a 172.31 subnet only they have', async (t) => {
  const c = ready(t);
  if (!c) return;
  t.diagnostic(`built in ${Object.entries(c.setupMs).map(([k, v]) => `${k} ${v} ms`).join(', ')}`);
  // Never an address outside the namespaces: this (the machine's own) namespace has no address in the subnet.
  const own = ip(['-4', '-o', 'addr', 'show']);
  assert.ok(!own.includes(` ${c.subnet}.`), `the machine's own namespace has an address in ${c.subnet}.0/24:\n${own}`);
  for (const node of c.nodes) {
    const out = await runOn(node, ['sh', '-c', 'hostname; getent hosts $(hostname); getent hosts node0 node1 node2']);
    const [name, self, ...others] = out.trim().split('\n');
    assert.equal(name, node.name);
    // What a user's machine does with the Debian installer's line: its own name is 127.0.1.1 to itself.
    assert.match(self!, new RegExp(`^127\\.0\\.1\\.1\\s+${node.name}$`), out);
    for (const o of c.nodes.filter((x) => x !== node)) assert.ok(others.some((l) => new RegExp(`^${o.ip.replace(/\./g, '\\.')}\\s+${o.name}$`).test(l)), `${node.name} resolves ${o.name}:\n${out}`);
  }
  // Key login by name from the launching machine, landing on the right host (createSshCluster checked it once;
  // here as part of the record).
  assert.equal((await runOn(c.nodes[0]!, ['ssh', '-o', 'BatchMode=yes', 'node2', 'hostname'])).trim(), 'node2');
});

// ---- (a) ------------------------------------------------------------------------------------------------------

interface Finished {
  out: string;
  result: ChildResult;
  output: string;
}
/** The uninterrupted runs of (a), by mode: (d) compares its resumed run with them. */
const reference = new Map<Mode, Finished>();

async function fullRun(c: SshCluster, mode: Mode): Promise<Finished> {
  const out = mkdtempSync(path.join(work, `out-${mode}-`));
  const p = launch(c, mode, out);
  const result = await p.done;
  return { out, result, output: p.all };
}

/** (a)'s run of this mode, or a fresh one when (a) did not run (a name filter). */
async function referenceRun(c: SshCluster, mode: Mode): Promise<Finished> {
  let r = reference.get(mode);
  if (!r) {
    r = await fullRun(c, mode);
    reference.set(mode, r);
  }
  return r;
}

function assertTrained(mode: Mode, r: Finished): void {
  assert.match(r.output, MODE_BANNER[mode], `the launcher did not run through ${mode}:\n${tail(r.output)}`);
  if (process.env.NANOGPT_SSH_CLUSTER_MASTER_ADDR !== 'ip') assert.match(r.output, /MASTER_ADDR=node0 /, 'the master address is the hosts file\'s first name');
  assert.equal(r.result.code, 0, `${mode}: launcher exited ${r.result.code ?? r.result.signal} after ${r.result.ms} ms; output:\n${tail(r.output, 80)}`);
  assert.ok(checksums(r.output).has(ITERS), `${mode}: rank 0 logged no checksum at iteration ${ITERS}:\n${tail(r.output)}`);
  // Every rank checks its weights against the others at each checksum: all three logged the same one.
  const all = [...r.output.matchAll(new RegExp(`\\[rank (\\d)\\] parameter checksum at iteration ${ITERS}: (\\S+)`, 'g'))];
  assert.deepEqual(new Set(all.map((m) => m[1])), new Set(['0', '1', '2']), `${mode}: not every rank logged its final checksum:\n${tail(r.output)}`);
  assert.equal(new Set(all.map((m) => m[2])).size, 1, `${mode}: ranks disagree: ${all.map((m) => m[0]).join(' / ')}`);
}

test('(a) launch --hosts node0 node1 node2 trains through mpirun and through ssh to identical weights', async (t) => {
  const c = ready(t);
  if (!c) return;
  for (const mode of ['mpirun', 'ssh'] as const) {
    await t.test(`through ${mode}`, async () => {
      killLeftovers(c);
      const r = await fullRun(c, mode);
      reference.set(mode, r);
      t.diagnostic(`${mode}: exit ${r.result.code ?? r.result.signal} in ${r.result.ms} ms`);
      assertTrained(mode, r);
      assert.ok(await until(() => leftovers(c).length === 0, 3000), `${mode}: processes left on the nodes after a clean exit: ${JSON.stringify(leftovers(c))}`);
    });
  }
  await t.test('same checksums and final weights in both modes', () => {
    const [m, s] = [reference.get('mpirun'), reference.get('ssh')];
    assert.ok(m?.result.code === 0 && s?.result.code === 0, 'needs both runs above to succeed');
    assert.deepEqual([...checksums(s.output)], [...checksums(m.output)], 'checksums differ between mpirun and ssh');
    for (const f of ['snapshot.pt', 'ckpt.pt']) {
      assert.equal(tensorDigest(path.join(s.out, f)), tensorDigest(path.join(m.out, f)), `${f} differs between mpirun and ssh`);
    }
  });
});

// ---- (d) ------------------------------------------------------------------------------------------------------

test('(d) Ctrl-C on the launcher mid-run leaves a snapshot; rerunning the same command ends bit-identical to an uninterrupted run', async (t) => {
  const c = ready(t);
  if (!c) return;
  for (const mode of ['mpirun', 'ssh'] as const) {
    await t.test(`through ${mode}`, async () => {
      killLeftovers(c);
      const ref = await referenceRun(c, mode);
      assert.equal(ref.result.code, 0, `the uninterrupted run failed, nothing to compare with:\n${tail(ref.output)}`);
      const out = mkdtempSync(path.join(work, `out-int-${mode}-`));

      const first = launch(c, mode, out);
      await first.waitFor(/\[rank 0\] iter 1\//, RUN_LIMIT_MS);
      const sentAt = Date.now();
      process.kill(first.pid, 'SIGINT');
      const r1 = await first.done;
      const stopMs = Date.now() - sentAt;
      t.diagnostic(`${mode}: SIGINT at iteration 1; launcher exited ${r1.code ?? r1.signal} ${stopMs} ms later: ${closingLine(first.all) ?? '(no closing line)'}`);
      const problems: string[] = [];
      if (stopMs > STOP_BOUND_MS) problems.push(`the launcher took ${stopMs} ms to exit after SIGINT (bound ${STOP_BOUND_MS} ms)`);
      const snap = path.join(out, 'snapshot.pt');
      const at = existsSync(snap) ? snapshotIter(snap) : undefined;
      if (at === undefined) problems.push('no snapshot after Ctrl-C');
      else if (at >= ITERS) {
        problems.push(
          /stopping after this step/.test(first.all)
            ? `the snapshot is the finished run's (iteration ${at}): the stop request came too late to test anything`
            : `no rank got the stop request (no 'stopping after this step' line): the run went on to the end (snapshot at iteration ${at})`,
        );
      }
      if (!(await until(() => leftovers(c).length === 0, 3000))) problems.push(`processes left on the nodes after Ctrl-C: ${JSON.stringify(leftovers(c))}`);
      report(problems, r1, first);

      const second = launch(c, mode, out);
      const r2 = await second.done;
      t.diagnostic(`${mode}: rerun from iteration ${at!}: exit ${r2.code ?? r2.signal} in ${r2.ms} ms`);
      assertTrained(mode, { out, result: r2, output: second.all });
      assert.match(second.all, /\[rank 0\] resuming from snapshot /, 'the rerun did not resume from the snapshot');
      assert.equal(checksums(second.all).get(ITERS), checksums(ref.output).get(ITERS), 'the resumed run ends with other weights than the uninterrupted one');
      for (const f of ['snapshot.pt', 'ckpt.pt']) assert.equal(tensorDigest(path.join(out, f)), tensorDigest(path.join(ref.out, f)), `${f} differs from the uninterrupted run's`);
    });
  }
});

// ---- (b) ------------------------------------------------------------------------------------------------------

/**
 * The rank's processes on a node, the one mpirun/ssh started first: `nanogpt train`, and the child it re-runs itself
 * as with tcmalloc preloaded (the one that trains). Killing both is the rank dying, as mpirun or the launcher sees
 * it: the process they started ends by SIGKILL.
 */
function rankPids(ns: string): number[] {
  const ppid = (pid: number): number => {
    try {
      return Number(/^\d+ \(.*\) \S+ (\d+)/s.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1]);
    } catch {
      return -1;
    }
  };
  const train = processesIn(ns).filter((p) => /bin\/nanogpt train\b/.test(p.cmd));
  const pids = new Set(train.map((p) => p.pid));
  // parents (whose parent is not a nanogpt train process) first
  return train.sort((x, y) => Number(pids.has(ppid(x.pid))) - Number(pids.has(ppid(y.pid)))).map((p) => p.pid);
}

/** Fails once with every problem found (so one run shows all that is wrong), followed by the launcher's output. */
function report(problems: string[], r: ChildResult | null, p: NodeProcess): void {
  if (problems.length === 0) return;
  const how = r ? `launcher exited ${r.code ?? r.signal} after ${r.ms} ms` : 'launcher SIGKILLed by the test';
  assert.fail(`${problems.map((x) => `- ${x}`).join('\n')}\n${how}; output:\n${tail(p.all, 80)}`);
}

test('(b) kill -9 of the rank on node2 mid-run: the launcher exits non-zero within the bound, naming rank 2', async (t) => {
  const c = ready(t);
  if (!c) return;
  for (const mode of ['mpirun', 'ssh'] as const) {
    await t.test(`through ${mode}`, async () => {
      killLeftovers(c);
      const p = launch(c, mode, mkdtempSync(path.join(work, `out-kill-${mode}-`)));
      await p.waitFor(/\[rank 0\] iter 2\//, RUN_LIMIT_MS);
      const pids = rankPids(c.nodes[2]!.ns);
      assert.ok(pids.length > 0, `no nanogpt train process on node2: ${JSON.stringify(processesIn(c.nodes[2]!.ns))}`);
      const killedAt = Date.now();
      for (const pid of pids) process.kill(pid, 'SIGKILL');
      const r = await p.done;
      const ms = Date.now() - killedAt;
      const line = closingLine(p.all);
      t.diagnostic(`${mode}: launcher exited ${r.code ?? r.signal} ${ms} ms after kill -9 of rank 2: ${line ?? '(no closing line)'}`);
      const problems: string[] = [];
      if (r.code === 0) problems.push('the launcher exited 0 after a rank was killed');
      if (ms > STOP_BOUND_MS) problems.push(`the launcher took ${ms} ms (bound ${STOP_BOUND_MS} ms)`);
      if (!line) problems.push("the launcher printed no 'failed:' line");
      else if (culpritsNamed(line).join() !== '2') problems.push(`the failed rank is rank 2 (killed), but the launcher says: ${line}`);
      if (!(await until(() => leftovers(c).length === 0, 3000))) problems.push(`processes left on the nodes: ${JSON.stringify(leftovers(c))}`);
      report(problems, r, p);
    });
  }
});

// ---- (c) ------------------------------------------------------------------------------------------------------

test("(c) node2's link cut mid-run: every process of the run ends within the documented bound, rank 2 named", async (t) => {
  const c = ready(t);
  if (!c) return;
  const port = c.switchPort(2);
  for (const mode of ['mpirun', 'ssh'] as const) {
    await t.test(`through ${mode}`, async () => {
      killLeftovers(c);
      try {
        const p = launch(c, mode, mkdtempSync(path.join(work, `out-cut-${mode}-`)));
        await p.waitFor(/\[rank 0\] iter 2\//, RUN_LIMIT_MS);
        const cutAt = Date.now();
        ip(['-n', c.switchNs, 'link', 'set', port, 'down']);
        // Within the bound: every process of the run on node0 and node1 (launcher, mpirun, ssh, orted, ranks),
        // and the rank on the cut-off node2. What else runs on node2 (Open MPI's orted there) can learn of the end
        // only through the cut link: it is reported, not required.
        const stray = () => leftovers(c).filter((x) => x.node !== 'node2' || /bin\/nanogpt\b/.test(x.cmd));
        // Bounded: the launcher gets the bound plus 5 s to show how late it is, then the test SIGKILLs it.
        const ended = await Promise.race([p.done, new Promise<null>((r) => setTimeout(() => r(null), STOP_BOUND_MS + 5000))]);
        const ms = Date.now() - cutAt;
        const problems: string[] = [];
        const line = closingLine(p.all);
        if (!ended) {
          problems.push(`the launcher still runs ${ms} ms after the cut (bound ${STOP_BOUND_MS} ms); still running: ${JSON.stringify(stray())}`);
          p.child.kill('SIGKILL');
        } else {
          t.diagnostic(`${mode}: launcher exited ${ended.code ?? ended.signal} ${ms} ms after the cut: ${line ?? '(no closing line)'}`);
          if (ms > STOP_BOUND_MS) problems.push(`the launcher took ${ms} ms after the cut (bound ${STOP_BOUND_MS} ms)`);
          if (ended.code === 0) problems.push('the launcher exited 0 after a cut');
          if (!(await until(() => stray().length === 0, Math.max(0, STOP_BOUND_MS - (Date.now() - cutAt))))) {
            problems.push(`${Date.now() - cutAt} ms after the cut, still running: ${JSON.stringify(stray())}`);
          }
          if (!line) problems.push("the launcher printed no 'failed:' line");
          else if (culpritsNamed(line).join() !== '2') problems.push(`rank 2 lost its link, but the launcher says: ${line}`);
        }
        const node2 = leftovers(c).filter((x) => x.node === 'node2' && !/bin\/nanogpt\b/.test(x.cmd));
        if (node2.length) t.diagnostic(`${mode}: still on the cut-off node2 (not required to end): ${node2.map((x) => x.cmd.slice(0, 60)).join('; ')}`);
        report(problems, ended, p);
      } finally {
        ip(['-n', c.switchNs, 'link', 'set', port, 'up']);
        killLeftovers(c);
      }
    });
  }
});
