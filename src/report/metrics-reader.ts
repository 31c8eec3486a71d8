// Reads <out_dir>/metrics.jsonl (written by src/train/metrics.ts) and summarises a run for the report.
// Pure: no native addon, no file system beyond the one read in readMetricsFile.
import { readBoundedFile, READ_LIMITS } from '../io/bounded-read.js';

export interface StartRecord {
  type: 'start';
  time: string;
  line: number;
  world: number;
  threads: number;
  params: number;
  tokens_per_step: number;
  config: Record<string, unknown>;
  resumed_at: number | null;
}

export interface TrainRecord {
  type: 'train';
  time: string;
  iter: number;
  loss: number;
  lr: number;
  grad_norm: number;
  ms: number;
  tokens_per_s: number;
  mfu: number | null;
  tokens: number;
}

export interface EvalRecord {
  type: 'eval';
  time: string;
  iter: number;
  train_loss: number;
  val_loss: number;
  lr: number;
  tokens: number;
}

export interface EndRecord {
  type: 'end';
  time: string;
  iter: number;
  best_val_loss: number;
  tokens: number;
  ms: number;
  interrupted: boolean;
}

/**
 * Text generated from the run's model, appended by `nanogpt sample --record` (or by the demo, through it): the
 * report shows each such record under "Samples".
 */
export interface SampleRecord {
  type: 'sample';
  time: string;
  /** The iteration of the checkpoint sampled, when known. */
  iter: number | null;
  /** What was sampled, in words, e.g. "best checkpoint (ckpt.pt)". */
  label: string;
  prompt: string;
  texts: string[];
  settings: { temperature?: number; top_k?: number | null; seed?: number; max_new_tokens?: number };
}

/** One process's stretch of training: a start line and what it wrote until the next start (or the end). */
export interface Session {
  start: StartRecord;
  end: EndRecord | null;
  /** Time of the last record of this session (the end line, or whatever came last when the process died). */
  lastTime: string;
  /** Milliseconds this session ran: the end line's `ms`, else the span of its timestamps. */
  ms: number;
}

export interface ParsedMetrics {
  /** The records that describe the run as it stands: when a resumed session rewinds to its snapshot, records
   * the earlier session wrote past that point are dropped (training redid those steps). */
  train: TrainRecord[];
  evals: EvalRecord[];
  /** Sample records in file order; a resume never supersedes them (they name the checkpoint they came from). */
  samples: SampleRecord[];
  sessions: Session[];
  /** Lines that were blank are ignored; lines that are not a valid record are counted and skipped. */
  malformed: number;
  /** Up to 5 "line N: why" notes for the malformed lines, for the warning. */
  malformedNotes: string[];
  /** Records dropped because a later session resumed from an earlier snapshot. */
  superseded: number;
  /** Valid records read. */
  records: number;
}

type Json = Record<string, unknown>;

// Non-finite numbers (a diverged loss is NaN) come out of JSON.stringify as null: accept null as NaN so such a
// step is kept (and shown as a gap) instead of making the line malformed.
function num(o: Json, key: string, required: boolean): number {
  const v = o[key];
  if (typeof v === 'number') return v;
  if (v === null || (v === undefined && !required)) return NaN;
  throw new Error(`field '${key}' is ${v === undefined ? 'missing' : `not a number (${JSON.stringify(v)})`}`);
}

function int(o: Json, key: string): number {
  const v = num(o, key, true);
  if (!Number.isInteger(v)) throw new Error(`field '${key}' is not an integer (${JSON.stringify(o[key])})`);
  return v;
}

function sampleSettings(v: unknown): SampleRecord['settings'] {
  const o = v && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {};
  const pick = (k: string): number | undefined => (typeof o[k] === 'number' ? (o[k] as number) : undefined);
  return { temperature: pick('temperature'), top_k: o.top_k === null ? null : pick('top_k'), seed: pick('seed'), max_new_tokens: pick('max_new_tokens') };
}

function toRecord(o: Json, line: number): StartRecord | TrainRecord | EvalRecord | EndRecord | SampleRecord {
  const time = typeof o.time === 'string' && !Number.isNaN(Date.parse(o.time)) ? o.time : null;
  if (time === null) throw new Error(`field 'time' is missing or not an ISO date`);
  switch (o.type) {
    case 'start': {
      const config = o.config && typeof o.config === 'object' && !Array.isArray(o.config) ? (o.config as Record<string, unknown>) : {};
      const resumed = o.resumed_at;
      if (resumed !== null && resumed !== undefined && typeof resumed !== 'number') throw new Error(`field 'resumed_at' is not a number or null`);
      return {
        type: 'start',
        time,
        line,
        world: num(o, 'world', false),
        threads: num(o, 'threads', false),
        params: num(o, 'params', false),
        tokens_per_step: num(o, 'tokens_per_step', false),
        config,
        resumed_at: typeof resumed === 'number' ? resumed : null,
      };
    }
    case 'train':
      return {
        type: 'train',
        time,
        iter: int(o, 'iter'),
        loss: num(o, 'loss', true),
        lr: num(o, 'lr', false),
        grad_norm: num(o, 'grad_norm', false),
        ms: num(o, 'ms', false),
        tokens_per_s: num(o, 'tokens_per_s', false),
        mfu: typeof o.mfu === 'number' ? o.mfu : null,
        tokens: num(o, 'tokens', false),
      };
    case 'eval':
      return {
        type: 'eval',
        time,
        iter: int(o, 'iter'),
        train_loss: num(o, 'train_loss', true),
        val_loss: num(o, 'val_loss', true),
        lr: num(o, 'lr', false),
        tokens: num(o, 'tokens', false),
      };
    case 'end':
      return {
        type: 'end',
        time,
        iter: int(o, 'iter'),
        // Infinity (no evaluation ever ran) is written as null.
        best_val_loss: num(o, 'best_val_loss', false),
        tokens: num(o, 'tokens', false),
        ms: num(o, 'ms', false),
        interrupted: o.interrupted === true,
      };
    case 'sample': {
      if (typeof o.prompt !== 'string') throw new Error(`field 'prompt' is not a string`);
      if (!Array.isArray(o.texts) || !o.texts.every((t) => typeof t === 'string')) throw new Error(`field 'texts' is not a list of strings`);
      const iter = o.iter;
      if (iter !== null && iter !== undefined && !Number.isInteger(iter)) throw new Error(`field 'iter' is not an integer or null`);
      return {
        type: 'sample',
        time,
        iter: typeof iter === 'number' ? iter : null,
        label: typeof o.label === 'string' ? o.label : '',
        prompt: o.prompt,
        texts: o.texts as string[],
        settings: sampleSettings(o.settings),
      };
    }
    default:
      throw new Error(o.type === undefined ? `no 'type' field` : `unknown type ${JSON.stringify(o.type)}`);
  }
}

/** Parses the text of a metrics.jsonl. Never throws on bad content: bad lines are counted in `malformed`. */
export function parseMetrics(text: string): ParsedMetrics {
  const out: ParsedMetrics = { train: [], evals: [], samples: [], sessions: [], malformed: 0, malformedNotes: [], superseded: 0, records: 0 };
  const bad = (line: number, why: string): void => {
    out.malformed++;
    if (out.malformedNotes.length < 5) out.malformedNotes.push(`line ${line}: ${why}`);
  };
  let session: Session | null = null;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '') continue; // includes the empty string after the final newline
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch {
      // The usual cause: the process was killed mid-write, leaving a truncated last line.
      bad(i + 1, 'not valid JSON');
      continue;
    }
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) {
      bad(i + 1, 'not a JSON object');
      continue;
    }
    let rec: ReturnType<typeof toRecord>;
    try {
      rec = toRecord(obj as Json, i + 1);
    } catch (err) {
      bad(i + 1, (err as Error).message);
      continue;
    }
    out.records++;
    if (rec.type === 'sample') {
      // Not part of a training session's timeline (sampling runs after, or beside, training).
      out.samples.push(rec);
      continue;
    }
    if (rec.type === 'start') {
      // A resumed process restarts from its snapshot's iteration: whatever an earlier process logged after that
      // point was redone, so the later records replace it. A fresh start (resumed_at null) replaces everything.
      const from = rec.resumed_at ?? -1;
      const keepTrain = out.train.filter((r) => r.iter <= from);
      const keepEval = out.evals.filter((r) => r.iter <= from);
      out.superseded += out.train.length - keepTrain.length + out.evals.length - keepEval.length;
      out.train = keepTrain;
      out.evals = keepEval;
      session = { start: rec, end: null, lastTime: rec.time, ms: 0 };
      out.sessions.push(session);
      continue;
    }
    if (session === null) {
      // Records before any start line (a file whose head was lost): keep them under a placeholder session so
      // their data still shows, with what environment we cannot know left as NaN.
      session = {
        start: { type: 'start', time: rec.time, line: 0, world: NaN, threads: NaN, params: NaN, tokens_per_step: NaN, config: {}, resumed_at: null },
        end: null,
        lastTime: rec.time,
        ms: 0,
      };
      out.sessions.push(session);
    }
    session.lastTime = rec.time;
    if (rec.type === 'train') out.train.push(rec);
    else if (rec.type === 'eval') out.evals.push(rec);
    else session.end = rec;
  }
  for (const s of out.sessions) {
    s.ms = s.end && Number.isFinite(s.end.ms) ? s.end.ms : Math.max(0, Date.parse(s.lastTime) - Date.parse(s.start.time));
  }
  return out;
}

export async function readMetricsFile(file: string): Promise<ParsedMetrics> {
  return parseMetrics((await readBoundedFile(file, READ_LIMITS.metrics, 'metrics file')).toString('utf8'));
}

export type RunStatus = 'completed' | 'interrupted' | 'incomplete';

export interface RunSummary {
  status: RunStatus;
  /** Human words for the status, e.g. "interrupted at iteration 40 (resume with the same command)". */
  statusText: string;
  sessions: number;
  /** Last iteration any record reached. */
  iter: number;
  maxIters: number | null;
  bestValLoss: number | null;
  bestValIter: number | null;
  lastTrainLoss: number | null;
  lastTrainIter: number | null;
  lastEval: EvalRecord | null;
  /** Tokens trained on, as counted by the trainer (cumulative across resumes). */
  tokens: number;
  /** Sum over sessions of their run time. */
  wallMs: number;
  /** Mean of the logged per-step tokens/s. */
  meanTokensPerS: number | null;
  /** Mean of the logged MFU figures, when the run reported them. */
  meanMfu: number | null;
  world: number | null;
  threads: number | null;
  params: number | null;
  tokensPerStep: number | null;
  /** The configuration of the latest session. */
  config: Record<string, unknown>;
  startedAt: string | null;
  endedAt: string | null;
}

function mean(xs: readonly number[]): number | null {
  const f = xs.filter(Number.isFinite);
  return f.length ? f.reduce((a, b) => a + b, 0) / f.length : null;
}

function finiteOrNull(v: number | undefined): number | null {
  return v !== undefined && Number.isFinite(v) ? v : null;
}

export function summarise(m: ParsedMetrics): RunSummary {
  const lastSession = m.sessions.at(-1) ?? null;
  const end = lastSession?.end ?? null;
  const lastTrain = [...m.train].reverse().find((r) => Number.isFinite(r.loss)) ?? null;
  const lastEval = m.evals.at(-1) ?? null;
  let best: EvalRecord | null = null;
  for (const e of m.evals) if (Number.isFinite(e.val_loss) && (best === null || e.val_loss < best.val_loss)) best = e;
  // The end line's best_val_loss also counts evaluations from sessions whose lines were superseded or lost;
  // prefer it when it is lower than anything we can see.
  let bestValLoss = best?.val_loss ?? null;
  let bestValIter = best?.iter ?? null;
  if (end && Number.isFinite(end.best_val_loss) && (bestValLoss === null || end.best_val_loss < bestValLoss)) {
    bestValLoss = end.best_val_loss;
    bestValIter = null;
  }
  // Plain loops, not Math.max(...array): a long run has more records than a call can take arguments.
  let iter = end ? end.iter : 0;
  let tokens = end && Number.isFinite(end.tokens) ? end.tokens : 0;
  for (const r of [m.train, m.evals].flat()) {
    if (r.iter > iter) iter = r.iter;
    if (Number.isFinite(r.tokens) && r.tokens > tokens) tokens = r.tokens;
  }
  const tc = lastSession?.start.config.trainer_config as Record<string, unknown> | undefined;
  const maxIters = typeof tc?.max_iters === 'number' ? tc.max_iters : null;
  let status: RunStatus;
  let statusText: string;
  if (end && !end.interrupted) {
    status = 'completed';
    statusText = `completed at iteration ${end.iter}`;
  } else if (end) {
    status = 'interrupted';
    statusText = `interrupted at iteration ${end.iter} (a snapshot was written: the same train command resumes it)`;
  } else {
    status = 'incomplete';
    statusText = `no end record: the run is still going or its process died (last record at iteration ${iter})`;
  }
  const start = lastSession?.start;
  return {
    status,
    statusText,
    sessions: m.sessions.length,
    iter,
    maxIters,
    bestValLoss,
    bestValIter,
    lastTrainLoss: lastTrain?.loss ?? null,
    lastTrainIter: lastTrain?.iter ?? null,
    lastEval,
    tokens,
    wallMs: m.sessions.reduce((a, s) => a + s.ms, 0),
    meanTokensPerS: mean(m.train.map((r) => r.tokens_per_s)),
    meanMfu: mean(m.train.map((r) => r.mfu ?? NaN)),
    world: finiteOrNull(start?.world),
    threads: finiteOrNull(start?.threads),
    params: finiteOrNull(start?.params),
    tokensPerStep: finiteOrNull(start?.tokens_per_step),
    config: start?.config ?? {},
    startedAt: m.sessions[0]?.start.time ?? null,
    endedAt: lastSession?.lastTime ?? null,
  };
}
