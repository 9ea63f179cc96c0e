/**
 * A tool's temporary file (names.ts isHeldTempName: rsync's `.<name>.XXXXXX`, sed -i's
 * `sedXXXXXX`, zip's `ziXXXXXX`) is published once, under the name it is renamed to after its
 * last close — never as an entity of its own that the rename must then delete (which a
 * collaborator without DELETE could not: QA) — and, not renamed, under its own name a moment
 * later or at unmount.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeReal, readText, writeNew } from './fs-wiring.js';
import { rm } from 'node:fs/promises';

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
    await writeNew(r, '/.f.txt.Xy12Ab', 'new\n');
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
    await writeNew(r, '/sedAb3dEf', 'edited\n');
    await r.fs.rename('/sedAb3dEf', '/notes.txt');
    assert.equal(await readText(r, '/notes.txt'), 'edited\n');
    const id = (await r.api.lookupChild(r.rootId, 'notes.txt'))!;
    assert.equal(r.api.fileBytes(id).toString(), 'edited\n');
    assert.equal(await r.api.lookupChild(r.rootId, 'sedAb3dEf'), null);
  });
});

test('a temp-named file never renamed is published under its own name a moment after its last close, or at unmount', async () => {
  await withHeld(async (r) => {
    await writeNew(r, '/.data.csv.Q1w2E3', 'kept\n');
    for (let i = 0; i < 200 && (await r.api.lookupChild(r.rootId, '.data.csv.Q1w2E3')) === null; i++) await new Promise((res) => setTimeout(res, 10));
    const id = await r.api.lookupChild(r.rootId, '.data.csv.Q1w2E3');
    assert.ok(id, 'published after the wait');
    assert.equal(r.api.fileBytes(id).toString(), 'kept\n');
  }, 50);
  await withHeld(async (r) => {
    await writeNew(r, '/ziQ1w2E3', 'zip was killed\n');
    const drained = await r.fs.drain();
    assert.deepEqual(drained.published, ['/ziQ1w2E3']);
    assert.equal(r.api.fileBytes((await r.api.lookupChild(r.rootId, 'ziQ1w2E3'))!).toString(), 'zip was killed\n');
  });
});

test('a temp-named file renamed to a scratch name stays listed, as a scratch file; real-looking names are not held', async () => {
  await withHeld(async (r) => {
    await writeNew(r, '/.f.txt.Xy12Ab', 'backup\n');
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
