/**
 * Opens for writing of one path share one file (filesystem.ts openExisting), however they
 * interleave: `cmd >> results.txt` from parallel jobs writes into one set of bytes, as on a local
 * disk, where the kernel puts each append at the end the other left.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readText, withReal, writeNew } from './fs-wiring.js';

const O_WRONLY = 1;
const O_APPEND = 0o2000;

test('two appenders opening at once share the file: both lines are published, nothing is journaled', async () => {
  await withReal(async (r) => {
    await writeNew(r, '/results.txt', 'header\n');
    // Both opens ask Synapse (the permission check) at the same time: the second built a copy
    // of its own while the first was answered (QA: a line lost, NUL bytes where it went).
    const [a, b] = await Promise.all([r.fs.open('/results.txt', O_WRONLY | O_APPEND), r.fs.open('/results.txt', O_WRONLY | O_APPEND)]);
    // The kernel appends at the size it was told, which the first write moved on.
    await r.fs.write(a, Buffer.from('job A\n'), 7);
    assert.equal((await r.fs.fgetattr('', b)).size, 13, 'the second descriptor sees the first one\'s line');
    await r.fs.write(b, Buffer.from('job B\n'), 13);
    await r.fs.flush(a);
    await r.fs.release(a);
    await r.fs.flush(b);
    await r.fs.release(b);
    assert.equal(await readText(r, '/results.txt'), 'header\njob A\njob B\n');
    assert.deepEqual(await r.spool.listJournal(), [], 'no close failed');
  });
});
