// `nanogpt demo` end to end, shortened: the real prepare of the embedded corpus, a real 2-rank launch with Gloo,
// sampling from the checkpoint it wrote, and the run report. Only the step count is smaller than the default.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

// Compiled to dist/test/cli/: the repository root is three levels up.
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'nanogpt');

function runDemo(args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, 'demo', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('nanogpt demo runs prepare, 2-rank training, sampling and the report, and lowers val loss', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-demo-'));
  try {
    const r = await runDemo(['--out_dir', dir, '--max_iters', '24']);
    assert.equal(r.code, 0, r.stderr);
    for (const stage of ['1/4 prepare', '2/4 train', '3/4 sample', '4/4 report']) assert.match(r.stderr, new RegExp(stage));
    // each stage prints the exact command it runs
    assert.match(r.stderr, /\$ nanogpt launch --nproc_per_node 2 -- train /);
    for (const f of ['data/train.bin', 'data/val.bin', 'run/ckpt.pt', 'run/snapshot.pt', 'run/report.html', 'run/loss.png']) {
      assert.ok(existsSync(path.join(dir, f)), `${f} missing`);
    }
    const m = /val loss ([\d.]+) \(iter 0\) → ([\d.]+) \(iter 24\)/.exec(r.stderr);
    assert.ok(m, `no val loss summary in:\n${r.stderr.slice(-2000)}`);
    assert.ok(Number(m[2]) < Number(m[1]) - 0.5, `val loss did not drop: ${m[1]} → ${m[2]}`);
    // two samples of generated text reached stdout
    assert.ok(r.stdout.trim().length > 40, r.stdout);
    const evals = readFileSync(path.join(dir, 'run', 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.includes('"eval"'));
    assert.ok(evals.length >= 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('nanogpt demo rejects a bad flag with exit code 2 and names it', async () => {
  const r = await runDemo(['--nproc', 'zero']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /nproc/);
  assert.doesNotMatch(r.stderr, /at .*\.js:\d+/);
});
