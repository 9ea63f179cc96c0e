/**
 * S3RangeSource: an open that asked for a small object whole keeps the body only when the
 * answer is the whole object (size as asked), hands it over once, and reads still pin the
 * version (If-Match) for everything else.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { S3RangeSource } from '../../src/s3/s3-range-source.js';
import { MemoryObjectStore } from '../../src/s3/memory-object-store.js';
import type { ObjectVersion, S3Location } from '../../src/s3/object-store.js';

/** A memory store with readVersion: fills `first` as S3's answer to bytes=0-(n-1) would. */
class StatStore extends MemoryObjectStore {
  versionCalls = 0;
  async readVersion(loc: S3Location, first?: Buffer): Promise<ObjectVersion> {
    this.versionCalls++;
    const { size, etag } = await this.head(loc);
    if (!first || size === 0) return { size, etag };
    if (first.length > size) return this.head(loc); // S3: InvalidRange → HeadObject, no bytes
    (await this.getRange(loc, 0, first.length)).data.copy(first);
    return { size, etag, firstBytes: first.length };
  }
}

const loc = { bucket: 'b', key: 'k' };

test('the whole body is kept when the object is exactly the size asked for, and handed over once', async () => {
  const store = new StatStore();
  const body = Buffer.from('hello small file');
  await store.putObject(loc, body);
  const src = await S3RangeSource.open('fh1', store, loc, body.length);
  assert.deepEqual(src.takeWhole(), body);
  assert.equal(src.takeWhole(), undefined, 'once');
  assert.equal(store.versionCalls, 1);
  assert.deepEqual(await src.read(6, 11), Buffer.from('small'), 'reads still work');
});

test('an object that is not the size Synapse recorded: no body kept (bigger: only a prefix came; smaller: S3 refused the range)', async () => {
  const store = new StatStore();
  await store.putObject(loc, Buffer.from('0123456789'));
  const bigger = await S3RangeSource.open('fh1', store, loc, 4);
  assert.equal(bigger.takeWhole(), undefined);
  assert.equal(bigger.size, 10);
  const smaller = await S3RangeSource.open('fh1', store, loc, 20);
  assert.equal(smaller.takeWhole(), undefined);
  assert.equal(smaller.size, 10);
  assert.deepEqual(await smaller.read(0, 10), Buffer.from('0123456789'));
});
