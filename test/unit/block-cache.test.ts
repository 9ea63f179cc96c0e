import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockCache } from '../../src/fs/block-cache.js';
import { ReadHandle } from '../../src/fs/read-handle.js';
import type { RangeSource } from '../../src/s3/object-store.js';

/** Deterministic bytes: byte i of the object is (i * 31 + 7) mod 251. */
function ramp(start: number, end: number): Buffer {
  const b = Buffer.allocUnsafe(end - start);
  for (let i = start; i < end; i++) b[i - start] = (i * 31 + 7) % 251;
  return b;
}

class FakeSource implements RangeSource {
  reads: Array<[number, number]> = [];
  gate: Promise<void> | undefined;
  failNext = 0;
  constructor(readonly cacheKey: string, readonly size: number) {}
  /** Per-block gates: reads of that block wait for it. */
  blockGates = new Map<number, Promise<void>>();
  async read(start: number, end: number, _signal?: AbortSignal, alloc?: (n: number) => Buffer): Promise<Buffer> {
    this.reads.push([start, end]);
    if (this.gate) await this.gate;
    const g = this.blockGates.get(start);
    if (g) await g;
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('injected failure');
    }
    const data = ramp(start, Math.min(end, this.size));
    if (!alloc) return data;
    const out = alloc(data.length);
    data.copy(out);
    return out;
  }
}

const KiB = 1024;

test('reads across block boundaries return the exact bytes', async () => {
  const cache = new BlockCache({ maxBytes: 1024 * KiB, blockSize: 64 * KiB });
  const src = new FakeSource('a', 300 * KiB + 5);
  for (const [off, len] of [[0, 10], [64 * KiB - 3, 10], [100, 200 * KiB], [300 * KiB, 100], [300 * KiB + 4, 10]] as const) {
    const got = await cache.read(src, off, len);
    assert.deepEqual(got, ramp(off, Math.min(off + len, src.size)), `offset ${off} length ${len}`);
  }
  assert.equal((await cache.read(src, src.size, 10)).length, 0, 'read at EOF is empty');
});

test('concurrent misses on one block share one fetch', async () => {
  const cache = new BlockCache({ maxBytes: 1024 * KiB, blockSize: 64 * KiB });
  const src = new FakeSource('b', 128 * KiB);
  let open!: () => void;
  src.gate = new Promise((r) => { open = r; });
  const reads = Array.from({ length: 8 }, (_, i) => cache.read(src, i * 100, 50));
  open();
  const results = await Promise.all(reads);
  results.forEach((r, i) => assert.deepEqual(r, ramp(i * 100, i * 100 + 50)));
  assert.equal(src.reads.length, 1);
});

test('the cache stays within its byte bound and refetches evicted blocks', async () => {
  const cache = new BlockCache({ maxBytes: 256 * KiB, blockSize: 64 * KiB });
  const src = new FakeSource('c', 1024 * KiB);
  for (let i = 0; i < 16; i++) await cache.read(src, i * 64 * KiB, 10);
  assert.ok(cache.cachedBytes <= 256 * KiB, `cached ${cache.cachedBytes}`);
  const before = src.reads.length;
  await cache.read(src, 0, 10);
  assert.equal(src.reads.length, before + 1, 'block 0 was evicted and fetched again');
});

test('a failed fetch is not cached; the next read retries', async () => {
  const cache = new BlockCache({ maxBytes: 256 * KiB, blockSize: 64 * KiB });
  const src = new FakeSource('d', 64 * KiB);
  src.failNext = 1;
  await assert.rejects(cache.read(src, 0, 10), /injected failure/);
  assert.deepEqual(await cache.read(src, 0, 10), ramp(0, 10));
});

test('different cache keys never share blocks (version identity)', async () => {
  const cache = new BlockCache({ maxBytes: 1024 * KiB, blockSize: 64 * KiB });
  const v1 = new FakeSource('fh1:etagA', 64 * KiB);
  const v2 = new FakeSource('fh1:etagB', 64 * KiB);
  await cache.read(v1, 0, 10);
  await cache.read(v2, 0, 10);
  assert.equal(v1.reads.length, 1);
  assert.equal(v2.reads.length, 1);
});

test('sequential reads grow the readahead window; a seek resets it', async () => {
  const bs = 64 * KiB;
  const cache = new BlockCache({ maxBytes: 64 * bs, blockSize: bs });
  const src = new FakeSource('e', 64 * bs);
  const h = new ReadHandle(src, cache, { maxWindowBlocks: 8, inflightBudget: 64 * bs, readTimeoutMs: 5000 });
  for (let off = 0; off < 4 * bs; off += 128 * KiB) {
    assert.deepEqual(await h.read(off, 128 * KiB), ramp(off, off + 128 * KiB));
  }
  await new Promise((r) => setImmediate(r));
  const fetchedBlocks = new Set(src.reads.map(([s]) => s / bs));
  assert.ok(fetchedBlocks.size > 4, `readahead fetched beyond what was read: ${[...fetchedBlocks].join(',')}`);
  assert.ok(Math.max(...fetchedBlocks) <= 3 + 8, 'window never exceeds its cap');

  // A random reader far away fetches only the block it touches.
  const before = src.reads.length;
  await h.read(50 * bs + 10, 100);
  await h.read(30 * bs + 10, 100);
  await new Promise((r) => setImmediate(r));
  const newBlocks = src.reads.slice(before).map(([s]) => s / bs);
  assert.deepEqual(newBlocks.sort((a, b) => a - b), [30, 50]);
});

test('readahead respects the in-flight budget', async () => {
  const bs = 64 * KiB;
  const cache = new BlockCache({ maxBytes: 64 * bs, blockSize: bs });
  const src = new FakeSource('f', 64 * bs);
  let open!: () => void;
  src.gate = new Promise((r) => { open = r; });
  const h = new ReadHandle(src, cache, { maxWindowBlocks: 32, inflightBudget: 2 * bs, readTimeoutMs: 5000 });
  const first = h.read(0, 100);
  assert.ok(cache.inflightBytes <= 3 * bs, `in flight ${cache.inflightBytes}`);
  open();
  await first;
});

test('a stalled read fails with EIO after the read timeout', async () => {
  const cache = new BlockCache({ maxBytes: 1024 * KiB, blockSize: 64 * KiB });
  const src = new FakeSource('g', 64 * KiB);
  src.gate = new Promise(() => undefined); // never resolves
  const h = new ReadHandle(src, cache, { maxWindowBlocks: 1, inflightBudget: KiB, readTimeoutMs: 100 });
  await assert.rejects(h.read(0, 10), (err: Error & { errno?: string }) => err.errno === 'EIO');
});

test('a pending fetch evicted by other blocks still answers its readers (no spurious EIO)', async () => {
  const bs = 64 * KiB;
  const cache = new BlockCache({ maxBytes: bs, blockSize: bs }); // room for one block only
  const src = new FakeSource('h', 16 * bs);
  let open!: () => void;
  src.gate = new Promise((r) => { open = r; });
  const reads = Array.from({ length: 16 }, (_, i) => cache.read(src, i * bs + 5, 100));
  for (let i = 0; i < 16; i++) cache.prefetch(src, (i + 3) % 16);
  open();
  const results = await Promise.all(reads);
  results.forEach((r, i) => assert.deepEqual(r, ramp(i * bs + 5, i * bs + 105), `block ${i}`));
});

test('pooled block buffers are never reused while a reader still copies from them', async () => {
  const bs = 64 * KiB;
  const cache = new BlockCache({ maxBytes: bs, blockSize: bs }); // one block: every fetch evicts
  const src = new FakeSource('pin', 8 * bs);
  let openB1!: () => void;
  src.blockGates.set(bs, new Promise((r) => { openB1 = r; }));
  const target = Buffer.alloc(2 * bs);
  // A read spanning blocks 0 and 1: block 0 arrives, block 1 is held back…
  const spanning = cache.readInto(src, 0, 2 * bs, target);
  await new Promise((r) => setTimeout(r, 10));
  // …meanwhile other blocks arrive, evicting block 0 and recycling buffers through the pool.
  for (let i = 2; i < 8; i++) assert.deepEqual(await cache.read(src, i * bs, bs), ramp(i * bs, (i + 1) * bs));
  openB1();
  assert.equal(await spanning, 2 * bs);
  assert.deepEqual(target, ramp(0, 2 * bs), 'block 0 was not overwritten while pinned');
});
