import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';
import { DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, PutObjectCommand, S3Client, type HeadObjectCommandOutput, type S3ClientConfig } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { checkBucketName } from './s3-names.js';
import { readBoundedFile } from './bounded-read.js';
import { openForWrite } from './no-follow.js';
import { UserError } from '../util/errors.js';

/**
 * Object storage on S3 and S3-compatible stores, with the AWS SDK v3's standard configuration: region from
 * AWS_REGION (or AWS_DEFAULT_REGION, or the profile), credentials from the default chain (env, AWS_PROFILE and
 * ~/.aws files, SSO, instance/container roles), and AWS_ENDPOINT_URL(_S3) for other stores (MinIO, Ceph, R2,
 * s3rver...), which then get path-style addressing since they rarely serve bucket subdomains.
 *
 * Integrity: every upload stores the sha256 of the content in the object's metadata (x-amz-meta-sha256); uploads
 * are checked against it (and the size) after completion, downloads before the file gets its final name.
 */

export const MiB = 1024 * 1024;

export interface S3Location {
  bucket: string;
  key: string;
}

export interface TransferProgress {
  key: string;
  transferred: number;
  total: number;
  /** Bytes already on disk from an interrupted earlier download when this one started. */
  resumedFrom: number;
}

export interface TransferOptions {
  /** Defaults to a client built from the environment (see s3Client()). */
  client?: S3Client;
  /** Multipart part size for uploads, ranged-GET size for downloads (default 8 MiB; S3's minimum part is 5 MiB). */
  partSize?: number;
  /** Parts/ranges in flight at once (default 4). */
  concurrency?: number;
  onProgress?: (p: TransferProgress) => void;
  /** Stops a transfer; a download keeps what it has for the next attempt to resume. */
  signal?: AbortSignal;
  /** The setting the URL came from (e.g. data_dir), named in error messages instead of --bucket. */
  setting?: string;
}

export interface TransferResult {
  bucket: string;
  key: string;
  bytes: number;
  sha256: string;
  /** Upload: the object was already there with the same content. Download: always false. */
  skipped: boolean;
  /** Download: bytes reused from an earlier interrupted attempt. */
  resumedFrom: number;
}

/** `s3://bucket/key/with/slashes` → { bucket, key }. */
export function parseS3Url(url: string): S3Location {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m || !m[1]) throw new UserError(`'${url}' is not an S3 URL`, 'write s3://bucket/path/to/object');
  checkBucketName(m[1], url);
  return { bucket: m[1], key: m[2] ?? '' };
}

export function s3Url(bucket: string, key: string): string {
  return `s3://${bucket}/${key}`;
}

function endpointFromEnv(env: NodeJS.ProcessEnv): string | undefined {
  return env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
}

/** Where requests go, for error messages. */
function describeEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  return endpointFromEnv(env) ?? `AWS S3${env.AWS_REGION || env.AWS_DEFAULT_REGION ? ` (${env.AWS_REGION || env.AWS_DEFAULT_REGION})` : ''}`;
}

/** Builds a client from the environment; see the module comment for what it honours. */
export function createS3Client(env: NodeJS.ProcessEnv = process.env): S3Client {
  // The SDK warns on every Node 20 process that future SDK releases will need Node 22. This project supports
  // Node 20 and pins its SDK, so the warning only confuses users; they can still opt back in.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const endpoint = endpointFromEnv(env);
  const config: S3ClientConfig = {};
  if (endpoint) {
    config.endpoint = endpoint;
    config.forcePathStyle = true;
    // S3-compatible servers ignore the region but SigV4 needs one; us-east-1 is what they all accept.
    if (!env.AWS_REGION && !env.AWS_DEFAULT_REGION && !env.AWS_PROFILE) config.region = 'us-east-1';
    // Newer SDKs add CRC checksums (aws-chunked trailers) to every upload by default, which many compatible
    // stores reject; send them only when an operation requires it, unless the user chose otherwise.
    if (!env.AWS_REQUEST_CHECKSUM_CALCULATION) config.requestChecksumCalculation = 'WHEN_REQUIRED';
    if (!env.AWS_RESPONSE_CHECKSUM_VALIDATION) config.responseChecksumValidation = 'WHEN_REQUIRED';
  }
  if (['1', 'true'].includes((env.AWS_S3_FORCE_PATH_STYLE ?? '').toLowerCase())) config.forcePathStyle = true;
  // The JS SDK reads only AWS_REGION; the AWS CLI and boto3 also read AWS_DEFAULT_REGION, and users set either.
  // Both are read from `env` here (not only process.env) so a caller can pass a different environment.
  if (env.AWS_REGION || env.AWS_DEFAULT_REGION) config.region = env.AWS_REGION || env.AWS_DEFAULT_REGION;
  // Static keys come first in the SDK's own chain too; passing them explicitly just makes `env` authoritative.
  // Without them the SDK's default chain (profiles, SSO, web identity, instance roles) is used unchanged.
  if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    config.credentials = { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, sessionToken: env.AWS_SESSION_TOKEN || undefined };
  }
  const client = new S3Client(config);
  endpointNames.set(client, describeEndpoint(env));
  return client;
}

/** What each client we built talks to, for error messages (the SDK resolves its endpoint only asynchronously). */
const endpointNames = new WeakMap<S3Client, string>();

let sharedClient: S3Client | undefined;

/** One client per process (it pools connections); built from the environment on first use. */
export function s3Client(): S3Client {
  sharedClient ??= createS3Client();
  return sharedClient;
}

/** Forgets the shared client, so the next call reads the environment again (tests change it). */
export function resetS3Client(): void {
  sharedClient?.destroy();
  sharedClient = undefined;
}

type AwsError = Error & { Code?: string; code?: string; $metadata?: { httpStatusCode?: number }; cause?: { code?: string } };

/**
 * Turns SDK errors the user can fix into UserErrors naming the fix; anything else is rethrown unchanged.
 * `what` names the object or bucket being worked on.
 */
export function toS3UserError(err: unknown, loc: { bucket: string; key?: string; setting?: string }, client?: S3Client): unknown {
  const e = err as AwsError;
  if (!(e instanceof Error)) return err;
  const name = e.name || e.Code || '';
  const status = e.$metadata?.httpStatusCode;
  const where = (client && endpointNames.get(client)) ?? describeEndpoint();
  const url = loc.key !== undefined ? s3Url(loc.bucket, loc.key) : `s3://${loc.bucket}`;
  const netCode = e.code ?? e.cause?.code ?? '';
  // HEAD requests carry no error body, so a missing bucket shows up as a bare NotFound on a bucket-only call.
  if (name === 'NoSuchBucket' || ((name === 'NotFound' || status === 404) && loc.key === undefined)) {
    return new UserError(
      `${loc.setting ? `${loc.setting}: ` : ''}bucket '${loc.bucket}' does not exist on ${where}`,
      `check the bucket name (${loc.setting ?? '--bucket'}), AWS_REGION and AWS_ENDPOINT_URL, or create the bucket`,
    );
  }
  if (name === 'NoSuchKey' || (name === 'NotFound' && loc.key !== undefined)) {
    return new UserError(`${loc.setting ? `${loc.setting}: ` : ''}${url} does not exist on ${where}`, `check the bucket and key (${loc.setting ?? 'or --prefix'}); list the bucket with \`aws s3 ls\``);
  }
  if (['AccessDenied', 'Forbidden', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'ExpiredToken', 'InvalidToken', 'AllAccessDisabled'].includes(name) || status === 403) {
    return new UserError(
      `${loc.setting ? `${loc.setting}: ` : ''}access to ${url} denied by ${where} (${name || `HTTP ${status}`})`,
      'check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, or AWS_PROFILE) and that they may use this bucket',
    );
  }
  if (name === 'CredentialsProviderError' || /could not load credentials/i.test(e.message)) {
    return new UserError(
      `no AWS credentials found for ${url}`,
      'set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or AWS_PROFILE naming a profile in ~/.aws/credentials, or run where an instance/container role is available',
    );
  }
  if (/region is missing/i.test(e.message)) {
    return new UserError(`no AWS region configured for ${url}`, 'set AWS_REGION (e.g. us-east-1), or a region in the AWS_PROFILE profile');
  }
  if (['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH'].includes(netCode) || name === 'TimeoutError') {
    return new UserError(`cannot reach ${where} (${netCode || name})`, 'check the network, and AWS_ENDPOINT_URL if you use an S3-compatible store');
  }
  return err;
}

async function send<T>(client: S3Client, loc: { bucket: string; key?: string; setting?: string }, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (err) {
    throw toS3UserError(err, loc, client);
  }
}

async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/**
 * HEAD an object; undefined when it does not exist. A missing bucket also answers HEAD with a bare 404, so a
 * miss is followed by HEAD bucket to tell the two apart (a missing bucket is an error, a missing key is not).
 */
async function headObject(client: S3Client, bucket: string, key: string, signal?: AbortSignal, setting?: string): Promise<HeadObjectCommandOutput | undefined> {
  try {
    return await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
  } catch (err) {
    const e = err as AwsError;
    if (e.name === 'NotFound' || e.name === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) {
      await send(client, { bucket, setting }, () => client.send(new HeadBucketCommand({ Bucket: bucket }), { abortSignal: signal }));
      return undefined;
    }
    throw toS3UserError(err, { bucket, key, setting }, client);
  }
}

/** Size and ETag of s3://bucket/key, or undefined when the key does not exist (a missing bucket is a UserError). */
export async function objectInfo(url: string, opts: { client?: S3Client; setting?: string } = {}): Promise<{ size: number; etag: string } | undefined> {
  const { bucket, key } = parseS3Url(url);
  const head = await headObject(opts.client ?? s3Client(), bucket, key, undefined, opts.setting);
  return head && { size: head.ContentLength ?? 0, etag: head.ETag ?? '' };
}

/**
 * Proves that objects can be written beside `url` (bucket exists, credentials may put and delete) by writing and
 * removing a small probe object, so a run learns at its start, not after hours, that its checkpoints cannot be
 * stored. `setting` names where the URL came from in the error.
 */
export async function probeWritable(url: string, opts: { client?: S3Client; setting?: string } = {}): Promise<void> {
  const { bucket, key } = parseS3Url(url);
  checkBucketName(bucket, opts.setting ?? url);
  const client = opts.client ?? s3Client();
  const probe = `${key}.write-probe-${process.pid}-${Date.now().toString(36)}`;
  const loc = { bucket, key: probe, setting: opts.setting };
  await send(client, loc, () => client.send(new PutObjectCommand({ Bucket: bucket, Key: probe, Body: 'nanogpt-ts write probe' })));
  await send(client, loc, () => client.send(new DeleteObjectCommand({ Bucket: bucket, Key: probe })));
}

/** Does s3://bucket/key exist? (A missing bucket is a UserError, not false.) */
export async function exists(url: string, opts: { client?: S3Client } = {}): Promise<boolean> {
  const { bucket, key } = parseS3Url(url);
  return (await headObject(opts.client ?? s3Client(), bucket, key)) !== undefined;
}

async function upload(client: S3Client, bucket: string, key: string, body: Uint8Array | NodeJS.ReadableStream, size: number, sha256: string, opts: TransferOptions): Promise<void> {
  const partSize = Math.max(5 * MiB, opts.partSize ?? 8 * MiB);
  // lib-storage sends one PutObject below partSize and a parallel multipart upload above it; a failed multipart
  // upload is aborted (leavePartsOnError: false) so no orphaned parts keep costing storage.
  const up = new Upload({
    client,
    params: { Bucket: bucket, Key: key, Body: body as Uint8Array, Metadata: { sha256 }, ContentType: 'application/octet-stream' },
    partSize,
    queueSize: opts.concurrency ?? 4,
    leavePartsOnError: false,
    abortController: opts.signal ? abortControllerFor(opts.signal) : undefined,
  });
  up.on('httpUploadProgress', (p) => opts.onProgress?.({ key, transferred: p.loaded ?? 0, total: size, resumedFrom: 0 }));
  await send(client, { bucket, key }, () => up.done());
  const head = await headObject(client, bucket, key, opts.signal);
  if (!head || head.ContentLength !== size || head.Metadata?.sha256 !== sha256) {
    throw new Error(
      `upload of ${s3Url(bucket, key)} did not verify: stored ${head?.ContentLength} bytes with sha256 ${head?.Metadata?.sha256}, sent ${size} bytes with sha256 ${sha256}`,
    );
  }
}

function abortControllerFor(signal: AbortSignal): AbortController {
  const ac = new AbortController();
  if (signal.aborted) ac.abort(signal.reason);
  else signal.addEventListener('abort', () => ac.abort(signal.reason), { once: true });
  return ac;
}

/**
 * Uploads a local file (multipart and parallel when large), then checks the stored size and sha256. If the
 * object is already there with the same sha256, nothing is sent (so re-running an interrupted `--bucket`
 * upload redoes only the files that did not finish).
 */
export async function uploadFile(bucket: string, key: string, file: string, opts: TransferOptions = {}): Promise<TransferResult> {
  checkBucketName(bucket, 'the bucket');
  const client = opts.client ?? s3Client();
  let size: number;
  try {
    size = (await fs.stat(file)).size;
  } catch (err) {
    throw new UserError(`cannot read ${file} (${(err as NodeJS.ErrnoException).code})`, 'check the path');
  }
  const sha256 = await sha256File(file);
  const existing = await headObject(client, bucket, key, opts.signal);
  if (existing && existing.ContentLength === size && existing.Metadata?.sha256 === sha256) {
    opts.onProgress?.({ key, transferred: size, total: size, resumedFrom: 0 });
    return { bucket, key, bytes: size, sha256, skipped: true, resumedFrom: 0 };
  }
  await upload(client, bucket, key, createReadStream(file), size, sha256, opts);
  return { bucket, key, bytes: size, sha256, skipped: false, resumedFrom: 0 };
}

/** Uploads files under `prefix` (e.g. 'processed/'), each keyed by its base name. */
export async function uploadFiles(bucket: string, prefix: string, files: string[], opts: TransferOptions = {}): Promise<TransferResult[]> {
  const dir = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
  const out: TransferResult[] = [];
  for (const f of files) out.push(await uploadFile(bucket, dir + path.basename(f), f, opts));
  return out;
}

interface PartialState {
  etag: string;
  size: number;
}

/**
 * Downloads an object to `dest` with ranged GETs (several in flight, appended in order), into `dest.partial`.
 * If interrupted, the next call for the same object continues from the bytes already there — provided the
 * object's ETag is unchanged (recorded in `dest.partial.json`). The result is checked against the size and the
 * sha256 in the object's metadata (when it was uploaded by us) before the atomic rename to `dest`.
 */
export async function downloadFile(bucket: string, key: string, dest: string, opts: TransferOptions = {}): Promise<TransferResult> {
  checkBucketName(bucket, opts.setting ?? 'the bucket');
  const client = opts.client ?? s3Client();
  const head = await headObject(client, bucket, key, opts.signal, opts.setting);
  if (!head) throw toS3UserError(Object.assign(new Error('not found'), { name: 'NoSuchKey' }), { bucket, key, setting: opts.setting }, client);
  const size = head.ContentLength ?? 0;
  const etag = head.ETag ?? '';
  const expectedSha = head.Metadata?.sha256;
  const partial = `${dest}.partial`;
  const statePath = `${partial}.json`;
  await fs.mkdir(path.dirname(path.resolve(dest)), { recursive: true });

  let have = 0;
  try {
    const state = JSON.parse((await readBoundedFile(statePath, 64 * 1024, 'download state')).toString('utf8')) as PartialState;
    const st = await fs.stat(partial);
    if (state.etag === etag && state.size === size && st.size <= size) have = st.size;
  } catch {
    // No usable earlier attempt: start from zero.
  }
  const resumedFrom = have;
  if (have === 0) {
    // Beside the user's destination: a link planted under either name is refused, not written through.
    await (await openForWrite(partial, 'truncate', 'partial download')).close();
    const state = await openForWrite(statePath, 'truncate', 'download state');
    await state.writeFile(JSON.stringify({ etag, size } satisfies PartialState)).finally(() => state.close());
  }

  const chunk = Math.max(MiB, opts.partSize ?? 8 * MiB);
  const concurrency = Math.max(1, opts.concurrency ?? 4);
  const handle = await openForWrite(partial, 'update', 'partial download');
  try {
    await handle.truncate(have);
    let next = have;
    const inFlight: Promise<Uint8Array>[] = [];
    const fetchRange = async (start: number, end: number): Promise<Uint8Array> => {
      // If-Match: if the object is replaced mid-download, fail rather than splice two versions together.
      const res = await send(client, { bucket, key, setting: opts.setting }, () =>
        client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${end - 1}`, IfMatch: etag || undefined }), { abortSignal: opts.signal }),
      );
      const bytes = await res.Body!.transformToByteArray();
      if (bytes.byteLength !== end - start) throw new Error(`ranged GET of ${s3Url(bucket, key)} bytes ${start}-${end - 1} returned ${bytes.byteLength} bytes`);
      return bytes;
    };
    const fill = (): void => {
      while (inFlight.length < concurrency && next < size) {
        const end = Math.min(size, next + chunk);
        const p = fetchRange(next, end);
        // Awaited in order later; until then a rejection must not count as unhandled (which would crash).
        p.catch(() => undefined);
        inFlight.push(p);
        next = end;
      }
    };
    fill();
    while (inFlight.length > 0) {
      let bytes: Uint8Array;
      try {
        bytes = await inFlight[0]!;
      } catch (err) {
        // Settle the rest so none rejects unobserved; what was appended so far stays for the next attempt.
        await Promise.allSettled(inFlight);
        if ((err as AwsError).name === 'PreconditionFailed' || (err as AwsError).$metadata?.httpStatusCode === 412) {
          await fs.rm(statePath, { force: true });
          throw new UserError(`${s3Url(bucket, key)} changed while it was being downloaded`, 'run the command again to download the new version');
        }
        throw err;
      }
      inFlight.shift();
      await handle.write(bytes, 0, bytes.byteLength, have);
      have += bytes.byteLength;
      opts.onProgress?.({ key, transferred: have, total: size, resumedFrom });
      if (opts.signal?.aborted) {
        await Promise.allSettled(inFlight);
        throw opts.signal.reason ?? new Error('aborted');
      }
      fill();
    }
    await handle.sync();
  } finally {
    await handle.close();
  }

  const st = await fs.stat(partial);
  const sha256 = await sha256File(partial);
  if (st.size !== size || (expectedSha && expectedSha !== sha256)) {
    await fs.rm(partial, { force: true });
    await fs.rm(statePath, { force: true });
    throw new UserError(
      `download of ${s3Url(bucket, key)} is corrupt (${st.size} bytes, sha256 ${sha256}; expected ${size} bytes${expectedSha ? `, sha256 ${expectedSha}` : ''}); the partial file was deleted`,
      'run the command again',
    );
  }
  await fs.rename(partial, dest);
  await fs.rm(statePath, { force: true });
  return { bucket, key, bytes: size, sha256, skipped: false, resumedFrom };
}

/** Reads a whole object (checkpoints, metadata) into memory. */
export async function readObject(url: string, opts: { client?: S3Client } = {}): Promise<Uint8Array> {
  const { bucket, key } = parseS3Url(url);
  const client = opts.client ?? s3Client();
  const res = await send(client, { bucket, key }, () => client.send(new GetObjectCommand({ Bucket: bucket, Key: key })));
  const bytes = await res.Body!.transformToByteArray();
  const expected = res.Metadata?.sha256;
  if (expected && createHash('sha256').update(bytes).digest('hex') !== expected) {
    throw new UserError(`${url} is corrupt: its content does not match the sha256 stored with it`, 'write the object again');
  }
  return bytes;
}

/** Writes a whole object (multipart above the part size), with its sha256 in metadata, and verifies it. */
export async function writeObject(url: string, bytes: Uint8Array | string, opts: TransferOptions = {}): Promise<TransferResult> {
  const { bucket, key } = parseS3Url(url);
  const data = typeof bytes === 'string' ? new TextEncoder().encode(bytes) : bytes;
  const sha256 = createHash('sha256').update(data).digest('hex');
  await upload(opts.client ?? s3Client(), bucket, key, data, data.byteLength, sha256, opts);
  return { bucket, key, bytes: data.byteLength, sha256, skipped: false, resumedFrom: 0 };
}
