/**
 * mtimes the mount gave files and folders — set by utimens (`rsync -a`, `cp -p`, `tar x`,
 * `touch -m`), left by a writer here, or a folder's moved by an entry added or removed — kept on
 * this machine across remounts: Synapse keeps no mtime, so without this every file showed
 * Synapse's modifiedOn after a remount and the next `rsync -a` compared and rewrote every file.
 *
 * Keyed by (entity id, version) — ids of another Synapse than synapse.org with its host
 * (synapse-scope.ts); folders, which have no versions, by (id, 0). A new version
 * written anywhere shows its own time, never one given to older bytes. The log lives in the
 * spool directory (`meta/mtimes.jsonl`, one per user by default, shared by that user's mounts);
 * other machines and clients see modifiedOn. version-log.ts has the format and its caveat: a
 * line another mount appends in the instant this one rewrites the log at start may be lost
 * (that file then shows modifiedOn, and rsync copies it once more — with the same bytes, no new
 * version is published).
 */
import path from 'node:path';
import type { Logger } from 'pino';
import { VersionLog, type VersionLogCodec } from './version-log.js';

/** What the filesystem needs of it. */
export interface MtimeStore {
  get(entityId: string, versionNumber: number): number | undefined;
  set(entityId: string, versionNumber: number, mtimeMs: number): void;
  /** The entity was deleted (rsync's temp file, replaced into its target): the entry goes. */
  delete(entityId: string, versionNumber: number): void;
}

const mtimeCodec: VersionLogCodec<number> = {
  encode: (ms) => [ms],
  decode: ([ms]) => (typeof ms === 'number' && Number.isFinite(ms) ? ms : undefined),
  same: (a, b) => a === b,
};

export const mtimeLogPath = (spoolDir: string): string => path.join(path.resolve(spoolDir), 'meta', 'mtimes.jsonl');

export function openMtimeLog(spoolDir: string, opts: { readOnly: boolean; logger?: Logger; scope?: string }): Promise<VersionLog<number>> {
  // Lines from before seals hold the times users set (rsync -a): kept. (Sizes are a cache: not.)
  return VersionLog.open(mtimeLogPath(spoolDir), mtimeCodec, { ...opts, acceptUnsealed: true });
}
