import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * A real S3-compatible server for tests: s3rver (npm), which speaks the S3 REST API (SigV4 auth, multipart
 * uploads, ranged GETs, user metadata) from a plain directory, in-process, with no Java or Docker.
 * It accepts the fixed credentials S3RVER / S3RVER.
 */

export interface S3TestServer {
  endpoint: string;
  dir: string;
  /** Environment for the AWS SDK (in-process via applyEnv, or a child process's env). */
  env: Record<string, string>;
  close(): Promise<void>;
}

interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}

// s3rver is CommonJS without type declarations: load it with require and give it the small shape used here.
const require = createRequire(import.meta.url);
const S3rver = require('s3rver') as new (opts: Record<string, unknown>) => S3rverInstance;

export async function startS3Server(buckets: string[] = ['test-bucket']): Promise<S3TestServer> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-s3-'));
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    configureBuckets: buckets.map((name) => ({ name })),
  });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    dir,
    env: { AWS_ENDPOINT_URL: endpoint, AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' },
    close: async () => {
      await server.close();
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}
