// Tensors to and from safetensors files, local or s3://. The byte-level format lives in safetensors.ts; this
// module adapts it to torch tensors and object storage (remote files go through a local temp file, so uploads
// are whole and downloads are verified before anyone reads them).
import { mkdtemp, rm } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as torch from '../torch/index.js';
import { SafetensorsFile, writeSafetensors, type SafetensorsDtype } from './safetensors.js';
import { downloadFile, parseS3Url, uploadFile } from './object-store.js';
import { UserError } from '../util/errors.js';

const TO_ST: Record<torch.DType, SafetensorsDtype> = {
  float32: 'F32', bfloat16: 'BF16', float16: 'F16', float64: 'F64', int64: 'I64', int32: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};
const FROM_ST: Partial<Record<SafetensorsDtype, torch.DType>> = Object.fromEntries(Object.entries(TO_ST).map(([k, v]) => [v, k as torch.DType]));

export const isRemote = (p: string): boolean => p.startsWith('s3://');

/** Writes named tensors (streamed one at a time) with string metadata, atomically; `dest` may be s3://. */
export async function saveTensors(dest: string, entries: Iterable<[string, torch.Tensor]>, metadata: Record<string, string> = {}): Promise<void> {
  const list = [...entries].map(([name, t]) => ({
    name,
    dtype: TO_ST[t.dtype],
    shape: t.shape,
    data: () => torch.toBytes(t),
  }));
  if (!isRemote(dest)) {
    await writeSafetensors(dest, list, metadata);
    return;
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'nanogpt-upload-'));
  try {
    const local = path.join(dir, path.basename(dest));
    await writeSafetensors(local, list, metadata);
    const { bucket, key } = parseS3Url(dest);
    await uploadFile(bucket, key, local);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** An open safetensors file whose tensors are loaded one by one on request. */
export class TensorReader {
  private constructor(
    private readonly file: SafetensorsFile,
    private readonly cleanup: () => Promise<void>,
    readonly source: string,
  ) {}

  static async open(src: string): Promise<TensorReader> {
    if (!isRemote(src)) return new TensorReader(await SafetensorsFile.open(src), async () => undefined, src);
    const dir = await mkdtemp(path.join(os.tmpdir(), 'nanogpt-download-'));
    try {
      const local = path.join(dir, path.basename(src));
      const { bucket, key } = parseS3Url(src);
      await downloadFile(bucket, key, local);
      return new TensorReader(await SafetensorsFile.open(local), () => rm(dir, { recursive: true, force: true }), src);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  get metadata(): Record<string, string> {
    return this.file.metadata;
  }
  get names(): string[] {
    return this.file.tensors.map((t) => t.name);
  }
  has(name: string): boolean {
    return this.file.has(name);
  }
  shape(name: string): number[] {
    return [...this.file.info(name).shape];
  }
  dtype(name: string): SafetensorsDtype {
    return this.file.info(name).dtype;
  }

  async get(name: string): Promise<torch.Tensor> {
    const info = this.file.info(name);
    const dtype = FROM_ST[info.dtype];
    if (!dtype) {
      throw new UserError(
        `${this.source}: tensor ${name} has dtype ${info.dtype}, which the tensor engine cannot hold (it holds ${Object.keys(FROM_ST).join(', ')})`,
        'convert the tensor to one of those dtypes when saving the file',
      );
    }
    const bytes = await this.file.read(name);
    return torch.fromBytes(bytes, dtype, info.shape);
  }

  async close(): Promise<void> {
    await this.file.close();
    await this.cleanup();
  }
}
