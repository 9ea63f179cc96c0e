/**
 * Options for an LRUCache bounded by entry count that does not allocate for the bound up front.
 *
 * lru-cache sizes its index arrays for `max` entries at construction: two JS arrays of `max`
 * slots (four with a TTL) on the V8 heap. For the mount's 1,000,000-entry metadata caches that
 * was ≈ 50 MB of heap in an idle mount — marked by every major GC, and a reading mount runs one
 * every ~64 MB of socket chunks (V8 counts them as external memory): 21 of them per GiB of a
 * 4-file parallel read, ≈ 1 s of main-thread GC per GiB (bench/README.md). Bounding by
 * `maxSize` with every entry of size 1 keeps the same bound with arrays that grow as entries
 * arrive (lru-cache's documented alternative to `max`).
 */
export function entryBound(entries: number): { maxSize: number; sizeCalculation: () => number } {
  return { maxSize: entries, sizeCalculation: () => 1 };
}
