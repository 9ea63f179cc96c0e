/**
 * Block-sized buffers carved from large slabs, with a free list. Writing into fresh memory is the
 * single largest cost of a cold read on VMs like ours (first-touch page faults: 2–7 s per GiB,
 * bench/README.md), so buffers of evicted blocks are reused for the next GETs instead of being
 * left to the GC.
 *
 * Why slabs: every new ArrayBuffer is reported to V8 as external memory, and each ~64 MiB of
 * growth makes V8 run a full mark-compact; a cache filling with 8 MiB buffers paid dozens of
 * them. One slab is one report. A slab is only reserved address space until a slice is written
 * (pages are faulted in as they are touched), in 4 KiB pages: backing slabs with 2 MiB pages
 * (glibc's `hugetlb` malloc tunable, sessions 7–11) made first touches dearer and far more
 * variable on the bench VM — each huge page is a fresh 2 MiB block the kernel must zero, where
 * 4 KiB faults mostly reuse recently freed pages (bench/README.md, "Session 12").
 *
 * The block cache's pool never shrinks: it hands out a new slice only when every slice issued so
 * far is in use (cached, being fetched or being read), so what it holds is bounded by the peak
 * the block cache reached, which --cache-size bounds. Write part buffers use one buffer per slab
 * and an `idle` trim, so an idle mount gives most of them back.
 *
 * INVARIANT: a buffer is in the free list only when no cached block and no reader refers to it
 * (BlockCache pins buffers while it copies from them and releases only unpinned ones).
 */
import { prefault } from './prefault.js';

const SLAB_TARGET_BYTES = 64 * 1024 * 1024;

export class BufferPool {
  private readonly free: Buffer[] = [];
  /** Slices of the current slab never handed out (never touched, so not resident). */
  private readonly unissued: Buffer[] = [];
  private readonly ours = new WeakSet<Buffer>();
  /** Membership of `free`: a second release of one buffer would hand it to two blocks. */
  private readonly isFree = new WeakSet<Buffer>();
  private readonly perSlab: number;
  private slabs = 0;

  /**
   * @param slabBytes bytes per slab (one buffer per slab when ≤ size)
   * @param opts.shared slabs are SharedArrayBuffers, which a worker thread can read in place
   *        (upload parts: offthread-hash.ts)
   * @param opts.prefault each time a never-used slice is handed out, the next one is faulted in
   *        on a worker thread (prefault.ts), so the caller's first writes into it find the pages
   *        there; implies `shared`. At most one slice beyond those handed out is ever touched.
   * @param opts.idle after `idle.ms` without an acquire, free buffers beyond `idle.keep` are left
   *        to the GC — only sensible with one buffer per slab (a slab lives while any of its
   *        slices does). While busy, every released buffer is kept for reuse: a dropped
   *        SharedArrayBuffer lingers until V8 collects it, and under a write burst those
   *        lingering slabs pushed peak RSS past the write budget.
   */
  constructor(readonly size: number, slabBytes = SLAB_TARGET_BYTES, private readonly opts: { shared?: boolean; prefault?: boolean; idle?: { keep: number; ms: number } } = {}) {
    this.perSlab = Math.max(1, Math.floor(slabBytes / size));
  }

  private lastAcquire = 0;
  private trimTimer: NodeJS.Timeout | undefined;

  /** Drop idle free buffers once acquires have stopped for `idle.ms`. */
  private scheduleTrim(): void {
    const idle = this.opts.idle;
    if (!idle || this.trimTimer || this.free.length <= idle.keep) return;
    this.trimTimer = setTimeout(() => {
      this.trimTimer = undefined;
      if (Date.now() - this.lastAcquire < idle.ms) {
        this.scheduleTrim();
        return;
      }
      while (this.free.length > idle.keep) this.isFree.delete(this.free.shift()!);
    }, idle.ms);
    this.trimTimer.unref();
  }

  acquire(): Buffer {
    if (this.opts.idle) this.lastAcquire = Date.now();
    const reused = this.free.pop();
    if (reused) {
      this.isFree.delete(reused);
      return reused;
    }
    if (this.unissued.length === 0) this.carveSlab();
    const fresh = this.unissued.pop()!;
    const next = this.unissued[this.unissued.length - 1];
    if (this.opts.prefault && next) prefault(next.buffer as SharedArrayBuffer, next.byteOffset, next.byteOffset + next.length);
    return fresh;
  }

  release(buf: Buffer): void {
    if (!this.ours.has(buf) || this.isFree.has(buf)) return;
    this.isFree.add(buf);
    this.free.push(buf);
    this.scheduleTrim();
  }

  private carveSlab(): void {
    const bytes = this.size * this.perSlab;
    const slab = this.opts.shared || this.opts.prefault ? Buffer.from(new SharedArrayBuffer(bytes)) : Buffer.allocUnsafeSlow(bytes);
    this.slabs++;
    // Hand out low addresses first (pop from the end of a reversed list).
    for (let i = this.perSlab - 1; i >= 0; i--) {
      const slice = slab.subarray(i * this.size, (i + 1) * this.size);
      this.ours.add(slice);
      this.unissued.push(slice);
    }
  }

  get freeCount(): number {
    return this.free.length;
  }

  /** Bytes reserved in slabs (resident only where written). */
  get reservedBytes(): number {
    return this.slabs * this.perSlab * this.size;
  }
}

/**
 * Buffers of at least this size that are not a whole block (a small file's or a file's last
 * block, a random read's 1 MiB piece) are droppable: smaller ones are few bytes and glibc's heap
 * serves them well.
 */
const DROPPABLE_MIN_BYTES = 128 * 1024;
const droppable = new WeakSet<ArrayBufferLike>();

/**
 * A buffer for block bytes that are not pooled, whose memory `dropBuffer` gives back at once.
 * Such buffers used to be left to the GC when their block left the cache, and the process held
 * far more than --cache-size (QA session 31: 250 files of 7 MiB read at once, 1.4 GiB RSS for
 * 413 MB cached): dead buffers wait for a full mark-compact, which V8 runs long after (1.1 GiB of
 * ArrayBuffers held, 0.7 of them garbage), and the memory glibc got back stayed in its heap (its
 * mmap threshold rises to the size of the first big buffer freed, so later ones come from brk,
 * which it cannot shrink: RSS still 1.2 GiB after a forced GC). A resizable ArrayBuffer has its
 * own pages, mapped by V8 outside malloc, and shrinking it to 0 unmaps them there and then.
 */
export function allocDroppable(length: number): Buffer {
  if (length < DROPPABLE_MIN_BYTES) return Buffer.allocUnsafeSlow(length);
  const ab = new (ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer)(length, { maxByteLength: length });
  droppable.add(ab);
  return Buffer.from(ab);
}

export function isDroppable(buf: Buffer): boolean {
  return droppable.has(buf.buffer);
}

/**
 * Give a droppable buffer's memory back now. Only once nothing reads or writes it (the block
 * cache's pins, as for pooled buffers): its views read as empty afterwards, and C code holding
 * its address would fault.
 */
export function dropBuffer(buf: Buffer): void {
  const ab = buf.buffer as ArrayBuffer & { resize(n: number): void };
  if (droppable.has(ab) && ab.byteLength > 0) ab.resize(0);
}
