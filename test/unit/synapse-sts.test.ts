/**
 * StsCredentialCache with a fake fetcher and a fake clock: single flight, refresh before expiry
 * (5 min for 1-hour tokens, half the lifetime for short ones), invalidate, LRU bound, errors not
 * cached, and the AWS-SDK-shaped provider.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { StsCredentialCache } from '../../src/synapse/sts.js';
import type { StsCredentials, StsPermission } from '../../src/synapse/types.js';

const HOUR = 3_600_000;
const T0 = Date.parse('2026-01-01T00:00:00.000Z');

/** A fetcher whose calls are recorded and each resolved by hand (or at once with `auto`). */
function fakeFetcher(clock: { now: number }, lifetimeMs: number, auto = true) {
  const calls: Array<{ entityId: string; permission: StsPermission }> = [];
  const pending: Array<{ resolve: (c: StsCredentials) => void; reject: (e: unknown) => void }> = [];
  let n = 0;
  const make = (): StsCredentials => {
    n++;
    return {
      bucket: 'b',
      baseKey: 'k',
      accessKeyId: `AK${n}`,
      secretAccessKey: `SK${n}`,
      sessionToken: `ST${n}`,
      expiration: new Date(clock.now + lifetimeMs).toISOString(),
    };
  };
  const fetch = (entityId: string, permission: StsPermission): Promise<StsCredentials> => {
    calls.push({ entityId, permission });
    if (auto) return Promise.resolve(make());
    return new Promise((resolve, reject) => pending.push({ resolve, reject }));
  };
  return { fetch, calls, pending, make };
}

test('concurrent gets of one key share a single fetch', async () => {
  const clock = { now: T0 };
  const f = fakeFetcher(clock, HOUR, false);
  const cache = new StsCredentialCache({ fetch: f.fetch, now: () => clock.now });
  const a = cache.get('sl:1', 'syn1', 'read_only');
  const b = cache.get('sl:1', 'syn2', 'read_only');
  assert.equal(f.calls.length, 1);
  assert.equal(cache.stats().inFlight, 1);
  f.pending[0]!.resolve(f.make());
  const [ca, cb] = await Promise.all([a, b]);
  assert.equal(ca, cb);
  assert.equal(cache.stats().inFlight, 0);
  // A different permission is a different key.
  const c = cache.get('sl:1', 'syn1', 'read_write');
  assert.equal(f.calls.length, 2);
  assert.deepEqual(f.calls[1], { entityId: 'syn1', permission: 'read_write' });
  f.pending[1]!.resolve(f.make());
  assert.equal((await c).accessKeyId, 'AK2');
});

test('1-hour token is served until 5 minutes remain, then refreshed', async () => {
  const clock = { now: T0 };
  const f = fakeFetcher(clock, HOUR);
  const cache = new StsCredentialCache({ fetch: f.fetch, now: () => clock.now });
  assert.equal((await cache.get('sl:1', 'syn1', 'read_only')).accessKeyId, 'AK1');
  clock.now = T0 + HOUR - 5 * 60_000 - 1; // 5 min + 1 ms left: still good
  assert.equal((await cache.get('sl:1', 'syn1', 'read_only')).accessKeyId, 'AK1');
  assert.equal(f.calls.length, 1);
  clock.now = T0 + HOUR - 5 * 60_000; // exactly 5 min left: refresh
  assert.equal((await cache.get('sl:1', 'syn1', 'read_only')).accessKeyId, 'AK2');
  assert.equal(f.calls.length, 2);
});

test('a 2-second token is refreshed at 1 s left (half the lifetime), not on every call', async () => {
  const clock = { now: T0 };
  const f = fakeFetcher(clock, 2000);
  const cache = new StsCredentialCache({ fetch: f.fetch, now: () => clock.now });
  await cache.get('sl:1', 'syn1', 'read_write');
  clock.now = T0 + 999;
  assert.equal((await cache.get('sl:1', 'syn1', 'read_write')).accessKeyId, 'AK1');
  assert.equal(f.calls.length, 1);
  clock.now = T0 + 1000;
  assert.equal((await cache.get('sl:1', 'syn1', 'read_write')).accessKeyId, 'AK2');
});

test('invalidate forces a new fetch; other permission untouched unless omitted', async () => {
  const clock = { now: T0 };
  const f = fakeFetcher(clock, HOUR);
  const cache = new StsCredentialCache({ fetch: f.fetch, now: () => clock.now });
  await cache.get('sl:1', 'syn1', 'read_only');
  await cache.get('sl:1', 'syn1', 'read_write');
  cache.invalidate('sl:1', 'read_only');
  assert.equal((await cache.get('sl:1', 'syn1', 'read_only')).accessKeyId, 'AK3');
  assert.equal((await cache.get('sl:1', 'syn1', 'read_write')).accessKeyId, 'AK2');
  cache.invalidate('sl:1');
  await cache.get('sl:1', 'syn1', 'read_only');
  await cache.get('sl:1', 'syn1', 'read_write');
  assert.equal(f.calls.length, 5);
});

test('errors are not cached and reach every waiter of the flight', async () => {
  const clock = { now: T0 };
  const f = fakeFetcher(clock, HOUR, false);
  const cache = new StsCredentialCache({ fetch: f.fetch, now: () => clock.now });
  const a = cache.get('sl:1', 'syn1', 'read_only');
  const b = cache.get('sl:1', 'syn1', 'read_only');
  f.pending[0]!.reject(new Error('403 forbidden'));
  await assert.rejects(a, /403/);
  await assert.rejects(b, /403/);
  assert.equal(cache.stats().entries, 0);
  assert.equal(cache.stats().inFlight, 0);
  const c = cache.get('sl:1', 'syn1', 'read_only');
  assert.equal(f.calls.length, 2);
  f.pending[1]!.resolve(f.make());
  assert.equal((await c).accessKeyId, 'AK1');
});

test('an unparseable expiration is an error, not a cached entry', async () => {
  const cache = new StsCredentialCache({
    fetch: async () => ({ bucket: 'b', accessKeyId: 'a', secretAccessKey: 's', sessionToken: 't', expiration: 'soon' }),
  });
  await assert.rejects(cache.get('k', 'syn1', 'read_only'), /unparseable expiration/);
  assert.equal(cache.stats().entries, 0);
});

test('LRU bound: least recently used scope is evicted', async () => {
  const clock = { now: T0 };
  const f = fakeFetcher(clock, HOUR);
  const cache = new StsCredentialCache({ fetch: f.fetch, now: () => clock.now, maxEntries: 3 });
  for (const k of ['a', 'b', 'c']) await cache.get(k, 'syn1', 'read_only');
  await cache.get('a', 'syn1', 'read_only'); // a is now most recent
  await cache.get('d', 'syn1', 'read_only'); // evicts b
  assert.equal(cache.stats().entries, 3);
  assert.equal(f.calls.length, 4);
  await cache.get('a', 'syn1', 'read_only');
  await cache.get('c', 'syn1', 'read_only');
  assert.equal(f.calls.length, 4, 'a and c still cached');
  await cache.get('b', 'syn1', 'read_only');
  assert.equal(f.calls.length, 5, 'b was evicted');
});

test('default bound is 100 entries', async () => {
  const clock = { now: T0 };
  const f = fakeFetcher(clock, HOUR);
  const cache = new StsCredentialCache({ fetch: f.fetch, now: () => clock.now });
  for (let i = 0; i < 150; i++) await cache.get(`sl:${i}`, 'syn1', 'read_only');
  assert.equal(cache.stats().entries, 100);
});

test('credentialProvider returns the AWS SDK shape with a Date expiration, through the cache', async () => {
  const clock = { now: T0 };
  const f = fakeFetcher(clock, HOUR);
  const cache = new StsCredentialCache({ fetch: f.fetch, now: () => clock.now });
  const provider = cache.credentialProvider('syn9', 'read_only', 'sl:7');
  const c1 = await provider();
  assert.deepEqual(c1, { accessKeyId: 'AK1', secretAccessKey: 'SK1', sessionToken: 'ST1', expiration: new Date(T0 + HOUR) });
  assert.ok(c1.expiration instanceof Date);
  await provider();
  assert.equal(f.calls.length, 1);
  assert.deepEqual(f.calls[0], { entityId: 'syn9', permission: 'read_only' });
  // Shares the scope with direct gets.
  assert.equal((await cache.get('sl:7', 'synOther', 'read_only')).accessKeyId, 'AK1');
  // Without a scope key the entity id is the scope.
  await cache.credentialProvider('syn10', 'read_only')();
  assert.equal(f.calls.length, 2);
  assert.equal((await cache.get('syn10', 'syn10', 'read_only')).accessKeyId, 'AK2');
});
