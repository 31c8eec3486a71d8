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

test('nanogpt demo runs prepare (baselines), sampling before, 2-rank training, sampling after and the report, and lowers val loss', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-demo-'));
  try {
    const r = await runDemo(['--out_dir', dir, '--max_iters', '24']);
    assert.equal(r.code, 0, r.stderr);
    for (const stage of ['1/5 prepare', '2/5 sample before training', '3/5 train', '4/5 sample after training', '5/5 report']) assert.match(r.stderr, new RegExp(stage));
    // A validation split drawn across the corpus (not one speech), the baselines, and the verdict against them.
    const split = /val\.bin \([\d,]+ tokens, (\d+) documents\)/.exec(r.stderr);
    assert.ok(split && Number(split[1]) >= 5, `validation documents: ${split?.[1]}`);
    const base = /uniform (\d+\.\d+)[\s\S]*unigram (\d+\.\d+)/.exec(r.stderr);
    assert.ok(base && Math.abs(Number(base[1]) - Math.log(50257)) < 0.01 && Number(base[2]) < Number(base[1]), `baselines: ${base?.[0]}`);
    const baselines = JSON.parse(readFileSync(path.join(dir, 'run', 'baselines.json'), 'utf8')) as { unigram: number };
    assert.equal(baselines.unigram.toFixed(2), base![2]);
    assert.match(r.stderr, /The model (beats the unigram baseline by [\d.]+ nats|has not beaten the unigram baseline yet)/);
    assert.match(r.stderr, /nanogpt train --init_from=gpt2 /, 'the closing lines name the next step to real text');
    // The prompt has no trailing space (GPT-2 BPE puts the space on the next word).
    assert.match(r.stderr, /--prompt "The State of the Union" /);
    // each stage prints the exact command it runs
    assert.match(r.stderr, /\$ nanogpt launch --nproc_per_node 2 -- train /);
    for (const f of ['data/train.bin', 'data/val.bin', 'run/ckpt.pt', 'run/snapshot.pt', 'run/report.html', 'run/loss.png']) {
      assert.ok(existsSync(path.join(dir, f)), `${f} missing`);
    }
    const m = /val loss ([\d.]+) \(iter 0\) → ([\d.]+) \(iter 24\)/.exec(r.stderr);
    assert.ok(m, `no val loss summary in:\n${r.stderr.slice(-2000)}`);
    assert.ok(Number(m[2]) < Number(m[1]) - 0.5, `val loss did not drop: ${m[1]} → ${m[2]}`);
    // two samples before and two after training reached stdout
    assert.equal(r.stdout.match(/^Input Prompt: The State of the Union$/gm)?.length, 2, r.stdout);
    assert.ok(r.stdout.trim().length > 80, r.stdout);
    const evals = readFileSync(path.join(dir, 'run', 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.includes('"eval"'));
    assert.ok(evals.length >= 2);
    // The report shows the samples after training (sample --record) and the baselines on the loss chart.
    const page = readFileSync(path.join(dir, 'run', 'report.html'), 'utf8');
    assert.equal(page.match(/<pre class="sample">The State of the Union/g)?.length, 2, 'the two samples after training in the report');
    assert.match(page, /<g class="ref baseline-unigram">/);
    assert.match(page, /<td data-figure="vs-unigram">(beats|does not beat) unigram by [\d.]+ nats<\/td>/);
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
