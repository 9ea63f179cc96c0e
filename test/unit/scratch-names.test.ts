/**
 * Editors' and tools' scratch names (src/fs/names.ts) through the filesystem layer: what reaches
 * Synapse and what stays in the mount when `mv -b`, `rsync -b`, vim and rsync's temp files use
 * them. A metadata TTL of a minute, as a real mount.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { errnoName } from '../../src/fs/errors.js';
import { readText, withReal, writeNew, type Real } from './fs-wiring.js';

const O_WRONLY = 1;

const names = async (r: Real): Promise<string[]> => [...(await r.fs.readdir('/'))].sort();

test('mv -b onto a file: the backup keeps the old bytes, the file becomes a new version of itself', async () => {
  await withReal(async (r) => {
    await writeNew(r, '/f.txt', 'old');
    await writeNew(r, '/g.txt', 'new');
    const f = r.api.resolvePath(r.rootId, '/f.txt')!.id;
    const g = r.api.resolvePath(r.rootId, '/g.txt')!.id;
    // What `mv -b g.txt f.txt` does: f.txt → f.txt~, then g.txt → f.txt (QA: EEXIST, Synapse
    // still held the hidden f.txt under its name).
    await r.fs.rename('/f.txt', '/f.txt~');
    await r.fs.rename('/g.txt', '/f.txt');
    assert.deepEqual(await names(r), ['f.txt', 'f.txt~']);
    assert.equal(await readText(r, '/f.txt'), 'new');
    assert.equal(await readText(r, '/f.txt~'), 'old', 'the backup still shows the version it was renamed from');
    assert.equal(r.api.resolvePath(r.rootId, '/f.txt')?.id, f, 'same entity: its history and annotations survive');
    assert.equal(r.api.fileBytes(f).toString(), 'new');
    assert.equal(r.api.versions(f).length, 2);
    assert.equal(r.api.resolvePath(r.rootId, '/g.txt'), undefined, 'the source entity went');
    assert.notEqual(g, f);
    // The backup given a real name again publishes the bytes it shows, not the newest version.
    await r.fs.rename('/f.txt~', '/restored.txt');
    const restored = r.api.resolvePath(r.rootId, '/restored.txt');
    assert.ok(restored);
    assert.equal(r.api.fileBytes(restored.id).toString(), 'old');
    assert.equal(r.api.fileBytes(f).toString(), 'new', 'the file itself is untouched');
  });
});

test('mv -b of a file open for writing onto a hidden name: published as the hidden file\'s next version', async () => {
  await withReal(async (r) => {
    await writeNew(r, '/f.txt', 'old');
    const f = r.api.resolvePath(r.rootId, '/f.txt')!.id;
    await r.fs.rename('/f.txt', '/f.txt~');
    const fd = await r.fs.create('/tmp.txt', 0o644);
    await r.fs.write(fd, Buffer.from('written'), 0);
    await r.fs.rename('/tmp.txt', '/f.txt');
    await r.fs.flush(fd);
    await r.fs.release(fd);
    assert.equal(r.api.resolvePath(r.rootId, '/f.txt')?.id, f);
    assert.equal(r.api.fileBytes(f).toString(), 'written');
    assert.equal(await readText(r, '/f.txt~'), 'old');
    assert.equal(r.api.resolvePath(r.rootId, '/tmp.txt'), undefined);
  });
});

test('a file named 4913 with bytes is published; vim\'s empty 4913 probe never reaches Synapse', async () => {
  await withReal(async (r) => {
    // vim's probe: created, closed empty, removed at once.
    await writeNew(r, '/4913', '');
    await r.fs.unlink('/4913');
    assert.equal(r.api.resolvePath(r.rootId, '/4913'), undefined);
    // A data file of that name (QA: cp -r exited 0 and it never reached Synapse).
    await writeNew(r, '/4913', 'sample 4913 results');
    const id = r.api.resolvePath(r.rootId, '/4913')?.id;
    assert.ok(id, 'published');
    assert.equal(r.api.fileBytes(id).toString(), 'sample 4913 results');
    // And one already in Synapse is an ordinary file: writable (QA: EACCES, "read-only view").
    const fd = await r.fs.open('/4913', O_WRONLY);
    await r.fs.write(fd, Buffer.from('SAMPLE'), 0);
    await r.fs.flush(fd);
    await r.fs.release(fd);
    assert.equal(r.api.fileBytes(id).toString(), 'SAMPLE 4913 results');
    await r.fs.unlink('/4913');
    assert.equal(r.api.resolvePath(r.rootId, '/4913'), undefined, 'rm deletes it in Synapse');
    // Given bytes by truncate(2) after its last close: published then (review: only at unmount).
    await writeNew(r, '/5036', '');
    await r.fs.truncate('/5036', 5);
    const truncated = r.api.resolvePath(r.rootId, '/5036');
    assert.ok(truncated, 'published');
    assert.equal(r.api.fileBytes(truncated.id).length, 5);
  });
});

test('rsync\'s temp file for a scratch name stays local, and so does the file it becomes', async () => {
  await withReal(async (r) => {
    // rsync writes `.notes~.XXXXXX`, then renames it (QA: EINVAL, "~" is not a Synapse character).
    await writeNew(r, '/.notes~.a1B2c3', 'backup bytes');
    await r.fs.rename('/.notes~.a1B2c3', '/notes~');
    assert.deepEqual(await names(r), ['notes~']);
    assert.equal(await readText(r, '/notes~'), 'backup bytes');
    assert.deepEqual(Object.keys(r.api.tree(r.rootId)), [], 'nothing reached Synapse');
    // Not every dotted name is a temp file of a scratch name.
    await assert.rejects(r.fs.create('/.notes:x.a1B2c3', 0o644), (e: unknown) => errnoName(e) === 'EINVAL');
  });
});

test('restoring a backup (mv f~ f) publishes its bytes as the file\'s next version; a second mv -b backs up the newer one', async () => {
  await withReal(async (r) => {
    await writeNew(r, '/f.txt', 'v1');
    const f = r.api.resolvePath(r.rootId, '/f.txt')!.id;
    await writeNew(r, '/g.txt', 'v2');
    await r.fs.rename('/f.txt', '/f.txt~');
    await r.fs.rename('/g.txt', '/f.txt');
    // A second `mv -b h f`: f → f~ over the older backup (QA: answered 0 and did nothing).
    await writeNew(r, '/h.txt', 'v3');
    await r.fs.rename('/f.txt', '/f.txt~');
    assert.deepEqual(await names(r), ['f.txt~', 'h.txt']);
    assert.equal(await readText(r, '/f.txt~'), 'v2', 'the backup is the version it was renamed from');
    await r.fs.rename('/h.txt', '/f.txt');
    assert.equal(await readText(r, '/f.txt'), 'v3');
    // Restore: the backup's bytes become the newest version (QA: 0, nothing changed).
    await r.fs.rename('/f.txt~', '/f.txt');
    assert.deepEqual(await names(r), ['f.txt']);
    assert.equal(await readText(r, '/f.txt'), 'v2');
    assert.equal(r.api.resolvePath(r.rootId, '/f.txt')?.id, f);
    assert.equal(r.api.fileBytes(f).toString(), 'v2');
    assert.deepEqual(Object.keys(r.api.tree(r.rootId)), ['f.txt']);
  });
});

test('a backup view moved onto another hidden name replaces that file (mv a a~; mv b b~; mv a~ b)', async () => {
  await withReal(async (r) => {
    await writeNew(r, '/a.txt', 'A');
    await writeNew(r, '/b.txt', 'B');
    const b = r.api.resolvePath(r.rootId, '/b.txt')!.id;
    await r.fs.rename('/a.txt', '/a.txt~');
    await r.fs.rename('/b.txt', '/b.txt~');
    await r.fs.rename('/a.txt~', '/b.txt'); // review: Synapse 409
    assert.deepEqual(await names(r), ['b.txt', 'b.txt~']);
    assert.equal(await readText(r, '/b.txt'), 'A');
    assert.equal(await readText(r, '/b.txt~'), 'B');
    assert.equal(r.api.resolvePath(r.rootId, '/b.txt')?.id, b);
    assert.equal(r.api.resolvePath(r.rootId, '/a.txt'), undefined);
  });
});

test('a file open for writing cannot be renamed to a scratch name (EBUSY); closed, it can', async () => {
  await withReal(async (r) => {
    await writeNew(r, '/ow.txt', 'a');
    const fd = await r.fs.open('/ow.txt', O_WRONLY);
    await r.fs.write(fd, Buffer.from('b'), 1);
    await assert.rejects(r.fs.rename('/ow.txt', '/ow.txt~'), (e: unknown) => errnoName(e) === 'EBUSY');
    await r.fs.flush(fd);
    await r.fs.release(fd);
    assert.equal(r.api.fileBytes(r.api.resolvePath(r.rootId, '/ow.txt')!.id).toString(), 'ab');
    await r.fs.rename('/ow.txt', '/ow.txt~');
    assert.equal(await readText(r, '/ow.txt~'), 'ab');
  });
});

test('rm of a file removes its backup views too (they showed versions of the entity now in the trash can)', async () => {
  await withReal(async (r) => {
    await writeNew(r, '/f.txt', 'old');
    await writeNew(r, '/g.txt', 'new');
    await r.fs.rename('/f.txt', '/f.txt~');
    await r.fs.rename('/g.txt', '/f.txt');
    await r.fs.unlink('/f.txt');
    assert.deepEqual(await names(r), [], 'review: f.txt~ stayed listed and answered EIO');
    assert.deepEqual(Object.keys(r.api.tree(r.rootId)), []);
  });
});

test('writing a name a backup view hides (vim\'s save, cp -b) versions that file directly — no 409 first', async () => {
  await withReal(async (r) => {
    await writeNew(r, '/f.txt', 'v1');
    const f = r.api.resolvePath(r.rootId, '/f.txt')!.id;
    await r.fs.rename('/f.txt', '/f.txt~');
    const lookups = r.api.calls['lookupChild'] ?? 0;
    const creates = r.api.calls['createEntity'] ?? 0;
    await writeNew(r, '/f.txt', 'v2');
    assert.equal(r.api.calls['createEntity'] ?? 0, creates, 'QA: a create refused with 409, then "created elsewhere meanwhile"');
    assert.equal(r.api.calls['lookupChild'] ?? 0, lookups);
    assert.equal(r.api.fileBytes(f).toString(), 'v2');
    assert.equal(await readText(r, '/f.txt~'), 'v1');
    assert.deepEqual(await names(r), ['f.txt', 'f.txt~']);
  });
});
