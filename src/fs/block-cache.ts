/**
 * In-memory block cache: fixed-size blocks of immutable objects, keyed by
 * (RangeSource.cacheKey, block index). Block size default 8 MiB (DESIGN §4): large enough that a
 * sequential reader needs few GETs (S3 throughput wants ≥ 8 MiB requests), small enough that a
 * random reader wastes little.
 *
 * Where a block lives (after mountpoint-s3, which keeps prefetched data apart from any cache,
 * and the 2Q policy, which keeps one-pass scans from flushing a cache):
 *
 *   fetching   single-flight: concurrent misses on one block share one GET
 *   staged     prefetched by readahead, not read yet. Outside the LRU, so nothing evicts a block
 *              its reader is about to ask for (an LRU did: prefetched-but-unread blocks were the
 *              least recently used, and parallel readers fetched them twice). Bounded by the
 *              callers' readahead budget (`readaheadInUse()`); unread for STAGED_MAX_AGE_MS, a
 *              block is moved into the main LRU.
 *   main       LRU of blocks read at random, by short sequential runs, or read again: the cache.
 *   probation  small LRU of blocks consumed by a long sequential scan (`mode: 'stream'`; the
 *              ReadHandle decides). A 1 TiB `cp` thus cycles a few buffers instead of flushing
 *              the cache — and instead of writing fresh memory for every block, which on VMs is
 *              the main cost of a cold read (bench/README.md). Keys dropped from probation are
 *              remembered (`ghosts`); a block asked for again is fetched into main (a file read
 *              twice is kept).
 *
 * Pieces (random reads): a random reader's miss (`mode: 'random'`, the ReadHandle decides)
 * fetches only the pieces of its block that it touches — `pieceSize`, 1 MiB by default — instead
 * of the whole block (QA: h5py, SQLite and zarr reading scattered 4 KiB–1 MiB records of a big
 * file fetched 8 MiB per record; gcsfuse and mountpoint-s3 also start random readers at about
 * 1 MiB). Pieces live in the main LRU under keys of their own. A read finds a whole block first,
 * then its pieces. Once half a block's pieces are here, the next miss fetches the whole block
 * (a reader wandering in one block pays at most twice its bytes, in two GETs), and a whole block
 * arriving drops its pieces. Pieces are never pooled; they are droppable as short blocks are
 * (buffers below): a reader pins each piece as it arrives (spansOf), and a block put together
 * around pieces copies each in the turn it is handed over.
 *
 * Failed fetches are not cached; the next read tries again.
 *
 * Optional second tier (`disk`, a BlockStore such as disk-cache.ts): a memory miss asks the disk
 * first, and only then S3; bytes fetched from S3 are handed to the disk tier to keep, without
 * waiting for the write. Prefetches go through the same path, so readahead fills the disk too.
 * Disk errors are never read errors: a failing disk tier is a miss.
 *
 * Buffers: without a disk tier, block buffers come from a BufferPool and go back to it when
 * their block leaves the cache, so a long sequential read stops paying for fresh memory.
 * Readers copy out of blocks (`readInto`) while the blocks are pinned; a block dropped while
 * pinned goes back to the pool only when its last reader is done. Shorter buffers (a small file,
 * a file's last block, a piece) are not pooled but droppable (buffer-pool.ts allocDroppable):
 * their memory is given back when they leave the cache, on the same terms. (With a disk tier,
 * blocks are handed to asynchronous disk writes, so they are never recycled: the GC frees them.)
 * INVARIANTS: a buffer in the pool is neither cached, staged, nor pinned; every pooled buffer a
 * fetch returns is in exactly one of main, probation or staged until it goes back to the pool.
 */
import { LRUCache } from 'lru-cache';
import type { RangeSource } from '../s3/object-store.js';
import { allocDroppable, BufferPool, dropBuffer, isDroppable } from './buffer-pool.js';

/** One block of one immutable object: the disk tier's key (block size included: a remount may use another). */
export interface BlockId {
  object: string;
  blockSize: number;
  index: number;
  /**
   * A random read's piece (`blockSize` is then the piece size): kept apart from whole blocks of
   * that size, which a mount with that --block-size sharing the disk tier stores (review: the
   * pieces' clean-up deleted them).
   */
  piece?: true;
}

/** A persistent block tier behind the memory cache. */
export interface BlockStore {
  /** The block's bytes if stored and intact (exactly `length` bytes), else undefined. */
  get(id: BlockId, length: number): Promise<Buffer | undefined>;
  /**
   * Keep a copy; asynchronous, best effort, never throws. `replaces`: stored pieces of this
   * block, deleted once the block itself is stored (else they stay until evicted).
   */
  put(id: BlockId, data: Buffer, replaces?: BlockId[]): void;
  /** Whether any piece of `object` is stored (one directory read, not a lookup per piece). */
  hasPieces?(object: string): Promise<boolean>;
}

export interface BlockCacheOptions {
  /** Bytes of the main LRU. */
  maxBytes: number;
  /**
   * Whole-block demand fetches in flight at once, in bytes (one always runs); unbounded if not
   * given. The mount gives the readahead budget's size (cache-layout.ts).
   */
  demandBytes?: number;
  blockSize: number;
  /** Bytes of the probation LRU for long sequential scans (default 4 blocks). */
  probationBytes?: number;
  /** Persistent tier consulted on a memory miss before S3 (--cache-dir). */
  disk?: BlockStore;
  /** Fault fresh block buffers in on a worker thread just before first use (BufferPool). */
  prefaultBuffers?: boolean;
  /**
   * What a random reader's miss fetches (default PIECE_BYTES). Pieces are off unless it divides
   * the block size into two or more.
   */
  pieceSize?: number;
}

/** A random reader's fetch: 1 MiB, a few milliseconds of S3 transfer after its first byte. */
export const PIECE_BYTES = 1024 * 1024;

/** A piece of a block being put together: here, on its way (undefined if it fails), or missing. */
type PieceSlot = Buffer | Promise<Buffer | undefined> | undefined;

/** `buf` holds the object's bytes from offset `at` on. */
interface Span {
  buf: Buffer;
  at: number;
}

const blockKey = (cacheKey: string, index: number): string => `${cacheKey}#${index}`;
/** Piece p of a block: its block's key, a dot and p (block keys end in a digit, so never a prefix clash). */
const pieceKey = (key: string, piece: number): string => `${key}.${piece}`;

/**
 * How a reader uses a block: `stream` = part of a long sequential scan (probation, not main);
 * `random` = a read away from any sequential run (a miss fetches pieces, not the block).
 */
export type ReadMode = 'demand' | 'stream' | 'random';

/** A staged block unread this long is presumed abandoned and moved into the main LRU. */
const STAGED_MAX_AGE_MS = 5_000;
const GHOST_KEYS = 16_384;

interface Fetching {
  promise: Promise<Buffer>;
  bytes: number;
  /** A prefetch whose block lands in `staged` for its reader (false once that reader closed). */
  staging: boolean;
}

export class BlockCache {
  readonly blockSize: number;
  /** A random miss's fetch; equal to blockSize when pieces are off. */
  readonly pieceSize: number;
  private readonly main: LRUCache<string, Buffer>;
  private readonly probation: LRUCache<string, Buffer>;
  private readonly ghosts = new LRUCache<string, true>({ max: GHOST_KEYS });
  /** Objects whose pieces this cache found on or handed to the disk tier (heldPiecesWithDisk). */
  /** Objects with pieces on disk (true), or asked and found none there (false): DiskStore.hasPieces once per object. */
  private readonly piecesOnDisk = new LRUCache<string, boolean>({ max: GHOST_KEYS });
  private readonly fetching = new Map<string, Fetching>();
  /** Insertion order = age (oldest first). */
  private readonly staged = new Map<string, { buf: Buffer; at: number }>();
  private fetchingBytes = 0;
  private prefetchingBytes = 0;
  private stagedBytes = 0;
  private readonly pool: BufferPool | undefined;
  private readonly pins = new Map<Buffer, number>();
  /** hold()ers of a buffer: told when it leaves the cache (true: still reading it). */
  private readonly holders = new Map<Buffer, Set<() => boolean>>();
  /** Dropped while pinned: back to the pool when the last pin goes. */
  private readonly releaseWhenUnpinned = new Set<Buffer>();
  stats = { hits: 0, misses: 0, bytesFetched: 0, diskHits: 0, pieceFetches: 0 };

  /**
   * Whole-block demand fetches (blocks readers wait for) in flight, in bytes, and those queued
   * for room (gated). Prefetches have the readahead budget; demand fetches had no bound, and 250
   * threads each opening a 7 MiB file held ≈ 0.6 GiB of buffers being filled beside a full cache
   * (QA session 31). Pieces are not gated: a block fetch may wait for a piece on its way
   * (fillAroundPieces), and a piece queued behind it would never come.
   */
  private demandBytes = 0;
  private readonly demandQueue: Array<{ bytes: number; go: () => void }> = [];
  private readonly demandLimit: number;

  constructor(private readonly opts: BlockCacheOptions) {
    this.blockSize = opts.blockSize;
    this.demandLimit = opts.demandBytes ?? Infinity;
    const piece = opts.pieceSize ?? PIECE_BYTES;
    this.pieceSize = piece > 0 && piece < opts.blockSize && opts.blockSize % piece === 0 ? piece : opts.blockSize;
    this.pool = opts.disk ? undefined : new BufferPool(opts.blockSize, undefined, { prefault: opts.prefaultBuffers ?? false });
    const lru = (bytes: number, onEvict?: (key: string) => void): LRUCache<string, Buffer> => {
      const cache: LRUCache<string, Buffer> = new LRUCache<string, Buffer>({
        maxSize: Math.max(bytes, opts.blockSize),
        sizeCalculation: (b) => Math.max(1, b.length),
        dispose: (buf, key, reason) => {
          this.recycle(buf, reason === 'evict' ? { key, from: cache } : undefined);
          if (reason === 'evict') onEvict?.(key);
        },
      });
      return cache;
    };
    this.main = lru(opts.maxBytes);
    this.probation = lru(opts.probationBytes ?? 4 * opts.blockSize, (key) => this.ghosts.set(key, true));
  }

  /** A buffer left main or probation (`evicted`: pushed out by size, with where it was). */
  private recycle(buf: Buffer, evicted?: { key: string; from: LRUCache<string, Buffer> }): void {
    // Without a disk tier, a whole block goes back to the pool and any other buffer of ours
    // (allocDroppable) gives its memory back; with one, blocks may still be being written to disk.
    const ours = this.pool !== undefined && (buf.length === this.blockSize || isDroppable(buf));
    if (!ours && !this.holders.has(buf)) return;
    // Readers pin a block in the microtask after they receive it, and a drop can happen in
    // between (another fetch resolving in the same turn). Decide one macrotask later, when every
    // reader that got this buffer has pinned it.
    setImmediate(() => {
      // Holders outside this class (hold()) are asked first. Reads they answer never touch the
      // LRU, so a block one of them is still reading was evicted as if idle: it goes back as the
      // most recently used, which is where those reads would have kept it. The others let go,
      // so a block that left the cache is not kept beyond --cache-size for them.
      let inUse = false;
      for (const dropped of [...(this.holders.get(buf) ?? [])]) {
        try {
          if (dropped()) inUse = true;
        } catch {
          // a holder's failure must not keep the buffer from the pool
        }
      }
      if (inUse && evicted && !this.main.has(evicted.key) && !this.probation.has(evicted.key) && !this.staged.has(evicted.key)) {
        this.ghosts.delete(evicted.key);
        evicted.from.set(evicted.key, buf);
        this.dropPieces(evicted.key); // random reads may have fetched some while it was out
        return;
      }
      if (!ours) return;
      if ((this.pins.get(buf) ?? 0) > 0) this.releaseWhenUnpinned.add(buf);
      else this.release(buf);
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
    if (this.releaseWhenUnpinned.delete(buf)) this.release(buf);
  }

  /** A buffer of ours nothing refers to any more: back to the pool, or its memory to the system. */
  private release(buf: Buffer): void {
    if (isDroppable(buf)) dropBuffer(buf);
    else this.pool?.release(buf);
  }

  /** Run a demand block fetch of `bytes` once those in flight leave room (FIFO; one always runs). */
  private async gated<T>(bytes: number, fetch: () => Promise<T>): Promise<T> {
    if (this.demandBytes > 0 && (this.demandQueue.length > 0 || this.demandBytes + bytes > this.demandLimit)) {
      await new Promise<void>((go) => this.demandQueue.push({ bytes, go }));
    } else this.demandBytes += bytes;
    try {
      return await fetch();
    } finally {
      this.demandBytes -= bytes;
      while (this.demandQueue.length > 0 && (this.demandBytes === 0 || this.demandBytes + this.demandQueue[0]!.bytes <= this.demandLimit)) {
        const next = this.demandQueue.shift()!;
        this.demandBytes += next.bytes;
        next.go();
      }
    }
  }

  /**
   * GET [start, end) into a buffer of ours (lend), given back if the GET fails. One buffer for
   * every try: a retried GET writes its new body over a failed one (the failed body's stream is
   * destroyed first, so nothing writes into it afterwards).
   */
  private async getIntoLent(source: RangeSource, start: number, end: number): Promise<Buffer> {
    let lent: Buffer | undefined;
    const alloc = this.pool ? (): Buffer => (lent ??= this.lend(end - start)!) : undefined;
    let data: Buffer;
    try {
      data = await source.read(start, end, undefined, alloc);
    } catch (err) {
      if (lent) this.release(lent);
      throw err;
    }
    if (lent && lent !== data) this.release(lent);
    return data;
  }

  /** A buffer for `bytes` of a block: from the pool when whole, else droppable (never with a disk tier). */
  private lend(bytes: number): Buffer | undefined {
    if (!this.pool) return undefined;
    return bytes === this.blockSize ? this.pool.acquire() : allocDroppable(bytes);
  }

  /** Bytes currently being fetched (not yet in the cache). */
  get inflightBytes(): number {
    return this.fetchingBytes;
  }

  /**
   * Readahead outstanding: prefetches in flight plus prefetched (staged) blocks not read yet. A method, not a getter, because
   * asking moves stale staged blocks out of the budget first (into the cache): readers check the
   * budget before they prefetch, so blocks staged for readers that stopped (a `head`, a closed
   * file) would otherwise hold it, and no file would get readahead again.
   */
  readaheadInUse(): number {
    this.demoteStaleStaged();
    return this.prefetchingBytes + this.stagedBytes;
  }

  /** Bytes held: main + probation + staged. */
  get cachedBytes(): number {
    return this.main.calculatedSize + this.probation.calculatedSize + this.stagedBytes;
  }

  private key(source: RangeSource, index: number): string {
    return blockKey(source.cacheKey, index);
  }

  /**
   * Might block 0 of the object `cacheKey` be served without S3? Yes when memory holds it (or is
   * fetching it), and always with a disk tier (which may hold it from an earlier mount; asking it
   * would be a disk read per open). An open uses this to decide whether to fetch a small file
   * whole (file-sources.ts OpenCache).
   */
  mayHoldStart(cacheKey: string | undefined): boolean {
    if (this.opts.disk) return true;
    if (cacheKey === undefined) return false;
    return this.holds(blockKey(cacheKey, 0));
  }

  /**
   * A block that came with something else (a small file's whole body, with its open's version
   * check: file-sources.ts): kept as a demand read's block would be, unless one is here already.
   */
  offer(source: RangeSource, index: number, buf: Buffer): void {
    const key = this.key(source, index);
    if (this.holds(key)) return;
    this.stats.bytesFetched += buf.length;
    this.keep(key, buf, 'demand');
    this.dropPieces(key);
  }

  /** Cached, staged or being fetched: a prefetch would add nothing. */
  has(source: RangeSource, index: number): boolean {
    return this.holds(this.key(source, index));
  }

  private holds(key: string): boolean {
    return this.holdsBlock(key) || this.fetching.has(key);
  }

  async block(source: RangeSource, index: number, mode: ReadMode = 'demand'): Promise<Buffer> {
    const key = this.key(source, index);
    const ready = this.lookup(key, mode);
    if (ready) {
      this.stats.hits++;
      return ready;
    }
    const pending = this.fetching.get(key) ?? this.startFetch(source, index, key, false, mode);
    const buf = await pending.promise;
    // A prefetch we joined put the block in `staged`: this read consumes it.
    return this.lookup(key, mode) ?? buf;
  }

  /** A block already here: main, probation, or staged (which this read consumes). */
  private lookup(key: string, mode: ReadMode): Buffer | undefined {
    const hit = this.main.get(key) ?? this.probation.get(key);
    if (hit) return hit;
    const staged = this.staged.get(key);
    if (!staged) return undefined;
    this.unstage(key, staged.buf);
    this.keep(key, staged.buf, mode);
    return staged.buf;
  }

  private unstage(key: string, buf: Buffer): void {
    this.staged.delete(key);
    this.stagedBytes -= buf.length;
  }

  /** Put a block where its use says: a scan's blocks in probation, unless asked for before. */
  private keep(key: string, buf: Buffer, mode: ReadMode): void {
    if (mode === 'stream' && !this.ghosts.has(key)) this.probation.set(key, buf);
    else {
      this.ghosts.delete(key);
      this.main.set(key, buf);
    }
  }

  /**
   * Hold a block that is here (main, probation, or staged — which this consumes, as a read
   * would) for a reader outside this class (the FUSE read fast path, fast-read.ts): its buffer
   * is neither recycled nor reused until `release()`. When the block leaves the cache,
   * `onDropped` is called (a turn later): true says the holder is still reading it (an
   * evicted block then goes back into the cache as the most recently used), false that it let
   * go. Undefined when the block is not here.
   */
  hold(source: RangeSource, index: number, mode: ReadMode, onDropped: () => boolean): { buf: Buffer; release: () => void } | undefined {
    const buf = this.lookup(this.key(source, index), mode);
    if (!buf) return undefined;
    this.pin(buf);
    const set = this.holders.get(buf) ?? new Set<() => boolean>();
    this.holders.set(buf, set);
    set.add(onDropped);
    let held = true;
    return {
      buf,
      release: () => {
        if (!held) return;
        held = false;
        set.delete(onDropped);
        if (set.size === 0 && this.holders.get(buf) === set) this.holders.delete(buf);
        this.unpin(buf);
      },
    };
  }

  /**
   * Start fetching a block without waiting; errors are left for a real read to see. Callers
   * check `readaheadInUse()` first, which is where stale staged blocks leave the budget.
   */
  prefetch(source: RangeSource, index: number): void {
    if (this.has(source, index)) return;
    this.startFetch(source, index, this.key(source, index), true, 'demand').promise.catch(() => undefined);
  }

  /**
   * A reader closed its file: blocks prefetched for it and not read leave the readahead budget
   * now, not STAGED_MAX_AGE_MS later (another reader of the same object still finds them), and
   * so do its prefetches still in flight, as soon as they land.
   */
  releaseStaged(source: RangeSource): void {
    const prefix = `${source.cacheKey}#`;
    for (const [key, s] of this.staged) if (key.startsWith(prefix)) this.demoteStaged(key, s.buf);
    for (const [key, f] of this.fetching) if (key.startsWith(prefix)) f.staging = false;
  }

  private demoteStaleStaged(): void {
    const old = Date.now() - STAGED_MAX_AGE_MS;
    for (const [key, s] of this.staged) {
      if (s.at > old) break;
      this.demoteStaged(key, s.buf);
    }
  }

  /** A staged block nobody is coming for: out of the readahead budget, into the main LRU. */
  private demoteStaged(key: string, buf: Buffer): void {
    this.unstage(key, buf);
    this.main.set(key, buf);
  }

  private startFetch(source: RangeSource, index: number, key: string, prefetch: boolean, mode: ReadMode): Fetching {
    const start = index * this.blockSize;
    const bytes = Math.min(start + this.blockSize, source.size) - start;
    const entry: Fetching = { promise: Promise.resolve(Buffer.alloc(0)), bytes, staging: prefetch };
    this.stats.misses++;
    this.fetchingBytes += bytes;
    if (prefetch) this.prefetchingBytes += bytes;
    const fetch = (): Promise<Buffer> => this.fetchBlock(source, index, start, start + bytes);
    entry.promise = (prefetch ? fetch() : this.gated(bytes, fetch)).then((buf) => {
      // Store before anyone awaiting the promise runs: they find it in lookup().
      if (entry.staging) {
        this.staged.set(key, { buf, at: Date.now() });
        this.stagedBytes += buf.length;
      } else this.keep(key, buf, mode);
      this.dropPieces(key);
      return buf;
    }).finally(() => {
      this.fetching.delete(key);
      this.fetchingBytes -= bytes;
      if (prefetch) this.prefetchingBytes -= bytes;
    });
    this.fetching.set(key, entry);
    return entry;
  }

  private async fetchBlock(source: RangeSource, index: number, start: number, end: number): Promise<Buffer> {
    const disk = this.opts.disk;
    const id: BlockId = { object: source.cacheKey, blockSize: this.blockSize, index };
    if (disk) {
      const stored = await this.fromDisk(disk, id, end - start);
      if (stored) return stored;
    }
    const pieces = disk ? await this.heldPiecesWithDisk(disk, source, index, end - start) : this.heldPieces(source, index, end - start);
    if (pieces.some((p) => p !== undefined)) return this.fillAroundPieces(source, id, start, end, pieces);
    const data = await this.getIntoLent(source, start, end);
    this.stats.bytesFetched += data.length;
    // Pieces on disk give way to it — only for an object known to have some there
    // (heldPiecesWithDisk asked the disk once): not 8 stat calls per block of every file.
    if (disk && data.length === end - start) disk.put(id, data, this.piecesOnDisk.get(source.cacheKey) ? this.pieceIdsOf(id, end - start) : []);
    return data;
  }

  /**
   * The pieces of block `index` in memory, by piece number; undefined where one is missing (or
   * short anywhere but at the end). Synchronous: a fetch without a disk tier starts its GET in
   * the caller's turn.
   */
  private heldPieces(source: RangeSource, index: number, blockBytes: number): PieceSlot[] {
    if (this.pieceSize === this.blockSize) return [];
    const key = this.key(source, index);
    return Array.from({ length: Math.ceil(blockBytes / this.pieceSize) }, (_, p) => {
      const length = Math.min(this.pieceSize, blockBytes - p * this.pieceSize);
      const buf = this.main.peek(pieceKey(key, p));
      if (buf) return buf.length === length ? buf : undefined;
      // On its way for a random reader: waited for, not fetched twice (concurrent random readers
      // of one block — DataLoader workers — had their pieces' bytes in the block's GETs too).
      const coming = this.fetching.get(pieceKey(key, p));
      return coming?.promise.then((b) => (b.length === length ? b : undefined), () => undefined);
    });
  }

  /**
   * heldPieces(), with the disk tier asked for those not in memory — for objects with pieces on
   * disk only (this cache put or found some, or the disk said so once, `hasPieces`): asking for
   * every block of every file cost 8 more opens per block in the thread pool the disk writes use
   * (review).
   */
  private async heldPiecesWithDisk(disk: BlockStore, source: RangeSource, index: number, blockBytes: number): Promise<PieceSlot[]> {
    const held = this.heldPieces(source, index, blockBytes);
    let known = this.piecesOnDisk.get(source.cacheKey);
    if (known === undefined && disk.hasPieces) {
      // Once per object: pieces an earlier mount left (its random reads) fill this mount's blocks too.
      const found = await disk.hasPieces(source.cacheKey).catch(() => false);
      // A piece put meanwhile (a random read) has said true already: keep it.
      known = this.piecesOnDisk.get(source.cacheKey) ?? found;
      this.piecesOnDisk.set(source.cacheKey, known);
    }
    if (!known) return held;
    const first = (index * this.blockSize) / this.pieceSize;
    return Promise.all(held.map(async (slot, p) => slot
      ?? (await this.fromDisk(disk, { object: source.cacheKey, blockSize: this.pieceSize, index: first + p, piece: true }, Math.min(this.pieceSize, blockBytes - p * this.pieceSize)))));
  }

  /**
   * A block put together from the pieces here and ranged GETs of the gaps between them: a reader
   * that began with random reads (a header, a seek, SQLite's pages) pays no byte twice (QA: 200
   * SQLite queries fetched 120 MiB of an 85 MiB database while only leading pieces were reused).
   */
  private async fillAroundPieces(source: RangeSource, id: BlockId, start: number, end: number, pieces: PieceSlot[]): Promise<Buffer> {
    const lent = this.lend(end - start);
    const into = lent ?? Buffer.allocUnsafeSlow(end - start);
    const span = (p: number): [number, number] => [p * this.pieceSize, Math.min((p + 1) * this.pieceSize, end - start)];
    /** Ranges [from, to) of the block to GET, neighbours merged. */
    const gapsOf = (missing: number[]): Array<[number, number]> => {
      const gaps: Array<[number, number]> = [];
      for (const p of missing) {
        const [from, to] = span(p);
        if (gaps.length > 0 && gaps[gaps.length - 1]![1] === from) gaps[gaps.length - 1]![1] = to;
        else gaps.push([from, to]);
      }
      return gaps;
    };
    // Every GET settles before the buffer can go back to the pool: a failed gap's sibling may
    // still be writing into it.
    const fetchGaps = (gaps: Array<[number, number]>): Promise<Array<PromiseSettledResult<void>>> => Promise.allSettled(gaps.map(async ([from, to]) => {
      const view = into.subarray(from, to);
      const data = await source.read(start + from, start + to, undefined, () => view);
      if (data.length !== to - from) throw new Error(`short read of ${source.cacheKey} at ${start + from}: ${data.length} of ${to - from} bytes`);
      if (data.buffer !== view.buffer || data.byteOffset !== view.byteOffset) data.copy(into, from);
      this.stats.bytesFetched += data.length;
    }));
    const missing: number[] = [];
    const coming: Array<Promise<void>> = [];
    const lost: number[] = []; // pieces that were on their way and did not come
    pieces.forEach((slot, p) => {
      if (slot instanceof Promise) coming.push(slot.then((b) => { if (b) b.copy(into, span(p)[0]); else lost.push(p); }));
      else if (slot) slot.copy(into, span(p)[0]);
      else missing.push(p);
    });
    const [results] = await Promise.all([fetchGaps(gapsOf(missing)), Promise.all(coming)]);
    if (lost.length > 0) results.push(...(await fetchGaps(gapsOf(lost.sort((a, b) => a - b)))));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      if (lent) this.release(lent);
      throw failed.reason;
    }
    // Its pieces on disk, there or not, give way to it: else a block read randomly, then whole,
    // stayed on disk twice until evicted (QA: 333 MiB for a 260 MiB file).
    if (this.opts.disk) this.opts.disk.put(id, into, this.pieceIdsOf(id, end - start));
    return into;
  }

  /** The disk ids of the pieces of block `id`, `blockBytes` long. */
  private pieceIdsOf(id: BlockId, blockBytes: number): BlockId[] {
    const first = (id.index * this.blockSize) / this.pieceSize;
    return Array.from({ length: Math.ceil(blockBytes / this.pieceSize) }, (_, p) => ({ object: id.object, blockSize: this.pieceSize, index: first + p, piece: true }));
  }

  /** The pieces of block `index` that [offset, end) touches, first and last. */
  private piecesOf(index: number, offset: number, end: number): [number, number] {
    const blockStart = index * this.blockSize;
    const from = Math.max(offset, blockStart) - blockStart;
    const to = Math.min(end, blockStart + this.blockSize) - blockStart;
    return [Math.floor(from / this.pieceSize), Math.floor((to - 1) / this.pieceSize)];
  }

  /** Spans of block `index` that cover [offset, end) from its pieces, or undefined if one is missing. */
  private pieceSpans(source: RangeSource, index: number, offset: number, end: number): Span[] | undefined {
    if (this.pieceSize === this.blockSize) return undefined;
    const key = this.key(source, index);
    const [first, last] = this.piecesOf(index, offset, end);
    const spans: Span[] = [];
    for (let p = first; p <= last; p++) {
      const buf = this.main.get(pieceKey(key, p));
      if (!buf) return undefined;
      spans.push({ buf, at: index * this.blockSize + p * this.pieceSize });
    }
    return spans;
  }

  /**
   * A random miss in block `index` fetches pieces — unless the whole block is on its way, or
   * half of its pieces are here already (a reader wandering in it: the whole block is cheaper).
   */
  private wantsPieces(source: RangeSource, index: number, mode: ReadMode): boolean {
    if (mode !== 'random' || this.pieceSize === this.blockSize) return false;
    const key = this.key(source, index);
    if (this.fetching.has(key)) return false;
    const pieces = Math.ceil((Math.min((index + 1) * this.blockSize, source.size) - index * this.blockSize) / this.pieceSize);
    if (pieces <= 1) return false; // a block of one piece (a small file, a file's short last block) is fetched whole
    return this.piecesComing(key, pieces) * 2 < pieces;
  }

  /** How many of the first `pieces` pieces of block `key` are here or being fetched. */
  private piecesComing(key: string, pieces = this.blockSize / this.pieceSize): number {
    let n = 0;
    for (let p = 0; p < pieces; p++) if (this.main.has(pieceKey(key, p)) || this.fetching.has(pieceKey(key, p))) n++;
    return n;
  }

  /** Some piece of block `index` is here or on its way. */
  hasPiecesOf(source: RangeSource, index: number): boolean {
    return this.pieceSize < this.blockSize && this.piecesComing(this.key(source, index)) > 0;
  }

  /** Block `key`'s pieces leave the cache: its whole block is here. */
  private dropPieces(key: string): void {
    if (this.pieceSize === this.blockSize) return;
    for (let p = 0; p < this.blockSize / this.pieceSize; p++) this.main.delete(pieceKey(key, p));
  }

  /** Piece p of block `index`, from the cache or fetched (single-flight). */
  private piece(source: RangeSource, index: number, p: number): Promise<Span> {
    const key = pieceKey(this.key(source, index), p);
    const at = index * this.blockSize + p * this.pieceSize;
    const hit = this.main.get(key);
    if (hit) {
      this.stats.hits++;
      return Promise.resolve({ buf: hit, at });
    }
    let entry = this.fetching.get(key);
    if (!entry) {
      const bytes = Math.min(at + this.pieceSize, source.size) - at;
      const started: Fetching = { promise: Promise.resolve(Buffer.alloc(0)), bytes, staging: false };
      this.stats.misses++;
      this.stats.pieceFetches++;
      this.fetchingBytes += bytes;
      started.promise = this.fetchPiece(source, index, at, at + bytes).then((fetched) => {
        // Kept unless its whole block came meanwhile (asked now, as it is stored).
        if (!fetched.whole && !this.holdsBlock(this.key(source, index))) this.main.set(key, fetched.buf);
        return fetched.buf;
      }).finally(() => {
        this.fetching.delete(key);
        this.fetchingBytes -= bytes;
      });
      this.fetching.set(key, started);
      entry = started;
    }
    return entry.promise.then((buf) => ({ buf, at }));
  }

  /**
   * The piece's bytes: from the disk tier's whole block if it has it (kept as the block, and the
   * piece is a view of it: disk-tier buffers are never pooled), else the disk tier's piece, else
   * S3 (and the piece is handed to the disk tier).
   */
  private async fetchPiece(source: RangeSource, index: number, start: number, end: number): Promise<{ buf: Buffer; whole: boolean }> {
    const blockKeyOf = this.key(source, index);
    const disk = this.opts.disk;
    const blockStart = index * this.blockSize;
    if (disk) {
      const blockBytes = Math.min(blockStart + this.blockSize, source.size) - blockStart;
      const block = await this.fromDisk(disk, { object: source.cacheKey, blockSize: this.blockSize, index }, blockBytes);
      if (block) {
        if (!this.holds(blockKeyOf)) {
          this.keep(blockKeyOf, block, 'demand');
          this.dropPieces(blockKeyOf);
        }
        return { buf: block.subarray(start - blockStart, end - blockStart), whole: true };
      }
    }
    const id: BlockId = { object: source.cacheKey, blockSize: this.pieceSize, index: start / this.pieceSize, piece: true };
    if (disk) {
      const stored = await this.fromDisk(disk, id, end - start);
      if (stored) {
        this.piecesOnDisk.set(source.cacheKey, true);
        return { buf: stored, whole: this.holdsBlock(blockKeyOf) };
      }
    }
    const data = await this.getIntoLent(source, start, end);
    this.stats.bytesFetched += data.length;
    if (disk && data.length === end - start) {
      disk.put(id, data);
      this.piecesOnDisk.set(source.cacheKey, true);
    }
    return { buf: data, whole: this.holdsBlock(blockKeyOf) };
  }

  /** A block or piece from the disk tier, counted as a disk hit; its errors are misses. */
  private async fromDisk(disk: BlockStore, id: BlockId, length: number): Promise<Buffer | undefined> {
    const stored = await disk.get(id, length).catch(() => undefined);
    if (stored) this.stats.diskHits++;
    return stored;
  }

  /** The whole block is here (not merely being fetched). */
  private holdsBlock(key: string): boolean {
    return this.main.has(key) || this.probation.has(key) || this.staged.has(key);
  }

  /**
   * The synchronous twin of readInto() for the common case — every block already here (cached,
   * in probation, or staged by readahead), or the pieces the read needs: copies and returns the
   * byte count, with the same bookkeeping as a hit. Undefined when anything is missing (the
   * caller then awaits readInto).
   * No pins are needed: nothing can recycle a buffer before this returns (recycle() waits for
   * the next macrotask).
   */
  readIntoNow(source: RangeSource, offset: number, length: number, target: Buffer, mode: ReadMode = 'demand'): number | undefined {
    const end = Math.min(offset + length, source.size, offset + target.length);
    if (end <= offset) return 0;
    const first = Math.floor(offset / this.blockSize);
    const last = Math.floor((end - 1) / this.blockSize);
    const spans: Span[] = [];
    for (let i = first; i <= last; i++) {
      const block = this.lookup(this.key(source, i), mode);
      if (block) {
        spans.push({ buf: block, at: i * this.blockSize });
        continue;
      }
      // Not here (or evicted by moving a staged one into an LRU), nor its pieces: the slow
      // path, which looks the same blocks up again (same effects) and fetches what is missing.
      const pieces = this.pieceSpans(source, i, offset, end);
      if (!pieces) return undefined;
      spans.push(...pieces);
    }
    this.stats.hits += spans.length;
    return copySpans(spans, offset, end, target);
  }

  /**
   * Spans covering block `index`'s part of [offset, end): the block, its pieces, or fetched.
   * `pin` is called for each buffer the moment it is ours — a piece as it arrives, not once its
   * siblings have: one that came first could otherwise leave the cache and be dropped meanwhile.
   */
  private async spansOf(source: RangeSource, index: number, offset: number, end: number, mode: ReadMode, pin: (buf: Buffer) => void): Promise<Span[]> {
    const at = index * this.blockSize;
    const ready = this.lookup(this.key(source, index), mode);
    if (ready) {
      this.stats.hits++;
      pin(ready);
      return [{ buf: ready, at }];
    }
    const pieces = this.pieceSpans(source, index, offset, end);
    if (pieces) {
      this.stats.hits += pieces.length;
      for (const p of pieces) pin(p.buf);
      return pieces;
    }
    if (this.wantsPieces(source, index, mode)) {
      const [first, last] = this.piecesOf(index, offset, end);
      return Promise.all(Array.from({ length: last - first + 1 }, (_, i) => this.piece(source, index, first + i).then((span) => {
        pin(span.buf);
        return span;
      })));
    }
    const block = await this.block(source, index, mode);
    pin(block);
    return [{ buf: block, at }];
  }

  /**
   * Copy [offset, offset+length) of the source into `target` through the cache; returns the
   * number of bytes copied. `cancelled()` is checked right before copying, so a read abandoned
   * by its caller (a timeout already answered) never writes into a buffer it no longer owns.
   */
  async readInto(source: RangeSource, offset: number, length: number, target: Buffer, cancelled: () => boolean = () => false, mode: ReadMode = 'demand'): Promise<number> {
    const end = Math.min(offset + length, source.size, offset + target.length);
    if (end <= offset) return 0;
    const first = Math.floor(offset / this.blockSize);
    const last = Math.floor((end - 1) / this.blockSize);
    const pinned: Buffer[] = [];
    let done = false;
    try {
      // Pin each block the moment it is ours: a drop can only happen in a later task. Not once
      // the read is over (another block failed): nobody would unpin it.
      const pin = (buf: Buffer): void => {
        if (!done) pinned.push(this.pin(buf));
      };
      const perBlock = await Promise.all(Array.from({ length: last - first + 1 }, (_, i) => this.spansOf(source, first + i, offset, end, mode, pin)));
      if (cancelled()) return 0;
      return copySpans(perBlock.flat(), offset, end, target);
    } finally {
      done = true;
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

/** Copy [offset, end) out of spans in order that cover it; returns the count. */
function copySpans(spans: Span[], offset: number, end: number, target: Buffer): number {
  let written = 0;
  for (const { buf, at } of spans) {
    // A droppable buffer given back while still in use reads as empty: an error, never a short
    // read the kernel would take for the end of the file (review: loud, not silent truncation).
    if (buf.length === 0 && isDroppable(buf)) throw new Error('a block buffer was given back while still being read (a bug); the read fails rather than come back short');
    const from = Math.max(offset, at);
    const to = Math.min(end, at + buf.length);
    if (to > from) written += buf.copy(target, from - offset, from - at, to - at);
  }
  return written;
}
