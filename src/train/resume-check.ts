// What a resumed run keeps: the snapshot's training config against the one requested now. Keys that fix the
// model's shape or the data windows cannot change (the snapshot's weights and optimizer moments are that shape);
// the others may, and a resumed run says which did, so no setting is ever silently ignored or silently applied.
import { UserError } from '../util/errors.js';
import type { TrainConfig } from './config-schema.js';

export interface SettingChange {
  key: string;
  before: unknown;
  after: unknown;
}

// block_size sets the windows the model was trained on (and its position table); init_from and model.* decide
// the model's shape and weights. With a pretrained or file init_from, model.* never applied, so they are compared
// only for runs from scratch.
const FIXED_KEYS = ['block_size', 'init_from'];
const SCRATCH_SHAPE_KEYS = ['model.preset', 'model.n_layer', 'model.n_head', 'model.n_embd', 'model.vocab_size', 'model.bias'];
// Where and how this process runs, not what it trains: never worth a line.
const IGNORED_KEYS = new Set(['out_dir', 'threads', 'distributed.main_process_ip', 'distributed.main_process_port', 'distributed.iface']);

export function flatten(obj: unknown, prefix = '', out = new Map<string, unknown>()): Map<string, unknown> {
  if (typeof obj === 'object' && obj !== null && !Array.isArray(obj)) {
    for (const [k, v] of Object.entries(obj)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out.set(prefix, obj);
  }
  return out;
}

const show = (v: unknown): string => (typeof v === 'string' ? v : JSON.stringify(v) ?? 'unset');

/**
 * Compares the snapshot's training config (`saved`, as stored; undefined for snapshots that predate it) with
 * the requested one. Throws a UserError naming every key that cannot change; returns the keys that did change.
 */
export function checkResume(saved: unknown, requested: TrainConfig, snapshotPath: string): SettingChange[] {
  if (typeof saved !== 'object' || saved === null || Array.isArray(saved)) return [];
  const before = flatten(saved);
  const after = flatten(requested);
  const savedFromScratch = before.get('init_from') === 'scratch';
  const fixed = new Set([...FIXED_KEYS, ...(savedFromScratch ? SCRATCH_SHAPE_KEYS : [])]);
  const fixedChanges: SettingChange[] = [];
  const changes: SettingChange[] = [];
  for (const [key, now] of after) {
    if (IGNORED_KEYS.has(key) || !before.has(key)) continue;
    const then = before.get(key);
    if (JSON.stringify(then) === JSON.stringify(now)) continue;
    // init_from=resume asks for exactly this: continue the snapshot, whatever it started from.
    if (key === 'init_from' && now === 'resume') continue;
    (fixed.has(key) ? fixedChanges : changes).push({ key, before: then, after: now });
  }
  if (fixedChanges.length > 0) {
    const list = fixedChanges.map((c) => `${c.key}: ${show(c.before)} in the snapshot, ${show(c.after)} now`).join('; ');
    throw new UserError(
      `${snapshotPath} is from a run with ${fixedChanges.length === 1 ? 'another value of a setting' : 'other values of settings'} that a resumed run cannot change (${list})`,
      `to start over, add --fresh (the old snapshot, best model and metrics are moved aside, not deleted); to keep both runs, use another out_dir; to continue this one, pass ${fixedChanges.map((c) => `--${c.key}=${show(c.before)}`).join(' ')}`,
    );
  }
  return changes;
}

/** The log line for settings a resumed run changes, or undefined when none did. */
export function describeChanges(changes: readonly SettingChange[]): string | undefined {
  if (changes.length === 0) return undefined;
  return `resuming with changed settings: ${changes.map((c) => `${c.key} ${show(c.before)} → ${show(c.after)}`).join(', ')}`;
}
