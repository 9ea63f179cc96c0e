import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InodeTable, type FsNode } from '../../src/fs/inode-table.js';
import type { SynapseApi } from '../../src/synapse/api.js';
import { CONCRETE, type EntityHeader } from '../../src/synapse/types.js';

const root: FsNode = { entityId: 'syn1', name: 'root', kind: 'dir', parentId: undefined, versionNumber: undefined, modifiedOn: 0, createdOn: 0 };

test('a change the mount makes while a listing is in flight survives that listing (no vanishing new file)', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  const server: EntityHeader[] = [{ id: 'syn2', name: 'old.txt', type: CONCRETE.file, versionNumber: 1 }];
  const api = {
    listChildren: async () => { await gate; return server; },
    getLatestVersionInfo: async (id: string) => ({ id, versionNumber: 1, contentSize: '1', modifiedOn: new Date().toISOString() }),
  } as unknown as SynapseApi;
  const table = new InodeTable(api, root, { ttlMs: 0, maxSizes: 100 });
  const listing = table.children('syn1');
  // Published while Synapse is still answering the (older) listing:
  table.upsert({ entityId: 'syn3', name: 'new.txt', kind: 'file', parentId: 'syn1', versionNumber: 1, modifiedOn: 0, createdOn: 0 });
  table.remove('syn1', 'old.txt');
  release();
  const names = (await listing).map((n) => n.name).sort();
  assert.deepEqual(names, ['new.txt']);
});
