/**
 * The FUSE read fast path: reads answered on libfuse's own threads, without the JS thread.
 *
 * Through the page cache a GiB is 8,192 reads of 128 KiB (1,024 of 1 MiB for reads that bypass
 * it, fuse-terms.ts); each went to the JS thread and back
 * (two thread wake-ups, a handful of N-API objects, a copy): about half the mount's CPU on a cold
 * sequential read, which on a small machine is CPU taken from everything else. The install step
 * patches fuse-native's C source (scripts/fix-fuse-native.mjs) with a table of one *window* per
 * open file — a block of that file the block cache holds in memory. A read that falls inside its
 * file's window is copied there and then; any other read goes to JS as before.
 *
 * After JS answers a read, the adapter offers the block where the next read will start. So JS
 * still sees the first read of (at least) every other block: that is where readahead is planned
 * and the next window handed over; the reads in between (7–63 per 8 MiB block) never leave C.
 *
 * Safety: a window's buffer is held (BlockCache.hold: pinned, so never recycled) until the C
 * side has let go of it. Setting or clearing a window takes the C table's lock, which waits for
 * a copy in progress; only then is the previous window released. Windows are cleared when their
 * fd is released, at unmount, and when their block leaves the cache unread since the last
 * such notice (so memory stays within --cache-size; a block still being read goes back into
 * the cache instead, as its reads would have kept it there had they reached the LRU); at most
 * MAX_WINDOWS are held (the oldest go first). Only read-only opens get
 * windows: a file open for writing changes under its readers. Objects are immutable per version,
 * so a window never goes stale.
 *
 * Without the patched addon (no compiler at install) `loadFastBinding()` finds nothing and
 * every read takes the JS path; SYNAPSE_MOUNT_FAST_READ=0 turns the fast path off.
 */
import { createRequire } from 'node:module';
import path from 'node:path';

/** The functions the C patch adds to fuse-native's addon. */
export interface FastBinding {
  /** Set (buffer) or clear (null) the window of `fh`; returns after copies in progress end. */
  synapse_fast_window(fh: number, start: number, buf: Buffer | null, eof: boolean, length: number): void;
  /** Reads `fh`'s window answered since it was set or last asked. */
  synapse_fast_take_hits(fh: number): number;
  /** Reads answered from windows since the addon loaded. */
  synapse_fast_hits_count(): number;
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

/** The C table's size (SYNAPSE_FAST_SLOTS in the patch): a window lives in slot fh % SLOTS. */
const SLOTS = 4096;
const MAX_WINDOWS = 32;

let addon: object | null | undefined;

/**
 * fuse-native's addon — the same module instance fuse-native loaded (node-gyp-build resolves the
 * same file) — with whatever the patch added (this module's functions, page-cache-bypass.ts's).
 */
export function loadPatchedAddon(): object | null {
  if (addon === undefined) {
    try {
      const require = createRequire(import.meta.url);
      const dir = path.dirname(require.resolve('fuse-native/package.json'));
      addon = createRequire(path.join(dir, 'index.js'))('node-gyp-build')(dir) as object;
    } catch {
      addon = null;
    }
  }
  return addon;
}

/**
 * The addon as `T` when it has every one of `names` as a function; undefined with the prebuild
 * or an addon patched by a version of the script that did not add them yet.
 */
export function loadPatchedFunctions<T>(...names: Array<keyof T & string>): T | undefined {
  const a = loadPatchedAddon() as Record<string, unknown> | null;
  return a && names.every((n) => typeof a[n] === 'function') ? a as T : undefined;
}

/** The patched addon's functions, or undefined when the prebuild is in use or the path is off. */
export function loadFastBinding(env: NodeJS.ProcessEnv = process.env): FastBinding | undefined {
  if (env['SYNAPSE_MOUNT_FAST_READ'] === '0') return undefined;
  return loadPatchedFunctions<FastBinding>('synapse_fast_window', 'synapse_fast_take_hits', 'synapse_fast_hits_count');
}


export class FastReadWindows {
  /** slot → the fd holding it and its window; insertion order is age (for MAX_WINDOWS). */
  private readonly held = new Map<number, { fd: number; window: ReadWindow }>();

  constructor(
    private readonly binding: FastBinding,
    private readonly maxWindows = MAX_WINDOWS,
  ) {}

  /**
   * JS just answered a read of `fd`: give the C side the block holding `offset` (where the next
   * read is expected), if the cache has it and fd has no window there already.
   */
  offer(fd: number, offset: number, windowFor: (fd: number, offset: number, onDropped: () => boolean) => ReadWindow | undefined): void {
    const slot = fd % SLOTS;
    const current = this.held.get(slot);
    if (current?.fd === fd && offset >= current.window.start && offset < current.window.start + current.window.length) return;
    const entry: { fd: number; window: ReadWindow } = { fd, window: undefined as unknown as ReadWindow };
    // The block left the cache. Read from since it was last asked: still in use (it goes back
    // into the cache). Else the C side lets go of it, so memory stays within --cache-size.
    const w = windowFor(fd, offset, () => {
      if (this.held.get(slot) !== entry) return false;
      if (this.binding.synapse_fast_take_hits(fd) > 0) return true;
      this.clearSlot(slot);
      return false;
    });
    if (!w) return; // the current window, if any, still holds right bytes: keep it
    entry.window = w;
    try {
      // Replaces the slot's window atomically; after this returns no copy reads the old buffer.
      this.binding.synapse_fast_window(fd, w.start, w.buf, w.eof, w.length);
    } catch (err) {
      w.release();
      throw err;
    }
    if (current) {
      this.held.delete(slot);
      current.window.release();
    }
    this.held.set(slot, entry);
    while (this.held.size > this.maxWindows) this.clearSlot(this.held.keys().next().value!);
  }

  /** `fd` is being released: its window goes before its block is given back. */
  forget(fd: number): void {
    const slot = fd % SLOTS;
    if (this.held.get(slot)?.fd === fd) this.clearSlot(slot);
  }

  clearAll(): void {
    for (const slot of [...this.held.keys()]) this.clearSlot(slot);
  }

  get windows(): number {
    return this.held.size;
  }

  private clearSlot(slot: number): void {
    const current = this.held.get(slot);
    if (!current) return;
    this.binding.synapse_fast_window(current.fd, 0, null, false, 0);
    this.held.delete(slot);
    current.window.release();
  }
}

/** Reads the fast path answered in this process (0 without it). */
export function fastReadHits(): number {
  return (addon as Partial<FastBinding> | null | undefined)?.synapse_fast_hits_count?.() ?? 0;
}
