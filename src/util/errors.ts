/**
 * A problem with the user's input, configuration or environment. It carries what is wrong and how to fix it;
 * the CLI prints it without a stack trace and exits with code 2. Every other error is a bug (exit 1, stack shown).
 */
export class UserError extends Error {
  readonly problem: string;
  readonly fix: string | undefined;
  /** The CLI's exit code for it: 2, or a distinct one a launcher reads (PEER_LOST_EXIT). */
  readonly exitCode: number;

  constructor(problem: string, fix?: string, opts: { exitCode?: number } = {}) {
    super(fix ? `${problem}\n  fix: ${fix}` : problem);
    this.name = 'UserError';
    this.problem = problem;
    this.fix = fix;
    this.exitCode = opts.exitCode ?? 2;
  }
}

/**
 * Exit code of a rank that stops because another rank is gone (dead, hung or unreachable): not its own failure.
 * `nanogpt launch` reads it to name the rank that really failed rather than the first to exit.
 */
export const PEER_LOST_EXIT = 3;

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}
