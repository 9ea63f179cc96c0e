/**
 * The FUSE connection's terms, negotiated past libfuse 2 (the patched addon rewrites libfuse's
 * INIT reply: scripts/fix-fuse-native.mjs, "The FUSE connection's terms").
 *
 * Why: libfuse 2 speaks FUSE protocol 7.19, so the kernel caps every read and write request at
 * 32 pages (128 KiB) — 8,192 round trips per GiB through libfuse's threads — and the mount
 * cannot ask for FUSE_DIRECT_IO_ALLOW_MMAP, without which the kernel refuses shared mmap of a
 * file opened with FOPEN_DIRECT_IO (ENODEV: `--direct-io` and numpy.memmap did not mix).
 *
 * What the mount asks for, and gets only where the kernel offers it:
 *  - FUSE_MAX_PAGES (Linux ≥ 4.20): requests of up to `--max-request-size` (default 1 MiB, the
 *    kernel's own ceiling); libfuse's buffer grows to match, so writes come in 1 MiB requests
 *    too. Reads through the page cache stay at the kernel's readahead size (128 KiB for FUSE);
 *    reads that bypass it and all writes use the larger requests (bench/README.md, "Session 9").
 *  - FUSE_DIRECT_IO_ALLOW_MMAP, with direct reads (the default) or `--direct-io`: MAP_SHARED of a
 *    direct-I/O file is allowed; the kernel keeps the mapping coherent itself (it caches the
 *    mapped pages and switches the inode to cached I/O while it is mapped). Without the grant,
 *    read-only opens keep the page cache (page-cache-bypass.ts). Asked of Linux ≥ 6.9 (protocol 7.40) only: 6.6–6.8
 *    offer the flag, but before the inode I/O modes of 6.9 a shared writable mapping of such a
 *    file had no FUSE write-back (dirty pages failed with EIO) — ENODEV is the safer answer there.
 * The connection itself stays at libfuse's protocol 7.19 (every other structure keeps its size).
 * `grantedFuseTerms()` says what the kernel granted (`synapse-mount status`).
 */
import { readFileSync } from 'node:fs';
import { parseSize, UsageError } from '../config.js';
import { loadPatchedFunctions } from '../native-addon.js';

export interface FuseTermsBinding {
  synapse_fuse_terms(maxPages: number, allowMmap: boolean): void;
  /** [initDone, kernelMinor, maxPages (0: libfuse's 32), maxWrite, allowMmap, largestRead, largestWrite, sessionEnded (absent before v18)]. */
  synapse_fuse_granted(): number[];
}

export interface FuseTerms {
  /** The kernel's FUSE protocol, e.g. "7.45" (the mount answers as 7.19 with the extensions above); absent before INIT or without the patched addon. */
  kernelProtocol?: string;
  /** Largest read request the kernel may send, in bytes. */
  maxReadBytes: number;
  /** Largest write request the kernel may send, in bytes. */
  maxWriteBytes: number;
  /** Shared mmap of files opened with FOPEN_DIRECT_IO (direct reads, --direct-io) is allowed. */
  directIoSharedMmap: boolean;
  /** Largest read and write requests seen so far (0 with the prebuild addon). */
  largestRead: number;
  largestWrite: number;
}

/**
 * The descriptor the mount's channel gives a getattr of an open directory (libfuse's directory
 * handles mean nothing to the mount): answered by path, or — no path — as a removed directory
 * (scripts/fix-fuse-native.mjs 9.). fuse-native passes descriptors as uint32.
 */
export const GONE_DIR_FH = 0xffffffff;

const PAGE = 4096;
/** libfuse 2's terms: 32 pages per request. */
const LIBFUSE2_PAGES = 32;
/** The kernel's default ceiling (fuse.max_pages_limit): 1 MiB requests. */
const KERNEL_MAX_PAGES = 256;
export const MIN_REQUEST_BYTES = LIBFUSE2_PAGES * PAGE;
export const MAX_REQUEST_BYTES = KERNEL_MAX_PAGES * PAGE;

/** Pages per request for `--max-request-size` (whole pages, 32–256; default 256). */
export function requestPages(bytes: number = MAX_REQUEST_BYTES): number {
  if (!Number.isFinite(bytes)) return KERNEL_MAX_PAGES;
  return Math.max(LIBFUSE2_PAGES, Math.min(KERNEL_MAX_PAGES, Math.floor(bytes / PAGE)));
}

/** --max-request-size: a size from libfuse 2's 128K to the kernel's default ceiling of 1M. */
export function parseRequestSize(value: string | number): number {
  const bytes = parseSize(value, '--max-request-size');
  if (bytes < MIN_REQUEST_BYTES || bytes > MAX_REQUEST_BYTES) {
    throw new UsageError(`--max-request-size: "${String(value).trim()}" is outside 128K–1M (FUSE requests are 1M at most by the kernel's default)`);
  }
  return bytes;
}

export function loadFuseTermsBinding(): FuseTermsBinding | undefined {
  return loadPatchedFunctions<FuseTermsBinding>('synapse_fuse_terms', 'synapse_fuse_granted');
}

/**
 * Ask for these terms at this process's next mount. 32 pages without shared mmap leaves
 * libfuse's INIT reply as it is (the mount's channel wraps libfuse's all the same, for the read
 * fast path and opens racing a rename: scripts/fix-fuse-native.mjs 7.). Returns false with the
 * prebuild addon (libfuse's terms then).
 */
export function requestFuseTerms(maxPages: number, allowMmap: boolean): boolean {
  const b = loadFuseTermsBinding();
  b?.synapse_fuse_terms(maxPages, allowMmap);
  // The kernel applies its limit at INIT, right after this: read it once, not per status call.
  pagesLimitAtMount = kernelMaxPages();
  return b !== undefined;
}

let pagesLimitAtMount = KERNEL_MAX_PAGES;

/** The kernel's own cap on pages per request (the fs.fuse.max_pages_limit sysctl, Linux ≥ 6.13; 256 before). */
export function kernelMaxPages(): number {
  try {
    const n = Number(readFileSync('/proc/sys/fs/fuse/max_pages_limit', 'utf8').trim());
    return Number.isInteger(n) && n > 0 ? n : KERNEL_MAX_PAGES;
  } catch {
    return KERNEL_MAX_PAGES;
  }
}

/**
 * The kernel ended this process's mount's connection (/dev/fuse answered ENODEV: unmounted or
 * aborted). False without the patched addon, which cannot tell.
 */
export function fuseSessionEnded(): boolean {
  return loadFuseTermsBinding()?.synapse_fuse_granted()[7] === 1;
}

/** What the kernel granted this process's mount (libfuse 2's terms before INIT or without the patch). */
export function grantedFuseTerms(
  raw: number[] | undefined = loadFuseTermsBinding()?.synapse_fuse_granted(),
  pagesLimit: number = pagesLimitAtMount,
): FuseTerms {
  const libfuse = MIN_REQUEST_BYTES;
  if (!raw) return { maxReadBytes: libfuse, maxWriteBytes: libfuse, directIoSharedMmap: false, largestRead: 0, largestWrite: 0 };
  const [done, minor, pages, maxWrite, mmap, largestRead, largestWrite] = raw as [number, number, number, number, number, number, number];
  // The kernel takes min(asked, its limit) without saying so.
  const readBytes = (pages > 0 ? Math.min(pages, pagesLimit) : LIBFUSE2_PAGES) * PAGE;
  return {
    ...(done === 1 ? { kernelProtocol: `7.${minor}` } : {}),
    maxReadBytes: done === 1 ? readBytes : libfuse,
    // Writes are capped by the pages per request and by libfuse's max_write (its buffer).
    maxWriteBytes: done === 1 && maxWrite > 0 ? Math.min(readBytes, Math.max(PAGE, maxWrite)) : libfuse,
    directIoSharedMmap: done === 1 && mmap === 1,
    largestRead,
    largestWrite,
  };
}
