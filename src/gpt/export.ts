// Writes a GPT as a Hugging Face GPT-2 model folder (model.safetensors + config.json) that transformers'
// GPT2LMHeadModel.from_pretrained loads as if save_pretrained had written it:
//  - names keep the `transformer.` prefix, as GPT2LMHeadModel's own state dict (and so save_pretrained) has them;
//    transformers also accepts the prefix-less names of the original OpenAI upload, but the prefixed form is
//    what a model saved from the LM-head class looks like, and it loads into GPT2Model too (prefix stripped);
//  - no `lm_head.weight`: the head is tied to `transformer.wte.weight` (config tie_word_embeddings: true), and
//    save_pretrained drops tied copies the same way; GPT2LMHeadModel lists it among the keys allowed to be
//    missing and re-ties it on load. A second copy would add vocab × n_embd floats (150 MB for gpt2) that every
//    loader discards or re-ties anyway;
//  - no `attn.bias` / `attn.masked_bias` causal-mask buffers: constants that transformers rebuilds (listed as
//    ignorable-when-missing in older versions, non-persistent buffers in newer ones);
//  - attention and MLP matrices back in Conv1D layout [in, out];
//  - float32, metadata {"format": "pt"} as transformers writes (its safetensors loader rejects files without a
//    known format key).
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as torch from '../torch/index.js';
import { writeBufferAtomic } from '../io/atomic.js';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { convertLayout, hfConfigJson, needsTranspose } from './hf-layout.js';
import type { GPT } from './model.js';

/** The tied head: present in our module tree, absent from the exported file. */
const TIED_HEAD = 'lm_head.weight';

/** The tensors of the Hugging Face file: name, shape, and a producer of the float32 bytes in HF layout. */
export function hfTensors(model: GPT): TensorToWrite[] {
  const out: TensorToWrite[] = [];
  const state = model.stateDict();
  for (const [name, param] of state) {
    if (name === TIED_HEAD) continue;
    out.push({
      name,
      dtype: 'F32',
      // Conv1D weights are [in, out] in the file, the transpose of our Linear [out, in].
      shape: needsTranspose(name) ? [param.shape[1]!, param.shape[0]!] : [...param.shape],
      // Produced when written, one tensor at a time, so the export never holds a second copy of the model
      // (toBytes copies to CPU memory; the scope frees the float32/transposed intermediates).
      data: () => torch.scope(() => torch.noGrad(() => torch.toBytes(convertLayout(name, param.float())))),
    });
    // GPT-2 in transformers always has biases. A model trained with bias: false gets explicit zero biases, which
    // compute the same thing, so the file is complete and no loader fills the gap with its own initialisation.
    const bias = name.replace(/\.weight$/, '.bias');
    const hasBias = name.endsWith('.weight') && !/^transformer\.(wte|wpe)\./.test(name);
    if (hasBias && !state.has(bias)) {
      const n = param.shape[0]!; // Linear [out, in] and LayerNorm [C]: the bias has the output size
      out.push({ name: bias, dtype: 'F32', shape: [n], data: new Uint8Array(4 * n) });
    }
  }
  return out;
}

export interface ExportResult {
  weights: string;
  config: string;
  tensors: number;
  bytes: number;
}

/**
 * Writes `outDir/model.safetensors` and `outDir/config.json`. Each file is written to a temp file and renamed,
 * so a reader never sees half a file; the weights go first, so a folder with a config.json always has weights.
 */
export async function exportHuggingFace(model: GPT, outDir: string): Promise<ExportResult> {
  await fs.mkdir(outDir, { recursive: true });
  const weights = path.join(outDir, 'model.safetensors');
  const config = path.join(outDir, 'config.json');
  const tensors = hfTensors(model);
  await writeSafetensors(weights, tensors, { format: 'pt' });
  await writeBufferAtomic(config, JSON.stringify(hfConfigJson(model.config), null, 2) + '\n');
  const bytes = (await fs.stat(weights)).size;
  return { weights, config, tensors: tensors.length, bytes };
}
