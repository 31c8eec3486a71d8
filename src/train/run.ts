// Process-level wiring of a training run: rank discovery, the process group, signals, then the trainer.
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { TrainConfig } from './config-schema.js';
import { resolveRunPath } from './config.js';
import { train, type DistContext, type TrainResult } from './trainer.js';
import { CollectiveError, ProcessGroup, RendezvousError } from '../torch/distributed/index.js';
import { PEER_LOST_EXIT, UserError } from '../util/errors.js';
import { discoverRank } from '../distributed/env.js';
import { jobIdentity } from '../distributed/job.js';
import { checkRanksAgree, sharedSettings } from './agreement.js';
import { codeVersion } from './code-version.js';
import { chooseThreads, exportThreadEnv } from '../runtime/threads.js';
import { BASELINES_FILE, METRICS_FILE, REPORT_HTML, REPORT_PNG, writeReport } from '../report/write-report.js';
import { pathExists } from './checkpoint.js';
import { DirLock } from '../io/dir-lock.js';
import { removeStaleTemps } from '../io/atomic.js';
import { localDataDir, probeRemoteOutputs } from './remote-paths.js';
import { TENSORBOARD_DIR } from './metrics.js';
import { plural } from '../util/format.js';

export interface RunOptions {
  /** Start over: move the previous run's snapshot, best model, metrics and report aside instead of resuming. */
  fresh?: boolean;
}

export async function runTraining(config: TrainConfig, opts: RunOptions = {}): Promise<TrainResult> {
  if (opts.fresh && config.init_from === 'resume') {
    throw new UserError('--fresh starts over and init_from=resume continues: they contradict each other', 'drop one of them');
  }
  const info = discoverRank(process.env, {
    mainProcessIp: config.distributed.main_process_ip ?? undefined,
    mainProcessPort: config.distributed.main_process_port || undefined,
  });
  // Before libtorch loads (ProcessGroup.init is its first use here): its OpenMP runtime reads these once.
  exportThreadEnv(chooseThreads(config.threads, info.localWorldSize));
  const prefix = info.worldSize > 1 ? `[rank ${info.rank}] ` : '';
  const log = (line: string): void => void process.stderr.write(prefix + line + '\n');
  // Only global rank 0 writes out_dir (even when it is on a shared file system), so only it takes the lock.
  const started = Date.now();
  const lock = info.rank === 0 ? DirLock.acquire(config.out_dir, 'nanogpt train', log) : undefined;
  try {
    if (lock) await removeLeftoverTemps(config, started, log);
    if (lock && opts.fresh) await moveRunAside(config, log);
    // Before any work: a bucket that cannot take the checkpoints fails now, not at the first eval hours later.
    if (info.rank === 0) await probeRemoteOutputs(config, log);
    const dataDir = await localDataDir(config.data_dir, log);
    return await runRanks(dataDir === config.data_dir ? config : { ...config, data_dir: dataDir }, info, log);
  } finally {
    lock?.release();
  }
}

async function runRanks(config: TrainConfig, info: ReturnType<typeof discoverRank>, log: (line: string) => void): Promise<TrainResult> {
  let dist: DistContext | undefined;
  if (info.worldSize > 1) {
    let pg: ProcessGroup;
    try {
      pg = await ProcessGroup.init({
        rank: info.rank,
        worldSize: info.worldSize,
        masterAddr: info.masterAddr,
        masterPort: info.masterPort,
        timeoutMs: config.distributed.timeout_s * 1000,
        iface: config.distributed.iface ?? undefined,
        job: jobIdentity(),
      });
    } catch (err) {
      if (!(err instanceof RendezvousError)) throw err;
      throw new UserError(
        err.problem,
        err.addressInUse
          ? `port ${info.masterPort} is taken on this machine (another run?): choose a free one (MASTER_PORT, nanogpt launch --master_port, distributed.main_process_port) or stop the process that holds it (ss -ltnp | grep :${info.masterPort})`
          : err.advice,
      );
    }
    try {
      const addresses = await checkRanksAgree(pg, sharedSettings(config, codeVersion()));
      if (info.rank === 0) {
        log(`rendezvous at ${info.masterAddr}:${info.masterPort}: ${info.worldSize} ranks agree on the settings; Gloo addresses ${addresses.map((a, r) => `${r}=${a}`).join(' ')} (rank 0: ${pg.address.why}); the rendezvous store ${pg.storeListens}`);
      }
    } catch (err) {
      await pg.destroy();
      if (err instanceof CollectiveError) throw new UserError(err.message, 'look at the log of the rank named above');
      throw err;
    }
    dist = { pg, rank: info.rank, worldSize: info.worldSize, localWorldSize: info.localWorldSize, localRank: info.localRank };
  }
  // First Ctrl-C / SIGTERM: finish the step, snapshot, exit; a second one exits at once. Any rank's signal stops
  // all of them at the same step (the trainer's per-step agreement), and rank 0 writes the snapshot. SIGUSR2 too:
  // it is what `nanogpt launch` sends through mpirun, which kills ranks on SIGTERM. SIGHUP: a rank started
  // through `ssh -tt` gets it when its connection ends (the launcher's ssh was stopped, or the terminal closed).
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      // Quitting mid-step leaves the snapshot on disk as the last one written: say which, so the user knows what
      // the same command will resume from.
      if (info.rank === 0) log(`${sig} again: quitting now without a new snapshot; ${lastSnapshotNote(config)}`);
      process.exit(128 + (os.constants.signals[sig] ?? 15));
    }
    if (sig === 'SIGHUP') ignoreClosedOutput();
    log(`${sig}: stopping after this step (again to quit now)`);
    controller.abort();
  };
  const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGUSR2', 'SIGHUP'] as const;
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  try {
    const result = await train({ config, dist, log, signal: controller.signal });
    result.model.dispose();
    if (info.rank === 0 && !config.trainer_config.eval_only) await writeRunReport(config.out_dir, log);
    return result;
  } catch (err) {
    if (err instanceof CollectiveError) {
      // A peer died or hung: not a bug here. Say who, and that rerunning the command resumes.
      // A distinct exit code, so `nanogpt launch` names the rank that really failed rather than this one.
      throw new UserError(err.message, 'look at the log of the rank named above; rerun the same command to resume from the last snapshot', { exitCode: PEER_LOST_EXIT });
    }
    throw err;
  } finally {
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
    await dist?.pg.destroy();
  }
}

/**
 * After a hang-up the terminal our output went to is gone, and a write to it fails (EIO, EPIPE): an unhandled
 * stream error would kill the rank before it reaches the agreed stop step and the snapshot. Its lines are lost.
 */
function ignoreClosedOutput(): void {
  for (const stream of [process.stdout, process.stderr]) if (stream.listenerCount('error') === 0) stream.on('error', () => {});
}

/** Where the run would resume from now: the snapshot file and when it was written, or that there is none. */
export function lastSnapshotNote(config: TrainConfig, now = Date.now()): string {
  const file = resolveRunPath(config.out_dir, config.trainer_config.snapshot_path);
  if (file.startsWith('s3://')) return `the same command resumes from the last snapshot in ${file}, if one was written`;
  try {
    const minutes = Math.max(0, Math.round((now - statSync(file).mtimeMs) / 60_000));
    return `the same command resumes from the last snapshot, ${file} (written ${minutes === 0 ? 'less than a minute' : plural(minutes, 'minute')} ago)`;
  } catch {
    return `no snapshot was written yet (${file}): the same command starts over`;
  }
}

/**
 * A run killed mid-write (SIGKILL, out of memory, power) leaves the temp file of the checkpoint, snapshot or
 * report it was writing — a full-size snapshot at 124M parameters is 1.5 GB. With out_dir's lock held, no other
 * run writes these names there, so the ones older than this run are garbage; in other directories (an absolute
 * model_path) only those whose writer no longer runs are (see removeStaleTemps).
 */
async function removeLeftoverTemps(config: TrainConfig, started: number, log: (line: string) => void): Promise<void> {
  const t = config.trainer_config;
  const outputs = [resolveRunPath(config.out_dir, t.model_path), resolveRunPath(config.out_dir, t.snapshot_path), path.join(config.out_dir, 'report.html'), path.join(config.out_dir, 'loss.png')];
  const byDir = new Map<string, string[]>();
  for (const p of outputs) {
    if (p.startsWith('s3://')) continue; // written through os.tmpdir(), not beside the target
    const dir = path.resolve(path.dirname(p));
    byDir.set(dir, [...(byDir.get(dir) ?? []), path.basename(p)]);
  }
  for (const [dir, names] of byDir) {
    const removed = await removeStaleTemps(dir, names, { olderThanMs: started, locked: dir === path.resolve(config.out_dir) });
    for (const f of removed) log(`removed ${f}, left by an interrupted run`);
  }
}

/** The report is a convenience: a failure to draw it is logged and never fails a finished training run. */
async function writeRunReport(outDir: string, log: (line: string) => void): Promise<void> {
  try {
    const written = await writeReport(outDir);
    log(`report: ${written.html}, ${written.png}`);
  } catch (err) {
    log(`report not written (${(err as Error).message}); run \`nanogpt report ${outDir}\` to retry`);
  }
}

/**
 * --fresh: the previous run's files go to <out_dir>/previous-<time>/, so starting over never deletes anything
 * silently (and never resumes by surprise). Only rank 0 runs this, holding the out_dir lock.
 */
async function moveRunAside(config: TrainConfig, log: (line: string) => void): Promise<void> {
  const t = config.trainer_config;
  const files = [resolveRunPath(config.out_dir, t.snapshot_path), resolveRunPath(config.out_dir, t.model_path)];
  for (const remote of files.filter((f) => f.startsWith('s3://'))) {
    if (await pathExists(remote)) {
      throw new UserError(`--fresh cannot move ${remote} aside (it is in object storage)`, `delete or rename it yourself (aws s3 mv ${remote} ${remote}.old), or set another trainer_config path`);
    }
  }
  const local = [...files.filter((f) => !f.startsWith('s3://')), ...[METRICS_FILE, REPORT_HTML, REPORT_PNG, TENSORBOARD_DIR, BASELINES_FILE].map((f) => path.join(config.out_dir, f))];
  const present = local.filter((f) => existsSync(f));
  if (present.length === 0) {
    log('--fresh: no previous run here; starting a new one');
    return;
  }
  const aside = path.join(config.out_dir, `previous-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(aside, { recursive: true });
  for (const f of present) renameSync(f, path.join(aside, path.basename(f)));
  log(`--fresh: moved the previous run's ${present.map((f) => path.basename(f)).join(', ')} to ${aside}`);
}
