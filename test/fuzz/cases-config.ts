// Training settings that can only be wrong, on the command line and in YAML files, and config files that are
// not config files.
import { mkfifoSync } from './fifo.js';
import { symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import type { FuzzCase } from './harness.js';

const NOT_A_NUMBER = ['abc', '1e400', '-1e400', 'NaN', '[1, 2]', '{a: 1}', 'true'];

// Per key: values outside what it can mean. Integers also get a fraction and an absurd magnitude.
const INTEGER_KEYS: Record<string, string[]> = {
  block_size: ['0', '-1', '2.5', '1e12'],
  'trainer_config.batch_size': ['0', '-4', '1.5', '1e12'],
  'trainer_config.gradient_accumulation_steps': ['0', '-1', '0.5'],
  'trainer_config.max_iters': ['-1', '2.5', '1e300'],
  'trainer_config.eval_interval': ['0', '-5', '1.5'],
  'trainer_config.log_interval': ['0', '-1'],
  'trainer_config.eval_iters': ['0', '-2', '1.5'],
  'trainer_config.warmup_iters': ['-1', '3.5'],
  'trainer_config.lr_decay_iters': ['-10', '7.5'],
  'trainer_config.snapshot_interval': ['-1', '2.5'],
  'model.n_layer': ['-1', '2.5', '1000000'],
  'model.n_head': ['-2', '1.5'],
  'model.n_embd': ['-64', '33.3', '1000000000'],
  'model.vocab_size': ['0', '-1', '1e12'],
  threads: ['-1', '100000', '1.5'],
  'distributed.main_process_port': ['-1', '70000', '1.5'],
  'distributed.check_interval': ['-1', '0.5'],
};

const NUMBER_KEYS: Record<string, string[]> = {
  'optimizer_config.learning_rate': ['-1e-3'],
  'optimizer_config.weight_decay': ['-0.1'],
  'optimizer_config.beta1': ['-0.1', '1', '1.5'],
  'optimizer_config.beta2': ['-0.5', '1', '2'],
  'optimizer_config.eps': ['0', '-1e-8'],
  'trainer_config.grad_clip': ['-1'],
  'trainer_config.max_lr': ['-6e-4'],
  'trainer_config.min_lr': ['-1'],
  'trainer_config.peak_flops': ['-1'],
  'model.dropout': ['-0.1', '1', '1.5'],
  'distributed.timeout_s': ['0', '-5'],
};

const ENUM_KEYS: Record<string, string[]> = {
  'trainer_config.mixed_precision': ['fp16', '', '1'],
  'trainer_config.device': ['tpu'],
  'model.preset': ['gpt3', ''],
};

const leaf = (key: string): string => key.split('.').at(-1)!;
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function flagCase(key: string, value: string): FuzzCase {
  return {
    family: 'config-flag',
    name: `--${key}=${value}`,
    setup: (_dir, fx) => ['train', ...fx.trainArgs, `--${key}=${value}`],
    expect: new RegExp(escape(leaf(key))),
  };
}

/** The same bad value written in a YAML file (nested as the reference config nests it). */
function yamlCase(key: string, value: string): FuzzCase {
  return {
    family: 'config-yaml',
    name: `${key}: ${value} (YAML)`,
    setup: (dir, fx) => {
      const parts = key.split('.');
      const yaml = parts.length === 1 ? `${key}: ${value}\n` : `${parts[0]}:\n  ${parts[1]}: ${value}\n`;
      writeFileSync(path.join(dir, 'cfg.yaml'), yaml);
      return ['train', '--config', 'cfg.yaml', ...fx.trainArgs];
    },
    expect: new RegExp(escape(leaf(key))),
  };
}

function fileCase(name: string, write: (file: string) => void, expect: RegExp): FuzzCase {
  return {
    family: 'config-file',
    name,
    setup: (dir, fx) => {
      write(path.join(dir, 'cfg.yaml'));
      return ['train', '--config', 'cfg.yaml', ...fx.trainArgs];
    },
    expect,
  };
}

export function configCases(): FuzzCase[] {
  const cases: FuzzCase[] = [];
  for (const [key, values] of Object.entries(INTEGER_KEYS)) {
    for (const v of values) cases.push(flagCase(key, v));
    cases.push(flagCase(key, NOT_A_NUMBER[cases.length % NOT_A_NUMBER.length]!));
  }
  for (const [key, values] of Object.entries(NUMBER_KEYS)) {
    for (const v of values) cases.push(flagCase(key, v));
    cases.push(flagCase(key, NOT_A_NUMBER[cases.length % NOT_A_NUMBER.length]!));
  }
  for (const [key, values] of Object.entries(ENUM_KEYS)) for (const v of values) cases.push(flagCase(key, v));
  // YAML's own spellings of non-finite numbers, and numbers too large for a double.
  for (const v of ['.inf', '-.inf', '.nan', '1e400']) {
    cases.push(yamlCase('optimizer_config.beta1', v));
    cases.push(yamlCase('trainer_config.max_lr', v));
    cases.push(yamlCase('distributed.timeout_s', v));
  }
  cases.push(yamlCase('trainer_config.batch_size', '[4, 8]'));
  cases.push(yamlCase('trainer_config.batch_size', '{a: 1}'));
  cases.push(yamlCase('block_size', 'null'));
  cases.push(yamlCase('model.n_layer', '"twelve"'));
  cases.push(yamlCase('trainer_config.eval_only', 'maybe'));
  cases.push(flagCase('trainer_config.decay_lr', 'yes please'));
  cases.push(flagCase('nonexistent_key', '1'));
  cases.push(flagCase('trainer_config.nonexistent', '1'));
  cases.push(flagCase('trainer_config', '5'));

  cases.push(fileCase('YAML syntax error', (f) => writeFileSync(f, 'trainer_config:\n  batch_size: 4\n bad_indent: [\n'), /cfg\.yaml/));
  cases.push(fileCase('YAML is a list', (f) => writeFileSync(f, '- 1\n- 2\n'), /cfg\.yaml/));
  cases.push(fileCase('YAML is a scalar', (f) => writeFileSync(f, '42\n'), /cfg\.yaml/));
  cases.push(fileCase('binary garbage', (f) => writeFileSync(f, Buffer.from([0, 159, 146, 150, 255, 0, 1, 2, 3])), /cfg\.yaml/));
  cases.push(fileCase('duplicate keys', (f) => writeFileSync(f, 'block_size: 8\nblock_size: 16\n'), /block_size|cfg\.yaml/));
  cases.push(fileCase('alias bomb', (f) => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: 10 }, () => `*a${i - 1}`).join(', ')}]`);
    writeFileSync(f, `${lines.join('\n')}\n`);
  }, /cfg\.yaml/));
  cases.push(fileCase('a section given a scalar', (f) => writeFileSync(f, 'trainer_config: 5\n'), /trainer_config/));
  cases.push(fileCase('unknown nested key', (f) => writeFileSync(f, 'trainer_config:\n  batchsize: 4\n'), /batchsize/));
  cases.push(fileCase('a directory', (f) => mkdirSync(f), /cfg\.yaml/));
  cases.push(fileCase('a FIFO', (f) => mkfifoSync(f), /cfg\.yaml/));
  cases.push(fileCase('/dev/zero', (f) => symlinkSync('/dev/zero', f), /cfg\.yaml/));
  cases.push(fileCase('64 MiB of comments', (f) => writeFileSync(f, Buffer.alloc(64 * 1024 * 1024, '#')), /cfg\.yaml/));
  cases.push({ family: 'config-file', name: 'missing file', setup: (_d, fx) => ['train', '--config', 'nope.yaml', ...fx.trainArgs], expect: /nope\.yaml/ });
  return cases;
}
