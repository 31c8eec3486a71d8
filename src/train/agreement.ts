// Ranks that disagree are caught at rendezvous. Every rank posts the settings that must be equal across a job
// (its effective training config without what is legitimately per machine, plus the code version); rank 0
// compares them and posts a verdict, so on any difference every rank exits 2 with the same message instead of
// training with mixed settings or failing later inside a collective.
import type { ProcessGroup } from '../torch/distributed/index.js';
import { UserError } from '../util/errors.js';
import { named, plural } from '../util/format.js';
import type { TrainConfig } from './config-schema.js';
import { flatten } from './resume-check.js';

// Where and how this process runs, not what the job trains: paths (each machine has its own, and only rank 0
// reads init_from and writes checkpoints), threads, the interface and the rendezvous address (as each rank spells
// it), and settings only rank 0 acts on (peak_flops: MFU in rank 0's log).
const PER_RANK_KEYS = new Set([
  'data_dir',
  'out_dir',
  'threads',
  'init_from',
  'trainer_config.model_path',
  'trainer_config.snapshot_path',
  'trainer_config.peak_flops',
  'distributed.main_process_ip',
  'distributed.main_process_port',
  'distributed.iface',
]);

/** The settings every rank of a job must share, flattened to dotted keys, with the code version under `code`. */
export function sharedSettings(config: TrainConfig, code: string): Record<string, unknown> {
  const out: Record<string, unknown> = { code };
  for (const [k, v] of flatten(config)) if (!PER_RANK_KEYS.has(k)) out[k] = v;
  return out;
}

const show = (v: unknown): string => (v === undefined ? 'unset' : typeof v === 'string' ? v : JSON.stringify(v));
const ranksText = (rs: number[]): string => named('rank', rs);

/** One line per differing key: "trainer_config.eval_interval: 4 on ranks 0, 2; 8 on rank 1". Empty when all agree. */
export function describeDisagreement(byRank: readonly Record<string, unknown>[]): string[] {
  const keys = [...new Set(byRank.flatMap((s) => Object.keys(s)))].sort();
  const lines: string[] = [];
  for (const k of keys) {
    const groups = new Map<string, number[]>();
    byRank.forEach((s, r) => {
      const v = show(s[k]);
      groups.set(v, [...(groups.get(v) ?? []), r]);
    });
    if (groups.size > 1) lines.push(`${k}: ${[...groups].map(([v, rs]) => `${v} on ${ranksText(rs)}`).join('; ')}`);
  }
  return lines;
}

interface Posted {
  settings: Record<string, unknown>;
  /** The address this rank's Gloo advertises (logged by rank 0; not compared). */
  address: string;
}

/**
 * Posts this rank's settings; rank 0 gathers all, compares, and posts the verdict every rank reads. Throws the
 * same UserError on every rank when they differ. Returns, on rank 0, each rank's Gloo address (for the log).
 */
export async function checkRanksAgree(pg: ProcessGroup, settings: Record<string, unknown>): Promise<string[]> {
  await pg.storeSet(`nanogpt/settings/${pg.rank}`, JSON.stringify({ settings, address: pg.address.address } satisfies Posted));
  let verdict: { differences: string[] };
  let addresses: string[] = [];
  if (pg.rank === 0) {
    const posted: Posted[] = [];
    for (let r = 0; r < pg.worldSize; r++) posted.push(JSON.parse(await pg.storeGet(`nanogpt/settings/${r}`)) as Posted);
    addresses = posted.map((p) => p.address);
    verdict = { differences: describeDisagreement(posted.map((p) => p.settings)) };
    await pg.storeSet('nanogpt/settings/verdict', JSON.stringify(verdict));
  } else {
    verdict = JSON.parse(await pg.storeGet('nanogpt/settings/verdict')) as typeof verdict;
  }
  if (verdict.differences.length > 0) {
    throw new UserError(
      `the ranks of this job disagree on ${plural(verdict.differences.length, 'setting')}:\n    ${verdict.differences.join('\n    ')}`,
      'start every rank with the same config file, overrides and nanogpt-ts version (code: the package version + a hash of its compiled JavaScript); NANOGPT_* variables and --flags must match too',
    );
  }
  return addresses;
}
