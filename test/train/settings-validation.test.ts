// Settings that can only be wrong are refused when the configuration is read, naming the key, the value and a
// sane one: AdamW's betas and eps, negative counts, too many threads, a non-positive timeout, and YAML's .inf,
// .nan and numbers beyond a double (which JSON would show as "null").
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../../src/train/config.js';
import { chooseThreads, MAX_THREADS_PER_CPU, maxThreads } from '../../src/runtime/threads.js';
import { UserError } from '../../src/util/errors.js';
import { assertUserError, nanogptSync } from '../helpers/nanogpt-cli.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-settings-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function refusedOverride(key: string, value: string, pattern: RegExp): void {
  assert.throws(
    () => loadConfig({ overrides: { [key]: value } }),
    (e: unknown) => e instanceof UserError && pattern.test(e.message),
    `--${key}=${value} should be refused with ${pattern}`,
  );
}

test('AdamW settings outside their domain are refused', () => {
  refusedOverride('optimizer_config.beta1', '1', /optimizer_config\.beta1 must be in \[0, 1\), got 1\n  fix: use e\.g\. beta1: 0\.9/);
  refusedOverride('optimizer_config.beta2', '1.5', /optimizer_config\.beta2 must be in \[0, 1\), got 1\.5/);
  refusedOverride('optimizer_config.beta1', '-0.1', /optimizer_config\.beta1 must be in \[0, 1\), got -0\.1/);
  refusedOverride('optimizer_config.eps', '0', /optimizer_config\.eps must be > 0, got 0/);
  refusedOverride('optimizer_config.eps', '-1e-8', /optimizer_config\.eps must be > 0/);
  refusedOverride('optimizer_config.weight_decay', '-0.1', /optimizer_config\.weight_decay must be >= 0, got -0\.1/);
  refusedOverride('optimizer_config.learning_rate', '-1', /optimizer_config\.learning_rate must be >= 0/);
  refusedOverride('trainer_config.max_lr', '-6e-4', /trainer_config\.max_lr must be >= 0/);
  // Edges that are legitimate stay accepted.
  const c = loadConfig({ overrides: { 'optimizer_config.beta1': '0', 'optimizer_config.weight_decay': '0', 'optimizer_config.eps': '1e-12' } });
  assert.equal(c.optimizer_config.beta1, 0);
});

test('negative counts and intervals, a bad port and a non-positive or endless timeout are refused', () => {
  refusedOverride('trainer_config.warmup_iters', '-1', /trainer_config\.warmup_iters must be >= 0, got -1/);
  refusedOverride('trainer_config.snapshot_interval', '-5', /trainer_config\.snapshot_interval must be >= 0, got -5\n  fix: use 0 to snapshot at each evaluation only/);
  refusedOverride('trainer_config.lr_decay_iters', '-1', /trainer_config\.lr_decay_iters must be >= 0/);
  refusedOverride('distributed.check_interval', '-1', /distributed\.check_interval must be >= 0/);
  refusedOverride('distributed.main_process_port', '70000', /distributed\.main_process_port must be a TCP port/);
  refusedOverride('distributed.timeout_s', '0', /distributed\.timeout_s must be > 0 and at most 31536000 \(a year\), got 0/);
  refusedOverride('distributed.timeout_s', '-3', /distributed\.timeout_s must be > 0/);
  refusedOverride('distributed.timeout_s', '1e12', /distributed\.timeout_s must be > 0 and at most/);
  refusedOverride('threads', '-2', /threads must be >= 0, got -2/);
});

test('threads beyond 4 per logical CPU are refused by the config, sample, launch and NANOGPT_THREADS', () => {
  const max = maxThreads();
  assert.equal(max, MAX_THREADS_PER_CPU * os.availableParallelism());
  assert.equal(loadConfig({ overrides: { threads: String(max) } }).threads, max);
  refusedOverride('threads', String(max + 1), new RegExp(`threads: ${max + 1} threads is more than 4 × the ${os.availableParallelism()} logical CPUs of this machine \\(at most ${max}\\)`));
  assert.throws(() => chooseThreads(undefined, 1, { NANOGPT_THREADS: '100000' }), /NANOGPT_THREADS=100000: 100000 threads is more than 4 ×/);
  // Through the CLI: `threads: 100000` once spawned 100000 threads and hung.
  assertUserError(nanogptSync(['train', '--threads=100000']), /threads: 100000 threads is more than 4 × the \d+ logical CPUs of this machine/);
  assertUserError(nanogptSync(['sample', '--threads', '100000']), /--threads: 100000 threads is more than 4 ×/);
  assertUserError(nanogptSync(['launch', '--nproc_per_node', '1', '--threads', '100000', '--dry_run', '--', 'train']), /--threads: 100000 threads is more than 4 ×/);
});

test('YAML .inf, .nan and 1e400 are named as what they are, not as null', () => {
  const cases: [string, RegExp][] = [
    ['optimizer_config:\n  eps: .inf\n', /optimizer_config\.eps is infinity \(YAML \.inf, or a number too large for a double such as 1e400\), not a finite number/],
    ['optimizer_config:\n  learning_rate: 1e400\n', /optimizer_config\.learning_rate is infinity \(YAML \.inf, or a number too large/],
    ['trainer_config:\n  grad_clip: -.inf\n', /trainer_config\.grad_clip is -infinity \(YAML -\.inf/],
    ['trainer_config:\n  warmup_iters: .nan\n', /trainer_config\.warmup_iters is NaN \(YAML \.nan\), not a finite integer/],
  ];
  for (const [i, [yaml, pattern]] of cases.entries()) {
    const file = path.join(tmp, `c${i}.yaml`);
    writeFileSync(file, yaml);
    assert.throws(() => loadConfig({ file }), (e: unknown) => e instanceof UserError && pattern.test(e.message) && !/null/.test(e.message), yaml);
  }
  refusedOverride('optimizer_config.eps', '.inf', /optimizer_config\.eps is infinity/);
  const file = path.join(tmp, 'c0.yaml');
  assertUserError(nanogptSync(['train', '--config', file]), /c0\.yaml: optimizer_config\.eps is infinity \(YAML \.inf/);
});
