// The safetensors header: dtypes, byte sizes, and a validating parser. Pure functions over bytes, no I/O, so the
// checks can be tested one by one and reused by the writer.
//
// Layout (https://github.com/huggingface/safetensors): u64 little-endian N, N bytes of UTF-8 JSON, data region.
// The JSON maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the data region)
// plus an optional "__metadata__" string→string map.
import { UserError } from '../util/errors.js';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'U16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element. Its keys are exactly the dtypes we accept. */
export const DTYPE_BYTES: Readonly<Record<SafetensorsDtype, number>> = Object.freeze({
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  U16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
});

export const SAFETENSORS_DTYPES: readonly SafetensorsDtype[] = Object.freeze(Object.keys(DTYPE_BYTES) as SafetensorsDtype[]);

/** The official implementation's cap; a bigger header is far more likely corruption than a real model. */
export const DEFAULT_MAX_HEADER_BYTES = 100_000_000;

export const METADATA_KEY = '__metadata__';

export interface TensorEntryInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Absolute position of the first byte in the file. */
  byteOffset: number;
  byteLength: number;
}

export interface ParsedHeader {
  metadata: Record<string, string>;
  /** In file order (by data offset). */
  tensors: TensorEntryInfo[];
}

const FIX_CORRUPT = 'the file is truncated, corrupt or not a safetensors file; re-download or re-create it';

export function isSafetensorsDtype(x: unknown): x is SafetensorsDtype {
  return typeof x === 'string' && Object.hasOwn(DTYPE_BYTES, x);
}

/**
 * dtype size × product(shape), or undefined when that exceeds 2^53 − 1 bytes (no file can be that big, and past
 * that point JS numbers would silently round). A shape with a zero dimension has zero bytes whatever the others.
 */
export function tensorByteLength(dtype: SafetensorsDtype, shape: readonly number[]): number | undefined {
  if (shape.includes(0)) return 0;
  let bytes = DTYPE_BYTES[dtype];
  for (const dim of shape) {
    if (bytes > Number.MAX_SAFE_INTEGER / dim) return undefined;
    bytes *= dim;
  }
  return bytes;
}

/** A short description of a JSON value's kind, for messages ("an array", "null", "a string"). */
export function describeJson(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value} (${preview(value)})`;
}

/** JSON text of a value, cut short so a hostile header cannot make a megabyte error message. */
function preview(value: unknown): string {
  const text = JSON.stringify(value) ?? 'missing';
  return text.length > 60 ? `${text.slice(0, 60)}...` : text;
}

export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Validates a header completely before anyone allocates a byte for tensor data: every entry well-formed, byte
 * lengths consistent with dtype and shape, and the tensors tiling the data region exactly (what the official
 * implementation requires: no gaps, no overlaps, no trailing bytes). `fileSize` is the whole file's size.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, fileSize: number, source: string): ParsedHeader {
  const dataStart = 8 + headerBytes.byteLength;
  const dataLength = fileSize - dataStart;
  if (dataLength < 0) {
    throw new UserError(`${source}: the header (${headerBytes.byteLength} bytes) is longer than the file allows (${fileSize} bytes in all)`, FIX_CORRUPT);
  }
  const json = decodeHeaderJson(headerBytes, source);
  let metadata: Record<string, string> = {};
  const entries: RawEntry[] = [];
  for (const [key, value] of Object.entries(json)) {
    if (key === METADATA_KEY) metadata = parseMetadata(value, source);
    else entries.push(parseEntry(key, value, source));
  }
  // Sort by (begin, end) so zero-length tensors sharing an offset stay legal, as in the official implementation.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  checkTiling(entries, dataLength, source);
  const tensors = entries.map((e) =>
    Object.freeze({
      name: e.name,
      dtype: e.dtype,
      shape: Object.freeze(e.shape) as number[],
      byteOffset: dataStart + e.begin,
      byteLength: e.end - e.begin,
    }),
  );
  return { metadata, tensors };
}

interface RawEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function decodeHeaderJson(bytes: Uint8Array, source: string): Record<string, unknown> {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new UserError(`${source}: the header is not valid UTF-8`, FIX_CORRUPT);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${source}: the header is not valid JSON (${(err as Error).message})`, FIX_CORRUPT);
  }
  if (!isJsonObject(json)) {
    throw new UserError(`${source}: the header is ${describeJson(json)}, not a JSON object of tensor entries`, FIX_CORRUPT);
  }
  return json;
}

function parseMetadata(value: unknown, source: string): Record<string, string> {
  // The official implementation accepts "__metadata__": null as "no metadata".
  if (value === null) return {};
  if (!isJsonObject(value)) {
    throw new UserError(`${source}: "${METADATA_KEY}" is ${describeJson(value)}, not an object of string values`, FIX_CORRUPT);
  }
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') {
      throw new UserError(`${source}: "${METADATA_KEY}" key ${JSON.stringify(key)} is ${describeJson(v)}, not a string`, FIX_CORRUPT);
    }
  }
  // fromEntries defines own properties, so a key like "__proto__" stays data rather than becoming a prototype.
  return Object.fromEntries(Object.entries(value)) as Record<string, string>;
}

function parseEntry(name: string, value: unknown, source: string): RawEntry {
  const where = `${source}: tensor ${JSON.stringify(name)}`;
  if (!isJsonObject(value)) {
    throw new UserError(`${where}: the header entry is ${describeJson(value)}, not an object with dtype, shape and data_offsets`, FIX_CORRUPT);
  }
  const dtype = parseDtype(value.dtype, where);
  const shape = parseShape(value.shape, where);
  const [begin, end] = parseOffsets(value.data_offsets, where);
  const expected = tensorByteLength(dtype, shape);
  if (expected === undefined) {
    throw new UserError(`${where}: shape ${formatShape(shape)} of ${dtype} describes more bytes than any file can hold`, FIX_CORRUPT);
  }
  if (end - begin !== expected) {
    throw new UserError(
      `${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${dtype} of shape ${formatShape(shape)} needs ${expected}`,
      FIX_CORRUPT,
    );
  }
  return { name, dtype, shape, begin, end };
}

function parseDtype(value: unknown, where: string): SafetensorsDtype {
  if (isSafetensorsDtype(value)) return value;
  throw new UserError(
    `${where}: dtype is ${describeJson(value)}; supported dtypes are ${SAFETENSORS_DTYPES.join(', ')}`,
    'convert the tensor to a supported dtype when saving, or check the file is a safetensors file',
  );
}

function parseShape(value: unknown, where: string): number[] {
  if (!Array.isArray(value) || !value.every(isNonNegativeSafeInteger)) {
    throw new UserError(`${where}: shape is ${preview(value)}, not an array of non-negative integers`, FIX_CORRUPT);
  }
  return value as number[];
}

function parseOffsets(value: unknown, where: string): [number, number] {
  if (!Array.isArray(value) || value.length !== 2 || !value.every(isNonNegativeSafeInteger)) {
    throw new UserError(`${where}: data_offsets is ${preview(value)}, not two non-negative integers [begin, end]`, FIX_CORRUPT);
  }
  const [begin, end] = value as [number, number];
  if (begin > end) {
    throw new UserError(`${where}: data_offsets [${begin}, ${end}] begin after they end`, FIX_CORRUPT);
  }
  return [begin, end];
}

/** "[2, 3]"; long shapes are cut short for the same reason as preview(). */
export function formatShape(shape: readonly number[]): string {
  return shape.length > 8 ? `[${shape.slice(0, 8).join(', ')}, ... (${shape.length} dims)]` : `[${shape.join(', ')}]`;
}

function isNonNegativeSafeInteger(x: unknown): boolean {
  return Number.isSafeInteger(x) && (x as number) >= 0;
}

/** Sorted entries must cover [0, dataLength) exactly, each starting where the previous one ended. */
function checkTiling(sorted: readonly RawEntry[], dataLength: number, source: string): void {
  // Report a tensor running past the end first: for a truncated file that is the message that explains it.
  for (const e of sorted) {
    if (e.end > dataLength) {
      throw new UserError(
        `${source}: tensor ${JSON.stringify(e.name)}: data_offsets [${e.begin}, ${e.end}] run past the end of the data region (${dataLength} bytes)`,
        FIX_CORRUPT,
      );
    }
  }
  let cursor = 0;
  let previous: RawEntry | undefined;
  for (const e of sorted) {
    if (e.begin < cursor) {
      throw new UserError(
        `${source}: tensor ${JSON.stringify(e.name)}: data_offsets [${e.begin}, ${e.end}] overlap tensor ${JSON.stringify(previous?.name)} [${previous?.begin}, ${previous?.end}]`,
        FIX_CORRUPT,
      );
    }
    if (e.begin > cursor) {
      throw new UserError(
        `${source}: bytes [${cursor}, ${e.begin}) of the data region belong to no tensor (gap before tensor ${JSON.stringify(e.name)})`,
        FIX_CORRUPT,
      );
    }
    cursor = e.end;
    previous = e;
  }
  if (cursor !== dataLength) {
    throw new UserError(`${source}: ${dataLength - cursor} trailing bytes after the last tensor belong to no tensor`, FIX_CORRUPT);
  }
}
