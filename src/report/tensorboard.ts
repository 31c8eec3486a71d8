// TensorBoard event files (<out_dir>/tensorboard/events.out.tfevents.<time>.<host>.<pid>.<n>), so `tensorboard --logdir
// out` shows a run's scalars without TensorFlow or any Python on the training side. Written here from scratch:
// the format is small and stable.
//
// A file is a sequence of TFRecords: uint64 length (little-endian), masked CRC-32C of those 8 bytes, the payload,
// masked CRC-32C of the payload. Each payload is an `Event` protobuf (tensorboard/compat/proto/event.proto):
//   Event   { double wall_time = 1; int64 step = 2; oneof what { string file_version = 3; Summary summary = 5;
//             SessionLog session_log = 7; } }
//   Summary { repeated Value value = 1; }   Value { string tag = 1; float simple_value = 2; }
//   SessionLog { SessionStatus status = 1; }   (START = 1)
import { closeSync, mkdirSync, writeSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openForWriteSync } from '../io/no-follow.js';
import { withPath } from '../util/system-errors.js';

// ---------------------------------------------------------------------------------------------- CRC-32C

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the checksum TFRecord uses, not zlib's CRC-32.
const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC32C_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

/** TFRecord's masking (rotate right by 15, add a constant), so CRCs of data that holds CRCs stay well spread. */
export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord around `payload`. */
export function tfRecord(payload: Uint8Array): Buffer {
  const out = Buffer.alloc(8 + 4 + payload.length + 4);
  out.writeBigUInt64LE(BigInt(payload.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(payload, 12);
  out.writeUInt32LE(maskedCrc32c(payload), 12 + payload.length);
  return out;
}

// ---------------------------------------------------------------------------------------------- protobuf

// Just the wire types these messages use: varint (0), 64-bit (1), length-delimited (2), 32-bit (5).
class ProtoWriter {
  private bytes: number[] = [];

  private varint(v: bigint): void {
    // int64 on the wire: two's complement as an unsigned 64-bit varint (negative steps never occur, but stay valid).
    let x = BigInt.asUintN(64, v);
    while (x >= 0x80n) {
      this.bytes.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.bytes.push(Number(x));
  }

  private key(field: number, wire: number): void {
    this.varint(BigInt((field << 3) | wire));
  }

  int64(field: number, v: number): this {
    if (v === 0) return this; // proto3 leaves default values out; readers take the absent field as 0
    this.key(field, 0);
    this.varint(BigInt(Math.trunc(v)));
    return this;
  }

  enumValue(field: number, v: number): this {
    return this.int64(field, v);
  }

  double(field: number, v: number): this {
    this.key(field, 1);
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v);
    this.bytes.push(...b);
    return this;
  }

  float(field: number, v: number): this {
    this.key(field, 5);
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.bytes.push(...b);
    return this;
  }

  bytesField(field: number, v: Uint8Array): this {
    this.key(field, 2);
    this.varint(BigInt(v.length));
    for (const x of v) this.bytes.push(x);
    return this;
  }

  string(field: number, v: string): this {
    return this.bytesField(field, Buffer.from(v, 'utf8'));
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

export const FILE_VERSION = 'brain.Event:2';

export interface Scalar {
  tag: string;
  value: number;
}

/** The Event that starts every file. */
export function fileVersionEvent(wallTime: number): Uint8Array {
  return new ProtoWriter().double(1, wallTime).string(3, FILE_VERSION).finish();
}

/** An Event holding scalars (Summary.Value.simple_value) for one step. */
export function scalarsEvent(wallTime: number, step: number, scalars: readonly Scalar[]): Uint8Array {
  const summary = new ProtoWriter();
  for (const s of scalars) summary.bytesField(1, new ProtoWriter().string(1, s.tag).float(2, s.value).finish());
  return new ProtoWriter().double(1, wallTime).int64(2, step).bytesField(5, summary.finish()).finish();
}

/**
 * SessionLog START at `step`: TensorBoard then discards what earlier files logged at this step or later (its
 * "orphaned data" purge), which is what a resumed run (steps redone) or a fresh start over an old run means.
 */
export function sessionStartEvent(wallTime: number, step: number): Uint8Array {
  return new ProtoWriter().double(1, wallTime).int64(2, step).bytesField(7, new ProtoWriter().enumValue(1, 1).finish()).finish();
}

// ---------------------------------------------------------------------------------------------- metrics → events

/** TensorBoard's tags for the metrics.jsonl fields (src/train/metrics.ts), grouped as its scalar dashboard shows them. */
export const TAGS = {
  train: { loss: 'train/loss', lr: 'train/lr', grad_norm: 'train/grad_norm', tokens_per_s: 'train/tokens_per_s', ms: 'train/step_ms', mfu: 'train/mfu' },
  eval: { train_loss: 'eval/train_loss', val_loss: 'eval/val_loss' },
} as const;

/** The events one metrics record becomes (none for records TensorBoard has no view of). */
export function eventsForRecord(record: Record<string, unknown>, wallTime: number): Uint8Array[] {
  const pick = (map: Record<string, string>): Scalar[] =>
    Object.entries(map)
      .filter(([k]) => typeof record[k] === 'number' || record[k] === null) // null: a non-finite value (JSON has no NaN)
      .map(([k, tag]) => ({ tag, value: record[k] === null ? NaN : (record[k] as number) }));
  const step = typeof record.iter === 'number' ? record.iter : 0;
  switch (record.type) {
    case 'train':
      // mfu is null when no peak_flops was configured: not a NaN worth plotting.
      return [scalarsEvent(wallTime, step, pick(TAGS.train).filter((s) => !(s.tag === TAGS.train.mfu && record.mfu === null)))];
    case 'eval':
      return [scalarsEvent(wallTime, step, pick(TAGS.eval))];
    case 'start': {
      const resumedAt = typeof record.resumed_at === 'number' ? record.resumed_at : null;
      // Records up to the snapshot's iteration stay valid; the resumed session redoes everything after it.
      return [sessionStartEvent(wallTime, resumedAt === null ? 0 : resumedAt + 1)];
    }
    default:
      return [];
  }
}

let logsOpened = 0;

/** Appends events for metrics records to one event file; each write is flushed to the file before it returns. */
export class TensorBoardLog {
  readonly file: string;
  private started = false;

  constructor(dir: string, now = new Date()) {
    // TensorBoard's own naming (events.out.tfevents.<seconds>.<host>), plus the pid and a count of the logs this
    // process opened (as TensorFlow's writers do), so two sessions started in the same second never share a file.
    this.file = path.join(dir, `events.out.tfevents.${Math.floor(now.getTime() / 1000)}.${os.hostname()}.${process.pid}.${++logsOpened}`);
  }

  write(record: Record<string, unknown>, now = Date.now()): void {
    const wallTime = now / 1000;
    const events = eventsForRecord(record, wallTime);
    if (events.length === 0) return;
    if (!this.started) {
      mkdirSync(path.dirname(this.file), { recursive: true });
      events.unshift(fileVersionEvent(wallTime));
    }
    const fd = openForWriteSync(this.file, 'append', 'TensorBoard event file');
    try {
      writeSync(fd, Buffer.concat(events.map(tfRecord)));
      this.started = true;
    } catch (err) {
      throw withPath(err, this.file);
    } finally {
      closeSync(fd);
    }
  }
}
