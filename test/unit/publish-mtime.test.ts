/**
 * A file's mtime across its publish (filesystem.ts mtimeOf): what the writer's fstat saw stays
 * the file's time once it is published here — vim compares them — while a version another
 * client publishes shows Synapse's time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withReal } from './fs-wiring.js';

test('the mtime a writer saw is the published file\'s; another client\'s version shows its own', async () => {
  await withReal(async (r) => {
    const fd = await r.fs.create('/w.txt', 0o644);
    await r.fs.write(fd, Buffer.from('line1\n'), 0);
    const whileOpen = (await r.fs.fgetattr('/w.txt', fd)).mtime.getTime();
    await r.fs.flush(fd);
    await r.fs.release(fd);
    const id = r.api.resolvePath(r.rootId, '/w.txt')!.id;
    const modifiedOn = Date.parse((await r.api.getEntity(id)).modifiedOn);
    assert.equal((await r.fs.getattr('/w.txt')).mtime.getTime(), whileOpen, 'unchanged by the publish (QA: it jumped to modifiedOn)');
    // Forgetting the listing changes nothing: the time is kept per (entity, version).
    r.fs.table.invalidate(r.rootId);
    assert.equal((await r.fs.getattr('/w.txt')).mtime.getTime(), whileOpen);
    assert.ok(modifiedOn >= whileOpen);

    const remote = await r.remote.putVersion(id, Buffer.from('from elsewhere\n'));
    r.fs.table.invalidate(r.rootId);
    assert.equal((await r.fs.getattr('/w.txt')).mtime.getTime(), Date.parse(remote.modifiedOn), 'a version published elsewhere shows Synapse\'s time');
  });
});
