/**
 * A file removed and made again under its name within a moment (tar x, unzip -o, zip updating
 * an archive) comes back out of the trash can as the same entity, the new bytes its next version
 * (src/fs/removed-names.ts), through the filesystem layer as the kernel drives it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readText, withReal, writeNew, type Real } from './fs-wiring.js';

const O_WRONLY = 1;

/**
 * A folder listed from Synapse (its header names its ACL's benefactor), so what the mount
 * creates in it is known to inherit that ACL. (What it creates at the root of a folder mount has
 * an unknown benefactor until the root is listed again: the mount does not ask for the root's.)
 */
async function listedFolder(r: Real): Promise<{ dir: string; id: string }> {
  const folder = await r.remote.mkdir(r.rootId, 'd');
  await r.fs.readdir('/');
  return { dir: '/d', id: folder.id };
}

/**
 * `/d/<name>` published with `old`, removed, then created again with `text` written and its fd
 * still open: the moment before the new file's close. Returns the removed entity and the fd.
 */
async function remadeOpen(r: Real, d: { id: string }, name: string, old: string, text: string): Promise<{ removed: string; fd: number }> {
  const removed = await publishedIn(r, d, name, old);
  await r.fs.unlink(`/d/${name}`);
  const fd = await r.fs.create(`/d/${name}`, 0o644);
  await r.fs.write(fd, Buffer.from(text), 0);
  return { removed, fd };
}

/** `/d/<name>` written with `text` through the mount: its synID. */
async function publishedIn(r: Real, d: { id: string }, name: string, text: string): Promise<string> {
  await writeNew(r, `/d/${name}`, text);
  return (await r.api.lookupChild(d.id, name))!;
}

/** unlink, then create + write + close under the same name: what `tar x` does to each file. */
async function removeAndMake(r: Real, p: string, text: string): Promise<void> {
  await r.fs.unlink(p);
  const fd = await r.fs.create(p, 0o644);
  if (text) await r.fs.write(fd, Buffer.from(text), 0);
  await r.fs.flush(fd);
  await r.fs.release(fd);
}

test('tar x over a file: unlink then create keeps the synID; the new bytes are its next version', async () => {
  await withReal(async (r) => {
    const d = await listedFolder(r);
    const id = await publishedIn(r, d, 'data.csv', 'a,b\n1,2\n');
    await removeAndMake(r, '/d/data.csv', 'a,b\n3,4\n');
    assert.equal(await r.api.lookupChild(d.id, 'data.csv'), id, 'the same entity');
    assert.equal(r.api.versions(id).length, 2);
    assert.equal(r.api.fileBytes(id).toString(), 'a,b\n3,4\n');
    assert.equal(await readText(r, '/d/data.csv'), 'a,b\n3,4\n');
    assert.ok((await r.fs.readdir('/d')).includes('data.csv'));
  });
});

test('the same bytes made again: the file is restored, with no new version', async () => {
  await withReal(async (r) => {
    const d = await listedFolder(r);
    const id = await publishedIn(r, d, 'same.txt', 'unchanged\n');
    await removeAndMake(r, '/d/same.txt', 'unchanged\n');
    assert.equal(await r.api.lookupChild(d.id, 'same.txt'), id);
    assert.equal(r.api.versions(id).length, 1);
    assert.equal(await readText(r, '/d/same.txt'), 'unchanged\n');
    assert.ok((await r.fs.readdir('/d')).includes('same.txt'), 'listed again');
    // Written to again afterwards: an ordinary next version of that file.
    const fd = await r.fs.open('/d/same.txt', O_WRONLY);
    await r.fs.write(fd, Buffer.from('more\n'), 10);
    await r.fs.flush(fd);
    await r.fs.release(fd);
    assert.equal(r.api.fileBytes(id).toString(), 'unchanged\nmore\n');
  });
});

test('a file with sharing of its own is not brought back (Synapse drops its ACL in the trash can)', async () => {
  await withReal(async (r) => {
    const d = await listedFolder(r);
    const shared = await publishedIn(r, d, 'shared.txt', 'x\n');
    r.remote.shareOnItsOwn(shared);
    await r.fs.readdir('/d'); // listed afresh (no metadata TTL here): shared on its own
    await removeAndMake(r, '/d/shared.txt', 'y\n');
    const now = (await r.api.lookupChild(d.id, 'shared.txt'))!;
    assert.notEqual(now, shared, 'a new file: the shared one stays in the trash can');
    assert.equal(r.api.fileBytes(now).toString(), 'y\n');
  }, 0);
});

test('the name taken by another client meanwhile: the restore is refused and these bytes go to the file there', async () => {
  await withReal(async (r) => {
    const d = await listedFolder(r);
    const { removed: taken, fd } = await remadeOpen(r, d, 'taken.txt', 'x\n', 'mine\n');
    const other = (await r.remote.putFile(d.id, 'taken.txt', Buffer.from('theirs\n'))).id; // another client, meanwhile
    await r.fs.flush(fd);
    await r.fs.release(fd);
    assert.notEqual(other, taken);
    assert.equal(await r.api.lookupChild(d.id, 'taken.txt'), other, 'the name is the other client\'s file');
    assert.equal(r.api.fileBytes(other).toString(), 'mine\n', 'these bytes are its next version (last writer wins)');
  });
});

test('zip updating an archive (temp file, remove the archive, rename the temp onto it) keeps the archive\'s synID', async () => {
  await withReal(async (r) => {
    const d = await listedFolder(r);
    const id = await publishedIn(r, d, 't.zip', 'archive v1');
    await writeNew(r, '/d/ziAbc123', 'archive v2');
    await r.fs.unlink('/d/t.zip');
    await r.fs.rename('/d/ziAbc123', '/d/t.zip');
    assert.equal(await readText(r, '/d/t.zip'), 'archive v2'); // waits for the publish the rename started
    assert.equal(await r.api.lookupChild(d.id, 't.zip'), id, 'the same entity');
    assert.equal(await r.api.lookupChild(d.id, 'ziAbc123'), null, 'the temp file is gone');
    assert.equal(r.api.fileBytes(id).toString(), 'archive v2');
    assert.equal(r.api.versions(id).length, 2);
    assert.deepEqual((await r.fs.readdir('/d')).filter((n) => !n.startsWith('.')).sort(), ['t.zip']);
  });
});

test('a publish that fails leaves the removed file in the trash can (the removal is not undone); a published file renamed onto the name keeps its own identity', async () => {
  await withReal(async (r) => {
    const d = await listedFolder(r);
    const { removed: old, fd } = await remadeOpen(r, d, 'f.txt', 'old\n', 'new\n');
    r.store.failNext('putObject', 10);
    await assert.rejects(r.fs.flush(fd));
    await r.fs.release(fd).catch(() => undefined); // the last close tries once more, and fails too
    assert.equal(await r.api.lookupChild(d.id, 'f.txt'), null, 'the old f.txt is not back');
    await assert.rejects(r.remote.getEntity(old), /trash/i, 'still in the trash can');
    r.store.failNext('putObject', 0);

    // rm g; mv h g: h moves (its synID, its history); g stays removed.
    await writeNew(r, '/d/g.txt', 'g\n');
    const h = await publishedIn(r, d, 'h.txt', 'h\n');
    await r.fs.unlink('/d/g.txt');
    await r.fs.rename('/d/h.txt', '/d/g.txt');
    assert.equal(await r.api.lookupChild(d.id, 'g.txt'), h, 'the moved file is g.txt now');
    assert.equal(r.api.fileBytes(h).toString(), 'h\n');
  });
});

test('a file made again but renamed before its publish is a new file under its new name', async () => {
  await withReal(async (r) => {
    const d = await listedFolder(r);
    const { removed: old, fd } = await remadeOpen(r, d, 'f.txt', 'old\n', 'new\n');
    await r.fs.rename('/d/f.txt', '/d/g.txt');
    await r.fs.flush(fd);
    await r.fs.release(fd);
    assert.equal(await r.api.lookupChild(d.id, 'f.txt'), null);
    const g = (await r.api.lookupChild(d.id, 'g.txt'))!;
    assert.notEqual(g, old);
    assert.equal(r.api.fileBytes(g).toString(), 'new\n');
  });
});
