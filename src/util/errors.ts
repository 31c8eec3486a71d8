/**
 * A problem with the user's input, configuration or environment. It carries what is wrong and how to fix it;
 * the CLI prints it without a stack trace and exits with code 2. Every other error is a bug (exit 1, stack shown).
 */
export class UserError extends Error {
  readonly problem: string;
  readonly fix: string | undefined;

  constructor(problem: string, fix?: string) {
    super(fix ? `${problem}\n  fix: ${fix}` : problem);
    this.name = 'UserError';
    this.problem = problem;
    this.fix = fix;
  }
}

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}
