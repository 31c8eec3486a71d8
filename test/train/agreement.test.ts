// Which settings the ranks of a job must share, and how a disagreement reads.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeDisagreement, sharedSettings } from '../../src/train/agreement.js';
import { loadConfig } from '../../src/train/config.js';

test('per-machine settings (paths, threads, interface, rendezvous spelling) are not compared; the rest and the code version are', () => {
  const a = sharedSettings(loadConfig({ overrides: { out_dir: 'a', data_dir: 'x', threads: '2', 'distributed.iface': 'eth0' } }), 'v1');
  const b = sharedSettings(loadConfig({ overrides: { out_dir: 'b', data_dir: 'y', threads: '4', 'distributed.main_process_port': '29501' } }), 'v1');
  assert.deepEqual(describeDisagreement([a, b]), []);
  for (const k of ['block_size', 'model.n_embd', 'trainer_config.batch_size', 'trainer_config.gradient_accumulation_steps', 'trainer_config.mixed_precision', 'trainer_config.max_lr', 'seed', 'distributed.timeout_s']) {
    assert.ok(k in a, `${k} is compared`);
  }
  assert.deepEqual(describeDisagreement([a, sharedSettings(loadConfig(), 'v2')]), ['code: v1 on rank 0; v2 on rank 1']);
});

test('each differing key is named once with its values and the ranks that have them', () => {
  const s = (eval_interval: number, batch: number): Record<string, unknown> => ({ 'trainer_config.eval_interval': eval_interval, 'trainer_config.batch_size': batch, seed: 1 });
  assert.deepEqual(describeDisagreement([s(4, 8), s(8, 8), s(4, 12)]), [
    'trainer_config.batch_size: 8 on ranks 0, 1; 12 on rank 2',
    'trainer_config.eval_interval: 4 on ranks 0, 2; 8 on rank 1',
  ]);
});
