// Checkpoints that lie: broken safetensors framing, model_config fields of the wrong type or an absurd size,
// tensors of the wrong dtype or shape, NaN/Inf weights, and files that are not checkpoints at all — each fed to
// every command that reads a model.
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Fixtures, FuzzCase } from './harness.js';
import { mkfifoSync } from './fifo.js';
import { readParts, tensors, withMetadata, withMetadataField, withTensor, withValue, writeParts } from './safetensors-craft.js';

type Make = (src: string, dest: string) => void;

const WTE = 'transformer.wte.weight';
const ATTN = 'transformer.h.0.attn.c_attn.weight';
const LNF = 'transformer.ln_f.weight';

interface Lie {
  name: string;
  make: Make;
  /** What the message must name. */
  expect: RegExp;
}

function framingLies(): Lie[] {
  const raw = (name: string, bytes: (src: string) => Buffer, expect = /bad\.pt/): Lie => ({
    name,
    make: (src, dest) => writeFileSync(dest, bytes(src)),
    expect,
  });
  const header = (name: string, h: (p: ReturnType<typeof readParts>) => unknown, expect = /bad\.pt/): Lie => ({
    name,
    make: (src, dest) => {
      const p = readParts(src);
      writeParts(dest, h(p), p.data);
    },
    expect,
  });
  return [
    raw('empty file', () => Buffer.alloc(0)),
    raw('7 bytes', () => Buffer.from('abcdefg')),
    raw('length prefix 2^63', (src) => {
      const b = Buffer.from(readFileSync(src));
      b.writeBigUInt64LE(1n << 63n, 0);
      return b;
    }),
    raw('length prefix past the end', (src) => {
      const b = Buffer.from(readFileSync(src));
      b.writeBigUInt64LE(BigInt(b.length), 0);
      return b;
    }),
    raw('truncated to half', (src) => {
      const b = readFileSync(src);
      return b.subarray(0, Math.floor(b.length / 2));
    }),
    raw('truncated by one byte', (src) => {
      const b = readFileSync(src);
      return b.subarray(0, b.length - 1);
    }),
    header('header not JSON', () => '{"a": '),
    header('header a JSON array', () => [1, 2, 3]),
    header('header a JSON string', () => 'just text'),
    header('header null', () => null),
    header('metadata not an object', (p) => ({ ...p.header, __metadata__: [1] })),
    header('metadata value not a string', (p) => ({ ...p.header, __metadata__: { ...p.header.__metadata__, model_config: { n_layer: 1 } } })),
    header('a tensor entry that is a string', (p) => ({ ...p.header, [LNF]: 'F32' })),
    header('a tensor without offsets', (p) => ({ ...p.header, [LNF]: { dtype: 'F32', shape: [16] } })),
  ];
}

function tensorLies(): Lie[] {
  const entry = (name: string, tensor: string, change: (e: { dtype: string; shape: number[]; data_offsets: [number, number] }) => unknown, expect: RegExp): Lie => ({
    name,
    make: (src, dest) => withTensor(src, dest, tensor, change),
    expect,
  });
  return [
    entry('dtype U16', LNF, (e) => ({ ...e, dtype: 'U16', shape: [e.shape[0]! * 2] }), /ln_f|U16/),
    entry('dtype XYZ', LNF, (e) => ({ ...e, dtype: 'XYZ' }), /ln_f|XYZ/),
    entry('dtype I64 for a weight', LNF, (e) => ({ ...e, dtype: 'I64', shape: [e.shape[0]! / 2] }), /ln_f|I64/),
    entry('negative dimension', LNF, (e) => ({ ...e, shape: [-16] }), /ln_f/),
    entry('fractional dimension', LNF, (e) => ({ ...e, shape: [2.5] }), /ln_f/),
    entry('dimension as a string', LNF, (e) => ({ ...e, shape: ['16'] }), /ln_f/),
    entry('shape whose product overflows', WTE, (e) => ({ ...e, shape: [2 ** 40, 2 ** 40] }), /wte/),
    entry('shape larger than its bytes', LNF, (e) => ({ ...e, shape: [e.shape[0]! * 4] }), /ln_f/),
    entry('offsets past the data', LNF, (e) => ({ ...e, data_offsets: [e.data_offsets[0], e.data_offsets[1] + 1e9] }), /ln_f/),
    entry('offsets reversed', LNF, (e) => ({ ...e, data_offsets: [e.data_offsets[1], e.data_offsets[0]] }), /ln_f/),
    entry('negative offset', LNF, (e) => ({ ...e, data_offsets: [-64, e.data_offsets[1]] }), /ln_f/),
    entry('transposed shape (same bytes)', ATTN, (e) => ({ ...e, shape: [...e.shape].reverse() }), /c_attn/),
    entry('a weight flattened (same bytes)', ATTN, (e) => ({ ...e, shape: [e.shape[0]! * e.shape[1]!] }), /c_attn/),
    {
      name: 'a tensor missing',
      make: (src, dest) => {
        const p = readParts(src);
        const h: Record<string, unknown> = { ...p.header };
        delete h[LNF];
        writeParts(dest, h, p.data);
      },
      expect: /ln_f/,
    },
    { name: 'NaN in the embedding', make: (s, d) => withValue(s, d, WTE, 123, NaN), expect: /wte/ },
    { name: '+Inf in attention', make: (s, d) => withValue(s, d, ATTN, 0, Infinity), expect: /c_attn/ },
    { name: '-Inf in the final norm', make: (s, d) => withValue(s, d, LNF, 3, -Infinity), expect: /ln_f/ },
  ];
}

function configLies(): Lie[] {
  const field = (f: string, v: unknown): Lie => ({
    name: `model_config.${f} = ${JSON.stringify(v)}`,
    make: (src, dest) => withMetadataField(src, dest, 'model_config', f, v),
    expect: new RegExp(f === 'nLayer' ? 'nLayer|n_layer' : f === 'nHead' ? 'nHead|n_head' : f === 'nEmbd' ? 'nEmbd|n_embd' : f === 'vocabSize' ? 'vocabSize|vocab_size' : f === 'blockSize' ? 'blockSize|block_size' : f),
  });
  const meta = (name: string, key: string, value: string | undefined, expect: RegExp): Lie => ({ name, make: (s, d) => withMetadata(s, d, key, value), expect });
  return [
    field('nLayer', -1),
    field('nLayer', 2.5),
    field('nLayer', '1'),
    field('nLayer', null),
    field('nLayer', [1]),
    field('nLayer', 0),
    field('nLayer', 1e6),
    field('nLayer', undefined),
    field('nHead', 0),
    field('nHead', 3),
    field('nHead', -2),
    field('nHead', 1e9),
    field('nEmbd', 1e9),
    field('nEmbd', -16),
    field('nEmbd', 0),
    field('nEmbd', 16.5),
    field('vocabSize', 1e12),
    field('vocabSize', 0),
    field('vocabSize', -5),
    field('vocabSize', 2.5),
    field('blockSize', 1e12),
    field('blockSize', 0),
    field('blockSize', -1),
    field('dropout', 2),
    field('dropout', 'x'),
    field('bias', 'yes'),
    meta('model_config missing', 'model_config', undefined, /model_config/),
    meta('model_config not JSON', 'model_config', '{n_layer: 1', /model_config/),
    meta('model_config an array', 'model_config', '[1, 2]', /model_config/),
    meta('model_config a string', 'model_config', '"gpt2"', /model_config/),
    meta('model_config null', 'model_config', 'null', /model_config/),
    meta('format missing', 'format', undefined, /bad\.pt/),
    meta('format from the future', 'format', 'nanogpt-ts/model/99', /bad\.pt|format/),
  ];
}

function notCheckpoints(): Lie[] {
  const zip = Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), Buffer.alloc(26), Buffer.from('archive/data.pkl'), Buffer.alloc(200)]);
  const pickle = Buffer.concat([Buffer.from([0x80, 0x02, 0x8a, 0x0a]), Buffer.from('l\xfc\x9cF\xf9 j\xa8P\x19.'), Buffer.alloc(100)]);
  return [
    { name: 'a PyTorch zip checkpoint', make: (_s, d) => writeFileSync(d, zip), expect: /pickle|PyTorch/i },
    { name: 'a legacy PyTorch pickle', make: (_s, d) => writeFileSync(d, pickle), expect: /pickle|PyTorch/i },
    { name: 'a text file', make: (_s, d) => writeFileSync(d, 'hello, this is not a model\n'), expect: /bad\.pt/ },
    { name: 'a directory', make: (_s, d) => mkdirSync(d), expect: /bad\.pt/ },
    { name: 'a FIFO', make: (_s, d) => mkfifoSync(d), expect: /bad\.pt/ },
    { name: '/dev/zero', make: (_s, d) => symlinkSync('/dev/zero', d), expect: /bad\.pt/ },
    { name: 'a dangling symlink', make: (_s, d) => symlinkSync('/nonexistent/model.pt', d), expect: /bad\.pt/ },
  ];
}

/** A Hugging Face layout file (HF names) with a config.json beside it that lies. */
function hfLies(): Lie[] {
  const hf = (name: string, config: string): Lie => ({
    name,
    make: (src, dest) => {
      const p = readParts(src);
      const h: Record<string, unknown> = { __metadata__: { format: 'pt' } };
      for (const [n, e] of tensors(p)) h[n.replace(/^transformer\./, '')] = e;
      writeParts(dest, h, p.data);
      writeFileSync(path.join(path.dirname(dest), 'config.json'), config);
    },
    expect: /config\.json|n_head/,
  });
  return [
    hf('HF file, config.json n_head 3', JSON.stringify({ n_head: 3 })),
    hf('HF file, config.json n_head -1', JSON.stringify({ n_head: -1 })),
    hf('HF file, config.json n_head "2"', JSON.stringify({ n_head: '2' })),
  ];
}

type Command = 'sample' | 'export' | 'train';

function commandArgs(command: Command, fx: Fixtures): string[] {
  if (command === 'sample') return ['sample', '--ckpt_path', 'bad.pt', '--num_samples', '1', '--max_new_tokens', '2'];
  if (command === 'export') return ['export', '--ckpt_path', 'bad.pt', '--out_dir', 'hf'];
  return ['train', ...fx.trainArgs, '--init_from=bad.pt', '--model.vocab_size=50257'];
}

export function checkpointCases(): FuzzCase[] {
  const cases: FuzzCase[] = [];
  const add = (lie: Lie, command: Command): void => {
    cases.push({
      family: `checkpoint-${command}`,
      name: `${command}: ${lie.name}`,
      setup: (dir, fx) => {
        lie.make(fx.ckpt, path.join(dir, 'bad.pt'));
        if (command === 'export') {
          // An earlier export that a failed one must leave alone.
          mkdirSync(path.join(dir, 'hf'));
          copyFileSync(fx.ckpt, path.join(dir, 'hf', 'model.safetensors'));
          writeFileSync(path.join(dir, 'hf', 'config.json'), '{"earlier": true}\n');
        }
        return commandArgs(command, fx);
      },
      expect: lie.expect,
    });
  };
  // sample and export read a model through the same loader: each lie goes through one of them, alternately (a
  // case is mostly starting Node and libtorch, ~1 s; both for every lie would double the suite's longest family).
  const lies = [...framingLies(), ...tensorLies(), ...configLies(), ...notCheckpoints(), ...hfLies()];
  lies.forEach((lie, i) => add(lie, i % 2 === 0 ? 'sample' : 'export'));
  // Training from a checkpoint reads it the same way; a few representatives through that path too.
  for (const lie of [...tensorLies().slice(14, 16), ...configLies().slice(0, 7), ...notCheckpoints().slice(0, 2)]) add(lie, 'train');
  return cases;
}
