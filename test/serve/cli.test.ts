// `nanogpt serve` as a user runs it: a child process. Start-up mistakes exit 2 naming the problem; SIGTERM stops
// accepting connections, lets a request in flight finish (or cancels it when the grace period runs out) and
// exits 0.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tinyCheckpoint } from './fixtures.js';
import { parseArgs } from '../../src/cli/args.js';
import { parseServeArgs, SERVE_FLAGS } from '../../src/cli/serve.js';
import { UserError } from '../../src/util/errors.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const bin = path.join(root, 'bin', 'nanogpt');
const env = { ...process.env, OMP_NUM_THREADS: '1' };
let dir = '';
let ckpt = '';

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-serve-cli-'));
  ckpt = await tinyCheckpoint(dir);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// Without the tcmalloc re-exec (one process instead of two) where the test is not about signals.
const direct = { ...env, NANOGPT_ALLOCATOR: 'system' };

/** Runs serve, which must exit 2 with a message matching `pattern` and no stack trace; returns its stderr. */
function assertUserError(args: string[], pattern: RegExp): string {
  const r = spawnSync(process.execPath, [bin, 'serve', ...args], { cwd: dir, encoding: 'utf8', timeout: 60_000, env: direct });
  assert.equal(r.status, 2, `${args.join(' ')}: exit code; stderr: ${r.stderr}`);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  return r.stderr;
}

test('bad flags are UserErrors naming the flag', () => {
  const parse = (argv: string[], e: NodeJS.ProcessEnv = {}) => parseServeArgs(parseArgs(argv, { values: SERVE_FLAGS }, 'serve'), e);
  const cases: [string[], RegExp][] = [
    [['--port', '70000'], /--port must be <= 65535/],
    [['--api_key', 'short'], /--api_key must be at least 8 characters/],
    [['--init_from', 'gpt5'], /--init_from 'gpt5' is not a pretrained model/],
    [['--ckpt_path', 'a', '--init_from', 'gpt2'], /both given/],
    [['--max_batch', '0'], /--max_batch must be >= 1/],
    [['--dtype', 'fp16'], /--dtype must be fp32 or bf16/],
    [['extra'], /unexpected argument 'extra'/],
  ];
  for (const [argv, pattern] of cases) assert.throws(() => parse(argv), (err: unknown) => err instanceof UserError && pattern.test(err.message), argv.join(' '));
  const s = parse([], { NANOGPT_API_KEY: 'from-the-environment' });
  assert.equal(s.host, '127.0.0.1', 'loopback by default');
  assert.equal(s.port, 8000);
  assert.equal(s.apiKey, 'from-the-environment');
});

test('start-up mistakes exit 2 with the problem and the fix', async () => {
  // A missing file is found before the server announces itself.
  const missing = assertUserError(['--ckpt_path', path.join(dir, 'missing.pt'), '--port', '0'], /no checkpoint at .*missing\.pt[\s\S]*fix:/);
  assert.doesNotMatch(missing, /listening on/);
  // Found but unusable: the model thread's UserError reaches the command (exit 2, not a crash or a hang).
  writeFileSync(path.join(dir, 'garbage.pt'), 'this is not a checkpoint at all, just some text');
  assertUserError(['--ckpt_path', path.join(dir, 'garbage.pt'), '--port', '0'], /garbage\.pt/);
  const busy = net.createServer();
  await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
  try {
    const port = (busy.address() as net.AddressInfo).port;
    const out = assertUserError(['--ckpt_path', ckpt, '--port', String(port)], new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use[\\s\\S]*fix: choose another with --port`));
    assert.doesNotMatch(out, /MASTER_PORT|master_port/, 'the advice is about serve, not the rendezvous');
  } finally {
    busy.close();
  }
});

interface Served {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts `nanogpt serve --port 0 …` and waits (bounded) for the line saying it serves. */
async function serve(extra: string[], childEnv: NodeJS.ProcessEnv = env): Promise<Served> {
  const child = spawn(process.execPath, [bin, 'serve', '--ckpt_path', ckpt, '--port', '0', '--threads', '1', ...extra], { cwd: dir, env: childEnv, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    clearTimeout(killer);
    resolve(code);
  }));
  const end = Date.now() + 45_000;
  while (!/serving .* at (http:\S+)/.test(err)) {
    if (Date.now() > end || child.exitCode !== null) throw new Error(`serve did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = /serving .* at (http:\S+)/.exec(err)![1]!.replace('0.0.0.0', '127.0.0.1');
  return { child, url, stderr: () => err, exited };
}

/** A streaming completion read to its end: its text and the raw SSE lines. */
async function streamed(url: string, body: object, onFirstChunk: () => void): Promise<{ events: string[]; text: string }> {
  const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }), signal: AbortSignal.timeout(30_000) });
  assert.equal(r.status, 200);
  const events: string[] = [];
  let buf = '';
  let first = true;
  for await (const chunk of r.body!) {
    buf += Buffer.from(chunk).toString('utf8');
    const parts = buf.split('\n\n');
    buf = parts.pop()!;
    events.push(...parts);
    if (first && events.length > 0) {
      first = false;
      onFirstChunk();
    }
  }
  const text = events.filter((e) => e !== 'data: [DONE]').map((e) => JSON.parse(e.slice(6)) as { choices?: { text: string }[] }).flatMap((c) => c.choices ?? []).map((c) => c.text).join('');
  return { events, text };
}

test('SIGTERM: stops accepting, lets the request in flight finish, exits 0', async () => {
  // Through bin/nanogpt's tcmalloc re-exec where installed: the signal reaches the parent, which forwards it.
  const s = await serve(['--grace_period', '30', '--max_tokens', '5000']);
  // Past the 64-token context (each later token a full-window forward): in flight for seconds, done well within 30 s.
  let finished = false;
  const run = streamed(s.url, { prompt: 'drain me', max_tokens: 300, temperature: 0.8, seed: 5 }, () => s.child.kill('SIGTERM')).finally(() => (finished = true));
  // While it drains, the listening socket is closed: new connections are refused.
  const end = Date.now() + 20_000;
  while (!/SIGTERM: no longer accepting/.test(s.stderr())) {
    assert.ok(Date.now() < end, 'the server logs the signal');
    await new Promise((r) => setTimeout(r, 20));
  }
  await assert.rejects(fetch(`${s.url}/health`, { signal: AbortSignal.timeout(5000) }), 'no new connections while draining');
  assert.equal(finished, false, 'the request was still in flight when new connections were refused');
  const { events } = await run;
  assert.equal(events.at(-1), 'data: [DONE]', 'the request in flight ran to its end');
  const last = JSON.parse(events.at(-2)!.slice(6)) as { choices: { finish_reason: string }[] };
  assert.ok(['length', 'stop'].includes(last.choices[0]!.finish_reason));
  assert.equal(await s.exited, 0, s.stderr());
  assert.match(s.stderr(), /SIGTERM: no longer accepting requests[^\n]*\n(.*\n)*POST \/v1\/completions 200/, 'the request ended after the signal');
  await assert.rejects(fetch(`${s.url}/health`, { signal: AbortSignal.timeout(5000) }), 'the port is closed');
});

test('SIGTERM with a short grace period cancels what is still running and exits 0; --host 0.0.0.0 warns', async () => {
  const s = await serve(['--grace_period', '0.3', '--max_tokens', '1000000', '--host', '0.0.0.0'], direct);
  assert.match(s.stderr(), /warning: binding 0\.0\.0\.0 makes the server reachable from other machines with no --api_key/);
  const t0 = Date.now();
  const { events } = await streamed(s.url, { prompt: 'never ends', max_tokens: 1_000_000 }, () => s.child.kill('SIGTERM'));
  const error = JSON.parse(events.at(-1)!.slice(6)) as { error: { code: string } };
  assert.equal(error.error.code, 'shutting_down', 'the stream ends with an error event');
  assert.equal(await s.exited, 0, s.stderr());
  assert.ok(Date.now() - t0 < 15_000, 'well before the request would have finished');
  assert.match(s.stderr(), /grace period over: cancelling 1 request in flight/);
});
