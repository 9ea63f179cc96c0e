/**
 * A free list of block-sized buffers. Writing into fresh memory is the single largest cost of a
 * read on VMs like ours (first-touch page faults: 2–7 s per GiB, bench/README.md), so buffers of
 * evicted blocks are reused for the next GETs instead of being left to the GC.
 *
 * INVARIANT: a buffer is in the pool only when no cached block and no reader refers to it
 * (BlockCache pins buffers while it copies from them and releases only unpinned ones).
 */
export class BufferPool {
  private readonly free: Buffer[] = [];

  constructor(readonly size: number, private readonly maxFree: number) {}

  acquire(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  release(buf: Buffer): void {
    if (buf.length === this.size && buf.byteOffset === 0 && this.free.length < this.maxFree) this.free.push(buf);
  }

  get freeCount(): number {
    return this.free.length;
  }
}
