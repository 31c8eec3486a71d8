/** One `nanogpt` subcommand. Each lives in its own module under src/cli/ and is registered in main.ts. */
export interface Command {
  name: string;
  /** One line for `nanogpt --help`. */
  summary: string;
  /** Full help text, with examples, for `nanogpt <name> --help`. */
  help: string;
  /** Runs the command; resolves to the process exit code. Throw UserError for bad input. */
  run(argv: string[]): Promise<number>;
}
