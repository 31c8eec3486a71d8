// `nanogpt sample`: text from a trained checkpoint, a snapshot, a Hugging Face GPT-2 file or pretrained GPT-2 —
// the last step of the original workflow (its sample.py), with the same defaults and the same banners.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type { Command } from './command.js';
import { flagBoolean, flagNumber, flagString, parseArgs, type ParsedArgs } from './args.js';
import { isUserError, UserError } from '../util/errors.js';
import { readBoundedFileSync, READ_LIMITS } from '../io/bounded-read.js';
import { decodeText } from '../data/utf8.js';
import { PRETRAINED } from '../gpt/config.js';
import type { PretrainedName } from '../gpt/pretrained.js';
import { tooManyThreads } from '../runtime/threads.js';
import { plural } from '../util/format.js';

/**
 * Where a checkpoint is looked for when --ckpt_path is not given: first where `nanogpt train` writes it with its
 * default settings (out_dir 'out' + model_path 'ckpt.pt'), then the original's own default, ckpt.pt in the
 * current directory (its trainer wrote there).
 */
export const DEFAULT_CKPT_PATHS = ['out/ckpt.pt', 'ckpt.pt'] as const;

/** The original sample.py's defaults. */
export const SAMPLE_DEFAULTS = {
  prompt: 'It is interesting ',
  numSamples: 3,
  maxNewTokens: 100,
  temperature: 0.6,
  topK: 200,
  seed: 1337,
} as const;

// Limits on what one command can ask for: beyond them a run is a mistyped flag, not a plan (10^5 samples of 10^6
// tokens is already days of decoding for GPT-2 small).
const MAX_SAMPLES = 100_000;
const MAX_NEW_TOKENS = 1_000_000;
// Samples decoded together share one forward pass per token; their KV cache (2 × layers × block × n_embd floats
// each, 75 MB for GPT-2 small) bounds how many fit in memory at once.
const KV_CACHE_BUDGET_BYTES = 2 * 2 ** 30;
const MAX_BATCH = 256;

/** How many samples one batch decodes: as many as fit the KV cache budget, at least 1, at most MAX_BATCH. */
export function samplesPerBatch(cfg: { nLayer: number; blockSize: number; nEmbd: number }): number {
  const perSample = 2 * cfg.nLayer * cfg.blockSize * cfg.nEmbd * 4;
  return Math.max(1, Math.min(MAX_BATCH, Math.floor(KV_CACHE_BUDGET_BYTES / perSample)));
}

export const PROMPT_BANNER = 'Input Prompt: ';
export const GENERATED_BANNER = '--------------- Generated Text ---------------';
export const SAMPLE_SEPARATOR = '-'.repeat(40);

const HELP = `nanogpt sample — generate text from a trained model (the original's sample.py)

Usage: nanogpt sample [--ckpt_path FILE | --init_from gpt2] [--prompt TEXT | --prompt_file FILE] [options]

Model (one of):
  --ckpt_path FILE       a checkpoint or snapshot written by \`nanogpt train\`, or a Hugging Face GPT-2
                         model.safetensors, or a folder holding one (a run's out_dir means its ckpt.pt);
                         local or s3://. Default: ${DEFAULT_CKPT_PATHS[0]} (where \`nanogpt train\` writes
                         it), else ${DEFAULT_CKPT_PATHS[1]} (the original's default)
  --init_from NAME       pretrained OpenAI weights instead: gpt2, gpt2-medium, gpt2-large or gpt2-xl (downloaded once)

Prompt:
  --prompt TEXT          default "${SAMPLE_DEFAULTS.prompt}"; an empty prompt starts from <|endoftext|>, as GPT-2 does;
                         the literal text <|endoftext|> in a prompt is the end-of-text token
  --prompt_file FILE     read the prompt from a file instead

Sampling:
  --num_samples N        samples to draw (default ${SAMPLE_DEFAULTS.numSamples}, at most ${MAX_SAMPLES.toLocaleString('en-US')})
  --max_new_tokens N     tokens per sample (default ${SAMPLE_DEFAULTS.maxNewTokens}, at most ${MAX_NEW_TOKENS.toLocaleString('en-US')})
  --temperature T        >= 0; lower is more conservative, 0 is greedy argmax (default ${SAMPLE_DEFAULTS.temperature})
  --top_k K              sample among the K likeliest tokens, K >= 1, or 'none' (default ${SAMPLE_DEFAULTS.topK})
  --top_p P              nucleus sampling: the smallest set of likeliest tokens with probability >= P, in (0, 1]
                         (default: off; applied after top-k)
  --seed N               sample i draws from a generator seeded with (N, i): the same seed gives the same samples,
                         streamed or not (default ${SAMPLE_DEFAULTS.seed})
  --stop_at_eot          end a sample when the model emits <|endoftext|>

Output and speed:
  --stream               print tokens as they are generated
  --json                 print one JSON object (settings, and per sample its text and token ids) instead of text
  --no_cache             recompute the whole context for every token instead of using the KV cache (slower;
                         for comparison)
  --dtype fp32|bf16      compute in float32 (default) or under bf16 autocast (bf16 weights and KV cache: about
                         half the memory traffic per token; needs a CPU with bf16 units to be faster)
  --threads N            libtorch intra-op threads (default: libtorch's choice)
  --record               also append the samples to the metrics.jsonl of the run the checkpoint belongs to (the
                         folder holding it) as a {"type":"sample"} line, and redraw that run's report.html,
                         which lists them under Samples

Samples are decoded together in batches (one forward pass per token for the whole batch; as many samples per batch
as fit in ${KV_CACHE_BUDGET_BYTES / 2 ** 30} GiB of KV cache, at most ${MAX_BATCH}), except with --stream,
which prints them one after another. A context longer than the model's block size slides: the model sees the last
block_size tokens. Logs go to stderr; samples to stdout.

Examples:
  nanogpt sample --ckpt_path out/ckpt.pt
  nanogpt sample --ckpt_path=ckpt.pt --prompt="This is new prompt "
  nanogpt sample --init_from gpt2 --prompt "The meaning of life is" --temperature 0.8 --top_p 0.9 --stream
  nanogpt sample --ckpt_path out/ckpt.pt --temperature 0 --num_samples 1 --json
  nanogpt sample --ckpt_path out --record     # the samples also land in out/report.html
`;

export interface SampleSettings {
  source: { ckptPath: string } | { initFrom: PretrainedName };
  prompt: string;
  numSamples: number;
  maxNewTokens: number;
  temperature: number;
  topK: number | undefined;
  topP: number | undefined;
  seed: number;
  stopAtEot: boolean;
  stream: boolean;
  json: boolean;
  useCache: boolean;
  bf16: boolean;
  threads: number | undefined;
  /** --record: append the samples to the run's metrics.jsonl (beside the checkpoint) and redraw its report. */
  record?: boolean;
}

const PRETRAINED_NAMES: readonly string[] = PRETRAINED;

/** Validates flags into settings; every bad value is a UserError naming the flag. Reads --prompt_file. */
export function parseSampleArgs(args: ParsedArgs): SampleSettings {
  if (args.positionals.length) {
    throw new UserError(`unexpected argument '${args.positionals[0]}'`, 'options are given as --name value; quote a prompt with spaces: --prompt "…"');
  }
  const ckptPath = flagString(args, 'ckpt_path');
  const initFrom = flagString(args, 'init_from');
  if (ckptPath !== undefined && initFrom !== undefined) {
    throw new UserError('--ckpt_path and --init_from both given', 'pass one: a checkpoint file, or the name of pretrained weights');
  }
  let source: SampleSettings['source'];
  if (initFrom !== undefined) {
    if (!PRETRAINED_NAMES.includes(initFrom)) {
      throw new UserError(`--init_from '${initFrom}' is not a pretrained model`, `use one of ${PRETRAINED_NAMES.join(', ')}, or --ckpt_path FILE for a file`);
    }
    source = { initFrom: initFrom as PretrainedName };
  } else {
    source = { ckptPath: ckptPath ?? defaultCkptPath() };
  }

  const promptText = flagString(args, 'prompt');
  const promptFile = flagString(args, 'prompt_file');
  if (promptText !== undefined && promptFile !== undefined) {
    throw new UserError('--prompt and --prompt_file both given', 'pass one of them');
  }
  let prompt: string = promptText ?? SAMPLE_DEFAULTS.prompt;
  if (promptFile !== undefined) {
    try {
      prompt = decodeText(readBoundedFileSync(promptFile, READ_LIMITS.prompt, '--prompt_file'), promptFile);
    } catch (err) {
      if (isUserError(err)) throw err;
      throw new UserError(`cannot read --prompt_file ${promptFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'check the path');
    }
  }

  const temperature = flagNumber(args, 'temperature', SAMPLE_DEFAULTS.temperature);
  if (temperature < 0) throw new UserError(`--temperature must be >= 0, got ${temperature}`, 'use 0 for greedy decoding, or a positive value such as 0.6');
  const rawTopK = flagString(args, 'top_k');
  let topK: number | undefined = SAMPLE_DEFAULTS.topK;
  if (rawTopK !== undefined) {
    if (rawTopK.trim().toLowerCase() === 'none') topK = undefined;
    else {
      const k = Number(rawTopK);
      if (rawTopK.trim() === '' || !Number.isInteger(k) || k < 1) {
        throw new UserError(`--top_k must be an integer >= 1, got '${rawTopK}'`, "use e.g. --top_k 200, or --top_k none to sample from the whole vocabulary");
      }
      topK = k;
    }
  }
  let topP: number | undefined;
  if (args.flags.has('top_p')) {
    topP = flagNumber(args, 'top_p', 1);
    if (!(topP > 0 && topP <= 1)) throw new UserError(`--top_p must be in (0, 1], got ${topP}`, 'use e.g. --top_p 0.9 (1 keeps every token)');
  }
  const dtype = flagString(args, 'dtype') ?? 'fp32';
  if (dtype !== 'fp32' && dtype !== 'bf16') throw new UserError(`--dtype must be fp32 or bf16, got '${dtype}'`, 'use --dtype bf16 for bf16 autocast, or leave it out for float32');
  const settings: SampleSettings = {
    source,
    prompt,
    numSamples: flagNumber(args, 'num_samples', SAMPLE_DEFAULTS.numSamples, { integer: true, min: 1, max: MAX_SAMPLES }),
    maxNewTokens: flagNumber(args, 'max_new_tokens', SAMPLE_DEFAULTS.maxNewTokens, { integer: true, min: 0, max: MAX_NEW_TOKENS }),
    temperature,
    topK,
    topP,
    seed: flagNumber(args, 'seed', SAMPLE_DEFAULTS.seed, { integer: true, min: 0, max: Number.MAX_SAFE_INTEGER }),
    stopAtEot: flagBoolean(args, 'stop_at_eot'),
    stream: flagBoolean(args, 'stream'),
    json: flagBoolean(args, 'json'),
    useCache: flagBoolean(args, 'cache', true),
    bf16: dtype === 'bf16',
    threads: args.flags.has('threads') ? threadsFlag(args) : undefined,
    record: flagBoolean(args, 'record'),
  };
  if (settings.record && 'initFrom' in source) {
    throw new UserError('--record keeps samples in a training run\'s report, and --init_from names no run', 'pass --ckpt_path <out_dir> (or its ckpt.pt) of a run, or drop --record');
  }
  if (settings.stream && settings.json) {
    throw new UserError('--stream and --json cannot be combined', '--json prints one object when all samples are done; drop one of the two');
  }
  return settings;
}

function threadsFlag(args: ParsedArgs): number {
  const threads = flagNumber(args, 'threads', 1, { integer: true, min: 1 });
  const tooMany = tooManyThreads(threads);
  if (tooMany !== null) throw new UserError(`--threads: ${tooMany}`, 'use at most the number of cores (or leave --threads out for libtorch\'s choice)');
  return threads;
}

function defaultCkptPath(): string {
  return DEFAULT_CKPT_PATHS.find((p) => existsSync(p)) ?? DEFAULT_CKPT_PATHS[0];
}

const log = (s: string): void => {
  process.stderr.write(s + '\n');
};

/** The file to load: the checkpoint given, or pretrained weights (downloaded and cached on first use). */
async function weightsFile(s: SampleSettings): Promise<string> {
  if ('initFrom' in s.source) {
    // Loaded only for --init_from, so sampling from a local file never touches the Hub client.
    const { pretrainedWeightsFile } = await import('../gpt/pretrained.js');
    return pretrainedWeightsFile(s.source.initFrom, log);
  }
  const { pathExists, resolveCheckpointArg } = await import('../train/checkpoint.js');
  if (!(await pathExists(s.source.ckptPath))) {
    throw new UserError(
      `no checkpoint at ${s.source.ckptPath}`,
      'train a model first (nanogpt train), or pass --ckpt_path FILE, or --init_from gpt2 for pretrained GPT-2',
    );
  }
  const { file, note } = resolveCheckpointArg(s.source.ckptPath);
  if (note) log(note);
  return file;
}

/** The run directory whose report --record writes to: the folder holding the checkpoint, with a metrics.jsonl. */
async function recordingRunDir(file: string): Promise<string> {
  if (file.startsWith('s3://')) throw new UserError(`--record: ${file} is in object storage, and the run's report is a local file`, 'download the run directory and pass it as --ckpt_path, or drop --record');
  const dir = path.dirname(file);
  const { METRICS_FILE } = await import('../report/write-report.js');
  if (!existsSync(path.join(dir, METRICS_FILE))) {
    throw new UserError(`--record: no ${METRICS_FILE} beside ${file}, so it is not in a training run's out_dir`, 'pass the out_dir of a nanogpt train run (or its ckpt.pt) as --ckpt_path, or drop --record');
  }
  return dir;
}

async function recordSamples(runDir: string, file: string, s: SampleSettings, texts: string[]): Promise<void> {
  const { MetricsLog } = await import('../train/metrics.js');
  const { writeReport } = await import('../report/write-report.js');
  new MetricsLog(runDir, false).write({
    type: 'sample',
    iter: null,
    label: path.basename(file),
    prompt: s.prompt,
    texts,
    settings: { temperature: s.temperature, top_k: s.topK ?? null, top_p: s.topP ?? null, seed: s.seed, max_new_tokens: s.maxNewTokens },
  });
  log(`recorded ${plural(texts.length, 'sample')} in ${path.join(runDir, 'metrics.jsonl')}`);
  // The samples are printed and recorded whatever happens here: a report that cannot be drawn is only a warning.
  try {
    log(`report: ${(await writeReport(runDir)).html}`);
  } catch (err) {
    log(`warning: report not redrawn (${(err as Error).message.split('\n')[0]}); nanogpt report ${runDir} retries`);
  }
}

export async function runSample(s: SampleSettings): Promise<number> {
  const torch = await import('../torch/index.js');
  const { loadModel } = await import('../train/checkpoint.js');
  const { generateBatch } = await import('../gpt/generate.js');
  const { TextCodec } = await import('../data/text-codec.js');
  if (s.threads !== undefined) torch.setNumThreads(s.threads);

  const file = await weightsFile(s);
  // Checked before the model loads: a run directory without metrics.jsonl is an error worth knowing at once.
  const runDir = s.record ? await recordingRunDir(file) : null;
  const loaded = await loadModel(file, { dropout: 0 });
  await loaded.reader.close();
  const model = loaded.model;
  const codec = await TextCodec.open();
  try {
    const cfg = model.config;
    log(`loaded ${file} (${loaded.kind}): ${cfg.nLayer} layers, ${cfg.nHead} heads, ${cfg.nEmbd} dims, block ${cfg.blockSize}, ${(model.countParameters() / 1e6).toFixed(2)}M parameters`);
    const promptTokens = codec.encode(s.prompt);
    const tooBig = promptTokens.find((t) => t >= cfg.vocabSize);
    if (tooBig !== undefined) {
      throw new UserError(`the prompt has GPT-2 token ${tooBig}, outside this model's vocabulary of ${cfg.vocabSize}`, 'this model was not trained on GPT-2 tokens; sample from a checkpoint with vocab_size 50257 (or more)');
    }
    if (promptTokens.length === 0 && cfg.vocabSize <= 50256) {
      throw new UserError(`an empty prompt starts from <|endoftext|> (50256), outside this model's vocabulary of ${cfg.vocabSize}`, 'give a non-empty --prompt');
    }
    if (promptTokens.length > cfg.blockSize) {
      log(`the prompt has ${plural(promptTokens.length, 'token')}, more than the block size of ${cfg.blockSize}: the model sees the last ${cfg.blockSize}`);
    }

    const out = process.stdout;
    const samples: { text: string; tokens: number[]; seconds: number }[] = [];
    if (!s.json) {
      out.write(`${PROMPT_BANNER}${s.prompt}\n`);
      out.write(`${GENERATED_BANNER}\n`);
    }
    const options = { maxNewTokens: s.maxNewTokens, temperature: s.temperature, topK: s.topK, topP: s.topP, stopAtEot: s.stopAtEot, useCache: s.useCache, bf16: s.bf16 };
    // The prompt as typed, then the new tokens: GPT-2's byte-level BPE round-trips text, so this is the original's
    // decode(prompt + generated) without decoding the prompt again.
    const show = (tokens: number[]): string => s.prompt + codec.decode(tokens);
    if (s.stream) {
      // One sample after another, each printed as it grows. Sample i draws from the generator seeded (seed, i) either
      // way, so the text is the batch's below (in float32; see gpt/generate.ts on bf16).
      for (let i = 0; i < s.numSamples; i++) {
        const stream = codec.stream();
        out.write(s.prompt);
        const t0 = performance.now();
        const [tokens] = generateBatch(model, promptTokens, 1, { ...options, seed: s.seed, firstSample: i, onToken: (id) => out.write(stream.push(id)) });
        const seconds = (performance.now() - t0) / 1000;
        samples.push({ text: show(tokens!), tokens: tokens!, seconds });
        out.write(stream.end() + '\n' + `${SAMPLE_SEPARATOR}\n`);
        log(`sample ${i + 1}/${s.numSamples}: ${plural(tokens!.length, 'token')} in ${seconds.toFixed(2)} s (${(tokens!.length / Math.max(seconds, 1e-9)).toFixed(1)} tokens/s)`);
        // Let the event loop turn between samples: timers, signals and the GC's finalizers of any handle that was
        // never disposed run only then (disposed ones need nothing, see native/tensor.cc).
        await new Promise((resolve) => setImmediate(resolve));
      }
    } else {
      // Batches bounded by memory; sample i still draws from the generator seeded (seed, i), so the texts do not
      // depend on how the samples are grouped.
      const perBatch = samplesPerBatch(cfg);
      for (let first = 0; first < s.numSamples; first += perBatch) {
        const n = Math.min(perBatch, s.numSamples - first);
        const t0 = performance.now();
        const batch = generateBatch(model, promptTokens, n, { ...options, seed: s.seed, firstSample: first });
        const seconds = (performance.now() - t0) / 1000;
        const total = batch.reduce((sum, t) => sum + t.length, 0);
        for (const tokens of batch) {
          samples.push({ text: show(tokens), tokens, seconds });
          if (!s.json) out.write(`${show(tokens)}\n${SAMPLE_SEPARATOR}\n`);
        }
        const which = n === s.numSamples ? '' : ` (${first + 1}–${first + n} of ${s.numSamples})`;
        log(`${n} sample${n === 1 ? '' : 's'} decoded together${which}: ${plural(total, 'token')} in ${seconds.toFixed(2)} s (${(total / Math.max(seconds, 1e-9)).toFixed(1)} tokens/s)`);
        await new Promise((resolve) => setImmediate(resolve)); // signals and timers between batches
      }
    }
    if (runDir !== null) await recordSamples(runDir, file, s, samples.map((x) => x.text));
    if (s.json) {
      const doc = {
        source: 'initFrom' in s.source ? { init_from: s.source.initFrom } : { ckpt_path: file, kind: loaded.kind },
        model: { n_layer: cfg.nLayer, n_head: cfg.nHead, n_embd: cfg.nEmbd, block_size: cfg.blockSize, vocab_size: cfg.vocabSize },
        prompt: s.prompt,
        prompt_tokens: promptTokens,
        settings: {
          num_samples: s.numSamples,
          max_new_tokens: s.maxNewTokens,
          temperature: s.temperature,
          top_k: s.topK ?? null,
          top_p: s.topP ?? null,
          seed: s.seed,
          stop_at_eot: s.stopAtEot,
          kv_cache: s.useCache,
          dtype: s.bf16 ? 'bf16' : 'fp32',
        },
        // seconds: the time of the batch that decoded the sample (all of them, unless --stream).
        samples: samples.map((x) => ({
          text: x.text,
          tokens: x.tokens,
          seconds: x.seconds,
          tokens_per_second: x.tokens.length / Math.max(x.seconds, 1e-9),
        })),
      };
      out.write(JSON.stringify(doc) + '\n');
    }
    return 0;
  } finally {
    codec.free();
    model.dispose();
  }
}

export const sampleCommand: Command = {
  name: 'sample',
  summary: 'generate text from a trained checkpoint or pretrained GPT-2',
  help: HELP,
  async run(argv) {
    const args = parseArgs(
      argv,
      {
        values: ['ckpt_path', 'prompt', 'prompt_file', 'num_samples', 'max_new_tokens', 'temperature', 'top_k', 'top_p', 'seed', 'init_from', 'threads', 'dtype'],
        booleans: ['stop_at_eot', 'stream', 'json', 'cache', 'record'],
      },
      'sample',
    );
    return runSample(parseSampleArgs(args));
  },
};
