// Loading and validating the training configuration: YAML file (optional) + `--dotted.key=value` overrides,
// checked against SCHEMA. Every problem is a UserError naming the key, the value and what was expected.
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { readBoundedFileSync, READ_LIMITS } from '../io/bounded-read.js';
import { isUserError, UserError } from '../util/errors.js';
import { isField, SCHEMA, type Field, type Section, type TrainConfig } from './config-schema.js';

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
      throw new UserError(`${origin}: unknown key '${full}'`, `valid keys${path ? ` under ${path}` : ''}: ${valid}`);
    }
    if (isField(spec)) target[key] = checkValue(full, value, spec, origin);
    else merge(target[key] as Plain, value, spec, full, origin);
  }
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
  if (opts.file) merge(cfg, readYamlFile(opts.file), SCHEMA, '', opts.file);
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
  checkRelations(c);
  return c;
}

function checkRelations(c: TrainConfig): void {
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
  if (t.max_iters < 0) throw new UserError(`trainer_config.max_iters must be >= 0, got ${t.max_iters}`, 'set a non-negative step count');
  if (t.min_lr > t.max_lr) throw new UserError(`trainer_config.min_lr (${t.min_lr}) is above max_lr (${t.max_lr})`, 'make min_lr <= max_lr');
  if (t.decay_lr && t.lr_decay_iters <= t.warmup_iters && t.lr_decay_iters > 0)
    throw new UserError(`trainer_config.lr_decay_iters (${t.lr_decay_iters}) must be greater than warmup_iters (${t.warmup_iters})`, 'raise lr_decay_iters or lower warmup_iters');
  if (t.grad_clip < 0) throw new UserError(`trainer_config.grad_clip must be >= 0, got ${t.grad_clip}`, 'use 0 to disable clipping');
  if (!(c.model.dropout >= 0 && c.model.dropout < 1)) throw new UserError(`model.dropout must be in [0, 1), got ${c.model.dropout}`, 'use e.g. 0.0 or 0.1');
}

/** Resolves a checkpoint path: s3:// URLs and absolute paths as they are, relative ones inside out_dir. */
export function resolveRunPath(outDir: string, p: string): string {
  if (p.startsWith('s3://') || p.startsWith('/')) return p;
  return `${outDir.replace(/\/+$/, '')}/${p}`;
}

export { SCHEMA };
