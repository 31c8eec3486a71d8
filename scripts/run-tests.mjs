#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with Node's built-in runner. Extra arguments filter the
// files by substring: `npm run test:only -- torch/` runs only the tensor-engine tests.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const testDir = path.join(root, 'dist', 'test');

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

// tsc never deletes output: a test compiled from a file since renamed or removed would still run. Only files
// whose TypeScript source exists count.
const hasSource = (f) => existsSync(path.join(root, path.relative(path.join(root, 'dist'), f)).replace(/\.js$/, '.ts'));
// Arguments: substrings a test file's path must contain (any of them); `--skip=SUBSTRING` leaves matching files out.
const args = process.argv.slice(2);
const filters = args.filter((a) => !a.startsWith('--skip='));
const skips = args.filter((a) => a.startsWith('--skip=')).map((a) => a.slice('--skip='.length));
const rel = (f) => path.relative(testDir, f);
const files = find(testDir).filter((f) => hasSource(f) && (filters.length === 0 || filters.some((s) => f.includes(s))) && !skips.some((s) => rel(f).includes(s)));
if (skips.length) console.log(`# skipped here: test files under ${skips.join(', ')}`);
if (files.length === 0) {
  console.error(`no test files found under ${testDir}${filters.length ? ` matching ${filters.join(', ')}` : ''}; run npm run setup first`);
  process.exit(1);
}
const reporter = process.env.TEST_REPORTER ?? 'spec';
const r = spawnSync(process.execPath, ['--test', `--test-reporter=${reporter}`, '--test-timeout=600000', ...files], {
  stdio: 'inherit',
  cwd: root,
});
process.exit(r.status ?? 1);
