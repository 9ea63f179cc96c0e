/**
 * ActiveFile's streaming path (write-handle.ts): a file written append-only from offset 0 keeps
 * its bytes in the S3 upload only — never in the spool — and moves them into the spool
 * ("spill") the moment it stops being append-only. Real Spool (temp dir), StreamingUpload over
 * the in-memory object store, a recording fake publisher.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ActiveFile, EmptyVersionRefused, type StreamTarget } from '../../src/fs/write-handle.js';
import { EmptyFileNotSupported, type Publisher } from '../../src/fs/publisher.js';
import { Spool, SpoolFile } from '../../src/fs/spool.js';
import { errnoName } from '../../src/fs/errors.js';
import { recoverAll } from '../../src/cli/recover-command.js';
import { abortOrphanedUploads, sweepOrphanedUploads } from '../../src/fs/orphans.js';
import type { SynapseApi } from '../../src/synapse/api.js';
import { MemoryBudget, StreamingUpload, type FailedPartStore } from '../../src/s3/multipart-upload.js';
import { MemoryObjectStore } from '../../src/s3/memory-object-store.js';

const MiB = 1024 * 1024;
const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');
const dirs: string[] = [];
after(async () => { for (const d of dirs) await rm(d, { recursive: true, force: true }); });

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 13 + seed) & 0xff;
  return b;
}

async function setup(opts: { registerFails?: boolean; maxParts?: number; budgetBytes?: number } = {}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wh-'));
  dirs.push(dir);
  const spool = new Spool(dir);
  await spool.init();
  const store = new MemoryObjectStore();
  const budget = new MemoryBudget(opts.budgetBytes ?? 64 * MiB);
  const registered: Array<{ size: number; md5: string; key: string }> = [];
  const uploaded: Buffer[] = [];
  const committed: string[] = [];
  let keys = 0;
  const publisher = {
    upload: async (src: { file: string; size: number; md5: string }) => {
      const data = await readFile(src.file);
      assert.equal(data.length, src.size);
      assert.equal(md5(data), src.md5, 'the md5 given is the spool\'s');
      uploaded.push(data);
      return `fh-up-${uploaded.length}`;
    },
    commit: async (_parent: string, _name: string, fileHandleId: string) => {
      committed.push(fileHandleId);
      return { id: 'syn9', versionNumber: committed.length, modifiedOn: new Date().toISOString() };
    },
  } as unknown as Publisher;
  const startStream = async (parentId: string, _name: string, keep: FailedPartStore): Promise<StreamTarget> => {
    const key = `base/${++keys}/f.bin`;
    const upload = new StreamingUpload(store, { bucket: 'b', key }, budget, { partSize: 5 * MiB, partsInFlight: 2, keepFailedParts: keep, ...(opts.maxParts ? { maxParts: opts.maxParts } : {}) });
    return {
      upload, parentId, object: { bucket: 'b', key, storageLocationId: 7 },
      register: async (size, m) => {
        if (opts.registerFails) throw new Error('Synapse said 503');
        registered.push({ size, md5: m, key });
        return 'fh-streamed';
      },
    };
  };
  const makeFile = (name: string): ActiveFile => new ActiveFile({
    spool, publisher, startStream,
    loadBase: async () => { throw new Error('no base in these tests'); },
  }, { parentId: 'syn1', name, entityId: undefined, base: undefined, localOnly: false });
  const file = makeFile('f.bin');
  const spoolBytes = async (): Promise<number> => {
    let n = 0;
    for (const f of await readdir(path.join(dir, 'files'))) n += (await stat(path.join(dir, 'files', f))).size;
    return n;
  };
  return { file, makeFile, store, budget, spool, registered, uploaded, committed, spoolBytes };
}

async function writeSeq(file: ActiveFile, data: Buffer, from = 0, chunk = 128 * 1024): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) await file.write(data.subarray(off, off + chunk), from + off);
}

test('a streamed file never touches the spool; close registers the uploaded object with the right md5', async () => {
  const t = await setup();
  const data = bytes(12 * MiB + 7, 1);
  await writeSeq(t.file, data);
  assert.equal(t.file.size, data.length);
  assert.equal(await t.spoolBytes(), 0, 'no byte went to the spool');
  const v = await t.file.publish();
  assert.ok(v);
  assert.equal(v.spoolFile, undefined);
  assert.deepEqual(t.registered, [{ size: data.length, md5: md5(data), key: 'base/1/f.bin' }]);
  assert.ok(t.store.objects.get('b/base/1/f.bin')!.data.equals(data));
  assert.deepEqual(t.uploaded, [], 'nothing uploaded from the spool');
  assert.equal(t.budget.inUse, 0);
  await t.file.dispose(false);
});

test('a read of a streamed file spills its bytes into the spool (read back from S3), and writing goes on from there', async () => {
  const t = await setup();
  const data = bytes(12 * MiB + 7, 2);
  await writeSeq(t.file, data);
  const got = await t.file.read(MiB + 3, 4096);
  assert.ok(got.equals(data.subarray(MiB + 3, MiB + 3 + 4096)));
  assert.equal(t.store.objects.size, 0, 'the temporary object of the read-back is deleted');
  assert.equal(t.store.uploads.size, 0);
  const more = bytes(MiB, 3);
  await writeSeq(t.file, more, data.length);
  const whole = Buffer.concat([data, more]);
  assert.equal(t.file.size, whole.length);
  await t.file.publish();
  assert.equal(t.registered.length, 0);
  assert.equal(t.uploaded.length, 1);
  assert.ok(t.uploaded[0]!.equals(whole), 'the spool holds every byte');
  await t.file.dispose(false);
});

test('a spill the spool disk cannot hold answers ENOSPC (not EIO), as a full local disk does', async () => {
  const t = await setup();
  await writeSeq(t.file, bytes(12 * MiB + 1, 5));
  const write = SpoolFile.prototype.write;
  SpoolFile.prototype.write = () => Promise.reject(Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' }));
  try {
    await assert.rejects(t.file.write(Buffer.from('XYZ'), 100), (err: unknown) => errnoName(err) === 'ENOSPC');
  } finally {
    SpoolFile.prototype.write = write;
  }
  await t.file.dispose(false);
});

test('a non-sequential write after parts went out spills first; before any part, only memory is spilled', async () => {
  for (const size of [12 * MiB + 1, 3 * MiB]) {
    const t = await setup();
    const data = bytes(size, 4);
    await writeSeq(t.file, data);
    await t.file.write(Buffer.from('XYZ'), 100);
    data.write('XYZ', 100);
    await t.file.publish();
    assert.ok(t.uploaded[0]!.equals(data), `${size}: rewritten bytes in place`);
    assert.equal(t.store.objects.size, 0, `${size}: nothing left on S3`);
    assert.equal(t.store.calls['createMultipartUpload'] ?? 0, size > 5 * MiB ? 1 : 0);
    await t.file.dispose(false);
  }
});

test('truncate of a streamed file: to its size changes nothing, to 0 drops the stream, elsewhere spills', async () => {
  const t = await setup();
  const data = bytes(6 * MiB, 5);
  await writeSeq(t.file, data);
  await t.file.truncate(data.length);
  assert.equal(await t.spoolBytes(), 0, 'same size: still streaming');
  await t.file.truncate(2 * MiB);
  assert.equal(t.file.size, 2 * MiB);
  await t.file.publish();
  assert.ok(t.uploaded[0]!.equals(data.subarray(0, 2 * MiB)));
  await t.file.dispose(false);

  const z = await setup();
  await writeSeq(z.file, bytes(6 * MiB, 6));
  await z.file.truncate(0);
  assert.equal(z.file.size, 0);
  await writeSeq(z.file, Buffer.from('fresh'));
  await z.file.publish();
  assert.equal(z.uploaded[0]!.toString(), 'fresh');
  await z.file.dispose(false);
  assert.equal(z.store.uploads.size, 0, 'the dropped stream was aborted');
});

test('a part S3 refuses is kept in the spool at its offset and sent again at close: published exactly', async () => {
  const t = await setup();
  const data = bytes(12 * MiB + 3, 7);
  await writeSeq(t.file, data.subarray(0, MiB));
  t.store.failNext('uploadPart', 1);
  await writeSeq(t.file, data.subarray(MiB), MiB);
  await t.file.publish();
  assert.equal(await t.spoolBytes(), 5 * MiB, 'only the refused part went to the spool');
  assert.equal(t.registered.length, 1);
  assert.ok(t.store.objects.get('b/base/1/f.bin')!.data.equals(data));
  await t.file.dispose(false);
});

test('parts refused even at close: close() fails, the open upload is journaled, and recover publishes the exact bytes', async () => {
  const t = await setup();
  const data = bytes(12 * MiB + 3, 17);
  t.store.failNext('uploadPart', 1000);
  await writeSeq(t.file, data);
  await assert.rejects(t.file.publish(), /recover/);
  assert.equal(t.registered.length + t.uploaded.length + t.committed.length, 0, 'nothing published');
  assert.ok(t.file.awaitingRecovery);
  await t.file.dispose(true);
  const [entry] = await t.spool.listJournal();
  assert.ok(entry?.s3Upload, 'the journal names the open upload');
  assert.deepEqual(entry.s3Upload.missing.map((m) => m.partNumber), [1, 2, 3]);
  assert.equal(t.store.uploads.size, 1, 'not aborted');
  // A crashed mount's record of that upload: the orphan sweep leaves a journaled upload alone.
  await t.spool.recordUpload({ uploadId: entry.s3Upload.uploadId, bucket: 'b', key: 'base/1/f.bin', storageLocationId: 7, parentId: 'syn1', startedAt: '', pid: 2 ** 22 + 1 });
  assert.equal(await abortOrphanedUploads(t.spool, () => t.store), 0);
  assert.equal(t.store.uploads.size, 1, 'the sweep did not abort it');

  t.store.failNext('uploadPart', 0);
  const registered: string[] = [];
  const publisher = {
    registerExternal: async (bucket: string, key: string, _loc: number, size: number, m: string) => {
      assert.equal(size, data.length);
      assert.equal(m, md5(data));
      registered.push(`${bucket}/${key}`);
      return 'fh-recovered';
    },
    commit: async () => ({ id: 'syn9', versionNumber: 1, modifiedOn: new Date().toISOString() }),
  } as unknown as Publisher;
  const api = { lookupChild: async () => undefined } as unknown as SynapseApi;
  const results = await recoverAll(api, publisher, t.spool, undefined, () => t.store);
  assert.deepEqual(results.map((r) => r.outcome), ['published'], results[0]?.error);
  assert.deepEqual(registered, ['b/base/1/f.bin']);
  assert.ok(t.store.objects.get('b/base/1/f.bin')!.data.equals(data), 'every byte, from S3 parts and the spool');
  assert.deepEqual(await t.spool.listJournal(), []);
  assert.deepEqual(await t.spool.listUploads(), [], 'its record went with it');
});

test('recover that dies between completing the upload and registering it: the next run registers the object, once', async () => {
  const t = await setup();
  const data = bytes(11 * MiB, 19);
  t.store.failNext('uploadPart', 1000);
  await writeSeq(t.file, data);
  await assert.rejects(t.file.publish(), /recover/);
  await t.file.dispose(true);
  t.store.failNext('uploadPart', 0);
  let fail = true;
  const publisher = {
    registerExternal: async () => {
      if (fail) throw new Error('Synapse 503');
      return 'fh-late';
    },
    commit: async () => ({ id: 'syn9', versionNumber: 1, modifiedOn: new Date().toISOString() }),
  } as unknown as Publisher;
  const api = { lookupChild: async () => undefined } as unknown as SynapseApi;
  const first = await recoverAll(api, publisher, t.spool, undefined, () => t.store);
  assert.deepEqual(first.map((r) => r.outcome), ['failed']);
  const [entry] = await t.spool.listJournal();
  assert.ok(entry?.s3Object && !entry.s3Upload, 'the entry now names the completed object');
  fail = false;
  const parts = t.store.calls['uploadPart'];
  const second = await recoverAll(api, publisher, t.spool, undefined, () => t.store);
  assert.deepEqual(second.map((r) => r.outcome), ['published']);
  assert.equal(t.store.calls['uploadPart'], parts, 'no part sent again');
  assert.ok(t.store.objects.get('b/base/1/f.bin')!.data.equals(data));
});

test('a part still failing after truncate(0) never writes its old bytes into the reused spool', async () => {
  const t = await setup();
  let open!: () => void;
  t.store.partGate = new Promise((r) => { open = r; });
  t.store.failNext('uploadPart', 1000);
  await writeSeq(t.file, bytes(6 * MiB, 23)); // part 1 is in flight, held at the gate
  await t.file.truncate(0);
  const fresh = Buffer.from('new content');
  const writing = t.file.write(fresh, 0);
  open(); // part 1 now fails for good, after the stream was dropped
  await writing;
  await t.file.publish();
  assert.equal(t.uploaded[0]!.toString(), 'new content', 'only the new bytes');
  await t.file.dispose(false);
});

test('a file under one part whose PutObject fails is kept whole in the spool and journaled as an ordinary file', async () => {
  const t = await setup();
  const data = bytes(2 * MiB + 1, 29);
  await writeSeq(t.file, data);
  t.store.failNext('putObject', 1);
  await assert.rejects(t.file.publish());
  const [entry] = await t.spool.listJournal();
  assert.ok(entry && !entry.s3Upload && !entry.s3Object);
  assert.ok((await readFile(entry.spoolFile)).equals(data), 'the spool holds the whole file');
  assert.ok((await t.file.read(0, 10)).equals(data.subarray(0, 10)), 'and the file is still readable');
  await t.file.dispose(true);
});

test('a registration that fails journals the complete S3 object, so recover needs no spool bytes', async () => {
  const t = await setup({ registerFails: true });
  const data = bytes(7 * MiB, 8);
  await writeSeq(t.file, data);
  await assert.rejects(t.file.publish(), /503/);
  const [entry] = await t.spool.listJournal();
  assert.ok(entry);
  assert.deepEqual(entry.s3Object, { bucket: 'b', key: 'base/1/f.bin', storageLocationId: 7 });
  assert.equal(entry.size, data.length);
  assert.equal(entry.md5, md5(data));
  assert.ok(t.store.objects.get('b/base/1/f.bin')!.data.equals(data), 'the object stays for recover');
  assert.ok(t.file.awaitingRecovery);
  await t.file.dispose(true);
});

test('a streamed file that outgrows 10,000 parts moves to the spool and is published whole', async () => {
  const t = await setup({ maxParts: 2 });
  const data = bytes(12 * MiB + 5, 21);
  await writeSeq(t.file, data);
  await t.file.publish();
  assert.equal(t.registered.length, 0);
  assert.ok(t.uploaded[0]!.equals(data), 'every byte, via the spool');
  assert.equal(t.store.objects.size, 0, 'the read-back object is gone');
  await t.file.dispose(false);
});

// Writes of 256 KiB meet the 5 MiB part boundary exactly; writes of 300,000 bytes straddle it,
// so the write that fills a part goes on into the next part's buffer within the same call.
for (const chunk of [256 * 1024, 300_000]) test(`files written in turn beyond --max-write-memory never wait on each other: the ones without a part buffer go on in the spool (${chunk}-byte writes)`, async () => {
  // A demultiplexer: one program writing many outputs round-robin. Each streamed file holds a
  // part buffer while it fills; with room for 3, the 4th and later files must not wait for the
  // others' buffers (only this program's next writes would free them), nor must a streamed
  // file that needs a fresh buffer while the others hold theirs.
  const t = await setup({ budgetBytes: 15 * MiB });
  const files = Array.from({ length: 6 }, (_, i) => t.makeFile(`out-${i}.bin`));
  const contents = files.map((_, i) => bytes(11 * MiB + i, 40 + i));
  const deadline = Date.now() + 30_000;
  for (let off = 0; off < 12 * MiB; off += chunk) {
    for (let i = 0; i < files.length; i++) {
      const c = contents[i]!.subarray(off, off + chunk);
      if (c.length === 0) continue;
      const w = files[i]!.write(c, off);
      // A deadlock shows up as a write that never settles: fail fast instead of hanging the suite.
      const n = await Promise.race([w, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`write to out-${i} at ${off} hung`)), Math.max(1, deadline - Date.now())).unref())]);
      assert.equal(n, c.length);
    }
  }
  // Both paths were taken: some files kept streaming (nothing in the spool), the rest went on there.
  const spooled = await t.spoolBytes();
  const total = contents.reduce((a, c) => a + c.length, 0);
  assert.ok(spooled > 0 && spooled < total, `spool holds ${spooled} of ${total} bytes`);
  for (const [i, f] of files.entries()) {
    assert.equal(f.size, contents[i]!.length);
    assert.ok((await f.read(0, contents[i]!.length)).equals(contents[i]!), `out-${i} reads back`);
    await f.publish();
    await f.dispose(false);
  }
  // Every file was published whole, from the spool (each was read above) or as a stream.
  const published = [...t.uploaded.map((b) => md5(b)), ...t.registered.map((r) => r.md5)].sort();
  assert.deepEqual(published, contents.map((c) => md5(c)).sort());
  assert.equal(t.budget.inUse, 0, 'every part buffer is back');
});

test('a file that cannot stream for want of memory at its first write never starts a multipart upload', async () => {
  const t = await setup({ budgetBytes: 10 * MiB });
  const a = t.makeFile('a.bin');
  const b = t.makeFile('b.bin');
  const c = t.makeFile('c.bin');
  const da = bytes(3 * MiB, 1), db = bytes(3 * MiB, 2), dc = bytes(3 * MiB, 3);
  await a.write(da, 0);
  await b.write(db, 0);
  assert.equal(t.budget.inUse, 10 * MiB, 'a and b each hold a part buffer');
  await c.write(dc, 0); // would wait forever on a and b before
  assert.equal(await t.spoolBytes(), dc.length, 'c went on in the spool');
  for (const f of [a, b, c]) await f.publish();
  assert.equal(t.store.uploads.size, 0, 'no multipart upload left open');
  assert.deepEqual(t.uploaded.map((x) => md5(x)), [md5(dc)]);
  assert.deepEqual(t.registered.map((r) => r.md5).sort(), [md5(da), md5(db)].sort());
  for (const f of [a, b, c]) await f.dispose(false);
  assert.equal(t.budget.inUse, 0);
});

test('a file opened after others are streaming goes to the spool at no cost, and never pushes an established stream into a read-back', async () => {
  // Room for three part buffers. a, b and c each send a part, and their parts come back; then d
  // is opened. d must not take the buffer one of them needs next: an established stream that
  // loses its buffer has to read back everything it sent, while d has sent nothing yet.
  const t = await setup({ budgetBytes: 15 * MiB });
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => t.makeFile(`${n}.bin`)) as [ActiveFile, ActiveFile, ActiveFile, ActiveFile];
  const content = new Map([[a, bytes(7 * MiB, 1)], [b, bytes(7 * MiB, 2)], [c, bytes(7 * MiB, 3)], [d, bytes(MiB, 4)]]);
  for (const f of [a, b, c]) await writeSeq(f, content.get(f)!.subarray(0, 5 * MiB));
  await new Promise((r) => setTimeout(r, 20)); // the memory store has answered every part
  await writeSeq(d, content.get(d)!);
  assert.equal(await t.spoolBytes(), MiB, 'd went on in the spool');
  for (const f of [a, b, c]) await writeSeq(f, content.get(f)!.subarray(5 * MiB), 5 * MiB);
  assert.equal(await t.spoolBytes(), MiB, 'a, b and c are still streaming: nothing was read back');
  for (const f of [a, b, c, d]) await f.publish();
  assert.deepEqual(t.registered.map((r) => r.md5).sort(), [a, b, c].map((f) => md5(content.get(f)!)).sort());
  assert.deepEqual(t.uploaded.map((x) => md5(x)), [md5(content.get(d)!)]);
  for (const f of [a, b, c, d]) await f.dispose(false);
  assert.equal(t.budget.inUse, 0);
});

test('the orphan sweep tries again while an abort fails, and its retries leave this process\'s own uploads alone', async () => {
  const t = await setup();
  const rec = (uploadId: string, key: string, pid: number) => ({ uploadId, bucket: 'b', key, storageLocationId: 7, parentId: 'syn1', startedAt: '', pid });
  const orphan = await t.store.createMultipartUpload({ bucket: 'b', key: 'base/o/1.bin' });
  await t.spool.recordUpload(rec(orphan, 'base/o/1.bin', 2 ** 22 + 3)); // above pid_max: never alive
  t.store.failNext('abortMultipartUpload', 1);
  let own = '';
  const slept: number[] = [];
  const aborted = await sweepOrphanedUploads(t.spool, () => t.store, undefined, [5, 7], async (ms) => {
    slept.push(ms);
    // Meanwhile this mount starts an upload of its own.
    own = await t.store.createMultipartUpload({ bucket: 'b', key: 'base/o/2.bin' });
    await t.spool.recordUpload(rec(own, 'base/o/2.bin', process.pid));
  });
  assert.equal(aborted, 1, 'the orphan was aborted on the retry');
  assert.deepEqual(slept, [5], 'no retry once nothing is left to abort');
  assert.deepEqual([...t.store.uploads.keys()], [own], 'only this process\'s upload is still open');
  assert.deepEqual((await t.spool.listUploads()).map((r) => r.uploadId), [own]);
});

test('a published file emptied where 0 bytes are refused: no journal entry, and bytes written next are published without the old ones', async () => {
  // Review of session 15's first version: the refusal reloaded the old version into the spool
  // while fds stayed open, so `ftruncate 0; fsync (refused); write "new"` published "new" plus
  // the old tail.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wh-'));
  dirs.push(dir);
  const spool = new Spool(dir);
  await spool.init();
  const uploaded: Buffer[] = [];
  const publisher = {
    upload: async (src: { file: string; size: number }) => {
      if (src.size === 0) throw new EmptyFileNotSupported('emptied.txt');
      uploaded.push(await readFile(src.file));
      return `fh-${uploaded.length}`;
    },
    commit: async () => ({ id: 'syn5', versionNumber: 2, modifiedOn: new Date().toISOString() }),
  } as unknown as Publisher;
  const old = Buffer.from('old bytes, a long tail\n');
  const file = new ActiveFile({
    spool, publisher, loadBase: async (_id, _v, into) => { await into.write(old, 0); },
  }, { parentId: 'syn1', name: 'emptied.txt', entityId: 'syn5', base: { size: old.length, md5: md5(old), version: 1 }, localOnly: false });
  file.refs = 1;
  await file.truncate(0);
  await assert.rejects(file.publish(), (e: unknown) => e instanceof EmptyVersionRefused && e.errno === 'ENOTSUP');
  assert.equal(file.size, 0, 'still empty for its open fds');
  assert.equal(file.awaitingRecovery, false, 'nothing journaled');
  assert.deepEqual(await readdir(path.join(dir, 'journal')), []);
  await file.write(Buffer.from('new'), 0);
  const v = await file.publish();
  assert.equal(v?.versionNumber, 2);
  assert.deepEqual(uploaded.map((b) => b.toString()), ['new']);
  await file.dispose(false);
});

test('recover: two saves of one file while Synapse was down publish in order, the later last, with no false conflict; a third party\'s version is a conflict', async () => {
  // Review of session 15: both entries were written over version 1, so the second looked like a
  // conflict once the first was published — and the journal's order (random ids) decided which won.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wh-'));
  dirs.push(dir);
  const spool = new Spool(dir);
  await spool.init();
  let version = 1;
  const published: string[] = [];
  const publisher = {
    upload: async (src: { file: string }) => `fh-${(await readFile(src.file)).toString().trim()}`,
    commit: async (_p: string, _n: string, fh: string) => {
      published.push(fh);
      return { id: 'syn5', versionNumber: ++version, modifiedOn: new Date().toISOString() };
    },
  } as unknown as Publisher;
  const api = {
    lookupChild: async () => 'syn5',
    getLatestVersionInfo: async () => ({ id: 'syn5', versionNumber: version, contentMd5: 'none', contentSize: '0', modifiedOn: '' }),
  } as unknown as SynapseApi;
  const save = async (text: string, createdAt: string, baseVersion: number): Promise<void> => {
    const f = await spool.create();
    await f.write(Buffer.from(text), 0);
    await f.close();
    // ids sort the other way round from the saves' times
    await spool.writeJournal({ id: `${3 - Number(text.slice(-1))}-${f.id}`, spoolFile: f.file, parentId: 'syn1', name: 'a.txt', entityId: 'syn5',
      baseVersion, size: text.length, md5: md5(Buffer.from(text)), createdAt, error: 'Synapse was down' });
  };
  await save('save1', '2026-12-03T10:00:00.000Z', 1);
  await save('save2', '2026-12-03T10:05:00.000Z', 1);
  const results = await recoverAll(api, publisher, spool, undefined, () => new MemoryObjectStore());
  assert.deepEqual(results.map((r) => r.outcome), ['published', 'published']);
  assert.deepEqual(published, ['fh-save1', 'fh-save2'], 'the later save is the newest version');
  // Someone else publishes version 4; a save written over version 3 is then a conflict.
  version = 4;
  await save('save3', '2026-12-03T10:10:00.000Z', 3);
  const third = await recoverAll(api, publisher, spool, undefined, () => new MemoryObjectStore());
  assert.deepEqual(third.map((r) => r.outcome), ['conflict']);
  assert.match(third[0]!.error ?? '', /syn5 is at version 4 now, these bytes were written over version 3/);
});

test('recover: an entry journaled by a mount of another Synapse is left alone (its ids name other entities here)', async () => {
  // A local server numbers entities from 1 as any Synapse does: its syn1 is not synapse.org's.
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wh-'));
  dirs.push(dir);
  const local = new Spool(dir, { endpoint: 'http://127.0.0.1:8080' });
  const prod = new Spool(dir, { endpoint: 'https://repo-prod.prod.sagebase.org/repo/v1' });
  await local.init();
  const published: string[] = [];
  const publisher = {
    upload: async (src: { file: string }) => `fh-${(await readFile(src.file)).toString().trim()}`,
    commit: async (_p: string, _n: string, fh: string) => {
      published.push(fh);
      return { id: 'syn7', versionNumber: 1, modifiedOn: new Date().toISOString() };
    },
  } as unknown as Publisher;
  const api = { lookupChild: async () => null, getLatestVersionInfo: async () => undefined } as unknown as SynapseApi;
  const save = async (spool: Spool, text: string, createdAt: string): Promise<void> => {
    const f = await spool.create();
    await f.write(Buffer.from(text), 0);
    await f.close();
    await spool.writeJournal({ id: f.id, spoolFile: f.file, parentId: 'syn1', name: `${text}.txt`, size: text.length, md5: md5(Buffer.from(text)), createdAt, error: 'Synapse was down' });
  };
  await save(local, 'local', '2026-12-05T10:00:00.000Z');
  await save(prod, 'prod', '2026-12-05T10:01:00.000Z');
  const entries = await local.listJournal();
  assert.deepEqual(entries.map((e) => [e.name, e.endpoint]).sort(),
    [['local.txt', 'http://127.0.0.1:8080'], ['prod.txt', 'https://repo-prod.prod.sagebase.org/repo/v1']], 'each entry names its Synapse');

  const atProd = await recoverAll(api, publisher, new Spool(dir, { endpoint: 'https://repo-prod.prod.sagebase.org' }), undefined, () => new MemoryObjectStore());
  assert.deepEqual(atProd.map((r) => [r.entry.name, r.outcome]), [['local.txt', 'elsewhere'], ['prod.txt', 'published']]);
  assert.match(atProd[0]!.error ?? '', /recover --endpoint http:\/\/127\.0\.0\.1:8080/);
  assert.deepEqual(published, ['fh-prod']);
  const atLocal = await recoverAll(api, publisher, new Spool(dir, { endpoint: 'http://127.0.0.1:8080/' }), undefined, () => new MemoryObjectStore());
  assert.deepEqual(atLocal.map((r) => [r.entry.name, r.outcome]), [['local.txt', 'published']]);
  assert.deepEqual(published, ['fh-prod', 'fh-local']);
});

test('recover: an entry whose file was deleted since is a conflict (no upload); --force publishes it as a new file of that name', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wh-'));
  dirs.push(dir);
  const spool = new Spool(dir);
  await spool.init();
  const uploads: string[] = [];
  const commits: Array<string | undefined> = [];
  const publisher = {
    upload: async (src: { file: string }) => { uploads.push(src.file); return 'fh-1'; },
    commit: async (_p: string, _n: string, _fh: string, entityId: string | undefined) => {
      commits.push(entityId);
      return { id: 'syn8', versionNumber: 1, modifiedOn: new Date().toISOString() };
    },
  } as unknown as Publisher;
  const { SynapseError } = await import('../../src/synapse/errors.js');
  let versionReads = 0;
  const api = {
    lookupChild: async () => null,
    getLatestVersionInfo: async (id: string) => { versionReads++; throw new SynapseError(404, `${id} not found`, 'GET', `/entity/${id}/version`); },
    getEntity: async (id: string) => ({ id }), // its folder is still there
  } as unknown as SynapseApi;
  const f = await spool.create();
  await f.write(Buffer.from('kept'), 0);
  await f.close();
  await spool.writeJournal({ id: f.id, spoolFile: f.file, parentId: 'syn1', name: 'gone.txt', entityId: 'syn5', baseVersion: 2,
    size: 4, md5: md5(Buffer.from('kept')), createdAt: '2026-12-03T10:00:00.000Z', error: 'Synapse was down' });
  const first = await recoverAll(api, publisher, spool, undefined, () => new MemoryObjectStore());
  assert.deepEqual(first.map((r) => r.outcome), ['conflict']);
  assert.match(first[0]!.error ?? '', /syn5 was deleted since these bytes were written/);
  assert.deepEqual(uploads, [], 'nothing uploaded for a conflict');
  assert.equal(versionReads, 1, 'one version read serves both checks');
  const forced = await recoverAll(api, publisher, spool, undefined, () => new MemoryObjectStore(), { force: true });
  assert.deepEqual(forced.map((r) => r.outcome), ['published']);
  assert.deepEqual(commits, [undefined], 'a new entity, not an update of the deleted one');
});

test('recover: a file still open when its mount died and written after its entry is a conflict (half a rewrite); --force publishes the bytes as they are, with their own MD5', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'wh-'));
  dirs.push(dir);
  const spool = new Spool(dir);
  await spool.init();
  const uploads: Array<{ size: number; md5: string; data: Buffer }> = [];
  const publisher = {
    upload: async (src: { file: string; size: number; md5: string }) => {
      uploads.push({ size: src.size, md5: src.md5, data: await readFile(src.file) });
      return `fh-${uploads.length}`;
    },
    commit: async () => ({ id: 'syn5', versionNumber: 3, modifiedOn: new Date().toISOString() }),
  } as unknown as Publisher;
  const api = {
    lookupChild: async () => null,
    getLatestVersionInfo: async () => ({ versionNumber: 2, contentMd5: 'other', contentSize: '1' }),
  } as unknown as SynapseApi;
  const deadHolder = { pid: 4_000_000, processStart: 1 };
  const journal = async (name: string, journaledBytes: Buffer, laterWrite: Buffer | undefined, heldOpen: boolean): Promise<void> => {
    const f = await spool.create();
    await f.write(journaledBytes, 0);
    if (laterWrite) await f.write(laterWrite, 0); // the program went on writing in place
    await f.close();
    await spool.writeJournal({ id: f.id, spoolFile: f.file, parentId: 'syn1', name, entityId: 'syn5', baseVersion: 2,
      size: journaledBytes.length, md5: md5(journaledBytes), createdAt: `2026-12-06T10:00:0${uploads.length}.000Z`, error: 'fsync failed',
      ...(heldOpen ? { heldOpen: deadHolder } : {}) });
  };
  const fsynced = Buffer.alloc(4096, 'B');
  await journal('rewritten.bin', fsynced, Buffer.alloc(1024, 'C'), true);
  const first = await recoverAll(api, publisher, spool, undefined, () => new MemoryObjectStore());
  assert.deepEqual(first.map((r) => r.outcome), ['conflict']);
  assert.match(first[0]!.error ?? '', /still open for writing when its mount stopped, and written after it was journaled/);
  assert.equal(uploads.length, 0, 'half a rewrite is never published under the old MD5');
  const forced = await recoverAll(api, publisher, spool, undefined, () => new MemoryObjectStore(), { force: true });
  assert.deepEqual(forced.map((r) => r.outcome), ['published']);
  assert.equal(uploads.length, 1);
  assert.equal(uploads[0]!.md5, md5(uploads[0]!.data), '--force publishes the bytes with their own MD5');
  assert.equal(uploads[0]!.data.subarray(0, 1).toString(), 'C');
  // Unchanged since its entry (the fsync'd bytes): published as journaled.
  await journal('kept.bin', fsynced, undefined, true);
  assert.deepEqual((await recoverAll(api, publisher, spool, undefined, () => new MemoryObjectStore())).map((r) => r.outcome), ['published']);
  assert.equal(uploads[1]!.md5, md5(fsynced));
  // A spool file that no longer holds its entry's bytes, nobody writing it: not published.
  await journal('changed.bin', fsynced, Buffer.alloc(10, 'D'), false);
  const changed = await recoverAll(api, publisher, spool, undefined, () => new MemoryObjectStore());
  assert.deepEqual(changed.map((r) => r.outcome), ['failed']);
  assert.match(changed[0]!.error ?? '', /its spool file holds 4096 bytes \(MD5 [0-9a-f]{32}\), not the 4096/);
  assert.equal(uploads.length, 2);
});

test('a file whose publish failed, then emptied where 0 bytes are refused: its old entry goes (recover could never publish it)', async () => {
  // Review: the re-publish's write-ahead entry (0 bytes) took the failed entry's place and stayed.
  for (const published of [false, true]) {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'wh-'));
    dirs.push(dir);
    const spool = new Spool(dir);
    await spool.init();
    let refuse = true;
    const publisher = {
      upload: async (src: { size: number }) => {
        if (src.size === 0) throw new EmptyFileNotSupported('f.txt');
        if (refuse) throw new Error('Synapse said 503');
        return 'fh-1';
      },
      commit: async () => ({ id: 'syn5', versionNumber: 2, modifiedOn: new Date().toISOString() }),
    } as unknown as Publisher;
    const old = Buffer.from('old\n');
    const file = new ActiveFile({
      spool, publisher, loadBase: async (_id, _v, into) => { await into.write(old, 0); },
    }, { parentId: 'syn1', name: 'f.txt', entityId: published ? 'syn5' : undefined,
      base: published ? { size: old.length, md5: md5(old), version: 1 } : undefined, localOnly: false });
    file.refs = 1;
    await file.write(Buffer.from('bytes Synapse refused\n'), 0);
    await assert.rejects(file.publish());
    assert.equal((await spool.listJournal()).length, 1, 'journaled');
    refuse = false;
    await file.truncate(0);
    if (published) await assert.rejects(file.publish(), (e: unknown) => e instanceof EmptyVersionRefused);
    else assert.equal(await file.publish(), undefined, 'an empty placeholder');
    assert.deepEqual(await readdir(path.join(dir, 'journal')), [], `${published ? 'published' : 'new'} file: no entry left`);
    assert.equal(file.awaitingRecovery, false);
    await file.dispose(false);
  }
});
