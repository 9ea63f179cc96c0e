/**
 * Publishes from the spool count their part buffers in --max-write-memory (Publisher.sendParts,
 * MemoryBudget.takeSending): several files published at once stay within the budget (plus one
 * part per publish, which must always be able to go), and a publish still finishes when writers'
 * half-filled parts hold the whole budget. An STS folder of the user's own over an in-memory S3.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Publisher } from '../../src/fs/publisher.js';
import { MemoryBudget } from '../../src/s3/multipart-upload.js';
import { MemoryObjectStore } from '../../src/s3/memory-object-store.js';
import type { SynapseApi } from '../../src/synapse/api.js';
import { CONCRETE } from '../../src/synapse/types.js';

const MiB = 1024 * 1024;
const PART = 5 * MiB;

/** A budget that remembers the most bytes it ever had out. */
class WatchedBudget extends MemoryBudget {
  peak = 0;
  override takeSending(bytes: number): void {
    super.takeSending(bytes);
    this.peak = Math.max(this.peak, this.inUse);
  }
}

function stsPublisher(store: MemoryObjectStore, memory: MemoryBudget): Publisher {
  let handles = 0;
  const api = {
    getUploadDestination: async () => ({
      concreteType: CONCRETE.externalS3UploadDestination, storageLocationId: 9, uploadType: 'S3', bucket: 'lab', baseKey: 'data', stsEnabled: true,
    }),
    getStorageLocation: async () => ({ storageLocationId: 9, createdBy: '1' }),
    createExternalS3FileHandle: async () => ({ id: String(++handles) }),
  } as unknown as SynapseApi;
  return new Publisher(api, () => store, { userId: '1', partSize: PART, useSts: true, memory });
}

async function spoolFiles(count: number, bytes: number): Promise<{ dir: string; files: Array<{ file: string; size: number; md5: string }> }> {
  const dir = await mkdtemp(path.join(tmpdir(), 'publisher-memory-'));
  const files = [];
  for (let i = 0; i < count; i++) {
    const data = Buffer.alloc(bytes, i + 1);
    const file = path.join(dir, `f${i}`);
    await writeFile(file, data);
    files.push({ file, size: bytes, md5: createHash('md5').update(data).digest('hex') });
  }
  return { dir, files };
}

test('four files published at once keep their parts within --max-write-memory (plus one part each)', async () => {
  const store = new MemoryObjectStore();
  const budget = new WatchedBudget(2 * PART);
  const publisher = stsPublisher(store, budget);
  const { dir, files } = await spoolFiles(4, 4 * PART);
  let open!: () => void;
  store.partGate = new Promise((resolve) => { open = resolve; });
  try {
    const done = Promise.all(files.map((f, i) => publisher.upload(f, 'syn2', `f${i}.bin`)));
    // Parts are held at S3 until every publish has started all it would start.
    for (let i = 0; i < 100 && store.maxConcurrentParts < 4; i++) await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 5));
    open();
    await done;
    assert.ok(budget.peak <= 2 * PART + 4 * PART, `at most the budget plus one part per publish (peak ${budget.peak / MiB} MiB)`);
    assert.ok(store.maxConcurrentParts <= 6, `parts in flight ${store.maxConcurrentParts}`);
    assert.equal(budget.inUse, 0, 'every part\'s bytes came back');
    assert.equal(store.objects.size, 4);
    for (const o of store.objects.values()) assert.equal(o.data.length, 4 * PART);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a publish finishes while writers\' half-filled parts hold the whole budget: one part at a time', async () => {
  const store = new MemoryObjectStore();
  const budget = new MemoryBudget(2 * PART);
  assert.equal(await budget.acquire(2 * PART), true, 'a writer fills parts worth the whole budget');
  const publisher = stsPublisher(store, budget);
  const { dir, files } = await spoolFiles(1, 3 * PART);
  try {
    await publisher.upload(files[0]!, 'syn2', 'big.bin');
    assert.equal(store.maxConcurrentParts, 1, 'no room: the parts went one at a time');
    assert.equal(budget.inUse, 2 * PART, 'only the writer\'s bytes are out');
    assert.equal([...store.objects.values()][0]!.data.length, 3 * PART);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('with room in the budget, a publish sends its parts in parallel', async () => {
  const store = new MemoryObjectStore();
  const budget = new MemoryBudget(64 * MiB);
  let open!: () => void;
  store.partGate = new Promise((resolve) => { open = resolve; });
  const publisher = stsPublisher(store, budget);
  const { dir, files } = await spoolFiles(1, 4 * PART);
  try {
    const done = publisher.upload(files[0]!, 'syn2', 'wide.bin');
    for (let i = 0; i < 200 && store.maxConcurrentParts < 4; i++) await new Promise((r) => setTimeout(r, 5));
    open();
    await done;
    assert.equal(store.maxConcurrentParts, 4);
    assert.equal(budget.inUse, 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
