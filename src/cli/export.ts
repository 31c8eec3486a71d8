import { existsSync, statSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { flagString, parseArgs } from './args.js';
import type { Command } from './command.js';
import { formatBytes, plural } from '../util/format.js';

const HELP = `nanogpt export — write a checkpoint as a Hugging Face GPT-2 model (model.safetensors + config.json)

Usage: nanogpt export --ckpt_path FILE --out_dir DIR

Reads a model checkpoint or training snapshot written by \`nanogpt train\` (a local path or an s3:// URL; a
Hugging Face GPT-2 model.safetensors works too) and writes into DIR:
  model.safetensors   float32 weights under GPT2LMHeadModel's names (transformer.h.0.attn.c_attn.weight, ...),
                      attention/MLP matrices in Hugging Face's Conv1D layout [in, out]; lm_head.weight is left
                      out because it is tied to transformer.wte.weight, as save_pretrained does
  config.json         the GPT2LMHeadModel configuration (n_layer, n_head, n_embd, n_positions, vocab_size, ...)
Each file is written to a temporary name and renamed, so DIR never holds half a file. Existing files of the
same names are replaced. The tokenizer is GPT-2's own: use the tokenizer of openai-community/gpt2.

Options:
  --ckpt_path FILE   checkpoint or snapshot to export (required), e.g. out/ckpt.pt; a run folder (out)
                     means its ckpt.pt
  --out_dir DIR      folder to write (required; created if missing)

Examples:
  nanogpt export --ckpt_path out/ckpt.pt --out_dir out/hf
  python3 -c "from transformers import GPT2LMHeadModel; GPT2LMHeadModel.from_pretrained('out/hf')"
  nanogpt export --ckpt_path s3://my-bucket/runs/1/snapshot.safetensors --out_dir exported
`;

export const exportCommand: Command = {
  name: 'export',
  summary: 'write a checkpoint as a Hugging Face GPT-2 model folder (model.safetensors + config.json)',
  help: HELP,
  async run(argv) {
    const args = parseArgs(argv, { values: ['ckpt_path', 'out_dir'] }, 'export');
    if (args.positionals.length) {
      throw new UserError(`unexpected argument '${args.positionals[0]}'`, 'nanogpt export --ckpt_path FILE --out_dir DIR (see --help)');
    }
    const ckptArg = flagString(args, 'ckpt_path');
    const outDir = flagString(args, 'out_dir');
    if (!ckptArg) throw new UserError('--ckpt_path is required', 'nanogpt export --ckpt_path out/ckpt.pt --out_dir out/hf (see --help)');
    if (!outDir) throw new UserError('--out_dir is required', `nanogpt export --ckpt_path ${ckptArg} --out_dir out/hf (see --help)`);
    if (outDir.startsWith('s3://')) {
      throw new UserError(`--out_dir must be a local folder, got ${outDir}`, 'export to a local folder, then upload it (or push it to the Hub with huggingface-cli upload)');
    }
    if (existsSync(outDir) && !statSync(outDir).isDirectory()) {
      throw new UserError(`--out_dir ${outDir} exists and is not a folder`, 'choose another --out_dir');
    }
    // Checked here (not left to the reader) so the message is about the checkpoint, not a file format.
    const { loadModel, pathExists, resolveCheckpointArg } = await import('../train/checkpoint.js');
    if (!(await pathExists(ckptArg))) {
      throw new UserError(`checkpoint ${ckptArg} not found`, 'pass the model_path or snapshot_path of a training run (under its out_dir), or the run folder itself, as --ckpt_path');
    }
    const { file: ckpt, note } = resolveCheckpointArg(ckptArg);
    if (note) process.stderr.write(`${note}\n`);
    const { exportHuggingFace } = await import('../gpt/export.js');
    const loaded = await loadModel(ckpt);
    try {
      await loaded.reader.close();
      const c = loaded.model.config;
      process.stderr.write(`loaded ${ckpt} (${loaded.kind}): ${c.nLayer} layers, ${c.nHead} heads, ${c.nEmbd} dims, block ${c.blockSize}, vocab ${c.vocabSize}\n`);
      const r = await exportHuggingFace(loaded.model, outDir);
      process.stderr.write(`wrote ${r.weights} (${plural(r.tensors, 'tensor')}, ${formatBytes(r.bytes)}, float32) and ${r.config}\n`);
    } finally {
      loaded.model.dispose();
    }
    return 0;
  },
};
