/**
 * PresignedUrls (src/fs/presigned-urls.ts): download URLs of files read at the same time are
 * fetched in one POST /fileHandle/batch, and each batch renews the other URLs in use that are
 * past half their life, so files read together need a few requests a minute, not one per file
 * per URL lifetime.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PresignedUrls } from '../../src/fs/presigned-urls.js';
import type { BatchFileResult, FileHandleAssociation } from '../../src/synapse/types.js';

function fakeApi(opts: { deny?: Set<string> } = {}) {
  const calls: FileHandleAssociation[][] = [];
  let n = 0;
  return {
    calls,
    api: {
      async batchFileHandles(files: FileHandleAssociation[]): Promise<BatchFileResult[]> {
        calls.push(files);
        n++;
        return files.map((f) => opts.deny?.has(f.fileHandleId)
          ? { fileHandleId: f.fileHandleId, failureCode: 'UNAUTHORIZED' as const }
          : { fileHandleId: f.fileHandleId, preSignedURL: `https://s3.example/${f.fileHandleId}?call=${n}` });
      },
    },
  };
}

const file = (i: number) => ({ entityId: `syn${100 + i}`, fileHandleId: String(500 + i) });

test('URLs asked for in the same turn of the event loop come from one request', async () => {
  const { api, calls } = fakeApi();
  const urls = new PresignedUrls(api, 20_000);
  const got = await Promise.all([0, 1, 2, 3, 4].map((i) => urls.provider(file(i))(false)));
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.length, 5);
  assert.deepEqual(got, [0, 1, 2, 3, 4].map((i) => `https://s3.example/${500 + i}?call=1`));
  // Cached: no request until the URL is old or a reader forces a new one (a 403).
  assert.equal(await urls.provider(file(2))(false), 'https://s3.example/502?call=1');
  assert.equal(calls.length, 1);
  assert.equal(await urls.provider(file(2))(true), 'https://s3.example/502?call=2');
  assert.equal(calls.length, 2);
});

test('a batch renews the other URLs in use past half their life, so they renew together', async () => {
  let now = 0;
  const { api, calls } = fakeApi();
  const urls = new PresignedUrls(api, 20_000, () => now);
  const a = urls.provider(file(1));
  const b = urls.provider(file(2));
  const idle = urls.provider(file(3));
  await a(false); // t=0: a
  now = 6_000;
  await b(false); // t=6 s: b, its own request
  await idle(false);
  assert.equal(calls.length, 3, 'a, b and idle each asked in a turn of their own');
  now = 15_000;
  await b(false); // cached (age 9 s), but marks b as in use
  now = 21_000;
  await a(false); // a is 21 s old: a request, which also renews b (15 s old, read 6 s ago); idle was last read 15 s ago
  assert.equal(calls.length, 4);
  assert.deepEqual(calls[3]!.map((f) => f.fileHandleId).sort(), ['501', '502']);
  now = 27_000;
  assert.equal(await b(false), 'https://s3.example/502?call=4', 'b renewed with a: no request of its own');
  assert.equal(calls.length, 4);
});

test('a refused file fails alone (EACCES); more than 100 at once take two requests', async () => {
  const { api, calls } = fakeApi({ deny: new Set(['502']) });
  const urls = new PresignedUrls(api, 20_000);
  const results = await Promise.allSettled([1, 2, 3].map((i) => urls.provider(file(i))(false)));
  assert.equal(results[0]!.status, 'fulfilled');
  assert.equal(results[1]!.status, 'rejected');
  assert.equal((results[1] as PromiseRejectedResult).reason.errno, 'EACCES');
  assert.equal(results[2]!.status, 'fulfilled');
  assert.equal(calls.length, 1);
  calls.length = 0;
  const many = await Promise.all(Array.from({ length: 150 }, (_, i) => urls.provider(file(1000 + i))(false)));
  assert.equal(many.length, 150);
  assert.deepEqual(calls.map((c) => c.length), [100, 50]);
});

test('two opens of the same file share one URL', async () => {
  const { api, calls } = fakeApi();
  const urls = new PresignedUrls(api, 20_000);
  const [x, y] = await Promise.all([urls.provider(file(7))(false), urls.provider(file(7))(false)]);
  assert.equal(x, y);
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.length, 1);
});
