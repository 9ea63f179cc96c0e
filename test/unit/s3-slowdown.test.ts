/**
 * S3's 503 SlowDown asks for a slower pace; it is not a failure. A ranged GET (retry.ts GetTries)
 * and a part PUT to a presigned URL (publisher.ts putPart) do not count it toward their tries —
 * up to 3 × as many in all — while their backoff still grows with it; any other 5xx (or no answer)
 * still ends them after their tries (CI: at 30 % SlowDown, 6 tries lost one 5-part upload in
 * ≈ 280 runs, 8 tries one read of ≈ 100 in ≈ 150).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { GetTries, OutageMemory } from '../../src/s3/retry.js';
import { S3Error } from '../../src/s3/object-store.js';
import { Publisher } from '../../src/fs/publisher.js';
import type { SynapseApi } from '../../src/synapse/api.js';
import { CONCRETE } from '../../src/synapse/types.js';
import { errnoName } from '../../src/fs/errors.js';

test('a GET\'s SlowDowns do not use up its tries (up to 3 × as many), and its backoff grows with them; other 5xx still end it after its tries', () => {
  const slow = new GetTries(8, 'b', new OutageMemory());
  const slowDown = new S3Error('SlowDown', 'Please reduce your request rate.', 503);
  let allowed = 0;
  while (slow.another(slowDown)) allowed++;
  assert.equal(allowed, 23, '24 tries in all: the first and 23 more');
  assert.ok(slow.step >= 20, `backoff step ${slow.step}: grows with each SlowDown`);
  const down = new GetTries(8, 'b', new OutageMemory());
  const unavailable = new S3Error('ServiceUnavailable', 'down', 503);
  allowed = 0;
  while (down.another(unavailable)) allowed++;
  assert.equal(allowed, 7, '8 tries in all');
  // Mixed: SlowDowns between failures still leave the failures' count at 8.
  const mixed = new GetTries(8, 'b', new OutageMemory());
  let failures = 0;
  for (let i = 0; i < 100; i++) {
    const err = i % 2 === 0 ? slowDown : unavailable;
    if (err === unavailable) failures++;
    if (!mixed.another(err)) break;
  }
  assert.equal(failures, 8);
});

/** A presigned-URL endpoint that answers each part PUT from `answers` in turn (then 200). */
async function partServer(answers: Array<{ status: number; code: string }>): Promise<{ url: string; puts: () => number; close: () => Promise<void> }> {
  let puts = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const a = answers[puts++];
      if (!a) {
        res.writeHead(200, { ETag: '"x"' }).end();
        return;
      }
      res.writeHead(a.status, { 'Content-Type': 'application/xml' })
        .end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${a.code}</Code><Message>no</Message></Error>`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/bucket/key?part`,
    puts: () => puts,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

async function uploadOnePart(url: string): Promise<string> {
  const api = {
    getUploadDestination: async () => ({ concreteType: CONCRETE.s3UploadDestination, storageLocationId: 1, uploadType: 'S3' }),
    startMultipartUpload: async () => ({ uploadId: 'u1', state: 'UPLOADING', partsState: '0' }),
    getPartUploadUrls: async (_id: string, parts: number[]) => parts.map((partNumber) => ({ partNumber, uploadPresignedUrl: url, signedHeaders: {} })),
    addPart: async (uploadId: string, partNumber: number) => ({ uploadId, partNumber, addPartState: 'ADD_SUCCESS' }),
    completeMultipartUpload: async () => ({ uploadId: 'u1', state: 'COMPLETED', partsState: '1', resultFileHandleId: '77' }),
  } as unknown as SynapseApi;
  const publisher = new Publisher(api, () => { throw new Error('no object store here'); }, { userId: '1', partSize: 5 * 1024 * 1024, useSts: false, partRetryBaseMs: 1 });
  const dir = await mkdtemp(path.join(tmpdir(), 'slowdown-'));
  try {
    const file = path.join(dir, 'f.txt');
    const bytes = Buffer.from('part bytes\n');
    await writeFile(file, bytes);
    return await publisher.upload({ file, size: bytes.length, md5: createHash('md5').update(bytes).digest('hex') }, 'syn2', 'f.txt');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a part PUT answered SlowDown 10 times in a row is sent an 11th time and the upload completes; 6 other 503s end it (EIO)', async () => {
  const slow = await partServer(Array.from({ length: 10 }, () => ({ status: 503, code: 'SlowDown' })));
  try {
    assert.equal(await uploadOnePart(slow.url), '77');
    assert.equal(slow.puts(), 11);
  } finally {
    await slow.close();
  }
  const down = await partServer(Array.from({ length: 10 }, () => ({ status: 503, code: 'ServiceUnavailable' })));
  try {
    await assert.rejects(uploadOnePart(down.url), (err: unknown) => errnoName(err) === 'EIO' && /HTTP 503/.test(String(err)));
    assert.equal(down.puts(), 6, 'its 6 tries');
  } finally {
    await down.close();
  }
  const endless = await partServer(Array.from({ length: 40 }, () => ({ status: 503, code: 'SlowDown' })));
  try {
    await assert.rejects(uploadOnePart(endless.url), (err: unknown) => errnoName(err) === 'EIO');
    assert.equal(endless.puts(), 18, 'SlowDown for ever: 3 × 6 tries, then the close reports it');
  } finally {
    await endless.close();
  }
});
