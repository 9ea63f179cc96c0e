/**
 * BufferPool: reuse, the guards against double and foreign releases, and the idle trim that
 * gives write-part buffers back when a mount stops writing (fake timers and clock).
 */
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { BufferPool } from '../../src/fs/buffer-pool.js';

const KiB = 1024;

test('released buffers are reused; a second release or a foreign buffer is ignored', () => {
  const pool = new BufferPool(64 * KiB, 256 * KiB); // 4 slices per slab
  const a = pool.acquire();
  const b = pool.acquire();
  assert.equal(a.length, 64 * KiB);
  assert.equal(pool.reservedBytes, 256 * KiB, 'one slab for the first four buffers');
  pool.release(a);
  pool.release(a); // twice: would hand one buffer to two blocks
  pool.release(Buffer.alloc(64 * KiB)); // not the pool's
  assert.equal(pool.freeCount, 1);
  assert.equal(pool.acquire(), a, 'the released buffer comes back first');
  const c = pool.acquire();
  assert.notEqual(c, b);
  assert.notEqual(c, a, 'a buffer in use is never handed out twice');
  assert.equal(pool.freeCount, 0);
});

test('idle trim: free buffers beyond `keep` go only after `ms` without an acquire, and are never handed out again', () => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
  try {
    const pool = new BufferPool(64 * KiB, 64 * KiB, { idle: { keep: 1, ms: 1000 } }); // one buffer per slab
    const bufs = [pool.acquire(), pool.acquire(), pool.acquire()];
    for (const b of bufs) pool.release(b);
    assert.equal(pool.freeCount, 3);
    mock.timers.tick(600);
    // Busy again before the trim is due: it waits for a full idle period after this acquire.
    const again = pool.acquire();
    pool.release(again);
    mock.timers.tick(600);
    assert.equal(pool.freeCount, 3, 'not trimmed 600 ms after the last acquire');
    mock.timers.tick(1000);
    assert.equal(pool.freeCount, 1, 'trimmed to `keep` once idle for `ms`');
    const kept = pool.acquire();
    assert.ok(bufs.includes(kept), 'the kept buffer is one of ours');
    const fresh = pool.acquire();
    assert.ok(!bufs.includes(fresh), 'a trimmed buffer is never handed out again');
  } finally {
    mock.timers.reset();
  }
});
