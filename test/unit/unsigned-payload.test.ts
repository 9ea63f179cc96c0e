/**
 * AwsObjectStore's upload bodies over HTTPS go as UNSIGNED-PAYLOAD (aws-object-store.ts): SigV4
 * signs the declared "UNSIGNED-PAYLOAD" instead of a SHA-256 of the body, which TLS makes
 * redundant. Over plain HTTP the body's SHA-256 stays (S3's only check of the bytes there). The
 * wire is read from a raw server; the signature's acceptance from the local S3's SigV4 gate.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AwsObjectStore, unsignedPayloadByDefault } from '../../src/s3/aws-object-store.js';
import { startStack, type Stack } from '../server/stack.js';
import { scripted } from './scripted-http.js';
import { makeTestCa } from '../test-ca.js';

const creds = { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' };
const BODY = Buffer.from('part bytes '.repeat(100));
const payloadHashOf = (head: string): string | undefined => /x-amz-content-sha256: *([^\r\n]+)/i.exec(head)?.[1];

test('by default HTTPS endpoints (and AWS itself) get UNSIGNED-PAYLOAD; plain HTTP keeps the payload hash', () => {
  assert.equal(unsignedPayloadByDefault(undefined), true);
  assert.equal(unsignedPayloadByDefault('https://s3.eu-west-2.amazonaws.com'), true);
  assert.equal(unsignedPayloadByDefault('https://127.0.0.1:9443'), true);
  assert.equal(unsignedPayloadByDefault('http://127.0.0.1:9000'), false);
});

test('on the wire: PutObject and UploadPart over HTTPS declare and sign UNSIGNED-PAYLOAD; over HTTP the body\'s SHA-256', async () => {
  const work = await mkdtemp(path.join(tmpdir(), 'unsigned-'));
  const ca = await makeTestCa(work, 'unsigned-payload test CA');
  await writeFile(path.join(work, 'ca.pem'), ca.caPem);
  const savedBundle = process.env['AWS_CA_BUNDLE'];
  process.env['AWS_CA_BUNDLE'] = path.join(work, 'ca.pem');
  // Every answer closes its connection: the raw server does not read request bodies.
  const ok = (_req: unknown, sock: import('node:net').Socket): void => {
    sock.end('HTTP/1.1 200 OK\r\nETag: "e1"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  };
  const tlsSrv = await scripted(ok, 0, { key: ca.keyPem, cert: ca.certPem });
  const plainSrv = await scripted(ok, 0);
  const loc = { bucket: 'bkt', key: 'dir/file.bin' };
  try {
    for (const [srv, expected] of [[tlsSrv, 'UNSIGNED-PAYLOAD'], [plainSrv, createHash('sha256').update(BODY).digest('hex')]] as const) {
      const store = new AwsObjectStore({ endpoint: srv.url, credentials: creds, maxAttempts: 1 });
      try {
        await store.putObject(loc, BODY);
        await store.uploadPart(loc, 'upload-1', 1, BODY);
      } finally {
        store.destroy();
      }
      const puts = srv.requests.filter((r) => r.head.startsWith('PUT '));
      assert.equal(puts.length, 2, srv.url);
      for (const r of puts) {
        assert.equal(payloadHashOf(r.head), expected, `${srv.url}: ${r.head.split('\r\n')[0]}`);
        assert.match(r.head, /SignedHeaders=[^,\r\n]*x-amz-content-sha256/i, 'the declared payload hash is signed');
      }
    }
  } finally {
    if (savedBundle === undefined) delete process.env['AWS_CA_BUNDLE'];
    else process.env['AWS_CA_BUNDLE'] = savedBundle;
    await tlsSrv.close();
    await plainSrv.close();
    await rm(work, { recursive: true, force: true });
  }
});

describe('an S3 that checks SigV4', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ fixture: 'sample' });
  });
  after(async () => stack.close());

  test('accepts an UNSIGNED-PAYLOAD multipart upload (forced on over HTTP here) and stores exactly its bytes', async () => {
    const store = new AwsObjectStore({
      endpoint: stack.s3Endpoint, credentials: { accessKeyId: stack.s3AccessKeyId, secretAccessKey: stack.s3SecretAccessKey }, unsignedPayload: true,
    });
    const loc = { bucket: stack.externalBucket, key: 'unsigned/two-parts.bin' };
    const first = Buffer.alloc(5 * 1024 * 1024, 7);
    const unsignedBefore = stack.dev.stats().s3.unsignedPayloadPuts;
    const completeBefore = stack.dev.stats().s3.completeSeconds;
    try {
      const uploadId = await store.createMultipartUpload(loc);
      const parts = [
        { partNumber: 1, etag: await store.uploadPart(loc, uploadId, 1, first) },
        { partNumber: 2, etag: await store.uploadPart(loc, uploadId, 2, BODY) },
      ];
      await store.completeMultipartUpload(loc, uploadId, parts);
      const size = first.length + BODY.length;
      const back = await store.getRange(loc, 0, size);
      assert.ok(back.data.equals(Buffer.concat([first, BODY])), 'the object holds the parts\' bytes');
      assert.equal(stack.dev.stats().s3.unsignedPayloadPuts - unsignedBefore, 2, 'both parts reached the gate as UNSIGNED-PAYLOAD');
      assert.ok(stack.dev.stats().s3.completeSeconds > completeBefore, 'the gate timed s3rver\'s CompleteMultipartUpload (bench diagnostics)');
    } finally {
      store.destroy();
    }
  });
});
