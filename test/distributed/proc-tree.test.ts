import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { DescendantTracker, descendantsOf, environHas, parseStat, readDescendants, readProcTable, type ProcEntry } from '../../src/distributed/proc-tree.js';

test('/proc/PID/stat lines parse, command names with spaces and parentheses included', () => {
  // A real line (bash) and one whose command name holds ") (".
  const line = '4321 (bash) S 4000 4321 4321 34816 4400 4194560 1200 0 0 0 3 1 0 0 20 0 1 0 987654 9000000 900 18446744073709551615';
  assert.deepEqual(parseStat(line), { pid: 4321, ppid: 4000, pgid: 4321, start: 987654 });
  assert.deepEqual(parseStat('77 (a) (b) R 1 77 77 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0'), { pid: 77, ppid: 1, pgid: 77, start: 55 });
  assert.equal(parseStat('garbage'), undefined);
  const me = readProcTable().find((e) => e.pid === process.pid);
  assert.ok(me && me.ppid === process.ppid, 'this process is in the table with its parent');
});

test('descendants: the whole subtree, recorded while it runs, signalled only while the same process lives', () => {
  const e = (pid: number, ppid: number, start = pid * 10): ProcEntry => ({ pid, ppid, pgid: pid, start });
  const table = [e(1, 0), e(10, 1), e(11, 10), e(12, 11), e(20, 1), e(13, 10)];
  assert.deepEqual(descendantsOf([10], table).map((x) => x.pid).sort(), [11, 12, 13]);
  let now = table;
  const tracker = new DescendantTracker(() => now);
  tracker.sample([10]);
  // 10 exits; 11 is reparented to 1 (an orphan), 12 exits and its pid comes back as another process.
  now = [e(1, 0), e(11, 1), e(12, 1, 999), e(13, 10), e(20, 1)];
  assert.deepEqual(tracker.alive().map((x) => x.pid).sort(), [11, 13]);
});

test('the launch tag is found in an environment exactly, not as a prefix of another value', () => {
  const environ = 'PATH=/usr/bin\0NANOGPT_LAUNCH_TAG=12-ab\0HOME=/root\0';
  assert.ok(environHas(environ, 'NANOGPT_LAUNCH_TAG', '12-ab'));
  assert.ok(!environHas(environ, 'NANOGPT_LAUNCH_TAG', '12-a'));
  assert.ok(!environHas('XNANOGPT_LAUNCH_TAG=12-ab\0', 'NANOGPT_LAUNCH_TAG', '12-ab'));
  assert.ok(environHas('NANOGPT_LAUNCH_TAG=12-ab\0', 'NANOGPT_LAUNCH_TAG', '12-ab'));
});

test('the subtree of a real process is walked from /proc children lists, as the full table sees it', async () => {
  const sh = spawn('sh', ['-c', 'sleep 5 & sleep 5 & wait'], { stdio: 'ignore' });
  try {
    let walked: ProcEntry[] | undefined = [];
    for (let i = 0; i < 100 && (walked?.length ?? 0) < 2; i++) {
      await new Promise((r) => setTimeout(r, 20));
      walked = readDescendants([sh.pid!]);
    }
    const fromTable = descendantsOf([sh.pid!], readProcTable());
    assert.equal(walked?.length, 2);
    assert.deepEqual(walked!.map((e) => e.pid).sort(), fromTable.map((e) => e.pid).sort());
  } finally {
    const kids = readDescendants([sh.pid!]) ?? [];
    sh.kill('SIGKILL');
    for (const e of kids) process.kill(e.pid, 'SIGKILL');
  }
});
