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
const O_TRUNC = 0o1000;

type Wired = Parameters<Parameters<typeof withReal>[0]>[0];

/** `path` opened for writing with O_TRUNC and given `text`, as `cmd > path` while it runs: its fd. */
async function rewriting(r: Wired, path: string, text: string): Promise<number> {
  const fd = await r.fs.open(path, O_WRONLY | O_TRUNC);
  await r.fs.truncate(path, 0);
  await r.fs.write(fd, Buffer.from(text), 0);
  return fd;
}

/** Published /F ('v1') and /new (`newText`): F's entity id. */
async function publishedPair(r: Wired, newText: string): Promise<string> {
  await writeNew(r, '/F', 'v1\n');
  await writeNew(r, '/new', newText);
  return r.api.resolvePath(r.rootId, '/F')!.id;
}

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

test('cp of the bytes this mount last saw, over a file another client changed since: the copy wins, as any rewrite', async () => {
  // Review: the "same bytes, no new version" check compared with the version seen at open, so
  // close() said 0 while Synapse kept the other client's bytes.
  await withReal(async (r) => {
    await writeNew(r, '/f.txt', 'AAAA\n');
    await r.fs.getattr('/f.txt');
    const id = (await r.api.lookupChild(r.rootId, 'f.txt'))!;
    await r.remote.putVersion(id, Buffer.from('BBBB\n'));
    const fd = await r.fs.open('/f.txt', O_WRONLY | O_TRUNC);
    await r.fs.write(fd, Buffer.from('AAAA\n'), 0);
    await r.fs.flush(fd);
    await r.fs.release(fd);
    assert.equal(r.api.fileBytes(id).toString(), 'AAAA\n', 'Synapse holds what close() said it published');
    assert.equal(r.api.versions(id).length, 3, 'a third version: the other client\'s stays in the history');

    // Unchanged bytes over the newest version: still no new version.
    const again = await r.fs.open('/f.txt', O_WRONLY | O_TRUNC);
    await r.fs.write(again, Buffer.from('AAAA\n'), 0);
    await r.fs.flush(again);
    await r.fs.release(again);
    assert.equal(r.api.versions(id).length, 3);
  });
});

test('rm of a new file while an fd\'s close publishes it: the file is gone from Synapse and the listing', async () => {
  // Review: unlink read the node before the publish created the entity, so it deleted nothing
  // (rm answered 0), and the publish listed the file again.
  await withReal(async (r) => {
    const fd = await r.fs.create('/a.txt', 0o644);
    await r.fs.write(fd, Buffer.from('hello'), 0);
    const [closed, removed] = await Promise.allSettled([r.fs.flush(fd), r.fs.unlink('/a.txt')]);
    assert.equal(removed.status, 'fulfilled');
    assert.equal(closed.status, 'fulfilled');
    await r.fs.release(fd);
    assert.equal(await r.api.lookupChild(r.rootId, 'a.txt'), null, 'not in Synapse');
    assert.ok(!(await r.fs.readdir('/')).includes('a.txt'), 'not listed');
  });
});

test('mv onto a file while a close of one of its fds publishes: the renamed bytes end newest in Synapse, as in the mount', async () => {
  // Review: rename waited only for last closes (release), so a flush's publish still uploading
  // committed after the rename — F's newest version became the replaced writer's bytes, while
  // the mount showed the renamed ones.
  await withReal(async (r) => {
    const fid = await publishedPair(r, 'renamed-in\n');
    const fd = await rewriting(r, '/F', 'old-writer\n');
    // The writer's registration is slow: its publish is still running when the rename arrives.
    r.faults.fail('createExternalS3FileHandle', { skip: 1, times: 1, delayMs: 300 });
    const [flushed, renamed] = await Promise.allSettled([r.fs.flush(fd), r.fs.rename('/new', '/F')]);
    r.faults.clear();
    assert.equal(flushed.status, 'fulfilled');
    assert.equal(renamed.status, 'fulfilled');
    await r.fs.release(fd);
    assert.equal(r.api.resolvePath(r.rootId, '/F')!.id, fid, 'the same entity');
    assert.equal(r.api.fileBytes(fid).toString(), 'renamed-in\n', 'the renamed bytes are the newest version');
    assert.equal(r.api.versions(fid).length, 3, 'v1, the writer\'s close, then the renamed bytes');
    assert.equal(await readText(r, '/F'), 'renamed-in\n');
  });
});

/**
 * F open for writing with new bytes; `mv /new /F` whose delete of the source is a slow round trip
 * (`deleteEntity` answers as given after 300 ms), and F's writer's close arriving meanwhile.
 */
async function closeDuringRename(r: Wired, deleteAnswer: (real: () => Promise<void>) => Promise<void>) {
  const fid = await publishedPair(r, 'renamed-in\n');
  const fd = await rewriting(r, '/F', 'old-writer\n');
  const deleteEntity = r.faults.deleteEntity.bind(r.faults);
  let inDelete!: () => void;
  const deleting = new Promise<void>((resolve) => { inDelete = resolve; });
  r.faults.deleteEntity = async (id: string) => {
    inDelete();
    await new Promise((resolve) => setTimeout(resolve, 300));
    return deleteAnswer(() => deleteEntity(id));
  };
  try {
    const renamed = r.fs.rename('/new', '/F');
    await deleting;
    const [flushed, moved] = await Promise.allSettled([r.fs.flush(fd), renamed]);
    await r.fs.release(fd);
    return { fid, flushed, moved };
  } finally {
    r.faults.deleteEntity = deleteEntity;
  }
}

test('mv onto a file, and a close of one of its fds arriving while the rename is in Synapse: the close publishes nothing, the renamed bytes are newest', async () => {
  // Review: the rename waited for publishes already running, not for one starting during its own
  // Synapse calls — that one committed the replaced writer's bytes over the renamed ones.
  await withReal(async (r) => {
    const { fid, flushed, moved } = await closeDuringRename(r, (real) => real());
    assert.equal(flushed.status, 'fulfilled', 'close() of a replaced file succeeds, as after unlink');
    assert.equal(moved.status, 'fulfilled');
    assert.equal(r.api.fileBytes(fid).toString(), 'renamed-in\n', 'the renamed bytes are the newest version');
    assert.equal(r.api.versions(fid).length, 2, 'v1, then the renamed bytes: the replaced writer\'s are never published');
    assert.equal(await readText(r, '/F'), 'renamed-in\n');
  });
});

test('mv onto a file that fails in Synapse: a close waiting for it publishes the writer\'s bytes after all', async () => {
  await withReal(async (r) => {
    const { fid, flushed, moved } = await closeDuringRename(r, async () => { throw new Error('connection reset'); });
    assert.equal(moved.status, 'rejected');
    assert.equal(flushed.status, 'fulfilled');
    assert.equal(r.api.fileBytes(fid).toString(), 'old-writer\n', 'the writer\'s bytes, not lost with the failed rename');
  });
});

test('mv of a file open for writing onto another open one, failing in Synapse before anything moved: both stay whole where they were, each writer\'s close publishes its bytes', async () => {
  // Review: the replaced file was marked nameless before the rename's Synapse calls; when one
  // failed, its writer's close answered 0 and published nothing.
  await withReal(async (r) => {
    await writeNew(r, '/new', 'n1\n');
    const newId = r.api.resolvePath(r.rootId, '/new')!.id;
    const fdF = await r.fs.create('/F', 0o644);
    await r.fs.write(fdF, Buffer.from('F-writer\n'), 0);
    const fdN = await rewriting(r, '/new', 'new-writer\n');
    r.faults.failNext('updateEntity', 10, 500);
    await assert.rejects(r.fs.rename('/new', '/F'));
    r.faults.clear();
    await r.fs.flush(fdF);
    await r.fs.release(fdF);
    await r.fs.flush(fdN);
    await r.fs.release(fdN);
    const fId = r.api.resolvePath(r.rootId, '/F')?.id;
    assert.ok(fId, 'F published');
    assert.equal(r.api.fileBytes(fId).toString(), 'F-writer\n');
    assert.equal(r.api.resolvePath(r.rootId, '/new')!.id, newId);
    assert.equal(r.api.fileBytes(newId).toString(), 'new-writer\n', 'new stayed new, with its writer\'s bytes');
  });
});

test('mv of a file open for writing onto another open one whose source entity cannot be deleted: the move stands (the bytes are the target\'s next version), the old entity stays with a warning', async () => {
  await withReal(async (r) => {
    const fid = await publishedPair(r, 'n1\n');
    const fdF = await rewriting(r, '/F', 'F-writer\n');
    const fdN = await rewriting(r, '/new', 'new-writer\n');
    r.faults.failNext('deleteEntity', 10, 500);
    await r.fs.rename('/new', '/F');
    r.faults.clear();
    await r.fs.flush(fdF);
    await r.fs.release(fdF);
    await r.fs.flush(fdN);
    await r.fs.release(fdN);
    assert.equal(r.api.fileBytes(fid).toString(), 'new-writer\n', 'F is the renamed file\'s bytes');
    assert.equal(await readText(r, '/F'), 'new-writer\n');
  });
});
