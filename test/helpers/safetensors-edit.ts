// Crafting broken safetensors files from good ones: read the header JSON and the data region without validation,
// change what a test needs (metadata, dtypes, shapes), and write the result back with a well-formed length prefix.
import { readFileSync, writeFileSync } from 'node:fs';

export interface RawSafetensors {
  header: Record<string, unknown>;
  data: Buffer;
}

export function readRaw(file: string): RawSafetensors {
  const bytes = readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>, data: bytes.subarray(8 + n) };
}

/** Writes a header (an object, or JSON text as it is) and data region, the header padded with spaces to 8 bytes. */
export function writeRaw(file: string, header: object | string, data: Uint8Array): void {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const length = Math.ceil(json.byteLength / 8) * 8;
  const prefix = Buffer.alloc(8 + length, 0x20);
  prefix.writeBigUInt64LE(BigInt(length), 0);
  json.copy(prefix, 8);
  writeFileSync(file, Buffer.concat([prefix, data]));
}

/** Copies `src` to `dest` with its header changed in place by `edit` (tensor entries and "__metadata__"). */
export function editSafetensors(src: string, dest: string, edit: (header: Record<string, unknown>) => void): void {
  const raw = readRaw(src);
  edit(raw.header);
  writeRaw(dest, raw.header, raw.data);
}

/** Copies `src` to `dest` with one metadata value, JSON text, replaced by what `edit` makes of its parsed value. */
export function editJsonMetadata(src: string, dest: string, key: string, edit: (value: Record<string, unknown>) => unknown): void {
  editSafetensors(src, dest, (header) => {
    const metadata = header.__metadata__ as Record<string, string>;
    const next = edit(JSON.parse(metadata[key]!) as Record<string, unknown>);
    metadata[key] = typeof next === 'string' ? next : JSON.stringify(next);
  });
}
