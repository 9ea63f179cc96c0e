/**
 * A reader that stays at the end of the version it opened (reads there again, nothing read in
 * between) moves on to a newer version of the same file that the mount has heard of
 * (filesystem.ts followAtEnd): `tail -f` of a log another client appends to. A pass over the
 * file — `cp`, `md5sum`: one read at the end — reads one version, whole.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withReal, writeNew, type Real } from './fs-wiring.js';

async function readAt(r: Real, fd: number, position: number, length = 4096): Promise<string> {
  const buf = Buffer.alloc(length);
  return buf.subarray(0, await r.fs.read(fd, buf, length, position)).toString();
}

/** Another client publishes `text` as the file's next version; the mount hears of it (a listing after the TTL). */
async function publishedElsewhere(r: Real, p: string, text: string): Promise<void> {
  const id = r.api.resolvePath(r.rootId, p)!.id;
  await r.remote.putVersion(id, Buffer.from(text));
  r.fs.table.invalidate(r.rootId); // the listing after --metadata-ttl
  await r.fs.getattr(p);
}

/** `p` written with `text`, opened, read whole and once at its end; the fd. */
async function readToEnd(r: Real, p: string, text: string): Promise<number> {
  await writeNew(r, p, text);
  const fd = await r.fs.open(p, 0);
  assert.equal(await readAt(r, fd, 0), text);
  assert.equal(await readAt(r, fd, text.length), '');
  return fd;
}

test('tail -f: a reader at the end of its version reads what another client appended; one mid-file keeps its version', async () => {
  await withReal(async (r) => {
    await writeNew(r, '/app.log', 'line 1\n');
    const tail = await r.fs.open('/app.log', 0);
    const slow = await r.fs.open('/app.log', 0);
    assert.equal(await readAt(r, tail, 0), 'line 1\n');
    assert.equal(await readAt(r, tail, 7), '', 'at the end');
    assert.equal(await readAt(r, slow, 0, 4), 'line', 'mid-file');
    await publishedElsewhere(r, '/app.log', 'line 1\nline 2\n');
    assert.equal(await readAt(r, tail, 7), 'line 2\n', 'tail -f follows');
    assert.equal(await readAt(r, slow, 4), ' 1\n', 'the reader mid-file reads the version it opened, to its end');
    assert.equal(await readAt(r, slow, 7), '', 'a pass ends at its version\'s end: no bytes of another (review: cp made a file of neither)');
    assert.equal(await readAt(r, slow, 7), 'line 2\n', 'waiting there, it moves on');
    await r.fs.release(tail);
    await r.fs.release(slow);
  });
});

test('a second pass over one fd, a newer version known meanwhile, still ends at its version\'s end', async () => {
  await withReal(async (r) => {
    const fd = await readToEnd(r, '/f.txt', 'AAAAAAAA');
    await publishedElsewhere(r, '/f.txt', 'BBBBBBBBBBBBBBBB');
    assert.equal(await readAt(r, fd, 0), 'AAAAAAAA', 'the version it opened');
    assert.equal(await readAt(r, fd, 8), '', 'not the newer one\'s tail');
    await r.fs.release(fd);
  });
});

test('a reader of a file renamed since its open follows the file under its new name (review)', async () => {
  await withReal(async (r) => {
    const fd = await readToEnd(r, '/a.log', 'one\n');
    await r.fs.rename('/a.log', '/b.log');
    await publishedElsewhere(r, '/b.log', 'one\ntwo\n');
    assert.equal(await readAt(r, fd, 4), 'two\n');
    await r.fs.release(fd);
  });
});
