import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isUserError } from '../util/errors.js';
import { environmentError } from '../util/system-errors.js';
import type { Command } from './command.js';
import { exitNow, nativeCallsAbandoned } from '../torch/native.js';

/**
 * Subcommands are loaded lazily, so `nanogpt prepare` never loads the native libtorch addon and `--help` is
 * instant. Register a new command with one line here.
 */
const commands: Record<string, () => Promise<Command>> = {
  // In the order a user meets them: try it, get data, train, then use the model.
  demo: async () => (await import('./demo.js')).demoCommand,
  prepare: async () => (await import('./prepare.js')).prepareCommand,
  download: async () => (await import('./download.js')).downloadCommand,
  train: async () => (await import('./train.js')).trainCommand,
  launch: async () => (await import('./launch.js')).launchCommand,
  sample: async () => (await import('./sample.js')).sampleCommand,
  serve: async () => (await import('./serve.js')).serveCommand,
  export: async () => (await import('./export.js')).exportCommand,
  report: async () => (await import('./report.js')).reportCommand,
};

function version(): string {
  const pkgPath = fileURLToPath(new URL('../../../package.json', import.meta.url));
  return (JSON.parse(readFileSync(pkgPath, 'utf8')) as { version: string }).version;
}

async function usage(): Promise<string> {
  const lines = ['nanogpt — GPT-2 training for TypeScript and Node.js, on libtorch', '', 'Usage: nanogpt <command> [options]', '', 'Commands:'];
  for (const [name, load] of Object.entries(commands)) {
    const cmd = await load();
    lines.push(`  ${name.padEnd(10)} ${cmd.summary}`);
  }
  lines.push('', 'Run `nanogpt <command> --help` for options and examples.', 'Options: --help, --version');
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write((await usage()) + '\n');
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`nanogpt-ts ${version()}\n`);
    return 0;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`error: unknown command '${name}'\n  fix: one of ${Object.keys(commands).join(', ')}; see nanogpt --help\n`);
    return 2;
  }
  const cmd = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    const end = rest.indexOf('--');
    const helpAt = Math.max(rest.indexOf('--help'), rest.indexOf('-h'));
    if (end < 0 || helpAt < end) {
      process.stdout.write(cmd.help.trimEnd() + '\n');
      return 0;
    }
  }
  return cmd.run(rest);
}

/**
 * Entry point used by bin/nanogpt: maps UserError, and system errors the environment caused (a full disk, a
 * read-only mount, a port in use: see environmentError), to exit 2 without a stack, anything else to exit 1.
 */
export async function runCli(argv: string[]): Promise<void> {
  try {
    process.exitCode = await main(argv);
  } catch (err) {
    const userError = isUserError(err) ? err : environmentError(err);
    if (userError) {
      process.stderr.write(`error: ${userError.message}\n`);
      process.exitCode = userError.exitCode;
    } else {
      process.stderr.write(`internal error (a bug in nanogpt-ts; please report it):\n${(err as Error)?.stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
    // A native call that never returns (a libtorch rendezvous stuck on a silent peer) would keep the process alive
    // after the error was reported, and process.exit() itself waits for it (it joins libuv's worker threads): the
    // process ends at most 2 s after the message, with its exit code, or after 0.1 s when a deadline already gave
    // up on such a call (it will not return). (Unreferenced: a process with nothing left to do exits at once.)
    const graceMs = nativeCallsAbandoned() > 0 ? 100 : 2000;
    setTimeout(() => exitNow(typeof process.exitCode === 'number' ? process.exitCode : 1), graceMs).unref();
  }
}
