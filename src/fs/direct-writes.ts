/**
 * Write-only opens without the kernel page cache (FOPEN_DIRECT_IO, set by the patched addon on
 * libfuse's thread before the open reaches JS: scripts/fix-fuse-native.mjs).
 *
 * Why: without it every byte written through the mount was first copied into fresh page-cache
 * pages that a later open drops unread — 1 GiB written with Python took 9.0–9.9 s against
 * 6.5–7.3 s (bench/README.md, "Session 8"). A write-only fd cannot be mapped, so nothing is
 * lost; read-write opens keep the page cache (they may be mapped).
 *
 * When: by default only on Linux ≥ 6.6, which drops other file descriptors' cached pages of a
 * range written directly (80e4f25262f9, "fuse: invalidate page cache pages before direct
 * write"); on older kernels a reader holding the file open would go on reading the pages it
 * cached before the write. `--[no-]direct-writes` decides otherwise.
 */
import os from 'node:os';
import { loadPatchedFunctions } from './fast-read.js';
import { kernelAtLeast } from './kernel-version.js';

/** The patch's switch (a per-process flag in C). */
export interface DirectWritesBinding {
  synapse_direct_writes(on: boolean): void;
}

/** Does this kernel keep readers coherent with direct writes (Linux ≥ 6.6)? */
export function kernelInvalidatesOnDirectWrite(release: string = os.release()): boolean {
  return kernelAtLeast(6, 6, release);
}

/** The switch, or undefined with the prebuild (or an addon patched before it existed). */
export function loadDirectWritesBinding(): DirectWritesBinding | undefined {
  return loadPatchedFunctions<DirectWritesBinding>('synapse_direct_writes');
}

/**
 * Turn the bypass on or off for this process (`want` undefined: by kernel version); returns
 * whether write-only opens now bypass the page cache. Set either way: the flag is per process,
 * and the addon may have been told before.
 */
export function applyDirectWrites(want: boolean | undefined): boolean {
  const on = want ?? kernelInvalidatesOnDirectWrite();
  const binding = loadDirectWritesBinding();
  binding?.synapse_direct_writes(on);
  return on && binding !== undefined;
}
