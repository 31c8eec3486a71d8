// What a failed rendezvous means for the user, and which job a store belongs to. Everything here is the user's
// network or configuration, never a bug: each failure says the address, the port, how long this rank actually
// waited, and what to check.
import { createHash } from 'node:crypto';
import * as net from 'node:net';

/** Rendezvous failed: a peer did not come, the address is unreachable, or (rank 0) the port is taken. */
export class RendezvousError extends Error {
  constructor(
    readonly problem: string,
    readonly advice: string,
    readonly addressInUse = false,
  ) {
    super(`${problem}\n  (${advice})`);
    this.name = 'RendezvousError';
  }
}

/** The unprefixed key where rank 0 publishes its job's identity (a hash: the secret itself never goes on the wire). */
export const JOB_KEY = 'nanogpt/job';

export interface JobIdentity {
  /** Shared by the ranks of one run and by no other run: the launcher's token, or the scheduler's job id. */
  secret: string;
  /** Where it came from, for messages ("NANOGPT_RUN_TOKEN", "SLURM_JOB_ID", "none"); never the secret itself. */
  source: string;
}

/** What rank 0 publishes: a hash that says "same job" without revealing the key prefix derived from the secret. */
export function publishedJobId(job: JobIdentity): string {
  return JSON.stringify({ id: createHash('sha256').update(`nanogpt-job\0${job.secret}`).digest('hex').slice(0, 32), source: job.source });
}

/** The prefix of every key of the run (Gloo's and nanogpt's): a client that lacks the secret cannot name them. */
export function keyPrefix(job: JobIdentity): string {
  return `nanogpt-run/${createHash('sha256').update(`nanogpt-prefix\0${job.secret}`).digest('hex').slice(0, 32)}`;
}

/** Compares rank 0's published identity with ours; a RendezvousError when they differ. */
export function checkSameJob(published: string, mine: JobIdentity, where: string, rank: number, worldSize: number): void {
  if (published === publishedJobId(mine)) return;
  let theirs = 'an unknown job';
  try {
    theirs = `a job identified by ${(JSON.parse(published) as { source?: string }).source ?? 'something else'}`;
  } catch {
    // not ours at all: the default wording stands
  }
  throw new RendezvousError(
    `rank ${rank}/${worldSize}: the rendezvous store at ${where} belongs to another job (${theirs}; this rank's job is identified by ${mine.source}): a second job on the same address and port must not join the first`,
    `give this job its own MASTER_PORT (nanogpt launch --master_port, distributed.main_process_port), or wait for the other job to end; ranks of one job must come from the same \`nanogpt launch\` (NANOGPT_RUN_TOKEN) or the same scheduler job`,
  );
}

/** How a connection attempt to host:port ends within `ms`: someone answers, nobody listens, or nothing comes back. */
export function probe(host: string, port: number, ms: number): Promise<'open' | 'refused' | 'silent' | 'unreachable'> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const done = (r: 'open' | 'refused' | 'silent' | 'unreachable'): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done('silent'), ms);
    sock.on('connect', () => done('open'));
    sock.on('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' ? 'refused' : e.code === 'ETIMEDOUT' ? 'silent' : 'unreachable'));
  });
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** A rank other than 0 could not reach rank 0's store: probe once more to say why. */
export async function storeUnreachable(host: string, port: number, rank: number, worldSize: number, waitedMs: number, cause: string): Promise<RendezvousError> {
  const at = `${host}:${port}`;
  const who = `rank ${rank}/${worldSize}`;
  const timeoutNote = 'distributed.timeout_s sets how long a rank waits for rank 0';
  switch (await probe(host, port, 2000)) {
    case 'refused':
      return new RendezvousError(
        `${who}: nothing accepts connections at ${at} (MASTER_ADDR:MASTER_PORT); waited ${seconds(waitedMs)} for rank 0's rendezvous store`,
        `is rank 0 running (it listens on MASTER_PORT there)? do all ranks have the same MASTER_ADDR and MASTER_PORT? ${timeoutNote}`,
      );
    case 'silent':
    case 'unreachable':
      return new RendezvousError(
        `${who}: ${at} (MASTER_ADDR:MASTER_PORT) did not answer; waited ${seconds(waitedMs)}`,
        `a firewall, security group or route between this machine and ${host} drops the traffic: allow TCP between the cluster's machines (rank 0's port ${port} and Gloo's ports), check \`ip route get ${host}\` and \`nc -zv ${host} ${port}\`; ${timeoutNote}`,
      );
    case 'open':
      return new RendezvousError(
        `${who}: ${at} accepts connections, but the rendezvous failed after ${seconds(waitedMs)}: ${cause}`,
        `is that rank 0 of this job (and the same nanogpt-ts version), not another program on port ${port}? ${timeoutNote}`,
      );
  }
}
