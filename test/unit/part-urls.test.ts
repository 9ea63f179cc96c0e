/**
 * PartUrls (part-urls.ts): presigned part URLs asked for in batches of the parts next in line,
 * each used once and only while young; a retry asks for its own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PART_URL_BATCH, PartUrls } from '../../src/fs/part-urls.js';
import type { PartPresignedUrl } from '../../src/synapse/types.js';

function fakeApi(): { asked: number[][]; api: { getPartUploadUrls: (id: string, parts: number[]) => Promise<PartPresignedUrl[]> } } {
  const asked: number[][] = [];
  let serial = 0;
  return {
    asked,
    api: {
      getPartUploadUrls: async (id, parts) => {
        asked.push([...parts]);
        serial++;
        return parts.map((p) => ({ partNumber: p, uploadPresignedUrl: `https://s3/${id}/${p}?sig=${serial}` }));
      },
    },
  };
}

test('one request per batch of parts in line, not one per part; each URL once', async () => {
  const { asked, api } = fakeApi();
  const order = Array.from({ length: 40 }, (_, i) => i + 1);
  const urls = new PartUrls(api, 'up1', order);
  const got = await Promise.all(order.slice(0, 4).map((n) => urls.get(n))); // 4 parts in flight at once
  assert.deepEqual(got.map((u) => u.partNumber), [1, 2, 3, 4]);
  for (let n = 5; n <= 40; n++) assert.equal((await urls.get(n)).partNumber, n);
  assert.deepEqual(asked.map((a) => a.length), [PART_URL_BATCH, PART_URL_BATCH, 40 - 2 * PART_URL_BATCH]);
  assert.deepEqual(asked.flat(), order, 'every part asked for once, in order');
  assert.equal((await urls.get(3)).uploadPresignedUrl.includes('sig=4'), true, 'a used URL is not handed out again');
});

test('a retry (the URL was refused) asks for that part alone; an old URL is asked for again', async () => {
  const { asked, api } = fakeApi();
  let now = 0;
  const urls = new PartUrls(api, 'up2', [1, 2, 3], () => now);
  await urls.get(1);
  assert.deepEqual(asked, [[1, 2, 3]]);
  const again = await urls.get(1, true);
  assert.deepEqual(asked[1], [1]);
  assert.match(again.uploadPresignedUrl, /sig=2/);
  now = 6 * 60_000; // part 2's URL waited past its useful age
  await urls.get(2);
  assert.deepEqual(asked[2], [2, 3], 'asked again (with what follows it)');
});

test('parts asking out of order (read from disk in parallel: part 3 first) still share one batch (CI: 2 batches for a 3-part upload)', async () => {
  const { asked, api } = fakeApi();
  const urls = new PartUrls(api, 'up3', [1, 2, 3]);
  assert.equal((await urls.get(3)).partNumber, 3);
  assert.equal((await urls.get(1)).partNumber, 1);
  assert.equal((await urls.get(2)).partNumber, 2);
  assert.deepEqual(asked, [[3, 1, 2]], 'one request');
  // Sent parts are not asked for again by a later batch; a retry asks for its own.
  assert.equal((await urls.get(2, true)).partNumber, 2);
  assert.deepEqual(asked, [[3, 1, 2], [2]]);
});
