import { UserError } from '../util/errors.js';

/** What a subcommand accepts: flag names in snake_case (kebab-case spellings are accepted too). */
export interface FlagSpec {
  /** Flags that take a value: `--name value` or `--name=value`. */
  values?: readonly string[];
  /** Flags that are switches: `--name` (true), `--name=false`, `--no-name`. */
  booleans?: readonly string[];
  /** Flags that may repeat; their values are collected in order. */
  repeated?: readonly string[];
  /** Accept any `--dotted.key=value` (config overrides); unknown flags are kept instead of rejected. */
  allowUnknown?: boolean;
}

export interface ParsedArgs {
  flags: Map<string, string | boolean>;
  repeated: Map<string, string[]>;
  positionals: string[];
  /** Everything after a bare `--`. */
  rest: string[];
}

/** `--ckpt-path` and `--ckpt_path` are the same flag; dotted config keys keep their dots. */
export function normalizeFlagName(name: string): string {
  return name.replace(/-/g, '_');
}

/**
 * Parses argv for one subcommand. Unknown flags are an error listing the valid ones, so a typo never passes
 * silently; `command` names the subcommand in messages.
 */
export function parseArgs(argv: readonly string[], spec: FlagSpec, command: string): ParsedArgs {
  const values = new Set((spec.values ?? []).map(normalizeFlagName));
  const booleans = new Set((spec.booleans ?? []).map(normalizeFlagName));
  const repeatedNames = new Set((spec.repeated ?? []).map(normalizeFlagName));
  const out: ParsedArgs = { flags: new Map(), repeated: new Map(), positionals: [], rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      out.rest = argv.slice(i + 1);
      break;
    }
    if (!arg.startsWith('--') || arg === '--') {
      out.positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const rawName = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    let name = normalizeFlagName(rawName);
    let inline: string | undefined = eq >= 0 ? arg.slice(eq + 1) : undefined;
    if (!booleans.has(name) && name.startsWith('no_') && booleans.has(name.slice(3)) && inline === undefined) {
      name = name.slice(3);
      inline = 'false';
    }
    if (booleans.has(name)) {
      out.flags.set(name, inline === undefined ? true : parseBoolean(inline, `--${rawName}`));
      continue;
    }
    if (values.has(name) || repeatedNames.has(name) || spec.allowUnknown) {
      let value = inline;
      if (value === undefined) {
        const next = argv[i + 1];
        if (next === undefined || (next.startsWith('--') && next.length > 2)) {
          if (spec.allowUnknown && !values.has(name) && !repeatedNames.has(name)) {
            out.flags.set(name, true);
            continue;
          }
          throw new UserError(`--${rawName} needs a value`, `write --${rawName}=VALUE (see nanogpt ${command} --help)`);
        }
        value = next;
        i++;
      }
      if (repeatedNames.has(name)) {
        const list = out.repeated.get(name) ?? [];
        list.push(value);
        out.repeated.set(name, list);
      } else {
        out.flags.set(name, value);
      }
      continue;
    }
    const valid = [...values, ...booleans, ...repeatedNames].sort().map((n) => `--${n}`);
    throw new UserError(
      `unknown option --${rawName} for 'nanogpt ${command}'`,
      `valid options: ${valid.join(', ') || '(none)'}; see nanogpt ${command} --help`,
    );
  }
  return out;
}

export function parseBoolean(text: string, what: string): boolean {
  const t = text.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(t)) return true;
  if (['0', 'false', 'no', 'off'].includes(t)) return false;
  throw new UserError(`${what} expects true or false, got '${text}'`);
}

/** Reads a flag as a string, or `fallback`. */
export function flagString(args: ParsedArgs, name: string, fallback?: string): string | undefined {
  const v = args.flags.get(name);
  if (v === undefined) return fallback;
  if (typeof v === 'boolean') throw new UserError(`--${name} needs a value`);
  return v;
}

/** Reads a flag as a number within bounds, naming the flag and the expected range on a bad value. */
export function flagNumber(
  args: ParsedArgs,
  name: string,
  fallback: number,
  opts: { integer?: boolean; min?: number; max?: number } = {},
): number {
  const raw = flagString(args, name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  const kind = opts.integer ? 'an integer' : 'a number';
  if (raw.trim() === '' || !Number.isFinite(n) || (opts.integer && !Number.isInteger(n))) {
    throw new UserError(`--${name} must be ${kind}, got '${raw}'`);
  }
  if (opts.min !== undefined && n < opts.min) throw new UserError(`--${name} must be >= ${opts.min}, got ${raw}`);
  if (opts.max !== undefined && n > opts.max) throw new UserError(`--${name} must be <= ${opts.max}, got ${raw}`);
  return n;
}

export function flagBoolean(args: ParsedArgs, name: string, fallback = false): boolean {
  const v = args.flags.get(name);
  if (v === undefined) return fallback;
  return typeof v === 'boolean' ? v : parseBoolean(v, `--${name}`);
}
