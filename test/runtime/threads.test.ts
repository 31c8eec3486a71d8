import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { allowedCpusFromStatus, defaultThreads, exportThreadEnv, findTcmalloc, parseCpuList, physicalCores, physicalCoresFromCpuinfo, physicalCoresFromLscpu, threadEnv } from '../../src/runtime/threads.js';
import { withPreload } from '../../src/runtime/allocator.js';
import { UserError } from '../../src/util/errors.js';

// Two sockets × 2 cores × 2 hyper-threads = 8 logical CPUs, 4 physical cores.
const cpuinfo = [0, 1, 2, 3, 4, 5, 6, 7]
  .map((cpu) => `processor\t: ${cpu}\nmodel name\t: Xeon\nphysical id\t: ${cpu >> 2}\ncore id\t\t: ${(cpu >> 1) & 1}\n`)
  .join('\n');

test('physical cores from /proc/cpuinfo and lscpu ignore hyper-threads', () => {
  assert.equal(physicalCoresFromCpuinfo(cpuinfo), 4);
  assert.equal(physicalCoresFromCpuinfo('processor\t: 0\nBogoMIPS\t: 50\n\nprocessor\t: 1\n'), 0); // ARM: no core ids
  assert.equal(physicalCoresFromLscpu('# Core,Socket\n0,0\n0,0\n1,0\n0,1\n1,1\n'), 4);
  const n = physicalCores();
  assert.ok(n >= 1 && n <= os.availableParallelism());
});

test('physical cores behind the CPUs this process may use (a Slurm task or cpuset holding both hyper-threads)', () => {
  // In the 8-CPU layout above, CPUs 0 and 1 are the two hyper-threads of socket 0's core 0.
  assert.equal(physicalCoresFromCpuinfo(cpuinfo, new Set([0, 1])), 1);
  assert.equal(physicalCoresFromCpuinfo(cpuinfo, new Set([0, 2])), 2);
  assert.equal(physicalCoresFromCpuinfo(cpuinfo, new Set([0, 1, 2, 3, 4, 5, 6, 7])), 4);
  assert.equal(physicalCoresFromLscpu('# CPU,Core,Socket\n0,0,0\n1,0,0\n2,1,0\n3,1,0\n', new Set([0, 1])), 1);
  assert.deepEqual([...parseCpuList('0-3,8,10-11')!], [0, 1, 2, 3, 8, 10, 11]);
  assert.equal(parseCpuList('0-3,x'), undefined);
  const status = 'Name:\tnode\nCpus_allowed:\tff\nCpus_allowed_list:\t0-1,4\nMems_allowed_list:\t0\n';
  assert.deepEqual([...allowedCpusFromStatus(status)!], [0, 1, 4]);
  assert.equal(allowedCpusFromStatus('Name:\tnode\n'), undefined);
  // Ranks started by mpirun, srun or ssh get OpenMP's variables from the trainer (unless already set).
  const env: NodeJS.ProcessEnv = { MKL_NUM_THREADS: '2' };
  exportThreadEnv(3, env);
  assert.deepEqual(env, { MKL_NUM_THREADS: '2', OMP_NUM_THREADS: '3' });
});

test('default threads: an equal share of physical cores, at least one', () => {
  assert.equal(defaultThreads(1, 16), 16);
  assert.equal(defaultThreads(3, 16), 5);
  assert.equal(defaultThreads(4, 2), 1);
  assert.deepEqual(threadEnv(4), { NANOGPT_THREADS: '4', OMP_NUM_THREADS: '4', MKL_NUM_THREADS: '4' });
});

test('tcmalloc: found in the given library dirs, else a UserError naming the package', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tcm-'));
  assert.throws(() => findTcmalloc([dir]), (e: unknown) => e instanceof UserError && /apt-get install libtcmalloc-minimal4/.test(e.message));
  writeFileSync(path.join(dir, 'libtcmalloc.so.4'), '');
  assert.equal(findTcmalloc([dir]), path.join(dir, 'libtcmalloc.so.4'));
  writeFileSync(path.join(dir, 'libtcmalloc_minimal.so.4'), '');
  assert.equal(findTcmalloc([dir]), path.join(dir, 'libtcmalloc_minimal.so.4'));
  rmSync(dir, { recursive: true, force: true });
  assert.equal(withPreload(undefined, '/l/t.so'), '/l/t.so');
  assert.equal(withPreload('/a.so /b.so', '/l/t.so'), '/l/t.so:/a.so:/b.so');
  assert.equal(withPreload('/l/t.so', '/l/t.so'), '/l/t.so');
});
