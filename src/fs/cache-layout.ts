/**
 * How --cache-size is shared out (block-cache.ts, read-handle.ts): readahead (in flight +
 * prefetched, unread) gets a quarter of it, at most MAX_READAHEAD_BYTES; the probation area for
 * long scans 3–4 blocks; the main LRU the rest. Each part has a floor in blocks — one block of
 * readahead, three of probation, one of LRU — so a cache under about five blocks holds more
 * than --cache-size says (QA session 26: 24M of 8 MiB blocks held up to 40 MiB). `totalBytes` is that
 * real bound, which the CLI warns about and `status` shows.
 */

/**
 * Readahead in flight: at most 64 MiB — at S3's ~20 ms latency and this machine's ~500 MB/s
 * that is 6× what keeps the pipe full (DESIGN §4 suggests 128 MiB for real S3 links; memory
 * wins here), and never more than a quarter of --cache-size.
 */
const MAX_READAHEAD_BYTES = 64 * 1024 * 1024;

/**
 * A sequential run past this many bytes is a scan (read-handle.ts): the rest of its blocks go
 * through probation and are kept only when read again (block-cache.ts). Files up to this size
 * are cached on their first read. Measured: with a quarter of the cache (≈ 100 MiB) here, four
 * parallel 256 MiB reads wrote 400 MiB of fresh cache memory and cost 4.5–5.4 CPU-s per GiB;
 * with 32 MiB, 3.0–4.2.
 */
const SCAN_AFTER_BYTES = 32 * 1024 * 1024;

export interface CacheLayout {
  readaheadBytes: number;
  probationBytes: number;
  mainBytes: number;
  /** A sequential run this long is a scan. */
  scanAfterBytes: number;
  /** What the cache can hold in all: --cache-size, or more when it is under about five blocks. */
  totalBytes: number;
}

export function cacheLayout(cacheBytes: number, blockBytes: number): CacheLayout {
  const readaheadBytes = Math.max(blockBytes, Math.min(MAX_READAHEAD_BYTES, Math.floor(cacheBytes / 4)));
  // Probation must outlast a block's reading: the kernel reads a block in many requests, some out
  // of order, and a block dropped while still being read was fetched again (and, as a "second
  // read", promoted). Three blocks at least, even in a small cache.
  const probationBytes = Math.max(3 * blockBytes, Math.min(4 * blockBytes, Math.floor(cacheBytes / 8)));
  const mainBytes = Math.max(blockBytes, cacheBytes - readaheadBytes - probationBytes);
  return {
    readaheadBytes, probationBytes, mainBytes,
    scanAfterBytes: Math.max(blockBytes, Math.min(SCAN_AFTER_BYTES, Math.floor(mainBytes / 4))),
    totalBytes: readaheadBytes + probationBytes + mainBytes,
  };
}
