/**
 * The spool sweep at mount start (Spool.sweepOrphanedFiles): what a mount that died left
 * half-written goes; what anything may still need stays.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Spool, spoolOwner, type UploadRecord } from '../../src/fs/spool.js';
import { orphanedUploads } from '../../src/fs/orphans.js';

/** A pid no process has now: a child's, once it exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid!;
}

async function withSpool(fn: (spool: Spool, files: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'spool-sweep-'));
  try {
    const spool = new Spool(dir);
    await spool.init();
    await fn(spool, path.join(dir, 'files'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function entry(id: string, spoolFile: string): Parameters<Spool['writeJournal']>[0] {
  return { id, spoolFile, parentId: 'syn1', name: 'a.txt', size: 3, md5: 'x', createdAt: new Date().toISOString(), error: 'refused' };
}

test('files a dead mount left being written are removed; live, journaled, kept and older files stay', async () => {
  await withSpool(async (spool, files) => {
    const mine = await spool.create();
    await mine.write(Buffer.from('live'), 0);
    const tag = path.basename(mine.file).split('.')[1]!; // this host and pid namespace
    const dead = deadPid();
    const orphan = `${randomUUID()}.${tag}.${dead}-1700000000000`;
    const journaled = `${randomUUID()}.${tag}.${dead}-1700000000000`;
    const kept = `${randomUUID()}.${tag}.${dead}-1700000000000`;
    // Another host's (a spool on a shared disk): its pids mean nothing here.
    const elsewhere = `${randomUUID()}.${tag === '00000000' ? '11111111' : '00000000'}.${dead}-1700000000000`;
    const legacy = randomUUID();
    for (const n of [orphan, journaled, kept, elsewhere, legacy]) await writeFile(path.join(files, n), 'abcdef');
    await spool.writeJournal(entry('j1', path.join(files, journaled)));
    await spool.markKept(path.join(files, kept));

    const swept = await spool.sweepOrphanedFiles();
    assert.deepEqual(swept, { removed: 1, bytes: 6, unowned: 1 });
    const left = (await readdir(files)).sort();
    assert.deepEqual(left, [journaled, kept, `${kept}.keep`, elsewhere, legacy, path.basename(mine.file)].sort());
    // Removing a kept file through the spool removes its marker too.
    await spool.removeSpoolFile(path.join(files, kept));
    assert.ok(!(await readdir(files)).some((n) => n.startsWith(kept)));
    await mine.remove();
  });
});

test('nothing is removed while a journal entry cannot be read, or the journal cannot be listed (either might name the file)', async () => {
  await withSpool(async (spool, files) => {
    const mine = await spool.create();
    const tag = path.basename(mine.file).split('.')[1]!;
    await mine.remove();
    const orphan = `${randomUUID()}.${tag}.${deadPid()}-1700000000000`;
    await writeFile(path.join(files, orphan), 'abc');
    await writeFile(path.join(spool.journalDir, 'torn.json'), '{"id": "torn", "spo');
    assert.deepEqual(await spool.sweepOrphanedFiles(), { removed: 0, bytes: 0, unowned: 0 });
    assert.deepEqual(await readdir(files), [orphan]);
    // A journal that cannot be listed is not an empty one (review: everything would have gone).
    await rm(spool.journalDir, { recursive: true });
    await writeFile(spool.journalDir, 'not a directory');
    await assert.rejects(spool.sweepOrphanedFiles());
    assert.deepEqual(await readdir(files), [orphan]);
  });
});

test('an upload recorded by another host or container is never judged orphaned by its pid', async () => {
  await withSpool(async (spool) => {
    const dead = deadPid();
    const rec = (uploadId: string): UploadRecord => ({
      uploadId, bucket: 'b', key: `k/${uploadId}`, storageLocationId: 1, parentId: 'syn1', startedAt: new Date().toISOString(), pid: dead,
    });
    await spool.recordUpload(rec('ours')); // stamped with this host's owner tag
    const uploads = path.join(spool.dir, 'uploads');
    // As another host would have written them (a spool on a shared disk), and as older versions did.
    await writeFile(path.join(uploads, 'elsewhere.json'), JSON.stringify({ ...rec('elsewhere'), owner: spoolOwner() === '00000000' ? '11111111' : '00000000' }));
    await writeFile(path.join(uploads, 'older.json'), JSON.stringify(rec('older')));
    const orphans = (await orphanedUploads(spool, false)).map((r) => r.uploadId).sort();
    assert.deepEqual(orphans, ['older', 'ours']);
  });
});

test('upload records a dead process left half-written (before their rename) are removed; live, foreign and unowned ones stay', async () => {
  await withSpool(async (spool) => {
    const mine = await spool.create();
    const tag = path.basename(mine.file).split('.')[1]!;
    const start = path.basename(mine.file).split('-').pop()!;
    await mine.remove();
    const uploads = path.join(spool.dir, 'uploads');
    const dead = deadPid();
    const stray = `abc.json.${tag}.${dead}-1700000000000.tmp`;
    const live = `def.json.${tag}.${process.pid}-${start}.tmp`;
    const foreign = `ghi.json.${tag === '00000000' ? '11111111' : '00000000'}.${dead}-1700000000000.tmp`;
    const unowned = `jkl.json.${dead}.tmp`;
    for (const n of [stray, live, foreign, unowned]) await writeFile(path.join(uploads, n), '{"uploadId"');
    // Journal entries are written the same way (one temp name per process: the mount and recover
    // may rewrite one entry at once — review).
    const journal = path.join(spool.dir, 'journal');
    for (const n of [stray, live]) await writeFile(path.join(journal, n), '{"id"');
    assert.equal(await spool.sweepStrayRecords(), 2);
    assert.deepEqual((await readdir(uploads)).sort(), [live, foreign, unowned].sort());
    assert.deepEqual(await readdir(journal), [live]);
    await rm(path.join(journal, live));
    // The temp files this process writes records through are named so: one whose rename fails
    // (as if it crashed there) is this live process's, and stays.
    const target = path.join(uploads, `${createHash('sha1').update('u1').digest('hex')}.json`);
    await mkdir(path.join(target, 'blocker'), { recursive: true });
    const rec: UploadRecord = { uploadId: 'u1', bucket: 'b', key: 'k', storageLocationId: 1, parentId: 'syn1', startedAt: new Date().toISOString(), pid: process.pid };
    await assert.rejects(spool.recordUpload(rec));
    assert.ok((await readdir(uploads)).includes(`${path.basename(target)}.${tag}.${process.pid}-${start}.tmp`));
    assert.equal(await spool.sweepStrayRecords(), 0);
  });
});

test('QA: a journal entry that cannot be written leaves no temp file behind', async () => {
  await withSpool(async (spool) => {
    await mkdir(path.join(spool.journalFile('stuck'), 'blocker'), { recursive: true }); // the rename fails
    await assert.rejects(spool.writeJournal(entry('stuck', path.join(spool.dir, 'files', 'x'))));
    assert.deepEqual(await readdir(spool.journalDir), ['stuck.json'], 'only the directory in its way');
  });
});
