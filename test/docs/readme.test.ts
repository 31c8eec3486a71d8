import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configReferenceMarkdown } from '../../src/train/config-doc.js';
import { runNode } from '../helpers/children.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const readme = readFileSync(`${root}README.md`, 'utf8');

test('the README configuration reference is the one generated from the schema', () => {
  assert.ok(readme.includes(configReferenceMarkdown()), 'run: node dist/src/train/config-doc.js --write README.md');
});

test('the README quick start has the two commands, and package.json defines them', () => {
  const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { scripts: Record<string, string> };
  assert.match(readme, /^npm run demo\b/m);
  assert.match(readme, /^npm test\b/m);
  assert.match(pkg.scripts.demo!, /scripts\/setup\.sh && node bin\/nanogpt demo/);
  assert.match(pkg.scripts.test!, /scripts\/setup\.sh --test/);
  // The demo installs only what it runs: no browser, no PyTorch.
  assert.doesNotMatch(pkg.scripts.demo!, /--test|--bench/);
});

test('every nanogpt command the README shows exists and has help', async () => {
  const shown = new Set([...readme.matchAll(/^nanogpt ([a-z]+)/gm)].map((m) => m[1]!));
  assert.ok(shown.size >= 6, [...shown].join(','));
  for (const cmd of shown) {
    const r = await runNode([`${root}bin/nanogpt`, cmd, '--help'], {}, 60_000);
    assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`nanogpt ${cmd}`), `help of ${cmd}`);
  }
});

test('nanogpt --help lists the commands in workflow order, each summary in one style (lower-case verb, no full stop)', async () => {
  const r = await runNode([`${root}bin/nanogpt`, '--help'], {}, 60_000);
  assert.equal(r.code, 0, r.stderr);
  const rows = [...r.stdout.matchAll(/^ {2}([a-z]+) +(.+)$/gm)].map((m) => ({ name: m[1]!, summary: m[2]! }));
  assert.deepEqual(
    rows.map((x) => x.name),
    ['demo', 'prepare', 'download', 'train', 'launch', 'sample', 'serve', 'export', 'report'],
  );
  for (const { name, summary } of rows) assert.match(summary, /^[a-z][^\n]*[^.]$/, `${name}: '${summary}'`);
});
