import * as path from 'node:path';
import { downloadFile, exists, s3Url, type TransferProgress } from '../io/object-store.js';
import { checkBucketName } from '../io/s3-names.js';
import { UserError } from '../util/errors.js';
import { flagString, parseArgs } from './args.js';
import type { Command } from './command.js';
import { formatBytes } from '../util/format.js';

const help = `nanogpt download — fetch prepared data (train.bin, val.bin, meta.json) from S3

Usage: nanogpt download --bucket BUCKET [--out_dir data] [--prefix processed/]

Downloads s3://BUCKET/PREFIX/train.bin and val.bin (and meta.json when present), as uploaded by
\`nanogpt prepare --bucket BUCKET\`. Transfers use parallel ranged GETs, resume after an interruption
(run the same command again), and are checked against the sha256 stored with each object before
the file appears under its final name.

Options:
  --bucket B     bucket name (required)
  --out_dir D    where to write the files (default: data)
  --prefix P     key prefix inside the bucket (default: processed/)

Configuration (the AWS SDK's standard chain):
  AWS_REGION                                 region (AWS_DEFAULT_REGION also read)
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY   credentials (AWS_SESSION_TOKEN for temporary ones),
  AWS_PROFILE                                or a profile from ~/.aws/credentials and ~/.aws/config
  AWS_ENDPOINT_URL                           an S3-compatible store (MinIO, Ceph, R2...): path-style

Examples:
  nanogpt download --bucket my-bucket
  AWS_ENDPOINT_URL=http://localhost:9000 nanogpt download --bucket data --out_dir data/run1
`;

export const downloadCommand: Command = {
  name: 'download',
  summary: 'fetch prepared train.bin / val.bin from an S3 bucket (as uploaded by prepare --bucket)',
  help,
  async run(argv: string[]): Promise<number> {
    const args = parseArgs(argv, { values: ['bucket', 'out_dir', 'prefix'] }, 'download');
    if (args.positionals.length > 0) throw new UserError(`unexpected argument '${args.positionals[0]}'`, 'see nanogpt download --help');
    const bucket = flagString(args, 'bucket');
    if (!bucket) throw new UserError('--bucket is required', 'nanogpt download --bucket BUCKET (see --help)');
    checkBucketName(bucket, '--bucket');
    const outDir = flagString(args, 'out_dir', 'data')!;
    let prefix = flagString(args, 'prefix', 'processed/')!;
    if (prefix !== '' && !prefix.endsWith('/')) prefix += '/';

    const wanted: { name: string; optional: boolean }[] = [
      { name: 'train.bin', optional: false },
      { name: 'val.bin', optional: false },
      { name: 'meta.json', optional: true },
    ];
    for (const { name, optional } of wanted) {
      const key = prefix + name;
      if (optional && !(await exists(s3Url(bucket, key)))) continue;
      const dest = path.join(outDir, name);
      let last = 0;
      const onProgress = (p: TransferProgress): void => {
        const now = Date.now();
        if (now - last < 1000 && p.transferred < p.total) return;
        last = now;
        process.stderr.write(`${key}: ${formatBytes(p.transferred)} of ${formatBytes(p.total)}${p.resumedFrom ? ` (resumed at ${formatBytes(p.resumedFrom)})` : ''}\n`);
      };
      const r = await downloadFile(bucket, key, dest, { onProgress });
      process.stderr.write(`${s3Url(bucket, key)} → ${dest} (${formatBytes(r.bytes)}, sha256 ${r.sha256.slice(0, 12)}…)\n`);
    }
    return 0;
  },
};
