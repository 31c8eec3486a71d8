// A process group over c10d's TCPStore (rendezvous) and Gloo (collectives). Collectives run on libuv worker
// threads, so awaiting one never freezes the event loop. They are issued strictly one after another (a promise
// chain), which keeps the order identical on every rank — Gloo requires that — even if callers do not await.
import * as dgram from 'node:dgram';
import { native, type Handle } from '../native.js';
import { noGrad } from '../grad-mode.js';
import { Tensor, wrapList } from '../tensor.js';
import { cat } from '../functional.js';
import { scope } from '../scope.js';

export interface ProcessGroupOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** How long rendezvous and each collective may wait for peers before failing (default 60 s). */
  timeoutMs?: number;
  /** The address this rank's Gloo transport binds to; found automatically (the interface that routes to masterAddr). */
  hostname?: string;
}

export type ReduceOp = 'sum' | 'avg' | 'max' | 'min';

export class CollectiveError extends Error {
  constructor(message: string, readonly missingRanks: number[]) {
    super(message);
    this.name = 'CollectiveError';
  }
}

/** Rendezvous failed: a peer did not come, the address is unreachable, or (rank 0) the port is taken. */
export class RendezvousError extends Error {
  constructor(
    message: string,
    readonly advice: string,
    readonly addressInUse: boolean,
  ) {
    super(`${message}\n  (${advice})`);
    this.name = 'RendezvousError';
  }
}

function isLoopback(addr: string): boolean {
  return addr === 'localhost' || addr.startsWith('127.') || addr === '::1';
}

/** The local address whose route reaches `masterAddr` (UDP connect sends nothing; it only picks a route). */
export async function localAddressToward(masterAddr: string): Promise<string> {
  if (isLoopback(masterAddr)) return '127.0.0.1';
  return new Promise((resolve) => {
    const sock = dgram.createSocket(masterAddr.includes(':') ? 'udp6' : 'udp4');
    sock.on('error', () => {
      sock.close();
      resolve('');
    });
    sock.connect(9, masterAddr, () => {
      const { address } = sock.address();
      sock.close();
      resolve(address);
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly timeoutMs: number;
  #handle: Handle | null;
  #queue: Promise<unknown> = Promise.resolve();
  #seq = 0;
  /** The diagnosis of the first failed collective: the group is aborted, later ones fail with it at once. */
  #broken: CollectiveError | undefined;

  private constructor(handle: Handle, rank: number, worldSize: number, timeoutMs: number) {
    this.#handle = handle;
    this.rank = rank;
    this.worldSize = worldSize;
    this.timeoutMs = timeoutMs;
  }

  /** Rendezvous with the other ranks: rank 0 hosts the TCPStore at masterAddr:masterPort. */
  static async init(opts: ProcessGroupOptions): Promise<ProcessGroup> {
    const { rank, worldSize, masterAddr, masterPort } = opts;
    if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`worldSize must be a positive integer, got ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new RangeError(`rank must be in [0, ${worldSize}), got ${rank}`);
    if (!Number.isInteger(masterPort) || masterPort < 1 || masterPort > 65535) throw new RangeError(`masterPort must be in 1..65535, got ${masterPort}`);
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const hostname = opts.hostname ?? (await localAddressToward(masterAddr));
    let handle: Handle;
    try {
      handle = (await native.pgCreate({ rank, worldSize, masterAddr, masterPort, timeoutMs, hostname })) as Handle;
    } catch (err) {
      const cause = (err as Error).message;
      throw new RendezvousError(
        `rank ${rank}/${worldSize}: rendezvous at ${masterAddr}:${masterPort} failed within ${timeoutMs} ms: ${cause}`,
        `check that all ${worldSize} ranks started, that they agree on MASTER_ADDR/MASTER_PORT, and that the port is reachable`,
        rank === 0 && /address already in use|errno: 98\b/i.test(cause),
      );
    }
    return new ProcessGroup(handle, rank, worldSize, timeoutMs);
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
   * looks for the others' for up to the group's timeout, at most 30 s (a peer busy computing joins after its step),
   * stopping as soon as all have answered. The key does not name the failed collective: a rank can fail one collective later
   * than another (a ring all-reduce may complete on one rank after the dead peer's last send) and is still alive.
   * Ranks whose key never appears are reported as gone. Rank 0 hosts the store, so it keeps it up until every rank
   * it saw alive has finished its own diagnosis; if the store itself is unreachable, rank 0 is the one gone.
   */
  async #diagnose(name: string, seq: number, cause: Error): Promise<CollectiveError> {
    try {
      await native.pgAbort(this.handle);
    } catch {
      // already aborted or destroyed: nothing left to close
    }
    const seen = new Set<number>([this.rank]);
    let missing: number[];
    try {
      await native.storeSet(this.handle, `nanogpt/alive/${this.rank}`, String(seq));
      const deadline = Date.now() + Math.min(this.timeoutMs, 30_000);
      for (;;) {
        for (let r = 0; r < this.worldSize; r++) {
          if (!seen.has(r) && (await native.storeCheck(this.handle, [`nanogpt/alive/${r}`]))) seen.add(r);
        }
        if (seen.size === this.worldSize || Date.now() > deadline) break;
        await sleep(100);
      }
      missing = this.#unseen(seen);
      await native.storeSet(this.handle, `nanogpt/diagnosed/${this.rank}`, '1');
      if (this.rank === 0) {
        const keys = [...seen].map((r) => `nanogpt/diagnosed/${r}`);
        const until = Date.now() + Math.min(10_000, this.timeoutMs);
        while (Date.now() < until && !(await native.storeCheck(this.handle, keys))) await sleep(50);
      }
    } catch {
      // The store went away under us. If rank 0 had not answered yet, it is the one gone; otherwise it answered and
      // exited, and the ranks not seen by then are the best knowledge there is.
      missing = seen.has(0) ? this.#unseen(seen) : [0];
    }
    const who =
      missing.length > 0
        ? `rank${missing.length > 1 ? 's' : ''} ${missing.join(', ')} did not respond (exited, crashed or hung)`
        : 'all ranks are still reachable';
    return new CollectiveError(`rank ${this.rank}: ${name} #${seq} failed: ${who}; Gloo said: ${cause.message}`, missing);
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
      await native.storeSet(this.handle, key, value);
    });
  }
  /** Waits (up to the group's timeout) for `key` to be set by some rank. */
  storeGet(key: string): Promise<string> {
    return this.#store(`get of ${key}`, async () => (await native.storeGet(this.handle, key)) as string);
  }
  storeAdd(key: string, by: number): Promise<number> {
    return this.#store(`add to ${key}`, async () => (await native.storeAdd(this.handle, key, by)) as number);
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
