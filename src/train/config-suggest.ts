// What to say when a configuration key is unknown. Users arrive from nanoGPT (flat keys: batch_size, n_layer,
// learning_rate, dtype), from the original Hydra module (the same dotted keys as ours) or simply mistype; each
// gets the key they meant, named the way they must write it. Suggestions only: accepting flat keys as aliases
// would make `learning_rate` ambiguous (nanoGPT's peak rate is our trainer_config.max_lr, not
// optimizer_config.learning_rate).
import { isField, type Section } from './config-schema.js';

/** nanoGPT's flat names whose meaning lives under another name here: the key meant, and why. */
const NANOGPT_RENAMED: Readonly<Record<string, { key: string; why: string }>> = {
  learning_rate: { key: 'trainer_config.max_lr', why: "nanoGPT's learning_rate is the peak of the schedule; optimizer_config.learning_rate is the rate used when decay_lr is off" },
  dtype: { key: 'trainer_config.mixed_precision', why: "bf16 or fp32, nanoGPT's bfloat16 / float32" },
  dataset: { key: 'data_dir', why: 'the directory holding train.bin and val.bin' },
};

/** nanoGPT's flat names with no counterpart here, and what takes their place. */
const NANOGPT_ABSENT: Readonly<Record<string, string>> = {
  always_save_checkpoint: 'the best model (trainer_config.model_path) is always written, starting with the step-0 evaluation, and trainer_config.snapshot_path holds the latest state',
  compile: 'libtorch has no torch.compile; the fused CPU kernels are always on',
  backend: 'ranks always talk over Gloo (see distributed.*)',
  wandb_log: 'metrics go to <out_dir>/metrics.jsonl and report.html (nanogpt report)',
  wandb_project: 'metrics go to <out_dir>/metrics.jsonl and report.html (nanogpt report)',
  wandb_run_name: 'metrics go to <out_dir>/metrics.jsonl and report.html (nanogpt report)',
};

export interface KeySuggestion {
  /** Keys probably meant, best first (empty: nothing close). */
  keys: string[];
  /** Why, for a nanoGPT name that means something else here, or what replaces one that has no counterpart. */
  note?: string;
}

/** Every settable key, dotted (trainer_config.batch_size). */
export function allKeys(section: Section, prefix = ''): string[] {
  return Object.entries(section).flatMap(([k, v]) => (isField(v) ? [prefix + k] : allKeys(v, `${prefix}${k}.`)));
}

/** Edit distance with a cap: anything further than `max` returns max + 1 (only near misses matter). */
function distance(a: string, b: string, max: number): number {
  if (Math.abs(a.length - b.length) > max) return max + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[b.length]!;
}

/** What `key` (dotted, as the user wrote it) probably meant. */
export function suggestKeys(key: string, schema: Section): KeySuggestion {
  const keys = allKeys(schema);
  const leaf = key.split('.').pop()!;
  if (!key.includes('.')) {
    const renamed = NANOGPT_RENAMED[leaf];
    if (renamed) return { keys: [renamed.key], note: renamed.why };
    const absent = NANOGPT_ABSENT[leaf];
    if (absent) return { keys: [], note: `nanoGPT's ${leaf} has no counterpart here: ${absent}` };
  }
  // A flat nanoGPT name (batch_size) or one under the wrong section: the same last part elsewhere.
  const sameLeaf = keys.filter((k) => k !== key && k.split('.').pop() === leaf);
  if (sameLeaf.length) return { keys: sameLeaf };
  // A typo: the nearest keys by edit distance, allowing about one edit per four characters.
  const max = Math.max(1, Math.floor(key.length / 4));
  const scored = keys.map((k) => ({ k, d: Math.min(distance(key, k, max), distance(leaf, k.split('.').pop()!, max) + (key.includes('.') ? 1 : 0)) })).filter((x) => x.d <= max);
  const best = Math.min(...scored.map((x) => x.d));
  return { keys: scored.filter((x) => x.d === best).map((x) => x.k) };
}
