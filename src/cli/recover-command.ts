/**
 * `synapse-mount recover [--spool-dir DIR] [--list]`: publish what failed to publish.
 *
 * Each journal entry (spool.ts) names the bytes (spool file, md5, size — or, for a streamed
 * file, the complete S3 object, or its open multipart upload plus the refused parts kept in the
 * spool file) and where they belong.
 * Recovery is idempotent — it publishes each entry exactly once even if a previous run (or the
 * mount itself) died after Synapse accepted the version but before the entry was cleared:
 *  - a file handle already registered (`fileHandleId` in the entry) is committed, not re-uploaded;
 *  - if the target entity's current version already has the entry's md5 and size, the entry is
 *    simply cleared.
 */
import type { ObjectStore } from '../s3/object-store.js';
import type { Logger } from 'pino';
import type { SynapseApi } from '../synapse/api.js';
import { SynapseError } from '../synapse/errors.js';
import { NO_VERSION, readPart, VersionConflict, type Publisher } from '../fs/publisher.js';
import type { MtimeStore } from '../fs/mtime-log.js';
import { heldOpenBy, sizeAndMd5Of, type JournalEntry, type Spool } from '../fs/spool.js';
import type { VersionInfo } from '../synapse/types.js';

/** Why an entry the running mount dropped during recover's upload is not published. */
const ENTRY_WENT = 'its entry went while it was being recovered (the running mount published or removed the file meanwhile); not published';

export interface RecoverResult {
  entry: JournalEntry;
  /**
   * `conflict`: someone published the file since these bytes were written; kept (see --force).
   * `elsewhere`: journaled by a mount of another Synapse (its ids mean other entities here); kept.
   * `open`: its file is still open in the mount that journaled it, which publishes it at the
   * last close (JournalEntry.heldOpen); kept.
   */
  outcome: 'published' | 'already-published' | 'conflict' | 'failed' | 'elsewhere' | 'open';
  entityId?: string;
  error?: string;
}

/**
 * Why publishing `e` now would replace someone else's newer content, or undefined: its entity
 * has a newer version than the one it was written over, or — for a new file — a file of that
 * name has appeared. (A QA pass: recover made week-old bytes the newest version of a file
 * rewritten since, and said only "published".)
 */
function conflictOf(e: JournalEntry, ours: OwnVersions, existing: string | undefined, info: VersionInfo | undefined): string | undefined {
  // Held back at unmount while a program was still writing it: only the user can tell.
  if (e.incomplete) return `${e.incomplete}, so it may be incomplete`;
  if (e.entityId) {
    if (!info) return `${e.entityId} was deleted since these bytes were written`;
    if (e.baseVersion === undefined) return undefined;
    if (info.versionNumber === e.baseVersion) return undefined;
    // Saved twice while Synapse was down: the later save replaces what this run just published.
    if (ours.versions.get(e.entityId) === info.versionNumber) return undefined;
    return `${e.entityId} is at version ${info.versionNumber} now, these bytes were written over version ${e.baseVersion}`;
  }
  if (!existing || ours.created.has(`${e.parentId}/${e.name}`)) return undefined;
  return `a file named ${e.name} (${existing}) was created there since`;
}

/** What this run published: the later of two saves of one file builds on the earlier. */
interface OwnVersions {
  /** entityId → the version this run made. */
  versions: Map<string, number>;
  /** parentId/name of files this run created. */
  created: Set<string>;
}

/** The latest version of `entityId` (the entry's entity, or what now holds a new file's name); undefined if none. */
async function latestVersion(api: SynapseApi, entityId: string | undefined): Promise<VersionInfo | undefined> {
  if (!entityId) return undefined;
  try {
    return await api.getLatestVersionInfo(entityId);
  } catch (err) {
    if (!(err instanceof SynapseError && err.status === 404)) throw err;
    return undefined;
  }
}

/** Synapse already has these bytes there (an earlier run, or the mount, died before clearing the entry). */
const alreadyPublished = (e: JournalEntry, info: VersionInfo | undefined): boolean =>
  info !== undefined && info.contentMd5 === e.md5 && Number(info.contentSize) === e.size;

/**
 * Finish a streamed file's open multipart upload: send the parts S3 refused (kept in the spool
 * file) and complete it. A completion that already happened (a recover that died before
 * rewriting the entry) is recognised by the object's size.
 */
async function finishUpload(e: JournalEntry, store: ObjectStore): Promise<void> {
  const u = e.s3Upload!;
  const loc = { bucket: u.bucket, key: u.key };
  // Completed by an earlier run that died before updating the journal?
  if ((await store.head(loc).catch(() => undefined))?.size === e.size) return;
  const parts = [...u.parts];
  for (const m of u.missing) {
    parts.push({ partNumber: m.partNumber, etag: await store.uploadPart(loc, u.uploadId, m.partNumber, await readPart(e.spoolFile, m.offset, m.length)) });
  }
  await store.completeMultipartUpload(loc, u.uploadId, parts);
}

/**
 * The entry to publish when the spool file still holds the bytes it was journaled with (an entry
 * of a spooled file: no file handle, no S3 object), or why not. A file still open when its mount
 * died (heldOpen, its holder gone) may have been written after its entry — a failed fsync, then
 * more writes: half a rewrite, whose MD5 is not the entry's (review: recover published those
 * bytes under it). --force publishes the bytes as they are, with their own size and MD5.
 */
async function checkSpoolBytes(e: JournalEntry, force: boolean): Promise<{ entry: JournalEntry } | { outcome: 'conflict' | 'failed'; error: string }> {
  if (e.fileHandleId || e.s3Object || e.s3Upload) return { entry: e };
  const now = await sizeAndMd5Of(e.spoolFile);
  if (now.size === e.size && now.md5 === e.md5) return { entry: e };
  if (force) return { entry: { ...e, size: now.size, md5: now.md5 } };
  const what = `its spool file holds ${now.size} bytes (MD5 ${now.md5}), not the ${e.size} (MD5 ${e.md5}) it was journaled with`;
  const why = e.heldOpen ? `still open for writing when its mount stopped, and written after it was journaled: ${what}, so it may be incomplete` : what;
  return { outcome: e.heldOpen ? 'conflict' : 'failed', error: `${why}; not published (--force publishes the bytes as they are)` };
}

/**
 * An entry recover leaves without asking Synapse, and why: still open in its running mount, or
 * journaled by a mount of another Synapse than `spool`'s.
 */
export function leftAlone(entry: JournalEntry, spool: Pick<Spool, 'ours'>): RecoverResult | undefined {
  // Not even with --force: the running mount still writes its spool file through an open fd, and
  // publishes it at the last close — taking it now lost every later write (QA: close() then failed
  // with ENOENT). The holder is matched by pid and start time, so a reused pid is not it.
  const holder = heldOpenBy(entry);
  if (holder) {
    return { entry, outcome: 'open', error: `still open in the mount (pid ${holder.pid}), which publishes it at its last close; recover takes it if that fails or the mount stops` };
  }
  if (!spool.ours(entry)) {
    return { entry, outcome: 'elsewhere', error: `journaled by a mount of the Synapse at ${entry.endpoint ?? '?'}; left for \`synapse-mount recover --endpoint ${entry.endpoint ?? '?'}\`` };
  }
  return undefined;
}

export async function recoverAll(api: SynapseApi, publisher: Publisher, spool: Spool, log: Logger | undefined,
  storeFor: (locationId: number, entityId: string) => ObjectStore, opts: { force?: boolean; mtimes?: MtimeStore } = {}): Promise<RecoverResult[]> {
  const results: RecoverResult[] = [];
  const ours: OwnVersions = { versions: new Map(), created: new Set() };
  /** A conflict: newer content in Synapse that these bytes would hide. */
  const notOver = (entry: JournalEntry, error: string): void => {
    results.push({ entry, outcome: 'conflict', error });
    log?.warn({ id: entry.id, error }, 'recover: not published over newer content');
  };
  // Oldest first: of two saves of one file, the later one ends as the newest version.
  const entries = (await spool.listJournal()).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
  // Before an entry is written back after a long step: gone means the running mount dropped it (reported, not published).
  const stillJournaled = async (entry: JournalEntry): Promise<boolean> => {
    if (await spool.hasJournal(entry.id)) return true;
    results.push({ entry, outcome: 'failed', error: ENTRY_WENT });
    return false;
  };
  for (const journaled of entries) {
    const left = leftAlone(journaled, spool);
    if (left) {
      results.push(left);
      continue;
    }
    let entry = journaled;
    try {
      const checked = await checkSpoolBytes(journaled, opts.force === true);
      if ('error' in checked) {
        results.push({ entry, ...checked });
        log?.warn({ id: entry.id, error: checked.error }, 'recover: spool file not as journaled');
        continue;
      }
      entry = checked.entry;
      // One lookup and one version read serve both checks below.
      const existing = entry.entityId ?? (await api.lookupChild(entry.parentId, entry.name)) ?? undefined;
      const info = await latestVersion(api, existing);
      // Its file gone: perhaps with its folder, and then nothing here can publish it — not --force.
      if (entry.entityId && !info && (await folderGone(api, entry.parentId))) {
        results.push({ entry, outcome: 'failed', error: folderGoneMessage(entry) });
        continue;
      }
      const done = alreadyPublished(entry, info) ? existing : undefined;
      const conflict = done || opts.force ? undefined : conflictOf(entry, ours, existing, info);
      if (conflict) {
        notOver(entry, `${conflict}; not published (--force publishes it as the newest version)`);
        continue;
      }
      // The entry protects its object from the orphan sweep only while it exists: a record of
      // that object left behind (a mount that could not remove it) must go before a file refers
      // to it and the entry goes — or the next sweep would delete a published file's bytes
      // (review). (An entry's open upload, s3Upload, loses its record below once completed.)
      if (entry.s3Object) await spool.removeUploadsOf(entry.s3Object);
      if (done) {
        results.push({ entry, outcome: 'already-published', entityId: done });
      } else {
        let e = entry;
        if (!e.fileHandleId && e.s3Upload) {
          const u = e.s3Upload;
          await finishUpload(e, storeFor(u.storageLocationId, e.parentId));
          // From here the entry is a complete object: a later run registers it, never re-sends parts.
          const { s3Upload: _done, ...rest } = e;
          e = { ...rest, s3Object: { bucket: u.bucket, key: u.key, storageLocationId: u.storageLocationId } };
          // Dropped by the running mount while the parts went (the file removed there): not brought back (review).
          if (!(await stillJournaled(entry))) continue;
          await spool.writeJournal(e);
          await spool.removeUpload(u.uploadId);
        }
        let fileHandleId = e.fileHandleId;
        if (!fileHandleId && e.s3Object) {
          const o = e.s3Object;
          fileHandleId = await publisher.registerExternal(o.bucket, o.key, o.storageLocationId, e.size, e.md5, e.name);
        } else if (!fileHandleId) {
          fileHandleId = await publisher.upload({ file: e.spoolFile, size: e.size, md5: e.md5 }, e.parentId, e.name);
        }
        if (!e.fileHandleId) {
          // The upload took a while: the running mount may have published or removed this file
          // meanwhile (a new save of it, an rm), and dropped its entry — which writing it again
          // would bring back (review: recover published bytes the user had removed).
          if (!(await stillJournaled(entry))) continue;
          await spool.writeJournal({ ...e, fileHandleId });
        }
        // --force over a file deleted since: published as a new file of that name. Built on the
        // version checked above: a version made since (the user's save in the running mount, a
        // collaborator's) is a conflict, not buried under these older bytes (review). A new file
        // builds on nothing (version 0): a file of its name created since is a conflict too.
        const entity = await publisher.commit(entry.parentId, entry.name, fileHandleId, info || !entry.entityId ? entry.entityId : undefined,
          opts.force ? undefined : info?.versionNumber ?? NO_VERSION);
        if (entity.versionNumber !== undefined) ours.versions.set(entity.id, entity.versionNumber);
        // The time the mount showed for these bytes stays theirs (mtime-log.ts), as a publish at close keeps it.
        if (entity.versionNumber !== undefined && e.mtime !== undefined) opts.mtimes?.set(entity.id, entity.versionNumber, e.mtime);
        if (!entry.entityId) ours.created.add(`${entry.parentId}/${entry.name}`);
        results.push({ entry, outcome: 'published', entityId: entity.id });
      }
      await spool.removeJournal(entry.id);
      await spool.removeSpoolFile(entry.spoolFile);
      log?.info({ name: entry.name, id: entry.id }, 'recovered');
    } catch (err) {
      // Its folder deleted elsewhere (QA: "conflict … --force publishes it", then --force failed
      // with Synapse's 404 every time): say so, and what to do.
      if (err instanceof VersionConflict) {
        const what = err.builtOn === NO_VERSION ? `a file named ${entry.name} (${err.entityId}) was created there since`
          : `${err.entityId} is at version ${err.current} now, these bytes were to follow version ${err.builtOn}`;
        const error = `${what}; not published (--force publishes it as the newest version)`;
        notOver(entry, error);
        continue;
      }
      const notFound = err instanceof SynapseError && err.status === 404;
      const gone = notFound && (await folderGone(api, entry.parentId).catch(() => false));
      // Its file deleted after the check above (the commit met the 404): as deleted before it.
      if (notFound && !gone && entry.entityId && (await latestVersion(api, entry.entityId).catch(() => 'unknown')) === undefined) {
        const error = `${entry.entityId} was deleted since these bytes were written; not published (--force publishes it as a new file of that name)`;
        notOver(entry, error);
        continue;
      }
      const error = gone ? folderGoneMessage(entry) : (err as Error).message;
      results.push({ entry, outcome: 'failed', error });
      log?.error({ err, id: entry.id }, 'recovery failed; entry kept');
    }
  }
  return results;
}

/** What to do about an entry whose folder is gone: nothing here can publish it, not --force. */
function folderGoneMessage(entry: JournalEntry): string {
  return `its folder ${entry.parentId}, or a folder above it, was deleted (restore it from your Synapse trash can, then recover again; `
    + `or copy the bytes — recover --list says where — and recover --discard ${entry.id})`;
}

/** The folder is not in Synapse any more (deleted, in the trash can — or a folder above it is). */
async function folderGone(api: SynapseApi, folderId: string): Promise<boolean> {
  try {
    await api.getEntity(folderId);
    return false;
  } catch (err) {
    if (err instanceof SynapseError && err.status === 404) return true;
    throw err;
  }
}
