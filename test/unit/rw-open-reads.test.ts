/**
 * A file opened read-write and not changed yet is read through the block cache, not copied whole
 * into the spool first (QA: SQLite opens its database read-write; one indexed SELECT copied a
 * 110 MiB database to disk at every connection). The copy waits for the first change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { rm } from 'node:fs/promises';
import { BlockCache } from '../../src/fs/block-cache.js';
import { makeReal, withReal, writeNew, readText } from './fs-wiring.js';

const O_RDWR = 2;

test('reads of a read-write fd before any write come from the published version; the first write copies it, and the publish holds old and new bytes', async () => {
  await withReal(async (r) => {
    const text = Array.from({ length: 20_000 }, (_, i) => `row ${i}\n`).join('');
    await writeNew(r, '/db.sqlite', text);
    const spoolBytes = async (): Promise<number> => {
      const dir = path.join(r.spoolDir, 'files');
      let total = 0;
      for (const f of await readdir(dir).catch(() => [] as string[])) total += (await stat(path.join(dir, f))).size;
      return total;
    };
    const before = await spoolBytes();
    const fd = await r.fs.open('/db.sqlite', O_RDWR);
    const buf = Buffer.alloc(9);
    const at = text.indexOf('row 12345\n');
    assert.equal(await r.fs.read(fd, buf, 9, at), 9);
    assert.equal(buf.toString(), 'row 12345');
    assert.equal(await r.fs.read(fd, buf, 9, text.length), 0, 'the end');
    assert.equal(await spoolBytes(), before, 'nothing copied into the spool by reads');
    await r.fs.write(fd, Buffer.from('ROW'), at);
    assert.ok(await spoolBytes() >= before + text.length, 'the first write copies the version it builds on');
    assert.equal(await r.fs.read(fd, buf, 9, at), 9);
    assert.equal(buf.toString(), 'ROW 12345', 'reads see the change');
    await r.fs.flush(fd);
    await r.fs.release(fd);
    assert.equal(await readText(r, '/db.sqlite').then((t) => t.length), Math.min(4096, text.length));
    const id = r.api.resolvePath(r.rootId, '/db.sqlite')!.id;
    assert.equal(r.api.fileBytes(id).toString(), text.replace('row 12345\n', 'ROW 12345\n'));
  });
});

test('the last close of a read-write fd that only read gives back the readahead its reads staged (a block its pieces grew into), at once', async () => {
  const KiB = 1024;
  const cache = new BlockCache({ maxBytes: 1024 * KiB, blockSize: 64 * KiB, pieceSize: 16 * KiB });
  const r = await makeReal({ cache });
  try {
    const text = Buffer.alloc(256 * KiB, 'x').toString();
    await writeNew(r, '/db.sqlite', text);
    const fd = await r.fs.open('/db.sqlite', O_RDWR);
    const buf = Buffer.alloc(100);
    // A record in block 1 (a piece), then the next bytes twice: a run, whose block is fetched whole.
    assert.equal(await r.fs.read(fd, buf, 100, 70 * KiB), 100);
    assert.equal(await r.fs.read(fd, buf, 100, 70 * KiB + 100), 100);
    assert.equal(await r.fs.read(fd, buf, 100, 70 * KiB + 200), 100);
    for (let i = 0; i < 100 && cache.readaheadInUse() === 0; i++) await new Promise((res) => setImmediate(res));
    assert.ok(cache.readaheadInUse() > 0, 'the block is staged as readahead');
    await r.fs.release(fd);
    assert.equal(cache.readaheadInUse(), 0, 'and leaves the budget with the last close');
  } finally {
    await rm(r.spoolDir, { recursive: true, force: true });
  }
});
