import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { documentText } from '../../src/data/document.js';
import { jsonlTexts } from '../../src/data/jsonl.js';
import { lineChunks } from '../../src/data/lines.js';
import { DEFAULT_ALPACA_TEMPLATE, formatAlpaca } from '../../src/data/sources/alpaca.js';
import { expandPaths, localFilesSource, type LocalSourceOptions } from '../../src/data/sources/local.js';
import { UserError } from '../../src/util/errors.js';

let dir: string;
before(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-local-'));
  await fs.mkdir(path.join(dir, 'c/sub'), { recursive: true });
  await fs.writeFile(path.join(dir, 'c/b.txt'), 'second file');
  await fs.writeFile(path.join(dir, 'c/a.txt'), 'first file');
  await fs.writeFile(path.join(dir, 'c/sub/c.jsonl'), '{"text":"x"}\n\n{"text":"y"}\r\n');
  await fs.writeFile(path.join(dir, 'c/notes.md'), 'ignored in directories');
  await fs.writeFile(path.join(dir, 'c/.hidden.txt'), 'ignored');
});
after(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

/** The source's documents as text (whole .txt files come as bytes: documentText checks and decodes them). */
async function docs(opts: LocalSourceOptions): Promise<{ text: string; origin: string }[]> {
  const out: { text: string; origin: string }[] = [];
  for await (const d of (await localFilesSource(opts)).documents()) out.push({ text: documentText(d), origin: d.origin });
  return out;
}

async function write(name: string, data: string | Uint8Array): Promise<string> {
  const p = path.join(dir, name);
  await fs.writeFile(p, data);
  return p;
}

/** Asserts a UserError whose message names `file:line`. */
async function rejectsAt(p: Promise<unknown>, where: string, what: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof UserError, `not a UserError: ${e}`);
    assert.ok(e.message.includes(where), `'${e.message}' does not name ${where}`);
    assert.match(e.message, what);
    return true;
  });
}

test('directories recurse (sorted, known types, no hidden files); globs match', async () => {
  const c = path.join(dir, 'c');
  assert.deepEqual(await expandPaths([c]), [path.join(c, 'a.txt'), path.join(c, 'b.txt'), path.join(c, 'sub/c.jsonl')]);
  assert.deepEqual(await expandPaths([`${c}/*.txt`]), [path.join(c, 'a.txt'), path.join(c, 'b.txt')]);
  assert.deepEqual(await expandPaths([`${c}/**/*.jsonl`]), [path.join(c, 'sub/c.jsonl')]);
  const d = await docs({ paths: [c] });
  assert.deepEqual(d.map((x) => x.text), ['first file', 'second file', 'x', 'y']);
  assert.equal(d[3]!.origin, `${path.join(c, 'sub/c.jsonl')}:3`);
  await rejectsAt(expandPaths([`${c}/*.csv`]), '*.csv', /no files match/);
});

test('brace globs pick several types at once; a name that exists with glob characters in it is taken as written', async () => {
  const c = path.join(dir, 'c');
  assert.deepEqual(await expandPaths([`${c}/**/*.{txt,jsonl}`]), [path.join(c, 'a.txt'), path.join(c, 'b.txt'), path.join(c, 'sub/c.jsonl')]);
  assert.deepEqual(await expandPaths([`${c}/{a,sub/c}.*`]), [path.join(c, 'a.txt'), path.join(c, 'sub/c.jsonl')]);
  const literal = await write('notes[1].txt', 'bracketed name');
  assert.deepEqual(await expandPaths([literal]), [literal]);
  await rejectsAt(expandPaths([`${c}/*.{csv,tsv}`]), '{csv,tsv}', /no files match/);
});

test('txt: --split_on_blank_lines; json arrays; custom text field', async () => {
  const t = await write('p.txt', 'para one\nstill one\n\n\n  \npara two\n');
  assert.deepEqual((await docs({ paths: [t], splitOnBlankLines: true })).map((d) => [d.text, d.origin]), [
    ['para one\nstill one', `${t}:1`],
    ['para two', `${t}:6`],
  ]);
  const j = await write('arr.json', '[\n {"body": "a"},\n {"body": "b"}\n]');
  assert.deepEqual((await docs({ paths: [j], textField: 'body' })).map((d) => d.text), ['a', 'b']);
});

test('malformed inputs name the file and line', async () => {
  const badJson = await write('bad.jsonl', '{"text":"ok"}\n{"text": oops}\n');
  await rejectsAt(docs({ paths: [badJson] }), `${badJson}:2`, /not valid JSON/);
  const missing = await write('missing.jsonl', '{"text":"ok"}\n{"text":"ok"}\n{"body":"no text"}\n');
  await rejectsAt(docs({ paths: [missing] }), `${missing}:3`, /no 'text' field.*body/);
  const arr = await write('missing.json', '[\n  {"text": "a"},\n\n  {"nope": 1}\n]\n');
  await rejectsAt(docs({ paths: [arr] }), `${arr}:4`, /no 'text' field/);
  const bin = await write('bin.txt', new Uint8Array([0x68, 0x69, 0x0a, 0x00, 0x01, 0x02]));
  await rejectsAt(docs({ paths: [bin] }), `${bin}:2`, /binary/);
  const utf = await write('latin1.jsonl', Buffer.concat([Buffer.from('{"text":"a"}\n{"text":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]));
  await rejectsAt(docs({ paths: [utf] }), `${utf}:2`, /invalid UTF-8/);
  const utfTxt = await write('latin1.txt', Buffer.concat([Buffer.from('line\nline\ncaf'), Buffer.from([0xe9])]));
  await rejectsAt(docs({ paths: [utfTxt] }), `${utfTxt}:3`, /invalid UTF-8/);
  await rejectsAt(docs({ paths: [path.join(dir, 'nope.txt')] }), 'nope.txt', /does not exist/);
  if (process.getuid?.() !== 0) {
    const locked = await write('locked.txt', 'secret');
    await fs.chmod(locked, 0o000);
    await rejectsAt(docs({ paths: [locked] }), 'locked.txt', /not readable/);
  }
});

test('alpaca records become prompt + response documents', async () => {
  const withInput = formatAlpaca({ instruction: 'Add {input}', input: '2+2', output: '4' }, DEFAULT_ALPACA_TEMPLATE, 'r');
  assert.ok(withInput.includes('### Instruction:\nAdd {input}\n\n### Input:\n2+2\n\n### Response:\n4'));
  assert.ok(withInput.endsWith('### Response:\n4'));
  const noInput = formatAlpaca({ instruction: 'Say hi', input: '', output: 'hi' }, DEFAULT_ALPACA_TEMPLATE, 'r');
  assert.ok(!noInput.includes('### Input'));
  const custom = { prompt_input: 'Q: {instruction} ({input})\nA: ', prompt_no_input: 'Q: {instruction}\nA: ' };
  const f = await write('alpaca.json', JSON.stringify([{ instruction: 'i', input: 'x', output: 'o' }, { instruction: 'j', output: 'p' }], null, 1));
  assert.deepEqual((await docs({ paths: [f], format: 'alpaca', template: custom })).map((d) => d.text), ['Q: i (x)\nA: o', 'Q: j\nA: p']);
  const bad = await write('alpaca.jsonl', '{"instruction":"i","output":"o"}\n{"instruction":"i"}\n');
  await rejectsAt(docs({ paths: [bad], format: 'alpaca' }), `${bad}:2`, /no 'output' field/);
});

test('JSON-lines chunks: whole lines, right first-line numbers, a line longer than a chunk kept whole', async () => {
  const body = 'a\n{"text":"bb"}\r\n\n' + 'x'.repeat(50) + '\nlast line without newline';
  const file = await write('chunks.jsonl', body);
  const chunks: { text: string; firstLine: number }[] = [];
  for await (const c of lineChunks(file, 8, (e) => e as Error)) chunks.push({ text: Buffer.from(c.bytes).toString(), firstLine: c.firstLine });
  assert.equal(chunks.map((c) => c.text).join(''), body);
  for (const c of chunks.slice(0, -1)) assert.ok(c.text.endsWith('\n'), JSON.stringify(c.text));
  let line = 1;
  for (const c of chunks) {
    assert.equal(c.firstLine, line);
    line += c.text.split('\n').length - 1;
  }
  assert.ok(chunks.some((c) => c.text === 'x'.repeat(50) + '\n'), 'the long line is one chunk');
  const { texts, lines } = jsonlTexts(Buffer.from('{"text":"p"}\r\n\n"q"\n'), 'f.jsonl', 10, {});
  assert.deepEqual(texts, ['p', 'q']);
  assert.deepEqual(lines, [10, 12]);
});
