/**
 * The 'sample' fixture behind `npm run dev-server` and `npm run demo`: one project owned by
 * user1 with an STS-enabled external folder (the S3 fast path), a Synapse-managed folder
 * (presigned URLs + multipart), nested folders, a Link, and user2 as a collaborator with
 * READ/DOWNLOAD/CREATE/UPDATE/DELETE. reads.bin is 10 MiB — bigger than one 8 MiB block — of
 * AES-CTR keystream from a fixed key, so its bytes (and MD5) are the same on every run.
 */
import { createCipheriv } from 'node:crypto';
import type { Seeder } from './seeder.js';

export const READS_BIN_SIZE = 10 * 1024 * 1024;

/** n deterministic pseudo-random bytes (same for the same seed string). */
export function deterministicBytes(n: number, seed = 'synapse-mount'): Buffer {
  const key = Buffer.alloc(16);
  key.write(seed.slice(0, 16));
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

export interface SampleLayout {
  projectId: string;
  stsFolderId: string;
  stsStorageLocationId: number;
  readmeId: string;
  readsBinId: string;
  run1FolderId: string;
  countsCsvId: string;
  managedFolderId: string;
  notesId: string;
  tableId: string;
  nestedFolderId: string;
  deepId: string;
  linkId: string;
}

export async function sampleFixture(seed: Seeder): Promise<SampleLayout> {
  const projectId = seed.project('Demo Project');
  const sts = await seed.folder(projectId, 'sts-data', { storage: 'sts', baseKey: 'demo/sts-data' });
  const readme = await seed.file(sts.id, 'README.txt', Buffer.from(
    'Demo data in an STS-enabled external S3 folder.\nReads here use STS credentials straight from S3.\n',
  ), { contentType: 'text/plain' });
  const reads = await seed.file(sts.id, 'reads.bin', deterministicBytes(READS_BIN_SIZE), { contentType: 'application/octet-stream' });
  const run1 = await seed.folder(sts.id, 'run1');
  const counts = await seed.file(run1.id, 'counts.csv', Buffer.from('gene,count\nBRCA1,12\nTP53,7\nEGFR,31\n'), { contentType: 'text/csv' });
  const managed = await seed.folder(projectId, 'managed');
  const notes = await seed.file(managed.id, 'notes.txt', Buffer.from('Files in Synapse storage: presigned URLs and multipart uploads.\n'), { contentType: 'text/plain' });
  const table = await seed.file(managed.id, 'samples.tsv', Buffer.from('sample\ttissue\nS1\tliver\nS2\tlung\n'), { contentType: 'text/tab-separated-values' });
  const nested = await seed.folder(managed.id, 'nested');
  const deep = await seed.file(nested.id, 'deep.txt', Buffer.from('three levels down\n'), { contentType: 'text/plain' });
  const linkId = seed.link(projectId, 'readme-link', readme.id);
  seed.grant(projectId, 'user2', ['READ', 'DOWNLOAD', 'CREATE', 'UPDATE', 'DELETE']);
  if (sts.storageLocationId === undefined) throw new Error('sts folder without storage location');
  return {
    projectId, stsFolderId: sts.id, stsStorageLocationId: sts.storageLocationId, readmeId: readme.id, readsBinId: reads.id,
    run1FolderId: run1.id, countsCsvId: counts.id, managedFolderId: managed.id, notesId: notes.id, tableId: table.id,
    nestedFolderId: nested.id, deepId: deep.id, linkId,
  };
}
