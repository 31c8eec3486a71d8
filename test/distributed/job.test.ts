// A rank's job identity: the launcher's token first, then the scheduler's job id; never the secret in messages.
import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { jobIdentity } from '../../src/distributed/job.js';
import { keyPrefix, publishedJobId } from '../../src/torch/distributed/rendezvous.js';

test('the launcher token wins, then Slurm (job and step), PMIx, Open MPI, torchrun; else none', () => {
  assert.equal(jobIdentity({ NANOGPT_RUN_TOKEN: 'abc', SLURM_JOB_ID: '7' }).source, 'NANOGPT_RUN_TOKEN');
  assert.deepEqual(jobIdentity({ SLURM_JOB_ID: '7', SLURM_STEP_ID: '2', PMIX_NAMESPACE: 'x' }), { secret: 'SLURM_JOB_ID=7\nSLURM_STEP_ID=2', source: 'SLURM_JOB_ID+SLURM_STEP_ID' });
  assert.equal(jobIdentity({ PMIX_NAMESPACE: 'prterun-h-1@1' }).source, 'PMIX_NAMESPACE');
  assert.equal(jobIdentity({ OMPI_MCA_ess_base_jobid: '42' }).source, 'OMPI_MCA_ess_base_jobid');
  assert.equal(jobIdentity({ TORCHELASTIC_RUN_ID: 'r1' }).source, 'TORCHELASTIC_RUN_ID');
  assert.equal(jobIdentity({}).secret, '');
});

test('what rank 0 publishes names the source, not the secret, and does not give away the key prefix', () => {
  const job = jobIdentity({ NANOGPT_RUN_TOKEN: 'f00dfeed' });
  const published = publishedJobId(job);
  assert.doesNotMatch(published, /f00dfeed/);
  assert.match(published, /NANOGPT_RUN_TOKEN/);
  const prefixHash = keyPrefix(job).split('/')[1]!;
  assert.ok(!published.includes(prefixHash));
  assert.notEqual(publishedJobId(jobIdentity({ NANOGPT_RUN_TOKEN: 'other' })), published);
  assert.notEqual(keyPrefix(jobIdentity({ NANOGPT_RUN_TOKEN: 'other' })), keyPrefix(job));
});
