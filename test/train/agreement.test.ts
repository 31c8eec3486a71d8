// Which settings the ranks of a job must share, and how a disagreement reads.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
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

test("the code version ignores a compiled file whose source is gone (tsc never deletes one)", () => {
  const distSrc = fileURLToPath(new URL('../../src/', import.meta.url));
  const version = (): string => execFileSync(process.execPath, ['--input-type=module', '-e', `import { codeVersion } from '${pathToFileURL(path.join(distSrc, 'train/code-version.js')).href}'; process.stdout.write(codeVersion());`], { encoding: 'utf8' });
  const before = version();
  assert.match(before, /^\d+\.\d+\.\d+\+[0-9a-f]{12}$/);
  const stale = path.join(distSrc, 'util', `zz-removed-source-${process.pid}.js`);
  writeFileSync(stale, 'export const leftover = 1;\n');
  try {
    assert.equal(version(), before, 'a leftover output changed the code version');
  } finally {
    rmSync(stale, { force: true });
  }
});
