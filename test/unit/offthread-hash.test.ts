import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac } from 'node:crypto';
import { OffThreadMd5, OffThreadSha256 } from '../../src/s3/offthread-hash.js';

const MiB = 1024 * 1024;

function sharedBytes(n: number, seed: number): Buffer {
  const b = Buffer.from(new SharedArrayBuffer(n));
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

test('OffThreadMd5: shared ranges (read in place) and plain buffers (copied) hash in posting order', async () => {
  const a = sharedBytes(3 * MiB + 5, 1);
  const plain = Buffer.from('between the shared ranges');
  const h = new OffThreadMd5();
  h.update(a.subarray(0, MiB));
  h.update(plain);
  h.update(a.subarray(MiB));
  await h.settled();
  a.fill(0); // read already: changing it now changes nothing
  const want = createHash('md5').update(sharedBytes(3 * MiB + 5, 1).subarray(0, MiB)).update(plain)
    .update(sharedBytes(3 * MiB + 5, 1).subarray(MiB)).digest('hex');
  assert.equal(await h.digest(), want);
  assert.equal(await new OffThreadMd5().digest(), 'd41d8cd98f00b204e9800998ecf8427e', 'empty stream');
});

test('OffThreadSha256 matches node:crypto for a large shared body, a small plain one, and as an HMAC', async () => {
  const big = sharedBytes(2 * MiB, 2);
  const s1 = new OffThreadSha256();
  s1.update(big);
  assert.equal(Buffer.from(await s1.digest()).toString('hex'), createHash('sha256').update(big).digest('hex'));
  const s2 = new OffThreadSha256();
  s2.update('AWS4-HMAC-SHA256\n20261201T000000Z', 'utf8');
  assert.equal(Buffer.from(await s2.digest()).toString('hex'), createHash('sha256').update('AWS4-HMAC-SHA256\n20261201T000000Z').digest('hex'));
  const s3 = new OffThreadSha256('key');
  s3.update(big);
  assert.equal(Buffer.from(await s3.digest()).toString('hex'), createHmac('sha256', 'key').update(big).digest('hex'));
});

test('a part whose signing lost the hash worker is retried, as S3 5xx are; a 4xx is not', async () => {
  const { isRetryablePartError, toS3Error } = await import('../../src/s3/aws-object-store.js');
  const { HashWorkerLost } = await import('../../src/s3/offthread-hash.js');
  const { S3Error } = await import('../../src/s3/object-store.js');
  assert.equal(isRetryablePartError(toS3Error(new HashWorkerLost('hash worker exited'), 'UploadPart')), true, 'as call() wraps it');
  assert.equal(isRetryablePartError(new S3Error('InternalError', 'x', 500)), true);
  assert.equal(isRetryablePartError(new S3Error('InvalidArgument', 'x', 400)), false);
});
