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

test('a reader who asks while a renewal of its file is in flight is answered by its own request, whatever the renewal does', async () => {
  let now = 0;
  const pending: Array<{ files: FileHandleAssociation[]; resolve: (r: BatchFileResult[]) => void; reject: (e: unknown) => void }> = [];
  const api = {
    batchFileHandles: (files: FileHandleAssociation[]) => new Promise<BatchFileResult[]>((resolve, reject) => pending.push({ files, resolve, reject })),
  };
  const answer = (i: number, tag: string): void => pending[i]!.resolve(pending[i]!.files.map((f) => ({ fileHandleId: f.fileHandleId, preSignedURL: `u-${f.fileHandleId}-${tag}` })));
  const urls = new PresignedUrls(api, 20_000, () => now);
  const a = urls.provider(file(1));
  const b = urls.provider(file(2));
  const first = Promise.all([a(false), b(false)]);
  await new Promise((r) => setImmediate(r));
  answer(0, 'first');
  await first;
  now = 12_000;
  await b(false); // b in use; both URLs past half their life
  now = 21_000;
  const aNew = a(false); // batch 1: a (asked) + b (unasked renewal), left pending
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(pending[1]!.files.map((f) => f.fileHandleId).sort(), ['501', '502']);
  const bForced = b(true); // b's reader got a 403 while batch 1 is in flight
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(pending[2]!.files.map((f) => f.fileHandleId), ['502'], 'b goes again, in its own request');
  pending[1]!.reject(new Error('Synapse 503'));
  await assert.rejects(aNew, /503/, 'a asked in batch 1: it hears of the failure');
  answer(2, 'forced');
  assert.equal(await bForced, 'u-502-forced', "batch 1's failure never reached b's reader");
});

test('an unasked renewal answered after a newer request never replaces the newer URL', async () => {
  let now = 0;
  const pending: Array<{ files: FileHandleAssociation[]; resolve: (r: BatchFileResult[]) => void }> = [];
  const api = {
    batchFileHandles: (files: FileHandleAssociation[]) => new Promise<BatchFileResult[]>((resolve) => pending.push({ files, resolve })),
  };
  const answer = (i: number, tag: string): void => pending[i]!.resolve(pending[i]!.files.map((f) => ({ fileHandleId: f.fileHandleId, preSignedURL: `u-${f.fileHandleId}-${tag}` })));
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
  const urls = new PresignedUrls(api, 20_000, () => now);
  const a = urls.provider(file(1));
  const b = urls.provider(file(2));
  const first = a(false);
  await turn();
  answer(0, 'first');
  await first;
  now = 11_000;
  await a(false); // cached; a is in use and past half its life
  now = 12_000;
  const bFirst = b(false); // batch 1: b (asked) + a (unasked renewal, sent at 12 s), left pending
  await turn();
  assert.deepEqual(pending[1]!.files.map((f) => f.fileHandleId).sort(), ['501', '502']);
  now = 13_000;
  const aForced = a(true); // a's reader met a 403: batch 2, sent at 13 s, answered first
  await turn();
  answer(2, 'newer');
  assert.equal(await aForced, 'u-501-newer');
  answer(1, 'older');
  assert.equal(await bFirst, 'u-502-older');
  assert.equal(await a(false), 'u-501-newer', "the renewal sent at 12 s did not replace the URL of 13 s");
  assert.equal(pending.length, 3, 'no request for the cached answer');
});

test('files not read for three URL lifetimes are forgotten, and never renewed', async () => {
  let now = 0;
  const { api, calls } = fakeApi();
  const urls = new PresignedUrls(api, 20_000, () => now);
  await Promise.all([1, 2, 3].map((i) => urls.provider(file(i))(false)));
  assert.equal(urls.size, 3);
  now = 50_000;
  await urls.provider(file(1))(false); // 1 read again (a request: its URL is old)
  now = 55_000;
  await urls.provider(file(1))(false); // and again (cached)
  now = 61_000;
  await urls.provider(file(4))(false); // a batch after 2 and 3 went unread for > 60 s
  assert.equal(urls.size, 2, 'only the files read lately are kept');
  assert.deepEqual(calls.at(-1)!.map((f) => f.fileHandleId).sort(), ['501', '504'], '1 renewed with 4; 2 and 3 not');
});

test("a range source hands the URL provider's refusal to the reader at once (EACCES stays EACCES, no retries)", async () => {
  const { PresignedRangeSource } = await import('../../src/s3/presigned-store.js');
  const { FsError } = await import('../../src/fs/errors.js');
  let asked = 0;
  const source = new PresignedRangeSource('k', 1000, async () => {
    asked++;
    throw new FsError('EACCES', 'syn101: no download URL (UNAUTHORIZED)');
  });
  await assert.rejects(source.read(0, 100), (err: unknown) => (err as { errno?: string }).errno === 'EACCES');
  assert.equal(asked, 1, 'no retry of a refusal');
});

test('a file deleted (or unshared) after its open: the URL in hand serves until S3 refuses it; then ESTALE for a deleted file, EACCES for an unshared one', async () => {
  for (const deleted of [true, false]) {
    let now = 0;
    const deny = new Set<string>();
    const { api, calls } = fakeApi({ deny });
    const urls = new PresignedUrls({
      ...api,
      async getEntity(id: string) {
        if (deleted) throw Object.assign(new Error(`Entity ${id} is in trash can.`), { status: 404 });
        return { id } as never;
      },
    }, 20_000, () => now);
    const url = urls.provider(file(1));
    const first = await url(false);
    deny.add('501'); // QA: another client's `rm` while a reader had the file open
    now = 25_000;
    assert.equal(await url(false), first, 'the renewal refused: the URL in hand, not an error');
    const asked = calls.length;
    now = 30_000;
    assert.equal(await url(false), first);
    assert.equal(calls.length, asked, 'not asked again at every read after a refusal');
    // S3 refused that URL (it expired): the forced renewal fails the read, saying why.
    await assert.rejects(url(true), (err: unknown) => (err as { errno?: string }).errno === (deleted ? 'ESTALE' : 'EACCES'));
    // …and the refused URL is never handed out again (review): the next read asks, and hears the same.
    await assert.rejects(url(false), (err: unknown) => (err as { errno?: string }).errno === (deleted ? 'ESTALE' : 'EACCES'));
  }
});
