import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { freePort } from '../helpers/ports.js';
import { runNode } from '../helpers/children.js';

const worker = fileURLToPath(new URL('./ddp-worker.js', import.meta.url));

async function run(world: number, overlap = false): Promise<{ rank: number; checksum: number; sample: number[] }[]> {
  const port = await freePort();
  const env = (rank: number) => ({ RANK: String(rank), WORLD_SIZE: String(world), MASTER_PORT: String(port), STEPS: '3', OVERLAP: overlap ? '1' : '0' });
  const results = await Promise.all(
    Array.from({ length: world }, (_, rank) => runNode([worker], env(rank), 120_000)),
  );
  return results.map((r) => {
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as { rank: number; checksum: number; sample: number[] };
  });
}

for (const overlap of [false, true]) {
  test(`world 2 × batch b equals world 1 × batch 2b on the same samples, and ranks stay identical (all-reduce ${overlap ? 'overlapped with backward' : 'after backward'})`, async () => {
    const [single] = await run(1);
    const two = await run(2, overlap);
    assert.equal(two[0]!.checksum, two[1]!.checksum, 'ranks diverged');
    assert.deepEqual(two[0]!.sample, two[1]!.sample);
    two[0]!.sample.forEach((v, i) => assert.ok(Math.abs(v - single!.sample[i]!) < 1e-4, `weight ${i}: ${v} vs ${single!.sample[i]}`));
    assert.ok(Math.abs(two[0]!.checksum - single!.checksum) < 1e-2 * Math.max(1, Math.abs(single!.checksum)));
  });
}
