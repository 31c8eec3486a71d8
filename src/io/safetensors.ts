// Reading and writing safetensors files at the byte level. Nothing here knows about tensors in memory: the torch
// layer turns its tensors into (dtype, shape, bytes) and back. Loading a file never runs code, and a reader
// validates the whole header before it allocates anything sized by what the header claims.
import type { FileHandle } from 'node:fs/promises';
import { UserError } from '../util/errors.js';
import { openRegularFile } from './regular-file.js';
import { fileKind } from '../util/format.js';
import { writeFileAtomic } from './atomic.js';
import {
  DEFAULT_MAX_HEADER_BYTES,
  formatShape,
  isSafetensorsDtype,
  METADATA_KEY,
  parseSafetensorsHeader,
  SAFETENSORS_DTYPES,
  tensorByteLength,
  type SafetensorsDtype,
  type TensorEntryInfo,
} from './safetensors-header.js';

export {
  DEFAULT_MAX_HEADER_BYTES,
  DTYPE_BYTES,
  parseSafetensorsHeader,
  SAFETENSORS_DTYPES,
  tensorByteLength,
  type ParsedHeader,
  type SafetensorsDtype,
  type TensorEntryInfo,
} from './safetensors-header.js';

export interface TensorToWrite {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** The row-major little-endian bytes, or a function producing them when their turn comes (to stream big models). */
  data: Uint8Array | (() => Uint8Array | Promise<Uint8Array>);
}

export interface OpenOptions {
  /** Reject headers longer than this many bytes (default 100 MB, as the official implementation). */
  maxHeaderBytes?: number;
}

/** Node's fs calls take at most 2^31 − 1 bytes at a time; stay well under. */
const IO_CHUNK_BYTES = 1 << 28;

// ---------------------------------------------------------------------------------------------------------------
// Writing

/**
 * Writes `tensors` (in the given order) and `metadata` to `path` atomically: a temp file, fsynced, renamed. Lazy
 * `data` is produced one tensor at a time and dropped once written, so a model never needs two copies in memory.
 * Everything checkable up front (names, dtypes, shapes, metadata) is checked before the temp file is created.
 */
export async function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<void> {
  const byteLengths = tensors.map((t) => checkTensorToWrite(t, path));
  checkUniqueNames(tensors, path);
  checkMetadata(metadata, path);
  const prefix = encodeHeader(tensors, byteLengths, metadata);
  await writeFileAtomic(path, async (handle) => {
    await writeFully(handle, prefix, 0);
    let position = prefix.byteLength;
    for (const [i, t] of tensors.entries()) {
      const bytes = await produceData(t, byteLengths[i]!, path);
      await writeFully(handle, bytes, position);
      position += bytes.byteLength;
    }
  });
}

function checkTensorToWrite(t: TensorToWrite, path: string): number {
  const where = `${path}: tensor ${JSON.stringify(t.name)}`;
  if (typeof t.name !== 'string') throw new UserError(`${path}: a tensor name is ${typeof t.name}, not a string`, 'give every tensor a string name');
  if (t.name === METADATA_KEY) throw new UserError(`${where}: the name is reserved for metadata`, 'rename the tensor');
  if (!isSafetensorsDtype(t.dtype)) {
    throw new UserError(`${where}: dtype ${JSON.stringify(t.dtype)} is not one of ${SAFETENSORS_DTYPES.join(', ')}`, 'convert the tensor to a supported dtype');
  }
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new UserError(`${where}: shape ${JSON.stringify(t.shape)} is not an array of non-negative integers`, 'pass the tensor shape as integers');
  }
  const bytes = tensorByteLength(t.dtype, t.shape);
  if (bytes === undefined) throw new UserError(`${where}: shape ${formatShape(t.shape)} is too large`, 'check the shape');
  return bytes;
}

function checkUniqueNames(tensors: readonly TensorToWrite[], path: string): void {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new UserError(`${path}: tensor name ${JSON.stringify(t.name)} appears twice`, 'give every tensor a unique name');
    seen.add(t.name);
  }
}

function checkMetadata(metadata: Record<string, string> | undefined, path: string): void {
  if (metadata === undefined) return;
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') {
      throw new UserError(
        `${path}: metadata ${JSON.stringify(key)} is a ${typeof value}, but safetensors metadata values must be strings`,
        'serialise the value first, e.g. with JSON.stringify',
      );
    }
  }
}

/**
 * The 8-byte length and the JSON header, padded with spaces to a multiple of 8 so the data region (and so every
 * tensor whose offset is a multiple of its element size) is aligned for readers that map the file. The JSON is
 * assembled by hand so tensors keep the caller's order (an object would move integer-like names to the front).
 */
function encodeHeader(tensors: readonly TensorToWrite[], byteLengths: readonly number[], metadata: Record<string, string> | undefined): Uint8Array {
  const parts: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  let offset = 0;
  tensors.forEach((t, i) => {
    const end = offset + byteLengths[i]!;
    const entry = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, end] };
    parts.push(`${JSON.stringify(t.name)}:${JSON.stringify(entry)}`);
    offset = end;
  });
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const headerLength = Math.ceil(json.byteLength / 8) * 8;
  const prefix = Buffer.alloc(8 + headerLength, 0x20);
  prefix.writeBigUInt64LE(BigInt(headerLength), 0);
  json.copy(prefix, 8);
  return prefix;
}

async function produceData(t: TensorToWrite, expected: number, path: string): Promise<Uint8Array> {
  // Typed as Uint8Array, but checked at run time: callers may hand over any typed array (taken as its raw bytes).
  const data: unknown = typeof t.data === 'function' ? await t.data() : t.data;
  if (!ArrayBuffer.isView(data)) {
    throw new UserError(`${path}: tensor ${JSON.stringify(t.name)}: data is not a Uint8Array`, 'pass the tensor bytes as a Uint8Array');
  }
  if (data.byteLength !== expected) {
    throw new UserError(
      `${path}: tensor ${JSON.stringify(t.name)}: data has ${data.byteLength} bytes, but ${t.dtype} of shape ${formatShape(t.shape)} needs ${expected}`,
      'pass bytes matching the dtype and shape',
    );
  }
  return data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

async function writeFully(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const length = Math.min(bytes.byteLength - done, IO_CHUNK_BYTES);
    const { bytesWritten } = await handle.write(bytes, done, length, position + done);
    done += bytesWritten;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Reading

/** An open safetensors file: the validated header in memory, tensor bytes read on demand. */
export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string>;
  /** In file order. */
  readonly tensors: TensorEntryInfo[];
  private readonly byName: Map<string, TensorEntryInfo>;
  private handle: FileHandle | undefined;

  private constructor(path: string, handle: FileHandle, metadata: Record<string, string>, tensors: TensorEntryInfo[]) {
    this.path = path;
    this.handle = handle;
    this.metadata = Object.freeze(metadata);
    this.tensors = Object.freeze(tensors) as TensorEntryInfo[];
    // A Map, not an object, so names like "__proto__" or "constructor" look up nothing they should not.
    this.byName = new Map(tensors.map((t) => [t.name, t]));
  }

  static async open(path: string, opts: OpenOptions = {}): Promise<SafetensorsFile> {
    const maxHeaderBytes = opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    const handle = await openForReading(path);
    try {
      const { size } = await handle.stat();
      const headerBytes = await readHeaderBytes(handle, size, maxHeaderBytes, path);
      const { metadata, tensors } = parseSafetensorsHeader(headerBytes, size, path);
      return new SafetensorsFile(path, handle, metadata, tensors);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorEntryInfo {
    const info = this.byName.get(name);
    if (info === undefined) throw this.missingTensor(name);
    return info;
  }

  /**
   * The tensor's raw bytes. With `into` (exactly byteLength bytes, e.g. a tensor's own storage) they are read
   * there, saving a copy; otherwise into a new array.
   */
  async read(name: string, into?: Uint8Array): Promise<Uint8Array> {
    const info = this.info(name);
    const handle = this.requireOpen();
    if (into !== undefined && into.byteLength !== info.byteLength) {
      throw new RangeError(`read(${JSON.stringify(name)}): destination has ${into.byteLength} bytes, the tensor ${info.byteLength}`);
    }
    const out = into ?? new Uint8Array(info.byteLength);
    const got = await readFully(handle, out, info.byteOffset);
    if (got < info.byteLength) {
      throw new UserError(
        `${this.path}: tensor ${JSON.stringify(name)}: the file ended after ${got} of its ${info.byteLength} bytes (it shrank after it was opened)`,
        'the file was truncated or replaced while open; re-create it and try again',
      );
    }
    return out;
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private requireOpen(): FileHandle {
    if (this.handle === undefined) throw new Error(`${this.path}: read after close()`);
    return this.handle;
  }

  private missingTensor(name: string): UserError {
    const shown = this.tensors.slice(0, 8).map((t) => JSON.stringify(t.name));
    const more = this.tensors.length > shown.length ? `, ... (${this.tensors.length - shown.length} more)` : '';
    const available = this.tensors.length === 0 ? 'it holds no tensors' : `it holds ${shown.join(', ')}${more}`;
    return new UserError(`${this.path}: no tensor named ${JSON.stringify(name)}; ${available}`, 'check the tensor name and that this is the right file');
  }
}

async function openForReading(path: string): Promise<FileHandle> {
  try {
    const { handle } = await openRegularFile(path, (st) => new UserError(`${path} is ${fileKind(st)}, not a checkpoint file`, 'pass the path of a .safetensors file'));
    return handle;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`${path}: no such file`, 'check the path');
    if (code === 'EACCES' || code === 'EPERM') throw new UserError(`${path}: permission denied`, 'check the file permissions');
    throw err;
  }
}

/** Reads the length prefix and, once its claim is checked against the cap and the file size, the header itself. */
async function readHeaderBytes(handle: FileHandle, fileSize: number, maxHeaderBytes: number, path: string): Promise<Uint8Array> {
  const corrupt = 'the file is truncated, corrupt or not a safetensors file; re-download or re-create it';
  if (fileSize < 8) throw new UserError(`${path}: the file has ${fileSize} bytes, shorter than the 8-byte header length`, corrupt);
  const prefix = Buffer.alloc(8);
  if ((await readFully(handle, prefix, 0)) < 8) throw new UserError(`${path}: the file ended inside the 8-byte header length`, corrupt);
  await refusePytorchFormats(handle, fileSize, prefix, path);
  // Compared as a bigint: a corrupt u64 can exceed 2^53 and would round as a number.
  const claimed = prefix.readBigUInt64LE(0);
  if (claimed > BigInt(maxHeaderBytes)) {
    throw new UserError(
      `${path}: the header claims ${claimed} bytes, more than the ${maxHeaderBytes}-byte limit`,
      `${corrupt}; a GPT-2 checkpoint's header is a few kB to ~100 kB, so a bigger one is damage or not a checkpoint`,
    );
  }
  if (claimed > BigInt(fileSize - 8)) {
    throw new UserError(`${path}: the header claims ${claimed} bytes, but only ${fileSize - 8} follow the length`, corrupt);
  }
  const header = new Uint8Array(Number(claimed));
  if ((await readFully(handle, header, 8)) < header.byteLength) {
    throw new UserError(`${path}: the file ended inside the header`, corrupt);
  }
  return header;
}

/**
 * PyTorch's own checkpoint formats, recognised by their first bytes, so that passing one gets a message saying
 * what it is and how to convert it rather than "the header claims 85966179152 bytes". torch.save writes a zip
 * archive (PK\x03\x04) holding <name>/data.pkl, or, before PyTorch 1.6, a bare pickle (\x80 then the protocol
 * number). A safetensors file whose length prefix happened to start with those bytes would be followed by its
 * JSON header's "{"; these formats are not.
 */
async function refusePytorchFormats(handle: FileHandle, fileSize: number, prefix: Buffer, path: string): Promise<void> {
  const isZip = prefix.subarray(0, 4).equals(Buffer.from([0x50, 0x4b, 0x03, 0x04]));
  const isPickle = prefix[0] === 0x80 && prefix[1]! >= 2 && prefix[1]! <= 5;
  if (!isZip && !isPickle) return;
  const ninth = Buffer.alloc(1);
  if ((await readFully(handle, ninth, 8)) === 1 && ninth[0] === 0x7b) return;
  if (isZip) {
    // data.pkl is named in the first entry's local header and again in the central directory at the end.
    const span = Math.min(fileSize, 1 << 16);
    const head = Buffer.alloc(span);
    const tail = Buffer.alloc(span);
    await readFully(handle, head, 0);
    await readFully(handle, tail, fileSize - span);
    if (!head.includes('data.pkl') && !tail.includes('data.pkl')) {
      throw new UserError(`${path} is a zip archive, not a safetensors file`, 'pass the .safetensors file itself (unzip the archive first if it holds one)');
    }
  }
  const kind = isZip ? "PyTorch's zip checkpoint format (torch.save)" : 'a Python pickle (the legacy torch.save format)';
  const load = `torch.load(${JSON.stringify(path)}, map_location="cpu", weights_only=True)`;
  throw new UserError(
    `${path} is ${kind}, not safetensors: nanogpt-ts reads only safetensors files (loading a pickle can run code)`,
    'download the model.safetensors of the same model instead, or convert this file once with PyTorch and the safetensors package: ' +
      `python3 -c 'import torch; from safetensors.torch import save_file; sd = ${load}; sd = sd.get("model", sd); ` +
      `save_file({k: v.contiguous().clone() for k, v in sd.items()}, "model.safetensors")' ` +
      "(a Hugging Face GPT-2 pytorch_model.bin converts this way; tensors must keep Hugging Face's GPT-2 names and layout)",
  );
}

/** Fills `out` from `position`, returning how many bytes were read (fewer only at end of file). */
async function readFully(handle: FileHandle, out: Uint8Array, position: number): Promise<number> {
  let done = 0;
  while (done < out.byteLength) {
    const length = Math.min(out.byteLength - done, IO_CHUNK_BYTES);
    const { bytesRead } = await handle.read(out, done, length, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}
