// Loading and validating the training configuration: YAML file (optional) + `--dotted.key=value` overrides,
// checked against SCHEMA. Every problem is a UserError naming the key, the value and what was expected.
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { readBoundedFileSync, READ_LIMITS } from '../io/bounded-read.js';
import { isUserError, UserError } from '../util/errors.js';
import { isField, SCHEMA, type Field, type Section, type TrainConfig } from './config-schema.js';
import { tooManyThreads } from '../runtime/threads.js';
import { suggestKeys } from './config-suggest.js';

type Plain = Record<string, unknown>;

function defaults(section: Section): Plain {
  const out: Plain = {};
  for (const [k, v] of Object.entries(section)) out[k] = isField(v) ? v.default : defaults(v);
  return out;
}

function typeName(t: Field['type']): string {
  return typeof t === 'string' ? t : `one of ${t.enum.join(', ')}`;
}

function checkValue(path: string, value: unknown, field: Field, origin: string): unknown {
  const t = field.type;
  if (typeof value === 'number' && !Number.isFinite(value) && (t === 'number' || t === 'integer')) {
    // JSON.stringify would show these as null; YAML reads .inf, .nan and numbers beyond a double (1e400) as them.
    const what = Number.isNaN(value) ? 'NaN (YAML .nan)' : `${value > 0 ? '' : '-'}infinity (YAML ${value > 0 ? '' : '-'}.inf, or a number too large for a double such as 1e400)`;
    throw new UserError(`${origin}: ${path} is ${what}, not a finite ${t}`, `set ${path} to ${typeName(t)} (${field.doc})`);
  }
  const bad = (): never => {
    throw new UserError(`${origin}: ${path} = ${JSON.stringify(value)} is not ${typeof t === 'string' ? `${/^[aeiou]/.test(t) ? 'an' : 'a'} ${t}` : typeName(t)}`, `set ${path} to ${typeName(t)} (${field.doc})`);
  };
  if (typeof t === 'object') {
    if (typeof value !== 'string' || !t.enum.includes(value)) bad();
    return value;
  }
  switch (t) {
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) bad();
      return value;
    case 'integer':
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) bad();
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') bad();
      return value;
    case 'string':
      if (typeof value !== 'string') bad();
      return value;
    case 'string|null':
      if (value !== null && typeof value !== 'string') bad();
      return value;
  }
}

/** Merges `input` into `target` (both shaped like `section`), validating every key and value. */
function merge(target: Plain, input: unknown, section: Section, path: string, origin: string): void {
  if (input === null || input === undefined) return;
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw new UserError(`${origin}: ${path || 'the configuration'} must be a mapping of keys, got ${JSON.stringify(input)}`, 'see the config reference in the README');
  }
  for (const [key, value] of Object.entries(input as Plain)) {
    const full = path ? `${path}.${key}` : key;
    const spec = section[key];
    if (!spec) {
      const valid = Object.keys(section).join(', ');
      throw new UserError(`${origin}: unknown key '${full}'`, unknownKeyFix(full, origin) ?? `valid keys${path ? ` under ${path}` : ''}: ${valid}`);
    }
    if (isField(spec)) target[key] = checkValue(full, value, spec, origin);
    else merge(target[key] as Plain, value, spec, full, origin);
  }
}

/**
 * The fix for an unknown key: the key(s) meant, written as the user must write them there (a command-line flag or
 * a YAML path), or undefined when nothing is close.
 */
function unknownKeyFix(full: string, origin: string): string | undefined {
  const { keys, note } = suggestKeys(full, SCHEMA);
  if (keys.length === 0) return note;
  const onCommandLine = origin.startsWith('--');
  const spell = (k: string): string => (onCommandLine ? `--${k}=…` : k.includes('.') ? `${k} (${k.split('.').pop()}: indented under ${k.split('.').slice(0, -1).join('.')}:)` : `${k} (at the top level)`);
  return `did you mean ${keys.map(spell).join(' or ')}?${note ? ` (${note})` : ''} See the configuration reference in the README.`;
}

/** A scalar from the command line, read as YAML would (numbers, true/false, null), else a string. */
function parseScalar(raw: string): unknown {
  try {
    const v: unknown = parseYaml(raw);
    return v === undefined ? raw : v;
  } catch {
    return raw;
  }
}

function readYamlFile(file: string): unknown {
  let text: string;
  try {
    text = readBoundedFileSync(file, READ_LIMITS.config, 'config file').toString('utf8');
  } catch (err) {
    if (isUserError(err)) throw err;
    throw new UserError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'check the path given to --config');
  }
  try {
    return parseYaml(text);
  } catch (err) {
    const e = err as YAMLParseError;
    const where = e.linePos?.[0] ? ` line ${e.linePos[0].line}, column ${e.linePos[0].col}` : '';
    throw new UserError(`${file}:${where} is not valid YAML: ${e.message.split('\n')[0]}`, 'fix the syntax (indentation, colons) in the config file');
  }
}

/**
 * Builds the configuration: schema defaults (equal to the reference YAML), then the file, then overrides
 * (`trainer_config.batch_size` → `8`).
 */
export function loadConfig(opts: { file?: string; overrides?: ReadonlyMap<string, string> | Record<string, string> } = {}): TrainConfig {
  const cfg = defaults(SCHEMA);
  const fromFile: unknown = opts.file ? readYamlFile(opts.file) : undefined;
  if (opts.file) merge(cfg, fromFile, SCHEMA, '', opts.file);
  const overrides = opts.overrides instanceof Map ? [...opts.overrides] : Object.entries(opts.overrides ?? {});
  for (const [key, raw] of overrides) {
    const parts = key.split('.');
    const nested: Plain = {};
    let cur = nested;
    parts.forEach((p: string, i: number) => {
      if (i === parts.length - 1) cur[p] = parseScalar(raw);
      else cur = cur[p] = {} as Plain;
    });
    merge(cfg, nested, SCHEMA, '', `--${key}`);
  }
  const c = cfg as unknown as TrainConfig;
  // Unset, the cosine spans the whole run, as nanoGPT's own configs set it (lr_decay_iters = max_iters); a fixed
  // default would leave a longer run at min_lr for most of its steps.
  const decaySet = overrides.some(([k]) => k === 'trainer_config.lr_decay_iters') || hasPath(fromFile, ['trainer_config', 'lr_decay_iters']);
  if (!decaySet) c.trainer_config.lr_decay_iters = c.trainer_config.max_iters;
  checkRelations(c, decaySet);
  return c;
}

function hasPath(obj: unknown, keys: readonly string[]): boolean {
  let cur = obj;
  for (const k of keys) {
    if (typeof cur !== 'object' || cur === null || !(k in cur)) return false;
    cur = (cur as Record<string, unknown>)[k];
  }
  return true;
}

function checkRelations(c: TrainConfig, decaySet: boolean): void {
  checkSettingsThatCanOnlyBeWrong(c);
  const t = c.trainer_config;
  const positive: [string, number][] = [
    ['block_size', c.block_size],
    ['trainer_config.batch_size', t.batch_size],
    ['trainer_config.gradient_accumulation_steps', t.gradient_accumulation_steps],
    ['trainer_config.eval_interval', t.eval_interval],
    ['trainer_config.log_interval', t.log_interval],
    ['trainer_config.eval_iters', t.eval_iters],
  ];
  for (const [k, v] of positive) if (v < 1) throw new UserError(`${k} must be at least 1, got ${v}`, `set ${k} to a positive integer`);
  const microBatchTokens = t.batch_size * (c.block_size + 1);
  if (microBatchTokens > MAX_MICRO_BATCH_TOKENS) {
    throw new UserError(
      `trainer_config.batch_size ${t.batch_size} × (block_size ${c.block_size} + 1) is ${microBatchTokens.toExponential(2)} tokens per micro-batch, more than the limit of ${MAX_MICRO_BATCH_TOKENS.toLocaleString('en-US')}`,
      'lower trainer_config.batch_size (and raise gradient_accumulation_steps to keep the global batch)',
    );
  }
  if (t.max_iters < 0) throw new UserError(`trainer_config.max_iters must be >= 0, got ${t.max_iters}`, 'set a non-negative step count');
  if (t.min_lr > t.max_lr) throw new UserError(`trainer_config.min_lr (${t.min_lr}) is above max_lr (${t.max_lr})`, 'make min_lr <= max_lr');
  if (decaySet && t.decay_lr && t.lr_decay_iters <= t.warmup_iters && t.lr_decay_iters > 0)
    throw new UserError(`trainer_config.lr_decay_iters (${t.lr_decay_iters}) must be greater than warmup_iters (${t.warmup_iters})`, 'raise lr_decay_iters or lower warmup_iters');
  if (t.grad_clip < 0) throw new UserError(`trainer_config.grad_clip must be >= 0, got ${t.grad_clip}`, 'use 0 to disable clipping');
  if (!(c.model.dropout >= 0 && c.model.dropout < 1)) throw new UserError(`model.dropout must be in [0, 1), got ${c.model.dropout}`, 'use e.g. 0.0 or 0.1');
}

/** Values no run can mean: each one would fail later, hang, or train nonsense without a word. */
function checkSettingsThatCanOnlyBeWrong(c: TrainConfig): void {
  const o = c.optimizer_config;
  const t = c.trainer_config;
  const d = c.distributed;
  for (const [k, v] of [['optimizer_config.beta1', o.beta1], ['optimizer_config.beta2', o.beta2]] as const) {
    if (!(v >= 0 && v < 1)) throw new UserError(`${k} must be in [0, 1), got ${v}`, `use e.g. beta1: 0.9, beta2: 0.95 (AdamW's moment decay rates; ${v >= 1 ? '1 or more never forgets, and the bias correction divides by zero' : 'a rate is not negative'})`);
  }
  if (!(o.eps > 0)) throw new UserError(`optimizer_config.eps must be > 0, got ${o.eps}`, 'use e.g. 1e-8 (it keeps AdamW from dividing by zero)');
  const nonNegative: [string, number, string][] = [
    ['optimizer_config.weight_decay', o.weight_decay, 'use e.g. 0.1, or 0 for none'],
    ['optimizer_config.learning_rate', o.learning_rate, 'use e.g. 6e-4'],
    ['trainer_config.max_lr', t.max_lr, 'use e.g. 6e-4'],
    ['trainer_config.min_lr', t.min_lr, 'use e.g. 6e-5'],
    ['trainer_config.warmup_iters', t.warmup_iters, 'use 0 for no warmup'],
    ['trainer_config.lr_decay_iters', t.lr_decay_iters, 'use e.g. max_iters'],
    ['trainer_config.snapshot_interval', t.snapshot_interval, 'use 0 to snapshot at each evaluation only'],
    ['trainer_config.peak_flops', t.peak_flops, 'use 0 to leave MFU out'],
    ['threads', c.threads, 'use 0 for the default (physical cores / local ranks)'],
    ['distributed.main_process_port', d.main_process_port, 'use 0 for MASTER_PORT or 29500'],
    ['distributed.check_interval', d.check_interval, 'use 0 to compare only at the end'],
  ];
  for (const [k, v, fix] of nonNegative) if (v < 0) throw new UserError(`${k} must be >= 0, got ${v}`, fix);
  const tooMany = tooManyThreads(c.threads);
  if (tooMany !== null) throw new UserError(`threads: ${tooMany}`, 'use at most the number of cores, or 0 for the default (physical cores / local ranks)');
  if (d.main_process_port > 65535) throw new UserError(`distributed.main_process_port must be a TCP port (1 to 65535, or 0), got ${d.main_process_port}`, 'use e.g. 29500');
  if (!(d.timeout_s > 0 && d.timeout_s <= MAX_TIMEOUT_S)) {
    throw new UserError(`distributed.timeout_s must be > 0 and at most ${MAX_TIMEOUT_S} (a year), got ${d.timeout_s}`, 'use e.g. 300 (seconds a rank waits for its peers)');
  }
}

// Tokens in one micro-batch: 2^27 already needs terabytes of float32 activations for GPT-2 small, and beyond 2^31 the
// batch's index tensors overflow the 32-bit indexing of some libtorch kernels.
const MAX_MICRO_BATCH_TOKENS = 2 ** 27;

/** A year: longer waits are no different from "forever", and far longer ones overflow the collectives' clocks. */
const MAX_TIMEOUT_S = 365 * 24 * 3600;

/** Resolves a checkpoint path: s3:// URLs and absolute paths as they are, relative ones inside out_dir. */
export function resolveRunPath(outDir: string, p: string): string {
  if (p.startsWith('s3://') || p.startsWith('/')) return p;
  return `${outDir.replace(/\/+$/, '')}/${p}`;
}

export { SCHEMA };
