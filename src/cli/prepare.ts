import { availableParallelism } from 'node:os';
import { DEFAULT_OUT_DIR, prepareDataset } from '../data/prepare.js';
import { progressReporter } from '../data/progress.js';
import type { DocumentSource } from '../data/source.js';
import { DEFAULT_SPLIT_SEED, DEFAULT_VAL_FRACTION } from '../data/split.js';
import { checkBucketName } from '../io/s3-names.js';
import { UserError } from '../util/errors.js';
import { flagBoolean, flagNumber, flagString, parseArgs } from './args.js';
import type { Command } from './command.js';
import { formatBytes, plural } from '../util/format.js';

const help = `nanogpt prepare — tokenize a corpus into train.bin / val.bin for training

Usage: nanogpt prepare [FILES|DIRS|GLOBS ...] [options]

With no input, tokenizes the embedded, offline corpus: 233 State of the Union addresses (10.7 MB,
about 2.07M GPT-2 tokens; one speech per document).

Sources (pick one):
  (none)                  the embedded State of the Union corpus
  FILES|DIRS|GLOBS        local .txt (one document per file), .jsonl / .json records, .parquet;
                          directories are searched recursively; quote globs ('corpus/**/*.{txt,jsonl}')
  --dataset NAME          a Hugging Face Hub dataset: openwebtext-10k, openwebtext, or owner/name

Options:
  --out_dir D             output directory (default: ${DEFAULT_OUT_DIR})
  --workers N             tokenizer threads (default: cores, here ${availableParallelism()}); output is identical for any N
  --val_fraction F        fraction of documents for validation (default: ${DEFAULT_VAL_FRACTION})
  --seed S                split seed (default: ${DEFAULT_SPLIT_SEED})
  --text_field K          JSON / JSON-lines field holding the text (default: text)
  --text_column C         Parquet / Hub column holding the text (default: text)
  --split_on_blank_lines  .txt: one document per blank-line-separated block
  --format alpaca         JSON records are Alpaca instruction/input/output, rendered as prompt + response
  --template FILE         Alpaca template JSON with "prompt_input" and "prompt_no_input" ({instruction}, {input})
  --bucket B              after writing, upload train.bin, val.bin, meta.json to s3://B/processed/
  --quiet                 no progress output

Output (in --out_dir): train.bin and val.bin (GPT-2 token ids as uint16 little-endian, end-of-text 50256 after
every document; np.memmap(path, dtype=np.uint16)) and meta.json (source, counts, sha256). Written atomically.

Examples:
  nanogpt prepare
  nanogpt prepare --dataset openwebtext-10k --out_dir data/openwebtext
  nanogpt prepare 'books/**/*.txt' --split_on_blank_lines --out_dir data/books
  nanogpt prepare alpaca_data.json --format alpaca --out_dir data/alpaca
`;

const spec = {
  values: ['out_dir', 'workers', 'val_fraction', 'seed', 'text_field', 'text_column', 'format', 'template', 'dataset', 'bucket'],
  booleans: ['split_on_blank_lines', 'quiet'],
};

// Provided by other parts of the build. Named through variables and typed locally so this command compiles and
// runs (with a clear error for those options) in a build that lacks them.
const HUB_MODULE = '../data/sources/hub.js';
const OBJECT_STORE_MODULE = '../io/object-store.js';
interface HubModule {
  openHubDataset(opts: { dataset: string; textColumn?: string; onProgress?: (msg: string) => void }): Promise<DocumentSource>;
}
interface ObjectStoreModule {
  uploadFiles(bucket: string, prefix: string, files: string[]): Promise<{ key: string; bytes: number; skipped: boolean }[]>;
}

/** Imports a module another part of the build provides; a missing one is a clear UserError, not a crash. */
async function optionalModule<T>(specifier: string, feature: string): Promise<T> {
  try {
    return (await import(specifier)) as T;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException)?.code;
    if (code === 'ERR_MODULE_NOT_FOUND' && String((err as Error).message).includes(specifier.replace(/^.*\//, '').replace(/\.js$/, ''))) {
      throw new UserError(`${feature} is not available in this build`, 'use local files or the embedded corpus');
    }
    throw err;
  }
}

export const prepareCommand: Command = {
  name: 'prepare',
  summary: 'tokenize a corpus (embedded, local files, Hugging Face Hub) into train.bin / val.bin',
  help,
  async run(argv: string[]): Promise<number> {
    const args = parseArgs(argv, spec, 'prepare');
    if (args.rest.length > 0) args.positionals.push(...args.rest);
    const outDir = flagString(args, 'out_dir', DEFAULT_OUT_DIR)!;
    const workers = flagNumber(args, 'workers', availableParallelism(), { integer: true, min: 1, max: 1024 });
    const valFraction = flagNumber(args, 'val_fraction', DEFAULT_VAL_FRACTION, { min: 0 });
    if (!(valFraction > 0 && valFraction < 1)) throw new UserError(`--val_fraction must be between 0 and 1 (exclusive), got ${valFraction}`);
    const seed = flagNumber(args, 'seed', DEFAULT_SPLIT_SEED, { integer: true, min: 0, max: Number.MAX_SAFE_INTEGER });
    const format = flagString(args, 'format', 'text')!;
    if (format !== 'text' && format !== 'alpaca') throw new UserError(`--format must be 'text' or 'alpaca', got '${format}'`);
    const dataset = flagString(args, 'dataset');
    const textColumn = flagString(args, 'text_column');
    const templateFile = flagString(args, 'template');
    if (templateFile && format !== 'alpaca') throw new UserError('--template applies to --format alpaca', 'add --format alpaca');
    const quiet = flagBoolean(args, 'quiet');
    const bucket = flagString(args, 'bucket');
    if (bucket !== undefined) checkBucketName(bucket, '--bucket'); // now, not after an hour of tokenizing
    const log = (msg: string): void => {
      if (!quiet) process.stderr.write(`${msg}\n`);
    };

    let source: DocumentSource;
    if (dataset !== undefined) {
      if (args.positionals.length > 0) throw new UserError('give either local files or --dataset, not both');
      const hub = await optionalModule<HubModule>(HUB_MODULE, 'Hugging Face Hub datasets (--dataset)');
      source = await hub.openHubDataset({ dataset, textColumn, onProgress: log });
    } else if (args.positionals.length > 0) {
      const { localFilesSource } = await import('../data/sources/local.js');
      const { loadAlpacaTemplate, DEFAULT_ALPACA_TEMPLATE } = await import('../data/sources/alpaca.js');
      source = await localFilesSource({
        paths: args.positionals,
        textField: flagString(args, 'text_field'),
        textColumn,
        splitOnBlankLines: flagBoolean(args, 'split_on_blank_lines'),
        format,
        template: templateFile ? await loadAlpacaTemplate(templateFile) : DEFAULT_ALPACA_TEMPLATE,
      });
    } else {
      if (format === 'alpaca') throw new UserError('--format alpaca needs input files', 'e.g. nanogpt prepare alpaca_data.json --format alpaca');
      const { sotuSource } = await import('../data/sources/embedded.js');
      source = await sotuSource();
    }

    // Ctrl-C: stop cleanly so temp files are removed (the default handler would kill us mid-write).
    const abort = new AbortController();
    const onSignal = (): void => abort.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    log(`prepare: ${source.describe} → ${outDir} (${workers} worker${workers === 1 ? '' : 's'})`);
    let result;
    try {
      result = await prepareDataset({
        source,
        outDir,
        workers,
        valFraction,
        seed,
        signal: abort.signal,
        log,
        onProgress: quiet ? undefined : progressReporter(process.stderr),
      });
    } catch (err) {
      if (abort.signal.aborted) {
        process.stderr.write('\ninterrupted: no output written (temporary files removed)\n');
        return 130;
      }
      throw err;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    const m = result.meta;
    log(
      `wrote ${result.files.train} (${m.train.tokens.toLocaleString('en-US')} tokens, ${plural(m.train.documents, 'document')}), ` +
        `${result.files.val} (${m.val.tokens.toLocaleString('en-US')} tokens, ${plural(m.val.documents, 'document')}), ${result.files.meta} ` +
        `in ${result.elapsedS.toFixed(1)} s (${(result.bytes / 1e6 / result.elapsedS).toFixed(1)} MB/s)`,
    );

    if (bucket !== undefined) {
      const store = await optionalModule<ObjectStoreModule>(OBJECT_STORE_MODULE, 'S3 upload (--bucket)');
      log(`uploading to s3://${bucket}/processed/ …`);
      const sent = await store.uploadFiles(bucket, 'processed/', [result.files.train, result.files.val, result.files.meta]);
      // An object already holding the same bytes (same sha256) is not sent again: say so rather than "uploaded".
      for (const r of sent) log(`s3://${bucket}/${r.key}: ${r.skipped ? 'already there with the same content (sha256), not sent again' : `uploaded (${formatBytes(r.bytes)})`}`);
    }
    return 0;
  },
};
