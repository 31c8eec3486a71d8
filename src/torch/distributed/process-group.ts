// A process group over c10d's TCPStore (rendezvous) and Gloo (collectives). Collectives run on libuv worker
// threads, so awaiting one never freezes the event loop. They are issued strictly one after another (a promise
// chain), which keeps the order identical on every rank — Gloo requires that — even if callers do not await.
import { lookup } from 'node:dns/promises';
import { abandonNativeCall, native, type Handle } from '../native.js';
import { noGrad } from '../grad-mode.js';
import { Tensor, wrapList } from '../tensor.js';
import { cat } from '../functional.js';
import { scope } from '../scope.js';
import { findLocalAddress, isLoopbackAddress, isLoopbackLiteral, type ChosenAddress } from './address.js';
import { named } from '../../util/format.js';
import { checkSameJob, JOB_KEY, keyPrefix, publishedJobId, RendezvousError, storeUnreachable, type JobIdentity } from './rendezvous.js';

export { RendezvousError };

export interface ProcessGroupOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /**
   * The whole time a rank may wait for its peers before failing (default 60 s): rendezvous, and a failed collective
   * including the diagnosis of who is gone (see splitTimeout).
   */
  timeoutMs?: number;
  /** The address this rank's Gloo transport binds to and advertises; by default chosen by chooseAddress. */
  hostname?: string;
  /** An interface name to take the address from (distributed.iface); GLOO_SOCKET_IFNAME is read when unset. */
  iface?: string;
  /** Who this job is: ranks with another identity are refused, and every key lives under a prefix derived from it. */
  job?: JobIdentity;
}

export type ReduceOp = 'sum' | 'avg' | 'max' | 'min';

export class CollectiveError extends Error {
  constructor(message: string, readonly missingRanks: number[]) {
    super(message);
    this.name = 'CollectiveError';
  }
}

/**
 * How a rank's time budget for a failure splits: a collective waits `collectiveMs`, then the diagnosis of who is
 * gone takes at most `diagnosisMs` (a quarter of the budget, at most 30 s), so that a rank blocked on a hung or
 * unreachable peer has exited `totalMs` after it started waiting (the documented distributed.timeout_s).
 */
export function splitTimeout(totalMs: number): { collectiveMs: number; diagnosisMs: number } {
  const diagnosisMs = Math.min(Math.round(totalMs / 4), 30_000);
  return { collectiveMs: totalMs - diagnosisMs, diagnosisMs };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Beyond the store's own timeout, how long a connect may take before the rank gives up on it regardless. */
const STORE_DEADLINE_SLACK_MS = 3000;

/** How long closing a failed group's Gloo connections may take before the diagnosis goes on without waiting. */
const ABORT_MS = 1000;

/**
 * `work`, or a rejection with `timeoutError()` after `ms`. Work that settles after the deadline is handed to
 * `cleanup` (a native handle nobody will use). The native call itself cannot be cancelled; the CLI exits anyway.
 */
function withDeadline<T>(work: Promise<T>, ms: number, cleanup: (late: T) => void, timeoutError: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      abandonNativeCall(work);
      reject(timeoutError());
    }, ms);
    work.then(
      (v) => {
        clearTimeout(timer);
        if (expired) cleanup(v);
        else resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        if (!expired) reject(err);
      },
    );
  });
}

/**
 * Keeps rank 0's store where the ranks dial it, as far as the libtorch build allows, and says where it accepts
 * connections (for the rendezvous log line). From 2.4, storeConnect bound the socket to `bind` itself. 1.13 always
 * listens on every address; when the ranks dial loopback, the socket is confined to the loopback device afterwards
 * (other machines are then refused; a connection opened in the moment between the two is not undone).
 */
function restrictStore(bind: string, port: number): string {
  if (native.storeBindsListener) return bind ? `listens on ${bind} only` : 'listens on every address';
  if (bind && isLoopbackAddress(bind)) {
    try {
      const confined = native.confineListener!(port, 'lo') as number;
      if (confined > 0) return 'accepts loopback connections only';
      return 'listens on every address (its socket was not found, so it could not be confined to loopback)';
    } catch (err) {
      return `listens on every address (confining it to loopback failed: ${(err as Error).message})`;
    }
  }
  return 'listens on every address (libtorch 1.13 cannot bind it: keep MASTER_PORT closed to machines outside the cluster)';
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

export class ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  /** The whole budget (see splitTimeout). */
  readonly timeoutMs: number;
  /** The address Gloo binds to and advertises to the peers, and why it was chosen. */
  readonly address: ChosenAddress;
  /** Rank 0: where its rendezvous store accepts connections (see restrictStore); '' on the other ranks. */
  readonly storeListens: string;
  readonly #prefix: string;
  #handle: Handle | null;
  #queue: Promise<unknown> = Promise.resolve();
  #seq = 0;
  /** The diagnosis of the first failed collective: the group is aborted, later ones fail with it at once. */
  #broken: CollectiveError | undefined;

  private constructor(handle: Handle, rank: number, worldSize: number, timeoutMs: number, address: ChosenAddress, prefix: string, storeListens: string) {
    this.#handle = handle;
    this.storeListens = storeListens;
    this.rank = rank;
    this.worldSize = worldSize;
    this.timeoutMs = timeoutMs;
    this.address = address;
    this.#prefix = prefix;
  }

  /** The run's own key space on the store (see keyPrefix). */
  #key(k: string): string {
    return `${this.#prefix}/${k}`;
  }

  /**
   * Rendezvous with the other ranks: rank 0 hosts the TCPStore at masterAddr:masterPort and publishes its job's
   * identity there; the others check it before anything else, then all meet in Gloo under the job's key prefix.
   */
  static async init(opts: ProcessGroupOptions): Promise<ProcessGroup> {
    const { rank, worldSize, masterAddr, masterPort } = opts;
    if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`worldSize must be a positive integer, got ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new RangeError(`rank must be in [0, ${worldSize}), got ${rank}`);
    if (!Number.isInteger(masterPort) || masterPort < 1 || masterPort > 65535) throw new RangeError(`masterPort must be in 1..65535, got ${masterPort}`);
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const { collectiveMs } = splitTimeout(timeoutMs);
    const job = opts.job ?? { secret: '', source: 'none' };
    const who = `rank ${rank}/${worldSize}`;
    const at = `${masterAddr}:${masterPort}`;
    if (!isLoopbackLiteral(masterAddr)) {
      try {
        await lookup(masterAddr);
      } catch (err) {
        throw new RendezvousError(
          `${who}: MASTER_ADDR ${masterAddr} does not resolve on this machine (${errnoOf(err) ?? (err as Error).message})`,
          'check the spelling, and DNS or /etc/hosts on this machine, or use the IP address of the machine that runs rank 0',
        );
      }
    }
    const found = await findLocalAddress(masterAddr, opts.iface);
    const address: ChosenAddress = opts.hostname ? { address: opts.hostname, why: 'given' } : { address: found.address, why: found.why };

    const started = Date.now();
    let handle: Handle;
    try {
      // libtorch 2.x's client waits without end for the first answer of a peer that accepted the connection (a
      // stuck rank 0, another program on the port): the rendezvous gets a deadline of its own here.
      const connecting = native.storeConnect({ rank, worldSize, masterAddr, masterPort, timeoutMs: collectiveMs, bindAddr: found.storeBind }) as Promise<Handle>;
      handle = await withDeadline(connecting, collectiveMs + STORE_DEADLINE_SLACK_MS, (late) => void native.pgDestroy(late).catch(() => undefined), () =>
        new Error(`no answer within ${((collectiveMs + STORE_DEADLINE_SLACK_MS) / 1000).toFixed(1)} s from what accepted the connection`),
      );
    } catch (err) {
      const cause = (err as Error).message;
      if (rank === 0) {
        const inUse = /address already in use|errno: 98\b/i.test(cause);
        throw new RendezvousError(
          `${who}: rendezvous at ${at} failed: rank 0 could not listen on port ${masterPort}: ${cause}`,
          inUse ? `port ${masterPort} is taken on this machine` : 'check MASTER_PORT',
          inUse,
        );
      }
      throw await storeUnreachable(masterAddr, masterPort, rank, worldSize, Date.now() - started, cause);
    }
    const storeListens = rank === 0 ? restrictStore(found.storeBind, masterPort) : '';
    const prefix = keyPrefix(job);
    const fail = async (e: Error): Promise<never> => {
      await native.pgDestroy(handle);
      throw e;
    };
    try {
      if (rank === 0) await native.storeSet(handle, JOB_KEY, publishedJobId(job));
      else checkSameJob((await native.storeGet(handle, JOB_KEY)) as string, job, at, rank, worldSize);
    } catch (err) {
      if (err instanceof RendezvousError) return fail(err);
      return fail(
        new RendezvousError(
          `${who}: ${at} accepted the connection but published no nanogpt job within ${((Date.now() - started) / 1000).toFixed(1)} s (${(err as Error).message})`,
          `is another program (or an older nanogpt-ts) listening on port ${masterPort}? give this job its own MASTER_PORT`,
        ),
      );
    }
    try {
      // Gloo waits past its timeout for a peer whose connection never comes (the peer could not reach the address
      // this rank advertised): the rendezvous bound is kept here, one second over Gloo's own.
      const connectMs = collectiveMs + 1000;
      await withDeadline(native.pgConnect(handle, prefix, address.address) as Promise<void>, connectMs, () => undefined, () =>
        new Error(`connect timeout: the connections to the other ranks were not all made within ${(connectMs / 1000).toFixed(1)} s`),
      );
    } catch (err) {
      const cause = (err as Error).message;
      const waited = ((Date.now() - started) / 1000).toFixed(1);
      // Gloo's "Connect timeout [addr]" / "connect [addr]: refused" is a peer it cannot reach, not a peer that never came.
      const timedOut = /timeout|timed out/i.test(cause) && !/connect/i.test(cause);
      return fail(
        new RendezvousError(
          timedOut
            ? `${who}: not all ${worldSize} ranks of this job joined at ${at} within ${waited} s (Gloo said: ${cause})`
            : `${who}: could not connect to the other ranks after ${waited} s; this rank advertised ${address.address} (${address.why}); Gloo said: ${cause}`,
          timedOut
            ? `check that all ${worldSize} ranks started with the same WORLD_SIZE, MASTER_ADDR and MASTER_PORT, and (for ranks started by hand) the same NANOGPT_RUN_TOKEN or none`
            : 'every rank must reach every other rank on the address it advertises: set distributed.iface (or GLOO_SOCKET_IFNAME) to the interface of the cluster network, and allow TCP between the machines (firewall, security group)',
        ),
      );
    }
    return new ProcessGroup(handle, rank, worldSize, timeoutMs, address, prefix, storeListens);
  }

  get handle(): Handle {
    if (this.#handle === null) throw new Error('process group used after destroy()');
    return this.#handle;
  }

  /** Queues `op` after every earlier collective on this group; on failure, diagnoses which peers are gone. */
  #enqueue<T>(name: string, op: () => Promise<T>): Promise<T> {
    const seq = ++this.#seq;
    const run = async (): Promise<T> => {
      // Collectives queued behind a failed one (the overlapped gradient buckets) must not each wait out another
      // diagnosis window: the group is gone, and the first diagnosis already says who is missing.
      if (this.#broken) throw this.#broken;
      try {
        return await op();
      } catch (err) {
        this.#broken ??= await this.#diagnose(name, seq, err as Error);
        throw this.#broken;
      }
    };
    const result = this.#queue.then(run, run);
    this.#queue = result.catch(() => undefined);
    return result;
  }

  /**
   * After a failed collective: first drop our Gloo group, which closes our connections, so that peers blocked on
   * us fail now rather than at their own timeout. Then every surviving rank posts an "alive" key to the store and
   * looks for the others' for most of the diagnosis window (splitTimeout: a peer busy computing joins after its step),
   * stopping as soon as all have answered. The key does not name the failed collective: a rank can fail one collective later
   * than another (a ring all-reduce may complete on one rank after the dead peer's last send) and is still alive.
   * Ranks whose key never appears are reported as gone. Rank 0 hosts the store, so it keeps it up until every rank
   * it saw alive has finished its own diagnosis; if the store itself is unreachable, rank 0 is the one gone.
   */
  async #diagnose(name: string, seq: number, cause: Error): Promise<CollectiveError> {
    const { diagnosisMs } = splitTimeout(this.timeoutMs);
    try {
      await withDeadline(native.pgAbort(this.handle) as Promise<void>, ABORT_MS, () => undefined, () => new Error('abort took too long'));
    } catch {
      // already aborted or destroyed (nothing left to close), or closing hangs: the diagnosis goes on regardless
    }
    const seen = new Set<number>([this.rank]);
    const storeGone = (): number[] => (seen.has(0) ? this.#unseen(seen) : [0]);
    let missing: number[];
    try {
      // libtorch 2.x's store client waits without end for a store it can no longer reach (this rank's link was cut,
      // or rank 0's machine is gone): the whole diagnosis is bounded here, and a store that does not answer in time
      // counts as gone.
      missing = await withDeadline(this.#askWhoIsThere(seq, diagnosisMs, seen), diagnosisMs + 500, () => undefined, () => new Error('the store did not answer'));
    } catch {
      // The store went away under us (or stopped answering). If rank 0 had not answered yet, it is the one gone;
      // otherwise it answered and exited, and the ranks not seen by then are the best knowledge there is.
      missing = storeGone();
    }
    const who =
      missing.length > 0
        ? `${named('rank', missing)} did not respond (exited, crashed or hung)`
        : 'all ranks are still reachable';
    return new CollectiveError(`rank ${this.rank}: ${name} #${seq} failed: ${who}; Gloo said: ${cause.message}`, missing);
  }

  /**
   * Every rank marks itself alive on the store and looks for the others: three quarters of the window to hear
   * from them, the rest for rank 0 to keep the store up for them. Returns the ranks not seen; `seen` fills as it goes.
   */
  async #askWhoIsThere(seq: number, diagnosisMs: number, seen: Set<number>): Promise<number[]> {
    const end = Date.now() + diagnosisMs;
    const deadline = end - diagnosisMs / 4;
    await native.storeSet(this.handle, this.#key(`nanogpt/alive/${this.rank}`), String(seq));
    for (;;) {
      for (let r = 0; r < this.worldSize; r++) {
        if (!seen.has(r) && (await native.storeCheck(this.handle, [this.#key(`nanogpt/alive/${r}`)]))) seen.add(r);
      }
      if (seen.size === this.worldSize || Date.now() > deadline) break;
      await sleep(100);
    }
    const missing = this.#unseen(seen);
    await native.storeSet(this.handle, this.#key(`nanogpt/diagnosed/${this.rank}`), '1');
    if (this.rank === 0) {
      const keys = [...seen].map((r) => this.#key(`nanogpt/diagnosed/${r}`));
      while (Date.now() < end && !(await native.storeCheck(this.handle, keys))) await sleep(50);
    }
    return missing;
  }

  #unseen(seen: ReadonlySet<number>): number[] {
    return Array.from({ length: this.worldSize }, (_, r) => r).filter((r) => !seen.has(r));
  }

  /**
   * All-reduces the tensors in place. Several tensors travel through one flat buffer (one collective, not one
   * per tensor). 'avg' is a sum divided by the world size (Gloo has no average).
   */
  allreduce(tensors: Tensor | readonly Tensor[], op: ReduceOp = 'sum'): Promise<void> {
    const list = tensors instanceof Tensor ? [tensors] : [...tensors];
    const nativeOp = op === 'avg' ? 'sum' : op;
    return this.#enqueue(`allreduce(${op})`, async () => {
      if (list.length === 0) return;
      const direct = list.length === 1 && list[0]!.isContiguous;
      const flat = direct ? list[0]! : noGrad(() => scope(() => cat(list.map((t) => t.detach().reshape(-1)))));
      try {
        await native.pgAllreduce(this.handle, flat.handle, nativeOp);
        noGrad(() => {
          if (op === 'avg') flat.div_(this.worldSize);
          if (!direct) {
            let offset = 0;
            for (const t of list) {
              const n = t.numel;
              scope(() => t.copy_(flat.narrow(0, offset, n).view(t.shape)));
              offset += n;
            }
          }
        });
      } finally {
        if (!direct) flat.dispose();
      }
    });
  }

  /** Copies `tensor` from rank `root` to every rank, in place. */
  broadcast(tensor: Tensor, root = 0): Promise<void> {
    return this.#enqueue(`broadcast(root ${root})`, async () => {
      await native.pgBroadcast(this.handle, tensor.handle, root);
    });
  }

  /** One tensor per rank, in rank order (all ranks must pass the same shape and dtype). */
  allgather(tensor: Tensor): Promise<Tensor[]> {
    return this.#enqueue('allgather', async () => wrapList(await native.pgAllgather(this.handle, tensor.handle)));
  }

  barrier(): Promise<void> {
    return this.#enqueue('barrier', async () => {
      await native.pgBarrier(this.handle);
    });
  }

  /** Key-value access to the rendezvous store (small control messages between ranks). */
  storeSet(key: string, value: string): Promise<void> {
    return this.#store(`set of ${key}`, async () => {
      await native.storeSet(this.handle, this.#key(key), value);
    });
  }
  /** Waits (up to the collective timeout, see splitTimeout) for `key` to be set by some rank. */
  storeGet(key: string): Promise<string> {
    return this.#store(`get of ${key}`, async () => (await native.storeGet(this.handle, this.#key(key))) as string);
  }
  storeAdd(key: string, by: number): Promise<number> {
    return this.#store(`add to ${key}`, async () => (await native.storeAdd(this.handle, this.#key(key), by)) as number);
  }

  /**
   * A store operation that failed (rank 0, which hosts the store, is gone, or the rank that should have set a key
   * never did) becomes a CollectiveError naming the likely culprit, like a failed collective, instead of a bare
   * "Socket Timeout" from deep inside c10d.
   */
  async #store<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      const who =
        this.rank === 0
          ? 'the rank that should have written it exited, crashed or hung'
          : 'rank 0 (which hosts the store) or the rank that should have written it exited, crashed or hung';
      throw new CollectiveError(`rank ${this.rank}: store ${what} failed: ${who}; c10d said: ${(err as Error).message}`, this.rank === 0 ? [] : [0]);
    }
  }

  /** Waits for queued collectives, then releases Gloo and the store. Idempotent. */
  async destroy(): Promise<void> {
    if (this.#handle === null) return;
    await this.#queue;
    const h = this.#handle;
    this.#handle = null;
    await native.pgDestroy(h);
  }
}
