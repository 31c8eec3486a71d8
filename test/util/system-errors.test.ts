import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { environmentError, withPath } from '../../src/util/system-errors.js';

const sysErr = (code: string, fields: Record<string, unknown>): Error => Object.assign(new Error(`${code}: something`), { code, ...fields });

test('known environment codes become UserErrors naming the path and a fix', () => {
  const nospc = environmentError(sysErr('ENOSPC', { syscall: 'write', path: '/out/run/snapshot.pt' }));
  assert.equal(nospc?.problem, 'no space left on the device while writing /out/run/snapshot.pt (ENOSPC)');
  assert.match(nospc!.fix!, /df -h \/out\/run/);
  const isDir = environmentError(sysErr('EISDIR', { syscall: 'rename', path: '/out/.ckpt.pt.1.0badf00d.tmp', dest: '/out/ckpt.pt' }));
  assert.match(isDir!.problem, /^\/out\/ckpt\.pt is a directory where a file was expected \(while renaming \/out\/\.ckpt\.pt\.1\.0badf00d\.tmp → \/out\/ckpt\.pt\)/);
  const inUse = environmentError(sysErr('EADDRINUSE', { syscall: 'listen', address: '0.0.0.0', port: 29500 }));
  assert.match(inUse!.problem, /listening on 0\.0\.0\.0:29500/);
  for (const code of ['EROFS', 'EACCES', 'EPERM', 'EEXIST', 'EISDIR', 'ENOTDIR', 'EDQUOT', 'EMFILE', 'EIO']) {
    assert.ok(environmentError(sysErr(code, { syscall: 'open', path: '/x/y' })), code);
  }
});

test('anything else stays a bug: unknown codes, errors without a syscall, plain errors', async () => {
  assert.equal(environmentError(sysErr('ENOENT', { syscall: 'open', path: '/x' })), undefined);
  assert.equal(environmentError(sysErr('ENOSPC', {})), undefined);
  assert.equal(environmentError(new TypeError('x is not a function')), undefined);
  assert.equal(environmentError('ENOSPC'), undefined);
  assert.equal(environmentError(null), undefined);
  // A real one from fs is recognised: a directory under a file.
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'nanogpt-syserr-'));
  try {
    await fs.writeFile(path.join(dir, 'file'), '');
    const real = await fs.mkdir(path.join(dir, 'file', 'sub')).catch((e: unknown) => e);
    assert.match(environmentError(real)?.problem ?? String(real), /a part of .*file\/sub is a file where a directory was expected .*\(ENOTDIR\)/);
  } finally {
    await fs.rm(dir, { recursive: true });
  }
});

test('withPath names the file of a write that reported none, and keeps a path already there', () => {
  const e = withPath(sysErr('ENOSPC', { syscall: 'write' }), '/out/ckpt.pt') as { path?: string };
  assert.equal(e.path, '/out/ckpt.pt');
  const kept = withPath(sysErr('ENOSPC', { syscall: 'open', path: '/a' }), '/b') as { path?: string };
  assert.equal(kept.path, '/a');
  const plain = new Error('x');
  assert.equal(withPath(plain, '/b'), plain);
  assert.equal((plain as { path?: string }).path, undefined);
});
