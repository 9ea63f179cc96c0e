/**
 * The S3 gate answers If-Match as S3 does (200 on the current ETag, 412 otherwise) while
 * remembering ETags between requests: every write through the gate — PUT, multipart completion,
 * DELETE — must make the next conditional GET see the new object, never a remembered ETag.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectCommand, GetObjectCommand,
  PutObjectCommand, S3Client, UploadPartCommand,
} from '@aws-sdk/client-s3';
import { EXTERNAL_BUCKET, startStack, type Stack } from '../server/stack.js';

let stack: Stack;
let s3: S3Client;
const Bucket = EXTERNAL_BUCKET;

before(async () => {
  stack = await startStack({ fixture: 'empty' });
  s3 = new S3Client({
    endpoint: stack.s3Endpoint, forcePathStyle: true, region: 'us-east-1',
    credentials: { accessKeyId: stack.s3AccessKeyId, secretAccessKey: stack.s3SecretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  });
});

after(async () => {
  s3?.destroy();
  await stack?.close();
});

async function status(Key: string, etag: string): Promise<number> {
  try {
    const r = await s3.send(new GetObjectCommand({ Bucket, Key, IfMatch: `"${etag}"`, Range: 'bytes=0-3' }));
    await r.Body?.transformToByteArray();
    return r.$metadata.httpStatusCode ?? 0;
  } catch (e) {
    return (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ?? -1;
  }
}

test('If-Match follows every write through the gate: PUT, multipart completion, DELETE', async () => {
  const Key = 'if-match/k.bin';
  const v1 = (await s3.send(new PutObjectCommand({ Bucket, Key, Body: Buffer.from('version one') }))).ETag!.replace(/"/g, '');
  assert.equal(await status(Key, v1), 206);
  assert.equal(await status(Key, v1), 206, 'asked twice (the second answer is the remembered ETag)');
  assert.equal(await status(Key, 'not-the-etag'), 412);

  const v2 = (await s3.send(new PutObjectCommand({ Bucket, Key, Body: Buffer.from('version two!') }))).ETag!.replace(/"/g, '');
  assert.notEqual(v2, v1);
  assert.equal(await status(Key, v1), 412, 'a replaced object fails the old ETag');
  assert.equal(await status(Key, v2), 206);

  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }));
  const part = await s3.send(new UploadPartCommand({ Bucket, Key, UploadId, PartNumber: 1, Body: Buffer.from('version three') }));
  const v3 = (await s3.send(new CompleteMultipartUploadCommand({
    Bucket, Key, UploadId, MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag! }] },
  }))).ETag!.replace(/"/g, '');
  assert.equal(await status(Key, v2), 412, 'a completed multipart upload replaces it too');
  assert.equal(await status(Key, v3), 206);

  await s3.send(new DeleteObjectCommand({ Bucket, Key }));
  assert.notEqual(await status(Key, v3), 206, 'a deleted object is gone');
});
