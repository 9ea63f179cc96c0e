import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cacheLayout } from '../../src/fs/cache-layout.js';

const MiB = 1024 * 1024;

test('--cache-size is shared out within itself from about five blocks up: a quarter (≤ 64 MiB) readahead, 3–4 blocks probation, the rest cached', () => {
  const d = cacheLayout(512 * MiB, 8 * MiB);
  assert.deepEqual(d, { readaheadBytes: 64 * MiB, probationBytes: 32 * MiB, mainBytes: 416 * MiB, scanAfterBytes: 32 * MiB, totalBytes: 512 * MiB });
  for (const [cache, block] of [[48, 8], [64, 8], [8, 1], [6, 1], [2048, 16]] as const) {
    const l = cacheLayout(cache * MiB, block * MiB);
    assert.equal(l.totalBytes, cache * MiB, `${cache} MiB of ${block} MiB blocks`);
    assert.ok(l.readaheadBytes >= block * MiB && l.probationBytes >= 3 * block * MiB && l.mainBytes >= block * MiB);
  }
});

test('QA: under five blocks the cache holds more than --cache-size, and says how much (the CLI warns, status shows it)', () => {
  assert.equal(cacheLayout(24 * MiB, 8 * MiB).totalBytes, 40 * MiB);
  assert.equal(cacheLayout(24 * MiB, 16 * MiB).totalBytes, 80 * MiB);
  assert.equal(cacheLayout(4 * MiB, 1 * MiB).totalBytes, 5 * MiB);
});
