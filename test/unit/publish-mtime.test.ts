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
import type { SynapseFilesystem } from '../../src/fs/filesystem.js';
import { recoverAll } from '../../src/cli/recover-command.js';
import { mountOver, readText, transferOver, withReal, writeNew, type Real } from './fs-wiring.js';

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
      // A file whose time nobody set: the time its writer left it, as its fstat showed.
      await writeNew(r, '/plain.txt', 'p\n');
      const written = (await r.fs.getattr('/plain.txt')).mtime.getTime();
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
      assert.equal(await mtime('/plain.txt'), written, 'no time set: its writer\'s (review: Synapse\'s after a remount, a little later)');
      assert.ok(written <= Date.parse((await r.api.getEntity(plainId)).modifiedOn));

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
      const subId = r.api.resolvePath(r.rootId, '/a/sub')!.id;
      await r.fs.utimens('/a/sub', old, old);
      assert.equal(log.get(subId, 0), old);
      await stepped(['/a'], () => r.fs.rmdir('/a/sub'), 'rmdir');
      assert.equal(log.get(subId, 0), undefined, 'a removed folder leaves the log');
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

/** Each case on a fresh wiring with its own log; `again()` is a remount over the same log. */
async function withLog(fn: (r: Real, again: () => Promise<SynapseFilesystem>, log: VersionLog<number>) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'mtimes-'));
  try {
    let log = await openMtimeLog(dir, { readOnly: false });
    await withReal(async (r) => {
      await fn(r, async () => {
        log = await reopen(log, dir);
        return mountOver(r, { mtimeStore: log });
      }, log);
    }, 60_000, log);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const O_WRONLY = 1;
const O_TRUNC = 0o1000;
const OLD = Date.UTC(2020, 0, 2);

test('review: a truncate, or an O_TRUNC open, moves the mtime — a time set before is not the new version\'s', async () => {
  await withLog(async (r, again) => {
    await writeNew(r, '/t.txt', 'some bytes\n');
    await writeNew(r, '/e.txt', 'other bytes\n');
    await r.fs.utimens('/t.txt', OLD, OLD);
    await r.fs.utimens('/e.txt', OLD, OLD);
    const t0 = Date.now();
    await r.fs.truncate('/t.txt', 3);
    const fd = await r.fs.open('/e.txt', O_WRONLY | O_TRUNC);
    await r.fs.flush(fd);
    await r.fs.release(fd);
    const shown = [(await r.fs.getattr('/t.txt')).mtime.getTime(), (await r.fs.getattr('/e.txt')).mtime.getTime()];
    assert.ok(shown[0]! >= t0, 'truncate');
    assert.ok(shown[1]! >= t0, 'O_TRUNC');
    const fs = await again();
    assert.deepEqual([(await fs.getattr('/t.txt')).mtime.getTime(), (await fs.getattr('/e.txt')).mtime.getTime()], shown, 'the same after a remount');
  });
});

test('review: a file renamed over another while open keeps its own time, not the target\'s old one', async () => {
  await withLog(async (r, again) => {
    await writeNew(r, '/dest.txt', 'old\n');
    await r.fs.utimens('/dest.txt', OLD, OLD);
    const t0 = Date.now();
    const fd = await r.fs.create('/src.txt', 0o644); // os.replace inside a NamedTemporaryFile's `with`
    await r.fs.write(fd, Buffer.from('new bytes\n'), 0);
    await r.fs.rename('/src.txt', '/dest.txt');
    await r.fs.flush(fd);
    await r.fs.release(fd);
    assert.equal(await readText(r, '/dest.txt'), 'new bytes\n');
    const shown = (await r.fs.getattr('/dest.txt')).mtime.getTime();
    assert.ok(shown >= t0);
    assert.equal((await (await again()).getattr('/dest.txt')).mtime.getTime(), shown, 'the same after a remount');
  });
});

test('review: mv onto an existing file after a remount keeps the moved file\'s time', async () => {
  await withLog(async (r, again) => {
    await writeNew(r, '/a.txt', 'a\n');
    await writeNew(r, '/b.txt', 'b\n');
    await r.fs.utimens('/a.txt', OLD, OLD);
    const second = await again();
    await second.rename('/a.txt', '/b.txt');
    assert.equal((await second.getattr('/b.txt')).mtime.getTime(), OLD);
    assert.equal((await (await again()).getattr('/b.txt')).mtime.getTime(), OLD);
  });
});

test('review: a time set on an open file is kept when its close publishes nothing new', async () => {
  await withLog(async (r, again) => {
    await writeNew(r, '/same.txt', 'same\n');
    await writeNew(r, '/clean.txt', 'clean\n');
    // cp -p onto identical bytes: O_TRUNC, the same bytes, futimens, close.
    const fd = await r.fs.open('/same.txt', O_WRONLY | O_TRUNC);
    await r.fs.write(fd, Buffer.from('same\n'), 0);
    await r.fs.utimens('/same.txt', OLD, OLD);
    await r.fs.flush(fd);
    await r.fs.release(fd);
    // Open for writing, nothing written, touch -m, close.
    const fd2 = await r.fs.open('/clean.txt', O_WRONLY);
    await r.fs.utimens('/clean.txt', OLD + 1000, OLD + 1000);
    await r.fs.flush(fd2);
    await r.fs.release(fd2);
    const id = r.api.resolvePath(r.rootId, '/same.txt')!.id;
    assert.equal((await r.api.getEntity(id)).versionNumber, 1, 'no new version');
    const fs = await again();
    assert.equal((await fs.getattr('/same.txt')).mtime.getTime(), OLD);
    assert.equal((await fs.getattr('/clean.txt')).mtime.getTime(), OLD + 1000);
  });
});

test('review: opening a file for writing changes no time; another client\'s version shows its own, in the same mount', async () => {
  await withLog(async (r) => {
    await writeNew(r, '/f.txt', 'f\n');
    await r.fs.utimens('/f.txt', OLD, OLD);
    const fd = await r.fs.open('/f.txt', O_WRONLY);
    assert.equal((await r.fs.fgetattr('', fd)).mtime.getTime(), OLD, 'fstat of the open, unwritten file');
    await r.fs.release(fd);
    assert.equal((await r.fs.getattr('/f.txt')).mtime.getTime(), OLD);
    const id = r.api.resolvePath(r.rootId, '/f.txt')!.id;
    const remote = await r.remote.putVersion(id, Buffer.from('from elsewhere\n'));
    r.fs.table.invalidate(r.rootId);
    assert.equal((await r.fs.getattr('/f.txt')).mtime.getTime(), Date.parse(remote.modifiedOn));
  });
});

test('review: touching a file that waits for recover does not give its published version that time', async () => {
  await withLog(async (r, _again, log) => {
    await writeNew(r, '/k.txt', 'one\n');
    const id = r.api.resolvePath(r.rootId, '/k.txt')!.id;
    const published = (await r.fs.getattr('/k.txt')).mtime.getTime();
    r.faults.failNext('updateEntity');
    const fd = await r.fs.open('/k.txt', O_WRONLY);
    await r.fs.write(fd, Buffer.from('two\n'), 4);
    await assert.rejects(r.fs.flush(fd));
    await r.fs.release(fd);
    // touch: open for writing (the kept bytes), futimens, close.
    const t = await r.fs.open('/k.txt', O_WRONLY);
    await r.fs.utimens('/k.txt', OLD, OLD);
    await r.fs.flush(t);
    await r.fs.release(t);
    assert.equal((await r.fs.getattr('/k.txt')).mtime.getTime(), OLD, 'the kept file shows the time touch gave it');
    // On a closed path (os.utime; QA: returned 0 and changed nothing): the kept bytes take it,
    // and so does their journal entry (the next mount, recover).
    await r.fs.utimens('/k.txt', OLD + 5000, OLD + 5000);
    assert.equal((await r.fs.getattr('/k.txt')).mtime.getTime(), OLD + 5000);
    assert.deepEqual((await r.spool.listJournal()).map((e) => e.mtime), [OLD + 5000]);
    assert.equal(log.get(id, 1), published, 'version 1 keeps its own time');
  });
});

test('review: mv keeps the time of a file this mount never wrote (Synapse moves modifiedOn on the update)', async () => {
  await withLog(async (r, again) => {
    const f = await r.remote.putFile(r.rootId, 'theirs.txt', Buffer.from('theirs\n'));
    const before = Date.parse(f.modifiedOn);
    await new Promise((resolve) => setTimeout(resolve, 5)); // the update's modifiedOn must differ to tell
    await r.fs.rename('/theirs.txt', '/moved.txt');
    assert.ok(Date.parse((await r.api.getEntity(f.id)).modifiedOn) > before, 'Synapse moved modifiedOn');
    assert.equal((await r.fs.getattr('/moved.txt')).mtime.getTime(), before);
    assert.equal((await (await again()).getattr('/moved.txt')).mtime.getTime(), before);
  });
});

test('rsync\'s temp entity, replaced into its target, leaves the log', async () => {
  await withLog(async (r, _again, log) => {
    await writeNew(r, '/x.txt', 'v1\n');
    await writeNew(r, '/.x.txt.ab12', 'v2\n');
    const tempId = r.api.resolvePath(r.rootId, '/.x.txt.ab12')!.id;
    await r.fs.utimens('/.x.txt.ab12', OLD, OLD);
    assert.equal(log.get(tempId, 1), OLD);
    await r.fs.rename('/.x.txt.ab12', '/x.txt');
    assert.equal(log.get(tempId, 1), undefined);
    const id = r.api.resolvePath(r.rootId, '/x.txt')!.id;
    assert.equal(log.get(id, 2), OLD);
  });
});

test('review: a time set through the fd of an empty file Synapse storage cannot hold stays when its close publishes nothing', async () => {
  await withReal(async (r) => {
    // A folder in Synapse's own storage (no 0-byte files there), mounted as the root.
    const plain = await r.api.mkdir(r.root.parentId!, 'plain');
    const fs = mountOver({ ...r, root: { ...r.root, entityId: plain.id, name: plain.name } });
    const fd = await fs.create('/stamp', 0o644); // touch stamp
    await fs.release(fd);
    assert.equal(r.api.resolvePath(plain.id, '/stamp'), undefined, 'kept in this mount only');
    const t = await fs.open('/stamp', O_WRONLY); // touch -d: open, futimens, close
    await fs.utimens('/stamp', OLD, OLD);
    await fs.flush(t);
    await fs.release(t);
    assert.equal((await fs.getattr('/stamp')).mtime.getTime(), OLD);
  });
});

test('review: a file whose publish failed keeps its time in its journal entry; recover logs it for the version it publishes', async () => {
  await withLog(async (r, again, log) => {
    r.faults.failNext('createEntity');
    const fd = await r.fs.create('/late.txt', 0o644);
    await r.fs.write(fd, Buffer.from('ate\n'), 1); // out of order: spooled, kept whole when journaled
    await r.fs.write(fd, Buffer.from('l'), 0);
    await r.fs.utimens('/late.txt', OLD, OLD);
    await assert.rejects(r.fs.flush(fd));
    await r.fs.release(fd);
    const [entry] = await r.spool.listJournal();
    assert.equal(entry?.mtime, OLD, 'in the entry');
    const { publisher } = transferOver(r);
    const [result] = await recoverAll(r.api, publisher, r.spool, undefined, () => r.store, { mtimes: log });
    assert.equal(result?.outcome, 'published', result?.error);
    const id = r.api.resolvePath(r.rootId, '/late.txt')!.id;
    assert.equal(log.get(id, 1), OLD);
    assert.equal((await (await again()).getattr('/late.txt')).mtime.getTime(), OLD);
  });
});

test('review: utimens finds a file open for writing under the path another client\'s move gave it', async () => {
  await withLog(async (r) => {
    await r.fs.mkdir('/d');
    await writeNew(r, '/d/f.txt', 'f\n');
    const fd = await r.fs.open('/d/f.txt', O_WRONLY);
    await r.remote.move(r.api.resolvePath(r.rootId, '/d')!.id, 'e');
    r.fs.table.invalidate(r.rootId);
    await r.fs.utimens('/e/f.txt', OLD, OLD);
    assert.equal((await r.fs.fgetattr('', fd)).mtime.getTime(), OLD, 'the open file took the time');
    await r.fs.write(fd, Buffer.from('g'), 0); // and a write after it moves it on, as on a local disk
    assert.ok((await r.fs.fgetattr('', fd)).mtime.getTime() > OLD);
    await r.fs.release(fd);
  });
});

test('review: a rename of one file under two names (a stale listing after another client moved it) changes nothing', async () => {
  // The kernel never sends rename(a, a); this is the other way to meet one file at both ends:
  // folder A's listing still shows the file as `a` when another client has moved it to B/b.
  await withReal(async (r) => {
    await r.fs.mkdir('/A');
    await r.fs.mkdir('/B');
    await writeNew(r, '/A/a', 'one file\n');
    await r.fs.readdir('/A');
    const id = r.api.resolvePath(r.rootId, '/A/a')!.id;
    const bId = r.api.resolvePath(r.rootId, '/B')!.id;
    await r.remote.move(id, 'b', bId);
    // B listed afresh (as once its TTL is over: the mount knows the folder it made as empty),
    // showing the file as `b`; A's listing (TTL 60 s) still has `a`.
    r.fs.table.invalidate(bId);
    await r.fs.readdir('/B');
    const folderTimes = async (): Promise<number[]> => Promise.all(['/A', '/B'].map(async (p) => (await r.fs.getattr(p)).mtime.getTime()));
    const before = await folderTimes();
    const version = (await r.api.getEntity(id)).versionNumber;
    await r.fs.rename('/A/a', '/B/b');
    const after = await r.api.getEntity(id);
    assert.equal(after.versionNumber, version, 'no new version');
    assert.equal(after.name, 'b');
    assert.equal(after.parentId, bId);
    assert.deepEqual(await folderTimes(), before, 'no folder changed');
    assert.equal(await readText(r, '/B/b'), 'one file\n');
  });
});
