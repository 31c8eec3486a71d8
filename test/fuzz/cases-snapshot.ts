// Snapshots whose training state lies: the trainer must refuse to resume from nonsense, name the field, and
// leave the snapshot as it was.
import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import type { FuzzCase } from './harness.js';
import { readParts, withMetadata, withMetadataField, withTensor, withValue, writeParts } from './safetensors-craft.js';

interface Lie {
  name: string;
  make: (src: string, dest: string) => void;
  expect: RegExp;
}

const state = (field: string, value: unknown): Lie => ({
  name: `train_state.${field} = ${JSON.stringify(value)}`,
  make: (s, d) => withMetadataField(s, d, 'train_state', field, value),
  expect: new RegExp(field),
});

const meta = (name: string, key: string, value: string | undefined, expect: RegExp): Lie => ({ name, make: (s, d) => withMetadata(s, d, key, value), expect });

const lies: Lie[] = [
  state('iter', -1),
  state('iter', 1e300),
  state('iter', '5'),
  state('iter', null),
  state('iter', 2.5),
  state('iter', undefined),
  state('optimizerStep', -1),
  state('optimizerStep', 'x'),
  state('optimizerStep', 1e300),
  state('optimizerStep', 1.5),
  state('bestValLoss', 'low'),
  state('bestValLoss', -1),
  state('tokens', -1),
  state('tokens', 'many'),
  state('sampler', 'x'),
  state('sampler', { train: 5, val: [1, 2, 3, 4] }),
  state('sampler', { train: [1, 2, 3, 4], val: [-1, 2, 3, 4] }),
  state('sampler', { train: [1, 2, 3] }),
  state('rng', '!!! not base64 !!!'),
  state('rng', 'AAAA'),
  state('rng', 12345),
  state('worldSize', 0),
  state('worldSize', -1),
  state('worldSize', 1.5),
  state('worldSize', 'two'),
  meta('train_state not JSON', 'train_state', '{iter: 1', /train_state/),
  meta('train_state an array', 'train_state', '[1, 2]', /train_state/),
  meta('train_state null', 'train_state', 'null', /train_state/),
  meta('train_state missing', 'train_state', undefined, /train_state/),
  meta('rank_states not JSON', 'rank_states', 'rank zero was here', /rank_states/),
  meta('rank_states an array', 'rank_states', '[]', /rank_states/),
  meta('rank_states with a bad sampler', 'rank_states', JSON.stringify({ sampler: [{ train: 'x', val: [] }], rng: [''] }), /rank_states|sampler/),
  meta('rank_states with a bad RNG state', 'rank_states', JSON.stringify({ sampler: [{ train: [1, 2, 3, 4], val: [1, 2, 3, 4] }], rng: ['AAAA'] }), /rank_states|rng/),
  meta('model_config n_layer -1', 'model_config', JSON.stringify({ nLayer: -1, nHead: 2, nEmbd: 32, blockSize: 16, vocabSize: 64, dropout: 0, bias: true }), /nLayer|n_layer/),
  {
    name: 'an optimizer moment missing',
    make: (s, d) => {
      const p = readParts(s);
      const h: Record<string, unknown> = { ...p.header };
      const victim = Object.keys(h).find((k) => k.startsWith('optimizer.exp_avg_sq.'))!;
      delete h[victim];
      writeParts(d, h, p.data);
    },
    expect: /exp_avg_sq/,
  },
  {
    name: 'an optimizer moment of the wrong shape',
    make: (s, d) => {
      const victim = Object.keys(readParts(s).header).find((k) => k.startsWith('optimizer.exp_avg.transformer.h.0.attn.c_attn.weight'))!;
      withTensor(s, d, victim, (e) => ({ ...e, shape: [...e.shape].reverse() }));
    },
    expect: /exp_avg/,
  },
  {
    name: 'NaN in an optimizer moment',
    make: (s, d) => {
      const victim = Object.keys(readParts(s).header).find((k) => k.startsWith('optimizer.exp_avg_sq.transformer.ln_f.weight'))!;
      withValue(s, d, victim, 1, NaN);
    },
    expect: /exp_avg_sq/,
  },
  { name: 'NaN in a weight', make: (s, d) => withValue(s, d, 'transformer.wpe.weight', 7, NaN), expect: /wpe/ },
];

export function snapshotCases(): FuzzCase[] {
  return lies.map((lie) => ({
    family: 'snapshot',
    name: `resume: ${lie.name}`,
    setup: (dir, fx) => {
      mkdirSync(path.join(dir, 'out'));
      lie.make(fx.snapshot, path.join(dir, 'out', 'snapshot.pt'));
      return ['train', ...fx.trainArgs, '--out_dir=out'];
    },
    expect: lie.expect,
  }));
}
