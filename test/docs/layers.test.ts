// The import graph of src/ against the layer order in docs/architecture.md: imports point down the layers only,
// folders of one layer do not import each other, and no file reaches itself through its imports. The order is
// written once, in the document's ```layers block; this test reads it from there.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const srcDir = path.join(root, 'src');

/** Layers from top to bottom, each a set of top-level folders of src/. */
function layerOrder(): string[][] {
  const doc = readFileSync(path.join(root, 'docs', 'architecture.md'), 'utf8');
  const block = /```layers\n([\s\S]*?)```/.exec(doc);
  assert.ok(block, 'docs/architecture.md must hold a ```layers block (one layer per line, top first)');
  return block[1]!
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim())
    .filter((line) => line !== '')
    .map((line) => line.split(/[,\s]+/).filter(Boolean).map((f) => f.replace(/\/$/, '')));
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [p] : [];
  });
}

/** Relative specifiers of every import in `text`: static, type-only, re-exports, side-effect and dynamic. */
export function importSpecifiers(source: string): string[] {
  // Comments (doc examples show imports) are not imports.
  const text = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out: string[] = [];
  const patterns = [/\bfrom\s+'(\.[^']*)'/g, /\bimport\s+'(\.[^']*)'/g, /\bimport\(\s*'(\.[^']*)'\s*\)/g];
  for (const re of patterns) for (const m of text.matchAll(re)) out.push(m[1]!);
  return out;
}

function resolveImport(from: string, spec: string): string {
  const target = path.resolve(path.dirname(from), spec);
  const ts = target.replace(/\.js$/, '.ts');
  for (const candidate of [ts, path.join(target, 'index.ts')]) {
    try {
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      /* try the next */
    }
  }
  assert.fail(`${path.relative(root, from)} imports '${spec}', which is no source file`);
}

const folderOf = (file: string): string => path.relative(srcDir, file).split(path.sep)[0]!;

const files = sourceFiles(srcDir);
const graph = new Map(files.map((f) => [f, [...new Set(importSpecifiers(readFileSync(f, 'utf8')).map((s) => resolveImport(f, s)))]]));

test('the import scanner sees every kind of import', () => {
  const text = "import { a } from './a.js';\nimport type { B } from '../b.js';\nexport { c } from './c.js';\nimport './d.js';\nconst e = await import('./e.js');\nimport x from 'node:fs';\n// import { f } from './f.js';\n/** import('./g.js') */";
  assert.deepEqual(importSpecifiers(text).sort(), ['../b.js', './a.js', './c.js', './d.js', './e.js']);
});

test('every folder of src/ has a place in the layer order', () => {
  const listed = new Set(layerOrder().flat());
  const folders = [...new Set(files.map(folderOf))].filter((f) => !f.endsWith('.ts'));
  const unlisted = folders.filter((f) => !listed.has(f));
  assert.deepEqual(unlisted, [], `add ${unlisted.join(', ')} to the layers block of docs/architecture.md`);
  const missing = [...listed].filter((f) => !folders.includes(f));
  assert.deepEqual(missing, [], `the layers block names folders src/ does not have: ${missing.join(', ')}`);
});

test('imports only point down the layers', () => {
  const rank = new Map(layerOrder().flatMap((folders, i) => folders.map((f) => [f, i] as const)));
  const upward: string[] = [];
  for (const [file, deps] of graph) {
    const from = folderOf(file);
    for (const dep of deps) {
      const to = folderOf(dep);
      if (to === from) continue;
      if (rank.get(to)! <= rank.get(from)!) upward.push(`${path.relative(root, file)} → ${path.relative(root, dep)} (${from} may not import ${to})`);
    }
  }
  assert.deepEqual(upward, []);
});

test('no import cycles between files', () => {
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (file: string, trail: string[]): void => {
    state.set(file, 'open');
    const here = [...trail, file];
    for (const dep of graph.get(file) ?? []) {
      if (state.get(dep) === 'open') cycles.push([...here.slice(here.indexOf(dep)), dep].map((f) => path.relative(srcDir, f)).join(' → '));
      else if (!state.has(dep)) visit(dep, here);
    }
    state.set(file, 'done');
  };
  for (const f of files) if (!state.has(f)) visit(f, []);
  assert.deepEqual(cycles, []);
});

test('no source folder is named like build output', () => {
  const dirs = (dir: string): string[] =>
    readdirSync(dir).flatMap((n) => (statSync(path.join(dir, n)).isDirectory() ? [path.join(dir, n), ...dirs(path.join(dir, n))] : []));
  const bad = dirs(srcDir).filter((d) => ['dist', 'build', 'out', 'lib'].includes(path.basename(d)));
  assert.deepEqual(bad.map((d) => path.relative(root, d)), []);
});
