// Named pipes for the fuzz cases (Node has no mkfifo; coreutils' does the job).
import { execFileSync } from 'node:child_process';

export function mkfifoSync(file: string): void {
  execFileSync('mkfifo', [file]);
}
