import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RunProgress, StatusLine } from '../../src/train/progress.js';
import { writePatternCorpus } from '../helpers/corpus.js';
import { bin, childEnv, tinyTrainArgs } from '../helpers/nanogpt-cli.js';

test('iter N/max with percent and an ETA from this process own steps (a resumed run counts from where it resumed)', () => {
  const p = new RunProgress(100, 200, 0);
  assert.equal(p.describe(100, 0), 'iter 100/200 (50%, ETA ?)');
  // 10 steps in 5 s → 0.5 s per step, 90 left → 45 s.
  assert.equal(p.describe(110, 5000), 'iter 110/200 (55%, ETA 45s)');
  assert.equal(p.describe(200, 9e4), 'iter 200/200 (100%, done)');
  assert.equal(new RunProgress(0, 1000, 0).describe(1, 1000), 'iter 1/1000 (0%, ETA 16m39s)');
});

test('the status line redraws in place and log lines print above it; disabled it only logs', () => {
  let out = '';
  const lines: string[] = [];
  const s = new StatusLine({ write: (x: string) => (out += x) }, true, 0);
  const log = s.wrap((l) => {
    lines.push(l);
    out += l + '\n';
  });
  s.show('iter 1/10');
  log('step 1: val loss 3.2');
  s.show('iter 2/10');
  s.clear();
  assert.equal(out, '\riter 1/10\x1b[K' + '\r\x1b[K' + 'step 1: val loss 3.2\n' + '\riter 1/10\x1b[K' + '\riter 2/10\x1b[K' + '\r\x1b[K');
  let plain = '';
  const off = new StatusLine({ write: (x: string) => (plain += x) }, false);
  off.show('iter 1/10');
  off.wrap((l) => (plain += l + '\n'))('a line');
  off.clear();
  assert.equal(plain, 'a line\n');
});

test('on a terminal, a single-process run redraws a status line after each step and clears it at the end', async (t) => {
  // util-linux `script` gives the run a real pseudo-terminal, as a user's shell would.
  if (spawnSync('script', ['--version']).error) {
    t.skip('util-linux script is not installed (npm test installs it)');
    return;
  }
  const data = writePatternCorpus({ seed: 9 });
  const out = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-tty-'));
  try {
    const cmd = [process.execPath, bin, ...tinyTrainArgs(data, out, ['--trainer_config.max_iters=3', '--trainer_config.eval_interval=3'])].map((a) => `'${a}'`).join(' ');
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 90_000, env: { ...process.env, ...childEnv, TERM: 'xterm' } });
    assert.equal(r.status, 0, r.stdout);
    assert.match(r.stdout, /\riter 1\/3 \(33%, ETA [^)]*\) · loss [\d.]+ · [\d.]+k? tok\/s\x1b\[K/);
    assert.match(r.stdout, /\r\x1b\[K\r?\n?.*Training completed!/s);
  } finally {
    rmSync(out, { recursive: true, force: true });
    rmSync(data, { recursive: true, force: true });
  }
});
