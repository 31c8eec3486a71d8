// The training loop: nanoGPT's recipe (AdamW, warmup + cosine LR, gradient accumulation, clipping, bf16 autocast,
// periodic evaluation, best checkpoint, snapshots with exact resume), data-parallel when given a process group.
import * as torch from '../torch/index.js';
import type { ProcessGroup } from '../torch/distributed/index.js';
import { isUserError, UserError } from '../util/errors.js';
import { GPT } from '../gpt/model.js';
import { flopsPerToken } from '../gpt/config.js';
import type { TrainConfig } from './config-schema.js';
import { resolveRunPath } from './config.js';
import { BatchLoader, type SamplerState, type Split } from './data.js';
import { SamplerRng } from '../util/rng.js';
import { RunProgress, StatusLine } from './progress.js';
import { learningRate, scheduleWarnings } from './lr-schedule.js';
import { loadModel, pathExists, readRankStates, restoreOptimizer, savedTrainConfig, saveModel, saveSnapshot, type RankStates, type TrainState } from './checkpoint.js';
import { initialModel, makeOptimizer } from './model-init.js';
import { MetricsLog } from './metrics.js';
import { formatCount, formatDuration } from '../util/format.js';
import { GradientSync, parameterChecksum } from './ddp.js';
import { checkResume, describeChanges } from './resume-check.js';
import { divergedError, firstNonFiniteParameter, formatNumber, type DivergenceContext } from './divergence.js';
import { activeAllocator, ALLOCATOR_ENV } from '../runtime/allocator.js';
import { chooseThreads } from '../runtime/threads.js';

export interface DistContext {
  pg: ProcessGroup;
  rank: number;
  worldSize: number;
  localWorldSize: number;
  /** This rank's index among those on its host (0 when not known). */
  localRank?: number;
}

/**
 * Ranks on each host, in rank order of the hosts' first ranks: every rank contributes (local rank, ranks on its
 * host), and each local rank 0 stands for one host. One small all-gather at start-up, for the banner.
 */
async function ranksPerHost(dist: DistContext): Promise<number[]> {
  const mine = torch.tensor([dist.localRank ?? 0, dist.localWorldSize], { dtype: 'float64' });
  const all = await dist.pg.allgather(mine);
  const pairs = all.map((t) => t.toArray() as number[]);
  mine.dispose();
  all.forEach((t) => t.dispose());
  return pairs.filter(([localRank]) => localRank === 0).map(([, n]) => n!);
}

/** "2 per host", or the counts when hosts differ ("2 + 1 on 2 hosts"). */
function describePerHost(counts: readonly number[]): string {
  if (counts.length > 0 && counts.every((n) => n === counts[0])) return `${counts[0]} per host`;
  return `${counts.join(' + ')} on ${counts.length} hosts`;
}

export interface TrainOptions {
  config: TrainConfig;
  dist?: DistContext;
  /** Human log lines (stderr by default). */
  log?: (line: string) => void;
  /** Aborting stops after the current step, writes a snapshot and resolves with interrupted = true. */
  signal?: AbortSignal;
  /** Called after every optimizer step (tests use it to look at the model). */
  onStep?: (info: { iter: number; loss: number; model: GPT }) => void;
}

export interface TrainResult {
  iter: number;
  bestValLoss: number;
  lastLosses: { train: number; val: number } | null;
  trainLosses: number[];
  tokens: number;
  interrupted: boolean;
  ms: number;
  model: GPT;
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const c = opts.config;
  const t = c.trainer_config;
  const dist = opts.dist;
  const rank = dist?.rank ?? 0;
  const world = dist?.worldSize ?? 1;
  const isMain = rank === 0;
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  // A live status line only where a person watches one process's output: rank 0 of a single-process run on a
  // terminal (`nanogpt launch` pipes and prefixes every rank's lines).
  const status = new StatusLine(process.stderr, isMain && world === 1 && Boolean(process.stderr.isTTY));
  const emit = status.wrap(log);
  const say = (s: string): void => {
    if (isMain) emit(s);
  };
  const started = Date.now();

  if (t.device !== 'cpu' && !torch.version().cuda) {
    throw new UserError(`trainer_config.device is ${t.device}, but this libtorch has no CUDA`, 'set trainer_config.device: cpu, or build against a CUDA libtorch (LIBTORCH=...)');
  }
  const threads = chooseThreads(c.threads, dist?.localWorldSize ?? 1);
  torch.setNumThreads(threads);
  torch.manualSeed(c.seed);

  const modelPath = resolveRunPath(c.out_dir, t.model_path);
  const snapshotPath = resolveRunPath(c.out_dir, t.snapshot_path);

  // ---- model and state: resume from the snapshot when there is one, else initialise (rank 0 decides).
  let model: GPT;
  let state: TrainState | null = null;
  let opt: torch.AdamW;
  const resume = isMain ? await pathExists(snapshotPath) : false;
  let snapshotStates: RankStates | null = null;
  const initKey = 'nanogpt/init';
  try {
    if (isMain && resume) {
      const loaded = await loadModel(snapshotPath, { dropout: c.model.dropout });
      model = loaded.model;
      opt = makeOptimizer(model, c);
      try {
        const changed = describeChanges(checkResume(savedTrainConfig(loaded.reader), c, snapshotPath));
        if (changed) say(changed);
        state = await restoreOptimizer(loaded.reader, model, opt);
        snapshotStates = readRankStates(loaded.reader, state);
        say(`resuming from snapshot ${snapshotPath} at iteration ${state.iter}/${t.max_iters} (${Math.floor((100 * state.iter) / Math.max(1, t.max_iters))}%, ${formatCount(state.tokens)} tokens seen)`);
      } finally {
        await loaded.reader.close();
      }
    } else if (isMain) {
      if (c.init_from === 'resume') {
        throw new UserError(
          `init_from is resume, but there is no snapshot at ${snapshotPath}`,
          'check out_dir and trainer_config.snapshot_path (they name the run to resume), or set init_from to scratch, gpt2 or a checkpoint to start a new run',
        );
      }
      model = await initialModel(c, say);
      opt = makeOptimizer(model, c);
    }
  } catch (err) {
    // The other ranks wait for rank 0's model: tell them it will not come, so they stop now with the reason.
    if (dist && isUserError(err)) await dist.pg.storeSet(initKey, JSON.stringify({ error: err.problem, fix: err.fix }));
    throw err;
  }
  if (dist) {
    // Other ranks build the same shape from rank 0's description, then take its weights (and moments).
    if (isMain) await dist.pg.storeSet(initKey, JSON.stringify({ modelConfig: model!.config, state, snapshotStates }));
    const shared = JSON.parse(await dist.pg.storeGet(initKey)) as { modelConfig: GPT['config']; state: TrainState | null; snapshotStates: typeof snapshotStates; error?: string; fix?: string };
    if (shared.error !== undefined) throw new UserError(`rank 0 could not set up the model: ${shared.error}`, shared.fix);
    if (!isMain) {
      model = new GPT(shared.modelConfig);
      opt = makeOptimizer(model, c);
      state = shared.state;
      snapshotStates = shared.snapshotStates;
    }
    for (const p of model!.parameters()) await dist.pg.broadcast(p, 0);
    if (state) for (const m of [...opt!.expAvg, ...opt!.expAvgSq]) await dist.pg.broadcast(m, 0);
  }
  model = model!;
  opt = opt!;
  if (c.block_size > model.config.blockSize) {
    throw new UserError(`block_size ${c.block_size} exceeds the model's context of ${model.config.blockSize}`, `set block_size to at most ${model.config.blockSize}`);
  }

  // ---- data: each rank its own sample stream
  const loader = new BatchLoader(c.data_dir, c.block_size, t.batch_size, c.seed + rank, t.device, model.config.vocabSize);
  try {
    await loader.checkIds(say);
  } catch (err) {
    loader.close();
    throw err;
  }
  let iter = 0;
  let bestValLoss = Infinity;
  let tokens = 0;
  if (state) {
    iter = state.iter;
    bestValLoss = state.bestValLoss;
    tokens = state.tokens;
    opt.step = state.optimizerStep;
    const sameWorld = snapshotStates && snapshotStates.sampler.length === world;
    if (sameWorld) {
      loader.setState(snapshotStates!.sampler[rank]!);
      torch.setRngState(Buffer.from(snapshotStates!.rng[rank]!, 'base64'));
    } else {
      // A different world size: fresh, rank-distinct streams (the run continues, not bit-identically).
      loader.setState({ train: new SamplerRng(c.seed + rank + 7919 * iter).getState(), val: new SamplerRng(c.seed + rank + 7919 * iter + 1).getState() });
      torch.manualSeed(c.seed + rank + iter);
      const was = snapshotStates?.sampler.length;
      const perRank = t.batch_size * t.gradient_accumulation_steps;
      say(
        `snapshot was written at world size ${was ?? '?'}; now ${world}: data streams re-seeded, and the global batch is now ${perRank * world} sequences ` +
          `(${formatCount(perRank * world * c.block_size)} tokens) per step${was ? `, was ${perRank * was} (${formatCount(perRank * was * c.block_size)} tokens)` : ''}: ` +
          'each step sees a different amount of data than before (scale the learning rate or gradient_accumulation_steps to keep it)',
      );
    }
  } else if (world > 1) {
    torch.manualSeed(c.seed + rank); // distinct dropout masks per rank; weights already broadcast
  }

  // eval_only measures and leaves the run as it was: no metrics lines (the run's history), no snapshot, no model.
  const metrics = new MetricsLog(isMain && !t.eval_only ? c.out_dir : null, state === null);
  const accum = t.gradient_accumulation_steps;
  const tokensPerStep = t.batch_size * c.block_size * accum * world;
  const nParams = model.countParameters(false);
  const flopsPerStep = flopsPerToken(model.config, model.countParameters(true), c.block_size) * tokensPerStep;
  const bf16 = t.mixed_precision === 'bf16';
  const withPrecision = <T>(fn: () => T): T => (bf16 ? torch.autocast(fn, { dtype: 'bfloat16' }) : fn());
  const sync = dist ? new GradientSync(dist.pg, model.parameters(), { overlap: c.distributed.overlap_comm }) : null;

  const allocator = activeAllocator();
  const perHost = dist ? await ranksPerHost(dist) : [1];
  say(
    `model: ${(nParams / 1e6).toFixed(2)}M parameters · world ${world} (${describePerHost(perHost)}) · ${threads} thread${threads === 1 ? '' : 's'}/process · ` +
      `global batch ${t.batch_size} × ${accum} × ${world} = ${t.batch_size * accum * world} sequences (${formatCount(tokensPerStep)} tokens) · ${t.mixed_precision} · ${allocator}`,
  );
  if (allocator === 'glibc malloc' && process.env[ALLOCATOR_ENV] !== 'system') {
    say('note: running on glibc malloc; steps are several times slower than with tcmalloc (apt-get install libtcmalloc-minimal4)');
  }
  for (const w of scheduleWarnings(t)) say(`warning: ${w}`);
  metrics.write({ type: 'start', world, threads, params: nParams, tokens_per_step: tokensPerStep, config: c, resumed_at: state ? iter : null });

  // ---- helpers
  const evaluate = async (): Promise<{ train: number; val: number }> => {
    model.eval();
    const out: Record<Split, number> = { train: 0, val: 0 };
    for (const split of ['train', 'val'] as const) {
      let sum = 0;
      for (let k = 0; k < t.eval_iters; k++) {
        sum += torch.scope(() =>
          torch.noGrad(() => {
            const { x, y } = loader.next(split);
            return withPrecision(() => model.forward(x, y).loss!).item();
          }),
        );
      }
      out[split] = sum / t.eval_iters;
    }
    model.train();
    if (dist) {
      const both = torch.tensor([out.train, out.val], { dtype: 'float64' });
      await dist.pg.allreduce(both, 'avg');
      const [tr, va] = both.toArray() as number[];
      both.dispose();
      return { train: tr!, val: va! };
    }
    return out;
  };

  const currentState = (): TrainState => ({
    iter,
    optimizerStep: opt.step,
    bestValLoss,
    tokens,
    sampler: loader.getState(),
    rng: Buffer.from(torch.getRngState()).toString('base64'),
    worldSize: world,
  });

  const divergence: DivergenceContext = { bf16, modelPath, snapshotPath, lastSnapshotIter: state ? iter : null };
  /** Nothing is written from weights holding NaN or infinity; every rank checks (they hold the same weights). */
  let weightsCheckedAt = -1; // an evaluation that saves the best model and a snapshot checks once, not twice
  const checkWeightsFinite = (): void => {
    if (weightsCheckedAt === iter) return;
    weightsCheckedAt = iter;
    const bad = firstNonFiniteParameter(model);
    if (bad !== null) throw divergedError(`parameter ${bad} holds NaN or infinite values at iteration ${iter}`, divergence);
  };

  let snapshotsThisRun = 0;
  const writeSnapshot = async (): Promise<void> => {
    checkWeightsFinite();
    // Every rank's sampler and RNG state goes in, so a resume at the same world size is exact on every rank.
    const mine = { sampler: loader.getState(), rng: currentState().rng };
    let perRank = { sampler: [mine.sampler], rng: [mine.rng] };
    if (dist) {
      // Each rank posts its state, then a barrier: rank 0 reads only keys that are already there, and a rank that
      // died before posting is named by the barrier's diagnosis instead of surfacing as a store timeout. The
      // store lives as long as this run, and snapshots are numbered in the same order on every rank.
      const prefix = `nanogpt/rankstate/${++snapshotsThisRun}`;
      await dist.pg.storeSet(`${prefix}/${rank}`, JSON.stringify(mine));
      await dist.pg.barrier();
      if (isMain) {
        perRank = { sampler: [], rng: [] };
        for (let r = 0; r < world; r++) {
          const s = JSON.parse(await dist.pg.storeGet(`${prefix}/${r}`)) as { sampler: SamplerState; rng: string };
          perRank.sampler.push(s.sampler);
          perRank.rng.push(s.rng);
        }
      }
    }
    if (isMain) {
      const t0 = Date.now();
      await saveSnapshot(snapshotPath, model, opt, currentState(), c, { rank_states: JSON.stringify(perRank) });
      say(`snapshot saved to ${snapshotPath} (${Date.now() - t0} ms)`);
    }
    divergence.lastSnapshotIter = iter;
    if (dist) await dist.pg.barrier(); // the others wait until the snapshot is complete
  };

  /**
   * The ranks' agreement on per-step flags (stop requested, non-finite loss): one all-reduce of one element per
   * flag, taking the max, so every rank sees a flag any rank raised and all of them act at the same step (a rank
   * that acted alone would leave the others blocked in their next collective).
   */
  const agree = async (flags: readonly boolean[]): Promise<boolean[]> => {
    if (!dist) return [...flags];
    const t = torch.tensor(flags.map((f) => (f ? 1 : 0)));
    try {
      await dist.pg.allreduce(t, 'max');
      return (t.toArray() as number[]).map((v) => v > 0);
    } finally {
      t.dispose();
    }
  };

  const checkConsistency = async (): Promise<void> => {
    if (!dist) return;
    const local = torch.tensor([parameterChecksum(model)], { dtype: 'float64' });
    const all = await dist.pg.allgather(local);
    const values = all.map((a) => a.item());
    local.dispose();
    all.forEach((a) => a.dispose());
    if (iter === t.max_iters) log(`parameter checksum at iteration ${iter}: ${values[rank]}`);
    // Every rank holds the same weights, so every rank sees a non-finite checksum and stops here alike.
    if (values.some((v) => !Number.isFinite(v))) checkWeightsFinite();
    const bad = values.map((v, r) => (v === values[0] ? -1 : r)).filter((r) => r >= 0);
    if (bad.length) {
      throw new Error(`parameters diverged across ranks at iteration ${iter}: rank(s) ${bad.join(', ')} differ from rank 0 (checksums ${values.join(', ')})`);
    }
  };

  // ---- the loop
  let lastLosses: { train: number; val: number } | null = null;
  const trainLosses: number[] = [];
  let bestIter = -1; // the iteration of the best model this run saved (-1: none yet)
  let skipEvalOnce = state !== null && !t.eval_only; // the snapshot was written right after this iteration's evaluation
  let interrupted = false;
  // A stop request (a signal to any rank) as the ranks agreed on it at the end of the last step; single-process
  // runs read the signal directly.
  let stopAgreed = false;
  const loopStart = Date.now();
  const progress = new RunProgress(iter, t.max_iters);
  // The status line is cleared however the loop ends, so an error message never lands on a half-drawn line.
  try {
    for (;;) {
      const lr = learningRate(iter, t, c.optimizer_config.learning_rate);
      const evalNow = (iter % t.eval_interval === 0 || iter === t.max_iters || t.eval_only) && !skipEvalOnce;
      if (evalNow) {
        const losses = await evaluate();
        lastLosses = losses;
        say(`step ${iter}: train loss ${losses.train.toFixed(4)}, val loss ${losses.val.toFixed(4)}`);
        metrics.write({ type: 'eval', iter, train_loss: losses.train, val_loss: losses.val, lr, tokens });
        if (t.eval_only) {
          say(`eval_only: evaluated the ${state ? `snapshot at iteration ${iter}` : 'initial model'} on ${t.eval_iters} batch${t.eval_iters === 1 ? '' : 'es'} per split; nothing was written`);
          break;
        }
        // The losses are averaged over the ranks, so all of them stop here together.
        if (!Number.isFinite(losses.train) || !Number.isFinite(losses.val)) {
          throw divergedError(`at step ${iter} the train loss is ${formatNumber(losses.train)} and the val loss ${formatNumber(losses.val)}`, divergence);
        }
        if (losses.val < bestValLoss) {
          checkWeightsFinite();
          bestValLoss = losses.val;
          bestIter = iter;
          // Step 0 counts: a short fine-tune whose validation never improves still ends with a usable model (the
          // starting weights), never with none.
          if (isMain) {
            await saveModel(modelPath, model, { iter, val_loss: losses.val, train_config: c });
            say(`saved best model (val loss ${losses.val.toFixed(4)}${iter === 0 ? ', the starting weights' : ''}) to ${modelPath}`);
          }
        }
        if (iter > 0 || t.max_iters === 0) await writeSnapshot();
      } else if (!skipEvalOnce && t.snapshot_interval > 0 && iter > 0 && iter % t.snapshot_interval === 0) {
        await writeSnapshot();
      }
      skipEvalOnce = false;
      if (dist && iter > 0 && (iter === t.max_iters || (c.distributed.check_interval > 0 && iter % c.distributed.check_interval === 0))) await checkConsistency();
      if (iter >= t.max_iters) break;
      if (dist ? stopAgreed : opts.signal?.aborted) {
        say(`interrupted at iteration ${iter}: writing a snapshot so the same command resumes here`);
        if (divergence.lastSnapshotIter !== iter) await writeSnapshot();
        interrupted = true;
        break;
      }

      // one optimizer step
      const t0 = performance.now();
      let lossSum = 0;
      for (let micro = 0; micro < accum; micro++) {
        const scaled = torch.scope(() => {
          const { x, y } = loader.next('train');
          const loss = withPrecision(() => model.forward(x, y).loss!);
          lossSum += loss.item();
          return loss.div(accum);
        });
        // The last micro-batch's backward completes the gradients: its finished buckets all-reduce while it runs.
        if (micro === accum - 1) sync?.arm();
        await scaled.backwardAsync();
        scaled.dispose();
      }
      const tc = performance.now();
      if (sync) await sync.averageGradients();
      const commMs = performance.now() - tc;
      const gradNorm = t.grad_clip > 0 ? torch.clipGradNorm(model.parameters(), t.grad_clip) : torch.gradNorm(model.parameters());
      const loss = lossSum / accum;
      // Checked before the update, which would spread a NaN into every weight. The gradient norm is the same on every
      // rank (the gradients were averaged); the loss is each rank's own, so the ranks agree on it — and, in the same
      // collective, on whether any of them was asked to stop (a signal reaches ranks at different steps, or only
      // one of them: a hung-up ssh session).
      const [lossBad, stopNow] = await agree([!Number.isFinite(loss), opts.signal?.aborted ?? false]);
      stopAgreed = stopNow!;
      if (lossBad || !Number.isFinite(gradNorm)) {
        const lossText = lossBad && Number.isFinite(loss) ? `${formatNumber(loss)} here but non-finite on another rank` : formatNumber(loss);
        throw divergedError(`at iteration ${iter + 1} (learning rate ${lr.toExponential(2)}) the loss is ${lossText} and the gradient norm ${formatNumber(gradNorm)}`, divergence);
      }
      opt.stepWith(lr);
      if (sync) sync.zeroGrad();
      else opt.zeroGrad();
      const ms = performance.now() - t0;
      trainLosses.push(loss);
      tokens += tokensPerStep;
      iter += 1;
      opts.onStep?.({ iter, loss, model });
      if (iter % t.log_interval === 0 || iter === t.max_iters) {
        const tokPerS = tokensPerStep / (ms / 1000);
        const mfu = t.peak_flops > 0 ? flopsPerStep / (ms / 1000) / (t.peak_flops * world) : null;
        say(
          `${progress.describe(iter)}: loss ${loss.toFixed(4)}, lr ${lr.toExponential(2)}, grad norm ${gradNorm.toFixed(3)}, ${ms.toFixed(0)} ms, ` +
            `${formatCount(Math.round(tokPerS))} tok/s${mfu !== null ? `, mfu ${(mfu * 100).toFixed(1)}%` : ''}${sync ? `, all-reduce wait ${commMs.toFixed(0)} ms` : ''}`,
        );
        metrics.write({ type: 'train', iter, loss, lr, grad_norm: gradNorm, ms, comm_ms: sync ? commMs : 0, tokens_per_s: tokPerS, mfu, tokens });
      }
      status.show(`${progress.describe(iter)} · loss ${loss.toFixed(4)} · ${formatCount(Math.round(tokensPerStep / (ms / 1000)))} tok/s`);
    }
  } finally {
    status.clear();
  }
  loader.close();
  sync?.dispose();
  const ms = Date.now() - started;
  if (!t.eval_only && !interrupted && bestIter === 0 && iter > 0) {
    say(`note: validation loss never improved on step 0's ${bestValLoss.toFixed(4)}: ${modelPath} holds the starting weights (lower the learning rate, or train longer)`);
  }
  if (!t.eval_only && !interrupted) {
    say(`Training completed! Total time taken: ${formatDuration(ms)} (${formatCount(tokens)} tokens, ${formatCount(Math.round(tokens / Math.max(1e-3, (Date.now() - loopStart) / 1000)))} tok/s overall)`);
  }
  metrics.write({ type: 'end', iter, best_val_loss: bestValLoss, tokens, ms, interrupted });
  opt.dispose();
  return { iter, bestValLoss, lastLosses, trainLosses, tokens, interrupted, ms, model };
}
