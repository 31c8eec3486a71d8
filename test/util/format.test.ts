import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { formatBytes, formatCount, formatDuration, plural } from '../../src/util/format.js';

test('byte sizes keep their digits at every scale: no "0.0 MB" for a small file', () => {
  assert.equal(formatBytes(0), '0 bytes');
  assert.equal(formatBytes(1), '1 byte');
  assert.equal(formatBytes(999), '999 bytes');
  assert.equal(formatBytes(1_500), '1.5 kB');
  assert.equal(formatBytes(12_345_678), '12.3 MB');
  assert.equal(formatBytes(1_520_000_000), '1.52 GB');
});

test('plural: singular only for exactly one', () => {
  assert.equal(plural(1, 'thread'), '1 thread');
  assert.equal(plural(0, 'thread'), '0 threads');
  assert.equal(plural(2, 'process', 'processes'), '2 processes');
});

test('counts and durations', () => {
  assert.equal(formatCount(124_440_000), '124.44M');
  assert.equal(formatCount(950), '950');
  assert.equal(formatDuration(3_723_000), '01:02:03');
});
