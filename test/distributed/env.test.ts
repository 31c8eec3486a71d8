import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { discoverRank, expandSlurmNodeList, firstSlurmNode, parseSlurmTasksPerNode, type RankInfo } from '../../src/distributed/env.js';
import { UserError } from '../../src/util/errors.js';

type Env = Record<string, string>;

const cases: { name: string; env: Env; config?: { mainProcessIp?: string; mainProcessPort?: number }; want: Partial<RankInfo> }[] = [
  { name: 'no launcher: one rank', env: {}, want: { rank: 0, worldSize: 1, localRank: 0, localWorldSize: 1, source: 'single', masterAddr: '127.0.0.1', masterPort: 29500 } },
  {
    name: 'torchrun / nanogpt launch',
    env: { RANK: '3', WORLD_SIZE: '4', LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: '10.0.0.5', MASTER_PORT: '1234' },
    want: { rank: 3, worldSize: 4, localRank: 1, localWorldSize: 2, masterAddr: '10.0.0.5', masterPort: 1234, source: 'torchrun' },
  },
  {
    name: 'Kubernetes operator: no LOCAL_*, default port',
    env: { RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: 'job-master-0' },
    want: { rank: 1, worldSize: 2, localRank: 0, localWorldSize: 1, masterAddr: 'job-master-0', masterPort: 29500, source: 'torchrun' },
  },
  {
    name: 'Open MPI with MASTER_ADDR from -x',
    env: { OMPI_COMM_WORLD_RANK: '2', OMPI_COMM_WORLD_SIZE: '3', OMPI_COMM_WORLD_LOCAL_RANK: '0', OMPI_COMM_WORLD_LOCAL_SIZE: '1', MASTER_ADDR: 'node0', MASTER_PORT: '29511' },
    want: { rank: 2, worldSize: 3, localRank: 0, localWorldSize: 1, masterAddr: 'node0', masterPort: 29511, source: 'openmpi' },
  },
  {
    name: 'Open MPI with the address from the config (main_process_ip/port)',
    env: { OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '3', OMPI_COMM_WORLD_LOCAL_RANK: '1', OMPI_COMM_WORLD_LOCAL_SIZE: '3' },
    config: { mainProcessIp: '10.1.2.3', mainProcessPort: 29600 },
    want: { rank: 1, worldSize: 3, localRank: 1, localWorldSize: 3, masterAddr: '10.1.2.3', masterPort: 29600, source: 'openmpi' },
  },
  {
    name: 'the environment wins over the config',
    env: { OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2', MASTER_ADDR: '10.9.9.9', MASTER_PORT: '4000' },
    config: { mainProcessIp: '10.1.2.3', mainProcessPort: 29600 },
    want: { masterAddr: '10.9.9.9', masterPort: 4000, source: 'openmpi' },
  },
  {
    name: 'MPICH / Intel MPI (PMI)',
    env: { PMI_RANK: '5', PMI_SIZE: '8', MPI_LOCALRANKID: '1', MPI_LOCALNRANKS: '4', MASTER_ADDR: 'h0' },
    want: { rank: 5, worldSize: 8, localRank: 1, localWorldSize: 4, masterAddr: 'h0', masterPort: 29500, source: 'pmi' },
  },
  {
    name: 'PMI without local variables',
    env: { PMI_RANK: '0', PMI_SIZE: '2', MASTER_ADDR: 'h0' },
    want: { rank: 0, worldSize: 2, localRank: 0, localWorldSize: 1, source: 'pmi' },
  },
  {
    name: 'Slurm: master from the node list, port from the job id',
    env: { SLURM_PROCID: '4', SLURM_NTASKS: '6', SLURM_LOCALID: '1', SLURM_NODEID: '2', SLURM_TASKS_PER_NODE: '2(x3)', SLURM_JOB_NODELIST: 'node[07-09],gpu5', SLURM_JOB_ID: '123456' },
    want: { rank: 4, worldSize: 6, localRank: 1, localWorldSize: 2, masterAddr: 'node07', masterPort: 29500 + 456, source: 'slurm' },
  },
  {
    name: 'Slurm step variables win over the allocation',
    env: { SLURM_PROCID: '1', SLURM_NTASKS: '8', SLURM_STEP_NUM_TASKS: '2', SLURM_LOCALID: '0', SLURM_NODEID: '1', SLURM_STEP_TASKS_PER_NODE: '1(x2)', SLURM_STEP_NODELIST: 'a[1-2]', SLURM_JOB_NODELIST: 'z[1-9]' },
    want: { rank: 1, worldSize: 2, localRank: 0, localWorldSize: 1, masterAddr: 'a1', masterPort: 29500, source: 'slurm' },
  },
  {
    name: 'Slurm with MASTER_ADDR/PORT set explicitly',
    env: { SLURM_PROCID: '0', SLURM_NTASKS: '2', SLURM_JOB_NODELIST: 'n[1-2]', MASTER_ADDR: 'login1', MASTER_PORT: '5555', SLURM_JOB_ID: '7' },
    want: { masterAddr: 'login1', masterPort: 5555, source: 'slurm' },
  },
  {
    name: 'torchrun variables win over Open MPI ones (nanogpt launch inside an MPI job)',
    env: { RANK: '1', WORLD_SIZE: '2', MASTER_ADDR: '127.0.0.1', MASTER_PORT: '1', OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '1' },
    want: { rank: 1, worldSize: 2, source: 'torchrun' },
  },
  {
    name: 'Open MPI wins over Slurm (mpirun inside an allocation)',
    env: { OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '2', MASTER_ADDR: 'm', SLURM_PROCID: '0', SLURM_NTASKS: '1' },
    want: { rank: 1, worldSize: 2, source: 'openmpi' },
  },
  {
    name: 'a one-rank run needs no master address',
    env: { RANK: '0', WORLD_SIZE: '1' },
    want: { rank: 0, worldSize: 1, masterAddr: '127.0.0.1', masterPort: 29500, source: 'torchrun' },
  },
  {
    name: 'a one-task Slurm job',
    env: { SLURM_PROCID: '0', SLURM_NTASKS: '1' },
    want: { rank: 0, worldSize: 1, masterAddr: '127.0.0.1', source: 'slurm' },
  },
];

for (const c of cases) {
  test(`discoverRank: ${c.name}`, () => {
    const got = discoverRank(c.env, c.config);
    for (const [k, v] of Object.entries(c.want)) assert.equal(got[k as keyof RankInfo], v, `${k} in ${JSON.stringify(got)}`);
  });
}

const errors: { name: string; env: Env; config?: { mainProcessIp?: string; mainProcessPort?: number }; match: RegExp }[] = [
  { name: 'torchrun without MASTER_ADDR', env: { RANK: '0', WORLD_SIZE: '2' }, match: /MASTER_ADDR is not set[\s\S]*export MASTER_ADDR=[\s\S]*main_process_ip/ },
  { name: 'Open MPI without an address names -x', env: { OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '3' }, match: /OMPI_COMM_WORLD_RANK\/OMPI_COMM_WORLD_SIZE[\s\S]*-x MASTER_ADDR=/ },
  { name: 'PMI without an address', env: { PMI_RANK: '1', PMI_SIZE: '2' }, match: /rank 1 of 2 .*MASTER_ADDR is not set/ },
  { name: 'Slurm without a node list', env: { SLURM_PROCID: '1', SLURM_NTASKS: '2' }, match: /MASTER_ADDR is not set/ },
  { name: 'rank >= world size', env: { RANK: '2', WORLD_SIZE: '2', MASTER_ADDR: 'x' }, match: /RANK=2 is not below WORLD_SIZE=2/ },
  { name: 'Open MPI rank >= size', env: { OMPI_COMM_WORLD_RANK: '3', OMPI_COMM_WORLD_SIZE: '3', MASTER_ADDR: 'x' }, match: /OMPI_COMM_WORLD_RANK=3 is not below OMPI_COMM_WORLD_SIZE=3/ },
  { name: 'world size 0', env: { RANK: '0', WORLD_SIZE: '0' }, match: /WORLD_SIZE=0: a run needs at least one rank/ },
  { name: 'RANK without WORLD_SIZE', env: { RANK: '0' }, match: /RANK is set but WORLD_SIZE is not/ },
  { name: 'WORLD_SIZE without RANK', env: { WORLD_SIZE: '2' }, match: /WORLD_SIZE is set but RANK is not/ },
  { name: 'non-integer rank', env: { RANK: 'one', WORLD_SIZE: '2' }, match: /RANK="one" .* is not a non-negative integer/ },
  { name: 'negative world size', env: { RANK: '0', WORLD_SIZE: '-1' }, match: /WORLD_SIZE="-1"/ },
  { name: 'local rank outside the local world', env: { RANK: '0', WORLD_SIZE: '2', LOCAL_RANK: '2', LOCAL_WORLD_SIZE: '2', MASTER_ADDR: 'x' }, match: /local rank 2 of 2/ },
  { name: 'bad MASTER_PORT', env: { RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'x', MASTER_PORT: '70000' }, match: /MASTER_PORT=70000 is not a TCP port/ },
  { name: 'malformed MASTER_PORT', env: { RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'x', MASTER_PORT: 'http' }, match: /MASTER_PORT="http"/ },
  { name: 'bad Slurm node list', env: { SLURM_PROCID: '0', SLURM_NTASKS: '2', SLURM_JOB_NODELIST: 'node[01-' }, match: /bad Slurm node list/ },
];

for (const c of errors) {
  test(`discoverRank error: ${c.name}`, () => {
    assert.throws(
      () => discoverRank(c.env, c.config),
      (err: unknown) => err instanceof UserError && c.match.test(err.message),
    );
  });
}

test('Slurm node lists expand like `scontrol show hostnames`', () => {
  const table: [string, string[]][] = [
    ['node1', ['node1']],
    ['node[01-03,07],gpu5', ['node01', 'node02', 'node03', 'node07', 'gpu5']],
    ['a,b,c', ['a', 'b', 'c']],
    ['n[8-11]', ['n8', 'n9', 'n10', 'n11']],
    ['n[08-10]', ['n08', 'n09', 'n10']],
    ['rack[1-2]-n[1-2]', ['rack1-n1', 'rack1-n2', 'rack2-n1', 'rack2-n2']],
    ['x[3],y[1,5-6].cluster', ['x3', 'y1.cluster', 'y5.cluster', 'y6.cluster']],
    [' node[1-2] ', ['node1', 'node2']],
  ];
  for (const [list, want] of table) {
    assert.deepEqual(expandSlurmNodeList(list), want, list);
    assert.equal(firstSlurmNode(list), want[0], `first of ${list}`);
  }
  for (const bad of ['node[1-', 'node[a-b]', 'node[3-1]', 'n[1-2,]']) {
    assert.throws(() => expandSlurmNodeList(bad), UserError, bad);
  }
  // The first host is found without expanding a huge list.
  assert.equal(firstSlurmNode('big[000001-999999],other[1-999999]'), 'big000001');
});

test('SLURM_TASKS_PER_NODE syntax', () => {
  assert.deepEqual(parseSlurmTasksPerNode('2(x3),1'), [2, 2, 2, 1]);
  assert.deepEqual(parseSlurmTasksPerNode('4'), [4]);
  assert.deepEqual(parseSlurmTasksPerNode('1,3(x2)'), [1, 3, 3]);
  assert.throws(() => parseSlurmTasksPerNode('2x3'), UserError);
});
