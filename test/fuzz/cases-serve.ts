// `nanogpt serve` started wrongly: flags out of range or of the wrong kind, addresses it cannot bind, model sources
// that are not models. Each must exit 2 naming the flag or file before or instead of serving (never listening on
// with a broken model, never hanging).
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { FuzzCase } from './harness.js';

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// Per flag: values it cannot take. --port 0 on loopback is added to the valid ones so that only the flag at
// fault can stop the command.
const BAD_FLAGS: Record<string, string[]> = {
  port: ['70000', '-1', 'abc', '80.5', '1e400', ''],
  max_tokens: ['0', '-3', '2.5', '1e400', '10000000'],
  max_batch: ['0', '257', 'many'],
  max_queue: ['-1', '1e9'],
  max_body_bytes: ['0', '1023', '1e12'],
  grace_period: ['-1', '1e9', 'NaN'],
  dtype: ['fp16', 'fp8', ''],
  threads: ['0', '-2', '1.5', '100000'],
  host: ['', '   '],
  api_key: ['short', 'has space inside', ''],
  init_from: ['gpt5', '../gpt2', ''],
};

function flagCase(flag: string, value: string): FuzzCase {
  return {
    family: 'serve-flag',
    name: `--${flag}=${value}`,
    setup: (_dir, fx) => ['serve', ...(flag === 'init_from' ? [] : ['--ckpt_path', fx.ckpt]), '--port=0', `--${flag}=${value}`],
    expect: new RegExp(escape(`--${flag}`)),
  };
}

function sourceCase(name: string, setup: FuzzCase['setup'], expect: RegExp): FuzzCase {
  return { family: 'serve-source', name, setup, expect };
}

export function serveCases(): FuzzCase[] {
  const cases = Object.entries(BAD_FLAGS).flatMap(([flag, values]) => values.map((v) => flagCase(flag, v)));
  cases.push(
    { family: 'serve-flag', name: 'an unknown flag', setup: (_d, fx) => ['serve', '--ckpt_path', fx.ckpt, '--port=0', '--temperature=0.5'], expect: /--temperature/ },
    { family: 'serve-flag', name: 'a stray argument', setup: (_d, fx) => ['serve', '--ckpt_path', fx.ckpt, '--port=0', 'model.pt'], expect: /model\.pt/ },
    { family: 'serve-flag', name: '--ckpt_path and --init_from together', setup: (_d, fx) => ['serve', '--ckpt_path', fx.ckpt, '--init_from=gpt2', '--port=0'], expect: /--init_from/ },
    // An address of no interface here (TEST-NET-3): the listen fails, named, before any model loads.
    { family: 'serve-flag', name: '--host of another machine', setup: (_d, fx) => ['serve', '--ckpt_path', fx.ckpt, '--port=0', '--host=203.0.113.7'], expect: /203\.0\.113\.7/ },
    { family: 'serve-flag', name: '--host that is not an address', setup: (_d, fx) => ['serve', '--ckpt_path', fx.ckpt, '--port=0', '--host=not an address'], expect: /not an address/ },
    sourceCase('missing checkpoint', () => ['serve', '--ckpt_path', 'nothing-here.pt', '--port=0'], /nothing-here\.pt/),
    sourceCase('checkpoint that is text', (d) => {
      writeFileSync(path.join(d, 'notes.pt'), 'this is not a checkpoint\n');
      return ['serve', '--ckpt_path', 'notes.pt', '--port=0'];
    }, /notes\.pt/),
    sourceCase('empty checkpoint', (d) => {
      writeFileSync(path.join(d, 'empty.pt'), '');
      return ['serve', '--ckpt_path', 'empty.pt', '--port=0'];
    }, /empty\.pt/),
    sourceCase('checkpoint that is a directory without one', (d) => {
      mkdirSync(path.join(d, 'run'));
      writeFileSync(path.join(d, 'run', 'notes.txt'), 'no checkpoint here\n');
      return ['serve', '--ckpt_path', 'run', '--port=0'];
    }, /run/),
  );
  return cases;
}
