// The tcmalloc preload: the pure rules (which LD_PRELOAD, when to skip) and the real re-exec of `nanogpt train`,
// which must end up running on tcmalloc when it is installed (scripts/setup.sh installs it) and on glibc when the
// user opts out.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writePatternCorpus } from '../helpers/corpus.js';
import { tcmallocPath, tcmallocPreload, withPreload } from '../../src/runtime/allocator.js';
import { tinyTrainArgs } from '../helpers/nanogpt-cli.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'nanogpt');

test('withPreload puts the library first, keeps the user’s own preloads and never repeats one', () => {
  assert.equal(withPreload(undefined, '/l/tc.so'), '/l/tc.so');
  assert.equal(withPreload('', '/l/tc.so'), '/l/tc.so');
  assert.equal(withPreload('/a.so /b.so', '/l/tc.so'), '/l/tc.so:/a.so:/b.so');
  assert.equal(withPreload('/a.so:/l/tc.so', '/l/tc.so'), '/l/tc.so:/a.so');
});

test('tcmallocPreload skips when the user opts out, when one is preloaded already, or when none is installed', () => {
  assert.equal(tcmallocPreload({}, '/l/libtcmalloc_minimal.so.4'), '/l/libtcmalloc_minimal.so.4');
  assert.equal(tcmallocPreload({ NANOGPT_ALLOCATOR: 'system' }, '/l/libtcmalloc_minimal.so.4'), null);
  assert.equal(tcmallocPreload({ LD_PRELOAD: '/opt/libtcmalloc.so.4' }, '/l/libtcmalloc_minimal.so.4'), null);
  assert.equal(tcmallocPreload({}, null), null);
});

test('tcmallocPath finds the minimal build before the full one and null in empty directories', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-alloc-'));
  try {
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    mkdirSync(a);
    mkdirSync(b);
    assert.equal(tcmallocPath([a, b]), null);
    writeFileSync(path.join(a, 'libtcmalloc.so.4'), '');
    assert.equal(tcmallocPath([a, b]), path.join(a, 'libtcmalloc.so.4'));
    writeFileSync(path.join(b, 'libtcmalloc_minimal.so.4'), '');
    assert.equal(tcmallocPath([a, b]), path.join(b, 'libtcmalloc_minimal.so.4'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code) => resolve({ code, out }));
  });
}

test('nanogpt train runs on tcmalloc when it is installed, and on glibc with NANOGPT_ALLOCATOR=system', async (t) => {
  if (tcmallocPath() === null) {
    t.skip('tcmalloc is not installed (scripts/setup.sh installs libtcmalloc-minimal4)');
    return;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-alloc-train-'));
  const data = writePatternCorpus({ seed: 5 });
  try {
    const args = (out: string): string[] => {
      const opts: Record<string, string | number> = {
        data_dir: data, out_dir: path.join(dir, out), block_size: 16, 'model.preset': 'gpt2-tiny', 'model.n_embd': 32,
        'model.vocab_size': 64, 'trainer_config.batch_size': 2, 'trainer_config.mixed_precision': 'fp32',
        'trainer_config.max_iters': 2, 'trainer_config.eval_interval': 2, 'trainer_config.eval_iters': 1,
        'trainer_config.warmup_iters': 1, 'trainer_config.lr_decay_iters': 2, threads: 1,
      };
      return ['train', ...Object.entries(opts).map(([k, v]) => `--${k}=${v}`)];
    };
    const env = { ...process.env };
    delete env.LD_PRELOAD;
    delete env.NANOGPT_REEXEC;
    delete env.NANOGPT_ALLOCATOR;
    const fast = await run(args('fast'), env);
    assert.equal(fast.code, 0, fast.out);
    assert.match(fast.out, /· tcmalloc/);
    const plain = await run(args('plain'), { ...env, NANOGPT_ALLOCATOR: 'system' });
    assert.equal(plain.code, 0, plain.out);
    assert.match(plain.out, /· glibc malloc/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  }
});

test('a tcmalloc re-exec gets each signal once: a process-group SIGINT and mpirun-style SIGUSR2 both stop after the step with a snapshot', async (t) => {
  if (tcmallocPath() === null) {
    t.skip('tcmalloc is not installed (scripts/setup.sh installs libtcmalloc-minimal4)');
    return;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-alloc-signal-'));
  const data = writePatternCorpus({ seed: 6 });
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: '1' };
    delete env.LD_PRELOAD;
    delete env.NANOGPT_REEXEC;
    delete env.NANOGPT_ALLOCATOR;
    for (const [how, send] of [
      // What `nanogpt launch` does to a local rank (it leads its own group) and a terminal's Ctrl-C does to a job.
      ['group SIGINT', (pid: number) => process.kill(-pid, 'SIGINT')],
      // What mpirun's orted does with the launcher's stop request: SIGUSR2 to the rank's own pid.
      ['SIGUSR2', (pid: number) => process.kill(pid, 'SIGUSR2')],
    ] as const) {
      const out = path.join(dir, how.replace(/\W/g, ''));
      const child = spawn(process.execPath, [bin, ...tinyTrainArgs(data, out, ['--trainer_config.max_iters=100000', '--trainer_config.eval_interval=100000'])], { stdio: ['ignore', 'pipe', 'pipe'], env, detached: true });
      let log = '';
      child.stderr.on('data', (d: Buffer) => (log += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      const deadline = Date.now() + 60_000;
      while (!/iter 3\//.test(log) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.match(log, /· tcmalloc/, 'the run re-executed itself with tcmalloc');
      send(child.pid!);
      const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('timeout'), 60_000))]);
      if (code === 'timeout') process.kill(-child.pid!, 'SIGKILL');
      assert.equal(code, 130, `${how}: exit ${code}\n${log}`);
      assert.match(log, /stopping after this step/, how);
      assert.equal(log.match(/stopping after this step/g)?.length, 1, `${how}: the signal arrived more than once`);
      assert.match(log, /interrupted at iteration \d+: writing a snapshot/, `${how}: no snapshot\n${log}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  }
});
