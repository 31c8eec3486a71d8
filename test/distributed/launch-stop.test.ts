// Stopping a real multi-rank training run through `nanogpt launch`: a stop signal any rank gets (Ctrl-C on the
// launcher, SIGHUP to one remote-style rank, Ctrl-C through mpirun) stops every rank at the same step, rank 0
// writes a snapshot, and the next run resumes from it. One output directory, runs chained, each resuming the last.
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { bin, childEnv } from '../helpers/nanogpt-cli.js';
import { writePatternCorpus } from '../helpers/corpus.js';
import { readProcTable } from '../../src/distributed/proc-tree.js';

const hasMpirun = (process.env.PATH ?? '').split(':').some((d) => d && existsSync(path.join(d, 'mpirun')));
const data = writePatternCorpus({ seed: 18 });
const out = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-launch-stop-'));
after(() => {
  rmSync(out, { recursive: true, force: true });
  rmSync(data, { recursive: true, force: true });
});

// Long enough never to finish on its own; evaluation only at step 0, so a stop is the only other snapshot.
const train = [
  'train', `--data_dir=${data}`, `--out_dir=${out}`, '--block_size=16', '--model.preset=gpt2-tiny', '--model.n_embd=32', '--model.vocab_size=64',
  '--trainer_config.batch_size=2', '--trainer_config.mixed_precision=fp32', '--trainer_config.max_iters=100000', '--trainer_config.eval_interval=100000',
  '--trainer_config.eval_iters=1', '--trainer_config.warmup_iters=1', '--trainer_config.lr_decay_iters=100000', '--threads=1', '--distributed.timeout_s=20',
];

interface Run {
  pid: number;
  out: () => string;
  waitFor: (re: RegExp, ms?: number) => Promise<RegExpMatchArray>;
  ended: Promise<number | null>;
}

function launch(args: string[]): Run {
  const child = spawn(process.execPath, [bin, 'launch', ...args, '--', ...train], { env: { ...process.env, ...childEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr.on('data', (d: Buffer) => (text += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
  const ended = new Promise<number | null>((resolve) => child.on('close', (code) => (clearTimeout(timer), resolve(code))));
  const waitFor = async (re: RegExp, ms = 60_000): Promise<RegExpMatchArray> => {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = re.exec(text);
      if (m) return m;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no ${re} within ${ms} ms:\n${text}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { pid: child.pid!, out: () => text, waitFor, ended };
}

/** The rank process with RANK=`rank` started by launcher `pid` (a direct child: no allocator re-exec in tests). */
function rankPid(launcher: number, rank: number): number {
  for (const e of readProcTable()) {
    if (e.ppid !== launcher) continue;
    try {
      if (`\0${readFileSync(`/proc/${e.pid}/environ`, 'latin1')}`.includes(`\0RANK=${rank}\0`)) return e.pid;
    } catch {
      /* gone */
    }
  }
  throw new Error(`no rank ${rank} under launcher ${launcher}`);
}

/** Lets the run take a few steps past `from`, sends the stop, returns the iteration every rank stopped at. */
async function stopAfterSteps(run: Run, from: number, stop: () => void): Promise<number> {
  await run.waitFor(new RegExp(`\\[rank 0\\] iter ${from + 3}/\\d+ `));
  stop();
  const code = await run.ended;
  assert.equal(code, 130, run.out()); // interrupted, as `nanogpt train` says after a snapshot
  assert.match(run.out(), /nanogpt launch: stopped.*: .*exited with code 130 \(interrupted\)/);
  const at = Number(/\[rank 0\] interrupted at iteration (\d+): writing a snapshot/.exec(run.out())?.[1]);
  assert.ok(at > from, run.out());
  assert.match(run.out(), /\[rank 0\] snapshot saved to /);
  // Every rank stopped at that step (none went on alone): rank 1 logged no step beyond it.
  assert.doesNotMatch(run.out(), /\[rank 1\] .*(internal error|Error:)/);
  return at;
}

test('Ctrl-C on the launcher, SIGHUP to rank 1, Ctrl-C through mpirun: each stop snapshots, each rerun resumes there', async () => {
  // 1. Ctrl-C on `launch`: both ranks are asked; they stop at the same step and rank 0 snapshots.
  const first = launch(['--nproc_per_node', '2', '--threads', '1']);
  const at1 = await stopAfterSteps(first, 0, () => process.kill(first.pid, 'SIGINT'));
  assert.match(first.out(), /world 2 \(2 per host\)/);

  // 2. The same command resumes there; SIGHUP (what a rank started through ssh -tt gets when its connection ends)
  //    to rank 1 alone: the ranks agree on it at the end of the step, and rank 0 snapshots.
  const second = launch(['--nproc_per_node', '2', '--threads', '1']);
  await second.waitFor(new RegExp(`\\[rank 0\\] resuming from snapshot \\S+ at iteration ${at1}\\b`));
  const at2 = await stopAfterSteps(second, at1, () => process.kill(rankPid(second.pid, 1), 'SIGHUP'));
  assert.match(second.out(), /\[rank 1\] SIGHUP: stopping after this step/);
  assert.doesNotMatch(second.out(), /\[rank 0\] SIG/); // rank 0 got no signal: it stopped by agreement

  // 3. Through a real mpirun on this machine: the launcher's Ctrl-C reaches the ranks as SIGUSR2 (mpirun forwards
  //    it and kills nobody), and the run stops and snapshots the same way.
  let last = at2;
  if (hasMpirun) {
    const hosts = path.join(out, 'hosts');
    writeFileSync(hosts, 'localhost slots=2\n');
    const third = launch(['--hosts', hosts, '--threads', '1']);
    await third.waitFor(new RegExp(`\\[rank 0\\] resuming from snapshot \\S+ at iteration ${at2}\\b`));
    last = await stopAfterSteps(third, at2, () => process.kill(third.pid, 'SIGINT'));
    assert.match(third.out(), /SIGINT: forwarding to mpirun as SIGUSR2/);
  }

  // 4. Resuming at another world size says that the global batch changed with it.
  const fourth = launch(['--nproc_per_node', '1', '--threads', '1']);
  await fourth.waitFor(new RegExp(`\\[rank 0\\] resuming from snapshot \\S+ at iteration ${last}\\b`));
  await stopAfterSteps(fourth, last, () => process.kill(fourth.pid, 'SIGINT'));
  assert.match(fourth.out(), /snapshot was written at world size 2; now 1: data streams re-seeded, and the global batch is now 4 sequences \(64 tokens\) per step, was 8 \(128 tokens\)/);
});
