// Real multi-process data-parallel training through the CLI, ranks given by torchrun-style variables.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../helpers/ports.js';
import { runNode, type ChildResult } from '../helpers/children.js';
import { writePatternCorpus } from '../helpers/corpus.js';
import { PEER_LOST_EXIT } from '../../src/util/errors.js';

const bin = fileURLToPath(new URL('../../../bin/nanogpt', import.meta.url));

function trainArgs(data: string, out: string, iters: number): string[] {
  return [
    bin, 'train', `--data_dir=${data}`, `--out_dir=${out}`, '--block_size=16', '--model.preset=gpt2-tiny', '--model.n_embd=32', '--model.vocab_size=64',
    '--trainer_config.batch_size=2', '--trainer_config.gradient_accumulation_steps=2', '--trainer_config.mixed_precision=fp32',
    `--trainer_config.max_iters=${iters}`, '--trainer_config.eval_interval=3', `--trainer_config.lr_decay_iters=${Math.max(iters, 3)}`, '--trainer_config.warmup_iters=1',
    '--threads=1', '--distributed.check_interval=2', '--distributed.timeout_s=20', '--model.dropout=0.1',
  ];
}

async function world(n: number, data: string, out: string, iters: number, extraEnv: Record<string, string> = {}): Promise<ChildResult[]> {
  const port = await freePort();
  return Promise.all(
    Array.from({ length: n }, (_, r) =>
      runNode(trainArgs(data, out, iters), { RANK: String(r), LOCAL_RANK: String(r), WORLD_SIZE: String(n), LOCAL_WORLD_SIZE: String(n), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), ...extraEnv }, 180_000),
    ),
  );
}

const checksum = (r: ChildResult): string => /parameter checksum at iteration \d+: (\S+)/.exec(r.stderr)?.[1] ?? `none in:\n${r.stderr}`;

for (const n of [2, 3]) {
  test(`${n}-rank training finishes with identical weights on every rank`, async () => {
    const data = writePatternCorpus({ seed: n });
    const out = mkdtempSync(path.join(os.tmpdir(), `nanogpt-ddp${n}-`));
    try {
      const results = await world(n, data, out, 6);
      results.forEach((r, i) => assert.equal(r.code, 0, `rank ${i}:\n${r.stderr}`));
      const sums = results.map(checksum);
      assert.ok(sums.every((s) => s === sums[0]), sums.join(' vs '));
      assert.match(results[0]!.stderr, new RegExp(`world ${n} \\(${n} per host\\).*global batch 2 × 2 × ${n} = ${4 * n} sequences`));
      assert.ok(existsSync(path.join(out, 'ckpt.pt')) && existsSync(path.join(out, 'snapshot.pt')));
      // only rank 0 logs training progress and draws the run report
      assert.doesNotMatch(results[1]!.stderr, /iter \d+\/\d+ \(.*\): loss/);
      assert.match(results[0]!.stderr, /report: .*report\.html/);
      assert.doesNotMatch(results[1]!.stderr, /report:/);
      assert.match(readFileSync(path.join(out, 'report.html'), 'utf8'), /<svg|<img|loss/i);
      assert.deepEqual([...readFileSync(path.join(out, 'loss.png')).subarray(1, 4)], [0x50, 0x4e, 0x47]);
    } finally {
      rmSync(out, { recursive: true, force: true });
      rmSync(data, { recursive: true, force: true });
    }
  });
}

test('a resumed 2-rank run continues from the snapshot written by a 2-rank run', async () => {
  const data = writePatternCorpus({ seed: 9 });
  const out = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-ddp-resume-'));
  try {
    const first = await world(2, data, out, 3);
    first.forEach((r, i) => assert.equal(r.code, 0, `rank ${i}:\n${r.stderr}`));
    const second = await world(2, data, out, 6);
    second.forEach((r, i) => assert.equal(r.code, 0, `rank ${i}:\n${r.stderr}`));
    assert.match(second[0]!.stderr, /resuming from snapshot/);
    assert.doesNotMatch(second[0]!.stderr, /iter [123]: loss/);
    assert.match(second[0]!.stderr, /iter 6\/6 \(100%, done\): loss/);
    assert.equal(checksum(second[0]!), checksum(second[1]!));
  } finally {
    rmSync(out, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  }
});

test('killing one rank makes the others exit with a message naming it, and the rerun resumes', async () => {
  const { spawn } = await import('node:child_process');
  const data = writePatternCorpus({ seed: 13 });
  const out = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-ddp-kill-'));
  try {
    const port = await freePort();
    const timeoutS = 10;
    const args = trainArgs(data, out, 400).map((a) => (a.startsWith('--distributed.timeout_s') ? `--distributed.timeout_s=${timeoutS}` : a));
    const procs = [0, 1, 2].map((r) =>
      spawn(process.execPath, args, {
        // NANOGPT_ALLOCATOR=system: no tcmalloc re-exec, so the pid killed below is the training process itself
        // (a sudden death), not a wrapper whose child would exit in an orderly way.
        env: { ...process.env, NANOGPT_ALLOCATOR: 'system', RANK: String(r), LOCAL_RANK: String(r), WORLD_SIZE: '3', LOCAL_WORLD_SIZE: '3', MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) },
        stdio: ['ignore', 'ignore', 'pipe'],
      }),
    );
    const logs = ['', '', ''];
    const exits = procs.map((p, r) => new Promise<{ code: number | null; at: number }>((resolve) => {
      p.stderr!.on('data', (d: Buffer) => (logs[r] += d.toString()));
      p.on('close', (code) => resolve({ code, at: Date.now() }));
    }));
    // Wait for the first snapshot, then kill rank 2 without warning.
    const deadline = Date.now() + 120_000;
    while (!/snapshot saved/.test(logs[0]!) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.match(logs[0]!, /snapshot saved/, logs[0]);
    const killedAt = Date.now();
    procs[2]!.kill('SIGKILL');
    const [e0, e1] = await Promise.all([exits[0]!, exits[1]!]);
    for (const [r, e] of [[0, e0], [1, e1]] as const) {
      // A distinct exit code for "a peer is gone", so `nanogpt launch` names the killed rank, not these.
      assert.equal(e.code, PEER_LOST_EXIT, `rank ${r} should exit ${PEER_LOST_EXIT}:\n${logs[r]}`);
      assert.match(logs[r]!, /rank 2 did not respond/, logs.map((l, i) => `--- rank ${i} ---\n${l.split('\n').slice(-8).join('\n')}`).join('\n'));
      assert.doesNotMatch(logs[r]!, /^\s+at /m, 'no stack trace');
      assert.ok(e.at - killedAt < (timeoutS + 20) * 1000, `rank ${r} took ${e.at - killedAt} ms to give up`);
    }
    // Rerunning the same job resumes from the snapshot and finishes.
    const rerun = await world(3, data, out, 6);
    rerun.forEach((r, i) => assert.equal(r.code, 0, `rerun rank ${i}:\n${r.stderr}`));
    assert.match(rerun[0]!.stderr, /resuming from snapshot/);
  } finally {
    rmSync(out, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  }
});
