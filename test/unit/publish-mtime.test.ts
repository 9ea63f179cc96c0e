/**
 * A file's mtime across its publish (filesystem.ts mtimeOf): what the writer's fstat saw stays
 * the file's time once it is published here — vim compares them — while a version another
 * client publishes shows Synapse's time. Times set by utimens outlive the mount (mtime-log.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { openMtimeLog } from '../../src/fs/mtime-log.js';
import type { VersionLog } from '../../src/fs/version-log.js';
import { mountOver, withReal, writeNew } from './fs-wiring.js';

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

/** A fresh log over the same file: what the next mount of this spool directory reads. */
async function reopen(log: VersionLog<number>, spoolDir: string): Promise<VersionLog<number>> {
  await log.flush();
  return openMtimeLog(spoolDir, { readOnly: false });
}

test('mtimes set through the mount survive a remount, per (entity, version)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'mtimes-'));
  try {
    const first = await openMtimeLog(dir, { readOnly: false });
    await withReal(async (r) => {
      const t = (n: number): number => Date.UTC(2020, 0, n);
      // rsync -a of a new file: a temp name, its time set, renamed into place (a move).
      await writeNew(r, '/.new.txt.ab12', 'new\n');
      await r.fs.utimens('/.new.txt.ab12', t(1), t(1));
      await r.fs.rename('/.new.txt.ab12', '/new.txt');
      // rsync -a of a changed file: the temp file's content becomes the target's next version.
      await writeNew(r, '/old.txt', 'v1\n');
      await writeNew(r, '/.old.txt.cd34', 'v2\n');
      await r.fs.utimens('/.old.txt.cd34', t(2), t(2));
      await r.fs.rename('/.old.txt.cd34', '/old.txt');
      // cp -p: the time is set on the open file, before close publishes it.
      const fd = await r.fs.create('/kept.txt', 0o644);
      await r.fs.write(fd, Buffer.from('kept\n'), 0);
      await r.fs.utimens('/kept.txt', t(3), t(3));
      await r.fs.flush(fd);
      await r.fs.release(fd);
      // touch -m of a published file.
      await writeNew(r, '/touched.txt', 'x\n');
      await r.fs.utimens('/touched.txt', t(4), t(4));
      // A file whose time nobody set.
      await writeNew(r, '/plain.txt', 'p\n');
      // A folder (rsync -a sets its time last): folders have no versions, so it stays until set again.
      await r.fs.mkdir('/dir');
      await r.fs.utimens('/dir', t(5), t(5));

      const again = mountOver(r, { mtimeStore: await reopen(first, dir) });
      const mtime = async (p: string): Promise<number> => (await again.getattr(p)).mtime.getTime();
      assert.equal(await mtime('/new.txt'), t(1), 'moved temp file');
      assert.equal(await mtime('/old.txt'), t(2), 'replaced content: the new version keeps the temp file\'s time');
      assert.equal(await mtime('/kept.txt'), t(3), 'time set while open');
      assert.equal(await mtime('/touched.txt'), t(4), 'touch -m');
      assert.equal(await mtime('/dir'), t(5), 'folder');
      const plainId = r.api.resolvePath(r.rootId, '/plain.txt')!.id;
      assert.equal(await mtime('/plain.txt'), Date.parse((await r.api.getEntity(plainId)).modifiedOn), 'no time set: Synapse\'s');

      // Another client's newer version is other bytes: it shows its own time, not the kept one.
      const touchedId = r.api.resolvePath(r.rootId, '/touched.txt')!.id;
      const remote = await r.remote.putVersion(touchedId, Buffer.from('from elsewhere\n'));
      const third = mountOver(r, { mtimeStore: await openMtimeLog(dir, { readOnly: true }) });
      assert.equal((await third.getattr('/touched.txt')).mtime.getTime(), Date.parse(remote.modifiedOn));
      assert.equal((await third.getattr('/new.txt')).mtime.getTime(), t(1), 'a read-only open of the log reads it');
    }, 60_000, first);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('adding, removing or renaming an entry changes its folder\'s mtime, also after a remount', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'mtimes-'));
  try {
    const log = await openMtimeLog(dir, { readOnly: false });
    await withReal(async (r) => {
      const old = Date.UTC(2020, 0, 1);
      const mtime = async (p: string): Promise<number> => (await r.fs.getattr(p)).mtime.getTime();
      await r.fs.mkdir('/a');
      await r.fs.mkdir('/b');
      const stepped = async (folders: string[], op: () => Promise<void>, what: string): Promise<void> => {
        for (const f of folders) await r.fs.utimens(f, old, old);
        const t0 = Date.now();
        await op();
        for (const f of folders) assert.ok(await mtime(f) >= t0, `${what} changed ${f}'s mtime`);
      };
      await stepped(['/a'], () => writeNew(r, '/a/f.txt', 'x\n'), 'create');
      await stepped(['/a'], () => r.fs.mkdir('/a/sub'), 'mkdir');
      await stepped(['/a'], () => r.fs.rmdir('/a/sub'), 'rmdir');
      await stepped(['/a', '/b'], () => r.fs.rename('/a/f.txt', '/b/f.txt'), 'rename across folders');
      await stepped(['/b'], () => r.fs.rename('/b/f.txt', '/b/g.txt'), 'rename within a folder');
      await stepped(['/b'], () => r.fs.unlink('/b/g.txt'), 'unlink');
      // Opening a file that exists changes nothing; nor does reading the folder.
      await writeNew(r, '/b/h.txt', 'h\n');
      await r.fs.utimens('/b', old, old);
      const fd = await r.fs.open('/b/h.txt', 0);
      await r.fs.release(fd);
      await r.fs.readdir('/b');
      assert.equal(await mtime('/b'), old);
      // Kept past the mount, as a time utimens set.
      await writeNew(r, '/a/late.txt', 'l\n');
      const shown = await mtime('/a');
      const again = mountOver(r, { mtimeStore: await reopen(log, dir) });
      assert.equal((await again.getattr('/a')).mtime.getTime(), shown);
      assert.equal((await again.getattr('/b')).mtime.getTime(), old);
    }, 60_000, log);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
