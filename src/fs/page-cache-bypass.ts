/**
 * Which opens bypass the kernel page cache (FOPEN_DIRECT_IO, set by the patched addon on
 * libfuse's thread before the open reaches JS: scripts/fix-fuse-native.mjs). `--direct-io`
 * (libfuse's direct_io) bypasses it for every open; these two policies are the defaults.
 *
 * Write-only opens (`--[no-]direct-writes`). Without the bypass every byte written through the
 * mount was first copied into fresh page-cache pages that a later open drops unread — 1 GiB
 * written with Python took 9.0–9.9 s against 6.5–7.3 s (bench/README.md, "Session 8"). A
 * write-only fd cannot be mapped, so nothing is lost. By default only on Linux ≥ 6.6, which
 * drops other file descriptors' cached pages of a range written directly (80e4f25262f9, "fuse:
 * invalidate page cache pages before direct write"); on older kernels a reader holding the
 * file open would go on reading the pages it cached before the write.
 *
 * Read-only opens (`--[no-]direct-reads`). The mount never sets keep_cache, so the kernel drops
 * a file's pages at every open (fuse-adapter.ts says why): the page cache only ever serves the
 * open that filled it. Filling it is the dearest part of a cold read here — the kernel copies
 * every reply into freshly allocated pages, ≈ 0.7 CPU-s per GiB on libfuse's threads — and it
 * caps reads at the kernel's 128 KiB readahead requests where a direct read takes the
 * application's size up to 1 MiB (fuse-terms.ts). Bypassed, `dd bs=1M` and `cat` of a cold
 * file read 1.4–2.1 × faster at 0.4–0.8 × the mount's CPU (bench/README.md, "Session 10").
 * What it costs: no kernel readahead. Each read() is one FUSE round trip, and nothing is
 * fetched while the program works on what it read; the page cache's readahead overlapped the
 * two. Programs that read in small pieces and work between reads — mawk (4 KiB), sed and other
 * stdio readers (8 KiB), Python's text-mode line iteration (8 KiB) — ran at about half the
 * speed here that way (bench/README.md, "Session 10"); 32 KiB readers (md5sum) and bigger broke
 * even or gained. So the addon learns them: a sequential run of 256 reads under 32 KiB on one
 * read-only open marks the reading thread's program name (/proc/TID/comm), and read-only opens
 * by a thread of that name keep the page cache for the mount's life (`status` lists them:
 * smallReaders). The first such file is read the direct way; a program fed by a shell
 * redirection (`mawk … < file`: the shell opens the file) is not recognised at open; random
 * small reads never count (readahead would not help them); nothing is unlearned, and a learned
 * program simply gets the page cache, as before direct reads existed. At most 64 names.
 * A re-read within one open crosses FUSE to the block cache.
 * Only where the kernel granted FUSE_DIRECT_IO_ALLOW_MMAP (Linux ≥ 6.9), because without it
 * shared mmap of such a file fails with ENODEV (numpy.memmap); the addon checks the grant at
 * each open. Read-write opens keep the page cache: they may map the file shared and write
 * through it, and small read-modify-write I/O (sqlite, HDF5 in append mode) needs the kernel's
 * merging.
 */
import os from 'node:os';
import { loadPatchedFunctions } from '../native-addon.js';
import { kernelAtLeast } from '../kernel-version.js';

/** The patch's switches (per-process flags in C): write-only opens since patch v4, read-only since v6. */
export interface DirectWritesBinding {
  synapse_direct_writes(on: boolean): void;
}
export interface DirectReadsBinding {
  synapse_direct_reads(on: boolean): void;
}
export interface SmallReadersBinding {
  /** Programs (/proc/PID/comm) learned to read in small pieces, oldest first. */
  synapse_small_readers(): string[];
}

/** Does this kernel keep readers coherent with direct writes (Linux ≥ 6.6)? */
export function kernelInvalidatesOnDirectWrite(release: string = os.release()): boolean {
  return kernelAtLeast(6, 6, release);
}

/**
 * Each switch on its own, undefined with the prebuild or an addon patched before it existed (an
 * older build kept by fix-fuse-native.mjs keeps its direct writes).
 */
export function loadDirectWritesBinding(): DirectWritesBinding | undefined {
  return loadPatchedFunctions<DirectWritesBinding>('synapse_direct_writes');
}
export function loadDirectReadsBinding(): DirectReadsBinding | undefined {
  return loadPatchedFunctions<DirectReadsBinding>('synapse_direct_reads');
}

/** Programs whose read-only opens keep the page cache because they read in small pieces (undefined: an addon without the learning). */
export function smallReaders(): string[] | undefined {
  return loadPatchedFunctions<SmallReadersBinding>('synapse_small_readers')?.synapse_small_readers();
}

/**
 * Turn the write-only bypass on or off for this process (`want` undefined: by kernel version);
 * returns whether write-only opens now bypass the page cache. Set either way: the flag is per
 * process, and the addon may have been told before.
 */
export function applyDirectWrites(want: boolean | undefined): boolean {
  const on = want ?? kernelInvalidatesOnDirectWrite();
  const binding = loadDirectWritesBinding();
  binding?.synapse_direct_writes(on);
  return on && binding !== undefined;
}

/**
 * Turn the read-only bypass on or off for this process (default on). Unlike applyDirectWrites'
 * answer, this one is "wanted and possible", not "in effect": the addon applies it only once the
 * kernel grants shared mmap of direct-I/O files, so the mount must ask for that grant
 * (fuse-terms.ts) when this returns true, and learns whether it is in effect from the grant.
 */
export function applyDirectReads(want: boolean | undefined): boolean {
  const on = want ?? true;
  const binding = loadDirectReadsBinding();
  binding?.synapse_direct_reads(on);
  return on && binding !== undefined;
}
