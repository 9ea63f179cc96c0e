/**
 * fuse-native's addon as scripts/fix-fuse-native.mjs patched and built it: the read fast path,
 * page-cache bypass and FUSE terms (src/fs), and SO_RCVLOWAT for S3 sockets (src/s3). With
 * fuse-native's prebuild (no compiler at install) none of those functions exist and each caller
 * falls back to the plain way.
 */
import { createRequire } from 'node:module';
import path from 'node:path';

let addon: object | null | undefined;

/**
 * fuse-native's addon — the same module instance fuse-native loaded (node-gyp-build resolves the
 * same file) — with whatever the patch added.
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
