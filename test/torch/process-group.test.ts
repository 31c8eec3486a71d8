import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { freePort } from '../helpers/ports.js';
import { runNode, type ChildResult } from '../helpers/children.js';

const worker = fileURLToPath(new URL('./process-group-worker.js', import.meta.url));

async function launch(worldSize: number, scenario: string, timeoutMs: number): Promise<ChildResult[]> {
  const port = await freePort();
  return Promise.all(
    Array.from({ length: worldSize }, (_, rank) =>
      runNode([worker], { RANK: String(rank), WORLD_SIZE: String(worldSize), MASTER_PORT: String(port), SCENARIO: scenario, TIMEOUT_MS: String(timeoutMs) }, 90_000),
    ),
  );
}

const lastJson = (r: ChildResult): Record<string, unknown> => {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    throw new Error(`rank printed no result (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
  }
};

test('Gloo allreduce, broadcast, barrier and allgather across 3 real processes', async () => {
  const results = await launch(3, 'collectives', 30_000);
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  for (const [rank, r] of results.entries()) {
    const o = lastJson(r);
    assert.equal(o.rank, rank);
    assert.deepEqual(o.a, [[6, 6, 6], [6, 6, 6]]);
    assert.deepEqual(o.b, [30, 3]);
    assert.deepEqual(o.c, [[0, 9], [3, 12], [6, 15]]);
    assert.equal(o.avg, 1);
    assert.equal(o.max, 4);
    assert.deepEqual(o.bc, [42, 42, 42]);
    assert.deepEqual(o.gathered, [[0, 0], [1, 1], [2, 4]]);
    assert.deepEqual(o.x, [3, 3, 3, 3]);
    assert.deepEqual(o.y, [6, 6, 6, 6]);
    if (rank !== 2) assert.ok((o.ticks as number) >= 5, `event loop froze during the barrier (${o.ticks} ticks)`);
  }
});

test('a rank that exits makes the others fail with an error naming it, within the timeout, queued collectives included', async () => {
  const timeoutMs = 8_000;
  const results = await launch(3, 'dies', timeoutMs);
  assert.equal(results[2]!.code, 3);
  for (const r of results.slice(0, 2)) {
    assert.equal(r.code, 0, r.stderr);
    const o = lastJson(r);
    assert.equal(typeof o.error, 'string', 'the collective should have failed');
    assert.match(o.error as string, /rank 2 did not respond/);
    assert.equal(o.failed, 5, 'every queued collective fails');
    assert.ok((o.ms as number) < timeoutMs + 6_000, `took ${o.ms} ms`);
  }
});

test('rendezvous with a missing peer fails within the timeout instead of hanging', async () => {
  const port = await freePort();
  const r = await runNode([worker], { RANK: '0', WORLD_SIZE: '2', MASTER_PORT: String(port), SCENARIO: 'collectives', TIMEOUT_MS: '3000' }, 60_000);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /rank 0\/2: not all 2 ranks of this job joined at 127\.0\.0\.1:\d+ within \d+\.\d s/);
  assert.ok(r.ms < 30_000, `took ${r.ms} ms`);
});
