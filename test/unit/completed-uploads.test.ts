/**
 * Objects S3 completed but nothing refers to yet (src/fs/orphans.ts): an upload's record is
 * marked `completed` once S3 completes it and removed only when the object has a file handle or
 * a journal entry names it, so a mount killed in between leaves a record, and the next mount's
 * sweep deletes that object instead of leaving it billed and unnamed (session 17's finding).
 * Sweep rules over hand-made records; the write-ahead order through the real wiring
 * (fs-wiring.ts: filesystem, Publisher, Spool over the in-memory Synapse and S3).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile as writeFileOnDisk } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { currentBootId, Spool, type JournalEntry, type UploadRecord } from '../../src/fs/spool.js';
import { abortOrphanedUploads } from '../../src/fs/orphans.js';
import { MemoryObjectStore } from '../../src/s3/memory-object-store.js';
import { SINGLE_PUT_PREFIX } from '../../src/s3/multipart-upload.js';
import { withReal, type Real } from './fs-wiring.js';
import { StsCredentialCache } from '../../src/synapse/sts.js';
import { FileSources } from '../../src/fs/file-sources.js';
import { Publisher } from '../../src/fs/publisher.js';
import { recoverAll } from '../../src/cli/recover-command.js';
import { MemoryBudget, StreamingUpload } from '../../src/s3/multipart-upload.js';

const MiB = 1024 * 1024;
/** Above pid_max: never a live process. */
const DEAD_PID = 2 ** 22 + 5;

/** A spool in a temp dir of its own, removed after `fn`. */
async function withSpool(fn: (spool: Spool, dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'completed-'));
  try {
    const spool = new Spool(dir);
    await spool.init();
    await fn(spool, dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function pattern(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

test('the sweep deletes the objects of completing and PutObject records of a dead mount, aborts open uploads, and never deletes what may be a published file\'s', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'completed-'));
  try {
    const spool = new Spool(dir);
    await spool.init();
    const store = new MemoryObjectStore();
    const rec = (uploadId: string, key: string, extra: Partial<UploadRecord> = {}): UploadRecord => ({
      uploadId, bucket: 'b', key, storageLocationId: 7, parentId: 'syn1', startedAt: '', pid: DEAD_PID, ...extra,
    });
    const completeOne = async (key: string): Promise<string> => {
      const loc = { bucket: 'b', key };
      const id = await store.createMultipartUpload(loc);
      const etag = await store.uploadPart(loc, id, 1, pattern(1000, key.length));
      await store.completeMultipartUpload(loc, id, [{ partNumber: 1, etag }]);
      return id;
    };
    // Killed after asking S3 to complete, before the file handle: an object nothing names.
    await spool.recordUpload(rec(await completeOne('k/completing'), 'k/completing', { completing: true }));
    // Unmarked and gone from S3: older releases left such records after publishing — the
    // object may be a published file's, so only the record goes (review).
    await spool.recordUpload(rec(await completeOne('k/unmarked'), 'k/unmarked'));
    // Completing, but written before the host last booted: a power cut may have brought back
    // a record whose removal never reached the disk. The object stays.
    await spool.recordUpload(rec(await completeOne('k/other-boot'), 'k/other-boot', { completing: true }));
    for (const n of await readdir(path.join(dir, 'uploads'))) {
      const file = path.join(dir, 'uploads', n);
      const r = JSON.parse(await readFile(file, 'utf8')) as UploadRecord;
      if (r.key === 'k/other-boot') await writeFileOnDisk(file, JSON.stringify({ ...r, bootId: 'an-earlier-boot' }));
    }
    // Still open: aborted, as before.
    const open = await store.createMultipartUpload({ bucket: 'b', key: 'k/open' });
    await store.uploadPart({ bucket: 'b', key: 'k/open' }, open, 1, pattern(10, 1));
    await spool.recordUpload(rec(open, 'k/open', { completing: true }));
    // Aborted elsewhere (a bucket lifecycle rule): no upload, no object; the record just goes.
    await spool.recordUpload(rec('gone-upload', 'k/gone', { completing: true }));
    // Completed by `recover`, journaled as an object, killed before it removed the record: the
    // journal's object is the file's only copy and must stay.
    const journaledId = await completeOne('k/journaled');
    await spool.recordUpload(rec(journaledId, 'k/journaled', { completing: true }));
    await spool.writeJournal({
      id: 'j1', spoolFile: path.join(dir, 'files', 'none'), parentId: 'syn1', name: 'f.bin', size: 1000, md5: 'x'.repeat(32),
      inSpool: false, createdAt: new Date().toISOString(), error: 'Synapse said 503',
      s3Object: { bucket: 'b', key: 'k/journaled', storageLocationId: 7 },
    });
    // A single PutObject (a file under one part): stored before the kill, or not.
    await store.putObject({ bucket: 'b', key: 'k/put' }, pattern(100, 3));
    await spool.recordUpload(rec(`${SINGLE_PUT_PREFIX}1`, 'k/put'));
    await spool.recordUpload(rec(`${SINGLE_PUT_PREFIX}2`, 'k/put-never-stored'));
    // This very process's upload (the sweep at start runs beside the mount's first writes).
    const mine = await store.createMultipartUpload({ bucket: 'b', key: 'k/mine' });
    await spool.recordUpload(rec(mine, 'k/mine', { pid: process.pid, startedAt: new Date().toISOString() }));
    const abortsBefore = store.calls['abortMultipartUpload'] ?? 0;

    const handled = await abortOrphanedUploads(spool, () => store);
    assert.equal(handled, 3, 'two objects deleted (completing, put), one upload aborted');
    assert.equal((store.calls['abortMultipartUpload'] ?? 0) - abortsBefore, 5, 'no abort for a PutObject record, nor for this process\'s upload');
    assert.deepEqual([...store.objects.keys()].sort(), ['b/k/journaled', 'b/k/other-boot', 'b/k/unmarked'], 'what may be a file\'s bytes stays');
    assert.deepEqual([...store.uploads.keys()], [mine]);
    assert.deepEqual((await spool.listUploads()).map((r) => r.key).sort(), ['k/journaled', 'k/mine'], 'the journaled object\'s record stays until recover publishes it');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

/** Run `during` inside the mount's next createExternalS3FileHandle (a kill there leaves what it sees). */
function atRegistration(r: Real, during: () => Promise<void>): void {
  const original = r.faults.createExternalS3FileHandle.bind(r.faults);
  r.faults.createExternalS3FileHandle = async (req) => {
    await during();
    return original(req);
  };
}

async function writeFile(r: Real, p: string, data: Buffer, chunk = 256 * 1024, order: 'seq' | 'reverse' = 'seq'): Promise<void> {
  const fd = await r.fs.create(p, 0o644);
  try {
    const offsets: number[] = [];
    for (let off = 0; off < data.length; off += chunk) offsets.push(off);
    if (order === 'reverse') offsets.reverse();
    for (const off of offsets) await r.fs.write(fd, data.subarray(off, off + chunk), off);
    await r.fs.flush(fd);
  } finally {
    await r.fs.release(fd);
  }
}

for (const [order, size] of [['seq', 12 * MiB + 5], ['reverse', 12 * MiB + 5], ['seq', 100_000], ['reverse', 100_000]] as const) {
  const how = `${order === 'seq' ? 'a streamed file' : 'a spooled file (written backwards)'} of ${size > MiB ? 'several parts' : 'one PutObject'}`;
  test(`${how}: while its object is registered, a record names it; once registered, none`, async () => {
    await withReal(async (r) => {
      const data = pattern(size, order.length);
      const seen: UploadRecord[][] = [];
      atRegistration(r, async () => { seen.push(await r.spool.listUploads()); });
      await writeFile(r, '/big.bin', data, 256 * 1024, order);
      assert.equal(seen.length, 1, 'one registration');
      const [record] = seen[0]!;
      assert.equal(seen[0]!.length, 1);
      if (size > MiB) assert.equal(record!.completing, true, 'marked completing before the completion was asked for');
      else assert.ok(record!.uploadId.startsWith(SINGLE_PUT_PREFIX), 'a PutObject record (the sweep HEADs its key)');
      assert.equal(record!.bootId, currentBootId());
      assert.ok(r.store.objects.has(`${record!.bucket}/${record!.key}`), 'the record names the complete object');
      assert.deepEqual(await r.spool.listUploads(), [], 'no record once the object has a file handle');
      assert.equal(r.store.objects.get(`${record!.bucket}/${record!.key}`)!.data.equals(data), true, 'the published object is intact');
    });
  });
}

test('a streamed file whose registration fails: the journal names the object and no record is left for a sweep to delete it', async () => {
  await withReal(async (r) => {
    const data = pattern(12 * MiB + 5, 9);
    r.faults.failNext('createExternalS3FileHandle', 1, 503);
    await assert.rejects(writeFile(r, '/s.bin', data), /recover|503/);
    const [entry] = await r.spool.listJournal();
    assert.ok(entry?.s3Object, 'journaled as an S3 object');
    assert.deepEqual(await r.spool.listUploads(), []);
    assert.ok(r.store.objects.get(`${entry.s3Object.bucket}/${entry.s3Object.key}`)!.data.equals(data));
  });
});

test('a streamed file whose registration fails at an fsync: its bytes come back into the spool, later writes and the close go on, and the whole file is published', async () => {
  // QA helper-84 F2: the file stayed broken — every later write and the close failed EIO.
  await withReal(async (r) => {
    const head = pattern(12 * MiB + 5, 31);
    const tail = pattern(3 * MiB, 32);
    const before = new Set(r.store.objects.keys());
    const fd = await r.fs.create('/log.bin', 0o644);
    for (let off = 0; off < head.length; off += 256 * 1024) await r.fs.write(fd, head.subarray(off, off + 256 * 1024), off);
    r.faults.failNext('createExternalS3FileHandle', 1, 503);
    await assert.rejects(r.fs.fsync(fd), /503/);
    const [entry] = await r.spool.listJournal();
    assert.ok(entry && entry.inSpool && !entry.s3Object, 'journaled by its spool file, which holds every byte');
    assert.deepEqual([...r.store.objects.keys()].filter((k) => !before.has(k)), [], 'the failed object is deleted: the spool has the bytes');
    assert.deepEqual(await r.spool.listUploads(), []);
    await r.fs.write(fd, tail, head.length);
    await r.fs.flush(fd);
    await r.fs.release(fd);
    const id = await r.api.lookupChild(r.rootId, 'log.bin');
    assert.ok(id, 'published at the close');
    assert.ok(r.api.fileBytes(id).equals(Buffer.concat([head, tail])), 'every byte, those before the fsync and after');
    assert.deepEqual(await r.spool.listJournal(), [], 'the entry went with the publish');
  });
});

for (const [kind, order] of [['streamed', 'seq'], ['spooled', 'reverse']] as const) test(`a ${kind} file registered but not yet in Synapse is named by a write-ahead entry before its upload record goes: a crash then leaves it for recover`, async () => {
  // QA: kill -9 while small files in an STS folder were being closed left objects with a file
  // handle, no entity, no record and no journal entry: billed forever, and recover saw nothing.
  await withReal(async (r) => {
    const data = pattern(100_000, 3);
    r.faults.fail('createEntity', { delayMs: 300, status: 503 });
    const closing = writeFile(r, '/k.bin', data, 16 * 1024, order).catch((err: unknown) => err);
    let snapshot: JournalEntry | undefined;
    for (let i = 0; i < 100 && !snapshot; i++) {
      await new Promise((res) => setTimeout(res, 5));
      for (const n of await readdir(r.spool.journalDir).catch(() => [] as string[])) {
        if (!n.endsWith('.json')) continue;
        const e = JSON.parse(await readFile(path.join(r.spool.journalDir, n), 'utf8')) as JournalEntry;
        if (e.fileHandleId && e.publishing) snapshot = e;
      }
    }
    assert.ok(snapshot?.s3Object && snapshot.fileHandleId, 'a write-ahead entry names the object and its file handle');
    assert.deepEqual(await r.spool.listUploads(), [], 'its upload record is gone: the entry alone names the object');
    await closing;
    // The mount dies at that moment: its entry, of a process that is gone, is recover's.
    await r.spool.removeJournal(snapshot.id);
    r.faults.clear();
    await r.spool.writeJournal({ ...snapshot, publishing: { pid: 999_999_999, processStart: 1 } });
    const sts = new StsCredentialCache({ fetch: (id, permission) => r.api.getStsCredentials(id, permission) });
    const sources = new FileSources(r.api, sts, () => r.store, { useSts: true, requestTimeoutMs: 5_000 });
    const publisher = new Publisher(r.api, (loc, id) => sources.storeFor(loc, id, 'read_write'), { userId: r.api.user.id, partSize: 5 * MiB, useSts: true, uploads: r.spool });
    const results = await recoverAll(r.api, publisher, r.spool, undefined, () => r.store);
    assert.ok(results.some((x) => x.outcome === 'published' || x.outcome === 'already-published'), JSON.stringify(results.map((x) => [x.outcome, x.error])));
    const id = await r.api.lookupChild(r.rootId, 'k.bin');
    assert.ok(id);
    assert.ok(r.api.fileBytes(id).equals(data), 'recovered from the registered object');
  });
});

for (const size of [12 * MiB + 5, 100_000]) test(`a spooled file (${size > MiB ? 'multipart' : 'one PutObject'}) whose registration fails: its just-uploaded object is deleted at once (the retry uploads again), nothing recorded`, async () => {
  await withReal(async (r) => {
    const before = new Set(r.store.objects.keys());
    r.faults.failNext('createExternalS3FileHandle', 1, 503);
    await assert.rejects(writeFile(r, '/p.bin', pattern(size, 4), 16 * 1024, 'reverse'));
    assert.deepEqual([...r.store.objects.keys()].filter((k) => !before.has(k)), [], 'no unreferenced object in S3');
    assert.deepEqual(await r.spool.listUploads(), []);
    assert.equal((await r.spool.listJournal()).length, 1, 'the bytes wait in the spool for recover');
  });
});

test('a streamed file whose upload record cannot be removed is not published (a later sweep would delete its bytes); recover removes the record, then publishes', async () => {
  await withReal(async (r) => {
    const data = pattern(12 * MiB + 5, 21);
    const removeUpload = r.spool.removeUpload.bind(r.spool);
    let failures = 0;
    r.spool.removeUpload = async (id) => {
      if (failures++ === 0) throw Object.assign(new Error('EIO: i/o error, unlink'), { code: 'EIO' });
      return removeUpload(id);
    };
    await assert.rejects(writeFile(r, '/kept.bin', data), /EIO|i\/o error/);
    r.spool.removeUpload = removeUpload;
    assert.equal(await r.api.lookupChild(r.rootId, 'kept.bin'), null, 'no entity refers to the object');
    const [entry] = await r.spool.listJournal();
    assert.ok(entry?.fileHandleId && entry.s3Object, 'journaled with its file handle and object');
    const [record] = await r.spool.listUploads();
    assert.equal(record?.key, entry.s3Object.key, 'the record is still there');
    assert.equal(await abortOrphanedUploads(r.spool, () => r.store), 0, 'the journal keeps sweeps away');

    const sts = new StsCredentialCache({ fetch: (id, permission) => r.api.getStsCredentials(id, permission) });
    const sources = new FileSources(r.api, sts, () => r.store, { useSts: true, requestTimeoutMs: 5_000 });
    const publisher = new Publisher(r.api, (loc, id) => sources.storeFor(loc, id, 'read_write'), { userId: r.api.user.id, partSize: 5 * MiB, useSts: true, uploads: r.spool });
    const [result] = await recoverAll(r.api, publisher, r.spool, undefined, () => r.store);
    assert.equal(result?.outcome, 'published', result?.error);
    assert.deepEqual(await r.spool.listUploads(), [], 'the record went before the file was published');
    assert.ok(r.store.objects.get(`${entry.s3Object.bucket}/${entry.s3Object.key}`)!.data.equals(data), 'the published bytes are there');
  });
});

test('spill: a read-back whose upload record cannot be removed still spills (the record is only the sweep\'s)', async () => {
  const store = new MemoryObjectStore();
  const finished: string[] = [];
  const upload = new StreamingUpload(store, { bucket: 'b', key: 'k/spill' }, new MemoryBudget(64 * MiB), {
    partSize: 5 * MiB, partsInFlight: 2,
    onCompleting: () => undefined,
    onFinished: (id) => { finished.push(id); throw new Error('EIO: unlink'); },
  });
  const data = pattern(11 * MiB, 5);
  for (let off = 0; off < data.length; off += MiB) await upload.append(data.subarray(off, off + MiB), off);
  const got: Buffer[] = [];
  await upload.spill(async (chunk, offset) => { got[offset / (8 * MiB)] = Buffer.from(chunk); });
  assert.ok(Buffer.concat(got).equals(data), 'every byte handed over');
  assert.equal(finished.length, 1, 'the record removal was tried');
  assert.equal(store.objects.size, 0, 'the read-back object is deleted');
});

test('abort: an upload S3 did complete (its answer lost) has its object deleted; one whose abort failed keeps its record', async () => {
  const store = new MemoryObjectStore();
  const events: string[] = [];
  const make = (key: string): StreamingUpload => new StreamingUpload(store, { bucket: 'b', key }, new MemoryBudget(64 * MiB), {
    partSize: 5 * MiB, partsInFlight: 2,
    onStarted: () => { events.push(`start ${key}`); },
    onCompleting: () => { events.push(`completing ${key}`); },
    onFinished: () => { events.push(`finish ${key}`); },
  });
  const data = pattern(6 * MiB, 8);

  // The completion reaches S3, the answer does not (a timeout after retries).
  const lost = make('k/lost');
  await lost.append(data, 0);
  const complete = store.completeMultipartUpload.bind(store);
  store.completeMultipartUpload = async (loc, id, parts) => {
    await complete(loc, id, parts);
    throw Object.assign(new Error('socket hang up'), { code: 'RequestTimeout' });
  };
  await assert.rejects(lost.complete(''), /socket hang up/);
  store.completeMultipartUpload = complete;
  assert.equal(store.objects.has('b/k/lost'), false, 'the object nothing will name is deleted');
  assert.deepEqual(events, ['start k/lost', 'completing k/lost', 'finish k/lost']);

  // The abort itself fails: S3 keeps the parts, so the record must stay for the sweep.
  events.length = 0;
  const stuck = make('k/stuck');
  await stuck.append(data, 0);
  store.failNext('abortMultipartUpload', 5);
  await stuck.abort();
  assert.deepEqual(events, ['start k/stuck'], 'no finish: the record stays');
  assert.equal(store.uploads.size, 1);
});

test('no upload is an orphan while a journal entry cannot be read (it may name the object)', async () => {
  // Review: the upload sweep read only the readable entries, where the spool-file sweep stops.
  await withSpool(async (spool, dir) => {
    const store = new MemoryObjectStore();
    const loc = { bucket: 'b', key: 'k/named-by-a-torn-entry' };
    await store.putObject(loc, pattern(100, 9));
    await spool.recordUpload({ uploadId: `${SINGLE_PUT_PREFIX}9`, ...loc, storageLocationId: 7, parentId: 'syn1', startedAt: '', pid: DEAD_PID, completing: true });
    await writeFileOnDisk(path.join(dir, 'journal', 'torn.json'), '{"id": "torn", "s3Obj');
    assert.equal(await abortOrphanedUploads(spool, () => store), 0);
    assert.ok(store.objects.has('b/k/named-by-a-torn-entry'), 'the object stays');
    await rm(path.join(dir, 'journal', 'torn.json'));
    assert.equal(await abortOrphanedUploads(spool, () => store), 1, 'swept once every entry reads');
  });
});
