// The valid files every fuzz case starts from, built once per test file: a tiny GPT-2-vocabulary checkpoint, a
// pattern corpus, and a snapshot written by a real (two-step) training run through the CLI.
import { after, before, describe, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as torch from '../../src/torch/index.js';
import { GPT } from '../../src/gpt/model.js';
import { GPT2_VOCAB_SIZE } from '../../src/gpt/config.js';
import { saveModel } from '../../src/train/checkpoint.js';
import { writePatternCorpus } from '../helpers/corpus.js';
import { root, runCase, type Fixtures, type FuzzCase } from './harness.js';

// Cases run two at a time: most of a case is starting Node and loading libtorch, which overlaps well.
const CONCURRENCY = 2;
// NANOGPT_FUZZ_EVERY=N runs one case in N (the Debian 13 rerun of the suite uses it to stay in the time budget;
// every case still runs on the host).
const EVERY = Math.max(1, Math.floor(Number(process.env.NANOGPT_FUZZ_EVERY ?? '1')) || 1);

/** Registers one test per case (run `concurrency` at a time), with the fixtures built before the first. */
export function fuzzFamily(title: string, cases: FuzzCase[], needs: { snapshot?: boolean } = {}): void {
  let work = '';
  const fx: Fixtures = { ckpt: '', snapshot: '', dataDir: '', trainArgs: [] };

  before(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-fuzz-'));
    torch.manualSeed(0);
    const model = new GPT({ nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16, vocabSize: GPT2_VOCAB_SIZE, dropout: 0, bias: true });
    fx.ckpt = path.join(work, 'tiny.pt');
    await saveModel(fx.ckpt, model);
    model.dispose();
    fx.dataDir = writePatternCorpus({ trainTokens: 4000, valTokens: 1000 });
    fx.trainArgs = [
      `--data_dir=${fx.dataDir}`,
      '--block_size=16',
      '--model.preset=gpt2-tiny',
      '--model.n_embd=32',
      '--model.vocab_size=64',
      '--trainer_config.batch_size=2',
      '--trainer_config.gradient_accumulation_steps=1',
      '--trainer_config.mixed_precision=fp32',
      '--trainer_config.max_iters=2',
      '--trainer_config.eval_interval=2',
      '--trainer_config.eval_iters=1',
      '--trainer_config.warmup_iters=0',
      '--trainer_config.lr_decay_iters=2',
      '--threads=1',
    ];
    if (needs.snapshot) {
      const out = path.join(work, 'run');
      const r = spawnSync(process.execPath, [path.join(root, 'bin', 'nanogpt'), 'train', ...fx.trainArgs, `--out_dir=${out}`], { encoding: 'utf8', timeout: 120_000 });
      assert.equal(r.status, 0, r.stderr);
      fx.snapshot = path.join(out, 'snapshot.pt');
    }
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
    if (fx.dataDir) rmSync(fx.dataDir, { recursive: true, force: true });
  });

  const chosen = cases.filter((_, i) => i % EVERY === 0);
  if (EVERY > 1) console.log(`# ${title}: running ${chosen.length} of ${cases.length} cases (NANOGPT_FUZZ_EVERY=${EVERY})`);
  describe(title, { concurrency: CONCURRENCY }, () => {
    for (const c of chosen) {
      test(c.name, async () => {
        const { outcome, problems } = await runCase(c, fx, work);
        const summary = `exit ${outcome.code}, ${outcome.ms} ms, ${outcome.maxRssMiB?.toFixed(0) ?? '?'} MiB`;
        assert.deepEqual(problems, [], `${c.family}: ${c.name}\n  ${summary}\n  stderr: ${outcome.stderr.slice(0, 1500)}`);
      });
    }
  });
}
