// One rank started by `nanogpt launch` (or mpirun) in the launcher tests; SCENARIO picks what it does.
import { spawn } from 'node:child_process';
import { discoverRank } from '../../src/distributed/env.js';

const scenario = process.env.SCENARIO ?? 'allreduce';
const info = discoverRank();
const say = (line: string): void => void process.stdout.write(line + '\n');

async function forever(): Promise<never> {
  setInterval(() => undefined, 1 << 30);
  return new Promise<never>(() => undefined);
}

if (scenario === 'allreduce') {
  // Loaded only here: the other scenarios must start fast and need no libtorch.
  const torch = await import('../../src/torch/index.js');
  const { ProcessGroup } = await import('../../src/torch/distributed/index.js');
  const pg = await ProcessGroup.init({ rank: info.rank, worldSize: info.worldSize, masterAddr: info.masterAddr, masterPort: info.masterPort, timeoutMs: 30_000 });
  const t = torch.tensor([info.rank]);
  await pg.allreduce(t, 'sum');
  say(`RESULT ${JSON.stringify({ ...info, sum: t.item(), threads: process.env.NANOGPT_THREADS ?? null })}`);
  await pg.destroy();
} else if (scenario === 'fail') {
  say(`pid=${process.pid}`);
  if (info.rank === Number(process.env.FAIL_RANK ?? 1)) {
    await new Promise((r) => setTimeout(r, 500));
    process.stderr.write('failing on purpose\n');
    process.exit(7);
  }
  if (process.env.IGNORE_TERM) process.on('SIGTERM', () => say('ignoring SIGTERM'));
  await forever();
} else if (scenario === 'peer-lost') {
  // A rank whose collective found GONE_RANK missing, as the trainer words it (exit PEER_LOST_EXIT); the others,
  // GONE_RANK included, keep running until the launcher's teardown ends them.
  say(`pid=${process.pid}`);
  if (info.rank === 0) {
    await new Promise((r) => setTimeout(r, 300));
    process.stderr.write(`error: rank 0: allreduce(avg) #37 failed: rank ${process.env.GONE_RANK} did not respond (exited, crashed or hung)\n`);
    process.exit(3);
  }
  await forever();
} else if (scenario === 'signal') {
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGUSR2'] as const) {
    process.on(sig, () => {
      say(`got ${sig}`);
      process.exit(0);
    });
  }
  say(`pid=${process.pid} ready`);
  await forever();
} else if (scenario === 'lines') {
  // A line split across writes, a multi-byte character split across chunks, a last line without newline.
  process.stdout.write('hel');
  await new Promise((r) => setTimeout(r, 50));
  process.stdout.write(Buffer.from('lo wörld\nsecond', 'utf8'));
  process.stderr.write(`[rank ${info.rank}] already prefixed\n`);
  process.stdout.write(`\nlast-${info.rank}`);
} else if (scenario === 'env') {
  say(`ENV ${JSON.stringify({ ...info, threads: process.env.NANOGPT_THREADS ?? null, preload: process.env.LD_PRELOAD ?? null })}`);
} else if (scenario === 'orphan' || scenario === 'escape') {
  // A grandchild in its own session (as mpirun's `ssh … orted` is), out of reach of a process-group signal.
  // orphan: it holds this rank's stdout and stderr, and the rank exits at once, leaving it behind.
  // escape: it holds nothing; the rank ignores SIGINT/SIGTERM and waits, so only a kill of everything ends both.
  const grandchild = spawn('sleep', ['60'], { detached: true, stdio: scenario === 'orphan' ? ['ignore', 'inherit', 'inherit'] : 'ignore' });
  say(`pid=${process.pid} grandchild=${grandchild.pid} ready`);
  if (scenario === 'orphan') process.exit(0);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => say(`ignoring ${sig}`));
  await forever();
}
