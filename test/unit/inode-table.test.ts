import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InodeTable, nodeFromHeader, type FileSize, type FsNode } from '../../src/fs/inode-table.js';
import { MemoryObjectStore } from '../../src/s3/memory-object-store.js';
import type { SynapseApi } from '../../src/synapse/api.js';
import { MemorySynapseApi } from '../../src/synapse/memory-api.js';
import { CONCRETE, type EntityHeader } from '../../src/synapse/types.js';
import { SynapseError } from '../../src/synapse/errors.js';

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

// ---- The freshness rule: a folder snapshot's age counts from when it finished loading --------

/** The fake Synapse behind a gate: size requests (getLatestVersionInfo) wait until released. */
async function gatedFake(files: Record<string, number>, opts: { failSizes?: boolean } = {}) {
  const api = new MemorySynapseApi({ store: new MemoryObjectStore() });
  const project = await api.createProject('Freshness');
  const folder = await api.mkdir(project.id, 'many');
  for (const [name, size] of Object.entries(files)) await api.putFile(folder.id, name, Buffer.alloc(size, 1));
  const asked: Array<{ id: string; go: () => void }> = [];
  const before = { ...api.calls };
  const listed = new Map<string, number>();
  const gated = {
    listChildren: (parentId: string, types: Parameters<SynapseApi['listChildren']>[1]) => {
      listed.set(parentId, (listed.get(parentId) ?? 0) + 1);
      return api.listChildren(parentId, types);
    },
    getLatestVersionInfo: async (id: string) => {
      await new Promise<void>((go) => asked.push({ id, go }));
      if (opts.failSizes) throw new Error('Synapse is down');
      return api.getLatestVersionInfo(id);
    },
  } as unknown as SynapseApi;
  const projectNode: FsNode = {
    entityId: project.id, name: project.name, kind: 'dir', parentId: undefined, versionNumber: undefined, modifiedOn: 0, createdOn: 0,
  };
  const calls = (m: string): number => (api.calls[m] ?? 0) - (before[m] ?? 0);
  /** Release every size request made so far, then let their continuations run. */
  const releaseAll = async (): Promise<void> => {
    for (let n = 0; n < 100 && asked.length > 0; n++) {
      for (const a of asked.splice(0)) a.go();
      await settle();
    }
  };
  /** Answer the size requests for one entity only (the throttle lets one through). */
  const release = async (id: string): Promise<void> => {
    for (const a of asked.filter((x) => x.id === id)) {
      asked.splice(asked.indexOf(a), 1);
      a.go();
    }
    await settle();
  };
  return { api, gated, folderId: folder.id, projectNode, asked, calls, release, releaseAll, listed: (id: string) => listed.get(id) ?? 0 };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

/** `ls -l`'s first two steps: a readdir, then a stat of its first file (which sets off the folder's sizes). */
async function statAfterReaddir(table: InodeTable, folderId: string): Promise<FileSize> {
  const nodes = await table.children(folderId);
  return table.size(nodes.find((n) => n.kind === 'file' && n.entityId !== '')!);
}

test('freshness: lookups during a slow size load never re-list the folder; the TTL counts from the end of the load', async () => {
  const files = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`f${i}.txt`, 10 + i]));
  const f = await gatedFake(files);
  let now = 1_000_000;
  const table = new InodeTable(f.gated, f.projectNode, { ttlMs: 60_000, now: () => now, maxSizes: 100, backgroundConcurrency: 2, sizesAfterStats: 1 });
  assert.equal((await table.children(f.folderId)).length, 6);
  assert.equal(f.calls('listChildren'), 1);
  // The throttle makes the sizes slow: `ls -l` stats one file after another, each waiting for
  // its size, for longer than the TTL.
  for (let i = 0; i < 6; i++) {
    now += 20_000;
    const node = await table.resolve(`/many/f${i}.txt`);
    const size = table.size(node);
    await settle();
    assert.ok(f.asked.some((a) => a.id === node.entityId), 'its size is being asked (background or now)');
    await f.release(node.entityId);
    assert.equal((await size).size, 10 + i);
  }
  assert.equal(f.listed(f.folderId), 1, 'no re-listing of many/ mid-traversal');
  // The folders on the path are snapshots of their own: the root (no files, loaded at once)
  // expires by its own age — once in these 120 s.
  assert.equal(f.listed(f.projectNode.entityId), 2);
  assert.equal(f.calls('getLatestVersionInfo'), 6, 'one size request per file');
  // Finished loading at `now`: fresh for the TTL from here, then refetched.
  const loadedAt = now;
  await f.api.putFile(f.folderId, 'added-by-another-client.txt', Buffer.from('x'));
  now = loadedAt + 59_999;
  assert.equal((await table.children(f.folderId)).length, 6);
  now = loadedAt + 60_000;
  assert.equal((await table.children(f.folderId)).length, 7, 'a change by another client shows once the snapshot is TTL old');
  assert.equal(f.listed(f.folderId), 2);
});

test('QA: a listing made to resolve a path asks no sizes (cat of one file among 2,000 cost 2,000 requests), nor a readdir alone (find, os.walk), nor one or two stats after it; stats of four of its files ask them all, and their load holds the listing', async () => {
  const f = await gatedFake(Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`f${i}.txt`, 10 + i])));
  let now = 0;
  const table = new InodeTable(f.gated, f.projectNode, { ttlMs: 60_000, now: () => now, maxSizes: 100, backgroundConcurrency: 2 });
  const node = await table.resolve('/many/f3.txt');
  await settle();
  assert.equal(f.asked.length, 0, 'a lookup: no sizes');
  const size = table.size(node);
  await settle();
  assert.deepEqual(f.asked.map((a) => a.id), [node.entityId], 'stat of that file: its size only');
  await f.releaseAll();
  assert.equal((await size).size, 13);
  assert.equal((await table.children(f.folderId, { sizes: false })).length, 6, 'rmdir\'s emptiness check');
  await settle();
  assert.equal(f.asked.length, 0);
  // 50 s later, `find` or `os.walk`: a readdir and no stat asks nothing.
  now = 50_000;
  const listed = await table.children(f.folderId);
  await settle();
  assert.equal(f.asked.length, 0, 'a readdir alone: no sizes');
  // A person's `ls` then `stat` of two files: their sizes only (QA session 31: one stat after an
  // `ls` of 100,000 files set off 100,000 size requests).
  const looked = [table.size(listed.find((n) => n.name === 'f4.txt')!), table.size(listed.find((n) => n.name === 'f5.txt')!)];
  await settle();
  assert.deepEqual(f.asked.map((a) => a.id).sort(), listed.filter((n) => n.name === 'f4.txt' || n.name === 'f5.txt').map((n) => n.entityId).sort(), 'two stats: their own sizes');
  await f.releaseAll();
  await Promise.all(looked);
  // `ls -l`: its stats reach four distinct files since the readdir (f4, f5, f0, then f3, known):
  // the 3 sizes still unknown are asked, and their load — however long — holds the listing (no
  // re-listing half way), then ages from its end.
  const first = table.size(listed.find((n) => n.name === 'f0.txt')!);
  await settle();
  assert.equal(f.asked.length, 1, 'a third stat: its own size only');
  void table.size(listed.find((n) => n.name === 'f3.txt')!);
  await settle();
  assert.equal(f.asked.length, 3, 'the fourth: f0\'s own, and f1 and f2 in the background lane, 2 at a time');
  now = 200_000;
  await table.children(f.folderId);
  assert.equal(f.listed(f.folderId), 1, 'still loading: not listed again');
  await f.releaseAll();
  assert.equal((await first).size, 10);
  assert.equal(f.calls('getLatestVersionInfo'), 6, 'every size once');
  now = 259_999;
  await table.children(f.folderId);
  assert.equal(f.listed(f.folderId), 1);
  now = 260_000;
  await table.children(f.folderId);
  assert.equal(f.listed(f.folderId), 2, 'a TTL after the load ended');
});

test('freshness: a load that never finishes holds the listing at most maxLoadHoldMs', async () => {
  const f = await gatedFake({ 'a.txt': 1, 'b.txt': 2 });
  let now = 0;
  const table = new InodeTable(f.gated, f.projectNode, { ttlMs: 1_000, maxLoadHoldMs: 30_000, now: () => now, maxSizes: 100, sizesAfterStats: 1 });
  void statAfterReaddir(table, f.folderId);
  await settle();
  assert.equal(f.asked.length, 2, 'both sizes asked, neither answered');
  now = 29_999;
  await table.children(f.folderId);
  assert.equal(f.calls('listChildren'), 1, 'still loading: held');
  now = 30_000;
  await table.children(f.folderId);
  assert.equal(f.calls('listChildren'), 2, 'the hold is bounded');
  await f.releaseAll();
});

test('freshness: failed size fetches end the load too (the size is asked again on demand)', async () => {
  const f = await gatedFake({ 'a.txt': 1, 'b.txt': 2 }, { failSizes: true });
  let now = 0;
  const table = new InodeTable(f.gated, f.projectNode, { ttlMs: 1_000, now: () => now, maxSizes: 100, sizesAfterStats: 1 });
  void statAfterReaddir(table, f.folderId).catch(() => undefined);
  await settle();
  now = 5_000;
  await f.releaseAll();
  now = 5_999;
  await table.children(f.folderId);
  assert.equal(f.calls('listChildren'), 1, 'fresh: the load ended (in failure) at 5 000');
  now = 6_000;
  await table.children(f.folderId);
  assert.equal(f.calls('listChildren'), 2);
  await f.releaseAll();
});

test('freshness: a folder whose sizes are all known is loaded as soon as it is listed; local entries cost no request', async () => {
  const f = await gatedFake({ 'a.txt': 1 });
  let now = 0;
  const table = new InodeTable(f.gated, f.projectNode, { ttlMs: 1_000, now: () => now, maxSizes: 100, sizesAfterStats: 1 });
  table.addLocal({ entityId: '', name: 'being-written.txt', kind: 'file', parentId: f.folderId, versionNumber: undefined, modifiedOn: 0, createdOn: 0 });
  const statted = statAfterReaddir(table, f.folderId);
  await settle();
  assert.deepEqual(f.asked.map((a) => a.id).length, 1, 'only the published file is asked for');
  await f.releaseAll();
  assert.equal((await statted).size, 1);
  now = 10_000;
  assert.equal((await table.children(f.folderId)).length, 2);
  assert.equal(f.calls('listChildren'), 2);
  await settle();
  assert.equal(f.asked.length, 0, 'the size is cached per (id, version): the refetched listing loads at once');
  now = 10_999;
  await table.children(f.folderId);
  assert.equal(f.calls('listChildren'), 2);
});

test('background sizes: folders take turns, so a small folder is not stuck behind a big one', async () => {
  const f = await gatedFake(Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`big${i}.txt`, 1])));
  const small = await f.api.mkdir(f.projectNode.entityId, 'small');
  await f.api.putFile(small.id, 's0.txt', Buffer.from('s'));
  await f.api.putFile(small.id, 's1.txt', Buffer.from('s'));
  const table = new InodeTable(f.gated, f.projectNode, { ttlMs: 1_000, maxSizes: 100, backgroundConcurrency: 1, sizesAfterStats: 1 });
  void statAfterReaddir(table, f.folderId);
  void statAfterReaddir(table, small.id);
  const order: string[] = [];
  for (let n = 0; n < 12; n++) {
    await settle();
    const a = f.asked.shift();
    if (!a) break;
    order.push(a.id);
    a.go();
  }
  const smallIds = new Set((await table.children(small.id)).map((c) => c.entityId));
  const firstSmall = order.findIndex((id) => smallIds.has(id));
  const lastSmall = order.length - 1 - [...order].reverse().findIndex((id) => smallIds.has(id));
  assert.ok(firstSmall >= 0 && lastSmall <= 4, `small folder's sizes asked early: ${lastSmall} in ${order.length}`);
});

test('background sizes: a getattr waiting for a size in flight lends its slot to the next one (3 in flight, not 2)', async () => {
  const f = await gatedFake(Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`f${i}.txt`, i + 1])));
  const table = new InodeTable(f.gated, f.projectNode, { ttlMs: 60_000, maxSizes: 100, backgroundConcurrency: 2, sizesAfterStats: 1 });
  const nodes = await table.children(f.folderId);
  await settle();
  assert.equal(f.asked.length, 0, 'a readdir alone asks nothing');
  // `ls -l`'s first stat sets off the folder's sizes (its own first in line), 2 at a time.
  const first = table.size(nodes[0]!);
  const second = table.size(nodes[1]!);
  await settle();
  assert.equal(f.asked.length, 3, 'the background lane (2), and a waiting getattr lends its slot, once');
  assert.deepEqual(f.asked.map((a) => a.id), nodes.slice(0, 3).map((n) => n.entityId), 'to the next file of its folder');
  await f.releaseAll();
  assert.deepEqual([(await first).size, (await second).size], [1, 2]);
  assert.equal(f.calls('getLatestVersionInfo'), 8, 'every size asked once');
});

test('Synapse unreachable: an expired listing is served for one more TTL; a refusal (404) is not papered over', async () => {
  let now = 1_000_000;
  let fail: SynapseError | undefined;
  let listings = 0;
  const server: EntityHeader[] = [{ id: 'syn2', name: 'kept.txt', type: CONCRETE.file, versionNumber: 1 }];
  const api = {
    listChildren: async () => {
      listings++;
      if (fail) throw fail;
      return server;
    },
    getLatestVersionInfo: async (id: string) => ({ id, versionNumber: 1, contentSize: '1', modifiedOn: new Date().toISOString() }),
  } as unknown as SynapseApi;
  const table = new InodeTable(api, root, { ttlMs: 60_000, maxSizes: 100, now: () => now });
  assert.deepEqual((await table.children('syn1')).map((n) => n.name), ['kept.txt']);
  await new Promise((r) => setTimeout(r, 10)); // the sizes load ends the snapshot's loading
  now += 61_000;
  fail = new SynapseError(0, 'network error: connect ECONNREFUSED', 'POST', '/repo/v1/entity/children', { code: 'NETWORK', attempts: 9 });
  assert.deepEqual((await table.children('syn1')).map((n) => n.name), ['kept.txt'], 'the last listing, not EIO');
  const asked = listings;
  now += 30_000;
  await table.children('syn1');
  assert.equal(listings, asked, 'fresh again for one TTL: no request (and no retry wait) per lookup');
  now += 61_000;
  fail = new SynapseError(404, 'The resource you are attempting to access cannot be found', 'POST', '/repo/v1/entity/children');
  await assert.rejects(table.children('syn1'), (e: unknown) => e instanceof SynapseError && e.status === 404);
});

test('a listed entity names its ACL benefactor as a synID, so one with an ACL of its own is benefactorId === entityId', () => {
  // EntityHeader.benefactorId is a number; entity ids are synIDs. Kept as "1001", an entity with
  // its own ACL never matched its id, and a rename gave it its new folder's ACL (review).
  const header = (id: string, benefactorId: number): EntityHeader => ({
    id, name: id, type: CONCRETE.folder, versionNumber: 1, benefactorId,
  } as EntityHeader);
  assert.equal(nodeFromHeader(header('syn1001', 1001), 'syn1')!.benefactorId, 'syn1001');
  assert.equal(nodeFromHeader(header('syn1002', 1001), 'syn1001')!.benefactorId, 'syn1001');
});

test('sizes with handles: a file Synapse gives no handle for sends only its own ACL\'s files to /version, for a while (QA: one file without DOWNLOAD did it for its whole folder, for good)', async () => {
  let now = 0;
  const headers: EntityHeader[] = [
    { id: 'syn21', name: 'a.txt', type: CONCRETE.file, versionNumber: 1, benefactorId: 10 } as EntityHeader,
    { id: 'syn22', name: 'own-acl.txt', type: CONCRETE.file, versionNumber: 1, benefactorId: 22 } as EntityHeader,
    { id: 'syn23', name: 'c.txt', type: CONCRETE.file, versionNumber: 1, benefactorId: 10 } as EntityHeader,
    { id: 'syn24', name: 'd.txt', type: CONCRETE.file, versionNumber: 2, benefactorId: 22 } as EntityHeader,
  ];
  const calls: string[] = [];
  const info = (id: string) => ({ id, versionNumber: 1, contentSize: '7', modifiedOn: new Date(0).toISOString() });
  const api = {
    listChildren: async () => headers,
    getLatestVersionInfo: async (id: string) => { calls.push(`version ${id}`); return info(id); },
  } as unknown as SynapseApi;
  const table = new InodeTable(api, root, {
    ttlMs: 60_000, maxSizes: 100, now: () => now,
    sizeWithHandle: async (_api, id) => { calls.push(`bundle2 ${id}`); return id === 'syn22' || id === 'syn24' ? undefined : info(id); },
  });
  const node = async (name: string): Promise<FsNode> => (await table.children('syn1', { sizes: false })).find((n) => n.name === name)!;
  await table.size(await node('own-acl.txt'));
  await table.size(await node('a.txt'));
  await table.size(await node('d.txt'));
  assert.deepEqual(calls, ['bundle2 syn22', 'version syn22', 'bundle2 syn21', 'version syn24']);
  now += 11 * 60_000; // a grant may have come since
  calls.length = 0;
  headers[3] = { ...headers[3]!, versionNumber: 3 } as EntityHeader;
  table.invalidate('syn1');
  await table.size(await node('d.txt'));
  assert.deepEqual(calls, ['bundle2 syn24', 'version syn24']);
});

// ---- Memory: cached listings are bounded by their entries in all (head comment: Memory) ------

test('listings are kept least recently used first within maxListedEntries; a dropped one is listed again, the mount\'s own entries kept', async () => {
  // Three folders of 4 files under the root; room for 10 entries: the root (3) and one folder (4)
  // always fit, a second folder does not.
  const headers = new Map<string, EntityHeader[]>([['syn1', ['a', 'b', 'c'].map((d, i) => ({ id: `syn${10 + i}`, name: d, type: CONCRETE.folder }))]]);
  for (const [i, d] of ['a', 'b', 'c'].entries()) {
    headers.set(`syn${10 + i}`, [1, 2, 3, 4].map((n) => ({ id: `syn${100 + 10 * i + n}`, name: `${d}${n}.txt`, type: CONCRETE.file, versionNumber: 1 })));
  }
  const listed: string[] = [];
  const api = {
    listChildren: async (id: string) => { listed.push(id); return headers.get(id) ?? []; },
  } as unknown as SynapseApi;
  const table = new InodeTable(api, root, { ttlMs: 60_000, maxSizes: 100, maxListedEntries: 10, keepRecentListings: 1 });
  await table.resolve('/a/a1.txt');
  await table.resolve('/b/b1.txt');
  // 3 + 4 + 4 = 11 > 10: `a`, the least recently used, went (the root was used to reach `b`).
  assert.deepEqual(table.listedCounts, { folders: 2, entries: 7 });
  assert.equal(table.cachedListing('syn10'), undefined);
  assert.ok(table.cachedListing('syn11'));
  // A new file the mount made in `b` counts; removing it uncounts it.
  table.addLocal({ entityId: '', name: 'new.txt', kind: 'file', parentId: 'syn11', versionNumber: undefined, modifiedOn: 0, createdOn: 0 });
  assert.equal(table.listedCounts.entries, 8);
  // `a` again: listed again (its entries are Synapse's), and now `b` is the one to go — with its
  // local entry merged back when it is listed once more.
  listed.length = 0;
  assert.equal((await table.resolve('/a/a2.txt')).entityId, 'syn102');
  assert.deepEqual(listed, ['syn10']);
  assert.equal(table.cachedListing('syn11'), undefined);
  assert.deepEqual((await table.children('syn11')).map((n) => n.name).sort(), ['b1.txt', 'b2.txt', 'b3.txt', 'b4.txt', 'new.txt']);
  table.remove('syn11', 'new.txt');
  assert.ok(!table.cachedListing('syn11')?.has('new.txt'));
  assert.ok(table.listedCounts.entries <= 10, JSON.stringify(table.listedCounts));
  // A lookup through cached listings keeps them in use: the root is never the one dropped here.
  for (const d of ['a', 'b', 'c', 'a', 'b']) await table.resolve(`/${d}/${d}1.txt`);
  assert.ok(table.cachedListing('syn1'), 'the root, used by every lookup, stays');
  const { entries } = table.listedCounts;
  assert.equal(entries, [...['syn1', 'syn10', 'syn11', 'syn12']].reduce((n, id) => n + (table.cachedListing(id)?.size ?? 0), 0), 'the count is the sum of the listings');
});

test('a listing whose sizes are loading is never dropped for memory', async () => {
  const f = await gatedFake({ 'x.bin': 1, 'y.bin': 2, 'z.bin': 3 });
  const table = new InodeTable(f.gated, f.projectNode, { ttlMs: 60_000, maxSizes: 100, backgroundConcurrency: 1, maxListedEntries: 1, keepRecentListings: 1, sizesAfterStats: 1 });
  // A stat after the readdir starts the folder's size load (held at the gate).
  const first = statAfterReaddir(table, f.folderId);
  await settle();
  assert.ok(f.asked.length > 0, 'sizes asked');
  // Another folder listed now pushes the total over the bound: the loading one stays.
  await table.children(f.projectNode.entityId, { sizes: false });
  assert.ok(table.cachedListing(f.folderId), 'the loading snapshot stays');
  await f.releaseAll();
  await first;
});

test('a folder moved out of an ACL drops the listings below it that name the old one, also past a listing dropped for memory', async () => {
  const h = (id: string, name: string, type: string, benefactorId?: number): EntityHeader => ({ id, name, type, versionNumber: 1, ...(benefactorId ? { benefactorId } : {}) } as EntityHeader);
  const headers = new Map<string, EntityHeader[]>([
    ['syn1', [h('syn10', 'moved', CONCRETE.folder, 1), h('syn11', 'other', CONCRETE.folder, 11)]],
    ['syn10', [h('syn20', 'mid', CONCRETE.folder, 1)]],
    ['syn20', [h('syn30', 'deep', CONCRETE.folder, 1)]],
    ['syn30', [h('syn40', 'f.txt', CONCRETE.file, 1), h('syn41', 'g.txt', CONCRETE.file, 1)]],
    ['syn11', [h('syn50', 'x.txt', CONCRETE.file, 11), h('syn51', 'y.txt', CONCRETE.file, 11), h('syn52', 'z.txt', CONCRETE.file, 11)]],
  ]);
  const api = { listChildren: async (id: string) => headers.get(id) ?? [] } as unknown as SynapseApi;
  const table = new InodeTable(api, root, { ttlMs: 60_000, maxSizes: 100, maxListedEntries: 7, keepRecentListings: 1 });
  await table.resolve('/moved/mid/deep/f.txt');
  // Another folder's listing pushes out the least recently used: `moved`'s own (1 entry), so the
  // walk from it cannot reach `deep`'s.
  await table.resolve('/other/x.txt');
  assert.equal(table.cachedListing('syn10'), undefined, 'moved\'s listing went for memory');
  assert.ok(table.cachedListing('syn30'), 'deep\'s is still here');
  table.invalidateTree('syn10', 'syn1');
  assert.equal(table.cachedListing('syn30'), undefined, 'deep\'s listing named the old ACL: dropped');
  assert.ok(table.cachedListing('syn11'), 'a listing under another ACL stays');
});

test('a folder bigger than maxListedEntries is kept whole with the folders above it: lookups under it list nothing again', async () => {
  // QA session 31: keeping a folder of 100,000 files dropped the root's listing, whose fetch at
  // the next lookup dropped the folder's — every stat under it listed the whole folder again.
  const headers = new Map<string, EntityHeader[]>([
    ['syn1', [{ id: 'syn10', name: 'big', type: CONCRETE.folder }, { id: 'syn11', name: 'small', type: CONCRETE.folder }]],
    ['syn10', Array.from({ length: 20 }, (_, i) => ({ id: `syn${100 + i}`, name: `f${i}`, type: CONCRETE.file, versionNumber: 1 }))],
  ]);
  const listed: string[] = [];
  const api = { listChildren: async (id: string) => { listed.push(id); return headers.get(id) ?? []; } } as unknown as SynapseApi;
  const table = new InodeTable(api, root, { ttlMs: 60_000, maxSizes: 100, maxListedEntries: 10 });
  for (let i = 0; i < 5; i++) assert.equal((await table.resolve(`/big/f${i}`)).entityId, `syn${100 + i}`);
  assert.deepEqual(listed, ['syn1', 'syn10'], 'each listed once');
  assert.ok(table.listedCounts.entries > 10, 'over the bound, with the path kept');
});
