// docs/aws.md is a recipe users follow line by line on machines we never see: every nanogpt command in it must
// exist with the flags it shows, and every config key it passes must be one the trainer knows.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { runNode } from '../helpers/children.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const doc = readFileSync(`${root}docs/aws.md`, 'utf8');
const readme = readFileSync(`${root}README.md`, 'utf8');

/** `node bin/nanogpt CMD args…` invocations in the doc's code blocks, split at ` -- ` (launch's inner command). */
function invocations(): { cmd: string; flags: string[] }[] {
  const out: { cmd: string; flags: string[] }[] = [];
  for (const m of doc.matchAll(/node bin\/nanogpt ([a-z]+)([^\n'`]*)/g)) {
    const [outer, inner] = m[2]!.split(' -- ');
    out.push({ cmd: m[1]!, flags: [...outer!.matchAll(/ --([a-z_.]+)/g)].map((f) => f[1]!) });
    const nested = inner !== undefined ? /^([a-z]+)(.*)$/.exec(inner) : null;
    if (nested) out.push({ cmd: nested[1]!, flags: [...nested[2]!.matchAll(/ --([a-z_.]+)/g)].map((f) => f[1]!) });
  }
  return out;
}

test('every nanogpt command in docs/aws.md exists with the flags it shows; dotted keys are documented config keys', async () => {
  const calls = invocations();
  assert.deepEqual([...new Set(calls.map((c) => c.cmd))].sort(), ['download', 'launch', 'prepare', 'train']);
  const help = new Map<string, string>();
  for (const { cmd, flags } of calls) {
    if (!help.has(cmd)) {
      const r = await runNode([`${root}bin/nanogpt`, cmd, '--help'], {}, 60_000);
      assert.equal(r.code, 0, `${cmd} --help: ${r.stderr}`);
      help.set(cmd, r.stdout);
    }
    for (const f of flags) {
      if (f.includes('.')) assert.ok(readme.includes(`| \`${f}\` |`), `docs/aws.md passes --${f} to ${cmd}, which is not in the README's configuration reference`);
      else assert.ok(help.get(cmd)!.includes(`--${f}`), `docs/aws.md uses ${cmd} --${f}, which ${cmd} --help does not list`);
    }
  }
});

test('docs/aws.md links only to files that exist', () => {
  for (const m of doc.matchAll(/\]\(([^)#:]+)\)/g)) {
    assert.doesNotThrow(() => readFileSync(new URL(m[1]!, `file://${root}docs/`)), `broken link ${m[1]}`);
  }
});
