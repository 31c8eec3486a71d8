// PyTorch's own checkpoint formats given where a safetensors file is expected: recognised from their first bytes
// and named, with how to convert them, instead of "the header claims 85966179152 bytes".
import { after, test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { UserError } from '../../src/util/errors.js';
import { assertUserError, digestTree, nanogptSync } from '../helpers/nanogpt-cli.js';
import { writeRaw } from '../helpers/safetensors-edit.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'nanogpt-pickle-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A pickle of {} as protocol 2 writes it: PROTO 2, EMPTY_DICT, STOP. */
const PICKLE = Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]);

/** One stored (uncompressed) zip entry: a local file header, the name, the bytes (no central directory needed). */
function zipEntry(name: string, body: Buffer): Buffer {
  const header = Buffer.alloc(30);
  header.writeUInt32LE(0x04034b50, 0); // PK\x03\x04
  header.writeUInt16LE(20, 4); // version needed
  header.writeUInt32LE(body.byteLength, 18); // compressed size
  header.writeUInt32LE(body.byteLength, 22); // uncompressed size
  header.writeUInt16LE(Buffer.byteLength(name), 26);
  return Buffer.concat([header, Buffer.from(name), body]);
}

const torchZip = path.join(tmp, 'model.pt');
writeFileSync(torchZip, Buffer.concat([zipEntry('archive/data.pkl', PICKLE), zipEntry('archive/version', Buffer.from('3\n'))]));
const legacy = path.join(tmp, 'legacy.bin');
writeFileSync(legacy, Buffer.concat([PICKLE, Buffer.alloc(64, 0x2e)]));
const plainZip = path.join(tmp, 'files.zip');
writeFileSync(plainZip, zipEntry('readme.txt', Buffer.from('hello')));

async function openError(file: string): Promise<string> {
  try {
    await SafetensorsFile.open(file);
  } catch (err) {
    assert.ok(err instanceof UserError, String(err));
    return err.message;
  }
  assert.fail(`${file} opened`);
}

test('a torch.save zip, a legacy pickle and a plain zip are each named for what they are', async () => {
  const zipMsg = await openError(torchZip);
  assert.match(zipMsg, /model\.pt is PyTorch's zip checkpoint format \(torch\.save\), not safetensors: nanogpt-ts reads only safetensors files \(loading a pickle can run code\)/);
  assert.match(zipMsg, /fix: download the model\.safetensors of the same model instead, or convert this file once .*torch\.load\(".*model\.pt", map_location="cpu", weights_only=True\).*save_file\(/);
  assert.match(await openError(legacy), /legacy\.bin is a Python pickle \(the legacy torch\.save format\), not safetensors/);
  assert.match(await openError(plainZip), /files\.zip is a zip archive, not a safetensors file/);
});

test('a safetensors file whose length prefix begins like a pickle still opens', async () => {
  // A header of 640 bytes has the length prefix 80 02 00 ...; what follows is "{", as in every safetensors header,
  // and that is what tells the two apart. (A header of 0x04034b50 bytes, 67 MB, would begin like a zip the same way.)
  const length = 0x0280;
  const file = path.join(tmp, 'lookalike.safetensors');
  const json = Buffer.alloc(length, 0x20);
  json.write('{}', 0);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(length));
  writeFileSync(file, Buffer.concat([prefix, json]));
  const f = await SafetensorsFile.open(file);
  assert.deepEqual(f.tensors, []);
  await f.close();
  // And the helper's ordinary files are unaffected.
  const ok = path.join(tmp, 'ok.safetensors');
  writeRaw(ok, {}, new Uint8Array(0));
  await (await SafetensorsFile.open(ok)).close();
});

test('sample, export and train name a PyTorch checkpoint where they expect safetensors', () => {
  assertUserError(nanogptSync(['sample', '--ckpt_path', torchZip]), /model\.pt is PyTorch's zip checkpoint format \(torch\.save\), not safetensors/);
  const out = path.join(tmp, 'export');
  mkdirSync(out);
  writeFileSync(path.join(out, 'config.json'), '{}');
  const before = digestTree(out);
  assertUserError(nanogptSync(['export', '--ckpt_path', legacy, '--out_dir', out]), /legacy\.bin is a Python pickle/);
  assert.deepEqual(digestTree(out), before);
  assertUserError(nanogptSync(['train', `--init_from=${torchZip}`, `--data_dir=${tmp}`, `--out_dir=${path.join(tmp, 'run')}`, '--threads=1']), /is PyTorch's zip checkpoint format/);
});
