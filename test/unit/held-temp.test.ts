/**
 * A tool's temporary file (names.ts isHeldTempName: rsync's `.<name>.XXXXXX`, sed -i's
 * `sedXXXXXX`, zip's `ziXXXXXX`) is published once, under the name it is renamed to after its
 * last close — never as an entity of its own that the rename must then delete (which a
 * collaborator without DELETE could not: QA) — and, not renamed, under its own name a moment
 * later or at unmount.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeReal, mountOver, readText, writeNew, type Real } from './fs-wiring.js';
import type { FsNode } from '../../src/fs/inode-table.js';
import { readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { errnoName } from '../../src/fs/errors.js';
import type { JournalEntry } from '../../src/fs/spool.js';

/**
 * A new file written as a collaborator's would be in this STS folder — into the spool, not
 * streamed (written out of order here). A streamed one (writeStreamed, below) is held too: its
 * upload completed at its close, registered at its rename.
 */
async function writeSpooled(r: Real, p: string, text: string): Promise<void> {
  await r.fs.release(await flushedOpen(r, p, text));
}

/** Such a file written and flushed, its fd still open (a tool's close is FLUSH, then RELEASE). */
async function flushedOpen(r: Real, p: string, text: string): Promise<number> {
  const fd = await r.fs.create(p, 0o644);
  await r.fs.write(fd, Buffer.from(text.slice(1)), 1);
  await r.fs.write(fd, Buffer.from(text.slice(0, 1)), 0);
  await r.fs.flush(fd);
  return fd;
}

/** `p` published as 'v1', then rewritten as 'v2 kept' with that publish failing: it waits for recover. */
async function keptRewrite(r: Real, p: string): Promise<void> {
  await writeNew(r, p, 'v1\n');
  r.faults.failNext('updateEntity');
  const fd = await r.fs.open(p, 1);
  await r.fs.write(fd, Buffer.from('v2 kept\n'), 0);
  await assert.rejects(r.fs.flush(fd));
  await r.fs.release(fd);
}

async function withHeld(fn: (r: Awaited<ReturnType<typeof makeReal>>) => Promise<void>, heldTempMs = 60_000): Promise<void> {
  const r = await makeReal({ ttlMs: 60_000, heldTempMs });
  try {
    await fn(r);
  } finally {
    await rm(r.spoolDir, { recursive: true, force: true });
  }
}

test('rsync\'s temp file renamed onto an existing file: one new version of it, no temp entity made or deleted', async () => {
  await withHeld(async (r) => {
    await writeNew(r, '/f.txt', 'old\n');
    const f = (await r.api.lookupChild(r.rootId, 'f.txt'))!;
    const created = r.api.calls['createEntity'] ?? 0;
    await writeSpooled(r, '/.f.txt.Xy12Ab', 'new\n');
    assert.equal(await r.api.lookupChild(r.rootId, '.f.txt.Xy12Ab'), null, 'not published at its close');
    assert.equal(await readText(r, '/.f.txt.Xy12Ab'), 'new\n', 'readable meanwhile');
    await r.fs.rename('/.f.txt.Xy12Ab', '/f.txt');
    assert.equal(await readText(r, '/f.txt'), 'new\n');
    assert.equal(r.api.fileBytes(f).toString(), 'new\n');
    assert.equal(r.api.versions(f).length, 2);
    assert.equal((r.api.calls['createEntity'] ?? 0) - created, 0, 'no entity for the temp file');
    assert.equal(r.api.calls['deleteEntity'] ?? 0, 0, 'nothing to delete: a collaborator without DELETE can do this');
    assert.deepEqual((await r.fs.readdir('/')).filter((n) => n.includes('f.txt')), ['f.txt']);
  });
});

test('sed -i\'s temp file renamed to a new name: published once, under that name', async () => {
  await withHeld(async (r) => {
    await writeSpooled(r, '/sedAb3dEf', 'edited\n');
    await r.fs.rename('/sedAb3dEf', '/notes.txt');
    assert.equal(await readText(r, '/notes.txt'), 'edited\n');
    const id = (await r.api.lookupChild(r.rootId, 'notes.txt'))!;
    assert.equal(r.api.fileBytes(id).toString(), 'edited\n');
    assert.equal(await r.api.lookupChild(r.rootId, 'sedAb3dEf'), null);
  });
});

test('a temp-named file never renamed is published under its own name a moment after its last close, or at unmount', async () => {
  await withHeld(async (r) => {
    await writeSpooled(r, '/.data.csv.Q1w2E3', 'kept\n');
    for (let i = 0; i < 200 && (await r.api.lookupChild(r.rootId, '.data.csv.Q1w2E3')) === null; i++) await new Promise((res) => setTimeout(res, 10));
    const id = await r.api.lookupChild(r.rootId, '.data.csv.Q1w2E3');
    assert.ok(id, 'published after the wait');
    assert.equal(r.api.fileBytes(id).toString(), 'kept\n');
  }, 50);
  await withHeld(async (r) => {
    await writeSpooled(r, '/ziQ1w2E3', 'zip was killed\n');
    const drained = await r.fs.drain();
    assert.deepEqual(drained.published, ['/ziQ1w2E3']);
    assert.equal(r.api.fileBytes((await r.api.lookupChild(r.rootId, 'ziQ1w2E3'))!).toString(), 'zip was killed\n');
  });
});

test('a temp-named file renamed to a scratch name stays listed, as a scratch file; real-looking names are not held', async () => {
  await withHeld(async (r) => {
    await writeSpooled(r, '/.f.txt.Xy12Ab', 'backup\n');
    await r.fs.rename('/.f.txt.Xy12Ab', '/f.txt~');
    assert.ok((await r.fs.readdir('/')).includes('f.txt~'));
    assert.equal(await readText(r, '/f.txt~'), 'backup\n');
    assert.equal(await r.api.lookupChild(r.rootId, 'f.txt~'), null, 'never published');
    // mkstemp names have a capital letter 96 % of the time; these are users' files, published at close.
    await writeNew(r, '/.env.sample', 'A=1\n');
    await writeNew(r, '/zipcodes', '02139\n');
    assert.ok(await r.api.lookupChild(r.rootId, '.env.sample'));
    assert.ok(await r.api.lookupChild(r.rootId, 'zipcodes'));
  });
});

test('rsync\'s temp names without a capital but with lower case and digits mixed are held too (a collaborator\'s rsync failed 3.8 % of the time), and Python tempfile\'s; real names stay plain files', async () => {
  const { isHeldTempName } = await import('../../src/fs/names.js');
  for (const held of ['.x.txt.0psng6', '.f.txt.Xy12Ab', 'sedab12cd', 'zi9qwert', 'tmpjtl7wsl3', 'tmprutaa973', 'tmp_k2x9q_a', 'tmpab12cd34.csv', 'tmpbupmfasu', 'XXcA9MTu', 'XXq3zz8a']) assert.equal(isHeldTempName(held), true, held);
  for (const plain of ['.env.sample', '.bashrc.backup', 'zipcodes', 'zi202401', '.x.txt.123456', 'sedabcdef', 'tmpfiles', 'tmp12345678', 'tmp.txt.csv', 'tmpdata.csv', 'tmp', 'tmp_obj_ab', 'report.tmpl', 'XXLARGE', 'XXabcdef']) assert.equal(isHeldTempName(plain), false, plain);
});

test('QA: the hand-made atomic save `<name>.tmp`, NamedTemporaryFile(prefix=\'.<name>.\', suffix=\'.tmp\') and git\'s object temp files are held; their real names are known where the name says', async () => {
  const { heldTempTarget, isHeldTempName } = await import('../../src/fs/names.js');
  for (const held of ['fixed.json.tmp', '.results.json.06f1qpj3.tmp', 'x.tmp', 'tmp_obj_Ab12Cd', 'tmp_pack_8YRkZP', 'tmp_idx_xq3f9a']) assert.equal(isHeldTempName(held), true, held);
  assert.equal(heldTempTarget('fixed.json.tmp'), 'fixed.json');
  assert.equal(heldTempTarget('.results.json.06f1qpj3.tmp'), 'results.json');
  assert.equal(heldTempTarget('.x.csv.Ab12Cd'), 'x.csv');
  assert.equal(heldTempTarget('tmp_pack_8YRkZP'), undefined);
  await withHeld(async (r) => {
    await writeNew(r, '/out.json', 'v1\n');
    await writeSpooled(r, '/out.json.tmp', 'v2\n');
    assert.equal(await r.api.lookupChild(r.rootId, 'out.json.tmp'), null, 'not published at its close');
    await r.fs.rename('/out.json.tmp', '/out.json');
    const id = (await r.api.lookupChild(r.rootId, 'out.json'))!;
    assert.equal(r.api.fileBytes(id).toString(), 'v2\n');
    assert.equal(r.api.versions(id).length, 2, 'the next version of out.json, no temp entity');
  });
});

test('a held file is in the journal until its rename publishes it: a crash leaves it to recover, and a failed publish fails the rename', async () => {
  await withHeld(async (r) => {
    await writeSpooled(r, '/.notes.txt.AbCdEf', 'user data\n');
    // What a crash now would leave: the entry of a process that is gone.
    const raw = (await readdir(r.spool.journalDir)).filter((n) => n.endsWith('.json'));
    assert.equal(raw.length, 1, 'journaled while held (the next mount would have swept its bytes: QA)');
    const entry = JSON.parse(await readFile(path.join(r.spool.journalDir, raw[0]!), 'utf8')) as JournalEntry;
    assert.equal(entry.name, '.notes.txt.AbCdEf');
    assert.ok(entry.publishing, 'hidden from recover while this mount lives');
    assert.equal(await readFile(entry.spoolFile, 'utf8'), 'user data\n');

    // The rename publishes, and answers for the publish (QA: rsync exited 0 with it failing).
    r.faults.failNext('createEntity', 10, 503);
    await assert.rejects(r.fs.rename('/.notes.txt.AbCdEf', '/notes.txt'), (err: unknown) => errnoName(err) === 'EIO');
    r.faults.clear();
    const [kept] = await r.spool.listJournal();
    assert.equal(kept?.name, 'notes.txt', 'journaled under its new name');
    assert.equal(await readFile(kept.spoolFile, 'utf8'), 'user data\n');
  });
});

test('removed and made again twice within the window: still the same synID', async () => {
  // QA: the second time, the file brought back had no known ACL benefactor, so its removal was not noted.
  await withHeld(async (r) => {
    const folder = await r.remote.mkdir(r.rootId, 'd');
    await r.fs.readdir('/');
    await writeNew(r, '/d/f.txt', '1\n');
    const id = (await r.api.lookupChild(folder.id, 'f.txt'))!;
    for (const text of ['2\n', '3\n']) {
      await r.fs.unlink('/d/f.txt');
      await writeNew(r, '/d/f.txt', text);
      assert.equal(await r.api.lookupChild(folder.id, 'f.txt'), id, text);
    }
    assert.equal(r.api.versions(id).length, 3);
  });
});

test('the rename that arrives before its file\'s RELEASE still answers for the publish (review)', async () => {
  await withHeld(async (r) => {
    await writeNew(r, '/f.txt', 'old\n');
    const fd = await flushedOpen(r, '/.f.txt.AbCdEf', 'new\n');
    r.faults.failNext('updateEntity', 10, 503);
    const renaming = r.fs.rename('/.f.txt.AbCdEf', '/f.txt');
    await r.fs.release(fd); // the kernel's RELEASE, after the rename began
    await assert.rejects(renaming, (err: unknown) => errnoName(err) === 'EIO');
    r.faults.clear();
    assert.equal((await r.spool.listJournal())[0]?.name, 'f.txt', 'journaled under its new name');
  });
});

test('a held file a reader keeps open: renamed, its entry follows the name; removed, its entry goes; at unmount, published truthfully', async () => {
  await withHeld(async (r) => {
    const entries = async (): Promise<JournalEntry[]> => Promise.all((await readdir(r.spool.journalDir)).filter((n) => n.endsWith('.json'))
      .map(async (n) => JSON.parse(await readFile(path.join(r.spool.journalDir, n), 'utf8')) as JournalEntry));
    const a = await flushedOpen(r, '/.k.txt.AbCdEf', 'kept\n');
    await r.fs.release(a);
    const reader = await r.fs.open('/.k.txt.AbCdEf', 0);
    await r.fs.rename('/.k.txt.AbCdEf', '/k.txt');
    assert.deepEqual((await entries()).map((e) => e.name), ['k.txt'], 'a crash now leaves it to recover, under its new name');
    await r.fs.release(reader);
    assert.equal(await readText(r, '/k.txt'), 'kept\n');
    assert.equal(r.api.fileBytes((await r.api.lookupChild(r.rootId, 'k.txt'))!).toString(), 'kept\n');

    const b = await flushedOpen(r, '/.g.txt.AbCdEf', 'gone\n');
    await r.fs.release(b);
    const reader2 = await r.fs.open('/.g.txt.AbCdEf', 0);
    await r.fs.unlink('/.g.txt.AbCdEf');
    assert.deepEqual(await entries(), [], 'removed: nothing for recover to bring back');

    const c = await flushedOpen(r, '/.h.txt.AbCdEf', 'at unmount\n');
    await r.fs.release(c);
    const reader3 = await r.fs.open('/.h.txt.AbCdEf', 0);
    const drained = await r.fs.drain();
    assert.deepEqual(drained.published, ['/.h.txt.AbCdEf']);
    assert.equal(r.api.fileBytes((await r.api.lookupChild(r.rootId, '.h.txt.AbCdEf'))!).toString(), 'at unmount\n', 'published, as reported');
    void reader2; void reader3;
  });
});

test('a held file renamed onto a file waiting for recover, its publish failing too: only the new bytes wait (review)', async () => {
  await withHeld(async (r) => {
    await keptRewrite(r, '/f.txt');
    assert.deepEqual((await r.spool.listJournal()).map((e) => e.name), ['f.txt']);
    // rsync replaces it; that publish fails as well.
    await writeSpooled(r, '/.f.txt.AbCdEf', 'v3 by rsync\n');
    r.faults.failNext('updateEntity', 10, 503);
    await assert.rejects(r.fs.rename('/.f.txt.AbCdEf', '/f.txt'), (err: unknown) => errnoName(err) === 'EIO');
    r.faults.clear();
    const journal = await r.spool.listJournal();
    assert.equal(journal.length, 1, `the replaced file's entry is dropped, as by a rename that publishes: ${journal.map((e) => e.id).join(', ')}`);
    assert.equal(await readFile(journal[0]!.spoolFile, 'utf8'), 'v3 by rsync\n');
    assert.equal(await readText(r, '/f.txt'), 'v3 by rsync\n');
  });
});

test('…and when its own bytes could not be journaled (spool disk full), the replaced file\'s entry stays: the old bytes are all there is (review)', async () => {
  await withHeld(async (r) => {
    await keptRewrite(r, '/f.txt');
    await writeSpooled(r, '/.f.txt.AbCdEf', 'v3 by rsync\n');
    const writeJournal = r.spool.writeJournal.bind(r.spool);
    r.spool.writeJournal = async (entry, opts) => {
      if (entry.publishing || entry.name !== 'f.txt' || entry.size !== 12) return writeJournal(entry, opts);
      throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    };
    r.faults.failNext('updateEntity', 10, 503);
    await assert.rejects(r.fs.rename('/.f.txt.AbCdEf', '/f.txt'));
    r.faults.clear();
    r.spool.writeJournal = writeJournal;
    const left = await Promise.all((await r.spool.listJournal()).map((e) => readFile(e.spoolFile, 'utf8')));
    assert.ok(left.includes('v2 kept\n'), `the replaced file's kept bytes still wait for recover: ${JSON.stringify(left)}`);
  });
});

test('git\'s lock files inside a repository are held too: `config.lock` renamed onto `config` is its next version, nothing deleted; a lock removed is never published', async () => {
  const { isGitLockPath } = await import('../../src/fs/names.js');
  for (const p of ['/r/.git/config.lock', '/.git/index.lock', '/a/b/.git/refs/heads/main.lock', '/srv/repo.git/HEAD.lock', '/r/.git/modules/sub/index.lock']) assert.ok(isGitLockPath(p), p);
  for (const p of ['/srv/repo.git/refs/heads/main.lock', '/srv/repo.git/packed-refs.lock']) assert.ok(isGitLockPath(p), p);
  // And git's other temp files renamed or removed whole (QA: a collaborator's `git gc` failed on packed-refs.new).
  for (const p of ['/r/.git/packed-refs.new', '/r/.git/gc.pid', '/r/.git/info/refs_Ab12Cd', '/r/.git/objects/info/packs_x9Yz01', '/r/.git/objects/pack/.tmp-4242-pack-abc.pack']) assert.ok(isGitLockPath(p), p);
  for (const p of ['/r/packed-refs.new', '/r/.git/info/refs', '/r/gc.pid']) assert.ok(!isGitLockPath(p), p);
  for (const p of ['/yarn.lock', '/r/Cargo.lock', '/r/.git/config', '/r/.github/x.lock', '/r/.gitignore.lock', '/proj.git/yarn.lock', '/proj.git/sub/poetry.lock']) assert.ok(!isGitLockPath(p), p);
  await withHeld(async (r) => {
    await r.fs.mkdir('/.git');
    await writeNew(r, '/.git/config', '[core]\n');
    const git = (await r.api.lookupChild(r.rootId, '.git'))!;
    const config = (await r.api.lookupChild(git, 'config'))!;
    await writeSpooled(r, '/.git/config.lock', '[core]\n\tbare = false\n');
    await r.fs.rename('/.git/config.lock', '/.git/config');
    assert.equal(r.api.fileBytes(config).toString(), '[core]\n\tbare = false\n');
    assert.equal(r.api.calls['deleteEntity'] ?? 0, 0, 'a collaborator without DELETE can do this');
    const created = r.api.calls['createEntity'] ?? 0;
    await writeSpooled(r, '/.git/index.lock', 'DIRC index');
    await r.fs.unlink('/.git/index.lock');
    assert.equal((r.api.calls['createEntity'] ?? 0) - created, 0, 'a rolled-back lock is never published');
  });
});

test('a git lock closed and not renamed (index.lock through a commit\'s editor) is never published by the timer; renamed later, it is the file\'s next version (review)', async () => {
  await withHeld(async (r) => {
    await r.fs.mkdir('/.git');
    await writeNew(r, '/.git/index', 'DIRC 1');
    const index = (await r.api.lookupChild((await r.api.lookupChild(r.rootId, '.git'))!, 'index'))!;
    await writeSpooled(r, '/.git/index.lock', 'DIRC 2');
    await new Promise((res) => setTimeout(res, 300)); // six times the hold of other temp files here
    assert.equal(await r.api.lookupChild((await r.api.lookupChild(r.rootId, '.git'))!, 'index.lock'), null, 'not published');
    await r.fs.rename('/.git/index.lock', '/.git/index');
    assert.equal(r.api.fileBytes(index).toString(), 'DIRC 2');
    assert.equal(r.api.calls['deleteEntity'] ?? 0, 0);
  }, 50);
});

/** A new file written from its start and closed, as rsync writes its temp file: streamed to S3 here (an STS folder). */
async function writeStreamed(r: Real, p: string, data: Buffer): Promise<void> {
  const fd = await r.fs.create(p, 0o644);
  for (let off = 0; off < data.length; off += 1024 * 1024) {
    const chunk = data.subarray(off, off + 1024 * 1024);
    await r.fs.write(fd, chunk, off);
  }
  await r.fs.flush(fd);
  await r.fs.release(fd);
}

const objectKeys = (r: Real): string[] => [...r.store.objects.keys()].sort();

test('a streamed temp file (STS folder) is completed on S3 at its close and registered only at its rename: the file handle and the S3 key name the real file, no temp entity (QA audit F6)', async () => {
  for (const size of [10, 6 * 1024 * 1024 + 5]) { // one PutObject; a multipart upload of 2 parts (5 MiB parts here)
    await withHeld(async (r) => {
      const data = Buffer.alloc(size, 7);
      data.write('rsync', 0);
      const before = objectKeys(r);
      await writeStreamed(r, '/.big.bin.Xy12Ab', data);
      assert.equal(await r.api.lookupChild(r.rootId, '.big.bin.Xy12Ab'), null, `${size}: not published at its close`);
      const parked = objectKeys(r).filter((k) => !before.includes(k));
      assert.equal(parked.length, 1, `${size}: the object is on S3 already`);
      assert.ok(parked[0]!.endsWith('/big.bin'), `${size}: its key names the file rsync renames it to (${parked[0]})`);
      // What a crash now would leave (listJournal hides the entries of a live process).
      const raw = (await readdir(r.spool.journalDir)).filter((n) => n.endsWith('.json'));
      assert.equal(raw.length, 1, `${size}: journaled while held`);
      const entry = JSON.parse(await readFile(path.join(r.spool.journalDir, raw[0]!), 'utf8')) as JournalEntry;
      assert.equal(`${entry.s3Object?.bucket}/${entry.s3Object?.key}`, parked[0], `${size}: by its object`);
      assert.equal(entry.inSpool, false);
      assert.ok(entry.publishing, `${size}: hidden from recover while this mount lives`);
      assert.equal((await r.spool.listUploads()).length, 1, `${size}: its upload record stays until it is registered`);
      const created = r.api.calls['createEntity'] ?? 0;
      const updated = r.api.calls['updateEntity'] ?? 0;

      await r.fs.rename('/.big.bin.Xy12Ab', '/big.bin');
      const id = (await r.api.lookupChild(r.rootId, 'big.bin'))!;
      assert.ok(id);
      assert.ok(r.api.fileBytes(id).equals(data), `${size}: bytes`);
      const handle = r.api.fileHandle(r.api.versions(id)[0]!.fileHandleId!)!;
      assert.equal(handle.fileName, 'big.bin', `${size}: the file handle's name (what Synapse's clients download it as)`);
      assert.equal(`${handle.bucketName}/${handle.key}`, parked[0], `${size}: the object parked at the close`);
      assert.equal((r.api.calls['createEntity'] ?? 0) - created, 1, `${size}: one entity`);
      assert.equal((r.api.calls['updateEntity'] ?? 0) - updated, 0, `${size}: no rename of a published temp file`);
      assert.deepEqual((await readdir(r.spool.journalDir)).filter((n) => n.endsWith('.json')), [], `${size}: journal empty`);
      assert.deepEqual(await r.spool.listUploads(), [], `${size}: no upload record left`);
      assert.deepEqual(objectKeys(r), [...before, parked[0]!].sort(), `${size}: no other object`);
    });
  }
});

test('a parked temp file removed: its object and records go; changed again: its bytes come back from S3 and the rename publishes them all', async () => {
  await withHeld(async (r) => {
    const before = objectKeys(r);
    await writeStreamed(r, '/.gone.txt.Xy12Ab', Buffer.from('never mind\n'));
    assert.equal(objectKeys(r).length, before.length + 1);
    await r.fs.unlink('/.gone.txt.Xy12Ab');
    await r.fs.drain();
    assert.deepEqual(objectKeys(r), before, 'the parked object is deleted');
    assert.deepEqual((await readdir(r.spool.journalDir)).filter((n) => n.endsWith('.json')), [], 'no entry');
    assert.deepEqual(await r.spool.listUploads(), [], 'no upload record');

    // Parked, then appended to (reopened before its rename) and read: the bytes come back first.
    await writeStreamed(r, '/.log.txt.Xy12Ab', Buffer.from('hello '));
    const fd = await r.fs.open('/.log.txt.Xy12Ab', 1 | 0o2000);
    await r.fs.write(fd, Buffer.from('world\n'), 6);
    await r.fs.flush(fd);
    await r.fs.release(fd);
    assert.equal(await readText(r, '/.log.txt.Xy12Ab'), 'hello world\n');
    await r.fs.rename('/.log.txt.Xy12Ab', '/log.txt');
    const id = (await r.api.lookupChild(r.rootId, 'log.txt'))!;
    assert.equal(r.api.fileBytes(id).toString(), 'hello world\n');
    assert.equal(r.api.versions(id).length, 1);
    assert.deepEqual((await readdir(r.spool.journalDir)).filter((n) => n.endsWith('.json')), []);
    assert.deepEqual(await r.spool.listUploads(), []);
    assert.equal(objectKeys(r).length, before.length + 1, 'the parked object went once its bytes were back in the spool');
  });
});

test('a parked temp file whose rename fails to publish (Synapse refuses): the rename answers EIO, the bytes wait for recover by their object', async () => {
  await withHeld(async (r) => {
    await writeStreamed(r, '/.x.csv.Xy12Ab', Buffer.from('a,b\n1,2\n'));
    r.faults.failNext('createExternalS3FileHandle', 10, 503);
    await assert.rejects(r.fs.rename('/.x.csv.Xy12Ab', '/x.csv'), (err: unknown) => errnoName(err) === 'EIO');
    r.faults.clear();
    const [kept] = await r.spool.listJournal();
    assert.equal(kept?.name, 'x.csv', 'journaled under its new name');
    assert.ok(kept.s3Object, 'by its object');
    assert.equal(r.store.objects.get(`${kept.s3Object.bucket}/${kept.s3Object.key}`)?.data.toString(), 'a,b\n1,2\n');
  });
});

test('a parked temp file never renamed is published under its own name after the wait, or at unmount', async () => {
  await withHeld(async (r) => {
    await writeStreamed(r, '/.data.csv.Q1w2E3', Buffer.from('kept\n'));
    for (let i = 0; i < 200 && (await r.api.lookupChild(r.rootId, '.data.csv.Q1w2E3')) === null; i++) await new Promise((res) => setTimeout(res, 10));
    const id = await r.api.lookupChild(r.rootId, '.data.csv.Q1w2E3');
    assert.ok(id, 'published after the wait');
    assert.equal(r.api.fileBytes(id).toString(), 'kept\n');
    assert.deepEqual(await r.spool.listUploads(), []);
  }, 50);
  await withHeld(async (r) => {
    await writeStreamed(r, '/ziQ1w2E3', Buffer.from('zip was killed\n'));
    const drained = await r.fs.drain();
    assert.deepEqual(drained.published, ['/ziQ1w2E3']);
    assert.equal(r.api.fileBytes((await r.api.lookupChild(r.rootId, 'ziQ1w2E3'))!).toString(), 'zip was killed\n');
  });
});

test('a parked temp file renamed into a subfolder (same STS location) is registered there as it is: no read-back, no second upload', async () => {
  await withHeld(async (r) => {
    await r.fs.mkdir('/staging');
    await writeStreamed(r, '/.x.csv.Xy12Ab', Buffer.from('a,b\n'));
    const gets = r.store.calls['getRange'] ?? 0;
    const puts = (r.store.calls['putObject'] ?? 0) + (r.store.calls['createMultipartUpload'] ?? 0);
    await r.fs.rename('/.x.csv.Xy12Ab', '/staging/x.csv');
    await r.fs.rename('/staging/x.csv', '/x.csv');
    const id = (await r.api.lookupChild(r.rootId, 'x.csv'))!;
    assert.equal(r.api.fileBytes(id).toString(), 'a,b\n');
    assert.equal(r.api.fileHandle(r.api.versions(id)[0]!.fileHandleId!)!.fileName, 'x.csv');
    assert.equal((r.store.calls['getRange'] ?? 0) - gets, 0, 'no read-back');
    assert.equal((r.store.calls['putObject'] ?? 0) + (r.store.calls['createMultipartUpload'] ?? 0) - puts, 0, 'no second upload');
  });
});

test('a parked temp file moved out of its storage location, its read-back failing: the rename answers EIO, the bytes stay on S3 journaled (review: the object was deleted and the rename said 0)', async () => {
  await withHeld(async (r0) => {
    // Mounted one level up, the project: two STS folders, two storage locations.
    const project = await r0.api.getEntity(r0.root.parentId!);
    const { folder: other } = await r0.api.createStsFolder(project.id, 'other-location');
    const root: FsNode = { entityId: project.id, name: project.name, kind: 'dir', parentId: project.parentId, versionNumber: undefined, modifiedOn: 0, createdOn: 0 };
    const r = { ...r0, root, fs: mountOver({ ...r0, root }, { ttlMs: 60_000, heldTempMs: 60_000 }) };
    await writeStreamed(r, '/mounted/.y.csv.Xy12Ab', Buffer.from('y,z\n'));
    r.store.failNext('getRange', 1000);
    await assert.rejects(r.fs.rename('/mounted/.y.csv.Xy12Ab', '/other-location/y.csv'), (err: unknown) => errnoName(err) === 'EIO');
    r.store.failNext('getRange', 0);
    const [kept] = await r.spool.listJournal();
    assert.ok(kept?.s3Object, 'journaled by its object');
    assert.equal(kept.name, 'y.csv');
    assert.equal(kept.parentId, other.id);
    assert.equal(r.store.objects.get(`${kept.s3Object.bucket}/${kept.s3Object.key}`)?.data.toString(), 'y,z\n', 'the object is still there');
    assert.equal(await r.api.lookupChild(other.id, 'y.csv'), null, 'nothing published');
  });
});

test('a streamed temp file whose S3 upload fails at its close: under one part it waits in the spool and its rename publishes it; a failed multipart upload fails the close, is journaled as it failed, and the file is let go (nothing partial published)', async () => {
  await withHeld(async (r) => {
    r.store.failNext('putObject', 1000);
    await writeStreamed(r, '/.small.txt.Xy12Ab', Buffer.from('small\n'));
    r.store.failNext('putObject', 0);
    assert.equal(await r.api.lookupChild(r.rootId, '.small.txt.Xy12Ab'), null, 'still held');
    await r.fs.rename('/.small.txt.Xy12Ab', '/small.txt');
    const id = (await r.api.lookupChild(r.rootId, 'small.txt'))!;
    assert.equal(r.api.fileBytes(id).toString(), 'small\n', 'published from the spool by the rename');
    assert.deepEqual((await readdir(r.spool.journalDir)).filter((n) => n.endsWith('.json')), []);
  });
  await withHeld(async (r) => {
    const big = Buffer.alloc(6 * 1024 * 1024 + 5, 3);
    r.store.failNext('completeMultipartUpload', 1000);
    // Its close reports the failure (journaled at the close: QA, a kill -9 before RELEASE lost it).
    const fd = await r.fs.create('/.big.bin.Xy12Ab', 0o644);
    for (let off = 0; off < big.length; off += 1024 * 1024) await r.fs.write(fd, big.subarray(off, off + 1024 * 1024), off);
    await assert.rejects(r.fs.flush(fd), (err: unknown) => errnoName(err) === 'EIO');
    await r.fs.release(fd);
    const entries = async (): Promise<JournalEntry[]> => Promise.all((await readdir(r.spool.journalDir)).filter((n) => n.endsWith('.json'))
      .map(async (n) => JSON.parse(await readFile(path.join(r.spool.journalDir, n), 'utf8')) as JournalEntry));
    const [failed] = await entries();
    assert.ok(failed?.s3Upload, 'the open upload is journaled, as any failed publish of a streamed file');
    assert.equal(failed.inSpool, false);
    assert.equal(failed.s3Upload.parts.length, 2, 'with both parts');
    r.store.failNext('completeMultipartUpload', 0);
    // Let go as a failed publish (not held forever): the rename does not publish a partial file.
    await assert.rejects(r.fs.rename('/.big.bin.Xy12Ab', '/big.bin'));
    assert.equal(await r.api.lookupChild(r.rootId, 'big.bin'), null);
    const [after] = await entries();
    assert.deepEqual(after?.s3Upload, failed.s3Upload, 'the entry recover needs is as it was');
  });
});

test('a held temp file is journaled before its close returns (a streamed one parked first): the mount dying before RELEASE loses nothing (QA)', async () => {
  for (const streamed of [true, false]) {
    await withHeld(async (r) => {
      const fd = await r.fs.create('/.d.bin.Xy12Ab', 0o644);
      if (streamed) await r.fs.write(fd, Buffer.from('streamed bytes\n'), 0);
      else {
        await r.fs.write(fd, Buffer.from('spooled bytes\n'.slice(1)), 1);
        await r.fs.write(fd, Buffer.from('s'), 0);
      }
      await r.fs.flush(fd); // close(2) has returned; RELEASE has not come
      const raw = (await readdir(r.spool.journalDir)).filter((n) => n.endsWith('.json'));
      assert.equal(raw.length, 1, `${streamed ? 'streamed' : 'spooled'}: journaled at the close`);
      const entry = JSON.parse(await readFile(path.join(r.spool.journalDir, raw[0]!), 'utf8')) as JournalEntry;
      if (streamed) {
        assert.ok(entry.s3Object, 'by its completed object');
        assert.equal(r.store.objects.get(`${entry.s3Object.bucket}/${entry.s3Object.key}`)?.data.toString(), 'streamed bytes\n');
      } else assert.equal(await readFile(entry.spoolFile, 'utf8'), 'spooled bytes\n');
      await r.fs.release(fd);
      await r.fs.rename('/.d.bin.Xy12Ab', '/d.bin');
      assert.ok(await r.api.lookupChild(r.rootId, 'd.bin'));
    });
  }
});

test('rsync -I of an unchanged file: its parked temp renamed onto the file makes no version, registers nothing and leaves no object (QA)', async () => {
  await withHeld(async (r) => {
    await writeNew(r, '/same.txt', 'same bytes\n');
    const id = (await r.api.lookupChild(r.rootId, 'same.txt'))!;
    assert.equal((await r.fs.getattr('/same.txt')).size, 11); // rsync's lstat of the destination
    const objects = objectKeys(r);
    const registered = r.api.calls['createExternalS3FileHandle'] ?? 0;
    const updated = r.api.calls['updateEntity'] ?? 0;
    await writeStreamed(r, '/.same.txt.Xy12Ab', Buffer.from('same bytes\n'));
    await r.fs.rename('/.same.txt.Xy12Ab', '/same.txt');
    await r.fs.drain();
    assert.equal((r.api.calls['createExternalS3FileHandle'] ?? 0) - registered, 0, 'no file handle');
    assert.equal((r.api.calls['updateEntity'] ?? 0) - updated, 0, 'no update');
    assert.equal(r.api.versions(id).length, 1);
    assert.deepEqual(objectKeys(r), objects, 'the parked object is deleted');
    assert.equal(await readText(r, '/same.txt'), 'same bytes\n');
    assert.deepEqual((await readdir(r.spool.journalDir)).filter((n) => n.endsWith('.json')), []);
  });
});

test('a parked temp file read before its rename is read from its object: not brought back, not uploaded again (QA)', async () => {
  await withHeld(async (r) => {
    const data = Buffer.alloc(6 * 1024 * 1024 + 5, 9);
    await writeStreamed(r, '/.rd.bin.Xy12Ab', data);
    const uploads = (r.store.calls['putObject'] ?? 0) + (r.store.calls['createMultipartUpload'] ?? 0);
    const gets = r.store.calls['getRange'] ?? 0;
    const fd = await r.fs.open('/.rd.bin.Xy12Ab', 0);
    const buf = Buffer.alloc(data.length);
    let got = 0;
    while (got < data.length) {
      const n = await r.fs.read(fd, buf.subarray(got), Math.min(128 * 1024, data.length - got), got);
      if (n === 0) break;
      got += n;
    }
    await r.fs.release(fd);
    assert.ok(buf.subarray(0, got).equals(data), 'read whole');
    // 4 MiB at a time: not one GET per 128 KiB read() (was 49 here).
    assert.equal((r.store.calls['getRange'] ?? 0) - gets, 2, 'two GETs for 6 MiB');
    await r.fs.rename('/.rd.bin.Xy12Ab', '/rd.bin');
    const id = (await r.api.lookupChild(r.rootId, 'rd.bin'))!;
    assert.ok(r.api.fileBytes(id).equals(data));
    assert.equal((r.store.calls['putObject'] ?? 0) + (r.store.calls['createMultipartUpload'] ?? 0) - uploads, 0, 'not uploaded again');
  });
});

test('fsync of a temp file being written parks nothing: later writes go on streaming (no read-back from S3)', async () => {
  await withHeld(async (r) => {
    const fd = await r.fs.create('/.sync.log.Xy12Ab', 0o644);
    const gets = r.store.calls['getRange'] ?? 0;
    await r.fs.write(fd, Buffer.from('first\n'), 0);
    await r.fs.fsync(fd);
    await r.fs.write(fd, Buffer.from('second\n'), 6);
    await r.fs.fsync(fd);
    await r.fs.write(fd, Buffer.from('third\n'), 13);
    await r.fs.flush(fd);
    await r.fs.release(fd);
    assert.equal((r.store.calls['getRange'] ?? 0) - gets, 0, 'nothing read back');
    await r.fs.rename('/.sync.log.Xy12Ab', '/sync.log');
    assert.equal(r.api.fileBytes((await r.api.lookupChild(r.rootId, 'sync.log'))!).toString(), 'first\nsecond\nthird\n');
  });
});

test('review: a held temp file removed while open is never journaled (recover would bring it back); a parked file whose read-back fails under a write is broken, never published with a hole; fsync journals a spooled one', async () => {
  await withHeld(async (r) => {
    // Python's TemporaryFile on FUSE: mkstemp, unlink, write; a child's copy of the fd closes (FLUSH).
    for (const streamed of [true, false]) {
      const name = streamed ? '/tmpab12cd34' : '/tmpcd34ab12';
      const fd = await r.fs.create(name, 0o644);
      await r.fs.unlink(name);
      if (streamed) await r.fs.write(fd, Buffer.from('scratch'), 0);
      else {
        await r.fs.write(fd, Buffer.from('cratch'), 1);
        await r.fs.write(fd, Buffer.from('s'), 0);
      }
      await r.fs.flush(fd);
      assert.deepEqual((await readdir(r.spool.journalDir)).filter((n) => n.endsWith('.json')), [], `${streamed ? 'streamed' : 'spooled'}: nothing journaled`);
      await r.fs.release(fd);
    }
  });
  await withHeld(async (r) => {
    const fd = await r.fs.create('/tmpef56gh78', 0o644);
    await r.fs.write(fd, Buffer.from('AAAA'), 0);
    await r.fs.flush(fd); // a dup closed: parked
    r.store.failNext('getRange', 1000);
    await assert.rejects(r.fs.write(fd, Buffer.from('BBBB'), 4), (e: unknown) => errnoName(e) === 'EIO');
    r.store.failNext('getRange', 0);
    await assert.rejects(r.fs.write(fd, Buffer.from('CCCC'), 8), 'the file is broken here: no write goes on past the lost one');
    await r.fs.flush(fd).catch(() => undefined);
    await r.fs.release(fd);
    await assert.rejects(r.fs.rename('/tmpef56gh78', '/out.txt'));
    assert.equal(await r.api.lookupChild(r.rootId, 'out.txt'), null, 'nothing published');
    const [kept] = await r.spool.listJournal();
    assert.equal(r.store.objects.get(`${kept!.s3Object!.bucket}/${kept!.s3Object!.key}`)?.data.toString(), 'AAAA', 'what was written is kept, by its object');
  });
  await withHeld(async (r) => {
    const fd = await r.fs.create('/tmpij90kl12', 0o644);
    await r.fs.write(fd, Buffer.from('ata\n'), 1);
    await r.fs.write(fd, Buffer.from('d'), 0);
    const writes: Array<boolean | undefined> = [];
    const writeJournal = r.spool.writeJournal.bind(r.spool);
    r.spool.writeJournal = async (e, opts = {}) => { writes.push(opts.durable); return writeJournal(e, opts); };
    await r.fs.fsync(fd); // os.fsync before close and os.replace
    const raw = (await readdir(r.spool.journalDir)).filter((n) => n.endsWith('.json'));
    assert.equal(raw.length, 1, 'journaled at the fsync');
    assert.deepEqual(writes, [true], 'durably: the spool file and the entry are fsynced before fsync answers (review)');
    await r.fs.flush(fd);
    await r.fs.release(fd);
  });
});

test('review: rsync -a onto an unchanged file shows the time rsync set and a second pass within the TTL makes no version either', async () => {
  await withHeld(async (r) => {
    await writeNew(r, '/keep.txt', 'kept bytes\n');
    const id = (await r.api.lookupChild(r.rootId, 'keep.txt'))!;
    const t = Date.parse('2020-01-02T03:04:05Z');
    for (let pass = 0; pass < 2; pass++) {
      await r.fs.getattr('/keep.txt');
      await writeStreamed(r, '/.keep.txt.Xy12Ab', Buffer.from('kept bytes\n'));
      await r.fs.utimens('/.keep.txt.Xy12Ab', t, t);
      await r.fs.rename('/.keep.txt.Xy12Ab', '/keep.txt');
      assert.equal((await r.fs.getattr('/keep.txt')).mtime.getTime(), t, `pass ${pass}: the time rsync set`);
    }
    assert.equal(r.api.versions(id).length, 1);
    assert.equal(r.api.calls['updateEntity'] ?? 0, 0, 'no update');
  });
});

test('review: a held temp file whose journal entry cannot be written fails its close (ENOSPC); at RELEASE it is journaled, or — failing again — published as it is', async () => {
  for (const second of ['ok', 'fails'] as const) {
    await withHeld(async (r) => {
      const write = r.spool.writeJournal.bind(r.spool);
      let failures = second === 'ok' ? 1 : 2;
      r.spool.writeJournal = async (...a: Parameters<typeof write>) => {
        if (failures > 0) {
          failures--;
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        }
        return write(...a);
      };
      const fd = await r.fs.create('/.full.txt.Xy12Ab', 0o644);
      await r.fs.write(fd, Buffer.from('keep me\n'), 0);
      await assert.rejects(r.fs.flush(fd), (err: unknown) => errnoName(err) === 'ENOSPC', `${second}: the close says so`);
      await r.fs.release(fd);
      if (second === 'ok') {
        assert.equal((await readdir(r.spool.journalDir)).filter((n) => n.endsWith('.json')).length, 1, 'journaled at RELEASE');
        await r.fs.rename('/.full.txt.Xy12Ab', '/full.txt');
        assert.equal(r.api.fileBytes((await r.api.lookupChild(r.rootId, 'full.txt'))!).toString(), 'keep me\n');
      } else {
        const id = await r.api.lookupChild(r.rootId, '.full.txt.Xy12Ab');
        assert.ok(id, 'published under its own name rather than kept unjournaled');
        assert.equal(r.api.fileBytes(id).toString(), 'keep me\n');
      }
    });
  }
});

test('review: a stream moved to a subfolder while open keeps going there, its upload record naming the new folder (an orphan sweep asks STS credentials through it)', async () => {
  await withHeld(async (r) => {
    await r.fs.mkdir('/sub');
    const subId = (await r.api.lookupChild(r.rootId, 'sub'))!;
    const data = Buffer.alloc(6 * 1024 * 1024 + 5, 4);
    const fd = await r.fs.create('/moving.bin', 0o644);
    await r.fs.write(fd, data.subarray(0, 5 * 1024 * 1024 + 1), 0); // a part filled: the multipart upload and its record exist
    await r.fs.rename('/moving.bin', '/sub/moving.bin');
    await r.fs.write(fd, data.subarray(5 * 1024 * 1024 + 1), 5 * 1024 * 1024 + 1);
    const [record] = await r.spool.listUploads();
    assert.equal(record?.parentId, subId, 'the record follows the file');
    const gets = r.store.calls['getRange'] ?? 0;
    await r.fs.flush(fd);
    await r.fs.release(fd);
    assert.equal((r.store.calls['getRange'] ?? 0) - gets, 0, 'no read-back: the stream went on');
    assert.ok(r.api.fileBytes((await r.api.lookupChild(subId, 'moving.bin'))!).equals(data));
    assert.deepEqual(await r.spool.listUploads(), []);
  });
});

test('rsync --delay-updates: its `.~tmp~` folder lives in this mount only; a temp file moved in waits there unpublished, and its rename out publishes it once (QA: rsync discarded every file and exited 0)', async () => {
  await withHeld(async (r) => {
    await writeNew(r, '/old.txt', 'old\n');
    const oldId = (await r.api.lookupChild(r.rootId, 'old.txt'))!;
    const calls = (): number => Object.values(r.faults.calls).reduce((a, b) => a + (b ?? 0), 0);
    // One spooled, one streamed (an STS folder): both held, then moved into the folder.
    await writeSpooled(r, '/.new.txt.Ab12Cd', 'new file\n');
    const big = Buffer.alloc(3 * 1024 * 1024, 7);
    await writeStreamed(r, '/.old.txt.Xy34Ef', big);
    assert.ok((await r.fs.readdir('/')).includes('.new.txt.Ab12Cd'));
    const before = calls();
    await r.fs.mkdir('/.~tmp~');
    assert.equal((await r.fs.getattr('/.~tmp~')).mode & 0o170000, 0o040000, 'a directory');
    assert.ok((await r.fs.readdir('/')).includes('.~tmp~'));
    await assert.rejects(r.fs.mkdir('/.~tmp~'), (e: unknown) => errnoName(e) === 'EEXIST');
    await r.fs.rename('/.new.txt.Ab12Cd', '/.~tmp~/new.txt');
    await r.fs.rename('/.old.txt.Xy34Ef', '/.~tmp~/old.txt');
    assert.deepEqual((await r.fs.readdir('/.~tmp~')).sort(), ['new.txt', 'old.txt']);
    assert.equal((await r.fs.getattr('/.~tmp~/old.txt')).size, big.length);
    assert.equal(await readText(r, '/.~tmp~/new.txt'), 'new file\n');
    assert.equal(calls() - before, 0, 'nothing asked of Synapse: no folder, no file');
    assert.equal(await r.fs.getxattr('/.~tmp~', 'user.synapse.id'), null);
    // What does not belong there is refused before anything changes.
    await assert.rejects(r.fs.mkdir('/.~tmp~/sub'), (e: unknown) => errnoName(e) === 'EPERM');
    await assert.rejects(r.fs.rename('/.~tmp~', '/.~staging~'), (e: unknown) => errnoName(e) === 'EPERM');
    await assert.rejects(r.fs.rmdir('/.~tmp~'), (e: unknown) => errnoName(e) === 'ENOTEMPTY');
    await r.fs.mkdir('/real');
    await assert.rejects(r.fs.rename('/real', '/.~tmp~'), (e: unknown) => errnoName(e) === 'EPERM');
    // Other scratch-looking folder names are not staging folders: Synapse refuses `~`, as before.
    await assert.rejects(r.fs.mkdir('/backup~'), (e: unknown) => errnoName(e) === 'EINVAL');
    // The end of the run: each file onto its real name, then the folder goes.
    await r.fs.rename('/.~tmp~/new.txt', '/new.txt');
    await r.fs.rename('/.~tmp~/old.txt', '/old.txt');
    await r.fs.rmdir('/.~tmp~');
    assert.ok(!(await r.fs.readdir('/')).includes('.~tmp~'));
    const newId = (await r.api.lookupChild(r.rootId, 'new.txt'))!;
    assert.equal(r.api.fileBytes(newId).toString(), 'new file\n');
    assert.ok(r.api.fileBytes(oldId).equals(big), 'the next version of old.txt');
    assert.equal(r.api.versions(oldId).length, 2);
    assert.deepEqual(Object.keys(r.api.tree(r.rootId)).sort(), ['new.txt', 'old.txt', 'real'], 'no temp file, no staging folder in Synapse');
    assert.deepEqual(await r.spool.listJournal(), []);
    // A published file moved in (rsync's temp file under a name the mount does not hold, published
    // at its close) is a view there, its entity left where it was; moved out, the entity moves.
    await writeNew(r, '/.pub.txt.qwerty', 'published temp\n');
    const pubId = (await r.api.lookupChild(r.rootId, '.pub.txt.qwerty'))!;
    await r.fs.mkdir('/.~tmp~');
    await r.fs.rename('/.pub.txt.qwerty', '/.~tmp~/pub.txt');
    assert.ok(!(await r.fs.readdir('/')).includes('.pub.txt.qwerty'));
    assert.equal(await readText(r, '/.~tmp~/pub.txt'), 'published temp\n');
    await r.fs.rename('/.~tmp~/pub.txt', '/pub.txt');
    await r.fs.rmdir('/.~tmp~');
    assert.equal(await r.api.lookupChild(r.rootId, 'pub.txt'), pubId, 'the same entity, renamed');
    assert.equal(await r.api.lookupChild(r.rootId, '.pub.txt.qwerty'), null);
    // A file made in it directly (`rsync --partial-dir=.~tmp~`) is this mount's only, too.
    await r.fs.mkdir('/.~tmp~');
    await writeNew(r, '/.~tmp~/part.bin', 'partial\n');
    assert.equal(await r.api.lookupChild(r.rootId, 'part.bin'), null);
    await r.fs.unlink('/.~tmp~/part.bin');
    await r.fs.rmdir('/.~tmp~');
  });
});

test('QA: a held file is published its wait after its LAST close, not its first (`>> log.tmp` now and then made a version per append)', async () => {
  await withHeld(async (r) => {
    const appendLine = async (line: string, at: number): Promise<void> => {
      const fd = await r.fs.open('/log.tmp', 1 | 0o2000);
      await r.fs.write(fd, Buffer.from(line), at);
      await r.fs.flush(fd);
      await r.fs.release(fd);
    };
    const fd = await r.fs.create('/log.tmp', 0o644);
    await r.fs.write(fd, Buffer.from('one\n'), 0);
    await r.fs.flush(fd);
    await r.fs.release(fd);
    const wait = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));
    // Margins of 400 ms or more on the side that could fail (a loaded CI machine stalls the loop).
    await wait(500); // the scenario's own pace: the next append 500 ms after the first close
    await appendLine('two\n', 4);
    await wait(1100); // past the first close's 1.5 s, not the second's
    assert.equal(await r.api.lookupChild(r.rootId, 'log.tmp'), null, 'not published while appends keep coming');
    let id: string | null = null;
    for (let i = 0; i < 250 && !id; i++) {
      await wait(20);
      id = await r.api.lookupChild(r.rootId, 'log.tmp');
    }
    assert.ok(id, 'published after the last close\'s wait');
    assert.equal(r.api.fileBytes(id).toString(), 'one\ntwo\n');
    assert.equal(r.api.versions(id).length, 1, 'one version');
  }, 1500);
});

test('QA: a git lock renamed onto a file git removes whole later (gc.pid) stays held: never published, so a collaborator can remove it', async () => {
  await withHeld(async (r) => {
    await r.fs.mkdir('/.git');
    await writeNew(r, '/.git/gc.pid.lock', '4242 host\n');
    await r.fs.rename('/.git/gc.pid.lock', '/.git/gc.pid');
    const gitId = (await r.api.lookupChild(r.rootId, '.git'))!;
    assert.equal(await r.api.lookupChild(gitId, 'gc.pid'), null, 'not published at the rename');
    assert.equal(await readText(r, '/.git/gc.pid'), '4242 host\n');
    await r.fs.unlink('/.git/gc.pid');
    assert.equal(await r.api.lookupChild(gitId, 'gc.pid'), null);
    assert.deepEqual(await r.spool.listJournal(), [], 'nothing left for recover');
    // A lock renamed onto a real file is published there, as before.
    await writeNew(r, '/.git/config.lock', '[core]\n');
    await r.fs.rename('/.git/config.lock', '/.git/config');
    assert.ok(await r.api.lookupChild(gitId, 'config'));
  });
});

test('CI: a temp name with no capital and no digit (0.6 % of mkstemp\'s) is held when the file was made as mkstemp makes it (O_EXCL, 0600) — streamed, its S3 key and file handle name the real file; the same name made as a user\'s file is published at its close', async () => {
  const { isHeldTempName, isMkstempCreate } = await import('../../src/fs/names.js');
  const O_RDWR_CREAT_EXCL = 0o302;
  assert.equal(isMkstempCreate(0o100600, O_RDWR_CREAT_EXCL), true, 'rsync, sed -i, perl -i, tempfile');
  assert.equal(isMkstempCreate(0o100600, O_RDWR_CREAT_EXCL | 0o400000 | 0o2000000), true, 'with O_NOFOLLOW and O_CLOEXEC');
  assert.equal(isMkstempCreate(0o100644, 0o301), false, '`cp` of a 0644 file: O_EXCL with its mode');
  // Review: `cp -p`/`cp -a`, `install`, `tar x` as root and any create under umask 077 come as
  // O_EXCL with 0600 too — write-only.
  assert.equal(isMkstempCreate(0o100600, 0o301), false, '`cp -a`, `install`, `tar x`: write-only');
  assert.equal(isMkstempCreate(0o100600, 0o1101), false, 'a private file saved without O_EXCL');
  assert.equal(isMkstempCreate(0o100600, undefined), false, 'flags not known (the prebuild)');
  for (const name of ['.b.bin.yszklp', 'sedabcdef', 'XXabcdef', 'zipcodes', '.x.txt.123456', 'tmp12345678']) {
    assert.equal(isHeldTempName(name, true), true, name);
  }
  assert.equal(isHeldTempName('notes.txt', true), false, 'not a temporary name, however made');
  await withHeld(async (r) => {
    const data = Buffer.alloc(6 * 1024 * 1024 + 5, 3);
    const before = objectKeys(r);
    const fd = await r.fs.create('/.b.bin.yszklp', 0o100600, O_RDWR_CREAT_EXCL);
    for (let off = 0; off < data.length; off += 1024 * 1024) await r.fs.write(fd, data.subarray(off, off + 1024 * 1024), off);
    await r.fs.flush(fd);
    await r.fs.release(fd);
    assert.equal(await r.api.lookupChild(r.rootId, '.b.bin.yszklp'), null, 'not published at its close');
    const parked = objectKeys(r).filter((k) => !before.includes(k));
    assert.equal(parked.length, 1);
    assert.ok(parked[0]!.endsWith('/b.bin'), `its key names the file rsync renames it to (${parked[0]})`);
    await r.fs.rename('/.b.bin.yszklp', '/b.bin');
    const id = (await r.api.lookupChild(r.rootId, 'b.bin'))!;
    assert.ok(id);
    assert.ok(r.api.fileBytes(id).equals(data));
    const entity = await r.api.getEntity(id) as { dataFileHandleId?: string };
    assert.equal((await r.api.getFileHandle(String(entity.dataFileHandleId))).fileName, 'b.bin', 'the file handle names the real file');
    assert.equal(r.api.calls['deleteEntity'] ?? 0, 0, 'no temp entity to delete');

    const user = await r.fs.create('/.bashrc.backup', 0o100644, 0o1101);
    await r.fs.write(user, Buffer.from('alias ll=ls\n'), 0);
    await r.fs.flush(user);
    await r.fs.release(user);
    assert.ok(await r.api.lookupChild(r.rootId, '.bashrc.backup'), 'a user\'s file: published at its close');
  });
});

test('review: a held temp file renamed into rsync --delay-updates\' `.~tmp~` before its RELEASE waits for it, however late (1.5 s here; it waited 1 s, then failed EBUSY and the rsync with it)', async () => {
  await withHeld(async (r) => {
    const fd = await flushedOpen(r, '/.late.txt.Ab12Cd', 'late release\n');
    await r.fs.mkdir('/.~tmp~');
    const renamed = r.fs.rename('/.late.txt.Ab12Cd', '/.~tmp~/late.txt');
    await new Promise((res) => setTimeout(res, 1500));
    await r.fs.release(fd);
    await renamed;
    assert.equal(await readText(r, '/.~tmp~/late.txt'), 'late release\n');
    await r.fs.rename('/.~tmp~/late.txt', '/late.txt');
    const id = (await r.api.lookupChild(r.rootId, 'late.txt'))!;
    assert.equal(r.api.fileBytes(id).toString(), 'late release\n');
  });
});
