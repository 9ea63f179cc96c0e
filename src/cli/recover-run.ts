/** CLI side of `recover`: list or publish journal entries and print one line per entry. */
import type { ObjectStore } from '../s3/object-store.js';
import { Spool } from '../fs/spool.js';
import { abortOrphanedUploads } from '../fs/orphans.js';
import { transferServices, type TransferConfig } from '../fs/mount.js';
import { createLogger } from '../log.js';
import { clientFor, type AuthArgs } from './common.js';
import { recoverAll } from './recover-command.js';

export async function runRecover(opts: { spoolDir: string; list: boolean; force?: boolean; auth: AuthArgs; transfer: TransferConfig }): Promise<number> {
  const spool = new Spool(opts.spoolDir);
  const entries = await spool.listJournal();
  if (opts.list || (entries.length === 0 && (await spool.listUploads()).length === 0)) {
    if (entries.length === 0) process.stdout.write(`nothing to recover in ${opts.spoolDir}\n`);
    for (const e of entries) {
      process.stdout.write(`${e.id}\t${e.parentId}/${e.name}\t${e.size} bytes\tmd5 ${e.md5}\t${e.entityId ?? 'new file'}\tfailed: ${e.error}\n`);
    }
    return 0;
  }
  const client = await clientFor(opts.auth);
  const log = createLogger('warn');
  const me = await client.getUserProfile();
  const { publisher, sources } = transferServices(client, String(me.ownerId), opts.transfer, log);
  const storeFor = (loc: number, id: string): ObjectStore => sources.storeFor(loc, id, 'read_write');
  const orphans = await abortOrphanedUploads(spool, storeFor, log);
  if (orphans > 0) process.stdout.write(`aborted ${orphans} orphaned multipart upload(s)\n`);
  const results = await recoverAll(client, publisher, spool, log, storeFor, { force: opts.force === true });
  let failed = 0;
  for (const r of results) {
    if (r.outcome === 'failed' || r.outcome === 'conflict') failed++;
    process.stdout.write(`${r.outcome}\t${r.entry.parentId}/${r.entry.name}\t${r.entityId ?? ''}${r.error ? `\t${r.error}` : ''}\n`);
  }
  return failed > 0 ? 1 : 0;
}
