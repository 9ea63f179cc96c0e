/**
 * Per-open-file read state with sequential readahead (DESIGN §4, after mountpoint-s3's
 * prefetcher).
 *
 * A read that starts near where the last one ended is "sequential". While reads stay
 * sequential, the readahead window (in blocks) grows each time the reader enters a new block, up
 * to `maxWindowBlocks` (8 by default); a seek elsewhere resets it to 0, so random readers fetch
 * only what they touch. A run from the start of the file — how cp, cat and pandas.read_csv
 * read — grows RAMP_FACTOR-fold (4 blocks ahead at once — at the second read if the first was a
 * header's, SMALL_FIRST_READ — then the cap); a run that began at a
 * seek (a random reader wandering forward) doubles from 1. "Near" tolerates the kernel's
 * out-of-order readahead: anything inside the current window counts. Prefetches are skipped
 * while the cache's readahead bytes exceed `inflightBudget`, so memory stays bounded whatever the
 * number of readers; a closed file's unread prefetches leave that budget at once.
 *
 * A run that has gone on for `streamAfterBytes` is a scan: its blocks are read in `stream` mode
 * (block-cache.ts keeps them in probation rather than the main LRU), so one pass over a big file
 * neither flushes the cache nor writes fresh memory for every block.
 *
 * Every read runs under a deadline (`readTimeoutMs`): a stalled GET fails this read with EIO
 * (the mount stays usable) long before fuse-native's own per-op timeout could answer ETIMEDOUT.
 */
import type { RangeSource } from '../s3/object-store.js';
import type { BlockCache, ReadMode } from './block-cache.js';
import type { ReadWindow } from './fast-read.js';
import { FsError } from './errors.js';

/** Longest a read waits past --read-timeout for the mount's own pacing (Synapse's window is 60 s). */
export const MAX_HELD_BACK_MS = 120_000;

export interface ReadaheadOptions {
  maxWindowBlocks: number;
  /** Readahead outstanding (in flight + prefetched, unread), all handles together. */
  inflightBudget: number;
  readTimeoutMs: number;
  /** A sequential run this long is a scan (default: never). */
  streamAfterBytes?: number;
}

/**
 * Window growth per block entered. Doubling (2 blocks at the first read, then 4, 8) kept a
 * medium file's blocks waiting on S3's latency one after another: 16 files of 32 MiB read in
 * turn with 20 ms per request, 214–251 MiB/s (mean 232) with doubling against 266–294 (mean 279)
 * with 4; growing 2 then 8 gained nothing (mean 242 against 245), so it is the first read's
 * depth that counts (bench/README.md, "Reads (session 7)"). The price: a reader of only a big
 * file's header prefetches 4 blocks instead of 2. Only for runs from offset 0.
 */
const RAMP_FACTOR = 4;

/**
 * A run from offset 0 whose first read is at most this waits for a second read before it reads
 * ahead: a reader of a header (`head -c`, `file`, a format's magic number) fetches its piece, not
 * 5 blocks (QA: 40 MiB for 100 bytes; mountpoint-s3 and gcsfuse also start small). At most, not
 * under: Python's buffered `open(p, 'rb').read(4096)` asks st_blksize, 128 KiB, and fetched the
 * whole block and its readahead (QA: 600 MB for 4 KiB headers of 300 files). `cat`'s and `cp`'s
 * second 128 KiB read follows at once and starts the readahead; `dd bs=1M` starts it at its first.
 */
const SMALL_FIRST_READ = 128 * 1024;

/**
 * After a random read (or a header's), the next read continues a run only if it starts where
 * that one ended or up to this far past it; anything else is another random read. Once a run has a
 * window, reads anywhere in it count (the kernel's readahead comes out of order). Before, the
 * slack was a whole block, so SQLite, HDF5 or zarr reading records a few MiB apart ramped
 * readahead and fetched whole blocks (review, session 26). As mountpoint-s3 and gcsfuse, which
 * call a reader sequential only at (or just past) the expected offset.
 */
const AFTER_RANDOM_SLACK = 128 * 1024;

/** A read this large, after one as large, continues a stream (ReadHandle.planReadahead). */
const STREAM_READ = 256 * 1024;

/** Window ends remembered (ReadHandle.windowEnds): about as many as the fast path keeps per file. */
const WINDOW_ENDS = 8;

export class ReadHandle {
  private nextOffset = 0;
  private windowBlocks = 1;
  private lastBlock = -1;
  /** Where the current sequential run began. */
  private runStart = 0;
  /**
   * Blocks up to here were prefetched or found present by an earlier plan of this run, so a
   * plan walks only the new end of the window — not 8 cache lookups per 128 KiB request.
   */
  private coveredUpTo = -1;
  /**
   * The first read was a header's (SMALL_FIRST_READ): no readahead, and no window for the fast
   * path, whose reads never reach this handle — the second read must, to start the readahead.
   */
  private headerOnly = false;
  private lastMode: ReadMode = 'demand';
  /** The last read planned was not part of a sequential run (a seek elsewhere). */
  private lastRandom = false;
  /** The block of the last random read: it may hold only pieces (block-cache.ts). */
  private piecesAt = -1;
  /** The length of the last read planned. */
  private lastLength = 0;
  /** Reads that continued the run since the last random read (or header read). */
  private runReads = 0;
  /** The last read was random (a seek, not a header's): the run after it is confirmed at its second read. */
  private afterSeek = false;
  /**
   * Ends of the last windows handed to the fast path (its reads never reach JS): a read JS sees
   * at one of them continues a run the reader made in C — a sequential reader's, or a "random"
   * reader's that went on reading from where it landed (review: dd skip= into a cached block).
   */
  private readonly windowEnds: number[] = [];

  constructor(
    readonly source: RangeSource,
    private readonly cache: BlockCache,
    private readonly opts: ReadaheadOptions,
  ) {}

  /**
   * Copy up to `length` bytes at `offset` into `target`; returns the count (0 at EOF) —
   * synchronously when the cache already holds every byte, the usual case
   * of a sequential reader behind its readahead: no promise, timer or race per 128 KiB request
   * (8,192 of them per GiB).
   */
  readAny(target: Buffer, offset: number, length: number): number | Promise<number> {
    if (offset >= this.source.size) return 0;
    const mode = this.planReadahead(offset, length);
    const now = this.cache.readIntoNow(this.source, offset, length, target, mode);
    if (now !== undefined) return now;
    // A miss: something the window held may be gone (a failed prefetch, an evicted block), so
    // the next plan walks the whole window again.
    this.coveredUpTo = Math.min(this.coveredUpTo, Math.floor(offset / this.cache.blockSize));
    return this.fetchInto(target, offset, length, mode);
  }

  private async fetchInto(target: Buffer, offset: number, length: number, mode: ReadMode): Promise<number> {
    const deadline = this.opts.readTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    // Time spent waiting for the mount's own Synapse pacing (a presigned URL behind a burst of
    // writes) does not count: --read-timeout is for a stalled network, and QA saw md5sum fail
    // with EIO while `tar x` filled the request budget. Bounded all the same.
    const started = Date.now();
    const timeout = new Promise<never>((_, reject) => {
      const expire = (): void => {
        if (this.source.heldBack?.() && Date.now() - started < deadline + MAX_HELD_BACK_MS) {
          timer = setTimeout(expire, Math.min(deadline, 5_000));
          return;
        }
        timedOut = true;
        reject(new FsError('EIO', `read of ${this.source.cacheKey} at ${offset} took longer than ${deadline} ms`));
      };
      timer = setTimeout(expire, deadline);
    });
    try {
      // After a timeout the fetch may still finish: `timedOut` stops it writing into `target`,
      // which belongs to libfuse again once we have answered.
      return await Promise.race([this.cache.readInto(this.source, offset, length, target, () => timedOut, mode), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The block holding `offset`, held in memory for reads that bypass this handle (the FUSE read
   * fast path, fast-read.ts), or undefined when it is not in the cache. `length` is the block's
   * bytes of the file; `eof` says it ends the file. Release it when done; `onDropped` is
   * asked when the block leaves the cache (BlockCache.hold).
   */
  window(offset: number, onDropped: () => boolean, moveOn = true): ReadWindow | undefined {
    if (offset < 0 || offset >= this.source.size || this.headerOnly) return undefined;
    const bs = this.cache.blockSize;
    const index = Math.floor(offset / bs);
    const held = this.cache.hold(this.source, index, this.lastMode, onDropped);
    if (!held) return undefined;
    const start = index * bs;
    const length = Math.min(bs, this.source.size - start);
    // Reads served from the window never reach planReadahead: the hand-over counts as the
    // reader reaching `offset`, so readahead moves on now (taking this block out of `staged`
    // freed budget), not at the next read JS sees, a block later. Not for a block a random
    // reader just read (`moveOn` false): that is no step forward, and must start no readahead.
    if (!this.windowEnds.includes(start + length)) {
      this.windowEnds.push(start + length);
      if (this.windowEnds.length > WINDOW_ENDS) this.windowEnds.shift();
    }
    if (moveOn) this.planReadahead(offset, 0);
    return { start, length, eof: start + length === this.source.size, buf: held.buf, release: held.release };
  }

  /** The last read JS saw was a seek away from the sequential run (fast-read.ts keeps its block in C). */
  get lastReadRandom(): boolean {
    return this.lastRandom;
  }

  /** The file was closed: what readahead staged for it and nobody read gives the budget back. */
  close(): void {
    this.cache.releaseStaged(this.source);
  }

  /** Read into a new buffer (tests, tools). */
  async read(offset: number, length: number): Promise<Buffer> {
    const out = Buffer.allocUnsafe(Math.max(0, Math.min(length, this.source.size - offset)));
    const n = await this.readAny(out, offset, out.length);
    return out.subarray(0, n);
  }

  private planReadahead(offset: number, length: number): ReadMode {
    const bs = this.cache.blockSize;
    const block = Math.floor(offset / bs);
    // After a random read only a step forward continues: a record read again is no run. A
    // first read is a run only from (near) the file's start: one further on is a seek.
    const afterRandom = this.windowBlocks === 0 || this.lastBlock === -1;
    const windowBytes = afterRandom ? AFTER_RANDOM_SLACK : Math.max(this.windowBlocks, 1) * bs;
    // A read just past a window's end: the reader read through that block in C.
    const fromWindow = length > 0 && this.windowEnds.some((end) => offset >= end && offset <= end + AFTER_RANDOM_SLACK);
    if (fromWindow && this.runReads < 1) this.runReads = 1; // with this read, a confirmed run
    const nearby = fromWindow || (offset >= this.nextOffset - (afterRandom ? 0 : windowBytes) && offset <= this.nextOffset + windowBytes);
    if (offset === 0 && !nearby) {
      // Back to the start: a new run.
      this.runStart = 0;
      this.coveredUpTo = -1;
    }
    // The start of the file begins a run — but not right after a random read or a header's:
    // SQLite reads its header, then page 1, from offset 0 again, then pages all over (a re-read
    // of offset 0 ramped readahead to 4 blocks, QA session 26).
    const sequential = nearby || (offset === 0 && !afterRandom);
    const previousLength = this.lastLength;
    if (length > 0) this.lastLength = length;
    if (length > 0) this.lastRandom = !sequential;
    this.nextOffset = Math.max(this.nextOffset, offset + length);
    if (!sequential) {
      this.lastMode = 'random';
      this.headerOnly = false; // a header, then seeks: a random reader, which gets windows
      this.piecesAt = block;
      this.runReads = 0;
      this.afterSeek = true;
      this.windowBlocks = 0;
      this.nextOffset = offset + length;
      this.lastBlock = block;
      this.runStart = offset;
      this.coveredUpTo = block;
      return 'random';
    }
    if (this.lastBlock === -1 && length > 0 && length <= SMALL_FIRST_READ && length < bs / 2) {
      // The first read, and a small one: its block only, until a second read says more comes.
      this.lastBlock = block;
      this.windowBlocks = 0;
      this.headerOnly = true;
      this.piecesAt = block;
      this.runReads = 0;
      this.lastMode = 'random';
      return 'random';
    }
    if (this.headerOnly) {
      if (length === 0) return this.lastMode; // a window handed out is no second read
      this.headerOnly = false;
      this.windowBlocks = 1; // ramps to RAMP_FACTOR below
      this.lastBlock = -1;
    }
    if (block !== this.lastBlock) {
      const factor = this.runStart === 0 ? RAMP_FACTOR : 2;
      this.windowBlocks = Math.min(Math.max(1, this.windowBlocks * factor), this.opts.maxWindowBlocks);
      this.lastBlock = block;
    }
    // A run that began with a random read (a seek, a header) may have only pieces of its block
    // (block-cache.ts): at its second read on, the run wants all of it, before its reads pass
    // those pieces. Not at the first: SQLite reads page 2 after page 1, then pages elsewhere.
    // Two large reads in a row (dd bs=1M, a 1 MiB read loop) are a stream already: confirmed at
    // once, so a slow S3 is waited for once, not three times (QA: 1.8× the time at 150 ms).
    if (length >= STREAM_READ && previousLength >= STREAM_READ && this.afterSeek && this.runReads === 0) this.runReads = 1;
    if (length > 0) this.runReads++;
    if (length > 0 && this.piecesAt !== -1 && this.runReads >= 2) {
      this.piecesAt = -1;
      if (!this.cache.has(this.source, block) && this.cache.hasPiecesOf(this.source, block) && this.cache.readaheadInUse() < this.opts.inflightBudget) {
        this.cache.prefetch(this.source, block);
      }
    }
    // After a seek the run's first read reads nothing ahead and fetches pieces if it misses: a
    // 1 MiB read into an unaligned buffer comes as two requests, and the second, in the next
    // block, read that block and the one after it ahead (review: 10 MiB for a 1 MiB read).
    if (this.afterSeek) {
      if (this.runReads < 2) return 'random';
      this.afterSeek = false;
      // Confirmed: the next block too, with the rest of this one.
      this.windowBlocks = Math.min(Math.max(this.windowBlocks, 1), this.opts.maxWindowBlocks);
    }
    const last = Math.min(block + this.windowBlocks, Math.floor((this.source.size - 1) / bs));
    for (let next = Math.max(block + 1, this.coveredUpTo + 1); next <= last; next++) {
      if (!this.cache.has(this.source, next)) {
        if (this.cache.readaheadInUse() >= this.opts.inflightBudget) break;
        this.cache.prefetch(this.source, next);
      }
      this.coveredUpTo = next;
    }
    this.lastMode = offset - this.runStart >= (this.opts.streamAfterBytes ?? Infinity) ? 'stream' : 'demand';
    // After a header read, too, the run's first read fetches pieces if it misses (above, after a seek).
    if (block === this.piecesAt && this.runReads < 2) return 'random';
    return this.lastMode;
  }
}
