// Which code a rank runs: the package version and a hash of the compiled JavaScript, so that ranks of one job
// on machines with different checkouts are caught at rendezvous instead of training with different programs.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/**
 * e.g. "0.1.0+3f9a01c2d4e5": version and the first hex digits of a sha256 over dist/src/**\/*.js (~5 ms, once).
 * In a checkout (src/ beside dist/), only outputs of sources that exist count: tsc never deletes the output of a
 * renamed or removed source, and such a leftover must not make two machines on the same commit disagree.
 */
export function codeVersion(): string {
  if (cached !== undefined) return cached;
  const srcRoot = fileURLToPath(new URL('..', import.meta.url)); // dist/src
  const pkg = JSON.parse(readFileSync(path.join(srcRoot, '..', '..', 'package.json'), 'utf8')) as { version: string };
  const sources = path.join(srcRoot, '..', '..', 'src');
  const checkout = existsSync(sources);
  const hash = createHash('sha256');
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(dir, e.name);
      const rel = path.relative(srcRoot, p);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js') && (!checkout || existsSync(path.join(sources, rel.replace(/\.js$/, '.ts'))))) {
        hash.update(rel).update('\0').update(readFileSync(p)).update('\0');
      }
    }
  };
  walk(srcRoot);
  cached = `${pkg.version}+${hash.digest('hex').slice(0, 12)}`;
  return cached;
}
