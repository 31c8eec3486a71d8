// `nanogpt serve`: a checkpoint (or pretrained GPT-2) behind an OpenAI-compatible HTTP API with a playground page.
// This file is flags and process lifecycle (listen, load, signals, exit code); the server is src/serve/.
import type { Command } from './command.js';
import { flagNumber, flagString, parseArgs, type ParsedArgs } from './args.js';
import { UserError } from '../util/errors.js';
import { PRETRAINED } from '../gpt/config.js';
import { tooManyThreads } from '../runtime/threads.js';
import { DEFAULT_CKPT_PATHS } from './sample.js';

const DEFAULTS = { host: '127.0.0.1', port: 8000, maxTokens: 1024, maxBatch: 16, maxQueue: 64, maxBodyBytes: 1 << 20, gracePeriod: 10, maxSequences: 16 } as const;

const HELP = `nanogpt serve — serve a model over an OpenAI-compatible HTTP API, with a playground page

Usage: nanogpt serve [--ckpt_path FILE | --init_from gpt2] [--host 127.0.0.1] [--port 8000] [options]

Model (one of):
  --ckpt_path FILE       a checkpoint or snapshot written by \`nanogpt train\`, a Hugging Face GPT-2
                         model.safetensors, or a folder holding one; default ${DEFAULT_CKPT_PATHS[0]}
  --init_from NAME       pretrained OpenAI weights: ${PRETRAINED.join(', ')} (downloaded once)

Network:
  --host ADDR            address to bind (default ${DEFAULTS.host}: this machine only). 0.0.0.0 exposes the
                         server to the network; a warning is printed, and --api_key is advised
  --port N               TCP port (default ${DEFAULTS.port}; 0 picks a free one, printed at start)
  --api_key KEY          require "Authorization: Bearer KEY" on /v1/* (also read from NANOGPT_API_KEY)

Limits:
  --max_tokens N         largest max_tokens a request may ask for (default ${DEFAULTS.maxTokens}); more is a 400
  --max_batch N          sequences decoded together (default ${DEFAULTS.maxBatch})
  --max_queue N          sequences that may wait for a batch slot (default ${DEFAULTS.maxQueue}); a request that
                         would exceed it is answered 429 with Retry-After
  --max_body_bytes N     largest request body (default ${DEFAULTS.maxBodyBytes}); larger is a 413
  --grace_period S       on SIGTERM/SIGINT, seconds to let requests in flight finish before they are cancelled
                         (default ${DEFAULTS.gracePeriod}); then the process exits 0

Compute:
  --dtype fp32|bf16      float32 (default) or bf16 autocast
  --threads N            libtorch intra-op threads (default: libtorch's choice)

Endpoints:
  POST /v1/completions   OpenAI's completions API: prompt (string or array of strings), max_tokens (default 16),
                         temperature (0–2, default 1), top_p, n, stop, seed, stream (server-sent events ending
                         with "data: [DONE]"), stream_options.include_usage. A prompt longer than the model's
                         context is cut from the left and the response carries a "warnings" note.
  GET  /v1/models        the served model
  GET  /health           200 once the model is loaded, 503 while loading or shutting down
  GET  /metrics          Prometheus text: requests, tokens, queue length, latency histograms
  GET  /                 the playground page

Concurrent requests are decoded together (continuous batching): a finished sequence leaves the batch and a
waiting one joins at the next step. A request with a seed gets the same text alone and under load (in fp32; in
bf16, rounding that differs with the batch size can occasionally change a token).

Examples:
  nanogpt serve --ckpt_path out/ckpt.pt
  nanogpt serve --init_from gpt2 --port 8080
  curl -N localhost:8000/v1/completions -H 'content-type: application/json' \\
       -d '{"prompt": "Once upon a time", "max_tokens": 32, "stream": true}'
`;

export const SERVE_FLAGS = ['ckpt_path', 'init_from', 'host', 'port', 'api_key', 'max_tokens', 'max_batch', 'max_queue', 'max_body_bytes', 'grace_period', 'dtype', 'threads'] as const;

export interface ServeSettings {
  source: { ckptPath: string } | { initFrom: string };
  host: string;
  port: number;
  apiKey: string | undefined;
  maxTokens: number;
  maxBatch: number;
  maxQueue: number;
  maxBodyBytes: number;
  gracePeriodSeconds: number;
  bf16: boolean;
  threads: number | undefined;
}

export function parseServeArgs(args: ParsedArgs, env: NodeJS.ProcessEnv = process.env): ServeSettings {
  if (args.positionals.length) throw new UserError(`unexpected argument '${args.positionals[0]}'`, 'options are given as --name value; see nanogpt serve --help');
  const ckptPath = flagString(args, 'ckpt_path');
  const initFrom = flagString(args, 'init_from');
  if (ckptPath !== undefined && initFrom !== undefined) throw new UserError('--ckpt_path and --init_from both given', 'pass one: a checkpoint file, or the name of pretrained weights');
  if (initFrom !== undefined && !(PRETRAINED as readonly string[]).includes(initFrom)) {
    throw new UserError(`--init_from '${initFrom}' is not a pretrained model`, `use one of ${PRETRAINED.join(', ')}, or --ckpt_path FILE for a file`);
  }
  const source = initFrom !== undefined ? { initFrom } : { ckptPath: ckptPath ?? DEFAULT_CKPT_PATHS[0] };
  const apiKey = flagString(args, 'api_key') ?? (env.NANOGPT_API_KEY || undefined);
  if (apiKey !== undefined && (apiKey.length < 8 || /\s/.test(apiKey))) {
    throw new UserError('--api_key must be at least 8 characters without spaces', 'use a long random key, e.g. the output of `openssl rand -hex 24`');
  }
  const dtype = flagString(args, 'dtype') ?? 'fp32';
  if (dtype !== 'fp32' && dtype !== 'bf16') throw new UserError(`--dtype must be fp32 or bf16, got '${dtype}'`, 'leave it out for float32');
  let threads: number | undefined;
  if (args.flags.has('threads')) {
    threads = flagNumber(args, 'threads', 1, { integer: true, min: 1 });
    const tooMany = tooManyThreads(threads);
    if (tooMany !== null) throw new UserError(`--threads: ${tooMany}`, "use at most the number of cores (or leave --threads out for libtorch's choice)");
  }
  const host = flagString(args, 'host') ?? DEFAULTS.host;
  if (host.trim() === '') throw new UserError('--host is empty', `give an address to bind, e.g. ${DEFAULTS.host}`);
  return {
    source,
    host,
    port: flagNumber(args, 'port', DEFAULTS.port, { integer: true, min: 0, max: 65535 }),
    apiKey,
    maxTokens: flagNumber(args, 'max_tokens', DEFAULTS.maxTokens, { integer: true, min: 1, max: 1_000_000 }),
    maxBatch: flagNumber(args, 'max_batch', DEFAULTS.maxBatch, { integer: true, min: 1, max: 256 }),
    maxQueue: flagNumber(args, 'max_queue', DEFAULTS.maxQueue, { integer: true, min: 0, max: 100_000 }),
    maxBodyBytes: flagNumber(args, 'max_body_bytes', DEFAULTS.maxBodyBytes, { integer: true, min: 1024, max: 1 << 30 }),
    gracePeriodSeconds: flagNumber(args, 'grace_period', DEFAULTS.gracePeriod, { min: 0, max: 3600 }),
    bf16: dtype === 'bf16',
    threads,
  };
}

const log = (s: string): void => {
  process.stderr.write(s + '\n');
};

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

/** Why the server could not listen on host:port, in terms of --host and --port; other errors pass through. */
function listenError(err: unknown, host: string, port: number): unknown {
  const interfaces = 'an address of this machine (`ip addr` lists them), 127.0.0.1 for this machine only, or 0.0.0.0 for every interface';
  switch ((err as NodeJS.ErrnoException).code) {
    case 'EADDRINUSE':
      return new UserError(`port ${port} on ${host} is in use`, `choose another with --port (--port 0 takes a free one), or stop the process that holds it (ss -ltnp | grep :${port})`);
    case 'EADDRNOTAVAIL':
      return new UserError(`--host ${host} is not an address of this machine`, `use ${interfaces}`);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return new UserError(`--host ${host} does not resolve to an address on this machine`, `use ${interfaces}`);
    case 'EACCES':
      return new UserError(`--port ${port}: binding a port below 1024 needs root`, 'use a port from 1024 up, e.g. the default 8000, and put a reverse proxy in front for port 80/443');
    default:
      return err;
  }
}

export async function runServe(s: ServeSettings): Promise<number> {
  const { CompletionServer } = await import('../serve/server.js');
  const { ServedModel, locateWeights } = await import('../serve/model.js');
  if (!LOOPBACK.has(s.host)) {
    log(`warning: binding ${s.host} makes the server reachable from other machines${s.apiKey ? '' : ' with no --api_key: anyone who can reach it can use it'}`);
  }
  // A checkpoint file that is not there fails before the server announces itself; pretrained weights may need a
  // long download, which the server covers with /health's 503 (loading).
  const located = 'ckptPath' in s.source ? await locateWeights(s.source, log) : undefined;
  // Listen first, so /health answers (503, loading) while the weights load; a port in use fails before any load.
  let server: import('../serve/server.js').CompletionServer;
  try {
    server = await CompletionServer.listen({
      host: s.host,
      port: s.port,
      apiKey: s.apiKey,
      maxTokens: s.maxTokens,
      maxBatch: s.maxBatch,
      maxQueue: s.maxQueue,
      maxBodyBytes: s.maxBodyBytes,
      maxSequencesPerRequest: Math.max(DEFAULTS.maxSequences, s.maxBatch),
      log,
    });
  } catch (err) {
    throw listenError(err, s.host, s.port);
  }
  let stopping: Promise<void> | undefined;
  let signalled = false;
  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log(`${why}: no longer accepting requests; letting those in flight finish (up to ${s.gracePeriodSeconds} s)`);
      await server.shutdown(s.gracePeriodSeconds * 1000);
    })();
    return stopping;
  };
  // `on`, not `once`: a signal sent to the process group reaches both bin/nanogpt's tcmalloc re-exec parent and
  // this process, and the parent forwards it too; a second one must not kill a drain in progress.
  let onSignal: (sig: NodeJS.Signals) => void = () => {};
  const done = new Promise<void>((resolve) => {
    onSignal = (sig) => {
      if (signalled) return;
      signalled = true;
      void stop(sig).then(resolve);
    };
  });
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  log(`listening on ${server.url} (loading the model…)`);
  let model: import('../serve/model.js').ServedModel;
  try {
    const opts = { maxBatch: s.maxBatch, bf16: s.bf16, threads: s.threads, log };
    model = located ? await ServedModel.start(located, opts) : await ServedModel.load(s.source, opts);
    if (!signalled) {
      server.serve(model);
      const i = model.info;
      log(`serving ${i.id} (${i.kind}: ${i.nLayer} layers, ${i.nEmbd} dims, context ${i.blockSize}, ${(i.parameters / 1e6).toFixed(2)}M parameters, ${i.threads} threads) at ${server.url}`);
    }
  } catch (err) {
    await server.shutdown(0);
    throw err;
  }
  await done;
  await model.close();
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  log('stopped');
  return 0;
}

export const serveCommand: Command = {
  name: 'serve',
  summary: 'serve a model over an OpenAI-compatible HTTP API, with a playground page',
  help: HELP,
  async run(argv) {
    const args = parseArgs(
      argv,
      { values: SERVE_FLAGS },
      'serve',
    );
    return runServe(parseServeArgs(args));
  },
};
