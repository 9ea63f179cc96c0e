/**
 * FastReadWindows (src/fs/fast-read.ts): which block the C side may copy from for each open
 * file, and — the memory-safety rule — that a window's block is released only after the C
 * table has let go of it (the binding call returns once no copy reads the old buffer). The
 * binding here records calls; the real addon is exercised through FUSE by the e2e tests
 * (status.test asserts reads were answered by it, read.test checks every byte).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kernelInvalidatesOnDirectWrite, loadDirectReadsBinding, loadDirectWritesBinding } from '../../src/fs/page-cache-bypass.js';
import { FastReadWindows, loadFastBinding, type FastBinding, type ReadWindow } from '../../src/fs/fast-read.js';
import { grantedFuseTerms, loadFuseTermsBinding, parseRequestSize, requestPages } from '../../src/fs/fuse-terms.js';

const BS = 100;

/**
 * A stand-in for the C table: `slots` direct-mapped slots on (fh, block index), as the patch's
 * (with a simpler hash, so tests can aim two windows at one slot), recording every call.
 */
function recorder(slots = 4096) {
  const events: string[] = [];
  const table = new Map<number, { fh: number; start: number; used: number }>();
  const slotOf = (fh: number, start: number): number => (fh * 7 + start / BS) % slots;
  const binding: FastBinding = {
    synapse_fast_block_size: (bytes) => { events.push(`block ${bytes}`); table.clear(); },
    synapse_fast_set: (fh, start, buf, eof, length) => {
      assert.equal(start % BS, 0, 'windows start at a block');
      assert.ok(length <= buf.length);
      events.push(`set ${fh} ${start}+${length}${eof ? ' eof' : ''}`);
      const slot = slotOf(fh, start);
      table.set(slot, { fh, start, used: 0 });
      return slot;
    },
    synapse_fast_clear: (fh, start) => {
      const slot = slotOf(fh, start);
      const cur = table.get(slot);
      if (cur?.fh === fh && cur.start === start) {
        events.push(`clear ${fh} ${start}`);
        table.delete(slot);
      }
    },
    synapse_fast_take: (fh, start) => {
      const cur = table.get(slotOf(fh, start));
      if (cur?.fh !== fh || cur.start !== start) return 0;
      const n = cur.used;
      cur.used = 0;
      return n;
    },
    synapse_fast_hits_count: () => 0,
  };
  /** C answered `n` reads from fh's window at `start`. */
  const hit = (fh: number, start: number, n: number): void => {
    const cur = table.get(slotOf(fh, start));
    assert.ok(cur?.fh === fh && cur.start === start, `no window ${fh}@${start} in C`);
    cur.used += n;
  };
  const win = (name: string, start: number, length = BS, eof = false): ReadWindow => ({
    start, length, eof, buf: Buffer.alloc(length), release: () => events.push(`release ${name}`),
  });
  const inC = (): string[] => [...table.values()].map((w) => `${w.fh}@${w.start}`).sort();
  return { events, binding, win, hit, inC };
}

test('a sequential reader holds one window: the next is set in C before the one it replaces is released; a read inside it asks for nothing', () => {
  const { events, binding, win, inC } = recorder();
  const w = new FastReadWindows(binding, BS);
  const asked: number[] = [];
  w.offer(3, 0, 'next', (_fd, off) => { asked.push(off); return win('a', 0); });
  w.offer(3, 50, 'next', () => assert.fail('inside the current window: nothing to ask'));
  w.offer(3, 100, 'next', (_fd, off) => { asked.push(off); return win('b', 100, 100, true); });
  assert.deepEqual(asked, [0, 100]);
  assert.deepEqual(events, ['block 100', 'set 3 0+100', 'set 3 100+100 eof', 'clear 3 0', 'release a']);
  assert.deepEqual(inC(), ['3@100']);
  assert.equal(w.windows, 1);
});

test('a random reader keeps every block it read in C; its next sequential window replaces only the previous sequential one', () => {
  const { events, binding, win, inC } = recorder();
  const w = new FastReadWindows(binding, BS);
  w.offer(3, 510, 'keep', () => win('k5', 500));
  w.offer(3, 120, 'keep', () => win('k1', 100));
  w.offer(3, 150, 'keep', () => assert.fail('already held'));
  w.offer(3, 900, 'next', () => win('n9', 900));
  w.offer(3, 1000, 'next', () => win('n10', 1000));
  assert.deepEqual(inC(), ['3@100', '3@1000', '3@500']);
  assert.deepEqual(events.filter((e) => e.startsWith('release')), ['release n9']);
  assert.equal(w.windows, 3);
});

test('no block to offer keeps the current window (its bytes are still right)', () => {
  const { events, binding, win } = recorder();
  const w = new FastReadWindows(binding, BS);
  w.offer(4, 0, 'next', () => win('a', 0));
  w.offer(4, 100, 'next', () => undefined);
  assert.equal(w.windows, 1);
  assert.deepEqual(events, ['block 100', 'set 4 0+100']);
});

test('a window that takes another\'s C slot releases that one (after C let go); forget clears C first, then releases, only its own', () => {
  const { events, binding, win, inC } = recorder(16);
  const w = new FastReadWindows(binding, BS);
  w.offer(1, 0, 'keep', () => win('fd1', 0)); // slot 7
  w.offer(1, 900, 'keep', () => win('fd1b', 900)); // slot 0
  w.offer(3, 200, 'keep', () => win('fd3', 200)); // slot 23 % 16 = 7: replaces fd 1's block 0
  assert.deepEqual(events.slice(1), ['set 1 0+100', 'set 1 900+100', 'set 3 200+100', 'release fd1']);
  assert.deepEqual(inC(), ['1@900', '3@200']);
  events.length = 0;
  w.forget(1);
  assert.deepEqual(events, ['clear 1 900', 'release fd1b']);
  w.forget(1);
  w.forget(3);
  assert.deepEqual(events.slice(2), ['clear 3 200', 'release fd3']);
  assert.equal(w.windows, 0);
});

test('at most maxWindows are held: the oldest goes first; clearAll lets every one go', () => {
  const { events, binding, win } = recorder();
  const w = new FastReadWindows(binding, BS, 2);
  w.offer(1, 0, 'next', () => win('1', 0));
  w.offer(2, 0, 'next', () => win('2', 0));
  w.offer(1, 100, 'next', () => win('1b', 100)); // fd 1 moved on: now the youngest
  w.offer(3, 0, 'next', () => win('3', 0));
  assert.deepEqual(events.slice(-3), ['set 3 0+100', 'clear 2 0', 'release 2']);
  events.length = 0;
  w.clearAll();
  assert.deepEqual(events.sort(), ['clear 1 100', 'clear 3 0', 'release 1b', 'release 3']);
});

test('the patched addon is found after npm ci (else every read would take the slow path unnoticed)', () => {
  // scripts/fix-fuse-native.mjs rebuilds fuse-native with the fast path at install; CI and the
  // README's set-up have a compiler, so its absence here is a broken install, not a fallback.
  const binding = loadFastBinding();
  assert.ok(binding, 'fuse-native was not rebuilt with the read fast path (run npm ci; see its output)');
  assert.equal(typeof binding.synapse_fast_hits_count(), 'number');
  assert.equal(loadFastBinding({ SYNAPSE_MOUNT_FAST_READ: '0' }), undefined, 'SYNAPSE_MOUNT_FAST_READ=0 turns it off');
  // The same patch has the page-cache switches: write-only opens (v4), read-only opens (v6).
  assert.ok(loadDirectWritesBinding(), 'fuse-native was patched by an older version (rm -rf node_modules/fuse-native && npm ci)');
  assert.ok(loadDirectReadsBinding(), 'fuse-native was patched by an older version (rm -rf node_modules/fuse-native && npm ci)');
  // v5 also negotiates the FUSE connection's terms (fuse-terms.ts).
  assert.ok(loadFuseTermsBinding(), 'fuse-native was patched by an older version (rm -rf node_modules/fuse-native && npm ci)');
});

test('write-only opens bypass the page cache by default only on kernels that keep readers coherent (Linux ≥ 6.6)', () => {
  for (const [release, on] of [
    ['6.18.44-fc-v1098', true], ['6.6.0', true], ['6.10.3-arch1', true], ['7.0.1', true],
    ['6.5.13', false], ['6.1.0-28-amd64', false], ['5.15.0-119-generic', false], ['4.18.0-553.el8_10.x86_64', false], ['', false], ['weird', false],
  ] as const) {
    assert.equal(kernelInvalidatesOnDirectWrite(release), on, release);
  }
});

test("a window whose block left the cache: kept while C reads from it, else cleared in C, then released; a replaced window's notice does nothing", () => {
  const { events, binding, win, hit } = recorder();
  const w = new FastReadWindows(binding, BS);
  const notices: Array<() => boolean> = [];
  w.offer(5, 0, 'next', (_fd, _off, onDropped) => { notices.push(onDropped); return win('a', 0); });
  w.offer(5, 100, 'next', (_fd, _off, onDropped) => { notices.push(onDropped); return win('b', 100); });
  events.length = 0;
  assert.equal(notices[0]!(), false, "a's block left the cache, but a was already replaced");
  assert.deepEqual(events, []);
  hit(5, 100, 3); // C answered 3 reads from b since it was set
  assert.equal(notices[1]!(), true, 'still being read: keep it (the cache takes it back)');
  assert.deepEqual(events, []);
  assert.equal(notices[1]!(), false, 'no read since the last notice: let go');
  assert.deepEqual(events, ['clear 5 100', 'release b']);
  assert.equal(w.windows, 0);
});

test('a window the C side refuses is released at once (never pinned for nothing)', () => {
  const { events, win, binding: base } = recorder();
  const binding: FastBinding = { ...base, synapse_fast_set: () => { throw new RangeError('window longer than its buffer or a block'); } };
  const w = new FastReadWindows(binding, BS);
  assert.throws(() => w.offer(6, 0, 'next', () => win('x', 0)), RangeError);
  assert.deepEqual(events, ['block 100', 'release x']);
  assert.equal(w.windows, 0);
});

test('FUSE terms: --max-request-size maps to whole pages within 128K–1M; the granted terms read back as the kernel gave them', () => {
  assert.equal(requestPages(), 256);
  assert.equal(requestPages(1024 * 1024), 256);
  assert.equal(requestPages(512 * 1024 + 100), 128);
  assert.equal(requestPages(128 * 1024), 32);
  assert.equal(requestPages(4096), 32, 'never below libfuse 2\'s own 32 pages');
  assert.equal(parseRequestSize('1M'), 1024 * 1024);
  assert.equal(parseRequestSize('256K'), 256 * 1024);
  assert.throws(() => parseRequestSize('2M'), /outside 128K–1M/);
  assert.throws(() => parseRequestSize('64K'), /outside 128K–1M/);
  assert.throws(() => parseRequestSize('lots'), /not a size/);
  // [initDone, kernelMinor, maxPages, maxWrite, allowMmap, largestRead, largestWrite]
  assert.deepEqual(grantedFuseTerms([1, 45, 256, 1048576, 1, 1048576, 1048528], 256), {
    kernelProtocol: '7.45', maxReadBytes: 1048576, maxWriteBytes: 1048576, directIoSharedMmap: true, largestRead: 1048576, largestWrite: 1048528,
  });
  // A kernel without FUSE_MAX_PAGES (< 4.20): libfuse's 32 pages; writes never above them.
  assert.deepEqual(grantedFuseTerms([1, 27, 0, 1048576, 0, 131072, 131072], 256), {
    kernelProtocol: '7.27', maxReadBytes: 131072, maxWriteBytes: 131072, directIoSharedMmap: false, largestRead: 131072, largestWrite: 131072,
  });
  // An admin's lower fs.fuse.max_pages_limit (Linux ≥ 6.13): the kernel takes the smaller, silently.
  assert.equal(grantedFuseTerms([1, 45, 256, 1048576, 0, 0, 0], 64).maxReadBytes, 256 * 1024);
  assert.equal(grantedFuseTerms([1, 45, 256, 1048576, 0, 0, 0], 64).maxWriteBytes, 256 * 1024);
  // Before INIT, or the INIT reply left alone (--max-request-size 128K without --direct-io).
  assert.deepEqual(grantedFuseTerms([0, 0, 0, 0, 0, 0, 0]), {
    maxReadBytes: 131072, maxWriteBytes: 131072, directIoSharedMmap: false, largestRead: 0, largestWrite: 0,
  });
  assert.deepEqual(grantedFuseTerms(undefined).maxReadBytes, 131072, 'the prebuild addon: libfuse 2\'s terms');
});
