/**
 * The FUSE read fast path: reads answered on libfuse's own threads, without the JS thread.
 *
 * Through the page cache a GiB is 8,192 reads of 128 KiB (1,024 of 1 MiB for reads that bypass
 * it, fuse-terms.ts); each went to the JS thread and back
 * (two thread wake-ups, a handful of N-API objects, a copy): about half the mount's CPU on a cold
 * sequential read, which on a small machine is CPU taken from everything else. The install step
 * patches fuse-native's C source (scripts/fix-fuse-native.mjs) with a table of *windows*: blocks
 * of open files that the block cache holds in memory, keyed by (fh, block). A read that falls
 * inside one of its file's windows is copied there and then; any other read goes to JS as before.
 *
 * After JS answers a read, the adapter offers a block (WindowKind). A sequential reader is offered
 * the block where its next read will start, which replaces its previous one: JS still sees the
 * first read of (at least) every other block, which is where readahead is planned and the next
 * window handed over; the reads in between (7–63 per 8 MiB block) never leave C. A random reader
 * is offered the block it just read, kept beside its others: once it has touched a block, its
 * reads there never leave C (random 4 KiB reads of cached data: 2–3× the rate through JS —
 * bench/README.md).
 *
 * Safety: a window's buffer is held (BlockCache.hold: pinned, so never recycled) until the C
 * side has let go of it. Setting or clearing a window takes the C table's lock, which waits for
 * a copy in progress; only then is the previous window released. Windows are cleared when their
 * fd is released, at unmount, and when their block leaves the cache unread since the last
 * such notice (so memory stays within --cache-size; a block still being read goes back into
 * the cache instead, as its reads would have kept it there had they reached the LRU), when another
 * window takes their C slot; at most MAX_WINDOWS are held (the oldest go first). Only read-only opens get
 * windows: a file open for writing changes under its readers. Objects are immutable per version,
 * so a window never goes stale; a reader moved on to a version this mount published loses its
 * windows first (filesystem.ts readersFollow).
 *
 * Without the patched addon (no compiler at install) `loadFastBinding()` finds nothing and
 * every read takes the JS path; SYNAPSE_MOUNT_FAST_READ=0 turns the fast path off.
 */
import { loadPatchedFunctions } from '../native-addon.js';

/** The functions the C patch adds to fuse-native's addon. */
export interface FastBinding {
  /** The size of every window (the block cache's); forgets every window. Call before the first. */
  synapse_fast_block_size(bytes: number): void;
  /**
   * Set `fh`'s window on the block at `start` (a multiple of the block size); returns the C
   * table slot it took — replacing whatever window held that slot, whose buffer no copy reads
   * once this returns.
   */
  synapse_fast_set(fh: number, start: number, buf: Buffer, eof: boolean, length: number): number;
  /** Clear `fh`'s window on the block at `start` if its slot still holds it; returns after copies in progress end. */
  synapse_fast_clear(fh: number, start: number): void;
  /** Reads that window answered since it was set or last asked. */
  synapse_fast_take(fh: number, start: number): number;
  /** Reads answered from windows since the addon loaded. */
  synapse_fast_hits_count(): number;
  /** Absent from addons patched before v12. */
  synapse_fast_replies_count?(): number;
}

/** A held block of an open file: the bytes [start, start + length) of the file are `buf`'s first bytes. */
export interface ReadWindow {
  start: number;
  length: number;
  /** The window ends the file: reads past it are answered with what is left (0 at the end). */
  eof: boolean;
  buf: Buffer;
  release(): void;
}

/**
 * Windows held at once, all files together. Each pins a block the cache holds anyway (a block
 * the cache drops is let go unless C read from it since last asked), so this bounds bookkeeping,
 * not memory; the C table has 4,096 slots.
 */
const MAX_WINDOWS = 1024;

/** The patched addon's functions, or undefined when the prebuild is in use or the path is off. */
export function loadFastBinding(env: NodeJS.ProcessEnv = process.env): FastBinding | undefined {
  if (env['SYNAPSE_MOUNT_FAST_READ'] === '0') return undefined;
  return loadPatchedFunctions<FastBinding>('synapse_fast_block_size', 'synapse_fast_set', 'synapse_fast_clear', 'synapse_fast_take', 'synapse_fast_hits_count');
}


/**
 * What a window is for. `next`: where a sequential reader's next read starts — an fd has one
 * such window, replaced as the reader moves on, so a long scan pins one block, not every block
 * it passed (they go back to the cache's scan-resistant probation as before). `keep`: a block a
 * random reader just read — kept beside the fd's others, so reads that come back to any block
 * the reader has touched are answered in C (random 4 KiB reads of cached data: a FUSE round trip
 * instead of one through the JS thread).
 */
export type WindowKind = 'next' | 'keep';

interface Held {
  fd: number;
  slot: number;
  window: ReadWindow;
}

/**
 * The windows of one mount. One per process: the C table is the addon's, and file handles start
 * over in every SynapseFilesystem, so two mounts in one process would answer each other's reads.
 */
export class FastReadWindows {
  /** C slot → the window in it; insertion order is age (for maxWindows). */
  private readonly bySlot = new Map<number, Held>();
  /** fd → its windows by block start, and the start of its `next` window. */
  private readonly byFd = new Map<number, { windows: Map<number, Held>; next?: number }>();

  constructor(
    private readonly binding: FastBinding,
    readonly blockSize: number,
    private readonly maxWindows = MAX_WINDOWS,
  ) {
    binding.synapse_fast_block_size(blockSize);
  }

  /**
   * JS just answered a read of `fd`: give the C side the block holding `offset` (`next`: where
   * the next read is expected; `keep`: the block just read), if the cache has it and fd has no
   * window there already.
   */
  offer(fd: number, offset: number, kind: WindowKind,
    windowFor: (fd: number, offset: number, onDropped: () => boolean) => ReadWindow | undefined): void {
    const start = Math.floor(offset / this.blockSize) * this.blockSize;
    const mine = this.byFd.get(fd);
    if (mine?.windows.has(start)) return;
    const entry: Held = { fd, slot: -1, window: undefined as unknown as ReadWindow };
    // The block left the cache. Read from since it was last asked: still in use (it goes back
    // into the cache). Else the C side lets go of it, so memory stays within --cache-size.
    const w = windowFor(fd, offset, () => {
      if (this.bySlot.get(entry.slot) !== entry) return false;
      if (this.binding.synapse_fast_take(fd, entry.window.start) > 0) return true;
      this.clear(entry);
      return false;
    });
    if (!w) return; // the current windows, if any, still hold right bytes: keep them
    entry.window = w;
    try {
      entry.slot = this.binding.synapse_fast_set(fd, w.start, w.buf, w.eof, w.length);
    } catch (err) {
      w.release();
      throw err;
    }
    // The slot's previous window (any fd's) is out of C now: it can go.
    const displaced = this.bySlot.get(entry.slot);
    if (displaced) this.forgetHeld(displaced);
    const own = this.byFd.get(fd) ?? { windows: new Map<number, Held>() };
    this.byFd.set(fd, own);
    own.windows.set(w.start, entry);
    this.bySlot.set(entry.slot, entry);
    if (kind === 'next') {
      // A sequential reader moved on: the block it left is the cache's again.
      const previous = own.next === undefined ? undefined : own.windows.get(own.next);
      own.next = w.start;
      if (previous && previous !== entry) this.clear(previous);
    }
    while (this.bySlot.size > this.maxWindows) this.clear(this.bySlot.values().next().value!);
  }

  /** `fd` is being released: its windows go before its blocks are given back. */
  forget(fd: number): void {
    const own = this.byFd.get(fd);
    if (!own) return;
    for (const held of [...own.windows.values()]) this.clear(held);
    this.byFd.delete(fd);
  }

  clearAll(): void {
    for (const held of [...this.bySlot.values()]) this.clear(held);
  }

  get windows(): number {
    return this.bySlot.size;
  }

  /** Out of C first (waits for a copy in progress), then the block is released. */
  private clear(held: Held): void {
    if (this.bySlot.get(held.slot) !== held) return;
    this.binding.synapse_fast_clear(held.fd, held.window.start);
    this.forgetHeld(held);
  }

  /** Drop the bookkeeping of a window C no longer holds, and release its block. */
  private forgetHeld(held: Held): void {
    if (this.bySlot.get(held.slot) === held) this.bySlot.delete(held.slot);
    const own = this.byFd.get(held.fd);
    if (own?.windows.get(held.window.start) === held) {
      own.windows.delete(held.window.start);
      if (own.next === held.window.start) delete own.next;
      if (own.windows.size === 0) this.byFd.delete(held.fd);
    }
    held.window.release();
  }
}

/** Reads the fast path answered in this process (0 without it). */
export function fastReadHits(): number {
  return loadPatchedFunctions<Pick<FastBinding, 'synapse_fast_hits_count'>>('synapse_fast_hits_count')?.synapse_fast_hits_count() ?? 0;
}

/** Of those, the reads the mount's own channel answered as it received them (0 without it). */
export function fastReadReplies(): number {
  return loadPatchedFunctions<Required<Pick<FastBinding, 'synapse_fast_replies_count'>>>('synapse_fast_replies_count')?.synapse_fast_replies_count() ?? 0;
}
