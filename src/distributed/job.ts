// Which job a rank belongs to, so that a rank of another job (or a stale one) that reaches the same rendezvous
// address is refused instead of joining. `nanogpt launch` hands its ranks a random token; without it, the
// scheduler's job id is the best there is (every rank of the job sees the same one, another job sees another).
import type { JobIdentity } from '../torch/distributed/index.js';

export const RUN_TOKEN_VAR = 'NANOGPT_RUN_TOKEN';

/** In order: the launcher's token, Slurm's job and step, Open MPI's (PMIx) job, torchrun's run id; else none. */
const SOURCES: readonly (readonly string[])[] = [
  [RUN_TOKEN_VAR],
  ['SLURM_JOB_ID', 'SLURM_STEP_ID'],
  ['PMIX_NAMESPACE'],
  ['OMPI_MCA_ess_base_jobid'],
  ['TORCHELASTIC_RUN_ID'],
];

export function jobIdentity(env: Readonly<Record<string, string | undefined>> = process.env): JobIdentity {
  for (const vars of SOURCES) {
    if (!env[vars[0]!]) continue;
    const present = vars.filter((v) => env[v]);
    return { secret: present.map((v) => `${v}=${env[v]}`).join('\n'), source: present.join('+') };
  }
  return { secret: '', source: 'none (no NANOGPT_RUN_TOKEN and no scheduler job id)' };
}
