/**
 * SpoolFile.md5(): incremental for files written in order; read back once per content for the
 * rest (a held temporary file written out of order was read back for its journal entry, then
 * again for its publish).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Spool, type SpoolFile } from '../../src/fs/spool.js';

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

async function withSpoolFile(fn: (f: SpoolFile) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'spool-md5-'));
  try {
    const spool = new Spool(dir);
    await spool.init();
    const f = await spool.create();
    await fn(f);
    await f.remove();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('an out-of-order file is read back once per content: a write or truncate reads it again', () => withSpoolFile(async (f) => {
  await f.write(Buffer.from('world'), 6);
  await f.write(Buffer.from('hello '), 0);
  assert.equal(await f.md5(), md5(Buffer.from('hello world')));
  // Behind its back (nothing in the mount does this): the answer is the remembered one, so
  // the second call did not read the file.
  await writeFile(f.file, 'HELLO WORLD');
  assert.equal(await f.md5(), md5(Buffer.from('hello world')), 'not read back again');
  await f.write(Buffer.from('!'), 11);
  assert.equal(await f.md5(), md5(Buffer.from('HELLO WORLD!')), 'a write: read back');
  await f.truncate(5);
  assert.equal(await f.md5(), md5(Buffer.from('HELLO')), 'a truncate: read back');
  // A write while it is being read back: that answer is not kept for later.
  const during = f.md5();
  await f.write(Buffer.from('?'), 5);
  await during;
  assert.equal(await f.md5(), md5(Buffer.from('HELLO?')));
}));

test('a read-back that ran while a write was landing is not remembered', () => withSpoolFile(async (f) => {
  await f.write(Buffer.from('bbbb'), 4);
  await f.write(Buffer.from('aaaa'), 0); // out of order: no incremental hash
  // Hold the next write's bytes back until the read-back is done (a failed part saved to the
  // spool while a publish hashes, say).
  const fh = (f as unknown as { fh: { write: (...a: unknown[]) => Promise<unknown> } }).fh;
  const realWrite = fh.write.bind(fh);
  let open!: () => void;
  const gate = new Promise<void>((res) => { open = res; });
  fh.write = async (...a: unknown[]) => { await gate; return realWrite(...a); };
  const writing = f.write(Buffer.from('AAAA'), 0);
  assert.equal(await f.md5(), md5(Buffer.from('aaaabbbb')), 'the bytes there when it read');
  open();
  await writing;
  fh.write = realWrite;
  assert.equal(await f.md5(), md5(Buffer.from('AAAAbbbb')), 'read back again once the write landed');
}));
