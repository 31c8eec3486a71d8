// The README's configuration reference, generated from SCHEMA so the two cannot drift apart (a test compares
// them). `node dist/src/train/config-doc.js --write README.md` rewrites the block between the markers.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isField, SCHEMA, type Field, type Section } from './config-schema.js';

export const START = '<!-- config-reference:start (generated from src/train/config-schema.ts) -->';
export const END = '<!-- config-reference:end -->';

function typeText(f: Field): string {
  return typeof f.type === 'string' ? f.type : f.type.enum.join(' \\| ');
}

function defaultText(v: unknown): string {
  if (v === null) return '—';
  if (typeof v === 'string') return `\`${v}\``;
  return `\`${String(v)}\``;
}

function rows(section: Section, prefix: string, out: string[]): void {
  for (const [key, spec] of Object.entries(section)) {
    const name = prefix + key;
    if (isField(spec)) out.push(`| \`${name}\` | ${typeText(spec)} | ${defaultText(spec.default)} | ${spec.doc.replace(/\|/g, '\\|')} |`);
    else rows(spec, `${name}.`, out);
  }
}

export function configReferenceMarkdown(): string {
  const out = ['| key | type | default | meaning |', '|---|---|---|---|'];
  rows(SCHEMA, '', out);
  return [START, ...out, END].join('\n');
}

/** Replaces the generated block in a markdown file's text. */
export function replaceBlock(text: string): string {
  const a = text.indexOf(START);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error('config reference markers not found');
  return text.slice(0, a) + configReferenceMarkdown() + text.slice(b + END.length);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const i = process.argv.indexOf('--write');
  if (i >= 0) {
    const file = process.argv[i + 1] ?? 'README.md';
    writeFileSync(file, replaceBlock(readFileSync(file, 'utf8')));
  } else {
    process.stdout.write(configReferenceMarkdown() + '\n');
  }
}
