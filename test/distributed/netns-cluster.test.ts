// The original's 3-node setup (one training process per machine, rank 0's machine hosting the rendezvous) on one
// machine: three network namespaces, each a "host" with its own IP address and its own port space, joined by veth
// pairs to a bridge. Each rank runs in its own host namespace and finds the others only by address, as on a
// real cluster. Needs root; skipped (with the reason) where network namespaces cannot be created.
import { after, test, type TestContext } from 'node:test';
import { spawn } from 'node:child_process';
import * as assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writePatternCorpus } from '../helpers/corpus.js';
import { bin, tinyTrainArgs } from '../helpers/nanogpt-cli.js';
import { createCluster, destroyCluster, interfaceBytes, ip, netnsPrefix, netnsUnavailable, runNodeIn, waitConnected, type NetnsCluster } from '../helpers/netns.js';

const prefix = netnsPrefix();
const ITERS = 4;

// Also on the way out of a failed or interrupted test body: namespaces outlive the process otherwise.
after(() => destroyCluster(prefix));

/** The tests' tiny fp32 run: small enough to finish in seconds, big enough that its gradient traffic dwarfs the chatter. */
function trainCommand(dataDir: string, outDir: string): string[] {
  const settings = {
    'trainer_config.max_iters': ITERS,
    'trainer_config.eval_interval': ITERS,
    'trainer_config.eval_iters': 2,
    'trainer_config.lr_decay_iters': ITERS,
    'distributed.check_interval': 2,
    'distributed.timeout_s': 20,
  };
  return [bin, ...tinyTrainArgs(dataDir, outDir, [], settings)];
}

/**
 * Runs `body` on a fresh cluster of `hosts` connected namespaces, with a pattern corpus (`seed`) and a scratch
 * folder for outputs; skips with the reason where namespaces cannot be made, and removes all of it afterwards.
 */
async function onCluster(t: TestContext, hosts: number, seed: number, body: (cluster: NetnsCluster, data: string, scratch: string) => Promise<void>): Promise<void> {
  const why = netnsUnavailable(prefix);
  if (why) {
    t.skip(why);
    return;
  }
  const data = writePatternCorpus({ seed });
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-netns-'));
  try {
    const cluster = createCluster(hosts, prefix);
    await waitConnected(cluster);
    await body(cluster, data, scratch);
  } finally {
    destroyCluster(prefix);
    rmSync(scratch, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  }
}

test("a 3-host 'cluster' made of network namespaces joined by veth, each host with its own IP address, runs one 3-rank job across them (the original's 3-node setup on one machine)", (t) =>
  onCluster(t, 3, 33, async (cluster, data, scratch) => {
    const [h0, h1, h2] = cluster.hosts as [typeof cluster.hosts[0], typeof cluster.hosts[0], typeof cluster.hosts[0]];

    // The master address exists only in h0: in h1 and h2 it is not a local address, so their rendezvous and Gloo
    // connections cannot short-cut through loopback and must cross the veth links.
    for (const h of [h1, h2]) {
      const local = ip(['-n', h.ns, '-4', '-o', 'addr', 'show']);
      assert.ok(!local.includes(`${h0.ip}/`), `${h.ns} must not own ${h0.ip}:\n${local}`);
      assert.ok(local.includes(`${h.ip}/`), local);
    }

    const before = cluster.hosts.map((h) => interfaceBytes(h.ns, h.ifname));
    const outs: string[] = [];
    // One output directory per host, as separate machines would have; the data sits at the same path on all of
    // them (what the docs require of a multi-machine run).
    const results = await Promise.all(
      cluster.hosts.map((h, rank) => {
        const out = mkdtempSync(path.join(scratch, `h${rank}-`));
        outs.push(out);
        return runNodeIn(
          h.ns,
          trainCommand(data, out),
          // The port is arbitrary: every namespace has its own port space, so it cannot clash with anything.
          { RANK: String(rank), WORLD_SIZE: '3', LOCAL_RANK: '0', LOCAL_WORLD_SIZE: '1', MASTER_ADDR: h0.ip, MASTER_PORT: '29500' },
          90_000,
        );
      }),
    );
    const afterBytes = cluster.hosts.map((h) => interfaceBytes(h.ns, h.ifname));

    results.forEach((r, k) => assert.equal(r.code, 0, `rank ${k} (${cluster.hosts[k]!.ns}, ${cluster.hosts[k]!.ip}) exited ${r.code ?? r.signal}:\n${r.stderr}`));
    const sums = results.map((r, k) => /parameter checksum at iteration \d+: (\S+)/.exec(r.stderr)?.[1] ?? `(rank ${k} logged no checksum)`);
    assert.ok(sums.every((s) => s === sums[0]), `checksums differ: ${sums.join(' / ')}`);
    assert.match(results[0]!.stderr, /world 3 \(1 per host\)/);
    // MASTER_ADDR is h0's own address: libtorch 2.4+ binds the store there; 1.13 can only say that it cannot.
    const escaped = h0.ip.replaceAll('.', '\\.');
    assert.match(results[0]!.stderr, new RegExp(`the rendezvous store (listens on ${escaped} only|listens on every address \\(libtorch 1\\.13 cannot bind it)`));

    // Rank 0 alone writes checkpoints: only h0's output directory has one.
    assert.ok(existsSync(path.join(outs[0]!, 'ckpt.pt')), 'rank 0 wrote no checkpoint');
    assert.ok(!existsSync(path.join(outs[1]!, 'ckpt.pt')) && !existsSync(path.join(outs[2]!, 'ckpt.pt')), 'only rank 0 writes checkpoints');

    // Proof that the gradients travelled over the veth links. Each optimizer step all-reduces every fp32
    // gradient; whatever algorithm Gloo picks, each rank must send each of its gradient values out at least once
    // and receive at least one value per element of the averaged result. So over ITERS steps every host's eth0
    // carried at least ITERS × 4 bytes × parameters in each direction (headers and rendezvous only add to it).
    const start = readFileSync(path.join(outs[0]!, 'metrics.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as { type: string; params?: number })
      .find((m) => m.type === 'start');
    const params = start?.params;
    assert.ok(typeof params === 'number' && params > 0, 'the start record names the parameter count');
    const minBytes = ITERS * 4 * params;
    cluster.hosts.forEach((h, k) => {
      const rx = afterBytes[k]!.rx - before[k]!.rx;
      const tx = afterBytes[k]!.tx - before[k]!.tx;
      const where = `${h.ns} ${h.ifname}: received ${rx} B, sent ${tx} B; gradient traffic alone is ≥ ${minBytes} B each way`;
      assert.ok(rx >= minBytes && tx >= minBytes, where);
      t.diagnostic(where);
    });
  }),
);

// Run inside a host: one TCP connection attempt per `host:port` argument, retried until the deadline while refused
// when `wait` is set (the listener may not exist yet); prints a JSON map of address → 'connected' | error code.
const CONNECT = `
const net = require('node:net');
const [deadline, wait, ...targets] = process.argv.slice(1);
const once = (t) => new Promise((ok) => {
  const [host, port] = [t.slice(0, t.lastIndexOf(':')), Number(t.slice(t.lastIndexOf(':') + 1))];
  const s = net.connect({ host, port, timeout: 1000 });
  const done = (v) => { s.destroy(); ok(v); };
  s.on('connect', () => done('connected'));
  s.on('error', (e) => done(e.code));
  s.on('timeout', () => done('timeout'));
});
(async () => {
  const out = {};
  for (const t of targets) {
    let r = await once(t);
    while (wait === 'wait' && r !== 'connected' && Date.now() < Number(deadline)) {
      await new Promise((ok) => setTimeout(ok, 100));
      r = await once(t);
    }
    out[t] = r;
  }
  process.stdout.write(JSON.stringify(out));
})();
`;

test("a single-machine run's rendezvous store accepts loopback connections only: another host is refused", (t) =>
  onCluster(t, 2, 34, async (cluster, data, out) => {
    const [h0, h1] = cluster.hosts as [typeof cluster.hosts[0], typeof cluster.hosts[0]];
    const port = 29500;
    const env = (rank: number) => ({ RANK: String(rank), WORLD_SIZE: '2', LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) });
    // Rank 0 alone first: its store is up and waiting for rank 1, which starts after the probes.
    const rank0 = runNodeIn(h0.ns, trainCommand(data, out), env(0), 90_000);
    const local = await runNodeIn(h0.ns, ['-e', CONNECT, String(Date.now() + 30_000), 'wait', `127.0.0.1:${port}`], {}, 40_000);
    assert.deepEqual(JSON.parse(local.stdout || '{}'), { [`127.0.0.1:${port}`]: 'connected' }, `rank 0's store never came up on loopback: ${local.stdout} ${local.stderr}`);
    // The same port seen from another machine: its kernel answers with a reset (nothing listens there for it).
    const remote = await runNodeIn(h1.ns, ['-e', CONNECT, String(Date.now() + 5000), 'once', `${h0.ip}:${port}`], {}, 20_000);
    assert.deepEqual(JSON.parse(remote.stdout || '{}'), { [`${h0.ip}:${port}`]: 'ECONNREFUSED' }, `another host reached rank 0's store: ${remote.stdout} ${remote.stderr}`);
    const rank1 = await runNodeIn(h0.ns, trainCommand(data, mkdtempSync(path.join(out, 'rank1-'))), env(1), 90_000);
    const r0 = await rank0;
    assert.equal(r0.code, 0, r0.stderr);
    assert.equal(rank1.code, 0, rank1.stderr);
    assert.match(r0.stderr, /the rendezvous store (accepts loopback connections only|listens on 127\.0\.0\.1 only)/, r0.stderr);
  }),
);

test('ranks that advertise addresses their peers cannot reach (both forced onto lo) fail within the rendezvous bound, naming them', (t) =>
  onCluster(t, 2, 35, async (cluster, data, out) => {
    const [h0, h1] = cluster.hosts as [typeof cluster.hosts[0], typeof cluster.hosts[0]];
    const T = 4;
    const env = (rank: number) => ({ RANK: String(rank), WORLD_SIZE: '2', LOCAL_RANK: '0', LOCAL_WORLD_SIZE: '1', MASTER_ADDR: h0.ip, MASTER_PORT: '29500' });
    const args = (extra: string[]) => [...trainCommand(data, mkdtempSync(path.join(out, 'r-'))), `--distributed.timeout_s=${T}`, ...extra];
    // Both advertise 127.0.0.1, so whichever of the pair Gloo makes dial, it dials its own host and is refused (with
    // one rank on lo the run may still work: Gloo lets the side that sorts first dial, and that one can reach out).
    const [r0, r1] = await Promise.all([runNodeIn(h0.ns, args(['--distributed.iface=lo']), env(0), 60_000), runNodeIn(h1.ns, args(['--distributed.iface=lo']), env(1), 60_000)]);
    // The store is reached; Gloo's connections are not. The rank that dials is refused at once; the one waiting
    // for the connection gives up after T − T/4 + 1 s (without that bound: 15.8 s, Gloo's own connect timeout).
    // Bound: start-up (libtorch load, up to ~5 s on a busy 2-core machine), that wait, and the 0.1 s exit grace of a
    // process that gave up on a native call (1 s here).
    const bound = (5 + T - T / 4 + 1 + 1) * 1000;
    for (const [rank, r] of [[0, r0], [1, r1]] as const) {
      t.diagnostic(`rank ${rank}: exit ${r.code ?? r.signal} after ${(r.ms / 1000).toFixed(1)} s: ${r.stderr.trim().split('\n').filter((l) => /error/.test(l)).join(' | ')}`);
      assert.equal(r.code, 2, `rank ${rank}: ${r.stderr}`);
      assert.ok(r.ms <= bound, `rank ${rank} took ${r.ms} ms (bound ${bound} ms):\n${r.stderr}`);
      assert.doesNotMatch(r.stderr, /internal error|\n\s+at /);
    }
    assert.match(r0.stderr, /could not connect to the other ranks after [\d.]+ s; this rank advertised 127\.0\.0\.1 \(interface lo/, r0.stderr);
    assert.match(r1.stderr, /could not connect to the other ranks after [\d.]+ s; this rank advertised 127\.0\.0\.1 \(interface lo/, r1.stderr);
  }),
);

test("a host whose link is cut mid-run: its rank and the others all stop on their own, each naming the other side", (t) =>
  onCluster(t, 3, 36, async (cluster, data, out) => {
    const T = 5;
    const settings = { 'trainer_config.max_iters': 400, 'trainer_config.eval_interval': 400, 'trainer_config.lr_decay_iters': 400, 'distributed.check_interval': 20, 'distributed.timeout_s': T };
    let cutAt = 0;
    const ranks = cluster.hosts.map((h, rank) => {
      const env = { ...process.env, RANK: String(rank), WORLD_SIZE: '3', LOCAL_RANK: '0', LOCAL_WORLD_SIZE: '1', MASTER_ADDR: cluster.hosts[0]!.ip, MASTER_PORT: '29500', NANOGPT_ALLOCATOR: 'system' };
      const child = spawn('ip', ['netns', 'exec', h.ns, process.execPath, bin, ...tinyTrainArgs(data, mkdtempSync(path.join(out, 'r-')), [], settings)], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
        // Mid-run: rank 0 has logged a few steps. Link down inside h2 (its eth0): no FIN or RST reaches anyone.
        if (rank === 0 && cutAt === 0 && /iter 3\//.test(stderr)) {
          cutAt = Date.now();
          ip(['-n', cluster.hosts[2]!.ns, 'link', 'set', 'eth0', 'down']);
        }
      });
      const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      return new Promise<{ code: number | null; after: number; stderr: string }>((resolve) =>
        child.on('close', (code) => {
          clearTimeout(killer);
          resolve({ code, after: (Date.now() - cutAt) / 1000, stderr });
        }),
      );
    });
    const ended = await Promise.all(ranks);
    assert.ok(cutAt > 0, `the run never reached iteration 3:\n${ended[0]!.stderr}`);
    // The documented T + 1 s (the cut-off rank: its collective's wait, its diagnosis cut off at the end of its
    // window, and 0.1 s after its message, as libtorch 2.x would wait on its store call without end), + 1.5 s for a
    // busy machine.
    const bound = T + 2.5;
    ended.forEach((r, rank) => {
      t.diagnostic(`rank ${rank}: exit ${r.code} ${r.after.toFixed(1)} s after the cut`);
      assert.equal(r.code, 3, `rank ${rank}:\n${r.stderr}`);
      assert.ok(r.after <= bound, `rank ${rank} ended ${r.after.toFixed(1)} s after the cut (bound ${bound} s):\n${r.stderr}`);
      assert.match(r.stderr, rank === 2 ? /rank 2: \S+ #\d+ failed: ranks? [01](, 1)? did not respond/ : new RegExp(`rank ${rank}: \\S+ #\\d+ failed: rank 2 did not respond`), r.stderr);
    });
  }),
);
