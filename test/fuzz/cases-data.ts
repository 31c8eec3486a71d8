// Token files that are not what train.bin must be, text sources that are not text, and sampling flags and
// prompt files that can only be wrong.
import { copyFileSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Fixtures, FuzzCase } from './harness.js';
import { mkfifoSync } from './fifo.js';

function tokenCase(name: string, write: (data: string, fx: Fixtures) => void, expect: RegExp): FuzzCase {
  return {
    family: 'tokens',
    name,
    setup: (dir, fx) => {
      const data = path.join(dir, 'data');
      mkdirSync(data);
      for (const f of ['train.bin', 'val.bin']) copyFileSync(path.join(fx.dataDir, f), path.join(data, f));
      write(data, fx);
      return ['train', ...fx.trainArgs, '--data_dir=data', '--out_dir=out'];
    },
    expect,
  };
}

const remove = (f: string): void => rmSync(f, { recursive: true, force: true });
const tokens = (...ids: number[]): Buffer => Buffer.from(Uint16Array.from(ids).buffer);

export function tokenCases(): FuzzCase[] {
  const train = (d: string): string => path.join(d, 'train.bin');
  const val = (d: string): string => path.join(d, 'val.bin');
  const many = (n: number, id: number): Buffer => tokens(...Array.from({ length: n }, (_, i) => (i === n - 7 ? id : i % 64)));
  return [
    tokenCase('train.bin holds 65535 (vocab 64)', (d) => writeFileSync(train(d), many(5000, 65535)), /train\.bin.*65535|65535.*train\.bin/s),
    tokenCase('train.bin holds 64 (vocab 64)', (d) => writeFileSync(train(d), many(5000, 64)), /train\.bin/),
    tokenCase('val.bin holds 50256 (vocab 64)', (d) => writeFileSync(val(d), many(3000, 50256)), /val\.bin/),
    tokenCase('train.bin of odd length', (d) => writeFileSync(train(d), Buffer.concat([many(5000, 1), Buffer.from([7])])), /train\.bin/),
    tokenCase('train.bin empty', (d) => writeFileSync(train(d), Buffer.alloc(0)), /train\.bin/),
    tokenCase('train.bin shorter than a block', (d) => writeFileSync(train(d), tokens(1, 2, 3)), /train\.bin/),
    tokenCase('val.bin shorter than a block', (d) => writeFileSync(val(d), tokens(1, 2, 3, 4, 5)), /val\.bin/),
    tokenCase('train.bin a directory', (d) => {
      remove(train(d));
      mkdirSync(train(d));
    }, /train\.bin/),
    tokenCase('train.bin a FIFO', (d) => {
      remove(train(d));
      mkfifoSync(train(d));
    }, /train\.bin/),
    tokenCase('train.bin → /dev/zero', (d) => {
      remove(train(d));
      symlinkSync('/dev/zero', train(d));
    }, /train\.bin/),
    tokenCase('train.bin a dangling symlink', (d) => {
      remove(train(d));
      symlinkSync('/nonexistent/train.bin', train(d));
    }, /train\.bin/),
    tokenCase('val.bin missing', (d) => remove(val(d)), /val\.bin/),
  ];
}

function textCase(name: string, write: (dir: string) => string[], expect: RegExp): FuzzCase {
  return {
    family: 'text',
    name,
    setup: (dir) => {
      // An earlier prepare's output that a failed one must leave alone.
      mkdirSync(path.join(dir, 'data'));
      writeFileSync(path.join(dir, 'data', 'train.bin'), tokens(1, 2, 3));
      // Case flags come last, so a case's own --workers wins over the default here.
      return ['prepare', '--out_dir', 'data', '--workers', '1', '--quiet', ...write(dir)];
    },
    expect,
  };
}

export function textCases(): FuzzCase[] {
  const file = (dir: string, name: string, content: string | Buffer): string => {
    writeFileSync(path.join(dir, name), content);
    return name;
  };
  return [
    textCase('invalid UTF-8', (d) => [file(d, 'a.txt', Buffer.from([0x68, 0x69, 0xff, 0xfe, 0x0a]))], /a\.txt/),
    textCase('a NUL byte', (d) => [file(d, 'a.txt', 'hello\u0000world\n')], /a\.txt/),
    textCase('UTF-16 text', (d) => [file(d, 'a.txt', Buffer.from('\ufeffhello world\n', 'utf16le'))], /a\.txt/),
    textCase('a lone surrogate (CESU)', (d) => [file(d, 'a.txt', Buffer.from([0x61, 0xed, 0xa0, 0x80, 0x62]))], /a\.txt/),
    textCase('an overlong encoding', (d) => [file(d, 'a.txt', Buffer.from([0x61, 0xc0, 0xaf, 0x62]))], /a\.txt/),
    textCase('JSONL with a broken line', (d) => [file(d, 'a.jsonl', '{"text": "ok"}\n{"text": "broken\n')], /a\.jsonl:2/),
    textCase('JSONL without the text field', (d) => [file(d, 'a.jsonl', '{"body": "x"}\n')], /a\.jsonl.*text|text.*a\.jsonl/s),
    textCase('JSONL text that is a number', (d) => [file(d, 'a.jsonl', '{"text": 42}\n')], /a\.jsonl/),
    textCase('JSONL records that are arrays', (d) => [file(d, 'a.jsonl', '[1, 2]\n')], /a\.jsonl/),
    textCase('JSON that is not an array', (d) => [file(d, 'a.json', '"just a string"')], /a\.json/),
    textCase('Alpaca record without instruction', (d) => [file(d, 'a.json', JSON.stringify([{ input: 'x', output: 'y' }])), '--format', 'alpaca'], /instruction/),
    textCase('Alpaca template missing a key', (d) => [file(d, 'a.json', JSON.stringify([{ instruction: 'x', output: 'y' }])), '--format', 'alpaca', '--template', file(d, 't.json', '{"prompt_input": "{instruction}"}')], /t\.json|prompt_no_input/),
    textCase('Parquet of garbage', (d) => [file(d, 'a.parquet', Buffer.from('PAR1 this is not parquet PAR1'))], /a\.parquet/),
    textCase('Parquet truncated', (d) => [file(d, 'a.parquet', Buffer.concat([Buffer.from('PAR1'), Buffer.alloc(100, 7)]))], /a\.parquet/),
    textCase('an empty text file', (d) => [file(d, 'a.txt', '')], /a\.txt|empty|no text/i),
    textCase('a glob matching nothing', () => ['nothing-here/*.txt'], /nothing-here/),
    textCase('a directory without text files', (d) => {
      mkdirSync(path.join(d, 'empty'));
      return ['empty'];
    }, /empty/),
    textCase('an input that is a FIFO', (d) => {
      mkfifoSync(path.join(d, 'a.txt'));
      return ['a.txt'];
    }, /a\.txt/),
    textCase('an input that is /dev/zero', (d) => {
      symlinkSync('/dev/zero', path.join(d, 'a.txt'));
      return ['a.txt'];
    }, /a\.txt/),
    textCase('an unknown extension', (d) => [file(d, 'a.docx', 'PK')], /a\.docx/),
    textCase('--workers 0', (d) => [file(d, 'a.txt', 'hello\n'), '--workers', '0'], /workers/),
    textCase('--workers 100000', (d) => [file(d, 'a.txt', 'hello\n'), '--workers', '100000'], /workers/),
    textCase('--val_fraction 1.5', (d) => [file(d, 'a.txt', 'hello\n'), '--val_fraction', '1.5'], /val_fraction/),
    textCase('--val_fraction NaN', (d) => [file(d, 'a.txt', 'hello\n'), '--val_fraction', 'NaN'], /val_fraction/),
  ];
}

function sampleCase(name: string, extra: (dir: string) => string[], expect: RegExp): FuzzCase {
  return {
    family: 'sample',
    name,
    setup: (dir, fx) => ['sample', '--ckpt_path', fx.ckpt, '--num_samples', '1', '--max_new_tokens', '2', ...extra(dir)],
    expect,
  };
}

export function sampleCases(): FuzzCase[] {
  const flag = (f: string, v: string): FuzzCase => sampleCase(`--${f} ${v}`, () => [`--${f}`, v], new RegExp(f));
  return [
    flag('temperature', '-1'),
    flag('temperature', 'NaN'),
    flag('temperature', '1e400'),
    flag('temperature', 'hot'),
    flag('top_k', '0'),
    flag('top_k', '-5'),
    flag('top_k', '2.5'),
    flag('top_p', '0'),
    flag('top_p', '1.5'),
    flag('top_p', '-0.1'),
    flag('top_p', 'NaN'),
    flag('max_new_tokens', '-1'),
    flag('max_new_tokens', '1e12'),
    flag('max_new_tokens', '2.5'),
    flag('num_samples', '0'),
    flag('num_samples', '-3'),
    flag('num_samples', '1e9'),
    flag('seed', 'abc'),
    flag('seed', '1.5'),
    flag('threads', '100000'),
    flag('threads', '-2'),
    flag('dtype', 'fp16'),
    sampleCase('--prompt_file /dev/zero', () => ['--prompt_file', '/dev/zero'], /prompt_file|\/dev\/zero/),
    sampleCase('--prompt_file a FIFO', (d) => {
      mkfifoSync(path.join(d, 'p.txt'));
      return ['--prompt_file', 'p.txt'];
    }, /p\.txt/),
    sampleCase('--prompt_file a directory', (d) => {
      mkdirSync(path.join(d, 'p'));
      return ['--prompt_file', 'p'];
    }, /prompt_file| p\b|p:/),
    sampleCase('--prompt_file missing', () => ['--prompt_file', 'nope.txt'], /nope\.txt/),
    sampleCase('--prompt_file invalid UTF-8', (d) => {
      writeFileSync(path.join(d, 'p.txt'), Buffer.from([0xff, 0xfe, 0x41]));
      return ['--prompt_file', 'p.txt'];
    }, /p\.txt/),
    sampleCase('--prompt_file of 64 MiB', (d) => {
      writeFileSync(path.join(d, 'p.txt'), Buffer.alloc(64 * 1024 * 1024, 'a'));
      return ['--prompt_file', 'p.txt'];
    }, /p\.txt/),
    sampleCase('--ckpt_path missing', () => ['--ckpt_path', 'nope.pt'], /nope\.pt/),
    sampleCase('an unknown flag', () => ['--temprature', '0.5'], /temprature/),
  ];
}

function pathCase(name: string, setup: (dir: string, fx: Fixtures) => string[], expect: RegExp): FuzzCase {
  return { family: 'paths', name, setup, expect };
}

/** Output and input locations that are the wrong kind of thing, or links planted to redirect a write. */
export function pathCases(): FuzzCase[] {
  const victim = (dir: string): string => {
    const v = path.join(dir, 'victim.txt');
    writeFileSync(v, 'precious\n');
    return v;
  };
  return [
    pathCase('train out_dir is a file', (d, fx) => {
      writeFileSync(path.join(d, 'out'), 'a file\n');
      return ['train', ...fx.trainArgs, '--out_dir=out'];
    }, /out/),
    pathCase('prepare out_dir is a file', (d) => {
      writeFileSync(path.join(d, 'a.txt'), 'one\n\ntwo\n');
      writeFileSync(path.join(d, 'data'), 'a file\n');
      return ['prepare', 'a.txt', '--split_on_blank_lines', '--out_dir', 'data', '--quiet'];
    }, /data/),
    pathCase('export out_dir is a file', (d, fx) => {
      writeFileSync(path.join(d, 'hf'), 'a file\n');
      return ['export', '--ckpt_path', fx.ckpt, '--out_dir', 'hf'];
    }, /hf/),
    pathCase('data_dir is a file', (d, fx) => {
      writeFileSync(path.join(d, 'data'), 'a file\n');
      return ['train', ...fx.trainArgs, '--data_dir=data', '--out_dir=out'];
    }, /data/),
    pathCase('metrics.jsonl is a link to another file', (d, fx) => {
      mkdirSync(path.join(d, 'out'));
      symlinkSync(victim(d), path.join(d, 'out', 'metrics.jsonl'));
      return ['train', ...fx.trainArgs, '--out_dir=out'];
    }, /metrics\.jsonl/),
    pathCase('the snapshot path is a directory', (d, fx) => {
      mkdirSync(path.join(d, 'out', 'snapshot.pt'), { recursive: true });
      return ['train', ...fx.trainArgs, '--out_dir=out'];
    }, /snapshot\.pt/),
    pathCase('the snapshot path is a FIFO', (d, fx) => {
      mkdirSync(path.join(d, 'out'));
      mkfifoSync(path.join(d, 'out', 'snapshot.pt'));
      return ['train', ...fx.trainArgs, '--out_dir=out'];
    }, /snapshot\.pt/),
    pathCase('the lock file is a link to another file', (d, fx) => {
      mkdirSync(path.join(d, 'out'));
      symlinkSync(victim(d), path.join(d, 'out', '.nanogpt.lock'));
      return ['train', ...fx.trainArgs, '--out_dir=out'];
    }, /lock/),
    pathCase('--ckpt_path in a bucket named ../..', () => ['sample', '--ckpt_path', 's3://../../ckpt.pt'], /bucket/),
  ];
}
