/**
 * Abort S3 uploads that a crashed mount left behind (issue #4 §3), and delete the objects of
 * those S3 may have completed. Uploads are recorded in `<spool>/uploads/` when they start
 * (spool.ts UploadRecord); the record is marked `completing` just before CompleteMultipartUpload
 * is sent, and removed once the object is referenced (a file handle, or a journal entry naming
 * it) or the upload is aborted. A file sent with one PutObject is recorded before the PUT (id
 * SINGLE_PUT_PREFIX…). A record whose process is gone is an orphan: nothing references its
 * upload, so its parts are aborted — and if it was `completing` or a PutObject, its object, if
 * S3 has it, is deleted (S3 would otherwise bill for either forever). An unmarked record whose
 * upload S3 no longer knows (NoSuchUpload) just goes: older releases left such records after
 * publishing, so its object may be a published file's. s3rver and S3 with STS credentials have
 * no usable ListMultipartUploads, which is why the records exist.
 *
 * INVARIANT: a record is removed before any entity can refer to its object, and a publish fails
 * rather than go on when it cannot be removed (write-handle.ts completeStream, publisher.ts
 * uploadSts); a journal entry naming its upload or its object keeps the sweep away, and recover
 * removes the object's records before it publishes the entry (recover-command.ts) — so
 * deleting the object of an orphaned record never touches a file in Synapse. Objects are
 * deleted only for records of this boot: a power cut may bring back a record whose removal had
 * not reached the disk (its upload is still aborted; a NoSuchUpload then just drops it).
 */
import type { Logger } from 'pino';
import type { ObjectStore } from '../s3/object-store.js';
import { SINGLE_PUT_PREFIX } from '../s3/multipart-upload.js';
import { currentBootId, recordedByThisProcess, spoolOwner, type Spool, type UploadRecord } from './spool.js';
import { processAlive } from '../process-alive.js';

/**
 * Upload records that no live process owns and no journal entry needs — an upload a journal
 * entry names (a streamed file S3 left incomplete) is recover's, and its record stays until
 * recover finishes it. `selfIsLive`: records with this process's pid are its own uploads in
 * flight (status, asked inside a mount), not a dead namesake's (the sweep at start).
 */
export async function orphanedUploads(spool: Spool, selfIsLive: boolean): Promise<UploadRecord[]> {
  const { entries: journal, unreadable } = await spool.readJournal();
  // An entry that cannot be read (torn, edited by hand) may name any of them: none is an orphan
  // until recover has dealt with it (as the spool-file sweep, Spool.sweepOrphanedFiles; review).
  if (unreadable.length > 0) return [];
  const journaled = new Set(journal.map((e) => e.s3Upload?.uploadId).filter((id) => id !== undefined));
  // An object recover completed and journaled, whose record it had not removed yet.
  const objectKey = (o: { bucket: string; key: string }): string => `${o.bucket}/${o.key}`;
  const journaledObjects = new Set(journal.flatMap((e) => [e.s3Object, e.s3Upload]).filter((o) => o !== undefined).map(objectKey));
  // Another Synapse's records are its storage's: credentials from this one could not end them.
  return (await spool.listUploads()).filter((rec) => spool.ours(rec) &&
    !journaled.has(rec.uploadId) && !journaledObjects.has(objectKey(rec))
    // Another host's or container's (a spool on a shared disk): its pid says nothing here, and
    // aborting a live upload would lose that writer's file (review).
    && (rec.owner === undefined || rec.owner === spoolOwner())
    // This process's own records are live — at the sweep at start too (review: a write that
    // raced the first listing); a predecessor's with the same pid are not.
    && (rec.pid === process.pid ? !selfIsLive && !recordedByThisProcess(rec) : !processAlive(rec.pid)));
}

async function objectExists(store: ObjectStore, loc: { bucket: string; key: string }): Promise<boolean> {
  return store.head(loc).then(() => true, (err: unknown) => {
    if ((err as { status?: number }).status === 404) return false;
    throw err;
  });
}

export async function abortOrphanedUploads(
  spool: Spool,
  storeFor: (locationId: number, entityId: string) => ObjectStore,
  log?: Logger,
): Promise<number> {
  return (await abortOnce(spool, storeFor, log, false)).aborted;
}

/** One pass over the orphans; `left`: those whose abort failed (they stay recorded). */
async function abortOnce(
  spool: Spool,
  storeFor: (locationId: number, entityId: string) => ObjectStore,
  log: Logger | undefined,
  selfIsLive: boolean,
): Promise<{ aborted: number; left: number }> {
  let aborted = 0;
  let left = 0;
  for (const rec of await orphanedUploads(spool, selfIsLive)) {
    const store = storeFor(rec.storageLocationId, rec.parentId);
    const loc = { bucket: rec.bucket, key: rec.key };
    // Its object may exist and nothing names it — deletable only if the record is this boot's.
    const mayHoldObject = (rec.completing === true || rec.uploadId.startsWith(SINGLE_PUT_PREFIX))
      && rec.bootId !== undefined && rec.bootId === currentBootId();
    try {
      let deleteObject = false;
      if (rec.uploadId.startsWith(SINGLE_PUT_PREFIX)) {
        // A PutObject in flight when the process died: no upload to abort; its object, if S3 kept it.
        deleteObject = mayHoldObject && await objectExists(store, loc);
      } else {
        try {
          await store.abortMultipartUpload(loc, rec.uploadId);
          aborted++;
          log?.info({ key: rec.key, startedAt: rec.startedAt }, 'aborted an orphaned multipart upload');
        } catch (err) {
          if ((err as { code?: string }).code !== 'NoSuchUpload') throw err;
          // Completed (or aborted before): its object, if any, is ours only if it was completing.
          deleteObject = mayHoldObject && await objectExists(store, loc);
        }
      }
      if (deleteObject) {
        await store.deleteObject(loc);
        aborted++;
        log?.info({ key: rec.key, startedAt: rec.startedAt }, 'deleted the object of an upload a crashed mount completed but never registered');
      }
    } catch (err) {
      log?.warn({ err, key: rec.key }, 'could not abort an orphaned upload or delete its object; will try again');
      left++;
      continue;
    }
    await spool.removeUpload(rec.uploadId);
  }
  return { aborted, left };
}

/**
 * The sweep at mount start, tried again after each of `retryDelaysMs` while orphans it could
 * not abort remain: a transient S3 or Synapse failure must not leave their parts billed until
 * the next mount. The retries count this process's own records as live (its uploads in flight).
 */
export async function sweepOrphanedUploads(
  spool: Spool,
  storeFor: (locationId: number, entityId: string) => ObjectStore,
  log?: Logger,
  retryDelaysMs: number[] = [2_000, 10_000, 60_000],
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms).unref()),
): Promise<number> {
  await spool.sweepStrayRecords().catch((err: unknown) => log?.debug({ err }, 'could not remove half-written upload records'));
  let pass = await abortOnce(spool, storeFor, log, false);
  let aborted = pass.aborted;
  for (const ms of retryDelaysMs) {
    if (pass.left === 0) break;
    await sleep(ms);
    pass = await abortOnce(spool, storeFor, log, true);
    aborted += pass.aborted;
  }
  return aborted;
}
