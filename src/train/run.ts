// Process-level wiring of a training run: rank discovery, the process group, signals, then the trainer.
import type { TrainConfig } from './config-schema.js';
import { train, type DistContext, type TrainResult } from './trainer.js';
import { CollectiveError, ProcessGroup } from '../torch/distributed/index.js';
import { UserError } from '../util/errors.js';
import { discoverRank } from '../distributed/env.js';
import { writeReport } from '../report/write-report.js';

export async function runTraining(config: TrainConfig): Promise<TrainResult> {
  const info = discoverRank(process.env, {
    mainProcessIp: config.distributed.main_process_ip ?? undefined,
    mainProcessPort: config.distributed.main_process_port || undefined,
  });
  const prefix = info.worldSize > 1 ? `[rank ${info.rank}] ` : '';
  const log = (line: string): void => void process.stderr.write(prefix + line + '\n');
  let dist: DistContext | undefined;
  if (info.worldSize > 1) {
    const pg = await ProcessGroup.init({
      rank: info.rank,
      worldSize: info.worldSize,
      masterAddr: info.masterAddr,
      masterPort: info.masterPort,
      timeoutMs: config.distributed.timeout_s * 1000,
    });
    dist = { pg, rank: info.rank, worldSize: info.worldSize, localWorldSize: info.localWorldSize };
  }
  // First Ctrl-C / SIGTERM: finish the step, snapshot, exit; a second one exits at once. SIGUSR2 too: it is what
  // `nanogpt launch` sends through Open MPI 5's mpirun, which kills ranks outright on SIGTERM.
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) process.exit(sig === 'SIGINT' ? 130 : 143);
    log(`${sig}: stopping after this step (again to quit now)`);
    controller.abort();
  };
  const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGUSR2'] as const;
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  try {
    const result = await train({ config, dist, log, signal: controller.signal });
    result.model.dispose();
    if (info.rank === 0) await writeRunReport(config.out_dir, log);
    return result;
  } catch (err) {
    if (err instanceof CollectiveError) {
      // A peer died or hung: not a bug here. Say who, and that rerunning the command resumes.
      throw new UserError(err.message, 'look at the log of the rank named above; rerun the same command to resume from the last snapshot');
    }
    throw err;
  } finally {
    for (const s of STOP_SIGNALS) process.off(s, onSignal);
    await dist?.pg.destroy();
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
