/**
 * entryBound (src/fs/lru-bound.ts): the same entry bound as lru-cache's `max`, without the
 * up-front arrays `max` allocates (≈ 50 MB of V8 heap for the mount's million-entry caches,
 * marked by every major GC of a reading mount).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import { LRUCache } from 'lru-cache';
import { entryBound } from '../../src/fs/lru-bound.js';

test('entryBound keeps at most N entries, evicting the least recently used', () => {
  const c = new LRUCache<string, number>({ ...entryBound(3), ttl: 60_000 });
  c.set('a', 1);
  c.set('b', 2);
  c.set('c', 3);
  c.get('a');
  c.set('d', 4);
  assert.equal(c.size, 3);
  assert.equal(c.has('b'), false, 'the least recently used entry went');
  assert.deepEqual([...c.keys()].sort(), ['a', 'c', 'd']);
});

test('a million-entry bound allocates nothing up front (max: would take ≥ 16 MB of heap)', () => {
  // Collect first, so a GC that other garbage sets off mid-measure cannot hide the growth.
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  const heap = (): number => {
    gc();
    return process.memoryUsage().heapUsed;
  };
  const before = heap();
  const bounded = new LRUCache<string, number>({ ...entryBound(1_000_000), ttl: 60_000 });
  const growth = heap() - before;
  // (the bounded cache is still in use below, so the GC in heap() cannot free what it holds)
  assert.ok(growth < 2 * 1024 * 1024, `heap grew ${growth} bytes`);
  // The comparison that makes the test able to fail: the preallocating form, measured the same way.
  const before2 = heap();
  const preallocated = new LRUCache<string, number>({ max: 1_000_000, ttl: 60_000 });
  assert.ok(heap() - before2 > 16 * 1024 * 1024, 'lru-cache preallocates for max (if this fails, entryBound may be unneeded)');
  bounded.set('x', 1);
  preallocated.set('x', 1);
});
