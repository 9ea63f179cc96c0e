/**
 * recover (src/cli/recover-command.ts) against what changes in Synapse while it runs: it checks
 * each entry, uploads, then commits — another client may take the file's name, or make a new
 * version, in between. Through the real wiring (fs-wiring.ts) over the in-memory Synapse and S3.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { recoverAll } from '../../src/cli/recover-command.js';
import { transferOver, withReal, writeNew, type Real } from './fs-wiring.js';

const O_WRONLY = 1;
const O_TRUNC = 0o1000;

/** A new file whose publish failed (Synapse refused its creation): journaled for recover. */
async function journaledNewFile(r: Real, name: string, text: string): Promise<void> {
  r.faults.failNext('createEntity', 1, 503);
  const fd = await r.fs.create(`/${name}`, 0o644);
  await r.fs.write(fd, Buffer.from(text), 0);
  await assert.rejects(r.fs.flush(fd), /503/);
  await r.fs.release(fd);
  const entries = await r.spool.listJournal();
  assert.equal(entries.length, 1, 'journaled');
  assert.equal(entries[0]!.entityId, undefined, 'a new file: no entity yet');
}

/** Runs `during` once recover has checked its entry and is about to create the file. */
function beforeCreate(r: Real, during: () => Promise<unknown>): void {
  const createEntity = r.faults.createEntity.bind(r.faults);
  let once = true;
  r.faults.createEntity = async (entity) => {
    if (once) {
      once = false;
      await during();
    }
    return createEntity(entity);
  };
}

test('recover of a new file whose name another client takes during its upload: a conflict, their file untouched; --force makes ours its next version', async () => {
  // Review helper-81 #7: the bytes became the other client's file's next version, burying it.
  await withReal(async (r) => {
    await journaledNewFile(r, 'n.txt', 'ours, from before\n');
    const { publisher } = transferOver(r);
    let theirs = '';
    beforeCreate(r, async () => { theirs = (await r.remote.putFile(r.rootId, 'n.txt', Buffer.from('theirs, newer\n'))).id; });
    const [first] = await recoverAll(r.faults, publisher, r.spool, undefined, () => r.store);
    assert.equal(first?.outcome, 'conflict', first?.error);
    assert.match(first!.error ?? '', /a file named n\.txt \(syn\d+\) was created there since.*--force/);
    assert.equal(r.api.fileBytes(theirs).toString(), 'theirs, newer\n', 'their file keeps its bytes');
    assert.equal(r.api.versions(theirs).length, 1, 'and no version of ours on top');
    assert.equal((await r.spool.listJournal()).length, 1, 'ours still waits for recover');

    const [forced] = await recoverAll(r.faults, publisher, r.spool, undefined, () => r.store, { force: true });
    assert.equal(forced?.outcome, 'published', forced?.error);
    assert.equal(r.api.fileBytes(theirs).toString(), 'ours, from before\n');
    assert.deepEqual(await r.spool.listJournal(), []);
  });
});

test('recover of a new file whose name is free: created, once', async () => {
  await withReal(async (r) => {
    await journaledNewFile(r, 'free.txt', 'ours\n');
    const { publisher } = transferOver(r);
    const [result] = await recoverAll(r.faults, publisher, r.spool, undefined, () => r.store);
    assert.equal(result?.outcome, 'published', result?.error);
    const id = r.api.resolvePath(r.rootId, '/free.txt')!.id;
    assert.equal(r.api.fileBytes(id).toString(), 'ours\n');
    assert.equal(r.api.versions(id).length, 1);
  });
});

test('recover of a save whose file another client deletes during its upload: a conflict (as deleted before), not a failure', async () => {
  // Review helper-81 #7: the commit met Synapse's 404 and recover said `failed` with it.
  await withReal(async (r) => {
    await writeNew(r, '/d.txt', 'v1\n');
    const id = r.api.resolvePath(r.rootId, '/d.txt')!.id;
    r.faults.failNext('updateEntity', 1, 503);
    const fd = await r.fs.open('/d.txt', O_WRONLY | O_TRUNC);
    await r.fs.truncate('/d.txt', 0);
    await r.fs.write(fd, Buffer.from('our save\n'), 0);
    await assert.rejects(r.fs.flush(fd), /503/);
    await r.fs.release(fd);
    assert.equal((await r.spool.listJournal())[0]?.entityId, id);
    const { publisher } = transferOver(r);
    const updateEntity = r.faults.updateEntity.bind(r.faults);
    let once = true;
    r.faults.updateEntity = async (entity) => {
      if (once) {
        once = false;
        await r.remote.trash(id);
      }
      return updateEntity(entity);
    };
    const [result] = await recoverAll(r.faults, publisher, r.spool, undefined, () => r.store);
    assert.equal(result?.outcome, 'conflict', result?.error);
    assert.match(result!.error ?? '', /was deleted since.*--force/);
    assert.equal((await r.spool.listJournal()).length, 1, 'still waiting for recover');
  });
});
