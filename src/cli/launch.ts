// `nanogpt launch`: start the ranks of a distributed run — N on this machine (like torchrun), or across the
// machines of a hosts file through mpirun (else ssh), as the original tutorial did by hand.
import { randomBytes } from 'node:crypto';
import type { Command } from './command.js';
import { flagBoolean, flagNumber, flagString, parseArgs } from './args.js';
import { UserError } from '../util/errors.js';
import { DEFAULT_MASTER_PORT } from '../distributed/env.js';
import { RUN_TOKEN_VAR } from '../distributed/job.js';
import { baseEnv, freePort, localSpecs, portProblem, resolveCommand, supervise, type ProcSpec } from '../distributed/launch.js';
import { formatCommand, isThisMachine, masterAddressFor, mpirunArgs, openMpiMajorVersion, readHostsFile, sshArgs } from '../distributed/hosts.js';
import { chooseThreads, findTcmalloc, physicalCores, threadEnv, tooManyThreads } from '../runtime/threads.js';
import { plural } from '../util/format.js';
import { findOnPath } from '../util/which.js';
import { tcmallocPreload, withPreload } from '../runtime/allocator.js';

const help = `nanogpt launch — start the ranks of a distributed run

Usage:
  nanogpt launch --nproc_per_node N [options] -- <command> [args...]
  nanogpt launch --hosts FILE [--nproc_per_node N] [options] -- <command> [args...]

<command> is a nanogpt subcommand (train --config x.yaml) or a node script (path/to/script.js args...).
Every rank gets RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT (mpirun ranks
get Open MPI's OMPI_COMM_WORLD_* instead, which nanogpt reads too). Output lines are prefixed with [rank k].
When a rank fails, the others are stopped and the launcher exits non-zero naming the rank.
Ctrl-C (SIGINT/SIGTERM/SIGHUP): the ranks finish the step, rank 0 writes a snapshot, exit 130 (through mpirun
the signal goes as SIGUSR2, through ssh as a Ctrl-C on the remote terminal); a third one kills everything.
Every host must be in ~/.ssh/known_hosts first (ssh runs in batch mode): ssh-keyscan HOST >> ~/.ssh/known_hosts.

Options:
  --nproc_per_node N  ranks per machine (default 1; with --hosts, default: each host's slots=N, else 1)
  --hosts FILE        one machine per line (localhost, node1, node2; optional slots=N; # comments);
                      runs through mpirun when installed, else ssh (passwordless, same install path on every host)
  --master_addr A     where rank 0 listens (default 127.0.0.1; with --hosts the first host's address)
  --master_port P     rendezvous port (default: a free port; ${DEFAULT_MASTER_PORT} when rank 0 is on another machine)
  --threads T         intra-op threads per rank (default: physical cores / ranks on this machine)
  --tcmalloc          require tcmalloc and preload it on every host (local ranks get it anyway when it is
                      installed; NANOGPT_ALLOCATOR=system turns that off)
  --timeout S         seconds the other ranks get to exit after one fails, before SIGKILL (default 10)
  --dry_run           print what would run, start nothing

Examples:
  nanogpt launch --nproc_per_node 2 -- train --config config.yaml
  nanogpt launch --hosts ~/hosts --threads 8 --tcmalloc -- train --config config.yaml
`;

/** NANOGPT_* settings of this shell, so remote ranks (which do not inherit our environment) see them too. */
function nanogptVars(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (k.startsWith('NANOGPT_') && v !== undefined) out[k] = v;
  return out;
}

const LAUNCH_FLAGS = { values: ['nproc_per_node', 'hosts', 'master_addr', 'master_port', 'threads', 'timeout'], booleans: ['tcmalloc', 'dry_run'] };

/**
 * launch's own options; a train flag among them (`--config`, `--trainer_config.max_iters=…`) means the `--` that
 * separates them from the rank's command is missing: the error shows the command line with it in place.
 */
function parseLaunchArgs(argv: string[]): ReturnType<typeof parseArgs> {
  try {
    return parseArgs(argv, LAUNCH_FLAGS, 'launch');
  } catch (err) {
    if (!(err instanceof UserError) || !/^unknown option/.test(err.problem) || argv.includes('--')) throw err;
    const own = new Set([...LAUNCH_FLAGS.values, ...LAUNCH_FLAGS.booleans].map((f) => `--${f}`));
    // The command starts at the first word that is neither one of launch's options nor the value of one.
    let at = 0;
    while (at < argv.length) {
      const raw = argv[at]!.split('=')[0]!;
      const name = raw.startsWith('--') ? `--${raw.slice(2).replace(/-/g, '_')}` : raw;
      if (!own.has(name)) break;
      at += argv[at]!.includes('=') || LAUNCH_FLAGS.booleans.includes(name.slice(2)) ? 1 : 2;
    }
    const fixed = [...argv.slice(0, at), '--', ...argv.slice(at)].join(' ');
    throw new UserError(`${err.problem}: it belongs to the command the ranks run, which must follow --`, `write: nanogpt launch ${fixed}`);
  }
}

async function run(argv: string[]): Promise<number> {
  const args = parseLaunchArgs(argv);
  if (args.positionals.length > 0) {
    throw new UserError(`unexpected argument '${args.positionals[0]}' before --`, `put the command each rank runs after --: nanogpt launch --nproc_per_node 2 -- ${args.positionals.join(' ')}`);
  }
  if (!argv.includes('--')) {
    throw new UserError('missing -- before the command to launch', 'write e.g. nanogpt launch --nproc_per_node 2 -- train --config config.yaml');
  }
  const command = resolveCommand(args.rest);
  const nprocGiven = flagString(args, 'nproc_per_node') !== undefined;
  const nproc = flagNumber(args, 'nproc_per_node', 1, { integer: true, min: 1 });
  const graceMs = flagNumber(args, 'timeout', 10, { min: 0 }) * 1000;
  const threadsFlag = flagString(args, 'threads') !== undefined ? flagNumber(args, 'threads', 1, { integer: true, min: 1 }) : undefined;
  const masterPortFlag = flagString(args, 'master_port') !== undefined ? flagNumber(args, 'master_port', 0, { integer: true, min: 1, max: 65535 }) : undefined;
  const masterAddrFlag = flagString(args, 'master_addr');
  const dryRun = flagBoolean(args, 'dry_run');
  const hostsFile = flagString(args, 'hosts');

  // A fresh secret per run: the ranks check it at rendezvous, so a stray rank of another run cannot join this one.
  const extraEnv: Record<string, string> = { [RUN_TOKEN_VAR]: randomBytes(16).toString('hex') };
  if (flagBoolean(args, 'tcmalloc')) extraEnv.LD_PRELOAD = withPreload(process.env.LD_PRELOAD, findTcmalloc());
  else if (hostsFile === undefined) {
    // Local ranks get tcmalloc whenever it is installed (src/runtime/allocator.ts says why); on other hosts each
    // rank's `nanogpt train` preloads its own.
    const preload = tcmallocPreload(process.env);
    if (preload !== null) extraEnv.LD_PRELOAD = preload;
  }
  const say = (line: string): void => void process.stderr.write(`nanogpt launch: ${line}\n`);
  let specs: ProcSpec[];

  if (hostsFile === undefined) {
    // ---- N ranks on this machine.
    // Checked here only for ranks on this machine: other hosts may have more CPUs, and check their own.
    const tooMany = threadsFlag === undefined ? null : tooManyThreads(threadsFlag);
    if (tooMany !== null) throw new UserError(`--threads: ${tooMany}`, 'use at most the number of cores divided by --nproc_per_node (or leave --threads out)');
    const threads = chooseThreads(threadsFlag, nproc);
    Object.assign(extraEnv, threadEnv(threads));
    const cores = physicalCores();
    if (nproc > cores) {
      say(
        `warning: ${plural(nproc, 'rank')} on ${plural(cores, 'physical core')}: they take turns on the cores, so each step is slower ` +
          `than with ${plural(cores, 'rank')} (the global batch grows with the ranks, not the speed); use --nproc_per_node ${cores} or fewer`,
      );
    }
    const masterAddr = masterAddrFlag ?? '127.0.0.1';
    const masterPort = masterPortFlag ?? (await freePort());
    specs = localSpecs({ nproc, command, masterAddr, masterPort, extraEnv });
    const summary = `${plural(nproc, 'rank')} on this machine, ${plural(threads, 'thread')} each, MASTER_ADDR=${masterAddr} MASTER_PORT=${masterPort}: ${formatCommand(command)}`;
    if (dryRun) {
      process.stdout.write(summary + '\n');
      return 0;
    }
    if (masterPortFlag !== undefined) await checkPortFree(masterPortFlag);
    say(summary);
  } else {
    // ---- Ranks across the machines of a hosts file.
    const hosts = readHostsFile(hostsFile);
    const perHost = hosts.map((h) => (nprocGiven ? nproc : h.slots));
    const total = perHost.reduce((a, b) => a + b, 0);
    const masterAddr = masterAddrFlag ?? (await masterAddressFor(hosts));
    const masterPort = masterPortFlag ?? (isThisMachine(hosts[0]!.host) ? await freePort() : DEFAULT_MASTER_PORT);
    if (masterPortFlag !== undefined && !dryRun && isThisMachine(hosts[0]!.host)) await checkPortFree(masterPortFlag);
    // Remote hosts may differ from this one: without --threads each rank picks its own default there.
    if (threadsFlag !== undefined) Object.assign(extraEnv, threadEnv(threadsFlag));
    const shared = { ...nanogptVars(process.env), ...extraEnv, MASTER_ADDR: masterAddr, MASTER_PORT: String(masterPort) };
    const cwd = process.cwd();
    const mpirun = findOnPath('mpirun');
    if (mpirun) {
      const openMpiMajor = openMpiMajorVersion(mpirun);
      const argvMpi = mpirunArgs({ hosts, perHost, command, env: shared, asRoot: process.getuid?.() === 0, cwd, openMpiMajor });
      const line = formatCommand(argvMpi);
      if (dryRun) {
        process.stdout.write(line + '\n');
        return 0;
      }
      say(`${total} ranks on ${plural(hosts.length, 'host')} through mpirun; running:\n  ${line}`);
      specs = [{ rank: null, argv: [mpirun, ...argvMpi.slice(1)], env: { ...baseEnv(), ...shared }, openMpiMajor }];
    } else {
      // No Open MPI: one ssh per remote rank (torchrun-style variables), ranks on this machine started directly.
      if (hosts.some((h) => !isThisMachine(h.host)) && !findOnPath('ssh')) {
        throw new UserError('--hosts needs mpirun or ssh to start ranks on other machines, and neither is on PATH', 'install Open MPI (sudo apt-get install openmpi-bin) or an ssh client');
      }
      specs = [];
      let rank = 0;
      hosts.forEach((h, i) => {
        const n = perHost[i]!;
        for (let local = 0; local < n; local++, rank++) {
          const vars = { ...shared, RANK: String(rank), WORLD_SIZE: String(total), LOCAL_RANK: String(local), LOCAL_WORLD_SIZE: String(n) };
          if (isThisMachine(h.host)) specs.push({ rank, argv: command, env: { ...baseEnv(), ...vars } });
          else specs.push({ rank, argv: sshArgs(h.host, cwd, vars, command), env: baseEnv(), interruptViaStdin: true });
        }
      });
      const lines = specs.map((s) => `[rank ${s.rank}] ${s.argv[0] === 'ssh' ? '' : Object.entries(s.env).filter(([k]) => k in shared || /^(LOCAL_)?(RANK|WORLD_SIZE)$/.test(k)).map(([k, v]) => `${k}=${v} `).join('')}${formatCommand(s.argv)}`);
      if (dryRun) {
        process.stdout.write(lines.join('\n') + '\n');
        return 0;
      }
      say(`mpirun not found; ${total} ranks on ${plural(hosts.length, 'host')} through ssh; running:\n  ${lines.join('\n  ')}`);
    }
  }

  const outcome = await supervise(specs, { graceMs });
  return outcome.exitCode;
}

/** Rank 0 on this machine would fail its rendezvous on a taken port only after starting every rank: say it now. */
async function checkPortFree(port: number): Promise<void> {
  const problem = await portProblem(port);
  if (problem === 'EADDRINUSE') {
    throw new UserError(
      `--master_port ${port} is in use on this machine (another run?)`,
      `leave --master_port out to get a free port, choose another, or stop the process that holds it (ss -ltnp | grep :${port})`,
    );
  }
}

export const launchCommand: Command = {
  name: 'launch',
  summary: 'start a distributed run: N ranks here, or across a hosts file via mpirun/ssh',
  help,
  run,
};
