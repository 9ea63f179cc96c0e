/**
 * Page-faulting fresh buffer memory on a worker thread, before the event loop writes into it.
 *
 * Why: the first write into newly allocated memory makes the kernel find and zero a page, and
 * on the VMs we measured that is dear and variable (bench/README.md, "Caveats"). A cold read of
 * a fresh mount writes its first ≈ 150 MiB of block buffers for the first time *inside the
 * socket reads of the event loop* (`perf`, session 7: page zeroing under `read`, 7.9 % of all
 * CPU samples during a cold 1 GiB read), and while the loop zeroes a page it drains
 * no socket and answers no FUSE request. BufferPool therefore asks this worker to touch a slice
 * just before it is handed out, so the zeroing happens on another core meanwhile.
 *
 * Safety: the worker touches each 4 KiB page with `Atomics.compareExchange(view, i, 0, 0)` — an
 * atomic that stores 0 only where it finds 0. Whatever else writes that word at the same moment
 * (a socket read the kernel is copying into the slice, if the slice was handed out early), the
 * exchange either sees that write and stores nothing, or runs before it, so no byte ever changes.
 * A plain store of 0 could erase data; this cannot. The memory must be a SharedArrayBuffer (only
 * those can be seen by another thread).
 *
 * Why compareExchange and not `Atomics.add(view, i, 0)` (used until session 13): V8 runs add as a
 * load, then a compare-and-swap. The load maps the shared zero page, the swap then takes a second,
 * copy-on-write fault whose TLB flush interrupts every other core running this process (`perf`:
 * do_wp_page → flush_tlb_mm_range → smp_call_function_many_cond under Builtins_AtomicsAdd).
 * x86's `lock cmpxchg` is a write even when it stores nothing, so each page faults once, as a
 * write (measured: 16,386 faults for 16,384 pages against 32,770, in half the time).
 *
 * Best effort: if the worker cannot start or dies, prefault() does nothing and the event loop
 * faults the pages itself, as before. The worker is unref'd: it never keeps a process alive.
 */
import { Worker } from 'node:worker_threads';

const PAGE_BYTES = 4096;

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
parentPort.on('message', (m) => {
  if (m.sab) {
    const words = new Int32Array(m.sab, m.start, Math.floor((m.end - m.start) / 4));
    for (let i = 0; i < words.length; i += ${PAGE_BYTES / 4}) Atomics.compareExchange(words, i, 0, 0);
  }
  if (m.id !== undefined) parentPort.postMessage(m.id);
});
`;

class PrefaultWorker {
  private worker: Worker | undefined;
  private broken = false;
  private nextId = 0;
  private readonly waiting = new Map<number, () => void>();

  private get w(): Worker | undefined {
    if (this.worker || this.broken) return this.worker;
    try {
      const w = new Worker(WORKER_SOURCE, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 2 } });
      w.unref();
      w.on('message', (id: number) => {
        this.waiting.get(id)?.();
        this.waiting.delete(id);
      });
      const lost = (): void => {
        this.broken = true;
        this.worker = undefined;
        for (const done of this.waiting.values()) done();
        this.waiting.clear();
      };
      w.on('error', lost);
      w.on('exit', lost);
      this.worker = w;
    } catch {
      this.broken = true;
    }
    return this.worker;
  }

  /** Fault in [start, end) of `sab` off this thread (one word per page; `start` 4-byte aligned). */
  prefault(sab: SharedArrayBuffer, start: number, end: number): void {
    if (end - start < 4 || start % 4 !== 0) return;
    this.w?.postMessage({ sab, start, end });
  }

  /** Resolves once every prefault posted before it is done (tests). */
  idle(): Promise<void> {
    const w = this.w;
    if (!w) return Promise.resolve();
    const id = this.nextId++;
    // Held while someone waits: an unref'd worker alone would let the process exit first.
    w.ref();
    return new Promise((resolve) => {
      this.waiting.set(id, () => {
        if (this.waiting.size <= 1) this.worker?.unref();
        resolve();
      });
      w.postMessage({ id });
    });
  }
}

const shared = new PrefaultWorker();

export const prefault = (sab: SharedArrayBuffer, start: number, end: number): void => shared.prefault(sab, start, end);
export const prefaultIdle = (): Promise<void> => shared.idle();
