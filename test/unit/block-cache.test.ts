import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockCache, type BlockId, type BlockStore } from '../../src/fs/block-cache.js';
import { MAX_HELD_BACK_MS, ReadHandle } from '../../src/fs/read-handle.js';
import { readOpTimeoutMs } from '../../src/fs/fuse-adapter.js';
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

test('the window ramps 4-fold: four blocks ahead at the first read (or the second, after a small first one), the cap of eight from the next block on', async () => {
  const bs = 64 * KiB;
  const cache = new BlockCache({ maxBytes: 64 * bs, blockSize: bs });
  const src = new FakeSource('ramp', 64 * bs);
  const h = new ReadHandle(src, cache, { maxWindowBlocks: 8, inflightBudget: 64 * bs, readTimeoutMs: 5000 });
  const fetched = async (): Promise<number[]> => {
    await new Promise((r) => setImmediate(r));
    return [...new Set(src.reads.map(([start]) => start / bs))].sort((a, b) => a - b);
  };
  await h.read(0, 4 * KiB);
  assert.deepEqual(await fetched(), [0], 'a small first read (a header: `head -c`, `file`): its block only (QA: 40 MiB for 100 bytes)');
  await h.read(4 * KiB, 4 * KiB);
  assert.deepEqual(await fetched(), [0, 1, 2, 3, 4], 'a second read: four blocks of readahead');
  await h.read(bs, 4 * KiB);
  assert.deepEqual(await fetched(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'block 1 entered: the cap of eight ahead');
  await h.read(2 * bs, 4 * KiB);
  assert.deepEqual(await fetched(), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'and it stays there');

  // A run that begins at a seek (a random reader moving forward) doubles from 1 instead.
  const r = new FakeSource('seek', 64 * bs);
  const g = new ReadHandle(r, cache, { maxWindowBlocks: 8, inflightBudget: 64 * bs, readTimeoutMs: 5000 });
  const got = async (): Promise<number[]> => {
    await new Promise((res) => setImmediate(res));
    return [...new Set(r.reads.map(([start]) => start / bs))].sort((a, b) => a - b);
  };
  await g.read(20 * bs, 4 * KiB);
  assert.deepEqual(await got(), [20], 'a seek: only the block touched');
  await g.read(21 * bs, 4 * KiB);
  assert.deepEqual(await got(), [20, 21], 'the run\'s first read: its block, nothing ahead yet (a read split in two is no run)');
  await g.read(22 * bs, 4 * KiB);
  assert.deepEqual(await got(), [20, 21, 22, 23, 24], 'then two blocks ahead (the window grew at that first read)');
  await g.read(23 * bs, 4 * KiB);
  assert.deepEqual(await got(), [20, 21, 22, 23, 24, 25, 26, 27], 'then four');
});

test('blocks prefetched for readers that stopped give the readahead budget back once stale: header readers cannot switch readahead off', async () => {
  mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  try {
    const bs = 64 * KiB;
    const cache = new BlockCache({ maxBytes: 64 * bs, blockSize: bs });
    const opts = { maxWindowBlocks: 8, inflightBudget: 8 * bs, readTimeoutMs: 5000 };
    const settle = (): Promise<void> => new Promise((r) => setImmediate(r));
    // Two readers of only a file's first bytes (`head`, `file`): their readahead fills the budget.
    for (const name of ['h1', 'h2']) {
      await new ReadHandle(new FakeSource(name, 64 * bs), cache, opts).read(0, 32 * KiB); // a streamer's first read, not a header's
      await settle();
    }
    assert.equal(cache.readaheadInUse(), 8 * bs, 'the budget is full of blocks nobody reads');
    mock.timers.tick(6_000); // nobody came for them
    assert.equal(cache.readaheadInUse(), 0, 'stale staged blocks left the budget');
    // A reader that closes its file gives the budget back at once.
    const closing = new ReadHandle(new FakeSource('h3', 64 * bs), cache, opts);
    await closing.read(0, 32 * KiB);
    await settle();
    assert.ok(cache.readaheadInUse() > 0);
    closing.close();
    assert.equal(cache.readaheadInUse(), 0, 'closed: its staged blocks no longer count as readahead');
    assert.ok(cache.has(new FakeSource('h3', 64 * bs), 1), 'and they stay cached');
    // Prefetches still in flight when the file closes leave the budget as they land.
    const slow = new FakeSource('h4', 64 * bs);
    let open!: () => void;
    const gate = new Promise<void>((r) => { open = r; });
    for (let i = 1; i <= 4; i++) slow.blockGates.set(i * bs, gate);
    const inFlight = new ReadHandle(slow, cache, opts);
    await inFlight.read(0, 32 * KiB);
    assert.ok(cache.readaheadInUse() > 0, 'its prefetches are in flight');
    inFlight.close();
    open();
    await settle();
    await settle();
    assert.equal(cache.readaheadInUse(), 0, 'landed after the close: not staged');
    assert.ok(cache.has(slow, 1), 'but cached');
    const src = new FakeSource('scan', 64 * bs);
    const h = new ReadHandle(src, cache, opts);
    await h.read(0, 4 * KiB);
    await h.read(bs, 4 * KiB);
    await settle();
    const fetched = new Set(src.reads.map(([start]) => start / bs));
    assert.ok(fetched.size > 2, `a later sequential reader gets readahead again (fetched ${[...fetched].join(',')})`);
  } finally {
    mock.timers.reset();
  }
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

test('prefetched blocks wait for their reader: other traffic does not evict them', async () => {
  const bs = 64 * KiB;
  const cache = new BlockCache({ maxBytes: 2 * bs, probationBytes: bs, blockSize: bs });
  const src = new FakeSource('staged', 64 * bs);
  for (let i = 1; i <= 4; i++) cache.prefetch(src, i);
  await new Promise((r) => setImmediate(r));
  assert.equal(cache.readaheadInUse(), 4 * bs, 'four blocks staged');
  // Twenty other blocks go through a main LRU of two.
  for (let i = 20; i < 40; i++) await cache.read(src, i * bs, 10);
  const before = src.reads.length;
  for (let i = 1; i <= 4; i++) assert.deepEqual(await cache.read(src, i * bs, 100), ramp(i * bs, i * bs + 100));
  assert.equal(src.reads.length, before, 'no prefetched block was fetched twice');
  assert.equal(cache.readaheadInUse(), 0, 'reading them consumed the readahead');
});

test('a long sequential scan does not flush the cache, and a file read twice is kept', async () => {
  const bs = 64 * KiB;
  const cache = new BlockCache({ maxBytes: 8 * bs, probationBytes: 2 * bs, blockSize: bs });
  const hot = new FakeSource('hot', 4 * bs);
  for (let i = 0; i < 4; i++) await cache.read(hot, i * bs, 10); // the working set: 4 blocks
  const big = new FakeSource('scan', 32 * bs);
  const opts = { maxWindowBlocks: 4, inflightBudget: 4 * bs, readTimeoutMs: 5000, streamAfterBytes: 2 * bs };
  const scan = async (): Promise<void> => {
    const h = new ReadHandle(big, cache, opts);
    for (let off = 0; off < big.size; off += 32 * KiB) assert.deepEqual(await h.read(off, 32 * KiB), ramp(off, off + 32 * KiB));
  };
  await scan();
  const hotReads = hot.reads.length;
  for (let i = 0; i < 4; i++) await cache.read(hot, i * bs, 10);
  assert.equal(hot.reads.length, hotReads, 'the working set survived a scan 4× the cache');
  assert.ok(cache.cachedBytes <= (8 + 2 + 4) * bs, `held ${cache.cachedBytes / bs} blocks`);

  await scan(); // read again: remembered keys bring its blocks into the main cache…
  const second = big.reads.length;
  const h = new ReadHandle(big, cache, opts);
  for (let off = 28 * bs; off < 32 * bs; off += 32 * KiB) await h.read(off, 32 * KiB);
  await new Promise((r) => setImmediate(r));
  // …as far as it holds (8 blocks): the end of the file is read a third time from memory.
  assert.equal(big.reads.length - second, 0, 'blocks 28–31 were cached');
});

test('the buffer pool carves distinct slices from slabs and takes each back once', async () => {
  const { BufferPool } = await import('../../src/fs/buffer-pool.js');
  const pool = new BufferPool(64 * KiB, 256 * KiB); // 4 slices per slab
  const got = Array.from({ length: 6 }, () => pool.acquire());
  assert.equal(pool.reservedBytes, 512 * KiB, 'two slabs for six buffers');
  got.forEach((b, i) => b.fill(i));
  got.forEach((b, i) => assert.ok(b.every((x) => x === i), `slice ${i} shares memory with another`));
  pool.release(got[0]!);
  pool.release(got[0]!); // a double release must not hand one buffer to two blocks
  pool.release(Buffer.alloc(64 * KiB)); // not ours
  assert.equal(pool.freeCount, 1);
  assert.equal(pool.acquire(), got[0]);
  assert.notEqual(pool.acquire(), got[0]);
});

test('readIntoNow answers synchronously only when every block is here (cached, staged by readahead), with exact bytes', async () => {
  const cache = new BlockCache({ maxBytes: 1024 * KiB, blockSize: 64 * KiB });
  const src = new FakeSource('now', 256 * KiB);
  const out = Buffer.alloc(100 * KiB);
  assert.equal(cache.readIntoNow(src, 10, 1000, out), undefined, 'a miss: the caller must fetch');
  assert.equal(src.reads.length, 0, 'and readIntoNow itself fetches nothing');
  await cache.read(src, 0, 10);
  assert.equal(cache.readIntoNow(src, 60 * KiB, 10 * KiB, out), undefined, 'block 1 is not here yet');
  cache.prefetch(src, 1);
  await new Promise((r) => setImmediate(r));
  const hits = cache.stats.hits;
  assert.equal(cache.readIntoNow(src, 60 * KiB, 10 * KiB, out), 10 * KiB, 'spans block 0 (cached) and block 1 (staged)');
  assert.ok(out.subarray(0, 10 * KiB).equals(ramp(60 * KiB, 70 * KiB)));
  assert.equal(cache.stats.hits, hits + 2);
  assert.equal(cache.readaheadInUse(), 0, 'the staged block was consumed');
  assert.equal(cache.readIntoNow(src, 256 * KiB, 10, out), 0, 'at EOF');
});

test('ReadHandle.readAny: a sequential reader behind its readahead is answered without a promise', async () => {
  const cache = new BlockCache({ maxBytes: 4096 * KiB, blockSize: 64 * KiB });
  const src = new FakeSource('seq', 1024 * KiB);
  const h = new ReadHandle(src, cache, { maxWindowBlocks: 4, inflightBudget: 256 * KiB, readTimeoutMs: 5_000 });
  const buf = Buffer.alloc(32 * KiB);
  let sync = 0;
  for (let off = 0; off < src.size; off += buf.length) {
    const r = h.readAny(buf, off, buf.length);
    const n = typeof r === 'number' ? (sync++, r) : await r;
    assert.equal(n, buf.length);
    assert.ok(buf.equals(ramp(off, off + buf.length)), `bytes at ${off}`);
    await new Promise((r2) => setImmediate(r2)); // let readahead land
  }
  assert.ok(sync >= 24, `${sync} of 32 reads answered synchronously`);
});

/** A cache of two 64 KiB blocks (and one of probation) over a 16-block file: every read evicts. */
async function evictingCache(name: string) {
  const cache = new BlockCache({ maxBytes: 2 * 64 * KiB, probationBytes: 64 * KiB, blockSize: 64 * KiB });
  const src = new FakeSource(name, 16 * 64 * KiB);
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
  await cache.read(src, 0, 10);
  return { cache, src, turn };
}

/** A holder that never asks to keep an evicted block (tests that do not look at the notice). */
const letGo = (): boolean => false;

test('a held block is never recycled, even once evicted, until it is released', async () => {
  const { cache, src, turn } = await evictingCache('held');
  const held = cache.hold(src, 0, 'demand', letGo);
  assert.ok(held);
  assert.deepEqual(held.buf, ramp(0, 64 * KiB));
  // Evict block 0 many times over; evicted buffers go back to the pool and are reused.
  for (let i = 1; i < 16; i++) {
    await cache.read(src, i * 64 * KiB, 10);
    await turn();
  }
  assert.deepEqual(held.buf, ramp(0, 64 * KiB), 'no later block was fetched into the held buffer');
  held.release();
  held.release(); // twice is harmless
  assert.equal(cache.hold(new FakeSource('absent', 100), 0, 'demand', letGo), undefined, 'a block not in memory is not held');
});

test('ReadHandle.window: the block holding an offset, its length in the file, and whether it ends the file', async () => {
  const cache = new BlockCache({ maxBytes: 1024 * KiB, blockSize: 64 * KiB });
  const src = new FakeSource('win', 200 * KiB + 5);
  const h = new ReadHandle(src, cache, { maxWindowBlocks: 1, inflightBudget: 64 * KiB, readTimeoutMs: 5_000 });
  assert.equal(h.window(0, letGo), undefined, 'nothing read yet');
  await h.read(0, 4 * KiB);
  assert.equal(h.window(100, letGo), undefined, 'after a header-sized first read: none, so the second read reaches the handle (and starts readahead)');
  await h.read(4 * KiB, 4 * KiB);
  const w0 = h.window(100, letGo)!;
  assert.deepEqual([w0.start, w0.length, w0.eof], [0, 64 * KiB, false]);
  assert.deepEqual(w0.buf.subarray(0, w0.length), ramp(0, 64 * KiB));
  await h.read(192 * KiB, 10);
  const last = h.window(200 * KiB + 4, letGo)!;
  assert.deepEqual([last.start, last.length, last.eof], [192 * KiB, 8 * KiB + 5, true]);
  assert.deepEqual(last.buf.subarray(0, last.length), ramp(192 * KiB, 200 * KiB + 5));
  assert.equal(h.window(200 * KiB + 5, letGo), undefined, 'past the end');
  w0.release();
  last.release();
});

test('a holder is told when its block leaves the cache (so it can let go at once)', async () => {
  const { cache, src, turn } = await evictingCache('told');
  let dropped = 0;
  const held = cache.hold(src, 0, 'demand', () => {
    dropped++;
    held.release();
    return false;
  })!;
  await cache.read(src, 64 * KiB, 10);
  await turn();
  assert.equal(dropped, 0, 'still cached');
  for (let i = 2; i < 5; i++) await cache.read(src, i * 64 * KiB, 10);
  await turn();
  assert.equal(dropped, 1, 'evicted: the holder was told once');
  for (let i = 5; i < 8; i++) await cache.read(src, i * 64 * KiB, 10);
  await turn();
  assert.equal(dropped, 1, 'and never again');
});

test('handing out a window moves readahead on, as a read there would (reads in the window never reach the handle)', async () => {
  const cache = new BlockCache({ maxBytes: 1024 * KiB, blockSize: 64 * KiB });
  const src = new FakeSource('ahead', 16 * 64 * KiB);
  const h = new ReadHandle(src, cache, { maxWindowBlocks: 8, inflightBudget: 16 * 64 * KiB, readTimeoutMs: 5_000 });
  await h.read(0, 32 * KiB); // block 0, and (a streamer's first read) prefetches of the blocks after it
  const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
  for (let i = 0; i < 10; i++) await turn();
  const before = src.reads.map(([s]) => s / (64 * KiB));
  const furthest = Math.max(...before);
  assert.ok(furthest >= 1 && furthest < 8, `read ahead to block ${furthest}`);
  const w = h.window(64 * KiB, letGo)!; // the next read would start block 1
  assert.equal(w.start, 64 * KiB);
  const started = src.reads.map(([s]) => s / (64 * KiB)).slice(before.length);
  assert.ok(started.length > 0 && Math.min(...started) === furthest + 1,
    `readahead went on past block ${furthest} (${started.join(', ')}) with no read of block 1 reaching the handle`);
  w.release();
});

test('a block its holder is still reading goes back into the cache when evicted, as the most recently used', async () => {
  const { cache, src, turn } = await evictingCache('reading');
  let reading = true;
  let asked = 0;
  const held = cache.hold(src, 0, 'demand', () => {
    asked++;
    if (!reading) held.release();
    return reading;
  })!;
  for (let i = 1; i < 4; i++) {
    await cache.read(src, i * 64 * KiB, 10);
    await turn();
  }
  assert.ok(asked >= 1, 'the holder was asked');
  assert.ok(cache.has(src, 0), 'still being read: back in the cache');
  const fetched = src.reads.length;
  assert.deepEqual(await cache.read(src, 10, 20), ramp(10, 30));
  assert.equal(src.reads.length, fetched, 'read again from memory, not fetched again');
  reading = false; // the reader moved on
  for (let i = 4; i < 8; i++) {
    await cache.read(src, i * 64 * KiB, 10);
    await turn();
  }
  assert.equal(cache.has(src, 0), false, 'no longer read: evicted for good');
});

test('offer: a block that came with an open is read without a fetch; mayHoldStart then says so; an offer never replaces a block already here', async () => {
  const cache = new BlockCache({ maxBytes: 1024 * KiB, blockSize: 64 * KiB });
  const src = new FakeSource('small:etag1', 40 * KiB);
  assert.equal(cache.mayHoldStart(undefined), false, 'nothing known: fetch whole');
  assert.equal(cache.mayHoldStart(src.cacheKey), false);
  cache.offer(src, 0, ramp(0, 40 * KiB));
  assert.equal(cache.mayHoldStart(src.cacheKey), true);
  const out = Buffer.alloc(40 * KiB);
  assert.equal(await cache.readInto(src, 0, out.length, out), 40 * KiB);
  assert.ok(out.equals(ramp(0, 40 * KiB)));
  assert.equal(src.reads.length, 0, 'no fetch');
  cache.offer(src, 0, Buffer.alloc(40 * KiB, 9)); // e.g. a second open's body: the first stays
  assert.equal(await cache.readInto(src, 0, out.length, out), 40 * KiB);
  assert.ok(out.equals(ramp(0, 40 * KiB)));
  // With a disk tier the start may be on disk: an open never fetches whole then.
  const withDisk = new BlockCache({ maxBytes: 1024 * KiB, blockSize: 64 * KiB, disk: { get: async () => undefined, put: () => undefined } as never });
  assert.equal(withDisk.mayHoldStart(undefined), true);
});

test('--read-timeout does not run out while the source waits for the mount itself (a presigned URL behind its own pacing); it does for a stalled network', async () => {
  const bs = 64 * KiB;
  const cache = new BlockCache({ maxBytes: 16 * bs, blockSize: bs });
  /** Answers after `delayMs`; says it is held back while `held` is true. */
  class SlowSource implements RangeSource {
    readonly cacheKey: string;
    readonly size = 4 * bs;
    constructor(name: string, private readonly delayMs: number, private readonly held: boolean) { this.cacheKey = name; }
    async read(start: number, end: number): Promise<Buffer> {
      await new Promise((r) => setTimeout(r, this.delayMs));
      return ramp(start, Math.min(end, this.size));
    }
    heldBack(): boolean { return this.held; }
  }
  const opts = { maxWindowBlocks: 1, inflightBudget: bs, readTimeoutMs: 100 };
  const paced = new ReadHandle(new SlowSource('paced', 400, true), cache, opts);
  assert.deepEqual(await paced.read(0, 4 * KiB), ramp(0, 4 * KiB), 'waited past the timeout for its URL');
  const stalled = new ReadHandle(new SlowSource('stalled', 400, false), cache, opts);
  await assert.rejects(stalled.read(0, 4 * KiB), /took longer than 100 ms/);
});

test('QA: fuse-native\'s own read deadline outlasts what the read path allows (--read-timeout + the wait for the mount\'s pacing)', () => {
  for (const readTimeoutMs of [5_000, 30_000, 600_000]) {
    assert.ok(readOpTimeoutMs(readTimeoutMs) > readTimeoutMs + MAX_HELD_BACK_MS, `at --read-timeout ${readTimeoutMs / 1000}`);
  }
});

/** Pieces (block-cache.ts): 64 KiB blocks of four 16 KiB pieces. */
const PBS = 64 * KiB;
const PIECE = 16 * KiB;
const piecesCache = (extra: Partial<ConstructorParameters<typeof BlockCache>[0]> = {}): BlockCache =>
  new BlockCache({ maxBytes: 64 * PBS, blockSize: PBS, pieceSize: PIECE, ...extra });
const handle = (src: RangeSource, cache: BlockCache): ReadHandle =>
  new ReadHandle(src, cache, { maxWindowBlocks: 8, inflightBudget: 64 * PBS, readTimeoutMs: 5000 });
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

test('QA: a random read fetches the pieces it touches, not its whole block (h5py, SQLite: 8 MiB per 4 KiB record)', async () => {
  const cache = piecesCache();
  const src = new FakeSource('rand', 40 * PBS + 100);
  const h = handle(src, cache);
  await h.read(0, 4 * KiB); // a header: piece 0 only
  assert.deepEqual(src.reads, [[0, PIECE]]);
  assert.deepEqual(await h.read(20 * PBS + 5 * KiB, 4 * KiB), ramp(20 * PBS + 5 * KiB, 20 * PBS + 9 * KiB), 'a seek: exact bytes');
  assert.deepEqual(src.reads.at(-1), [20 * PBS, 20 * PBS + PIECE], 'from the one piece it touches');
  // A read across two pieces, and one across a block boundary, fetch exactly those pieces.
  const at = 30 * PBS + PIECE - 100;
  assert.deepEqual(await h.read(at, 200), ramp(at, at + 200));
  const across = 33 * PBS - 50;
  assert.deepEqual(await h.read(across, 100), ramp(across, across + 100));
  await settle();
  assert.deepEqual(src.reads.slice(2).sort((a, b) => a[0] - b[0]), [
    [30 * PBS, 30 * PBS + PIECE], [30 * PBS + PIECE, 30 * PBS + 2 * PIECE],
    [32 * PBS + 3 * PIECE, 33 * PBS], [33 * PBS, 33 * PBS + PIECE],
  ]);
  // The file's last piece is short; a random read there gets exact bytes too.
  const tail = 40 * PBS + 50;
  assert.deepEqual(await h.read(tail, 4 * KiB), ramp(tail, src.size));
  assert.deepEqual(src.reads.at(-1), [40 * PBS, src.size]);
  // Read again: from the cache, synchronously.
  const before = src.reads.length;
  const target = Buffer.alloc(4 * KiB);
  assert.equal(h.readAny(target, 20 * PBS + 5 * KiB, 4 * KiB), 4 * KiB, 'a piece here answers without a promise');
  assert.deepEqual(target, ramp(20 * PBS + 5 * KiB, 20 * PBS + 9 * KiB));
  assert.equal(src.reads.length, before);
  assert.equal(cache.stats.pieceFetches, 6, 'the last block, of one short piece, came whole');
  assert.equal(cache.stats.bytesFetched, 6 * PIECE + 100);
});

test('pieces: concurrent random misses share one fetch; a whole block here is used as is; a failed piece is not cached', async () => {
  const cache = piecesCache();
  const src = new FakeSource('share', 16 * PBS);
  let open!: () => void;
  src.gate = new Promise((r) => { open = r; });
  const reads = [1, 2, 3].map((i) => cache.read(src, 5 * PBS + i * 1000, 100).catch((e: unknown) => e));
  // cache.read is 'demand'; random reads go through readInto's mode:
  const random = [1, 2].map((i) => {
    const out = Buffer.alloc(100);
    return cache.readInto(src, 9 * PBS + i * 1000, 100, out, () => false, 'random').then(() => out);
  });
  open();
  src.gate = undefined;
  const [r1] = await Promise.all(reads);
  assert.deepEqual(r1, ramp(5 * PBS + 1000, 5 * PBS + 1100));
  const [a, b] = await Promise.all(random);
  assert.deepEqual(a, ramp(9 * PBS + 1000, 9 * PBS + 1100));
  assert.deepEqual(b, ramp(9 * PBS + 2000, 9 * PBS + 2100));
  assert.deepEqual(src.reads.map(([s, e]) => [s / PBS, e - s]).sort((x, y) => x[0]! - y[0]!), [[5, PBS], [9, PIECE]], 'one block fetch, one piece fetch');
  // A random read in block 5 (whole, here): no fetch at all.
  const out = Buffer.alloc(100);
  assert.equal(await cache.readInto(src, 5 * PBS + 3 * PIECE, 100, out, () => false, 'random'), 100);
  assert.equal(src.reads.length, 2);
  src.failNext = 1;
  await assert.rejects(cache.readInto(src, 12 * PBS, 100, Buffer.alloc(100), () => false, 'random'), /injected failure/);
  assert.equal(await cache.readInto(src, 12 * PBS, 100, out, () => false, 'random'), 100, 'the next read fetches again');
  assert.deepEqual(out, ramp(12 * PBS, 12 * PBS + 100));
});

test('pieces: a reader wandering in one block gets the whole block once half its pieces are here, and the pieces then go', async () => {
  const cache = piecesCache();
  const src = new FakeSource('wander', 16 * PBS);
  const random = async (at: number): Promise<void> => {
    const out = Buffer.alloc(10);
    await cache.readInto(src, at, 10, out, () => false, 'random');
    assert.deepEqual(out, ramp(at, at + 10));
  };
  await random(3 * PBS);
  await random(3 * PBS + 2 * PIECE);
  assert.equal(cache.cachedBytes, 2 * PIECE);
  await random(3 * PBS + 3 * PIECE); // half are here: the whole block, but for the pieces here
  assert.deepEqual(src.reads.slice(2), [[3 * PBS + PIECE, 3 * PBS + 2 * PIECE], [3 * PBS + 3 * PIECE, 4 * PBS]], 'the gaps between them');
  await settle();
  assert.equal(cache.cachedBytes, PBS, 'the block alone: its pieces were dropped');
  await random(3 * PBS + PIECE);
  assert.equal(src.reads.length, 4, 'every later read of the block is a hit');
});

test('pieces: a sequential run that begins at a random read fetches its block whole once it continues, and reads stay exact', async () => {
  const cache = piecesCache();
  const src = new FakeSource('run', 32 * PBS);
  const h = handle(src, cache);
  const start = 10 * PBS + 1000;
  let off = start;
  const got: Buffer[] = [];
  for (let i = 0; i < 12; i++, off += 8 * KiB) got.push(await h.read(off, 8 * KiB));
  assert.deepEqual(Buffer.concat(got), ramp(start, off));
  await settle();
  const fetched = src.reads.map(([s, e]) => `${s / PBS}:${(e - s) / KiB}K`);
  assert.equal(fetched[0], '10:16K', 'the seek: its piece');
  const inBlock = src.reads.filter(([s]) => s >= 10 * PBS && s < 11 * PBS).sort((a, b) => a[0] - b[0]);
  assert.equal(inBlock.reduce((n, [s, e]) => n + e - s, 0), PBS, `then the rest of block 10, for the run (fetched ${fetched.join(' ')})`);
  inBlock.forEach(([s], i) => assert.equal(s, i === 0 ? 10 * PBS : inBlock[i - 1]![1], 'no byte twice, none missing'));
  assert.ok(fetched.includes('11:64K'), 'and readahead beyond it');
  assert.equal(cache.cachedBytes >= PBS, true);
  const target = Buffer.alloc(PBS);
  assert.equal(cache.readIntoNow(src, 10 * PBS, PBS, target), PBS, 'block 10 is here whole');
  assert.deepEqual(target, ramp(10 * PBS, 11 * PBS), 'assembled from its piece and the rest');
});

test('pieces: a header read then a stream (md5sum: 32 KiB reads) fetches every byte once, pooled buffers and all', async () => {
  for (const size of [6 * PBS, 5 * PBS + 3000, PIECE + 10]) {
    const cache = piecesCache({ maxBytes: 2 * PBS });
    const src = new FakeSource(`md5-${size}`, size);
    const h = handle(src, cache);
    const got: Buffer[] = [];
    for (let off = 0; off < size; off += 32 * KiB) got.push(await h.read(off, 32 * KiB));
    assert.deepEqual(Buffer.concat(got), ramp(0, size), `${size}: exact bytes`);
    await settle();
    const fetched = src.reads.reduce((n, [s, e]) => n + Math.min(e, size) - s, 0);
    assert.equal(fetched, size, `${size}: ${fetched} bytes fetched (${src.reads.map(([s, e]) => `${s}-${e}`).join(' ')})`);
  }
});

test('pieces: with a disk tier, a whole block on disk answers a random read, and a fetched piece is handed to the disk', async () => {
  const { stored, idKey, disk } = memoryDisk();
  const src = new FakeSource('disk', 8 * PBS);
  stored.set(idKey({ object: 'disk', blockSize: PBS, index: 2 }), ramp(2 * PBS, 3 * PBS));
  const cache = piecesCache({ disk });
  const out = Buffer.alloc(100);
  await cache.readInto(src, 2 * PBS + 3 * PIECE + 5, 100, out, () => false, 'random');
  assert.deepEqual(out, ramp(2 * PBS + 3 * PIECE + 5, 2 * PBS + 3 * PIECE + 105));
  assert.equal(src.reads.length, 0, 'the disk tier had the block');
  assert.equal(cache.cachedBytes, PBS, 'kept whole');
  await cache.readInto(src, 5 * PBS + PIECE, 100, out, () => false, 'random');
  assert.deepEqual(src.reads, [[5 * PBS + PIECE, 5 * PBS + 2 * PIECE]]);
  assert.deepEqual(stored.get(idKey({ object: 'disk', blockSize: PIECE, index: (5 * PBS + PIECE) / PIECE, piece: true })), ramp(5 * PBS + PIECE, 5 * PBS + 2 * PIECE), 'the piece is on disk');
  // A new cache (a remount) finds the piece on disk.
  const again = piecesCache({ disk });
  await again.readInto(src, 5 * PBS + PIECE + 7, 100, out, () => false, 'random');
  assert.deepEqual(out, ramp(5 * PBS + PIECE + 7, 5 * PBS + PIECE + 107));
  assert.equal(src.reads.length, 1);
});

test('pieces are off when they do not divide the block (and with blocks of one piece)', () => {
  assert.equal(new BlockCache({ maxBytes: PBS, blockSize: PBS, pieceSize: 24 * KiB }).pieceSize, PBS);
  assert.equal(new BlockCache({ maxBytes: PBS, blockSize: PBS }).pieceSize, PBS, '64 KiB blocks are smaller than the default 1 MiB piece');
  assert.equal(new BlockCache({ maxBytes: 8 * 1024 * KiB, blockSize: 8 * 1024 * KiB }).pieceSize, 1024 * KiB);
});

test('review: a file of one piece (or a short last block) is fetched whole, once, however it is read', async () => {
  for (const size of [PIECE, PIECE - 100, 3 * PBS + PIECE - 7]) {
    const cache = piecesCache();
    const src = new FakeSource(`one-${size}`, size);
    const h = handle(src, cache);
    const lastBlock = Math.floor((size - 1) / PBS) * PBS;
    await h.read(lastBlock + 10, 100); // a seek (or a header, for the one-block files)
    const got: Buffer[] = [];
    for (let off = lastBlock; off < size; off += 4 * KiB) got.push(await h.read(off, 4 * KiB));
    assert.deepEqual(Buffer.concat(got), ramp(lastBlock, size));
    await settle();
    assert.deepEqual(src.reads.filter(([s]) => s >= lastBlock), [[lastBlock, size]], `${size}: its last block in one GET`);
  }
});

test('review: a read spanning blocks, one of which fails, leaves no block pinned (its buffer goes back to the pool)', async () => {
  const bs = 64 * KiB;
  const cache = new BlockCache({ maxBytes: bs, blockSize: bs, probationBytes: bs });
  const src = new FakeSource('pins', 8 * bs);
  let open!: () => void;
  src.blockGates.set(bs, new Promise<void>((r) => { open = r; }));
  src.failNext = 1; // block 0's fetch, which starts first
  await assert.rejects(cache.readInto(src, bs - 10, 20, Buffer.alloc(20)), /injected failure/);
  open(); // block 1 lands after the read gave up
  for (let i = 0; i < 3; i++) await settle();
  for (let i = 2; i < 6; i++) await cache.read(src, i * bs, 10); // evicts block 1
  for (let i = 0; i < 3; i++) await settle();
  const internals = cache as unknown as { pins: Map<Buffer, number>; releaseWhenUnpinned: Set<Buffer> };
  assert.equal(internals.pins.size, 0, 'no pin left');
  assert.equal(internals.releaseWhenUnpinned.size, 0, 'no buffer waiting for an unpin that never comes');
});

test('review: after a random read only a step forward is a run — records a few MiB apart, or read again, stay random (pieces, no readahead)', async () => {
  const cache = piecesCache();
  const src = new FakeSource('cluster', 64 * PBS);
  const h = handle(src, cache);
  // A first read away from the start (more than 128 KiB: two 64 KiB blocks here) is a seek; then
  // records a little more than 128 KiB apart, forward and back; then one read twice.
  const offsets = [3 * PBS + 100, 5 * PBS + 5000, 20 * PBS + 100, 17 * PBS + 3 * PIECE, 21 * PBS + 200, 21 * PBS + 200];
  for (const off of offsets) assert.deepEqual(await h.read(off, 4 * KiB), ramp(off, off + 4 * KiB));
  await settle();
  assert.ok(src.reads.every(([s, e]) => e - s === PIECE), `pieces only, no block, no readahead: ${src.reads.map(([s, e]) => `${s / PIECE}+${(e - s) / KiB}K`).join(' ')}`);
  assert.equal(src.reads.length, 5);
  // Reading on from where the last read ended is a run: at its second read the block whole,
  // then readahead.
  const next = 21 * PBS + 200 + 4 * KiB;
  assert.deepEqual(await h.read(next, 4 * KiB), ramp(next, next + 4 * KiB));
  await settle();
  assert.equal(src.reads.length, 5, 'one read on: still the piece (SQLite reads page 2 after page 1)');
  assert.deepEqual(await h.read(next + 4 * KiB, 4 * KiB), ramp(next + 4 * KiB, next + 8 * KiB));
  await settle();
  assert.ok(src.reads.some(([s, e]) => s === 21 * PBS + PIECE && e === 22 * PBS), 'the rest of block 21');
  assert.ok(src.reads.some(([s, e]) => s === 22 * PBS && e === 23 * PBS), 'and the next block with it');
  const got: Buffer[] = [];
  let off = next + 8 * KiB;
  for (; off < 22 * PBS + 4 * KiB; off += 4 * KiB) got.push(await h.read(off, 4 * KiB));
  assert.deepEqual(Buffer.concat(got), ramp(next + 8 * KiB, off));
  await settle();
  assert.ok(src.reads.some(([s, e]) => s === 23 * PBS && e === 24 * PBS), 'and more readahead once it enters the next block');
});

test('QA: SQLite\'s reads (header, page 1 again, page 2, then pages far apart) fetch pieces only', async () => {
  const bs = 1024 * KiB;
  const cache = new BlockCache({ maxBytes: 64 * bs, blockSize: bs, pieceSize: 64 * KiB });
  const src = new FakeSource('sqlite', 40 * bs);
  const h = new ReadHandle(src, cache, { maxWindowBlocks: 8, inflightBudget: 64 * bs, readTimeoutMs: 5000 });
  // As strace shows python3's sqlite3 on a 34 MB database for one primary-key lookup.
  for (const [off, len] of [[0, 100], [0, 4096], [24, 16], [4096, 4096], [27246592, 4096], [27971584, 4096]] as const) {
    assert.deepEqual(await h.read(off, len), ramp(off, off + len));
  }
  await settle();
  assert.ok(src.reads.every(([s, e]) => e - s === 64 * KiB), `pieces only: ${src.reads.map(([s, e]) => `${s}+${e - s}`).join(' ')}`);
  assert.equal(src.reads.length, 3);
});

test('QA: a read split in two (a 1 MiB read into an unaligned buffer) fetches pieces for both halves, not the block', async () => {
  const cache = piecesCache();
  const src = new FakeSource('split', 16 * PBS);
  const h = handle(src, cache);
  const at = 9 * PBS + PIECE + 1000;
  assert.deepEqual(await h.read(at, 4 * KiB), ramp(at, at + 4 * KiB));
  assert.deepEqual(await h.read(at + 4 * KiB, PIECE), ramp(at + 4 * KiB, at + 4 * KiB + PIECE), 'the rest, into the next piece');
  await settle();
  assert.deepEqual(src.reads, [[9 * PBS + PIECE, 9 * PBS + 2 * PIECE], [9 * PBS + 2 * PIECE, 9 * PBS + 3 * PIECE]]);
});

test('pieces: a block put together around pieces fails whole if a gap fails — the pooled buffer waits for the other GETs — and the next read gets every byte', async () => {
  const cache = piecesCache();
  const src = new FakeSource('gaps', 8 * PBS);
  for (const p of [1, 3]) await cache.readInto(src, 2 * PBS + p * PIECE, 10, Buffer.alloc(10), () => false, 'random');
  // Gaps: piece 0 and piece 2. Piece 2's GET is held back; piece 0's fails.
  let open!: () => void;
  src.blockGates.set(2 * PBS + 2 * PIECE, new Promise<void>((r) => { open = r; }));
  const reads = src.reads.length;
  src.failNext = 1;
  let settled = false;
  const whole = cache.readInto(src, 2 * PBS, PBS, Buffer.alloc(PBS)).finally(() => { settled = true; });
  for (let i = 0; i < 5; i++) await settle();
  assert.equal(settled, false, 'still waiting for the gap in flight, though one failed');
  open();
  await assert.rejects(whole, /injected failure/);
  assert.deepEqual(src.reads.slice(reads), [[2 * PBS, 2 * PBS + PIECE], [2 * PBS + 2 * PIECE, 2 * PBS + 3 * PIECE]]);
  src.blockGates.clear();
  const out = Buffer.alloc(PBS);
  assert.equal(await cache.readInto(src, 2 * PBS, PBS, out), PBS);
  assert.deepEqual(out, ramp(2 * PBS, 3 * PBS));
});

test('pieces: a block fetched while a random reader\'s piece of it is on its way waits for that piece, not its bytes again (concurrent random readers)', async () => {
  const cache = piecesCache();
  const src = new FakeSource('inflight', 8 * PBS);
  let open!: () => void;
  src.blockGates.set(2 * PBS + 3 * PIECE, new Promise<void>((r) => { open = r; }));
  const small = Buffer.alloc(10);
  const pieceRead = cache.readInto(src, 2 * PBS + 3 * PIECE + 5, 10, small, () => false, 'random');
  await settle();
  const out = Buffer.alloc(PBS);
  const blockRead = cache.readInto(src, 2 * PBS, PBS, out);
  await settle();
  open();
  assert.equal(await blockRead, PBS);
  assert.equal(await pieceRead, 10);
  assert.deepEqual(out, ramp(2 * PBS, 3 * PBS));
  assert.deepEqual(small, ramp(2 * PBS + 3 * PIECE + 5, 2 * PBS + 3 * PIECE + 15));
  // Four pieces a block: piece 3 (the last) on its way, 0–2 the one gap.
  assert.deepEqual(src.reads, [[2 * PBS + 3 * PIECE, 3 * PBS], [2 * PBS, 2 * PBS + 3 * PIECE]], 'every byte once');
});

test('pieces: a piece on its way that fails is fetched again by the block that waited for it', async () => {
  const cache = piecesCache();
  const src = new FakeSource('inflight-fails', 8 * PBS);
  let open!: () => void;
  src.blockGates.set(2 * PBS + PIECE, new Promise<void>((r) => { open = r; }));
  const pieceRead = cache.readInto(src, 2 * PBS + PIECE, 10, Buffer.alloc(10), () => false, 'random');
  await settle();
  const out = Buffer.alloc(PBS);
  const blockRead = cache.readInto(src, 2 * PBS, PBS, out);
  await settle(); // the gaps' GETs are done
  src.blockGates.clear();
  src.failNext = 1;
  open();
  await assert.rejects(pieceRead, /injected failure/);
  assert.equal(await blockRead, PBS);
  assert.deepEqual(out, ramp(2 * PBS, 3 * PBS));
  assert.deepEqual(src.reads.filter(([s]) => s === 2 * PBS + PIECE).length, 2, 'that piece asked for again');
});

test('pieces: with a disk tier, pieces on disk fill a whole block once the cache has seen pieces of that file there (QA: a later md5sum fetched them again; review: not 8 lookups for every block of every file)', async () => {
  const { stored, idKey, disk } = memoryDisk();
  let gets = 0;
  const counted: BlockStore = { get: (id, length) => { gets++; return disk.get(id, length); }, put: (id, data, replaces) => disk.put(id, data, replaces) };
  const src = new FakeSource('disk-pieces', 4 * PBS);
  const first = piecesCache({ disk: counted });
  await first.readInto(src, PBS + 10, 10, Buffer.alloc(10), () => false, 'random');
  await first.readInto(src, PBS + 3 * PIECE, 10, Buffer.alloc(10), () => false, 'random');
  assert.equal(src.reads.length, 2);
  // Another file, read whole: one disk lookup per block, none for pieces.
  gets = 0;
  await first.read(new FakeSource('plain', 2 * PBS), 0, 2 * PBS);
  assert.equal(gets, 2);
  const again = piecesCache({ disk: counted }); // a remount
  await again.readInto(src, PBS + 5, 10, Buffer.alloc(10), () => false, 'random'); // finds a piece on disk
  assert.equal(src.reads.length, 2, 'no fetch for it');
  const out = Buffer.alloc(PBS);
  assert.equal(await again.readInto(src, PBS, PBS, out), PBS);
  assert.deepEqual(out, ramp(PBS, 2 * PBS));
  assert.deepEqual(src.reads.slice(2), [[PBS + PIECE, PBS + 3 * PIECE]], 'only the gap between the pieces on disk');
  assert.deepEqual(stored.get(idKey({ object: 'disk-pieces', blockSize: PBS, index: 1 })), ramp(PBS, 2 * PBS), 'and the whole block is on disk now');
  assert.deepEqual([...stored.keys()].filter((k) => k.startsWith('disk-pieces/')), ['disk-pieces/' + PBS + '/1'], 'in place of its pieces');
});

test('pieces: a block read whole by a mount that never saw pieces of its file takes the place of the pieces an earlier mount left on disk (review)', async () => {
  const { stored, disk } = memoryDisk();
  const src = new FakeSource('left-behind', 2 * PBS);
  const first = piecesCache({ disk });
  await first.readInto(src, PBS + 10, 10, Buffer.alloc(10), () => false, 'random');
  await first.readInto(src, PBS + 3 * PIECE, 10, Buffer.alloc(10), () => false, 'random');
  assert.deepEqual([...stored.keys()].filter((k) => k.includes('/p')).length, 2, 'two pieces on disk');
  const again = piecesCache({ disk }); // a remount, reading straight through
  assert.deepEqual(await again.read(src, 0, 2 * PBS), ramp(0, 2 * PBS));
  assert.deepEqual([...stored.keys()].sort(), ['left-behind/' + PBS + '/0', 'left-behind/' + PBS + '/1'], 'the blocks alone');
});

/** A disk tier in memory: what it stores, by `object/blockSize/index`. */
function memoryDisk(): { stored: Map<string, Buffer>; idKey: (id: BlockId) => string; disk: BlockStore } {
  const stored = new Map<string, Buffer>();
  const idKey = (id: BlockId): string => `${id.object}/${id.piece ? 'p' : ''}${id.blockSize}/${id.index}`;
  const disk: BlockStore = {
    get: async (id, length) => {
      const b = stored.get(idKey(id));
      return b && b.length === length ? Buffer.from(b) : undefined;
    },
    put: (id, data, replaces = []) => {
      stored.set(idKey(id), Buffer.from(data));
      for (const r of replaces) stored.delete(idKey(r));
    },
    hasPieces: async (object) => [...stored.keys()].some((k) => k.startsWith(`${object}/p`)),
  };
  return { stored, idKey, disk };
}

test('review: a run after a seek whose reads the fast path answers (a window) reads ahead: the next read JS sees, at the window\'s end, continues the run', async () => {
  const bs = 1024 * KiB;
  const cache = new BlockCache({ maxBytes: 64 * bs, blockSize: bs, pieceSize: 64 * KiB });
  const src = new FakeSource('windowed', 40 * bs);
  const h = new ReadHandle(src, cache, { maxWindowBlocks: 8, inflightBudget: 64 * bs, readTimeoutMs: 5000 });
  const at = 10 * bs + 100;
  for (let i = 0; i < 3; i++) assert.deepEqual(await h.read(at + i * 4 * KiB, 4 * KiB), ramp(at + i * 4 * KiB, at + (i + 1) * 4 * KiB));
  await settle();
  await settle();
  const w = h.window(at + 12 * KiB, () => false);
  assert.ok(w, 'block 10 is whole by now: the fast path gets it');
  w.release();
  // The fast path answers the rest of block 10; JS sees the next read at block 11.
  assert.deepEqual(await h.read(11 * bs, 4 * KiB), ramp(11 * bs, 11 * bs + 4 * KiB));
  await settle();
  assert.ok(src.reads.some(([s]) => s === 12 * bs), `readahead past block 11 (fetched ${src.reads.map(([s, e]) => `${s / KiB}K+${(e - s) / KiB}K`).join(' ')})`);
});

test('review: a first small read near the start (dd bs=4k skip=16) is a header\'s: its piece, no readahead', async () => {
  const bs = 1024 * KiB;
  const cache = new BlockCache({ maxBytes: 64 * bs, blockSize: bs, pieceSize: 64 * KiB });
  const src = new FakeSource('skip16', 40 * bs);
  const h = new ReadHandle(src, cache, { maxWindowBlocks: 8, inflightBudget: 64 * bs, readTimeoutMs: 5000 });
  assert.deepEqual(await h.read(64 * KiB, 4 * KiB), ramp(64 * KiB, 68 * KiB));
  await settle();
  assert.deepEqual(src.reads, [[64 * KiB, 128 * KiB]]);
});

test('review: a read split in two across a block boundary fetches the pieces it touches, and nothing ahead', async () => {
  const bs = 1024 * KiB;
  const cache = new BlockCache({ maxBytes: 64 * bs, blockSize: bs, pieceSize: 64 * KiB });
  const src = new FakeSource('straddle', 40 * bs);
  const h = new ReadHandle(src, cache, { maxWindowBlocks: 8, inflightBudget: 64 * bs, readTimeoutMs: 5000 });
  const at = 10 * bs - 100 * KiB;
  assert.deepEqual(await h.read(at, 100 * KiB), ramp(at, at + 100 * KiB));
  assert.deepEqual(await h.read(10 * bs, 200 * KiB), ramp(10 * bs, 10 * bs + 200 * KiB), 'the rest, in block 10');
  await settle();
  const fetched = src.reads.reduce((n, [s, e]) => n + e - s, 0);
  assert.ok(src.reads.every(([s, e]) => e - s === 64 * KiB) && fetched <= 6 * 64 * KiB, `pieces only (${src.reads.map(([s, e]) => `${s / KiB}K+${(e - s) / KiB}K`).join(' ')})`);
});

test('review: a seek into a cached block whose reads the fast path then answers (a random reader\'s window) starts a run at the block\'s end', async () => {
  const bs = 1024 * KiB;
  const cache = new BlockCache({ maxBytes: 64 * bs, blockSize: bs, pieceSize: 64 * KiB });
  const src = new FakeSource('kept', 40 * bs);
  await cache.read(src, 10 * bs, bs); // block 10 is here whole
  const h = new ReadHandle(src, cache, { maxWindowBlocks: 8, inflightBudget: 64 * bs, readTimeoutMs: 5000 });
  assert.deepEqual(await h.read(10 * bs + 100, 4 * KiB), ramp(10 * bs + 100, 10 * bs + 100 + 4 * KiB));
  assert.equal(h.lastReadRandom, true);
  const w = h.window(10 * bs + 100, () => false, false); // kept for the random reader
  assert.ok(w);
  w.release();
  // dd bs=1M skip=10: C answers the rest of block 10; JS sees the read at block 11.
  assert.deepEqual(await h.read(11 * bs, 64 * KiB), ramp(11 * bs, 11 * bs + 64 * KiB));
  await settle();
  assert.equal(h.lastReadRandom, false, 'a run');
  assert.ok(src.reads.some(([s, e]) => s === 11 * bs && e === 12 * bs), 'block 11 whole');
  assert.ok(src.reads.some(([s]) => s === 12 * bs), `and read ahead (fetched ${src.reads.map(([s, e]) => `${s / KiB}K+${(e - s) / KiB}K`).join(' ')})`);
});

test('QA: a stream of large reads from a seek (dd bs=1M skip=N) waits for S3 once: the second read fetches its block whole and the next one', async () => {
  const bs = 8 * 1024 * KiB;
  const cache = new BlockCache({ maxBytes: 64 * bs, blockSize: bs });
  const src = new FakeSource('dd-skip', 20 * bs);
  const h = new ReadHandle(src, cache, { maxWindowBlocks: 8, inflightBudget: 64 * bs, readTimeoutMs: 5000 });
  const MiB = 1024 * KiB;
  assert.deepEqual(await h.read(40 * MiB, MiB), ramp(40 * MiB, 41 * MiB));
  assert.deepEqual(src.reads, [[40 * MiB, 41 * MiB]], 'a seek: its piece');
  assert.deepEqual(await h.read(41 * MiB, MiB), ramp(41 * MiB, 42 * MiB));
  await settle();
  assert.deepEqual(src.reads.slice(1).sort((a, b) => a[0] - b[0]), [[41 * MiB, 48 * MiB], [48 * MiB, 56 * MiB]], 'the rest of its block and the next, at once');
});

test('QA: a first read of exactly 128 KiB at the start (Python\'s buffered read of a header: st_blksize) is a header\'s: its pieces, no block nor readahead', async () => {
  // 3–20 MB fetched for `open(p, 'rb').read(4096)` — 131072 was not under the 128 KiB bound.
  const bs = 8 * 1024 * KiB;
  const cache = new BlockCache({ maxBytes: 64 * bs, blockSize: bs, pieceSize: 1024 * KiB });
  const src = new FakeSource('pyhead', 5 * bs);
  const h = new ReadHandle(src, cache, { maxWindowBlocks: 8, inflightBudget: 64 * bs, readTimeoutMs: 5000 });
  assert.deepEqual(await h.read(0, 128 * KiB), ramp(0, 128 * KiB));
  await settle();
  assert.deepEqual(src.reads, [[0, 1024 * KiB]], 'one 1 MiB piece');
});

test('short blocks (small files, a file\'s last block) give their memory back when they leave the cache; read again, they are fetched whole', async () => {
  // QA session 31: such buffers were left to the GC, and 250 files of 7 MiB read at once held
  // 1.4 GiB for 413 MB cached (dead ArrayBuffers, and glibc keeping what it got back).
  const bs = 1024 * KiB;
  const handedOut: Buffer[] = [];
  class Recording extends FakeSource {
    override async read(start: number, end: number, signal?: AbortSignal, alloc?: (n: number) => Buffer): Promise<Buffer> {
      return super.read(start, end, signal, alloc && ((n) => { const b = alloc(n); handedOut.push(b); return b; }));
    }
  }
  const cache = new BlockCache({ maxBytes: bs, blockSize: bs }); // room for three of them
  const files = Array.from({ length: 6 }, (_, i) => new Recording(`small${i}`, 300 * KiB + i));
  for (const f of files) assert.deepEqual(await cache.read(f, 0, f.size), ramp(0, f.size));
  await new Promise((r) => setImmediate(r)); // recycle decides one macrotask after the drop
  await new Promise((r) => setImmediate(r));
  assert.equal(handedOut.length, 6);
  const given = handedOut.filter((b) => b.buffer.byteLength === 0).length;
  assert.ok(given >= 3, `the evicted buffers gave their memory back: ${given} of 6`);
  assert.ok(handedOut.slice(-1)[0]!.buffer.byteLength > 0, 'the block still cached keeps its bytes');
  // Read again: fetched anew (the dropped ones), exact.
  const before = files.reduce((n, f) => n + f.reads.length, 0);
  for (const f of files) assert.deepEqual(await cache.read(f, 0, f.size), ramp(0, f.size));
  assert.ok(files.reduce((n, f) => n + f.reads.length, 0) - before >= given, 'every file whose buffer was given back is fetched again');
});

test('a random read over two pieces pins the first the moment it arrives: evicted while the second is on its way, its bytes are still there', async () => {
  // Pieces are droppable (their memory given back when they leave the cache): pinned only once
  // both had come, the first was dropped meanwhile and read as nothing (read.test's four random
  // readers saw wrong ranges).
  const bs = 1024 * KiB;
  const piece = 256 * KiB;
  const cache = new BlockCache({ maxBytes: bs, blockSize: bs, pieceSize: piece }); // four pieces
  const src = new FakeSource('two-pieces', 4 * bs);
  let openSecond!: () => void;
  src.blockGates.set(piece, new Promise((r) => { openSecond = r; }));
  const out = Buffer.alloc(2 * piece);
  const spanning = cache.readInto(src, 0, 2 * piece, out, () => false, 'random');
  for (let i = 0; i < 50 && src.reads.length < 2; i++) await new Promise((r) => setImmediate(r));
  // Piece 0 is here; other random reads push it out of the cache, and a turn passes.
  const other = new FakeSource('others', 8 * bs);
  for (let i = 1; i < 6; i++) await cache.readInto(other, i * bs, 100, Buffer.alloc(100), () => false, 'random');
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  assert.equal(cache.readIntoNow(src, 0, 100, Buffer.alloc(100), 'random'), undefined, 'piece 0 has left the cache');
  openSecond();
  assert.equal(await spanning, 2 * piece);
  assert.deepEqual(out, ramp(0, 2 * piece), 'both pieces\' bytes');
});

test('blocks readers wait for are fetched at most demandBytes at a time, in order; a block waiting for its pieces never blocks them', async () => {
  // QA session 31: 250 readers each missing a 7 MiB file held ≈ 0.6 GiB of buffers being filled
  // beside a full cache.
  const bs = 64 * KiB;
  const cache = new BlockCache({ maxBytes: 64 * bs, blockSize: bs, demandBytes: 2 * bs });
  const files = Array.from({ length: 6 }, (_, i) => new FakeSource(`crowd${i}`, bs));
  let open!: () => void;
  const gate = new Promise<void>((r) => { open = r; });
  for (const f of files) f.gate = gate;
  const reads = files.map((f) => cache.read(f, 0, 100));
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  assert.equal(files.filter((f) => f.reads.length > 0).length, 2, 'two blocks in flight, the rest queued');
  open();
  const got = await Promise.all(reads);
  got.forEach((b) => assert.deepEqual(b, ramp(0, 100)));
  assert.ok(files.every((f) => f.reads.length === 1), 'each fetched once');

  // A random reader's piece on its way, then the whole block asked by a demand reader while the
  // budget is full: the piece is not gated, so the block (which waits for it) finishes.
  const pbs = 1024 * KiB;
  const pieces = new BlockCache({ maxBytes: 64 * pbs, blockSize: pbs, pieceSize: 256 * KiB, demandBytes: pbs });
  const src = new FakeSource('mixed', 4 * pbs);
  let openPiece!: () => void;
  src.blockGates.set(0, new Promise((r) => { openPiece = r; }));
  const random = pieces.readInto(src, 0, 100, Buffer.alloc(100), () => false, 'random');
  const whole = pieces.read(src, 0, pbs);
  const other = pieces.read(new FakeSource('other', pbs), 0, 100);
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  openPiece();
  await random;
  assert.deepEqual(await whole, ramp(0, pbs));
  assert.deepEqual(await other, ramp(0, 100));
});
