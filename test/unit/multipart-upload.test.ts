import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { MemoryBudget, OutOfOrderWrite, PartsMissing, StreamingUpload, UploadNotStarted, type FailedPartStore } from '../../src/s3/multipart-upload.js';
import { MemoryObjectStore } from '../../src/s3/memory-object-store.js';

const MiB = 1024 * 1024;
const loc = { bucket: 'b', key: 'k' };
const md5b64 = (b: Buffer): string => createHash('md5').update(b).digest('base64');

function bytes(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
}

async function writeAll(up: StreamingUpload, data: Buffer, chunk: number): Promise<void> {
  for (let off = 0; off < data.length; off += chunk) await up.append(data.subarray(off, off + chunk), off);
}

test('a file smaller than a part is one PutObject', async () => {
  const store = new MemoryObjectStore();
  const up = new StreamingUpload(store, loc, new MemoryBudget(64 * MiB), { partSize: 5 * MiB, partsInFlight: 2 });
  const data = bytes(1000, 1);
  await writeAll(up, data, 128);
  await up.complete(md5b64(data));
  assert.deepEqual(store.objects.get('b/k')!.data, data);
  assert.equal(store.calls['createMultipartUpload'], undefined);
});

test('parts are sent while writing; the object is exact; memory stays bounded', async () => {
  const store = new MemoryObjectStore();
  const budget = new MemoryBudget(15 * MiB);
  const up = new StreamingUpload(store, loc, budget, { partSize: 5 * MiB, partsInFlight: 4 });
  const data = bytes(23 * MiB + 17, 2);
  let peak = 0;
  for (let off = 0; off < data.length; off += 128 * 1024) {
    await up.append(data.subarray(off, off + 128 * 1024), off);
    peak = Math.max(peak, budget.inUse);
    if (off === 11 * MiB) assert.ok((store.calls['uploadPart'] ?? 0) >= 1, 'a part went out before the writer finished');
  }
  await up.complete(md5b64(data));
  assert.deepEqual(store.objects.get('b/k')!.data, data);
  assert.ok(peak <= 15 * MiB, `peak ${peak}`);
  assert.equal(budget.inUse, 0, 'all memory released');
});

test('a writer that outruns S3 waits instead of growing memory', async () => {
  const store = new MemoryObjectStore();
  let open!: () => void;
  store.partGate = new Promise((r) => { open = r; });
  const budget = new MemoryBudget(10 * MiB);
  const up = new StreamingUpload(store, loc, budget, { partSize: 5 * MiB, partsInFlight: 4 });
  const data = bytes(30 * MiB, 3);
  let done = false;
  const writing = writeAll(up, data, MiB).then(() => { done = true; });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(done, false, 'the writer is held back');
  assert.ok(budget.inUse <= 10 * MiB);
  open();
  await writing;
  await up.complete(md5b64(data));
  assert.deepEqual(store.objects.get('b/k')!.data, data);
});

test('an out-of-order write is refused by name; abort leaves nothing', async () => {
  const store = new MemoryObjectStore();
  const budget = new MemoryBudget(64 * MiB);
  const up = new StreamingUpload(store, loc, budget, { partSize: 5 * MiB, partsInFlight: 2 });
  await writeAll(up, bytes(6 * MiB, 4), MiB);
  await assert.rejects(up.append(Buffer.from('x'), 0), OutOfOrderWrite);
  await up.abort();
  assert.equal(store.uploads.size, 0, 'multipart upload aborted');
  assert.equal(store.objects.size, 0, 'nothing visible');
  assert.equal(budget.inUse, 0);
});

test('a failed part fails complete() and aborts the upload', async () => {
  const store = new MemoryObjectStore();
  store.failNext('uploadPart', 1);
  const up = new StreamingUpload(store, loc, new MemoryBudget(64 * MiB), { partSize: 5 * MiB, partsInFlight: 2 });
  const data = bytes(11 * MiB, 5);
  await writeAll(up, data, MiB).catch(() => undefined);
  await assert.rejects(up.complete(md5b64(data)));
  assert.equal(store.uploads.size, 0);
  assert.equal(store.objects.size, 0);
});

test('onStarted/onFinished bracket the multipart upload (for the orphan journal)', async () => {
  const store = new MemoryObjectStore();
  const events: string[] = [];
  const up = new StreamingUpload(store, loc, new MemoryBudget(64 * MiB), {
    partSize: 5 * MiB, partsInFlight: 2,
    onStarted: (id) => { events.push(`start ${id.length > 0}`); },
    onFinished: () => { events.push('finish'); },
  });
  const data = bytes(12 * MiB, 6);
  await writeAll(up, data, MiB);
  await up.complete(md5b64(data));
  assert.deepEqual(events, ['start true', 'finish']);
});

test('appended bytes are copied at once (the caller reuses its buffer) into pooled part buffers that all come back', async () => {
  const { BufferPool } = await import('../../src/fs/buffer-pool.js');
  const pool = new BufferPool(5 * MiB, 5 * MiB);
  const store = new MemoryObjectStore();
  const budget = new MemoryBudget(64 * MiB);
  const data = bytes(12 * MiB + 333, 5);
  const scratch = Buffer.alloc(128 * 1024); // one buffer for every write, as libfuse does
  const up = new StreamingUpload(store, loc, budget, { partSize: 5 * MiB, partsInFlight: 2, partBuffers: pool });
  for (let off = 0; off < data.length; off += scratch.length) {
    const n = data.copy(scratch, 0, off, off + scratch.length);
    await up.append(scratch.subarray(0, n), off);
    scratch.fill(0xee); // overwritten as soon as append() returns
  }
  await up.complete(md5b64(data));
  assert.ok(store.objects.get('b/k')!.data.equals(data), 'the object is exactly the bytes written');
  assert.equal(budget.inUse, 0);
  const made = pool.reservedBytes / (5 * MiB);
  assert.ok(made >= 1 && made <= 3, `${made} part buffers for 3 parts`);
  assert.equal(pool.freeCount, made, 'every part buffer went back to the pool');

  // An aborted upload gives its filling buffer back too.
  const aborted = new StreamingUpload(store, { bucket: 'b', key: 'k2' }, budget, { partSize: 5 * MiB, partsInFlight: 2, partBuffers: pool });
  await aborted.append(bytes(1000, 1), 0);
  assert.equal(pool.freeCount, made - 1, 'a reused buffer, not a new one');
  await aborted.abort();
  assert.equal(pool.freeCount, made);
  assert.equal(budget.inUse, 0);
});

test('finalMd5() is the MD5 of every byte appended, without a second pass', async () => {
  const store = new MemoryObjectStore();
  const up = new StreamingUpload(store, loc, new MemoryBudget(64 * MiB), { partSize: 5 * MiB, partsInFlight: 2 });
  const data = bytes(11 * MiB + 5, 9);
  await writeAll(up, data, 128 * 1024);
  assert.equal(await up.finalMd5(), createHash('md5').update(data).digest('hex'));
  await up.complete(md5b64(data));
});

test('spill() before any part was sent hands over the filling buffer and leaves nothing on S3', async () => {
  const store = new MemoryObjectStore();
  const budget = new MemoryBudget(64 * MiB);
  const up = new StreamingUpload(store, loc, budget, { partSize: 5 * MiB, partsInFlight: 2 });
  const data = bytes(3 * MiB + 1, 10);
  await writeAll(up, data, 64 * 1024);
  const got: Array<[number, Buffer]> = [];
  await up.spill(async (b, off) => { got.push([off, Buffer.from(b)]); });
  assert.deepEqual(got.map(([o]) => o), [0]);
  assert.ok(got[0]![1].equals(data));
  assert.equal(store.objects.size, 0);
  assert.equal(store.calls['createMultipartUpload'], undefined);
  assert.equal(budget.inUse, 0);
});

test('CreateMultipartUpload refused: append() throws UploadNotStarted with every byte still in hand, and spill() returns them all', async () => {
  const store = new MemoryObjectStore();
  store.failNext('createMultipartUpload', 1);
  const budget = new MemoryBudget(64 * MiB);
  const up = new StreamingUpload(store, loc, budget, { partSize: 5 * MiB, partsInFlight: 2 });
  const data = bytes(6 * MiB, 12);
  // One append crossing the part boundary: the part fills, the upload cannot start.
  await assert.rejects(up.append(data, 0), UploadNotStarted);
  assert.equal(up.length, 5 * MiB, 'the first part was taken, the rest was not');
  const got: Buffer[] = [];
  await up.spill(async (b, off) => { assert.equal(off, 0); got.push(Buffer.from(b)); });
  assert.ok(Buffer.concat(got).equals(data.subarray(0, 5 * MiB)));
  assert.equal(store.objects.size, 0);
  assert.equal(budget.inUse, 0);
});

test('spill() after parts were sent reads the bytes back in order and deletes the temporary object', async () => {
  const store = new MemoryObjectStore();
  const budget = new MemoryBudget(64 * MiB);
  const up = new StreamingUpload(store, loc, budget, { partSize: 5 * MiB, partsInFlight: 2 });
  const data = bytes(17 * MiB + 3, 11);
  await writeAll(up, data, MiB);
  const out = Buffer.alloc(data.length);
  let next = 0;
  await up.spill(async (b, off) => {
    assert.equal(off, next, 'in order');
    b.copy(out, off);
    next = off + b.length;
  });
  assert.ok(out.equals(data), 'every byte, exactly');
  assert.equal(store.objects.size, 0, 'the read-back object is gone');
  assert.equal(store.uploads.size, 0);
  assert.equal(budget.inUse, 0);
  await assert.rejects(up.append(Buffer.from('x'), data.length), OutOfOrderWrite, 'the upload is over');
});

/** A FailedPartStore over a sparse in-memory file. */
function keptParts(): FailedPartStore & { saved: number[] } {
  const file = Buffer.alloc(64 * MiB);
  const saved: number[] = [];
  return {
    saved,
    save: async (data, offset) => { data.copy(file, offset); saved.push(offset); },
    load: async (offset, length) => Buffer.from(file.subarray(offset, offset + length)),
  };
}

test('a part S3 refuses is kept and sent again at complete(): the object is exact', async () => {
  const store = new MemoryObjectStore();
  const keep = keptParts();
  const up = new StreamingUpload(store, loc, new MemoryBudget(64 * MiB), { partSize: 5 * MiB, partsInFlight: 2, keepFailedParts: keep });
  store.failNext('uploadPart', 1);
  const data = bytes(12 * MiB + 9, 12);
  await writeAll(up, data, MiB);
  await up.complete(md5b64(data));
  assert.deepEqual(keep.saved, [0], 'the first part was kept at its offset');
  assert.ok(store.objects.get('b/k')!.data.equals(data));
});

test('parts still refused at complete() leave the upload open for a journal (PartsMissing); abort() still ends it', async () => {
  const store = new MemoryObjectStore();
  const keep = keptParts();
  const up = new StreamingUpload(store, loc, new MemoryBudget(64 * MiB), { partSize: 5 * MiB, partsInFlight: 2, keepFailedParts: keep });
  const data = bytes(12 * MiB + 9, 13);
  await writeAll(up, data.subarray(0, 6 * MiB), MiB);
  store.failNext('uploadPart', 100);
  for (let off = 6 * MiB; off < data.length; off += MiB) await up.append(data.subarray(off, off + MiB), off);
  const err = await up.complete(md5b64(data)).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof PartsMissing, String(err));
  assert.deepEqual(err.missing.map((m) => m.partNumber), [2, 3]);
  assert.deepEqual(err.parts.map((p) => p.partNumber), [1]);
  assert.equal(store.uploads.size, 1, 'left open');
  // Parts 2 and 3 were each refused while writing; at complete() part 2 is tried once more and,
  // refused again, part 3 is not: close() must not spend the retry budget once per kept part.
  assert.equal(store.calls['uploadPart'], 4);
  await up.abort();
  assert.equal(store.uploads.size, 0);
});

test('MemoryBudget waits only on parts in flight, refuses to wait on buffers being filled, and serves waiters in order', async () => {
  const b = new MemoryBudget(3 * MiB);
  assert.equal(await b.acquire(MiB), true);
  assert.equal(await b.acquire(MiB), true);
  assert.equal(await b.acquire(MiB), true);
  // All three are being filled: only their writers can free them, so no waiting.
  assert.equal(await b.acquire(MiB), false);
  // Two go to S3: they come back on their own, so two waiters are admitted, a third is not.
  b.markSending(MiB);
  b.markSending(MiB);
  const order: string[] = [];
  const w1 = b.acquire(MiB).then((ok) => { order.push('w1'); return ok; });
  const w2 = b.acquire(MiB).then((ok) => { order.push('w2'); return ok; });
  assert.equal(await b.acquire(MiB), false, 'a third waiter would rest on the buffer still filling');
  b.release(MiB, true);
  assert.equal(await w1, true);
  // Free room appears (the filling buffer is dropped), but w2 is first in line: no queue jumping.
  b.release(MiB);
  assert.equal(await w2, true);
  assert.deepEqual(order, ['w1', 'w2']);
  assert.equal(b.inUse, 3 * MiB);
  b.release(MiB, true);
  b.release(MiB);
  b.release(MiB);
  assert.equal(b.inUse, 0);
  // A single request larger than the whole budget still goes through alone.
  assert.equal(await b.acquire(5 * MiB), true);
  b.release(5 * MiB);
});
