/**
 * A folder this mount has just made costs no request to list or to upload into (QA audit: a
 * `cp -r` listed every folder it made, and asked where each one's files go).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withReal, writeNew, readText } from './fs-wiring.js';

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
