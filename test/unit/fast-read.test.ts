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

function recorder() {
  const events: string[] = [];
  /** Reads the C side answered per fh since last asked (what synapse_fast_take_hits reports). */
  const used = new Map<number, number>();
  const binding: FastBinding = {
    synapse_fast_window: (fh, start, buf, eof, length) => {
      events.push(buf ? `set ${fh} ${start}+${length}${eof ? ' eof' : ''}` : `clear ${fh}`);
      used.set(fh, 0);
    },
    synapse_fast_take_hits: (fh) => {
      const n = used.get(fh) ?? 0;
      used.set(fh, 0);
      return n;
    },
    synapse_fast_hits_count: () => 0,
  };
  const win = (name: string, start: number, length = 100, eof = false): ReadWindow => ({
    start, length, eof, buf: Buffer.alloc(length), release: () => events.push(`release ${name}`),
  });
  return { events, binding, win, used };
}

test('a window is set in C before the one it replaces is released; a read inside it asks for nothing', () => {
  const { events, binding, win } = recorder();
  const w = new FastReadWindows(binding);
  const asked: number[] = [];
  w.offer(3, 0, (_fd, off) => { asked.push(off); return win('a', 0); });
  w.offer(3, 50, () => assert.fail('inside the current window: nothing to ask'));
  w.offer(3, 100, (_fd, off) => { asked.push(off); return win('b', 100, 100, true); });
  assert.deepEqual(asked, [0, 100]);
  assert.deepEqual(events, ['set 3 0+100', 'set 3 100+100 eof', 'release a']);
});

test('no block to offer keeps the current window (its bytes are still right)', () => {
  const { events, binding, win } = recorder();
  const w = new FastReadWindows(binding);
  w.offer(4, 0, () => win('a', 0));
  w.offer(4, 100, () => undefined);
  assert.equal(w.windows, 1);
  assert.deepEqual(events, ['set 4 0+100']);
});

test('forget (release of the fd) clears C first, then releases; only its own window', () => {
  const { events, binding, win } = recorder();
  const w = new FastReadWindows(binding);
  w.offer(1, 0, () => win('fd1', 0));
  w.offer(4097, 0, () => win('fd4097', 0)); // same C slot as fd 1 (4,096 slots): replaces it
  assert.deepEqual(events, ['set 1 0+100', 'set 4097 0+100', 'release fd1']);
  events.length = 0;
  w.forget(1);
  assert.deepEqual(events, [], 'fd 1 no longer holds the slot');
  w.forget(4097);
  assert.deepEqual(events, ['clear 4097', 'release fd4097']);
  assert.equal(w.windows, 0);
});

test('at most maxWindows are held: the oldest goes first; clearAll lets every one go', () => {
  const { events, binding, win } = recorder();
  const w = new FastReadWindows(binding, 2);
  w.offer(1, 0, () => win('1', 0));
  w.offer(2, 0, () => win('2', 0));
  w.offer(1, 100, () => win('1b', 100)); // fd 1 renewed: now the youngest
  w.offer(3, 0, () => win('3', 0));
  assert.deepEqual(events.slice(-3), ['set 3 0+100', 'clear 2', 'release 2']);
  events.length = 0;
  w.clearAll();
  assert.deepEqual(events.sort(), ['clear 1', 'clear 3', 'release 1b', 'release 3']);
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
  const { events, binding, win, used } = recorder();
  const w = new FastReadWindows(binding);
  const notices: Array<() => boolean> = [];
  w.offer(5, 0, (_fd, _off, onDropped) => { notices.push(onDropped); return win('a', 0); });
  w.offer(5, 100, (_fd, _off, onDropped) => { notices.push(onDropped); return win('b', 100); });
  events.length = 0;
  assert.equal(notices[0]!(), false, "a's block left the cache, but a was already replaced");
  assert.deepEqual(events, []);
  used.set(5, 3); // C answered 3 reads from b since it was set
  assert.equal(notices[1]!(), true, 'still being read: keep it (the cache takes it back)');
  assert.deepEqual(events, []);
  assert.equal(notices[1]!(), false, 'no read since the last notice: let go');
  assert.deepEqual(events, ['clear 5', 'release b']);
  assert.equal(w.windows, 0);
});

test('a window the C side refuses is released at once (never pinned for nothing)', () => {
  const { events, win } = recorder();
  const binding: FastBinding = {
    synapse_fast_window: () => { throw new RangeError('window longer than its buffer'); },
    synapse_fast_take_hits: () => 0,
    synapse_fast_hits_count: () => 0,
  };
  const w = new FastReadWindows(binding);
  assert.throws(() => w.offer(6, 0, () => win('x', 0)), RangeError);
  assert.deepEqual(events, ['release x']);
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
