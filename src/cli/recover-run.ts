/** CLI side of `recover`: list or publish journal entries and print one line per entry. */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { ObjectStore } from '../s3/object-store.js';
import { heldOpenBy, Spool, type JournalEntry } from '../fs/spool.js';
import { abortOrphanedUploads, orphanedUploads } from '../fs/orphans.js';
import { transferServices, type TransferConfig } from '../fs/mount.js';
import { createLogger } from '../log.js';
import { clientFor, endpointFor, type AuthArgs } from './common.js';
import { leftAlone, recoverAll, type RecoverResult } from './recover-command.js';
import { VERSION_CONFLICT_SAYS } from '../fs/publisher.js';
import { openMtimeLog } from '../fs/mtime-log.js';
import { synapseScope } from '../fs/synapse-scope.js';
import { UsageError } from '../config.js';

/** Names the Synapse of an entry journaled by a mount of another than synapse.org (spool.ts sameSynapse), after its error. */
function elsewhere(e: JournalEntry): string {
  return e.endpoint !== undefined && synapseScope(e.endpoint) !== '' ? ` [journaled by a mount of the Synapse at ${e.endpoint}]` : '';
}

/**
 * What waits: a failed publish; an entry journaled while its file was still open when the mount
 * stopped (incomplete: it waits for --force); or one still open in its running mount.
 */
function statusOf(e: JournalEntry): string {
  const holder = heldOpenBy(e);
  if (holder) return `open (in the mount, pid ${holder.pid}: published at its last close)`;
  if (e.incomplete) return 'incomplete (publish with --force once checked)';
  // Refused because someone published a newer version (publisher.ts VersionConflict): what plain
  // recover will call it too (QA: --list said "failed", recover "conflict").
  return VERSION_CONFLICT_SAYS.test(e.error) ? 'conflict (a newer version was published since; --force publishes it)' : 'failed';
}

export async function runRecover(opts: {
  spoolDir: string; spoolDirGiven?: boolean; list: boolean; force?: boolean; discard?: string[]; auth: AuthArgs; transfer: TransferConfig;
}): Promise<number> {
  // A --spool-dir that is not there is a typo (QA: "nothing to recover" hid the entries waiting in
  // the real one); the default one is simply not made yet when nothing was ever written.
  if (opts.spoolDirGiven && !(await isDirectory(opts.spoolDir))) {
    throw new UsageError(`--spool-dir ${opts.spoolDir}: no such directory (give the --spool-dir the mount used)`);
  }
  const journal = new Spool(opts.spoolDir);
  const { entries, unreadable } = await journal.readJournal();
  // Never "nothing to recover" over an entry that cannot be read: say so, and fail.
  for (const u of unreadable) {
    process.stdout.write(`unreadable\t${u.file}\t${u.error.replace(/[\t\n]/g, ' ')}\t(its bytes may be in ${path.join(journal.dir, 'files')}; fix or remove the entry)\n`);
  }
  // Bytes kept without an entry (its write failed: disk full) are the user's to copy: say where.
  const kept = await journal.listKept();
  for (const k of kept) {
    process.stdout.write(`unjournaled\t${k.file}\t${k.size} bytes\t(a publish failed and its journal entry could not be written: copy these bytes where they belong, then delete the file and its .keep)\n`);
  }
  const bad = unreadable.length > 0 || kept.length > 0 ? 1 : 0;
  if (opts.discard) {
    // A bare --discard must never fall through to publishing everything.
    if (opts.discard.length === 0) throw new UsageError('--discard needs the ids of the entries to drop (see recover --list)');
    return discard(journal, entries, opts.discard);
  }
  if (opts.list || (entries.length === 0 && (await journal.listUploads()).length === 0)) {
    if (entries.length === 0 && !bad) process.stdout.write(`nothing to recover in ${opts.spoolDir}\n`);
    for (const e of entries) {
      // Last column: where the whole file's bytes are, for a user who wants them before --discard.
      const where = e.s3Object ? `s3://${e.s3Object.bucket}/${e.s3Object.key}`
        : e.s3Upload ? `parts of an unfinished upload to s3://${e.s3Upload.bucket}/${e.s3Upload.key} (not readable until recover completes it)`
          : e.inSpool === false && e.fileHandleId ? `Synapse file handle ${e.fileHandleId}` : e.spoolFile;
      process.stdout.write(`${e.id}\t${e.parentId}/${e.name}\t${e.size} bytes\tmd5 ${e.md5}\t${e.entityId ?? 'new file'}\t${statusOf(e)}: ${e.error.replace(/[\t\n]/g, ' ')}${elsewhere(e)}\tbytes: ${where}\n`);
    }
    return bad;
  }
  // Entries and records of another Synapse are left for a recover against it (spool.ts sameSynapse).
  const endpoint = await endpointFor(opts.auth);
  const spool = new Spool(opts.spoolDir, { endpoint });
  const force = opts.force === true;
  const left = entries.map((e) => leftAlone(e, spool));
  if (left.every((r) => r !== undefined) && (await orphanedUploads(spool, false)).length === 0) {
    // Nothing this Synapse could take: said without asking it, or needing a token (QA: an
    // unreachable --endpoint waited its whole --retry-timeout to report entries it would never
    // touch; with no token at all it failed).
    if (entries.length === 0) process.stdout.write(`nothing to recover for the Synapse at ${endpoint} in ${opts.spoolDir}\n`);
    return report(left.filter((r) => r !== undefined)) || bad;
  }
  // No request yet: the client reads the token.
  const client = await clientFor(opts.auth);
  // Each entry's outcome is one line on stdout; the log would repeat failures as JSON stacks.
  const log = createLogger('fatal');
  const me = await client.getUserProfile();
  const { publisher, sources } = transferServices(client, String(me.ownerId), opts.transfer, log, spool);
  const storeFor = (loc: number, id: string): ObjectStore => sources.storeFor(loc, id, 'read_write');
  // Records and entries a dead process left half-written, as a mount's start removes them (QA: a
  // stray journal temp file from a mount stopped mid-write stayed until the next mount).
  await spool.sweepStrayRecords().catch(() => 0);
  const orphans = await abortOrphanedUploads(spool, storeFor, log);
  if (orphans > 0) process.stdout.write(`cleaned up ${orphans} orphaned S3 upload(s) (open ones aborted, completed ones' unnamed objects deleted)\n`);
  // Not essential: without it the recovered files show Synapse's time at the next mount.
  const mtimes = await openMtimeLog(spool.dir, { readOnly: false, scope: synapseScope(client.endpoint) }).catch(() => undefined);
  const results = await recoverAll(client, publisher, spool, log, storeFor, { force, ...(mtimes ? { mtimes } : {}) });
  await mtimes?.flush();
  return report(results) || bad;
}

/** One line per entry on stdout; 1 if any failed or conflicts. */
function report(results: RecoverResult[]): number {
  let failed = 0;
  for (const r of results) {
    if (r.outcome === 'failed' || r.outcome === 'conflict') failed++;
    process.stdout.write(`${r.outcome}\t${r.entry.parentId}/${r.entry.name}\t${r.entityId ?? ''}${r.error ? `\t${r.error}` : ''}\n`);
  }
  return failed > 0 ? 1 : 0;
}

/**
 * `recover --discard ID…`: drop entries the user does not want published (a `conflict` they
 * resolved otherwise) with their spool bytes. Offline: an open multipart upload an entry named
 * is left to the orphan sweep of the next mount or recover (its record is now unreferenced).
 */
async function discard(spool: Spool, entries: JournalEntry[], ids: string[]): Promise<number> {
  const byId = new Map(entries.map((e) => [e.id, e]));
  const unknown = ids.filter((id) => !byId.has(id));
  if (unknown.length > 0) {
    process.stderr.write(`synapse-mount: no journal entry ${unknown.join(', ')} in ${spool.dir} (see recover --list); nothing discarded\n`);
    return 1;
  }
  // Its spool file is still being written through an open fd: discarding it would lose those writes.
  // Not even with --force (QA: the program's later writes were lost).
  const open = ids.filter((id) => heldOpenBy(byId.get(id)!));
  if (open.length > 0) {
    process.stderr.write(`synapse-mount: ${open.join(', ')} still open in the mount that journaled it (close it there first, or stop that mount); nothing discarded\n`);
    return 1;
  }
  for (const id of new Set(ids)) {
    const e = byId.get(id)!;
    await spool.removeJournal(e.id);
    await spool.removeSpoolFile(e.spoolFile);
    const left = e.s3Upload ? '\tits open S3 upload is aborted by the next mount or recover'
      : e.s3Object ? `\tthe S3 object s3://${e.s3Object.bucket}/${e.s3Object.key} stays in its bucket (no entity uses it)`
        : e.fileHandleId ? `\tits uploaded bytes stay in storage as Synapse file handle ${e.fileHandleId} (no entity uses it)` : '';
    process.stdout.write(`discarded\t${e.parentId}/${e.name}\t${e.id}${left}\n`);
  }
  return 0;
}

async function isDirectory(dir: string): Promise<boolean> {
  return stat(dir).then((st) => st.isDirectory(), () => false);
}
