/**
 * In-memory block cache: fixed-size blocks of immutable objects, keyed by
 * (RangeSource.cacheKey, block index), bounded in bytes by lru-cache's maxSize.
 *
 * lru-cache's `fetchMethod` gives single-flight for free: concurrent misses on one block share
 * one GET. Blocks being fetched are not yet counted by lru-cache, so prefetches are also bounded
 * by `inflightBudget` bytes (see Prefetcher) — cache + in-flight stays within the configured
 * memory. Failed fetches are not cached; the next read tries again.
 *
 * Block size default 8 MiB (DESIGN §4): large enough that a sequential reader needs few GETs
 * (S3 throughput wants ≥ 8 MiB requests), small enough that a random reader wastes little.
 *
 * Optional second tier (`disk`, a BlockStore such as disk-cache.ts): a memory miss asks the disk
 * first, and only then S3; bytes fetched from S3 are handed to the disk tier to keep, without
 * waiting for the write. Prefetches go through the same path, so readahead fills the disk too.
 * Disk errors are never read errors: a failing disk tier is a miss.
 *
 * Buffers: without a disk tier, block buffers come from a BufferPool and go back to it when
 * their block is evicted, so a long sequential read stops paying for fresh memory. Readers
 * copy out of blocks (`readInto`) while the blocks are pinned; an evicted block still pinned
 * goes back to the pool only when its last reader is done. (With a disk tier, blocks are handed
 * to asynchronous disk writes, so they are never recycled.)
 * INVARIANT: a buffer in the pool is neither cached nor pinned.
 */
import { LRUCache } from 'lru-cache';
import type { RangeSource } from '../s3/object-store.js';
import { BufferPool } from './buffer-pool.js';

/** One block of one immutable object: the disk tier's key (block size included: a remount may use another). */
export interface BlockId {
  object: string;
  blockSize: number;
  index: number;
}

/** A persistent block tier behind the memory cache. */
export interface BlockStore {
  /** The block's bytes if stored and intact (exactly `length` bytes), else undefined. */
  get(id: BlockId, length: number): Promise<Buffer | undefined>;
  /** Keep a copy; asynchronous, best effort, never throws. */
  put(id: BlockId, data: Buffer): void;
}

interface FetchContext {
  source: RangeSource;
  index: number;
}

export interface BlockCacheOptions {
  maxBytes: number;
  blockSize: number;
  /** Persistent tier consulted on a memory miss before S3 (--cache-dir). */
  disk?: BlockStore;
}

export class BlockCache {
  readonly blockSize: number;
  private readonly cache: LRUCache<string, Buffer, FetchContext>;
  private inflight = 0;
  private readonly pool: BufferPool | undefined;
  private readonly pins = new Map<Buffer, number>();
  /** Evicted while pinned: back to the pool when the last pin goes. */
  private readonly releaseWhenUnpinned = new Set<Buffer>();
  stats = { hits: 0, misses: 0, bytesFetched: 0, diskHits: 0 };

  constructor(opts: BlockCacheOptions) {
    this.blockSize = opts.blockSize;
    // A few free buffers: in steady state each new block replaces an evicted one; more would
    // be memory outside --cache-size.
    this.pool = opts.disk ? undefined : new BufferPool(opts.blockSize, 4);
    this.cache = new LRUCache<string, Buffer, FetchContext>({
      maxSize: Math.max(opts.maxBytes, opts.blockSize),
      sizeCalculation: (b) => Math.max(1, b.length),
      dispose: (buf) => this.recycle(buf),
      // A pending fetch can be evicted by other blocks arriving (a small cache, a busy reader);
      // lru-cache would then abort it and hand its waiters `undefined` — an EIO for a read that
      // was fine. Let it finish: its waiters get the bytes, even if the cache no longer keeps them.
      ignoreFetchAbort: true,
      fetchMethod: async (_key, _stale, { context }) => {
        const start = context.index * this.blockSize;
        const end = Math.min(start + this.blockSize, context.source.size);
        this.stats.misses++;
        this.inflight += end - start;
        try {
          const disk = opts.disk;
          const id: BlockId = { object: context.source.cacheKey, blockSize: this.blockSize, index: context.index };
          if (disk) {
            const stored = await disk.get(id, end - start).catch(() => undefined);
            if (stored) {
              this.stats.diskHits++;
              return stored;
            }
          }
          const pool = this.pool;
          const alloc = pool && end - start === this.blockSize ? (): Buffer => pool.acquire() : undefined;
          const data = await context.source.read(start, end, undefined, alloc);
          this.stats.bytesFetched += data.length;
          if (disk && data.length === end - start) disk.put(id, data);
          return data;
        } finally {
          this.inflight -= end - start;
        }
      },
    });
  }

  private recycle(buf: Buffer): void {
    const pool = this.pool;
    if (!pool || buf.length !== this.blockSize) return;
    // Readers pin a block in the microtask after they receive it, and an eviction can happen in
    // between (another fetch resolving in the same turn). Decide one macrotask later, when every
    // reader that got this buffer has pinned it.
    setImmediate(() => {
      if ((this.pins.get(buf) ?? 0) > 0) this.releaseWhenUnpinned.add(buf);
      else pool.release(buf);
    });
  }

  private pin(buf: Buffer): Buffer {
    this.pins.set(buf, (this.pins.get(buf) ?? 0) + 1);
    return buf;
  }

  private unpin(buf: Buffer): void {
    const n = (this.pins.get(buf) ?? 1) - 1;
    if (n > 0) {
      this.pins.set(buf, n);
      return;
    }
    this.pins.delete(buf);
    if (this.releaseWhenUnpinned.delete(buf)) this.pool?.release(buf);
  }

  /** Bytes currently being fetched (not yet in the cache). */
  get inflightBytes(): number {
    return this.inflight;
  }

  get cachedBytes(): number {
    return this.cache.calculatedSize;
  }

  private key(source: RangeSource, index: number): string {
    return `${source.cacheKey}#${index}`;
  }

  has(source: RangeSource, index: number): boolean {
    return this.cache.has(this.key(source, index));
  }

  async block(source: RangeSource, index: number): Promise<Buffer> {
    const key = this.key(source, index);
    const hit = this.cache.get(key);
    if (hit) {
      this.stats.hits++;
      return hit;
    }
    const data = await this.cache.fetch(key, { context: { source, index } });
    if (!data) throw new Error(`block ${index} of ${source.cacheKey} could not be fetched`);
    return data;
  }

  /** Start fetching a block without waiting; errors are left for a real read to see. */
  prefetch(source: RangeSource, index: number): void {
    const key = this.key(source, index);
    if (this.cache.has(key)) return;
    this.cache.fetch(key, { context: { source, index } }).catch(() => undefined);
  }

  /**
   * Copy [offset, offset+length) of the source into `target` through the cache; returns the
   * number of bytes copied. `cancelled()` is checked right before copying, so a read abandoned
   * by its caller (a timeout already answered) never writes into a buffer it no longer owns.
   */
  async readInto(source: RangeSource, offset: number, length: number, target: Buffer, cancelled: () => boolean = () => false): Promise<number> {
    const end = Math.min(offset + length, source.size, offset + target.length);
    if (end <= offset) return 0;
    const first = Math.floor(offset / this.blockSize);
    const last = Math.floor((end - 1) / this.blockSize);
    const pinned: Buffer[] = [];
    try {
      // Pin each block the moment it is ours: an eviction can only happen in a later task.
      const blocks = await Promise.all(
        Array.from({ length: last - first + 1 }, (_, i) => this.block(source, first + i).then((b) => {
          pinned.push(this.pin(b));
          return b;
        })),
      );
      if (cancelled()) return 0;
      let written = 0;
      for (let i = 0; i < blocks.length; i++) {
        const blockStart = (first + i) * this.blockSize;
        const from = Math.max(offset, blockStart) - blockStart;
        const to = Math.min(end, blockStart + this.blockSize) - blockStart;
        written += blocks[i]!.copy(target, written, from, to);
      }
      return written;
    } finally {
      for (const b of pinned) this.unpin(b);
    }
  }

  /** Read [offset, offset+length) into a new buffer (callers that keep the bytes). */
  async read(source: RangeSource, offset: number, length: number): Promise<Buffer> {
    const end = Math.min(offset + length, source.size);
    if (end <= offset) return Buffer.alloc(0);
    const out = Buffer.allocUnsafe(end - offset);
    const n = await this.readInto(source, offset, end - offset, out);
    return out.subarray(0, n);
  }
}
