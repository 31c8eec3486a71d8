// Finding a program the way a shell does, for the commands that start others (mpirun, ssh).
import { accessSync, constants } from 'node:fs';
import * as path from 'node:path';

/** The first executable `program` in PATH's directories, then in `extraDirs`; undefined when there is none. */
export function findOnPath(program: string, env: NodeJS.ProcessEnv = process.env, extraDirs: readonly string[] = []): string | undefined {
  for (const dir of [...(env.PATH ?? '').split(path.delimiter), ...extraDirs]) {
    if (!dir) continue;
    const p = path.join(dir, program);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* not here */
    }
  }
  return undefined;
}
