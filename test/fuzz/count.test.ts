// The fuzz suite's size: at least 200 distinct malformed inputs across all families.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { canMeasureMemory } from './harness.js';
import { configCases } from './cases-config.js';
import { checkpointCases } from './cases-checkpoint.js';
import { snapshotCases } from './cases-snapshot.js';
import { pathCases, sampleCases, textCases, tokenCases } from './cases-data.js';
import { serveCases } from './cases-serve.js';

test('the fuzz suite has at least 200 distinct cases', () => {
  const all = [configCases, checkpointCases, snapshotCases, tokenCases, textCases, sampleCases, pathCases, serveCases].flatMap((make) => make());
  const names = all.map((c) => `${c.family}/${c.name}`);
  assert.ok(names.length >= 200, `${names.length} cases`);
  assert.equal(new Set(names).size, names.length, 'case names are unique');
  console.log(`# ${names.length} fuzz cases${canMeasureMemory ? '' : '; SKIPPED memory bound: /usr/bin/time (Debian package "time") is not installed'}`);
});
