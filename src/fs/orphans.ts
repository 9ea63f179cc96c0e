/**
 * Abort S3 multipart uploads that a crashed mount left behind (issue #4 §3). Streaming uploads
 * are recorded in `<spool>/uploads/` when they start and removed when they complete or abort;
 * a record whose process is gone is an orphan: nothing references it, so its parts are
 * aborted (S3 would otherwise bill for them forever). s3rver and S3 with STS credentials have no
 * usable ListMultipartUploads, which is why the records exist.
 */
import type { Logger } from 'pino';
import type { ObjectStore } from '../s3/object-store.js';
import { spoolOwner, type Spool, type UploadRecord } from './spool.js';
import { processAlive } from '../process-alive.js';

/**
 * Upload records that no live process owns and no journal entry needs — an upload a journal
 * entry names (a streamed file S3 left incomplete) is recover's, and its record stays until
 * recover finishes it. `selfIsLive`: records with this process's pid are its own uploads in
 * flight (status, asked inside a mount), not a dead namesake's (the sweep at start).
 */
export async function orphanedUploads(spool: Spool, selfIsLive: boolean): Promise<UploadRecord[]> {
  const journaled = new Set((await spool.listJournal()).map((e) => e.s3Upload?.uploadId).filter((id) => id !== undefined));
  return (await spool.listUploads()).filter((rec) =>
    !journaled.has(rec.uploadId)
    // Another host's or container's (a spool on a shared disk): its pid says nothing here, and
    // aborting a live upload would lose that writer's file (review).
    && (rec.owner === undefined || rec.owner === spoolOwner())
    && (rec.pid === process.pid ? !selfIsLive : !processAlive(rec.pid)));
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
    try {
      await storeFor(rec.storageLocationId, rec.parentId).abortMultipartUpload({ bucket: rec.bucket, key: rec.key }, rec.uploadId);
      aborted++;
      log?.info({ key: rec.key, startedAt: rec.startedAt }, 'aborted an orphaned multipart upload');
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== 'NoSuchUpload') {
        log?.warn({ err, key: rec.key }, 'could not abort an orphaned multipart upload; will try again');
        left++;
        continue;
      }
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
