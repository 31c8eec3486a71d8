// The training configuration: the reference gpt2_train_cfg.yaml's keys (same names, same defaults) plus
// nanogpt-ts's own, each with a type, a default and a line of documentation (the README's config reference is
// generated from this table).
export type FieldType = 'number' | 'integer' | 'boolean' | 'string' | 'string|null' | { enum: readonly string[] };

export interface Field {
  type: FieldType;
  default: unknown;
  doc: string;
}
export interface Section {
  [key: string]: Field | Section;
}

export function isField(x: Field | Section): x is Field {
  return 'type' in x && 'doc' in x && typeof (x as Field).doc === 'string';
}

export const SCHEMA: Section = {
  data_dir: { type: 'string', default: './data/openwebtext', doc: 'directory with train.bin and val.bin (from `nanogpt prepare`)' },
  block_size: { type: 'integer', default: 1024, doc: 'context length in tokens' },
  optimizer_config: {
    learning_rate: { type: 'number', default: 6e-4, doc: 'AdamW learning rate when decay_lr is off' },
    weight_decay: { type: 'number', default: 0.1, doc: 'decoupled weight decay, applied to 2-D weights only' },
    beta1: { type: 'number', default: 0.9, doc: 'AdamW beta1' },
    beta2: { type: 'number', default: 0.95, doc: 'AdamW beta2' },
    eps: { type: 'number', default: 1e-8, doc: 'AdamW epsilon' },
  },
  trainer_config: {
    device: { type: { enum: ['cpu', 'cuda'] }, default: 'cpu', doc: 'compute device' },
    mixed_precision: { type: { enum: ['bf16', 'fp32'] }, default: 'bf16', doc: 'bf16 autocast or plain fp32' },
    eval_interval: { type: 'integer', default: 5, doc: 'evaluate (and maybe checkpoint) every this many iterations' },
    log_interval: { type: 'integer', default: 1, doc: 'log every this many iterations' },
    eval_iters: { type: 'integer', default: 2, doc: 'batches per split in each evaluation' },
    eval_only: { type: 'boolean', default: false, doc: 'evaluate once and exit' },
    batch_size: { type: 'integer', default: 32, doc: 'sequences per micro-batch (per rank)' },
    max_iters: { type: 'integer', default: 10, doc: 'total optimizer steps' },
    model_path: { type: 'string', default: 'ckpt.pt', doc: 'best model (safetensors); relative to out_dir; may be s3://' },
    snapshot_path: { type: 'string', default: 'snapshot.pt', doc: 'resumable snapshot (safetensors); relative to out_dir; may be s3://' },
    gradient_accumulation_steps: { type: 'integer', default: 2, doc: 'micro-batches per optimizer step' },
    grad_clip: { type: 'number', default: 1.0, doc: 'clip the global gradient norm to this (0 = off)' },
    decay_lr: { type: 'boolean', default: true, doc: 'linear warmup then cosine decay to min_lr' },
    warmup_iters: { type: 'integer', default: 2, doc: 'warmup steps' },
    lr_decay_iters: { type: 'integer', default: 10, doc: 'step at which the cosine reaches min_lr (unset: max_iters)' },
    max_lr: { type: 'number', default: 6e-4, doc: 'peak learning rate' },
    min_lr: { type: 'number', default: 6e-5, doc: 'final learning rate' },
    snapshot_interval: { type: 'integer', default: 0, doc: 'also snapshot every this many steps (0 = at each evaluation)' },
    peak_flops: { type: 'number', default: 0, doc: 'peak FLOP/s of the machine for MFU (0 = do not report MFU)' },
  },
  model: {
    preset: { type: { enum: ['gpt2', 'gpt2-medium', 'gpt2-large', 'gpt2-xl', 'gpt2-mini', 'gpt2-tiny'] }, default: 'gpt2', doc: 'shape when training from scratch' },
    n_layer: { type: 'integer', default: 0, doc: 'override the preset (0 = preset)' },
    n_head: { type: 'integer', default: 0, doc: 'override the preset (0 = preset)' },
    n_embd: { type: 'integer', default: 0, doc: 'override the preset (0 = preset)' },
    vocab_size: { type: 'integer', default: 50257, doc: 'vocabulary size (GPT-2 BPE: 50257)' },
    dropout: { type: 'number', default: 0.0, doc: 'dropout probability (above 0, training runs attention through the slower composite path: the fused kernel has no attention dropout)' },
    bias: { type: 'boolean', default: true, doc: 'biases in Linear and LayerNorm layers' },
  },
  init_from: { type: 'string', default: 'scratch', doc: 'scratch, gpt2 / gpt2-medium / gpt2-large / gpt2-xl (Hugging Face weights), a .safetensors / checkpoint path, or resume (the snapshot in out_dir; exit 2 if there is none)' },
  seed: { type: 'integer', default: 1337, doc: 'random seed (each rank adds its rank)' },
  out_dir: { type: 'string', default: 'out', doc: 'run directory: metrics.jsonl, report, relative checkpoint paths' },
  threads: { type: 'integer', default: 0, doc: 'intra-op threads per process (0 = NANOGPT_THREADS, else physical cores / local ranks)' },
  distributed: {
    main_process_ip: { type: 'string|null', default: null, doc: 'rendezvous address for multi-machine runs (else MASTER_ADDR)' },
    main_process_port: { type: 'integer', default: 0, doc: 'rendezvous port (0 = MASTER_PORT or 29500)' },
    iface: { type: 'string|null', default: null, doc: 'network interface whose address Gloo binds to and advertises (else GLOO_SOCKET_IFNAME, else the one routing to the master; exit 2 if it does not exist)' },
    timeout_s: { type: 'number', default: 300, doc: 'seconds a rank waits for its peers before it exits (rendezvous, or a collective plus the diagnosis of who is gone)' },
    check_interval: { type: 'integer', default: 100, doc: 'compare parameter checksums across ranks every this many steps (0 = only at the end)' },
    overlap_comm: { type: 'boolean', default: true, doc: "start each gradient bucket's all-reduce during backward, once its gradients are final (false = after backward)" },
  },
};

export interface TrainConfig {
  data_dir: string;
  block_size: number;
  optimizer_config: { learning_rate: number; weight_decay: number; beta1: number; beta2: number; eps: number };
  trainer_config: {
    device: 'cpu' | 'cuda';
    mixed_precision: 'bf16' | 'fp32';
    eval_interval: number;
    log_interval: number;
    eval_iters: number;
    eval_only: boolean;
    batch_size: number;
    max_iters: number;
    model_path: string;
    snapshot_path: string;
    gradient_accumulation_steps: number;
    grad_clip: number;
    decay_lr: boolean;
    warmup_iters: number;
    lr_decay_iters: number;
    max_lr: number;
    min_lr: number;
    snapshot_interval: number;
    peak_flops: number;
  };
  model: { preset: string; n_layer: number; n_head: number; n_embd: number; vocab_size: number; dropout: number; bias: boolean };
  init_from: string;
  seed: number;
  out_dir: string;
  threads: number;
  distributed: { main_process_ip: string | null; main_process_port: number; iface: string | null; timeout_s: number; check_interval: number; overlap_comm: boolean };
}
