// Reads a safetensors file into its parts and writes parts back, so fuzz cases can take a valid checkpoint and
// lie in exactly one place (a metadata field, a dtype, a shape, an offset, a byte of data).
import { readFileSync, writeFileSync } from 'node:fs';

export interface TensorEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

export interface Parts {
  header: Record<string, unknown> & { __metadata__?: Record<string, string> };
  data: Buffer;
}

export function readParts(file: string): Parts {
  const buf = readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  return { header: JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Parts['header'], data: buf.subarray(8 + n) };
}

/** Serialises a header (any JSON, or raw text) and data; `declaredLength` lets the length prefix lie. */
export function writeParts(file: string, header: unknown, data: Buffer, declaredLength?: bigint): void {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const json = Buffer.from(text, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(declaredLength ?? BigInt(json.length));
  writeFileSync(file, Buffer.concat([prefix, json, data]));
}

export function metadata(p: Parts): Record<string, string> {
  return p.header.__metadata__ ?? {};
}

export function tensors(p: Parts): [string, TensorEntry][] {
  return Object.entries(p.header).filter(([k]) => k !== '__metadata__') as [string, TensorEntry][];
}

/** A copy of `file` at `dest` with the metadata key `key` replaced by `value` (undefined: removed). */
export function withMetadata(file: string, dest: string, key: string, value: string | undefined): void {
  const p = readParts(file);
  const meta = { ...metadata(p) };
  if (value === undefined) delete meta[key];
  else meta[key] = value;
  writeParts(dest, { ...p.header, __metadata__: meta }, p.data);
}

/** A copy with one JSON-valued metadata key's field changed (model_config.n_layer = -1, train_state.iter = ...). */
export function withMetadataField(file: string, dest: string, key: string, field: string, value: unknown): void {
  const p = readParts(file);
  const obj = JSON.parse(metadata(p)[key] ?? '{}') as Record<string, unknown>;
  if (value === undefined) delete obj[field];
  else obj[field] = value;
  withMetadata(file, dest, key, JSON.stringify(obj));
}

/** A copy with one tensor's header entry changed. */
export function withTensor(file: string, dest: string, name: string, change: (e: TensorEntry) => unknown): void {
  const p = readParts(file);
  const header: Record<string, unknown> = { ...p.header };
  header[name] = change({ ...(p.header[name] as TensorEntry) });
  writeParts(dest, header, p.data);
}

/** A copy with the float32 value at element `index` of tensor `name` set to `value` (NaN, Infinity). */
export function withValue(file: string, dest: string, name: string, index: number, value: number): void {
  const p = readParts(file);
  const e = p.header[name] as TensorEntry;
  const data = Buffer.from(p.data);
  if (e.dtype !== 'F32') throw new Error(`withValue needs an F32 tensor, ${name} is ${e.dtype}`);
  data.writeFloatLE(value, e.data_offsets[0] + 4 * index);
  writeParts(dest, p.header, data);
}
