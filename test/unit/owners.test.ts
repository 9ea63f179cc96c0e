import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Owners } from '../../src/fs/owners.js';

const mountOwner = { uid: 0, gid: 50 };
const stat = { uid: 0, gid: 50, mode: 0o100644 };
const ownerOf = (o: Owners, path: string): string => {
  const s = o.apply(path, stat);
  return `${s.uid}:${s.gid}`;
};

test('what another user creates shows as theirs (the group stays the mount\'s); the mount owner\'s and unknown callers\' stay the mount owner\'s', () => {
  const o = new Owners(mountOwner);
  o.created('/a', 1000);
  o.created('/b', 0);
  o.created('/c', undefined); // prebuilt addon: no caller
  o.created('/d', 0xffffffff); // libfuse had no context: unknown, never root's by accident
  assert.equal(ownerOf(o, '/a'), '1000:50');
  assert.equal(ownerOf(o, '/b'), '0:50');
  assert.equal(ownerOf(o, '/c'), '0:50');
  assert.equal(ownerOf(o, '/d'), '0:50');
  assert.equal(o.apply('/b', stat), stat, 'no copy when nothing changes');
  o.created('/a', 0); // made again by the mount owner
  assert.equal(ownerOf(o, '/a'), '0:50');
});

test('renames move an owner (a folder\'s contents too) and replace the target\'s; unlink forgets', () => {
  const o = new Owners(mountOwner);
  o.created('/d', 1000);
  o.created('/d/f', 1000);
  o.created('/d/sub/g', 1001);
  o.created('/dx', 1002); // a sibling whose name starts like the folder's
  o.created('/t', 1003);
  o.renamed('/d', '/e', true);
  assert.equal(ownerOf(o, '/d/f'), '0:50');
  assert.equal(ownerOf(o, '/e'), '1000:50');
  assert.equal(ownerOf(o, '/e/f'), '1000:50');
  assert.equal(ownerOf(o, '/e/sub/g'), '1001:50');
  assert.equal(ownerOf(o, '/dx'), '1002:50');
  // A file onto another: the target's owner goes with the replaced file.
  o.renamed('/e/f', '/t', false);
  assert.equal(ownerOf(o, '/t'), '1000:50');
  assert.equal(ownerOf(o, '/e/f'), '0:50');
  // The mount owner's file onto another user's: the mount owner's.
  o.renamed('/plain', '/dx', false);
  assert.equal(ownerOf(o, '/dx'), '0:50');
  o.removed('/t');
  assert.equal(ownerOf(o, '/t'), '0:50');
});
