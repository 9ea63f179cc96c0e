#!/usr/bin/env node
// Install step (`postinstall`: run by `npm ci` in a checkout and by `npm install -g` of the packed
// tarball, which never runs `prepare`): patch fuse-native 2.2.6's C source and build the addon
// locally; node-gyp-build prefers build/Release over the bundled prebuild. Two patches:
//
//  1. utimens: fuse-native passes the access time twice (FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)),
//     so a filesystem never learns the mtime that `rsync -a`, `cp -p` and `tar x` set.
//  2. A read fast path (src/fs/fast-read.ts says how the mount uses it). Every FUSE read — 8,192
//     per GiB, libfuse 2 caps them at 128 KiB — went to the JS thread and back: two thread
//     wake-ups, N-API objects and a copy, about half the mount's CPU on a cold sequential read.
//     The mount now tells the addon, per open file, one block of that file that is in memory
//     (`synapse_fast_window(fh, start, buffer, eof)`); a read inside it is copied on libfuse's
//     own thread and never reaches JS. A read outside it goes to JS as before, which is where
//     readahead is planned and the next block is handed over. A mutex guards the windows (held
//     for one copy of at most 128 KiB; not a read-write lock, whose readers could starve the
//     JS thread): setting or clearing one waits for a copy in progress, so once the call
//     returns the old buffer is the mount's again.
//
//  3. Write-only opens bypass the page cache (FOPEN_DIRECT_IO) once the mount asks for it
//     (`synapse_direct_writes(true)`; fuse-adapter.ts says why). Decided here, on libfuse's
//     thread before the open reaches JS, because fuse-native's open callback has no way to set
//     fuse_file_info's flags.
//
// If the build cannot run (no compiler or Node headers, a read-only tree), the prebuild stays:
// utimens falls back to the access time and every read goes through JS — the mount still works;
// the README says so. As a postinstall this must never fail the user's install: every problem is
// a warning and exit 0.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
let dir;
try {
  dir = path.dirname(require.resolve('fuse-native/package.json'));
} catch {
  process.exit(0);
}
const src = path.join(dir, 'fuse-native.c');
const built = path.join(dir, 'build', 'Release', 'fuse.node');
const keepPrebuild = (why) => {
  console.warn(`synapse-mount: ${why}; using fuse-native's prebuild (utimens will see access times only, reads take the slower path, and written files go through the page cache)`);
  process.exit(0);
};
let text;
try {
  text = readFileSync(src, 'utf8');
} catch (err) {
  keepPrebuild(`cannot read ${src} (${err.code ?? err.message})`);
}
const original = text;

const UTIMENS_BUG = 'FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)';
const UTIMENS_FIX = 'FUSE_UINT64_TO_INTS_ARGV(l->mtime, 5)';
text = text.replace(UTIMENS_BUG, UTIMENS_FIX);

const FAST_MARK = '/* synapse-mount read fast path v4 */';
const FAST_CODE = `${FAST_MARK}
#include <fcntl.h>
#define SYNAPSE_FAST_SLOTS 4096
typedef struct {
  uint64_t fh;
  uint64_t start;
  uint64_t len;
  int eof;
  char *data;
  /* Reads answered from this window since it was set or last asked (synapse_fast_take_hits). */
  uint64_t used;
} synapse_fast_slot_t;
static synapse_fast_slot_t synapse_fast_slots[SYNAPSE_FAST_SLOTS];
static uv_mutex_t synapse_fast_lock;
static uv_once_t synapse_fast_once = UV_ONCE_INIT;
static uint64_t synapse_fast_hits = 0;

/* Once per process, whatever loads the addon (a worker thread loading it again must not
   re-create a lock in use); not inside assert(), which NDEBUG would compile away. */
static void synapse_fast_init (void) {
  if (uv_mutex_init(&synapse_fast_lock) != 0) abort();
}

/* On a libfuse thread: the bytes if [offset, offset+len) lies in fh's window, else -1. */
static int synapse_fast_read (struct fuse_file_info *info, char *buf, size_t len, off_t offset) {
  if (info == NULL || offset < 0) return -1;
  int res = -1;
  uv_mutex_lock(&synapse_fast_lock);
  synapse_fast_slot_t *s = &synapse_fast_slots[info->fh % SYNAPSE_FAST_SLOTS];
  if (s->data != NULL && s->fh == info->fh && (uint64_t) offset >= s->start) {
    uint64_t rel = (uint64_t) offset - s->start;
    if (rel + len <= s->len) {
      memcpy(buf, s->data + rel, len);
      res = (int) len;
    } else if (s->eof) {
      size_t n = rel < s->len ? (size_t) (s->len - rel) : 0;
      if (n > 0) memcpy(buf, s->data + rel, n);
      res = (int) n;
    }
    if (res >= 0) s->used++;
  }
  uv_mutex_unlock(&synapse_fast_lock);
  if (res >= 0) __atomic_add_fetch(&synapse_fast_hits, 1, __ATOMIC_RELAXED);
  return res;
}

/* synapse_fast_window(fh, start, buffer | null, eof, length): set or clear fh's window. */
NAPI_METHOD(synapse_fast_window) {
  NAPI_ARGV(5)
  NAPI_ARGV_UINT32(fh, 0)
  double start;
  NAPI_STATUS_THROWS(napi_get_value_double(env, argv[1], &start))
  napi_valuetype type;
  NAPI_STATUS_THROWS(napi_typeof(env, argv[2], &type))
  char *data = NULL;
  size_t size = 0;
  if (type != napi_null && type != napi_undefined) {
    NAPI_STATUS_THROWS(napi_get_buffer_info(env, argv[2], (void **) &data, &size))
  }
  bool eof = false;
  NAPI_STATUS_THROWS(napi_get_value_bool(env, argv[3], &eof))
  uint32_t length;
  NAPI_STATUS_THROWS(napi_get_value_uint32(env, argv[4], &length))
  if (data != NULL && length > size) {
    napi_throw_range_error(env, NULL, "window longer than its buffer");
    return NULL;
  }
  uv_mutex_lock(&synapse_fast_lock);
  synapse_fast_slot_t *s = &synapse_fast_slots[fh % SYNAPSE_FAST_SLOTS];
  s->fh = fh;
  s->start = (uint64_t) start;
  s->len = data != NULL ? length : 0;
  s->eof = eof ? 1 : 0;
  s->data = data;
  s->used = 0;
  uv_mutex_unlock(&synapse_fast_lock);
  return NULL;
}

/* synapse_fast_take_hits(fh): reads fh's window answered since it was set or last asked. */
NAPI_METHOD(synapse_fast_take_hits) {
  NAPI_ARGV(1)
  NAPI_ARGV_UINT32(fh, 0)
  uint64_t used = 0;
  uv_mutex_lock(&synapse_fast_lock);
  synapse_fast_slot_t *s = &synapse_fast_slots[fh % SYNAPSE_FAST_SLOTS];
  if (s->data != NULL && s->fh == fh) {
    used = s->used;
    s->used = 0;
  }
  uv_mutex_unlock(&synapse_fast_lock);
  napi_value n;
  NAPI_STATUS_THROWS(napi_create_double(env, (double) used, &n))
  return n;
}

/* Write-only opens and creates get FOPEN_DIRECT_IO while this is set (synapse_direct_writes). */
static int synapse_direct_writes_on = 0;

/* On a libfuse thread, before an open or create goes to JS. A write-only file cannot be mapped
   (mmap needs read access), so skipping the page cache costs it nothing. */
static void synapse_open_flags (struct fuse_file_info *info) {
  if (info != NULL && (info->flags & O_ACCMODE) == O_WRONLY && __atomic_load_n(&synapse_direct_writes_on, __ATOMIC_RELAXED)) {
    info->direct_io = 1;
  }
}

/* synapse_direct_writes(on): write-only opens bypass the page cache from now on (or not). */
NAPI_METHOD(synapse_direct_writes) {
  NAPI_ARGV(1)
  bool on = false;
  NAPI_STATUS_THROWS(napi_get_value_bool(env, argv[0], &on))
  __atomic_store_n(&synapse_direct_writes_on, on ? 1 : 0, __ATOMIC_RELAXED);
  return NULL;
}

/* Reads answered by the fast path since the addon loaded. */
NAPI_METHOD(synapse_fast_hits_count) {
  napi_value n;
  NAPI_STATUS_THROWS(napi_create_double(env, (double) __atomic_load_n(&synapse_fast_hits, __ATOMIC_RELAXED), &n))
  return n;
}

`;
// fuse-native as published is kept beside it the first time: a later version of this script
// patches that copy, not a file an earlier version patched (whose hooks would all match again,
// and the build would fail on code defined twice).
const pristine = `${src}.synapse-mount-orig`;
const ANY_MARK = '/* synapse-mount read fast path v';
if (text.includes(ANY_MARK) && !text.includes(FAST_MARK)) {
  let base;
  try {
    base = readFileSync(pristine, 'utf8');
  } catch {
    console.warn('synapse-mount: fuse-native was patched by an older synapse-mount and its original source is not kept; '
      + 'keeping that build (to update it: rm -rf node_modules/fuse-native && npm install)');
    process.exit(0);
  }
  text = base.replace(UTIMENS_BUG, UTIMENS_FIX);
} else if (!text.includes(ANY_MARK) && !existsSync(pristine)) {
  try {
    writeFileSync(pristine, original);
  } catch {
    // best effort: without it a later version asks for a reinstall instead
  }
}

if (!text.includes(FAST_MARK)) {
  const hooks = [
    // The code, before the opcodes that use it.
    ['// Opcodes\n', `${FAST_CODE}// Opcodes\n`],
    // The read handler answers from the window before waking the JS thread.
    [
      'FUSE_METHOD(read, 6, 2, (const char *path, char *buf, size_t len, off_t offset, struct fuse_file_info *info), {\n',
      'FUSE_METHOD(read, 6, 2, (const char *path, char *buf, size_t len, off_t offset, struct fuse_file_info *info), {\n' +
        '  { int fast = synapse_fast_read(info, buf, len, offset); if (fast >= 0) return fast; }\n',
    ],
    // Opens and creates: the page-cache decision for write-only files.
    [
      'FUSE_METHOD(open, 2, 1, (const char *path, struct fuse_file_info *info), {\n  l->path = path;\n  l->info = info;\n',
      'FUSE_METHOD(open, 2, 1, (const char *path, struct fuse_file_info *info), {\n  l->path = path;\n  l->info = info;\n  synapse_open_flags(info);\n',
    ],
    [
      'FUSE_METHOD(create, 2, 1, (const char *path, mode_t mode, struct fuse_file_info *info), {\n  l->path = path;\n  l->mode = mode;\n  l->info = info;\n',
      'FUSE_METHOD(create, 2, 1, (const char *path, mode_t mode, struct fuse_file_info *info), {\n  l->path = path;\n  l->mode = mode;\n  l->info = info;\n  synapse_open_flags(info);\n',
    ],
    // Exported next to the read signal; the lock is made when the module loads.
    [
      '  NAPI_EXPORT_FUNCTION(fuse_native_signal_read)\n',
      '  NAPI_EXPORT_FUNCTION(fuse_native_signal_read)\n' +
        '  uv_once(&synapse_fast_once, synapse_fast_init);\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_fast_window)\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_fast_take_hits)\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_fast_hits_count)\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_direct_writes)\n',
    ],
  ];
  const missing = hooks.filter(([from]) => text.split(from).length !== 2);
  if (missing.length > 0) {
    console.warn('synapse-mount: fuse-native source is not the expected 2.2.6; read fast path not applied');
  } else {
    for (const [from, to] of hooks) text = text.replace(from, to);
  }
}

if (text === original && existsSync(built)) process.exit(0);
// A new file renamed over the old one, not a write in place: package managers that hard-link
// files from a machine-wide store (pnpm) would otherwise see every project's copy patched.
try {
  const tmp = `${src}.synapse-mount-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, src);
} catch (err) {
  keepPrebuild(`cannot write ${src} (${err.code ?? err.message})`);
}

const nodeDir = path.resolve(path.dirname(process.execPath), '..');
// npm tells its lifecycle scripts where its own node-gyp is; the fixed paths are for a run by hand.
const gyp = [
  process.env['npm_config_node_gyp'] ?? '',
  path.join(nodeDir, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
].find((p) => p !== '' && existsSync(p));
const headers = existsSync(path.join(nodeDir, 'include', 'node', 'node_api.h'));
if (!gyp || !headers) keepPrebuild('cannot rebuild fuse-native (node-gyp or Node headers missing)');
try {
  execFileSync(process.execPath, [gyp, 'rebuild', `--nodedir=${nodeDir}`], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  console.log('synapse-mount: rebuilt fuse-native with the utimens fix, the read fast path and direct writes');
} catch (err) {
  console.warn(`synapse-mount: fuse-native rebuild failed (${String(err.stderr ?? err.message).split('\n')[0]}); using the prebuild`);
}
