/**
 * Requests the mount no longer makes (QA audit of everyday operations against Synapse's 600 a
 * minute): a folder it has just made costs none to list or to upload into (a `cp -r` listed every
 * folder it made, and asked where each one's files go); a file it has just published gets its
 * next version without a GET of the entity first.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mountOver, withReal, writeNew, readText } from './fs-wiring.js';

test('mkdir, then ls and a new file in it: no listing of it, no uploadDestination for it', async () => {
  await withReal(async (r) => {
    await writeNew(r, '/first.txt', 'warms the parent\'s upload destination\n');
    const listedIds: string[] = [];
    const destinationIds: string[] = [];
    const list = r.api.listChildren.bind(r.api);
    const destination = r.api.getUploadDestination.bind(r.api);
    r.api.listChildren = async (id, types) => { listedIds.push(id); return list(id, types); };
    r.api.getUploadDestination = async (id) => { destinationIds.push(id); return destination(id); };
    await r.fs.mkdir('/made');
    const madeId = r.api.resolvePath(r.rootId, '/made')!.id;
    assert.deepEqual(await r.fs.readdir('/made'), [], 'known empty');
    await writeNew(r, '/made/inside.txt', 'inside\n');
    assert.deepEqual(await r.fs.readdir('/made'), ['inside.txt']);
    assert.ok(!listedIds.includes(madeId), 'no listing of a folder the mount just made');
    assert.ok(!destinationIds.includes(madeId), 'its files go where its parent\'s go');
    assert.equal(await readText(r, '/made/inside.txt'), 'inside\n');
    const id = r.api.resolvePath(r.rootId, '/made/inside.txt')!.id;
    assert.equal(r.api.fileBytes(id).toString(), 'inside\n', 'published into the new folder');
  });
});

test('a file this mount just published gets its next version with no GET of the entity first (a stale copy costs a 412 and a GET, as before)', async () => {
  await withReal(async (r) => {
    await writeNew(r, '/log.txt', 'one\n');
    const gets: string[] = [];
    const get = r.api.getEntity.bind(r.api);
    r.api.getEntity = async (id) => { gets.push(id); return get(id); };
    const id = r.api.resolvePath(r.rootId, '/log.txt')!.id;
    const O_WRONLY = 1;
    const O_APPEND = 0o2000;
    const fd = await r.fs.open('/log.txt', O_WRONLY | O_APPEND);
    await r.fs.write(fd, Buffer.from('two\n'), 4);
    await r.fs.flush(fd);
    await r.fs.release(fd);
    assert.equal(r.api.fileBytes(id).toString(), 'one\ntwo\n');
    assert.ok(!gets.includes(id), `no GET /entity/${id} for the update (${gets.join(' ')})`);
    // Changed elsewhere in between (a new etag, not a new version: a rename by another client).
    await r.remote.move(id, 'log.txt', r.rootId);
    const fd2 = await r.fs.open('/log.txt', O_WRONLY | O_APPEND);
    await r.fs.write(fd2, Buffer.from('three\n'), 8);
    await r.fs.flush(fd2);
    await r.fs.release(fd2);
    assert.equal(r.api.fileBytes(id).toString(), 'one\ntwo\nthree\n', 'published all the same');
    assert.ok(gets.includes(id), 'after the 412, asked');
  });
});

test('stat then read of a file not opened before: one bundle2 gives its size and the handle the open needs (no /version); without DOWNLOAD, /version for the folder', async () => {
  await withReal(async (r) => {
    await writeNew(r, '/a.txt', 'alpha\n');
    await writeNew(r, '/b.txt', 'beta\n');
    const calls: string[] = [];
    const bundle = r.api.getBundle.bind(r.api);
    const version = r.api.getLatestVersionInfo.bind(r.api);
    r.api.getBundle = async (id, req, v) => { calls.push(`bundle2 ${id}`); return bundle(id, req, v); };
    r.api.getLatestVersionInfo = async (id) => { calls.push(`version ${id}`); return version(id); };
    // A fresh mount over the same Synapse: nothing of these files known yet.
    const fresh = mountOver(r);
    const a = r.api.resolvePath(r.rootId, '/a.txt')!.id;
    assert.equal((await fresh.getattr('/a.txt')).size, 6);
    const fd = await fresh.open('/a.txt', 0);
    const buf = Buffer.alloc(6);
    assert.equal(await fresh.read(fd, buf, 6, 0), 6);
    await fresh.release(fd);
    assert.equal(buf.toString(), 'alpha\n');
    assert.deepEqual(calls, [`bundle2 ${a}`], 'one request for the stat and the open');
    // Synapse gives the entity but no handle (no DOWNLOAD): the size comes from /version, and the
    // folder's next file goes there first.
    calls.length = 0;
    r.api.getBundle = async (id, req, v) => { calls.push(`bundle2 ${id}`); const out = await bundle(id, req, v); return { ...out, fileHandles: [] }; };
    const refused = mountOver(r);
    const b = r.api.resolvePath(r.rootId, '/b.txt')!.id;
    assert.equal((await refused.getattr('/b.txt')).size, 5);
    assert.equal((await refused.getattr('/a.txt')).size, 6);
    assert.deepEqual(calls, [`bundle2 ${b}`, `version ${b}`, `version ${a}`]);
  });
});
