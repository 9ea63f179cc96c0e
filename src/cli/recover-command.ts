/**
 * `synapse-mount recover [--spool-dir DIR] [--list]`: publish what failed to publish.
 *
 * Each journal entry (spool.ts) names the bytes (spool file, md5, size — or, for a streamed
 * file, the complete S3 object) and where they belong.
 * Recovery is idempotent — it publishes each entry exactly once even if a previous run (or the
 * mount itself) died after Synapse accepted the version but before the entry was cleared:
 *  - a file handle already registered (`fileHandleId` in the entry) is committed, not re-uploaded;
 *  - if the target entity's current version already has the entry's md5 and size, the entry is
 *    simply cleared.
 */
import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { SynapseApi } from '../synapse/api.js';
import { SynapseError } from '../synapse/errors.js';
import type { Publisher } from '../fs/publisher.js';
import type { JournalEntry, Spool } from '../fs/spool.js';

export interface RecoverResult {
  entry: JournalEntry;
  outcome: 'published' | 'already-published' | 'failed';
  entityId?: string;
  error?: string;
}

async function alreadyPublished(api: SynapseApi, e: JournalEntry): Promise<string | undefined> {
  const entityId = e.entityId ?? (await api.lookupChild(e.parentId, e.name));
  if (!entityId) return undefined;
  try {
    const info = await api.getLatestVersionInfo(entityId);
    if (info.contentMd5 === e.md5 && Number(info.contentSize) === e.size) return entityId;
  } catch (err) {
    if (!(err instanceof SynapseError && err.status === 404)) throw err;
  }
  return undefined;
}

export async function recoverAll(api: SynapseApi, publisher: Publisher, spool: Spool, log?: Logger): Promise<RecoverResult[]> {
  const results: RecoverResult[] = [];
  for (const entry of await spool.listJournal()) {
    try {
      const done = await alreadyPublished(api, entry);
      if (done) {
        results.push({ entry, outcome: 'already-published', entityId: done });
      } else {
        let fileHandleId = entry.fileHandleId;
        if (!fileHandleId && entry.s3Object) {
          const o = entry.s3Object;
          fileHandleId = await publisher.registerExternal(o.bucket, o.key, o.storageLocationId, entry.size, entry.md5, entry.name);
        } else if (!fileHandleId) {
          const size = (await stat(entry.spoolFile)).size;
          if (size !== entry.size) throw new Error(`spool file ${entry.spoolFile} has ${size} bytes, the journal says ${entry.size}`);
          fileHandleId = await publisher.upload({ file: entry.spoolFile, size: entry.size, md5: entry.md5 }, entry.parentId, entry.name);
        }
        if (!entry.fileHandleId) await spool.writeJournal({ ...entry, fileHandleId });
        const entity = await publisher.commit(entry.parentId, entry.name, fileHandleId, entry.entityId);
        results.push({ entry, outcome: 'published', entityId: entity.id });
      }
      await spool.removeJournal(entry.id);
      await spool.removeSpoolFile(entry.spoolFile);
      log?.info({ name: entry.name, id: entry.id }, 'recovered');
    } catch (err) {
      results.push({ entry, outcome: 'failed', error: (err as Error).message });
      log?.error({ err, id: entry.id }, 'recovery failed; entry kept');
    }
  }
  return results;
}
