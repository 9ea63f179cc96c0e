/**
 * preflight's verdict on what is mounted at the mountpoint, from a given mountinfo: an autofs
 * automount trigger (x-systemd.automount) is refused before anything touches the path; anything
 * else on top is "already mounted". The real-mount cases (busy, stale, not empty) are in
 * e2e/cli-mount. Needs /dev/fuse and fusermount (checked first), as every e2e test does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { canonicalMountpoint, mountedType, mountIdAt, mountinfoPath, mountPresent, preflight, typeMountedAt } from '../../src/fs/preflight.js';

const line = (id: number, dir: string, type: string): string => `${id} 1 0:${id} / ${dir} rw,relatime shared:1 - ${type} ${type}-src rw`;
/** A mount table: the root filesystem, then these lines. */
const table = (...lines: string[]): string => ['1 0 0:1 / / rw - ext4 /dev/root rw', ...lines].join('\n');

/** `fn` in a fresh directory (its real path: no symlink in it), removed afterwards. */
async function inTempDir(prefix: string, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await realpath(await mkdtemp(path.join(os.tmpdir(), prefix)));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('an automount trigger is refused with a clear line (touching it would wait for this very mount); other mounts on top are refused', async () => {
  await inTempDir('preflight-', async (dir) => {
    await writeFile(path.join(dir, 'x'), '');
    const info = (...types: string[]) => async () => table(...types.map((t, i) => line(i + 10, dir, t)));
    await assert.rejects(preflight(dir, info('autofs')), /is an automount point \(autofs\); synapse-mount cannot be started by an automount/);
    assert.equal(await mountedType(dir, info('autofs', 'fuse.synapse-mount')), 'fuse.synapse-mount', 'the top entry counts');
    await assert.rejects(preflight(dir, info('autofs', 'fuse.synapse-mount')), /already mounted \(fuse\.synapse-mount\)/);
    await assert.rejects(preflight(dir, info('tmpfs')), /already mounted \(tmpfs\)/);
    await assert.rejects(preflight(dir, info()), /mountpoint is not empty/);
  });
});

test('a mountpoint is named as the kernel names it: absolute, symlinks resolved, no trailing slash; mountinfo escapes decoded', async () => {
  await inTempDir('canonical-', async (base) => {
    const dir = path.join(base, 'with space');
    await mkdir(dir);
    await symlink(dir, path.join(base, 'link'));
    await symlink('link', path.join(base, 'link2')); // a relative link to a link
    assert.equal(canonicalMountpoint(`${dir}/`), dir);
    assert.equal(canonicalMountpoint(path.join(base, 'link')), dir);
    assert.equal(canonicalMountpoint(path.join(base, 'link2')), dir);
    assert.equal(canonicalMountpoint(path.relative(process.cwd(), dir)), dir);
    assert.equal(canonicalMountpoint(path.join(base, 'missing', 'x')), path.join(base, 'missing', 'x'), 'a missing path: as given, made absolute');
    assert.equal(canonicalMountpoint('/'), '/');
    assert.equal(mountinfoPath('/a\\040b\\134c\\011d'), '/a b\\c\td');
    const info = table(line(10, dir.replace(/ /g, '\\040'), 'fuse.synapse-mount'));
    assert.equal(typeMountedAt(dir, info), 'fuse.synapse-mount');
    assert.equal(await mountedType(path.join(base, 'link'), async () => info), 'fuse.synapse-mount', 'through the symlink');
  });
});

test('review: a path mountinfo lists is not read as a link (an automount there would wait for this very mount); a mount is known by id and device', async () => {
  await inTempDir('canonical-', async (base) => {
    const real = path.join(base, 'real');
    await mkdir(real);
    const at = path.join(base, 'auto');
    await symlink(real, at); // stands for a path whose readlink would block
    const info = table(line(30, at, 'autofs'));
    assert.equal(canonicalMountpoint(at, 0, info), at, 'listed: taken as it is');
    assert.equal(canonicalMountpoint(at, 0, ''), real, 'not listed: the link is followed');
    const id = mountIdAt(at, info);
    assert.equal(id, '30 0:30');
    assert.ok(mountPresent(id!, info));
    assert.ok(mountPresent(id!, info.replace(at, path.join(base, 'renamed'))), 'a folder above it renamed: the same mount');
    assert.ok(!mountPresent(id!, table(line(31, at, 'autofs'))), 'another mount at the path');
  });
});
