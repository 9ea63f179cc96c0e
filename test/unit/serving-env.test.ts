import { test } from 'node:test';
import assert from 'node:assert/strict';
import { servingProcessEnv } from '../../src/cli/serving-env.js';

test('the serving process gets huge-page malloc, keeping the user\'s own glibc tunables', () => {
  assert.equal(servingProcessEnv({ PATH: '/bin' })['GLIBC_TUNABLES'], 'glibc.malloc.hugetlb=1');
  assert.equal(servingProcessEnv({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' })['GLIBC_TUNABLES'],
    'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1');
  // A user who chose a hugetlb setting (0 = off, 2 = hugetlbfs) keeps it.
  assert.equal(servingProcessEnv({ GLIBC_TUNABLES: 'glibc.malloc.hugetlb=0' })['GLIBC_TUNABLES'], 'glibc.malloc.hugetlb=0');
  assert.equal(servingProcessEnv({ PATH: '/bin' })['PATH'], '/bin');
});
