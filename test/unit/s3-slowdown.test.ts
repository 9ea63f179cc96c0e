/**
 * S3's 503 SlowDown asks for a slower pace; it is not a failure. A ranged GET (retry.ts GetTries)
 * and a part PUT (publisher.ts putPart to a presigned URL; aws-object-store uploadPart) count it
 * as half a try — twice the tries under throttling, not more (each is one more request against a
 * bucket that asked for fewer) — while their backoff grows with it; any other 5xx (or no answer)
 * still ends them after their tries (CI: at 30 % SlowDown, 6 tries lost one 5-part upload in
 * ≈ 280 runs, 8 tries one read of ≈ 100 in ≈ 150). A part retried after a 5xx keeps its URL.
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

test('a GET\'s SlowDowns cost half a try each (twice the tries), and its backoff grows with them; other 5xx still end it after its tries', () => {
  const slow = new GetTries(8, 'b', new OutageMemory());
  const slowDown = new S3Error('SlowDown', 'Please reduce your request rate.', 503);
  let allowed = 0;
  const steps: number[] = [];
  while (slow.another(slowDown)) {
    allowed++;
    steps.push(slow.step);
  }
  assert.equal(allowed, 15, '16 tries in all: the first and 15 more');
  assert.deepEqual(steps.slice(0, 4), [0, 1, 2, 3], 'the backoff grows with each SlowDown');
  const down = new GetTries(8, 'b', new OutageMemory());
  const unavailable = new S3Error('ServiceUnavailable', 'down', 503);
  allowed = 0;
  while (down.another(unavailable)) allowed++;
  assert.equal(allowed, 7, '8 tries in all');
  // Mixed: SlowDown, failure, SlowDown, …: 5 failures and 6 SlowDowns make the 8 tries.
  const mixed = new GetTries(8, 'b', new OutageMemory());
  let tries = 1;
  while (mixed.another(tries % 2 === 1 ? slowDown : unavailable)) tries++;
  assert.equal(tries, 11);
});

/** A presigned-URL endpoint that answers each part PUT from `answers` in turn (then 200). */
async function partServer(answers: Array<{ status: number; code: string }>): Promise<{ url: string; puts: () => number; urlRequests: () => number; close: () => Promise<void> }> {
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
    urlRequests: () => urlRequests.n,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** getPartUploadUrls calls of the latest uploadOnePart. */
const urlRequests = { n: 0 };

async function uploadOnePart(url: string): Promise<string> {
  urlRequests.n = 0;
  const api = {
    getUploadDestination: async () => ({ concreteType: CONCRETE.s3UploadDestination, storageLocationId: 1, uploadType: 'S3' }),
    startMultipartUpload: async () => ({ uploadId: 'u1', state: 'UPLOADING', partsState: '0' }),
    getPartUploadUrls: async (_id: string, parts: number[]) => {
      urlRequests.n++;
      return parts.map((partNumber) => ({ partNumber, uploadPresignedUrl: url, signedHeaders: {} }));
    },
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

/** `check` against a part server answering `answers`, closed after, whatever happens. */
async function withPartServer(answers: Array<{ status: number; code: string }>, check: (server: Awaited<ReturnType<typeof partServer>>) => Promise<void>): Promise<void> {
  const server = await partServer(answers);
  try {
    await check(server);
  } finally {
    await server.close();
  }
}

const times = (n: number, status: number, code: string): Array<{ status: number; code: string }> => Array.from({ length: n }, () => ({ status, code }));

test('a part PUT: 10 SlowDowns in a row, then sent an 11th time, completes with the URL it had; 6 other 503s end it (EIO); SlowDown for ever, 12 tries; a 403 gets a fresh URL', async () => {
  await withPartServer(times(10, 503, 'SlowDown'), async (slow) => {
    assert.equal(await uploadOnePart(slow.url), '77');
    assert.equal(slow.puts(), 11);
    assert.equal(slow.urlRequests(), 1, 'one URL batch: a 503 says nothing against the URL');
  });
  await withPartServer(times(10, 503, 'ServiceUnavailable'), async (down) => {
    await assert.rejects(uploadOnePart(down.url), (err: unknown) => errnoName(err) === 'EIO' && /HTTP 503/.test(String(err)));
    assert.equal(down.puts(), 6, 'its 6 tries');
  });
  await withPartServer(times(40, 503, 'SlowDown'), async (endless) => {
    await assert.rejects(uploadOnePart(endless.url), (err: unknown) => errnoName(err) === 'EIO');
    assert.equal(endless.puts(), 12, 'SlowDown for ever: 6 tries at half a try each, then the close reports it');
  });
  await withPartServer(times(1, 403, 'AccessDenied'), async (expired) => {
    assert.equal(await uploadOnePart(expired.url), '77');
    assert.equal(expired.puts(), 2);
    assert.equal(expired.urlRequests(), 2, 'a fresh URL after the 403');
  });
});
