/** mkdir -p that always ends (src/fs/make-dirs.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeDirs, makeDirsSync } from '../../src/fs/make-dirs.js';

test('makeDirs creates missing levels (0700), accepts an existing directory, and fails — never spins — where the kernel refuses', async () => {
  const base = await mkdtemp(path.join(os.tmpdir(), 'mkd-'));
  try {
    const deep = path.join(base, 'a', 'b', 'c');
    await makeDirs(deep);
    assert.ok((await stat(deep)).isDirectory());
    assert.equal((await stat(deep)).mode & 0o777, 0o700);
    await makeDirs(deep);
    makeDirsSync(path.join(base, 'a', 's', 't'));
    assert.ok((await stat(path.join(base, 'a', 's', 't'))).isDirectory());
    await writeFile(path.join(base, 'file'), 'x');
    await assert.rejects(makeDirs(path.join(base, 'file', 'sub')), { code: 'ENOTDIR' });
    assert.throws(() => makeDirsSync(path.join(base, 'file', 'sub')), { code: 'ENOTDIR' });
    // Node's recursive mkdir loops forever here (procfs: ENOENT for the child, EEXIST for /proc).
    await assert.rejects(makeDirs('/proc/synapse-mount-nope/spool'), { code: 'ENOENT' });
    assert.throws(() => makeDirsSync('/proc/synapse-mount-nope'), { code: 'ENOENT' });
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});
