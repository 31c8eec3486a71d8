// The HTTP API through the official `openai` client and raw requests: completions streamed and not, the same
// seeded text alone and among concurrent requests, every kind of bad input answered in OpenAI's error shape (the
// server serving on afterwards), a full queue, a client that disconnects, the API key.
import { after, before, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import OpenAI from 'openai';
import { CompletionServer } from '../../src/serve/server.js';
import { startServer, tinyCheckpoint, waitFor, type TestServer } from './fixtures.js';

let dir = '';
let ckpt = '';
let srv: TestServer;
let client: OpenAI;
const MODEL = 'tiny.pt';

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-serve-'));
  ckpt = await tinyCheckpoint(dir);
  srv = await startServer(ckpt);
  client = new OpenAI({ apiKey: 'unused', baseURL: `${srv.url}/v1`, maxRetries: 0, timeout: 20_000 });
});

after(async () => {
  await srv?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function post(url: string, body: string | object, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body), signal: AbortSignal.timeout(20_000) });
  const text = await r.text();
  return { status: r.status, headers: r.headers, json: JSON.parse(text) };
}

async function stillServes(): Promise<void> {
  const r = await client.completions.create({ model: MODEL, prompt: 'still there?', max_tokens: 3, seed: 1 });
  assert.equal(r.choices[0]!.finish_reason, 'length');
  assert.equal(r.usage!.completion_tokens, 3);
}

test('the openai client: a completion, the same one streamed, and /v1/models', async () => {
  const models = await client.models.list();
  assert.deepEqual(models.data.map((m) => m.id), [MODEL]);
  const req = { model: MODEL, prompt: 'The meaning of life is', max_tokens: 12, temperature: 0.8, seed: 123 };
  const r = await client.completions.create(req);
  assert.equal(r.object, 'text_completion');
  assert.equal(r.model, MODEL);
  assert.equal(r.choices.length, 1);
  assert.ok(r.choices[0]!.text.length > 0);
  assert.ok(['length', 'stop'].includes(r.choices[0]!.finish_reason));
  assert.equal(r.usage!.prompt_tokens, 5);
  assert.ok(r.usage!.completion_tokens >= 1 && r.usage!.completion_tokens <= 12);
  assert.equal(r.usage!.total_tokens, r.usage!.prompt_tokens + r.usage!.completion_tokens);

  const stream = await client.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let chunks = 0;
  let finish: string | null = null;
  let usage: OpenAI.CompletionUsage | undefined;
  for await (const chunk of stream) {
    chunks++;
    for (const c of chunk.choices) {
      text += c.text;
      finish ??= c.finish_reason;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(chunks >= 3, `several chunks (${chunks})`);
  assert.equal(text, r.choices[0]!.text, 'streamed text = the same seeded request unstreamed');
  assert.equal(finish, r.choices[0]!.finish_reason);
  assert.deepEqual(usage, r.usage);

  // n choices and two prompts: OpenAI's numbering (prompt × n + i); choice i of a prompt is seeded (seed, i).
  const multi = await client.completions.create({ model: MODEL, prompt: ['The meaning of life is', 'Hello'], n: 2, max_tokens: 12, temperature: 0.8, seed: 123 });
  assert.deepEqual(multi.choices.map((c) => c.index), [0, 1, 2, 3]);
  assert.equal(multi.choices[0]!.text, r.choices[0]!.text);
  assert.notEqual(multi.choices[1]!.text, multi.choices[0]!.text);
});

test('a stop string ends the text before it, streamed and not', async () => {
  const base = await client.completions.create({ model: MODEL, prompt: 'a b c', max_tokens: 20, temperature: 0, seed: 1 });
  const full = base.choices[0]!.text;
  assert.ok(full.length > 6, full);
  const stop = full.slice(4, 7); // spans tokens in general
  const cut = full.slice(0, full.indexOf(stop));
  const r = await client.completions.create({ model: MODEL, prompt: 'a b c', max_tokens: 20, temperature: 0, stop });
  assert.equal(r.choices[0]!.text, cut);
  assert.equal(r.choices[0]!.finish_reason, 'stop');
  let streamed = '';
  for await (const chunk of await client.completions.create({ model: MODEL, prompt: 'a b c', max_tokens: 20, temperature: 0, stop: [stop], stream: true })) {
    for (const c of chunk.choices) streamed += c.text;
  }
  assert.equal(streamed, cut);
});

test('a seeded request gives the same tokens alone and among 8 concurrent requests (decoded as one batch)', async () => {
  const probe = { model: MODEL, prompt: 'Once upon a time', max_tokens: 24, temperature: 1.0, top_p: 0.95, seed: 2024 };
  const alone = await client.completions.create(probe);
  const peakBefore = srv.model.engine.stats.peakBatch;
  const others = Array.from({ length: 8 }, (_, i) =>
    client.completions.create({ model: MODEL, prompt: `other prompt number ${i}`, max_tokens: 16 + 4 * i, temperature: 0.5 + i * 0.1, seed: i }),
  );
  const [together] = await Promise.all([client.completions.create(probe), ...others]);
  assert.equal(together.choices[0]!.text, alone.choices[0]!.text);
  assert.equal(together.usage!.completion_tokens, alone.usage!.completion_tokens);
  const peak = srv.model.engine.stats.peakBatch;
  assert.ok(peak >= 4 && peak >= peakBefore, `requests were decoded together (peak batch ${peak})`);
});

test('a prompt longer than the context is cut from the left, with a warning', async () => {
  const long = 'word '.repeat(200); // 200+ tokens, context 64
  const r = await post(`${srv.url}/v1/completions`, { prompt: long, max_tokens: 4, seed: 3 });
  assert.equal(r.status, 200);
  assert.equal(r.json.usage.prompt_tokens, 64);
  assert.match(r.json.warnings[0], /prompt 0 has 2\d\d tokens, more than the model's context of 64: it was cut from the left/);
});

test('bad input: each answered with its status and an OpenAI-shaped error, and the server serves on', async () => {
  const url = `${srv.url}/v1/completions`;
  const cases: [string, string | object, number, RegExp, string | null][] = [
    ['malformed JSON', '{"prompt": "x",', 400, /not valid JSON/, null],
    ['not an object', '[1, 2]', 400, /must be a JSON object, got an array/, null],
    ['unknown field', { prompt: 'x', logprobs: 2 }, 400, /Unrecognized request argument supplied: logprobs/, 'logprobs'],
    ['prompt of wrong type', { prompt: 5 }, 400, /'prompt' must be a string or a non-empty array of strings, got number 5/, 'prompt'],
    ['empty prompt array', { prompt: [] }, 400, /'prompt' must be/, 'prompt'],
    ['max_tokens as a string', { prompt: 'x', max_tokens: '10' }, 400, /'max_tokens' must be an integer >= 0, got string "10"/, 'max_tokens'],
    ['max_tokens over the cap', { prompt: 'x', max_tokens: 100_000 }, 400, /more than this server's limit of 256/, 'max_tokens'],
    ['temperature out of range', { prompt: 'x', temperature: 3 }, 400, /'temperature' must be a number from 0 to 2/, 'temperature'],
    ['top_p of 0', { prompt: 'x', top_p: 0 }, 400, /'top_p' must be a number in \(0, 1\]/, 'top_p'],
    ['n of 0', { prompt: 'x', n: 0 }, 400, /'n' must be an integer >= 1/, 'n'],
    ['too many sequences', { prompt: ['a', 'b'], n: 9 }, 400, /18 sequences, more than this server's limit of 16/, 'n'],
    ['stop of wrong type', { prompt: 'x', stop: [1] }, 400, /'stop' must be a string or an array of strings/, 'stop'],
    ['five stop strings', { prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] }, 400, /at most 4/, 'stop'],
    ['negative seed', { prompt: 'x', seed: -1 }, 400, /'seed' must be an integer >= 0/, 'seed'],
    ['stream not boolean', { prompt: 'x', stream: 'yes' }, 400, /'stream' must be a boolean/, 'stream'],
    ['stream_options without stream', { prompt: 'x', stream_options: { include_usage: true } }, 400, /only allowed with 'stream': true/, 'stream_options'],
    ['unknown model', { prompt: 'x', model: 'gpt-4' }, 404, /The model 'gpt-4' does not exist: this server serves 'tiny.pt'/, 'model'],
  ];
  for (const [name, body, status, message, param] of cases) {
    const r = await post(url, body);
    assert.equal(r.status, status, `${name}: ${JSON.stringify(r.json)}`);
    assert.deepEqual(Object.keys(r.json.error).sort(), ['code', 'message', 'param', 'type'], name);
    assert.match(r.json.error.message, message, name);
    assert.equal(r.json.error.type, 'invalid_request_error', name);
    assert.equal(r.json.error.param, param, name);
  }
  // Body over the limit (64 KiB here): 413, whether announced by Content-Length or not.
  const big = JSON.stringify({ prompt: 'x'.repeat(100 * 1024) });
  const r413 = await post(url, big);
  assert.equal(r413.status, 413);
  assert.equal(r413.json.error.code, 'request_too_large');
  const chunked = await fetch(url, {
    method: 'POST',
    body: new ReadableStream({
      start(c) {
        for (let i = 0; i < 10; i++) c.enqueue(new TextEncoder().encode(' '.repeat(10 * 1024)));
        c.close();
      },
    }),
    duplex: 'half',
    signal: AbortSignal.timeout(20_000),
  } as RequestInit);
  assert.equal(chunked.status, 413);
  assert.equal(((await chunked.json()) as { error: { code: string } }).error.code, 'request_too_large');
  // Wrong method, unknown route, chat completions (not implemented).
  const get = await fetch(url, { signal: AbortSignal.timeout(20_000) });
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
  const chat = await post(`${srv.url}/v1/chat/completions`, { messages: [] });
  assert.equal(chat.status, 404);
  assert.match(chat.json.error.message, /not chat completions/);
  // The openai client surfaces these as its typed errors.
  await assert.rejects(client.completions.create({ model: MODEL, prompt: 'x', temperature: 7 }), (err: unknown) => err instanceof OpenAI.BadRequestError && /temperature/.test(err.message));
  await stillServes();
});

test('GET /health, /metrics and / answer; metrics count requests and tokens', async () => {
  const health = await fetch(`${srv.url}/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(await health.json(), { status: 'ok', model: MODEL });
  const page = await fetch(`${srv.url}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type')!, /text\/html/);
  assert.match(await page.text(), /<textarea id="prompt"/);
  const metrics = await (await fetch(`${srv.url}/metrics`)).text();
  assert.match(metrics, /^# TYPE nanogpt_http_requests_total counter$/m);
  assert.match(metrics, /^nanogpt_http_requests_total\{route="\/v1\/completions",status="200"\} [1-9]\d*$/m);
  assert.match(metrics, /^nanogpt_http_requests_total\{route="\/v1\/completions",status="400"\} [1-9]\d*$/m);
  assert.match(metrics, /^nanogpt_completion_tokens_total [1-9]\d*$/m);
  assert.match(metrics, /^nanogpt_queue_length 0$/m);
  assert.match(metrics, /^nanogpt_request_duration_seconds_bucket\{le="\+Inf"\} [1-9]\d*$/m);
  assert.match(metrics, /^nanogpt_model_ready 1$/m);
});

test('a full queue answers 429 with Retry-After; a client that disconnects mid-stream frees its slot at once', async () => {
  // One slot, no queue, max_tokens cap high enough that the first request would hold the slot for minutes.
  const one = await startServer(ckpt, { maxBatch: 1, maxQueue: 0, maxTokens: 1_000_000 });
  try {
    const c = new OpenAI({ apiKey: 'unused', baseURL: `${one.url}/v1`, maxRetries: 0, timeout: 20_000 });
    const abort = new AbortController();
    const hog = await c.completions.create({ model: MODEL, prompt: 'hog', max_tokens: 1_000_000, stream: true }, { signal: abort.signal });
    const it = hog[Symbol.asyncIterator]();
    for (let i = 0; i < 3; i++) assert.equal((await it.next()).done, false);
    assert.equal(one.model.engine.inFlight, 1);

    const busy = await post(`${one.url}/v1/completions`, { prompt: 'x', max_tokens: 2 });
    assert.equal(busy.status, 429);
    assert.equal(busy.headers.get('retry-after'), '1');
    assert.equal(busy.json.error.type, 'rate_limit_error');
    assert.equal(busy.json.error.code, 'queue_full');

    abort.abort();
    await it.return?.();
    await waitFor('the slot to be freed', () => one.model.engine.inFlight === 0 && one.model.engine.stats.active === 0, 5000);
    const r = await c.completions.create({ model: MODEL, prompt: 'x', max_tokens: 2 });
    assert.equal(r.usage!.completion_tokens, 2);
  } finally {
    await one.close();
  }
});

test('with an API key: /v1/* needs the Bearer key; health and metrics do not', async () => {
  const keyed = await CompletionServer.listen({ host: '127.0.0.1', port: 0, apiKey: 'secret-key-123', maxTokens: 16, maxBatch: 16, maxQueue: 8, maxBodyBytes: 4096, maxSequencesPerRequest: 4 });
  keyed.serve(srv.model); // the same model behind a second server
  try {
    const url = `${keyed.url}/v1/completions`;
    const none = await post(url, { prompt: 'x', max_tokens: 1 });
    assert.equal(none.status, 401);
    assert.equal(none.json.error.code, 'invalid_api_key');
    const wrong = await post(url, { prompt: 'x', max_tokens: 1 }, { authorization: 'Bearer secret-key-124' });
    assert.equal(wrong.status, 401);
    assert.match(wrong.json.error.message, /Incorrect API key/);
    const c = new OpenAI({ apiKey: 'secret-key-123', baseURL: `${keyed.url}/v1`, maxRetries: 0, timeout: 20_000 });
    assert.equal((await c.completions.create({ model: MODEL, prompt: 'x', max_tokens: 2 })).usage!.completion_tokens, 2);
    assert.equal((await fetch(`${keyed.url}/health`)).status, 200);
  } finally {
    await keyed.shutdown(1000);
  }
});

test('before the model is loaded: /health is 503 "loading" and /v1/* answers 503 with Retry-After', async () => {
  const loading = await CompletionServer.listen({ host: '127.0.0.1', port: 0, maxTokens: 16, maxBatch: 1, maxQueue: 0, maxBodyBytes: 4096, maxSequencesPerRequest: 1 });
  try {
    const health = await fetch(`${loading.url}/health`);
    assert.equal(health.status, 503);
    assert.deepEqual(await health.json(), { status: 'loading' });
    const r = await post(`${loading.url}/v1/completions`, { prompt: 'x' });
    assert.equal(r.status, 503);
    assert.equal(r.json.error.code, 'model_loading');
    assert.equal(r.headers.get('retry-after'), '1');
  } finally {
    await loading.shutdown(1000);
  }
});
