/**
 * Disk cache (issue 9): blocks survive a new instance (remount), damaged files are never served,
 * eviction keeps the bound and the 5%-free rule, instances share a directory safely; sizes
 * persist; the block cache consults the disk before S3 and fills it.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { BlockCache, type BlockId } from '../../src/fs/block-cache.js';
import { decodeBlock, DiskCache, encodeBlockHeader, encodeObjectKey, openSizeLog } from '../../src/fs/disk-cache.js';
import { InodeTable, type FsNode } from '../../src/fs/inode-table.js';
import { synapseScope } from '../../src/fs/synapse-scope.js';
import { SpoolFile } from '../../src/fs/spool.js';
import type { SynapseApi } from '../../src/synapse/api.js';
import type { RangeSource } from '../../src/s3/object-store.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const dirs: string[] = [];
after(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }); });

async function tmp(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'diskcache-'));
  dirs.push(d);
  return d;
}

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) % 251;
  return b;
}

const id = (object: string, index: number, blockSize = 64 * KiB): BlockId => ({ object, blockSize, index });
const bigDisk = async (): Promise<{ total: number; avail: number }> => ({ total: 1024 * 1024 * MiB, avail: 512 * 1024 * MiB });

async function blockFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const o of await readdir(path.join(dir, 'blocks'))) {
    for (const f of await readdir(path.join(dir, 'blocks', o))) out.push(path.join(dir, 'blocks', o, f));
  }
  return out;
}

test('object keys map to distinct safe file names', () => {
  assert.equal(encodeObjectKey('fh12'), 'fh12');
  assert.equal(encodeObjectKey('fh12:abc-3'), 'fh12%3Aabc-3');
  assert.notEqual(encodeObjectKey('a/b'), encodeObjectKey('a_b'));
  assert.doesNotMatch(encodeObjectKey('../x/y'), /\//);
});

test('block file format: round trip, and every kind of damage is refused', () => {
  const data = bytes(1000, 3);
  const file = Buffer.concat([encodeBlockHeader(id('fh1', 2), data), data]);
  assert.deepEqual(decodeBlock(file, id('fh1', 2), 1000), data);
  assert.equal(typeof decodeBlock(file.subarray(0, file.length - 1), id('fh1', 2), 1000), 'string', 'truncated');
  assert.equal(typeof decodeBlock(file, id('fh1', 3), 1000), 'string', 'another block');
  assert.equal(typeof decodeBlock(file, id('fh1', 2, 32 * KiB), 1000), 'string', 'another block size');
  assert.equal(typeof decodeBlock(file, id('fh1', 2), 999), 'string', 'unexpected length');
  const flipped = Buffer.from(file);
  flipped[flipped.length - 10]! ^= 1;
  assert.match(decodeBlock(flipped, id('fh1', 2), 1000) as string, /checksum/);
  const badHeader = Buffer.from(file);
  badHeader[9]! ^= 1;
  assert.equal(typeof decodeBlock(badHeader, id('fh1', 2), 1000), 'string', 'header damage');
  assert.equal(typeof decodeBlock(Buffer.alloc(0), id('fh1', 2), 1000), 'string', 'empty file');
});

test('blocks survive a new instance on the same directory (remount)', async () => {
  const dir = await tmp();
  const a = await DiskCache.open({ dir, maxBytes: 100 * MiB, diskSpace: bigDisk });
  const data = bytes(64 * KiB, 1);
  a.put(id('fh7:etag', 0), data);
  await a.close();
  const b = await DiskCache.open({ dir, maxBytes: 100 * MiB, diskSpace: bigDisk });
  assert.deepEqual(await b.get(id('fh7:etag', 0), data.length), data);
  assert.equal(await b.get(id('fh7:other', 0), data.length), undefined, 'another ETag is another object');
  assert.equal(b.usedBytes, (await stat(b.blockPath(id('fh7:etag', 0)))).size, 'the scan learned what is stored');
  assert.deepEqual(b.stats.hits, 1);
});

test('a truncated or corrupted block file is discarded, not served, and can be rewritten', async () => {
  const dir = await tmp();
  const c = await DiskCache.open({ dir, maxBytes: 100 * MiB, diskSpace: bigDisk });
  const data = bytes(64 * KiB, 2);
  c.put(id('fh1', 0), data);
  c.put(id('fh1', 1), data);
  await c.flush();
  const f0 = c.blockPath(id('fh1', 0));
  await truncate(f0, 1000);
  assert.equal(await c.get(id('fh1', 0), data.length), undefined);
  await assert.rejects(stat(f0), { code: 'ENOENT' }, 'the damaged file is deleted');
  const f1 = c.blockPath(id('fh1', 1));
  const raw = await readFile(f1);
  raw[raw.length - 5]! ^= 0xff;
  await writeFile(f1, raw);
  assert.equal(await c.get(id('fh1', 1), data.length), undefined);
  assert.equal(c.stats.corrupt, 2);
  c.put(id('fh1', 0), data);
  await c.flush();
  assert.deepEqual(await c.get(id('fh1', 0), data.length), data);
});

test('eviction keeps the bound and removes the least recently used blocks', async () => {
  const dir = await tmp();
  const block = 64 * KiB;
  const c = await DiskCache.open({ dir, maxBytes: 10 * block, diskSpace: bigDisk });
  const data = bytes(block, 4);
  for (let i = 0; i < 8; i++) c.put(id('fhA', i), data);
  await c.flush();
  // Make block 0 the most recently used and the others old, in order.
  const now = Date.now() / 1000;
  for (let i = 0; i < 8; i++) await utimes(c.blockPath(id('fhA', i)), now - 1000 + i, now - 1000 + i);
  await utimes(c.blockPath(id('fhA', 0)), now, now);
  for (let i = 8; i < 13; i++) {
    c.put(id('fhA', i), data);
    await c.flush();
  }
  await c.evict(0);
  const files = await blockFiles(dir);
  const total = (await Promise.all(files.map((f) => stat(f)))).reduce((n, s) => n + s.size, 0);
  assert.ok(total <= 10 * block + 10 * 100, `stored ${total} bytes, bound ${10 * block}`);
  assert.ok(c.stats.evictions > 0);
  assert.ok(files.includes(c.blockPath(id('fhA', 0))), 'the recently used block stays');
  assert.ok(!files.includes(c.blockPath(id('fhA', 1))), 'the least recently used block goes');
  assert.deepEqual(await c.get(id('fhA', 12), block), data, 'the newest block is there');
});

test('concurrent writes never pass the bound together (each sees the room the others took)', async () => {
  // Up to 4 writes run at once; before the room was reserved at admission, all of them passed
  // the same check and the cache ended over its bound (the e2e test saw 10 MiB + 404 bytes).
  const dir = await tmp();
  const block = 64 * KiB;
  const bound = 10 * block;
  const c = await DiskCache.open({ dir, maxBytes: bound, diskSpace: bigDisk });
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 12; i++) c.put(id(`fhR${round}`, i), bytes(block, round * 16 + i));
    await c.flush();
    const files = await blockFiles(dir);
    const total = (await Promise.all(files.map((f) => stat(f)))).reduce((n, st) => n + st.size, 0);
    assert.ok(total <= bound, `round ${round}: ${total} bytes stored, bound ${bound}`);
    // The estimate may run over: a write landing while an eviction scans is counted twice
    // until the next scan (disk-cache.ts scanAndEvict) — never under what is stored. Asserting
    // it ≤ the bound failed under load (estimate 655683 for a 655360 bound, 590114 stored).
    assert.ok(c.usedBytes >= total, `round ${round}: estimate ${c.usedBytes}, stored ${total}`);
  }
  assert.ok(c.stats.writes > 0 && c.stats.evictions > 0);
});

test('writes never take the disk below 5% free', async () => {
  const dir = await tmp();
  const block = 64 * KiB;
  // A 100-block disk with 6 blocks free before the cache: 5 blocks (5%) must stay free, so the
  // cache can hold about one block; later writes evict earlier ones to stay within that.
  const stored = async (): Promise<number> => {
    const files = await blockFiles(dir).catch(() => [] as string[]);
    return (await Promise.all(files.map((f) => stat(f)))).reduce((n, s) => n + s.size, 0);
  };
  const c = await DiskCache.open({ dir, maxBytes: 1000 * block, diskSpace: async () => ({ total: 100 * block, avail: 6 * block - await stored() }) });
  const data = bytes(block - 100, 5);
  for (let i = 0; i < 4; i++) {
    c.put(id('fhB', i), data);
    await c.flush();
    assert.ok(6 * block - await stored() >= 5 * block, `free space stays ≥ 5% after write ${i}`);
  }
  assert.ok(c.stats.writes >= 1);
  assert.deepEqual(await c.get(id('fhB', 3), data.length), data, 'the newest block is kept');
  // A block that cannot fit even in an empty cache is skipped, not written.
  const huge = await DiskCache.open({ dir: await tmp(), maxBytes: 1000 * block, diskSpace: async () => ({ total: 100 * block, avail: 5 * block }) });
  huge.put(id('fhC', 0), data);
  await huge.flush();
  assert.equal(huge.stats.writes, 0);
  assert.equal(huge.stats.skipped, 1);
});

test('two instances sharing one directory write and read the same blocks at once', async () => {
  const dir = await tmp();
  const [a, b] = await Promise.all([
    DiskCache.open({ dir, maxBytes: 100 * MiB, diskSpace: bigDisk }),
    DiskCache.open({ dir, maxBytes: 100 * MiB, diskSpace: bigDisk }),
  ]);
  const blocks = Array.from({ length: 16 }, (_, i) => bytes(64 * KiB, i));
  const readers: Array<Promise<Buffer | undefined>> = [];
  for (let round = 0; round < 3; round++) {
    blocks.forEach((d, i) => { a.put(id('fhS', i), d); b.put(id('fhS', i), d); });
    blocks.forEach((d, i) => readers.push(a.get(id('fhS', i), d.length), b.get(id('fhS', i), d.length)));
  }
  const seen = await Promise.all(readers);
  seen.forEach((r, k) => { if (r) assert.deepEqual(r, blocks[Math.floor(k / 2) % 16]); });
  await Promise.all([a.flush(), b.flush()]);
  for (let i = 0; i < 16; i++) assert.deepEqual(await b.get(id('fhS', i), 64 * KiB), blocks[i]);
  assert.equal(a.stats.corrupt + b.stats.corrupt, 0, 'no reader ever saw a partial file');
  assert.deepEqual(await readdir(path.join(dir, 'tmp')), [], 'no temp files left');
});

test('sizes persist across instances; a torn line is skipped', async () => {
  const dir = await tmp();
  const a = await openSizeLog(dir);
  a.set('syn1', 1, { size: 10, md5: 'aa' });
  a.set('syn1', 2, { size: 20, md5: undefined });
  await a.flush();
  await writeFile(a.file, '["syn9",1,5', { flag: 'a' }); // a crash mid-append
  const b = await openSizeLog(dir);
  assert.deepEqual(b.get('syn1', 1), { size: 10, md5: 'aa' });
  assert.deepEqual(b.get('syn1', 2), { size: 20, md5: undefined });
  assert.equal(b.get('syn9', 1), undefined);
  assert.equal(b.count, 2);
});

test('two Synapses share a directory without mixing ids: blocks and sizes are scoped by endpoint', async () => {
  // A local server numbers file handles and entities from 1 like any other: fh7 there is not fh7 on synapse.org.
  const dir = await tmp();
  const local = synapseScope('http://127.0.0.1:8080');
  const other = synapseScope('http://127.0.0.1:9090/repo/v1');
  assert.equal(synapseScope('https://repo-prod.prod.sagebase.org/repo/v1/'), '', 'synapse.org keys stay bare');
  const prod = await DiskCache.open({ dir, maxBytes: 64 * MiB, diskSpace: bigDisk });
  const dev = await DiskCache.open({ dir, maxBytes: 64 * MiB, diskSpace: bigDisk, scope: local });
  const dev2 = await DiskCache.open({ dir, maxBytes: 64 * MiB, diskSpace: bigDisk, scope: other });
  prod.put(id('fh7', 0), bytes(64 * KiB, 1));
  dev.put(id('fh7', 0), bytes(64 * KiB, 2));
  await Promise.all([prod.flush(), dev.flush()]);
  assert.deepEqual(await prod.get(id('fh7', 0), 64 * KiB), bytes(64 * KiB, 1));
  assert.deepEqual(await dev.get(id('fh7', 0), 64 * KiB), bytes(64 * KiB, 2));
  assert.equal(await dev2.get(id('fh7', 0), 64 * KiB), undefined);
  const before = await DiskCache.open({ dir, maxBytes: 64 * MiB, diskSpace: bigDisk });
  assert.deepEqual(await before.get(id('fh7', 0), 64 * KiB), bytes(64 * KiB, 1), 'an unscoped (synapse.org) block is where earlier versions put it');

  const sizesDev = await openSizeLog(dir, { scope: local });
  sizesDev.set('syn3', 1, { size: 5, md5: 'dd' });
  await sizesDev.flush();
  const sizesProd = await openSizeLog(dir);
  sizesProd.set('syn3', 1, { size: 9, md5: 'pp' });
  await sizesProd.flush();
  assert.deepEqual((await openSizeLog(dir, { scope: local })).get('syn3', 1), { size: 5, md5: 'dd' });
  assert.deepEqual((await openSizeLog(dir)).get('syn3', 1), { size: 9, md5: 'pp' });
  assert.equal((await openSizeLog(dir, { scope: other })).get('syn3', 1), undefined);
  const forget = await openSizeLog(dir, { scope: local });
  forget.delete('syn3', 1); // the local server's syn3 was deleted: synapse.org's entry stays
  await forget.flush();
  assert.equal((await openSizeLog(dir, { scope: local })).get('syn3', 1), undefined);
  assert.deepEqual((await openSizeLog(dir)).get('syn3', 1), { size: 9, md5: 'pp' });
  await Promise.all([prod.close(), dev.close(), dev2.close(), before.close()]);
});

class RampSource implements RangeSource {
  reads = 0;
  ranges: Array<[number, number]> = [];
  constructor(readonly cacheKey: string, readonly size: number) {}
  async read(start: number, end: number): Promise<Buffer> {
    this.reads++;
    this.ranges.push([start, end]);
    const b = Buffer.allocUnsafe(end - start);
    for (let i = start; i < end; i++) b[i - start] = (i * 7 + 1) % 253;
    return b;
  }
}

test('the block cache reads the disk before S3 and fills it, readahead included', async () => {
  const dir = await tmp();
  const blockSize = 64 * KiB;
  const disk1 = await DiskCache.open({ dir, maxBytes: 100 * MiB, diskSpace: bigDisk });
  const first = new BlockCache({ maxBytes: 10 * MiB, blockSize, disk: disk1 });
  const src = new RampSource('fh42', 5 * blockSize + 123);
  const whole = await first.read(src, 0, src.size);
  first.prefetch(src, 5); // already cached in memory: nothing to do
  await disk1.close();
  assert.equal(src.reads, 6);
  assert.equal((await blockFiles(dir)).length, 6);

  // "Remount": new memory cache, same disk.
  const disk2 = await DiskCache.open({ dir, maxBytes: 100 * MiB, diskSpace: bigDisk });
  const second = new BlockCache({ maxBytes: 10 * MiB, blockSize, disk: disk2 });
  const src2 = new RampSource('fh42', src.size);
  assert.deepEqual(await second.read(src2, 0, src2.size), whole);
  assert.equal(src2.reads, 0, 'no S3 read after a remount');
  assert.equal(second.stats.diskHits, 6);

  // A damaged block is refetched from S3 and rewritten.
  await truncate(disk2.blockPath({ object: 'fh42', blockSize, index: 2 }), 10);
  const third = new BlockCache({ maxBytes: 10 * MiB, blockSize, disk: disk2 });
  assert.deepEqual(await third.read(src2, 2 * blockSize, blockSize), whole.subarray(2 * blockSize, 3 * blockSize));
  assert.equal(src2.reads, 1);
  await disk2.flush();
  assert.ok((await stat(disk2.blockPath({ object: 'fh42', blockSize, index: 2 }))).size > blockSize, 'rewritten whole');
});

test('a block stored in place of its pieces deletes them once it is on disk; one that finds no room leaves them', async () => {
  const dir = await tmp();
  const piece = 16 * KiB;
  // A bound the four pieces fit in, and the block (with its header) never could.
  const small = await DiskCache.open({ dir, maxBytes: 70 * KiB, diskSpace: bigDisk });
  const pieces = [0, 1, 2, 3].map((i) => id('fhP', i, piece));
  for (const p of pieces) small.put(p, bytes(piece, p.index));
  await small.flush();
  assert.equal((await blockFiles(dir)).length, 4);
  small.put(id('fhP', 0), bytes(64 * KiB, 9), pieces);
  await small.close();
  assert.deepEqual((await blockFiles(dir)).sort(), pieces.map((p) => small.blockPath(p)).sort(), 'not stored: the pieces stay');
  const c = await DiskCache.open({ dir, maxBytes: 100 * MiB, diskSpace: bigDisk });
  c.put(id('fhP', 0), bytes(64 * KiB, 9), [...pieces, id('fhP', 4, piece)]); // one never stored: no error
  await c.flush();
  const files = await blockFiles(dir);
  assert.deepEqual(files, [c.blockPath(id('fhP', 0))], 'the block alone');
  assert.equal(c.usedBytes, (await stat(files[0]!)).size, 'the pieces\' bytes left the estimate');
  assert.deepEqual(await c.get(id('fhP', 0), 64 * KiB), bytes(64 * KiB, 9));
  assert.equal(c.stats.errors, 0);
  await c.close();
});

test('a piece and a whole block of the same size and index are two files: the pieces\' clean-up leaves the block of a mount with that --block-size alone', async () => {
  const dir = await tmp();
  const c = await DiskCache.open({ dir, maxBytes: 100 * MiB, diskSpace: bigDisk });
  const piece: BlockId = { object: 'fhQ', blockSize: 16 * KiB, index: 0, piece: true };
  c.put(id('fhQ', 0, 16 * KiB), bytes(16 * KiB, 1)); // a 16K-block mount's block 0
  c.put(piece, bytes(16 * KiB, 2)); // a 64K-block mount's piece 0
  await c.flush();
  assert.equal((await blockFiles(dir)).length, 2);
  assert.deepEqual(await c.get(piece, 16 * KiB), bytes(16 * KiB, 2));
  assert.deepEqual(await c.get(id('fhQ', 0, 16 * KiB), 16 * KiB), bytes(16 * KiB, 1));
  c.put(id('fhQ', 0), bytes(64 * KiB, 3), [piece]);
  await c.flush();
  assert.deepEqual((await blockFiles(dir)).sort(), [c.blockPath(id('fhQ', 0, 16 * KiB)), c.blockPath(id('fhQ', 0))].sort());
  await c.close();
});

/** 64 KiB blocks of 16 KiB pieces over a disk tier: a random read put two pieces of block 1 on disk. */
async function twoPiecesOnDisk(object: string): Promise<{ dir: string; disk: DiskCache; cache: BlockCache; src: RampSource }> {
  const dir = await tmp();
  const disk = await DiskCache.open({ dir, maxBytes: 100 * MiB, diskSpace: bigDisk });
  const cache = new BlockCache({ maxBytes: 10 * MiB, blockSize: PIECES_BLOCK, pieceSize: 16 * KiB, disk });
  const src = new RampSource(object, 3 * PIECES_BLOCK);
  await cache.readInto(src, PIECES_BLOCK + 10, 10, Buffer.alloc(10), () => false, 'random');
  await cache.readInto(src, PIECES_BLOCK + 40 * KiB, 10, Buffer.alloc(10), () => false, 'random');
  await disk.flush();
  return { dir, disk, cache, src };
}
const PIECES_BLOCK = 64 * KiB;

test('the block cache: a block read randomly (pieces on disk), then whole, is on disk once', async () => {
  const { dir, disk, cache, src } = await twoPiecesOnDisk('fh43');
  assert.equal((await blockFiles(dir)).length, 2, 'two pieces on disk');
  const whole = await cache.read(src, PIECES_BLOCK, PIECES_BLOCK);
  await disk.flush();
  assert.deepEqual(await blockFiles(dir), [disk.blockPath({ object: 'fh43', blockSize: PIECES_BLOCK, index: 1 })], 'the block, not its pieces beside it');
  assert.equal(disk.usedBytes, (await stat(disk.blockPath({ object: 'fh43', blockSize: PIECES_BLOCK, index: 1 }))).size);
  const again = new BlockCache({ maxBytes: 10 * MiB, blockSize: PIECES_BLOCK, pieceSize: 16 * KiB, disk });
  const before = src.reads;
  assert.deepEqual(await again.read(src, PIECES_BLOCK + 10, 10), whole.subarray(10, 20), 'a random read after a remount finds the whole block');
  assert.equal(src.reads, before, 'with no S3 read');
  await disk.close();
});

test('the block cache: a remount reading straight through uses the pieces an earlier mount left on disk (one directory read per file)', async () => {
  const { disk, src } = await twoPiecesOnDisk('fh44');
  const again = new BlockCache({ maxBytes: 10 * MiB, blockSize: PIECES_BLOCK, pieceSize: 16 * KiB, disk }); // a remount
  const src2 = new RampSource('fh44', src.size);
  const whole = await again.read(src2, 0, src2.size);
  assert.deepEqual(whole, await new RampSource('x', src.size).read(0, src.size));
  assert.deepEqual(src2.ranges.filter(([s]) => s >= PIECES_BLOCK && s < 2 * PIECES_BLOCK), [[PIECES_BLOCK + 16 * KiB, PIECES_BLOCK + 32 * KiB], [PIECES_BLOCK + 48 * KiB, 2 * PIECES_BLOCK]],
    'block 1: only the gaps between the pieces on disk');
  await disk.close();
});

test('inode table: sizes from the persistent store cost no Synapse request', async () => {
  const dir = await tmp();
  const store = await openSizeLog(dir);
  store.set('syn5', 3, { size: 1234, md5: 'ff' });
  let calls = 0;
  const api = {
    listChildren: async () => { calls++; return [{ id: 'syn5', name: 'a.txt', type: 'org.sagebionetworks.repo.model.FileEntity', versionNumber: 3 }]; },
    getLatestVersionInfo: async () => { calls++; throw new Error('should not be asked'); },
  } as unknown as SynapseApi;
  const root: FsNode = { entityId: 'syn1', name: 'p', kind: 'dir', parentId: undefined, versionNumber: undefined, modifiedOn: 0, createdOn: 0 };
  const table = new InodeTable(api, root, { ttlMs: 60_000, sizeStore: store });
  const node = await table.resolve('/a.txt');
  assert.deepEqual(await table.size(node), { size: 1234, md5: 'ff' });
  assert.equal(calls, 1, 'only the listing');
  table.setSize('syn5', 4, { size: 99, md5: 'ee' });
  assert.deepEqual(store.get('syn5', 4), { size: 99, md5: 'ee' }, 'learned sizes are persisted');
});

test('a written file can populate the cache block by block (write path)', async () => {
  const dir = await tmp();
  const c = await DiskCache.open({ dir, maxBytes: 100 * MiB, diskSpace: bigDisk });
  const blockSize = 64 * KiB;
  const body = bytes(3 * blockSize + 10, 9);
  const file = path.join(dir, 'spooled');
  await writeFile(file, body);
  assert.equal(await c.populateFromFile('fh900:etag-2', blockSize, file, body.length), 4);
  const cache = new BlockCache({ maxBytes: 10 * MiB, blockSize, disk: c });
  const src = new RampSource('fh900:etag-2', body.length);
  assert.deepEqual(await cache.read(src, 0, body.length), body, 'read back from disk, not from the source');
  assert.equal(src.reads, 0);
});

test('a spool out of room on the cache\'s disk gets it: the cache gives back its least recently used blocks and grows no more for a while', async () => {
  const dir = await tmp();
  const cache = await DiskCache.open({ dir, maxBytes: 64 * MiB, diskSpace: bigDisk });
  for (let i = 0; i < 8; i++) cache.put(id('fhY', i), bytes(64 * KiB, i));
  await cache.flush();
  assert.equal((await blockFiles(dir)).length, 8);
  assert.equal(await cache.yieldSpace(3 * 64 * KiB), true);
  assert.equal((await blockFiles(dir)).length, 5, 'three blocks given back');
  cache.put(id('fhZ', 0), bytes(64 * KiB, 99));
  await cache.flush();
  assert.ok((await blockFiles(dir)).length <= 5, 'not growing back at once');
  assert.equal(await cache.yieldSpace(64 * KiB * 100), true);
  assert.equal(await cache.yieldSpace(64 * KiB), false, 'nothing left to give');
  await cache.close();
});

test('a spool write that finds the disk full asks for room once, then goes on (or fails with ENOSPC)', async () => {
  const written: Buffer[] = [];
  let full = 1;
  const fh = {
    write: async (data: Buffer, off: number, length: number) => {
      if (full-- > 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      written.push(Buffer.from(data.subarray(off, off + length)));
      return { bytesWritten: length };
    },
  } as unknown as import('node:fs/promises').FileHandle;
  const asked: number[] = [];
  const file = new SpoolFile('x', '/nowhere', fh, async (n) => { asked.push(n); return true; });
  await file.write(Buffer.from('hello'), 0);
  assert.deepEqual(Buffer.concat(written).toString(), 'hello');
  assert.equal(asked.length, 1);
  full = 2;
  await assert.rejects(file.write(Buffer.from('again'), 5), /ENOSPC/, 'asked once per write: the second ENOSPC is the caller\'s');
  const stingy = new SpoolFile('y', '/nowhere', fh, async () => false);
  full = 1;
  await assert.rejects(stingy.write(Buffer.from('z'), 0), /ENOSPC/, 'no room made: ENOSPC as before');
});
