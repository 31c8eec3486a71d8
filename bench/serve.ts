// `npm run bench -- serve [--clients 1,4,16] [--tokens 64] [--threads N] [--bf16]`
//
// Does continuous batching pay? A GPT-2 124M-shaped model (random weights: speed does not depend on them) behind
// the real HTTP server in this process (model on its own thread), and N concurrent clients each streaming one
// completion of --tokens tokens (temperature 0.8, seeded; tokens are counted from the stream, so one that hit
// end-of-text early counts what it got). Per round: total tokens/s (all tokens /
// wall time), time to first token p50/p99 over clients, inter-token latency p50/p99 over every gap between two
// streamed pieces, the mean batch the engine decoded, and the HTTP thread's event-loop delay p99 (does the decode
// loop stall request handling? It should not: forward passes run on the model thread).
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { ServedModel } from '../src/serve/model.js';
import { CompletionServer } from '../src/serve/server.js';
import { fixed, intFlag, intListFlag, machineLine, parseFlags, printTable } from './util.js';

function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

interface ClientResult {
  tokens: number;
  ttftMs: number;
  gapsMs: number[];
}

async function client(url: string, i: number, tokens: number): Promise<ClientResult> {
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: `Client number ${i} says that`, max_tokens: tokens, temperature: 0.8, seed: i, stream: true }),
    signal: AbortSignal.timeout(600_000),
  });
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
  let buf = '';
  let count = 0;
  let last = 0;
  let ttft = NaN;
  const gaps: number[] = [];
  for await (const chunk of r.body!) {
    buf += Buffer.from(chunk).toString('utf8');
    const events = buf.split('\n\n');
    buf = events.pop()!;
    for (const e of events) {
      if (!e.startsWith('data: {')) continue;
      const j = JSON.parse(e.slice(6)) as { choices: { text: string }[] };
      if (!j.choices[0]?.text) continue;
      const now = performance.now();
      if (count === 0) ttft = now - t0;
      else gaps.push(now - last);
      last = now;
      count++;
    }
  }
  return { tokens: count, ttftMs: ttft, gapsMs: gaps };
}

export async function run(args: string[]): Promise<void> {
  const flags = parseFlags(args, ['clients', 'tokens', 'threads', 'bf16']);
  const rounds = intListFlag(flags, 'clients') ?? [1, 4, 16];
  const tokens = intFlag(flags, 'tokens') ?? 64;
  const maxBatch = Math.max(...rounds);
  const model = await ServedModel.load(
    { randomInit: { nLayer: 12, nHead: 12, nEmbd: 768, blockSize: 1024, vocabSize: 50257, dropout: 0, bias: true }, seed: 0 },
    { maxBatch, bf16: flags.has('bf16'), threads: intFlag(flags, 'threads') },
  );
  const server = await CompletionServer.listen({ host: '127.0.0.1', port: 0, maxTokens: tokens, maxBatch, maxQueue: 0, maxBodyBytes: 1 << 20, maxSequencesPerRequest: 1 });
  server.serve(model);
  try {
    console.log(machineLine());
    console.log(`GPT-2 124M shape, random weights, ${flags.has('bf16') ? 'bf16 autocast' : 'fp32'}, ${model.info.threads} libtorch threads on the model thread; ${tokens} tokens per client, streamed over HTTP`);
    await client(server.url, 999, 4); // warm-up: allocations, oneDNN primitives
    const rows: string[][] = [];
    let base = NaN;
    for (const n of rounds) {
      const stats0 = { ...model.engine.stats };
      const loop = monitorEventLoopDelay({ resolution: 5 });
      loop.enable();
      const t0 = performance.now();
      const results = await Promise.all(Array.from({ length: n }, (_, i) => client(server.url, i, tokens)));
      const seconds = (performance.now() - t0) / 1000;
      loop.disable();
      const total = results.reduce((s, r) => s + r.tokens, 0);
      const tps = total / seconds;
      if (n === rounds[0]) base = tps;
      const s = model.engine.stats;
      const meanBatch = (s.decodeRows - stats0.decodeRows) / Math.max(1, s.steps - stats0.steps);
      const ttfts = results.map((r) => r.ttftMs);
      const gaps = results.flatMap((r) => r.gapsMs);
      rows.push([
        String(n),
        String(total),
        fixed(seconds, 2),
        fixed(tps, 1),
        fixed(tps / base, 2) + '×',
        fixed(quantile(ttfts, 0.5), 0),
        fixed(quantile(ttfts, 0.99), 0),
        fixed(quantile(gaps, 0.5), 0),
        fixed(quantile(gaps, 0.99), 0),
        fixed(meanBatch, 1),
        fixed(loop.percentile(99) / 1e6, 1),
      ]);
    }
    printTable(['clients', 'tokens', 'seconds', 'tokens/s', `vs ${rounds[0]}`, 'TTFT p50 ms', 'TTFT p99 ms', 'inter-token p50 ms', 'p99 ms', 'mean batch', 'loop delay p99 ms'], rows);
  } finally {
    await server.shutdown(1000);
    await model.close();
  }
}
