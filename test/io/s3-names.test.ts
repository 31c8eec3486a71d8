import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { bucketNameProblem, checkBucketName } from '../../src/io/s3-names.js';
import { isUserError } from '../../src/util/errors.js';

test('valid S3 bucket names pass', () => {
  for (const name of ['abc', 'test-bucket', 'my.bucket.name', 'a1b2c3', '123bucket', 'x'.repeat(63)]) assert.equal(bucketNameProblem(name), undefined, name);
});

test('names that break the S3 rules are refused with the reason', () => {
  const cases: [string, RegExp][] = [
    ['../..', /contains '\/'/],
    ['ab', /2 characters long/],
    ['x'.repeat(64), /64 characters long/],
    ['My-Bucket', /contains 'M'/],
    ['my_bucket', /contains '_'/],
    ['-bucket', /start and end with a letter or digit/],
    ['bucket.', /start and end/],
    ['a..b', /two dots in a row/],
    ['192.168.5.4', /IP address/],
    ['xn--bucket', /prefix S3 reserves/],
    ['bucket-s3alias', /suffix S3 reserves/],
    ['', /0 characters long/],
  ];
  for (const [name, reason] of cases) assert.match(bucketNameProblem(name) ?? 'accepted', reason, JSON.stringify(name));
  assert.throws(
    () => checkBucketName('../..', '--bucket'),
    (err: Error) => isUserError(err) && /^--bucket: '\.\.\/\.\.' is not a valid S3 bucket name \(it contains '\/'\)\n {2}fix: give the bucket's name: bucket names are 3 to 63/.test(err.message),
  );
});
