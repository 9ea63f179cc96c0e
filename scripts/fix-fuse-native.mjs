#!/usr/bin/env node
// Install step (`postinstall`: run by `npm ci` in a checkout and by `npm install -g` of the packed
// tarball, which never runs `prepare`): patch fuse-native 2.2.6's C source and build the addon
// locally; node-gyp-build prefers build/Release over the bundled prebuild. The patches:
//
//  1. utimens: fuse-native passes the access time twice (FUSE_UINT64_TO_INTS_ARGV(l->atime, 5)),
//     so a filesystem never learns the mtime that `rsync -a`, `cp -p` and `tar x` set.
//  2. A read fast path (src/fs/fast-read.ts says how the mount uses it). Every FUSE read — 8,192
//     per GiB, libfuse 2 caps them at 128 KiB — went to the JS thread and back: two thread
//     wake-ups, N-API objects and a copy, about half the mount's CPU on a cold sequential read.
//     The mount now tells the addon which blocks of open files are in memory (*windows*,
//     `synapse_fast_set(fh, start, buffer, eof, length)`, in a table keyed by (fh, block)); a read
//     inside one is copied on libfuse's own thread and never reaches JS. A read outside them goes
//     to JS as before, which is where readahead is planned and the next block is handed over (a
//     sequential reader holds one window; a random reader keeps every block it has read). A
//     mutex guards the table (held for one copy of at most one request, 1 MiB; not a read-write
//     lock, whose readers could starve the JS thread): setting or clearing a window waits for a
//     copy in progress, so once the call returns the old buffer is the mount's again. On the
//     mount's own channel (4. below) such a read is answered as it is received, the reply written
//     to /dev/fuse straight from the block: libfuse's path would copy it into its own buffer first
//     and look up the file's path (SYNAPSE_MOUNT_FAST_REPLY=0 leaves them to that path).
//
//  3. Write-only opens, and read-only opens where the kernel granted shared mmap of direct-I/O
//     files, bypass the page cache (FOPEN_DIRECT_IO) once the mount asks for it
//     (`synapse_direct_writes(true)`, `synapse_direct_reads(true)`; src/fs/page-cache-bypass.ts
//     says why). Decided here, on libfuse's thread before the open reaches JS, because
//     fuse-native's open callback has no way to set fuse_file_info's flags.
//
//  4. The FUSE connection's terms (src/fs/fuse-terms.ts says why): the mount's /dev/fuse channel
//     gets our receive and send, which extend libfuse 2's INIT reply (protocol 7.19) with 1 MiB
//     requests and, for direct reads and --direct-io, shared mmap of direct-I/O files — only what the kernel
//     offered (`synapse_fuse_terms` before mounting, `synapse_fuse_granted` after).
//
//  5. Files unlinked while open stay usable through their fds (POSIX; Python's TemporaryFile
//     unlinks at once): with hard_remove libfuse has no path for such a file and answered
//     ENOENT to every read, write, fsync and fstat before the mount saw them. `flag_nullpath_ok`
//     lets those ops through with a NULL path (passed to JS as ""; the mount works by fd), and
//     index.js's fgetattr wrapper — which called getattr(path), dropping the fd — calls
//     fgetattr(path, fd).
//
//  6. Setting one time only — `touch -m`, GNU tar's futimens(fd, {UTIME_OMIT, mtime}) — was
//     dropped by libfuse 2 without flag_utime_omit_ok (the call "succeeded", the mtime was
//     lost). With it set, the C side maps UTIME_NOW to the current time and UTIME_OMIT to 1
//     (src/fs/filesystem.ts utimens: leave that time alone).
//
//  7. An open of a file that a rename has just replaced (`mv tmp f` while another process opens
//     f) reaches libfuse as "open this node" for the replaced file, which libfuse 2 no longer has
//     a path for: it answered ENOENT itself, where a local disk opens whichever file the name
//     holds. The mount's channel (4.) turns that answer — an OPEN, OPENDIR, GETATTR, GETXATTR or
//     LISTXATTR that libfuse refused with ENOENT without asking the filesystem — into ESTALE, on
//     which the kernel looks the name up again and repeats the call once (LOOKUP_REVAL: open,
//     stat, getxattr by path): the new file answers, and a name really gone still ends in
//     ENOENT. The kernel's repeat, refused again (the name replaced once more meanwhile, or
//     nothing to look up again: a reopen through /proc/PID/fd), gets the ENOENT, never ESTALE.
//
//  8. fstat of a descriptor whose file was then replaced by a rename or removed: the kernel's
//     getattr names the node, not the descriptor, and libfuse 2 has no path for that node, so it
//     answered ENOENT (`tail -f` gave up on a file replaced under it; a Python file unlinked
//     while open failed its fstat). The channel keeps the open descriptors of each node (from
//     OPEN and CREATE answers until RELEASE) and adds one to a getattr that has none; libfuse then
//     calls fgetattr, which needs no path (5.), and the mount answers from the descriptor — or,
//     when the node still has its path, from the path as before.
//
//  9. The same for directories: fstat of an open directory after `rmdir` or `mv -T dA dB` (the
//     old dB) answered ENOENT — or ESTALE, which fstat never repeats (ext4: the directory, st_nlink
//     0). The channel keeps OPENDIR answers too (libfuse's own: the mount has no opendir) until
//     RELEASEDIR; a getattr of such a node gets the descriptor SYNAPSE_GONE_DIR_FH, and the
//     mount answers it by path while the directory has one, else as an empty, removed directory.
//
// 10. With --allow-other, files and folders another user creates show as theirs (their uid; the
//     group stays the mount's), so they may chmod and set the times of what they made — `rsync -a`, `cp -p` and
//     tar do, and the kernel (default_permissions) refused them when every file showed as the
//     mount owner's. create and mkdir pass their caller's uid and gid (fuse_get_context(), on
//     libfuse's thread) after the callback; src/fs/owners.ts keeps them.
//
// 11. create passes its open flags after those (fuse-native's open passes them, its create did
//     not): a file created O_SYNC or O_DSYNC read-write gets an fsync from the kernel after each
//     write, which the mount journals instead of publishing a version per write (filesystem.ts fsync).
//
// 12. `synapse_rcvlowat(fd, bytes)`: SO_RCVLOWAT on the sockets S3 bodies arrive on (Node has no
//     setsockopt). Without it the socket thread woke for every ≈ 64 KiB a loopback or LAN sender
//     wrote — ≈ 12,000 wake-ups per GiB; src/s3/receive-low-water.ts says what it saves.
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
  console.warn(`synapse-mount: ${why}; using fuse-native's prebuild (utimens will see access times only, reads take the slower path, written files go through the page cache, FUSE requests stay at 128 KiB, S3 reads wake the mount per segment, and files unlinked while open — and fstat of removed directories — answer ENOENT)`);
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

const FAST_MARK = '/* synapse-mount read fast path v28 */';
const FAST_CODE = `${FAST_MARK}
/* The uid and gid of the process whose create or mkdir this libfuse thread is handling (10.);
   (uid_t) -1, "unknown", without a context — never root's by default. */
#define SYNAPSE_NOTE_CALLER(l) do { struct fuse_context *synapse_fc = fuse_get_context(); \\
  (l)->uid = synapse_fc != NULL ? synapse_fc->uid : (uid_t) -1; (l)->gid = synapse_fc != NULL ? synapse_fc->gid : (gid_t) -1; } while (0)
#include <fcntl.h>
/* utimens with flag_utime_omit_ok (6. above): UTIME_NOW becomes the current time, UTIME_OMIT
   the value 1 (1 ms after the epoch), which the mount reads as "leave this time as it is". */
static uint64_t synapse_utime_ms (const struct timespec* ts) {
  struct timespec now;
  if (ts->tv_nsec == UTIME_OMIT) return 1;
  if (ts->tv_nsec == UTIME_NOW) {
    clock_gettime(CLOCK_REALTIME, &now);
    ts = &now;
  }
  return (uint64_t) ts->tv_sec * 1000 + ts->tv_nsec / 1000000;
}
/* Windows live in a direct-mapped table keyed by (fh, block index): an open file may hold many
   (a random reader keeps every block it reads in C), and a window replaces whatever held its
   slot before (the mount learns which from synapse_fast_set's answer, and releases that one). */
#define SYNAPSE_FAST_SLOTS 4096
typedef struct {
  uint64_t fh;
  uint64_t start;
  uint64_t len;
  int eof;
  char *data;
  /* Reads answered from this window since it was set or last asked (synapse_fast_take). */
  uint64_t used;
} synapse_fast_slot_t;
static synapse_fast_slot_t synapse_fast_slots[SYNAPSE_FAST_SLOTS];
static uv_mutex_t synapse_fast_lock;
static uv_once_t synapse_fast_once = UV_ONCE_INIT;
static uint64_t synapse_fast_hits = 0;
/* Of those, the ones the mount's channel answered as it received them (the rest: the read hook). */
static uint64_t synapse_fast_replies = 0;
/* Every window is one block of this size (the mount's block cache), starting at a multiple of
   it; 0 until the mount says (synapse_fast_block_size), and no read is answered until then. */
static uint64_t synapse_fast_block = 0;

/* Once per process, whatever loads the addon (a worker thread loading it again must not
   re-create a lock in use); not inside assert(), which NDEBUG would compile away. */
static uv_mutex_t synapse_program_lock;
static void synapse_fast_init (void) {
  if (uv_mutex_init(&synapse_fast_lock) != 0) abort();
  if (uv_mutex_init(&synapse_program_lock) != 0) abort();
}

/* The slot of block number index of fh: a multiplicative hash, so one file's blocks spread over the
   table and so do different files' same block. */
static synapse_fast_slot_t *synapse_fast_slot (uint64_t fh, uint64_t index) {
  uint32_t h = ((uint32_t) fh * 0x9E3779B1u) ^ ((uint32_t) index * 0x85EBCA77u);
  h ^= h >> 15;
  return &synapse_fast_slots[h % SYNAPSE_FAST_SLOTS];
}

/* Under the lock: [at, at+len) of fh in window s — where its bytes are, and how many (fewer at
   the end of the file) — or -1. */
static int synapse_fast_span (synapse_fast_slot_t *s, uint64_t fh, size_t len, uint64_t at, const char **data) {
  if (s->data == NULL || s->fh != fh || at < s->start) return -1;
  uint64_t rel = at - s->start;
  size_t n;
  if (rel + len <= s->len) n = len;
  else if (s->eof) n = rel < s->len ? (size_t) (s->len - rel) : 0;
  else return -1;
  *data = s->data + rel;
  s->used++;
  return (int) n;
}

/* Under the lock: the window of fh that holds [at, at+len), as synapse_fast_span answers, or -1. */
static int synapse_fast_find (uint64_t fh, size_t len, uint64_t at, const char **data) {
  uint64_t block = synapse_fast_block;
  if (block == 0) return -1;
  uint64_t index = at / block;
  int n = synapse_fast_span(synapse_fast_slot(fh, index), fh, len, at, data);
  /* The end of a file whose size is a whole number of blocks lies past its last block. */
  if (n < 0 && index > 0 && at == index * block) {
    synapse_fast_slot_t *last = synapse_fast_slot(fh, index - 1);
    if (last->eof) n = synapse_fast_span(last, fh, len, at, data);
  }
  return n;
}

/* On a libfuse thread: the bytes if [offset, offset+len) lies in one of fh's windows, else -1. */
static int synapse_fast_read (struct fuse_file_info *info, char *buf, size_t len, off_t offset) {
  if (info == NULL || offset < 0 || __atomic_load_n(&synapse_fast_block, __ATOMIC_RELAXED) == 0) return -1;
  const char *data = NULL;
  uv_mutex_lock(&synapse_fast_lock);
  int n = synapse_fast_find(info->fh, len, (uint64_t) offset, &data);
  if (n > 0) memcpy(buf, data, (size_t) n);
  uv_mutex_unlock(&synapse_fast_lock);
  if (n >= 0) __atomic_add_fetch(&synapse_fast_hits, 1, __ATOMIC_RELAXED);
  return n;
}

/* synapse_fast_block_size(bytes): the size of every window from now on; forgets every window
   (the mount sets it once, before the first). */
NAPI_METHOD(synapse_fast_block_size) {
  NAPI_ARGV(1)
  NAPI_ARGV_UINT32(bytes, 0)
  uv_mutex_lock(&synapse_fast_lock);
  memset(synapse_fast_slots, 0, sizeof(synapse_fast_slots));
  __atomic_store_n(&synapse_fast_block, (uint64_t) bytes, __ATOMIC_RELAXED);
  uv_mutex_unlock(&synapse_fast_lock);
  return NULL;
}

/* The window start a call names, or -1 (with a RangeError thrown) if it is no block start. */
static double synapse_fast_start (napi_env env, napi_value v) {
  double start;
  if (napi_get_value_double(env, v, &start) != napi_ok) {
    napi_throw_type_error(env, NULL, "a window start is a number");
    return -1;
  }
  uint64_t block = __atomic_load_n(&synapse_fast_block, __ATOMIC_RELAXED);
  /* A whole number of bytes within 2^53 (NaN fails every comparison) before any cast. */
  if (block == 0 || !(start >= 0 && start <= 9007199254740992.0) || start != (double) (uint64_t) start || (uint64_t) start % block != 0) {
    napi_throw_range_error(env, NULL, "a window starts at a block boundary (synapse_fast_block_size first)");
    return -1;
  }
  return start;
}

/* synapse_fast_set(fh, start, buffer, eof, length): fh's window on the block at start (replacing
   whatever held its slot); returns the slot. Once this returns, no copy reads the replaced
   window's buffer. */
NAPI_METHOD(synapse_fast_set) {
  NAPI_ARGV(5)
  NAPI_ARGV_UINT32(fh, 0)
  double start = synapse_fast_start(env, argv[1]);
  if (start < 0) return NULL;
  char *data = NULL;
  size_t size = 0;
  NAPI_STATUS_THROWS(napi_get_buffer_info(env, argv[2], (void **) &data, &size))
  bool eof = false;
  NAPI_STATUS_THROWS(napi_get_value_bool(env, argv[3], &eof))
  uint32_t length;
  NAPI_STATUS_THROWS(napi_get_value_uint32(env, argv[4], &length))
  if (length > size || length > synapse_fast_block) {
    napi_throw_range_error(env, NULL, "window longer than its buffer or a block");
    return NULL;
  }
  /* The answer is made before the table changes: once the window is in, nothing may fail (the
     mount would release a buffer C holds). */
  synapse_fast_slot_t *s = synapse_fast_slot(fh, (uint64_t) start / synapse_fast_block);
  napi_value n;
  NAPI_STATUS_THROWS(napi_create_uint32(env, (uint32_t) (s - synapse_fast_slots), &n))
  uv_mutex_lock(&synapse_fast_lock);
  s->fh = fh;
  s->start = (uint64_t) start;
  s->len = length;
  s->eof = eof ? 1 : 0;
  s->data = data;
  s->used = 0;
  uv_mutex_unlock(&synapse_fast_lock);
  return n;
}

/* synapse_fast_clear(fh, start): fh's window on the block at start goes, if its slot still holds
   it; once this returns no copy reads it. */
NAPI_METHOD(synapse_fast_clear) {
  NAPI_ARGV(2)
  NAPI_ARGV_UINT32(fh, 0)
  double start = synapse_fast_start(env, argv[1]);
  if (start < 0) return NULL;
  uv_mutex_lock(&synapse_fast_lock);
  synapse_fast_slot_t *s = synapse_fast_slot(fh, (uint64_t) start / synapse_fast_block);
  if (s->data != NULL && s->fh == fh && s->start == (uint64_t) start) memset(s, 0, sizeof(*s));
  uv_mutex_unlock(&synapse_fast_lock);
  return NULL;
}

/* synapse_fast_take(fh, start): reads answered from that window since it was set or last asked. */
NAPI_METHOD(synapse_fast_take) {
  NAPI_ARGV(2)
  NAPI_ARGV_UINT32(fh, 0)
  double start = synapse_fast_start(env, argv[1]);
  if (start < 0) return NULL;
  uint64_t used = 0;
  uv_mutex_lock(&synapse_fast_lock);
  synapse_fast_slot_t *s = synapse_fast_slot(fh, (uint64_t) start / synapse_fast_block);
  if (s->data != NULL && s->fh == fh && s->start == (uint64_t) start) {
    used = s->used;
    s->used = 0;
  }
  uv_mutex_unlock(&synapse_fast_lock);
  napi_value n;
  NAPI_STATUS_THROWS(napi_create_double(env, (double) used, &n))
  return n;
}

/* What the latest INIT granted (synapse_fuse_granted; set by synapse_chan_send below, before its
   reply reaches the kernel, which holds every other request until then), and the largest
   requests seen. */
static int synapse_granted_done = 0;
static int synapse_granted_allow_mmap = 0;
static unsigned synapse_granted_minor = 0, synapse_granted_max_pages = 0, synapse_granted_max_write = 0;
static uint64_t synapse_largest_read = 0, synapse_largest_write = 0;
/* The kernel ended this mount's connection (a read of /dev/fuse answered ENODEV: unmounted, or
   aborted). The mount's unmount watch trusts this over /proc/self/mountinfo, where a mount made
   right after can carry the same mount id and device. */
static int synapse_session_ended = 0;

/* Write-only opens and creates get FOPEN_DIRECT_IO while this is set (synapse_direct_writes);
   read-only opens while synapse_direct_reads is set and the kernel granted shared mmap of such
   files (FUSE_DIRECT_IO_ALLOW_MMAP, below). */
static int synapse_direct_writes_on = 0;
static int synapse_direct_reads_on = 0;

/* O_DIRECT opens already skip the page cache through the kernel's own O_DIRECT path: left as they
   were. glibc names O_DIRECT only under _GNU_SOURCE, but always defines __O_DIRECT. */
#if defined(O_DIRECT)
#define SYNAPSE_O_DIRECT O_DIRECT
#elif defined(__O_DIRECT)
#define SYNAPSE_O_DIRECT __O_DIRECT
#else
#define SYNAPSE_O_DIRECT 0
#endif

/* Programs that read in small pieces (src/fs/page-cache-bypass.ts says why): their read-only
   opens keep the page cache, whose readahead overlaps their reads with their own work. Learned
   from direct reads: a sequential run of SYNAPSE_SMALL_READS reads under
   SYNAPSE_SMALL_READ_BYTES on one open (each starting where the last ended; a bigger read starts
   the count again, random reads never count — readahead would not help them) marks the program
   (the reading thread's name, /proc/TID/comm) for the rest of the mount's life. */
#define SYNAPSE_SMALL_READ_BYTES 32768
#define SYNAPSE_SMALL_READS 256
#define SYNAPSE_PROGRAMS 64
#define SYNAPSE_DIRECT_SLOTS 4096
typedef struct { uint64_t fh; uint64_t next; uint32_t small; } synapse_direct_open_t;
static synapse_direct_open_t synapse_direct_opens[SYNAPSE_DIRECT_SLOTS];
static char synapse_small_programs[SYNAPSE_PROGRAMS][16];
static int synapse_small_program_count = 0;

/* The name of thread pid ("" if unknown, as for pid 0: a thread outside the mount's pid
   namespace); pid -1: the thread that made the current request (libfuse's context). */
static void synapse_requester (char out[16], int pid) {
  out[0] = 0;
  if (pid == -1) {
    struct fuse_context *ctx = fuse_get_context();
    if (ctx != NULL) pid = (int) ctx->pid;
  }
  if (pid <= 0) return;
  char path[48];
  snprintf(path, sizeof(path), "/proc/%d/comm", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, out, 15);
  close(fd);
  if (n > 0 && out[n - 1] == '\\n') n--;
  out[n > 0 ? n : 0] = 0;
}

/* Under synapse_program_lock. */
static int synapse_is_small_reader (const char *name) {
  for (int i = 0; i < synapse_small_program_count; i++) {
    if (strcmp(synapse_small_programs[i], name) == 0) return 1;
  }
  return 0;
}

/* Does the program opening the current request read in small pieces? (No /proc read until one does.) */
static int synapse_opener_reads_small (void) {
  if (__atomic_load_n(&synapse_small_program_count, __ATOMIC_ACQUIRE) == 0) return 0;
  char name[16];
  synapse_requester(name, -1);
  if (name[0] == 0) return 0;
  uv_mutex_lock(&synapse_program_lock);
  int small = synapse_is_small_reader(name);
  uv_mutex_unlock(&synapse_program_lock);
  return small;
}

/* On the JS thread, once the open has its fh (libfuse's thread still waits): direct reads of this
   fh are counted from now on; any other open that reuses the slot stops the count. */
static void synapse_track_open (struct fuse_file_info *info) {
  if (info == NULL) return;
  synapse_direct_open_t *s = &synapse_direct_opens[info->fh % SYNAPSE_DIRECT_SLOTS];
  int direct_read = info->direct_io && (info->flags & O_ACCMODE) == O_RDONLY;
  __atomic_store_n(&s->small, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&s->next, 0, __ATOMIC_RELAXED);
  __atomic_store_n(&s->fh, direct_read ? info->fh : 0, __ATOMIC_RELAXED);
}

/* On a libfuse thread, for every read of fh by thread pid (-1: the current request's): the
   SYNAPSE_SMALL_READS-th small read in a sequential run on a direct-read open marks the reading
   program. Counts are per open file, not exact under concurrent reads of one fd (a few off either
   way: harmless). */
static void synapse_note_read (uint64_t fh, size_t len, off_t offset, int pid) {
  if (fh == 0 || offset < 0) return;
  synapse_direct_open_t *s = &synapse_direct_opens[fh % SYNAPSE_DIRECT_SLOTS];
  if (__atomic_load_n(&s->fh, __ATOMIC_RELAXED) != fh) return;
  uint64_t at = (uint64_t) offset;
  uint64_t expected = __atomic_exchange_n(&s->next, at + len, __ATOMIC_RELAXED);
  if (len >= SYNAPSE_SMALL_READ_BYTES || at != expected) {
    __atomic_store_n(&s->small, 0, __ATOMIC_RELAXED);
    return;
  }
  if (__atomic_add_fetch(&s->small, 1, __ATOMIC_RELAXED) != SYNAPSE_SMALL_READS) return;
  __atomic_store_n(&s->fh, 0, __ATOMIC_RELAXED); /* judged: this open's later reads skip the count */
  char name[16];
  synapse_requester(name, pid);
  if (name[0] == 0) return;
  uv_mutex_lock(&synapse_program_lock);
  if (!synapse_is_small_reader(name) && synapse_small_program_count < SYNAPSE_PROGRAMS) {
    memcpy(synapse_small_programs[synapse_small_program_count], name, sizeof(name));
    __atomic_store_n(&synapse_small_program_count, synapse_small_program_count + 1, __ATOMIC_RELEASE);
  }
  uv_mutex_unlock(&synapse_program_lock);
}

static void synapse_note_direct_read (struct fuse_file_info *info, size_t len, off_t offset) {
  if (info != NULL) synapse_note_read(info->fh, len, offset, -1);
}

/* synapse_small_readers(): the programs learned so far, oldest first. */
NAPI_METHOD(synapse_small_readers) {
  napi_value arr, v;
  uv_mutex_lock(&synapse_program_lock);
  int n = synapse_small_program_count;
  char names[SYNAPSE_PROGRAMS][16];
  memcpy(names, synapse_small_programs, sizeof(names));
  uv_mutex_unlock(&synapse_program_lock);
  NAPI_STATUS_THROWS(napi_create_array_with_length(env, (size_t) n, &arr))
  for (int i = 0; i < n; i++) {
    NAPI_STATUS_THROWS(napi_create_string_utf8(env, names[i], NAPI_AUTO_LENGTH, &v))
    NAPI_STATUS_THROWS(napi_set_element(env, arr, (uint32_t) i, v))
  }
  return arr;
}

/* On a libfuse thread, before an open or create goes to JS. A write-only file cannot be mapped
   (mmap needs read access), so skipping the page cache costs it nothing. A read-only file can
   be: only where the kernel keeps shared mappings of direct-I/O files working, and not for a
   program known to read in small pieces. Read-write opens keep the page cache
   (src/fs/page-cache-bypass.ts says why). */
static void synapse_open_flags (struct fuse_file_info *info) {
  if (info == NULL) return;
  int mode = info->flags & O_ACCMODE;
  if (mode == O_WRONLY && __atomic_load_n(&synapse_direct_writes_on, __ATOMIC_RELAXED)) {
    info->direct_io = 1;
  } else if (mode == O_RDONLY && !(info->flags & SYNAPSE_O_DIRECT) && __atomic_load_n(&synapse_direct_reads_on, __ATOMIC_RELAXED)
             && __atomic_load_n(&synapse_granted_allow_mmap, __ATOMIC_RELAXED) && !synapse_opener_reads_small()) {
    info->direct_io = 1;
  }
}

/* A page-cache switch set from JS: its one argument, a boolean. */
static napi_value synapse_set_switch (napi_env env, napi_callback_info info, int *flag) {
  NAPI_ARGV(1)
  bool on = false;
  NAPI_STATUS_THROWS(napi_get_value_bool(env, argv[0], &on))
  __atomic_store_n(flag, on ? 1 : 0, __ATOMIC_RELAXED);
  return NULL;
}

/* synapse_direct_reads(on): read-only opens bypass the page cache from now on, where shared
   mmap of them is granted (or not). */
NAPI_METHOD(synapse_direct_reads) {
  return synapse_set_switch(env, info, &synapse_direct_reads_on);
}

/* synapse_direct_writes(on): write-only opens bypass the page cache from now on (or not). */
NAPI_METHOD(synapse_direct_writes) {
  return synapse_set_switch(env, info, &synapse_direct_writes_on);
}

/* The FUSE connection's terms (src/fs/fuse-terms.ts says why). libfuse 2 speaks protocol 7.19:
   it answers the kernel's INIT with a 24-byte reply, so every read and write request is capped at
   32 pages (128 KiB) and FUSE_DIRECT_IO_ALLOW_MMAP (Linux 6.6) cannot be asked for. The mount's
   channel is fuse_mount's /dev/fuse descriptor under our own receive and send (public libfuse 2
   API: fuse_chan_new): receive notes what the kernel offers in INIT, send extends libfuse's INIT
   reply to the 7.36+ layout with what the mount wants and the kernel offered (the kernel reads
   flags2 once FUSE_INIT_EXT is set, and zero-fills a short reply). Everything else passes
   through as libfuse's own channel would send and receive it. */
#include <errno.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
struct synapse_wire_in_header { uint32_t len, opcode; uint64_t unique, nodeid; uint32_t uid, gid, pid, padding; };
struct synapse_wire_out_header { uint32_t len; int32_t error; uint64_t unique; };
struct synapse_wire_init_in { uint32_t major, minor, max_readahead, flags, flags2, unused[11]; };
struct synapse_wire_init_out {
  uint32_t major, minor, max_readahead, flags;
  uint16_t max_background, congestion_threshold;
  uint32_t max_write, time_gran;
  uint16_t max_pages, map_alignment;
  uint32_t flags2, max_stack_depth;
  uint16_t request_timeout, unused[11];
};
struct synapse_wire_read_in { uint64_t fh, offset; uint32_t size, read_flags; uint64_t lock_owner; uint32_t flags, padding; };
#define SYNAPSE_FUSE_INIT_OPCODE 26
#define SYNAPSE_FUSE_READ_OPCODE 15
#define SYNAPSE_FUSE_LOOKUP_OPCODE 1
#define SYNAPSE_FUSE_OPEN_OPCODE 14
#define SYNAPSE_FUSE_GETXATTR_OPCODE 22
#define SYNAPSE_FUSE_LISTXATTR_OPCODE 23
#define SYNAPSE_FUSE_OPENDIR_OPCODE 27
/* The request this libfuse worker is handling: a worker receives a request (our receive), runs it
   and sends its answer (our send) on its own thread. reached_fs is set when one of fuse-native's
   operations runs for it (FUSE_NATIVE_HANDLER): an answer without it is libfuse's own (7.). */
static __thread uint64_t synapse_req_unique = 0;
static __thread uint32_t synapse_req_opcode = 0;
static __thread uint64_t synapse_req_nodeid = 0;
static __thread uint32_t synapse_req_pid = 0;
static __thread int synapse_req_reached_fs = 0;

/* 8., 9.: the open descriptors of each node, as (node, fh, opener, writable, dir) in one array, oldest first (few
   are open at once; a getattr without a descriptor scans it). Full: new opens are not noted
   (their fstat, once the file has no path, is libfuse's ENOENT as before). */
#define SYNAPSE_FUSE_GETATTR_OPCODE 3
#define SYNAPSE_FUSE_RELEASE_OPCODE 18
#define SYNAPSE_FUSE_RELEASEDIR_OPCODE 29
#define SYNAPSE_FUSE_CREATE_OPCODE 35
#define SYNAPSE_FUSE_GETATTR_FH 1u
#define SYNAPSE_OPEN_FILES_MAX 65536
struct synapse_wire_getattr_in { uint32_t getattr_flags, dummy; uint64_t fh; };
struct synapse_wire_release_in { uint64_t fh; uint32_t flags, release_flags; uint64_t lock_owner; };
typedef struct { uint64_t nodeid, fh; uint32_t pid; int writable, dir; } synapse_open_file_t;
/* 9.: the descriptor a getattr of an open directory is given. libfuse's own directory handles
   mean nothing to the mount, and every such directory is alike once it has no path (removed, or
   replaced by a rename: empty, st_nlink 0); with a path the mount answers by path as before. */
#define SYNAPSE_GONE_DIR_FH 0xFFFFFFFFull
static synapse_open_file_t *synapse_open_files = NULL;
static size_t synapse_open_count = 0, synapse_open_cap = 0;
static pthread_mutex_t synapse_open_lock = PTHREAD_MUTEX_INITIALIZER;
/* The access mode of the OPEN or CREATE this worker is handling (its fuse_open_in/fuse_create_in flags). */
static __thread int synapse_req_writable = 0;
static void synapse_open_note (uint64_t nodeid, uint64_t fh, uint32_t pid, int writable, int dir) {
  pthread_mutex_lock(&synapse_open_lock);
  if (synapse_open_count == synapse_open_cap && synapse_open_cap < SYNAPSE_OPEN_FILES_MAX) {
    size_t cap = synapse_open_cap == 0 ? 64 : synapse_open_cap * 2;
    synapse_open_file_t *grown = realloc(synapse_open_files, cap * sizeof(*grown));
    if (grown != NULL) {
      synapse_open_files = grown;
      synapse_open_cap = cap;
    }
  }
  if (synapse_open_count < synapse_open_cap) {
    synapse_open_files[synapse_open_count].nodeid = nodeid;
    synapse_open_files[synapse_open_count].fh = fh;
    synapse_open_files[synapse_open_count].pid = pid;
    synapse_open_files[synapse_open_count].writable = writable;
    synapse_open_files[synapse_open_count].dir = dir;
    synapse_open_count++;
  }
  pthread_mutex_unlock(&synapse_open_lock);
}
static void synapse_open_forget (uint64_t nodeid, uint64_t fh) {
  pthread_mutex_lock(&synapse_open_lock);
  for (size_t i = 0; i < synapse_open_count; i++) {
    if (synapse_open_files[i].fh == fh && synapse_open_files[i].nodeid == nodeid) {
      /* Shifted, not swapped with the last: the order says which descriptor is newest. */
      memmove(&synapse_open_files[i], &synapse_open_files[i + 1], (synapse_open_count - i - 1) * sizeof(synapse_open_files[0]));
      synapse_open_count--;
      break;
    }
  }
  pthread_mutex_unlock(&synapse_open_lock);
}
/* A descriptor of the node for a getattr by a caller: the caller's own newest (which it cannot be
   closing while it asks — another process's may be released before the getattr is answered:
   QA), else the newest open for writing (the file's bytes as written, which a local disk's one
   inode would show to every descriptor), else the newest. */
static int synapse_open_fh_of (uint64_t nodeid, uint32_t pid, uint64_t *fh) {
  int rank = 0; /* 3: the caller's own, 2: writable, 1: any */
  int dir = -1; /* the newest record says file or directory (libfuse keeps a node whose name changed type) */
  pthread_mutex_lock(&synapse_open_lock);
  for (size_t i = synapse_open_count; i-- > 0 && rank < 3;) {
    const synapse_open_file_t *f = &synapse_open_files[i];
    if (f->nodeid != nodeid) continue;
    if (dir < 0) dir = f->dir;
    if (f->dir != dir) continue;
    if (dir) {
      rank = 3;
      *fh = SYNAPSE_GONE_DIR_FH;
      break;
    }
    int r = f->pid == pid ? 3 : f->writable ? 2 : 1;
    if (r > rank) {
      rank = r;
      *fh = f->fh;
    }
  }
  pthread_mutex_unlock(&synapse_open_lock);
  return rank > 0;
}
/* Before libfuse sees a request (8.): forget a released descriptor; add one to a getattr without;
   note an open's access mode. */
static void synapse_stale_note (uint32_t pid, int reached);
static void synapse_track_request (struct synapse_wire_in_header *in, char *arg, size_t arg_len) {
  if (in->opcode == SYNAPSE_FUSE_LOOKUP_OPCODE) {
    synapse_stale_note(in->pid, 0);
  } else if ((in->opcode == SYNAPSE_FUSE_RELEASE_OPCODE || in->opcode == SYNAPSE_FUSE_RELEASEDIR_OPCODE) && arg_len >= sizeof(struct synapse_wire_release_in)) {
    synapse_open_forget(in->nodeid, ((struct synapse_wire_release_in *) arg)->fh);
  } else if (in->opcode == SYNAPSE_FUSE_GETATTR_OPCODE && arg_len >= sizeof(struct synapse_wire_getattr_in)) {
    struct synapse_wire_getattr_in *ga = (struct synapse_wire_getattr_in *) arg;
    uint64_t fh;
    if (!(ga->getattr_flags & SYNAPSE_FUSE_GETATTR_FH) && synapse_open_fh_of(in->nodeid, in->pid, &fh)) {
      ga->getattr_flags |= SYNAPSE_FUSE_GETATTR_FH;
      ga->fh = fh;
    }
  } else if ((in->opcode == SYNAPSE_FUSE_OPEN_OPCODE || in->opcode == SYNAPSE_FUSE_CREATE_OPCODE) && arg_len >= sizeof(uint32_t)) {
    uint32_t flags;
    memcpy(&flags, arg, sizeof(flags)); /* fuse_open_in and fuse_create_in: flags first */
    synapse_req_writable = (flags & O_ACCMODE) != O_RDONLY;
  }
}
/* An answer to the OPEN, CREATE or OPENDIR this worker handles: the node and descriptor it gives,
   if any. An OPENDIR is answered by libfuse itself (the mount has no opendir). */
static int synapse_answer_gives_fh (const struct synapse_wire_out_header *out, const struct iovec iov[], size_t count, uint64_t *nodeid, uint64_t *fh) {
  if (out->error != 0 || out->unique != synapse_req_unique || count != 2) return 0;
  if (synapse_req_opcode == SYNAPSE_FUSE_OPENDIR_OPCODE && iov[1].iov_len >= sizeof(uint64_t)) {
    *nodeid = synapse_req_nodeid;
    memcpy(fh, iov[1].iov_base, sizeof(*fh)); /* fuse_open_out: fh first */
    return 1;
  }
  if (!synapse_req_reached_fs) return 0;
  if (synapse_req_opcode == SYNAPSE_FUSE_OPEN_OPCODE && iov[1].iov_len >= sizeof(uint64_t)) {
    *nodeid = synapse_req_nodeid;
    memcpy(fh, iov[1].iov_base, sizeof(*fh)); /* fuse_open_out: fh first */
    return 1;
  }
  if (synapse_req_opcode == SYNAPSE_FUSE_CREATE_OPCODE && iov[1].iov_len >= 2 * sizeof(uint64_t) + 16) {
    /* fuse_entry_out (node id first), then fuse_open_out (16 bytes, fh first). */
    memcpy(nodeid, iov[1].iov_base, sizeof(*nodeid));
    memcpy(fh, (const char *) iov[1].iov_base + iov[1].iov_len - 16, sizeof(*fh));
    return 1;
  }
  return 0;
}

/* 7.: ESTALE answers waiting for the kernel's repeat, one per caller (thread). The kernel looks
   the name up again (a LOOKUP from that caller) and repeats the operation once; a repeat that
   libfuse refuses again — the name replaced once more meanwhile, or no new lookup possible (a
   reopen through /proc/PID/fd, a removed working directory: the same node again) — gets the
   ENOENT, never a second ESTALE, which the kernel would hand to the program. An operation of
   the caller that reaches the filesystem ends its entry. */
#define SYNAPSE_STALE_SLOTS 64
#define SYNAPSE_STALE_NS 1000000000ull
typedef struct { uint64_t nodeid, at_ns; uint32_t pid, opcode; int saw_lookup; } synapse_stale_t;
static synapse_stale_t synapse_stale[SYNAPSE_STALE_SLOTS];
static unsigned synapse_stale_next = 0;
static int synapse_stale_live = 0;
static uint64_t synapse_now_ns (void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}
/* The operations whose ENOENT for a node without a path becomes ESTALE (each retried once by the
   kernel: do_filp_open, vfs_statx, path_getxattr, listxattr by path). */
static int synapse_stale_opcode (uint32_t opcode) {
  return opcode == SYNAPSE_FUSE_OPEN_OPCODE || opcode == SYNAPSE_FUSE_OPENDIR_OPCODE || opcode == SYNAPSE_FUSE_GETATTR_OPCODE
    || opcode == SYNAPSE_FUSE_GETXATTR_OPCODE || opcode == SYNAPSE_FUSE_LISTXATTR_OPCODE;
}
static synapse_stale_t *synapse_stale_of (uint32_t pid, uint64_t now) {
  for (unsigned i = 0; i < SYNAPSE_STALE_SLOTS; i++) {
    synapse_stale_t *e = &synapse_stale[i];
    if (e->at_ns != 0 && e->pid == pid && now - e->at_ns < SYNAPSE_STALE_NS) return e;
  }
  return NULL;
}
/* Whether libfuse's ENOENT for this caller's operation may become ESTALE (not the kernel's repeat of one). */
static int synapse_may_answer_stale (uint64_t nodeid, uint32_t pid, uint32_t opcode) {
  uint64_t now = synapse_now_ns();
  int repeat = 0;
  pthread_mutex_lock(&synapse_open_lock);
  synapse_stale_t *e = synapse_stale_of(pid, now);
  if (e != NULL && e->opcode == opcode && (e->nodeid == nodeid || e->saw_lookup)) {
    e->at_ns = 0;
    repeat = 1;
  } else {
    if (e == NULL) e = &synapse_stale[synapse_stale_next++ % SYNAPSE_STALE_SLOTS];
    e->nodeid = nodeid;
    e->pid = pid;
    e->opcode = opcode;
    e->at_ns = now;
    e->saw_lookup = 0;
    __atomic_store_n(&synapse_stale_live, 1, __ATOMIC_RELAXED);
  }
  pthread_mutex_unlock(&synapse_open_lock);
  return !repeat;
}
/* A LOOKUP by a caller with an ESTALE pending (its repeat is under way), or one of its operations
   that reached the filesystem (the repeat, or anything after, went through). */
static void synapse_stale_note (uint32_t pid, int reached) {
  if (!__atomic_load_n(&synapse_stale_live, __ATOMIC_RELAXED)) return;
  uint64_t now = synapse_now_ns();
  pthread_mutex_lock(&synapse_open_lock);
  synapse_stale_t *e = synapse_stale_of(pid, now);
  if (e != NULL) {
    /* A stat's repeat is the LOOKUP itself (its answer carries the attributes): done. */
    if (reached || e->opcode == SYNAPSE_FUSE_GETATTR_OPCODE) e->at_ns = 0;
    else e->saw_lookup = 1;
  }
  /* None left waiting: later operations skip this lock again. */
  int any = 0;
  for (unsigned i = 0; i < SYNAPSE_STALE_SLOTS && !any; i++) any = synapse_stale[i].at_ns != 0 && now - synapse_stale[i].at_ns < SYNAPSE_STALE_NS;
  if (!any) __atomic_store_n(&synapse_stale_live, 0, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&synapse_open_lock);
}
#define SYNAPSE_FUSE_MAX_PAGES (1u << 22)
#define SYNAPSE_FUSE_INIT_EXT (1u << 30)
#define SYNAPSE_FUSE_DIRECT_IO_ALLOW_MMAP_HI (1u << 4) /* FUSE_DIRECT_IO_ALLOW_MMAP is bit 36: flags2 bit 4 */
/* Wanted by the next mount (synapse_fuse_terms): pages per request (<= 32: libfuse's own terms),
   shared mmap of direct_io files. */
static unsigned synapse_want_max_pages = 0;
static int synapse_want_allow_mmap = 0;
/* One per wrapped channel: the INIT exchange in progress. */
typedef struct {
  int done;
  uint64_t unique;
  uint32_t minor, flags, flags2;
  unsigned want_max_pages;
  int want_allow_mmap;
  /* Reads inside windows are answered on receipt (synapse_chan_answer_read); off with
     SYNAPSE_MOUNT_FAST_REPLY=0, which leaves them to the read hook's copy. */
  int answer_reads;
} synapse_chan_state_t;
static void synapse_note_size (uint64_t *largest, size_t len) {
  uint64_t seen = __atomic_load_n(largest, __ATOMIC_RELAXED);
  while (len > seen && !__atomic_compare_exchange_n(largest, &seen, (uint64_t) len, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
}

/* A read inside one of its file's windows, answered here on the receiving thread: the reply goes
   to the kernel straight from the block (one copy, into the reader's pages), where libfuse's path
   would copy it into a buffer of its own first and look up the file's path. libfuse never sees
   the request. (Should the reader be interrupted meanwhile, libfuse keeps the kernel's interrupt
   notice for a request it never had: a few bytes, and only in that race.) 1: answered; 0: the
   request is libfuse's to answer (no window holds it, or the reply could not be written — a
   write to /dev/fuse is all or nothing, so nothing was sent).
   The read is noted for the learning under the lock (a /proc read at most once per open, at its
   verdict); a reply that could not be written is noted again by the read hook, which only
   restarts that open's count.
   libfuse lets its workers be cancelled while they receive (at unmount): not inside this lock,
   which a cancelled writer would hold forever, and the mount's next window call with it. */
static int synapse_chan_answer_read (struct fuse_chan *ch, const struct synapse_wire_in_header *in, const struct synapse_wire_read_in *rd) {
  if (rd->offset > (uint64_t) INT64_MAX || __atomic_load_n(&synapse_fast_block, __ATOMIC_RELAXED) == 0) return 0;
  const char *data = NULL;
  struct synapse_wire_out_header out;
  struct iovec iov[2];
  int cancel_state, written = 0;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
  uv_mutex_lock(&synapse_fast_lock);
  int n = synapse_fast_find(rd->fh, rd->size, rd->offset, &data);
  if (n >= 0) {
    /* Noted before the reply, as the read hook does: once answered, the reader's next read may
       be noted by another thread, and a note after it would break the sequential run. */
    synapse_note_size(&synapse_largest_read, rd->size);
    synapse_note_read(rd->fh, rd->size, (off_t) rd->offset, (int) in->pid);
    out.len = (uint32_t) (sizeof(out) + (size_t) n);
    out.error = 0;
    out.unique = in->unique;
    iov[0].iov_base = &out;
    iov[0].iov_len = sizeof(out);
    iov[1].iov_base = (void *) data;
    iov[1].iov_len = (size_t) n;
    /* ENOENT: the reader was interrupted and gave up, so there is nobody to answer. */
    written = writev(fuse_chan_fd(ch), iov, n > 0 ? 2 : 1) != -1 || errno == ENOENT;
  }
  uv_mutex_unlock(&synapse_fast_lock);
  pthread_setcancelstate(cancel_state, NULL);
  if (!written) return 0; /* libfuse's read: the read hook notes it, JS or the hook answers it */
  __atomic_add_fetch(&synapse_fast_hits, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&synapse_fast_replies, 1, __ATOMIC_RELAXED);
  return 1;
}

/* libfuse's threads are named for what they do (they took the process title, as the mount's own
   worker threads do): per-thread CPU figures (bench/, top -H) can tell them apart. */
static __thread int synapse_thread_named = 0;

static int synapse_chan_receive (struct fuse_chan **chp, char *buf, size_t size) {
  struct fuse_chan *ch = *chp;
  struct fuse_session *se = fuse_chan_session(ch);
  synapse_chan_state_t *st = (synapse_chan_state_t *) fuse_chan_data(ch);
  ssize_t res;
  int err;
  if (!synapse_thread_named) {
    synapse_thread_named = 1;
    prctl(PR_SET_NAME, "fuse-requests", 0, 0, 0);
  }
  for (;;) {
    res = read(fuse_chan_fd(ch), buf, size);
    err = errno;
    if (se != NULL && fuse_session_exited(se)) return 0;
    if (res == -1 && err == ENOENT) continue; /* the request was interrupted: read the next one */
    if (res == -1) {
      if (err == ENODEV) { /* unmounted */
        __atomic_store_n(&synapse_session_ended, 1, __ATOMIC_RELEASE);
        if (se != NULL) fuse_session_exit(se);
        return 0;
      }
      if (err != EINTR && err != EAGAIN) perror("fuse: reading device");
      return -err;
    }
    if ((size_t) res < sizeof(struct synapse_wire_in_header)) {
      fprintf(stderr, "short read on fuse device\\n");
      return -EIO;
    }
    const struct synapse_wire_in_header *in = (const struct synapse_wire_in_header *) buf;
    if (st != NULL && !st->done && in->opcode == SYNAPSE_FUSE_INIT_OPCODE && (size_t) res >= sizeof(*in) + 4 * sizeof(uint32_t)) {
      const struct synapse_wire_init_in *init = (const struct synapse_wire_init_in *) (buf + sizeof(*in));
      st->unique = in->unique;
      st->minor = init->major == 7 ? init->minor : 0;
      st->flags = init->flags;
      st->flags2 = (init->flags & SYNAPSE_FUSE_INIT_EXT) && (size_t) res >= sizeof(*in) + 5 * sizeof(uint32_t) ? init->flags2 : 0;
    }
    /* After INIT (protocol 7.9+: fuse_read_in's 40-byte layout), a read a window holds is answered
       here, and the next request read. */
    if (st != NULL && st->answer_reads && st->done && st->minor >= 9 && in->opcode == SYNAPSE_FUSE_READ_OPCODE
        && (size_t) res >= sizeof(*in) + sizeof(struct synapse_wire_read_in)
        && synapse_chan_answer_read(ch, in, (const struct synapse_wire_read_in *) (buf + sizeof(*in)))) continue;
    synapse_req_unique = in->unique;
    synapse_req_opcode = in->opcode;
    synapse_req_nodeid = in->nodeid;
    synapse_req_pid = in->pid;
    synapse_req_reached_fs = 0;
    if (st != NULL && st->done && st->minor >= 9) synapse_track_request((struct synapse_wire_in_header *) buf, buf + sizeof(*in), (size_t) res - sizeof(*in));
    return (int) res;
  }
}

static int synapse_chan_send (struct fuse_chan *ch, const struct iovec iov[], size_t count) {
  if (iov == NULL) return 0;
  synapse_chan_state_t *st = (synapse_chan_state_t *) fuse_chan_data(ch);
  struct iovec patched[2];
  struct synapse_wire_out_header out;
  struct synapse_wire_init_out init;
  /* libfuse's INIT reply: the header, then its fuse_init_out (24 bytes at protocol 7.19). */
  if (st != NULL && !st->done && st->unique != 0 && count == 2 && iov[0].iov_len == sizeof(out)
      && iov[1].iov_len >= 24 && iov[1].iov_len <= sizeof(init)) {
    memcpy(&out, iov[0].iov_base, sizeof(out));
    if (out.unique == st->unique) {
      st->done = 1;
      memset(&init, 0, sizeof(init));
      memcpy(&init, iov[1].iov_base, iov[1].iov_len);
      unsigned max_pages = 0;
      int allow_mmap = 0;
      if (out.error == 0 && init.major == 7 && st->minor >= 28) { /* 7.28: FUSE_MAX_PAGES, Linux 4.20 */
        if (st->want_max_pages > 32 && (st->flags & SYNAPSE_FUSE_MAX_PAGES)) {
          init.flags |= SYNAPSE_FUSE_MAX_PAGES;
          init.max_pages = (uint16_t) st->want_max_pages;
          max_pages = st->want_max_pages;
        }
        /* 7.40 (Linux 6.9): before its inode I/O modes, a shared mapping of a direct-I/O file had
           no write-back path in FUSE (dirty pages failed with EIO), so 6.6–6.8 are not asked. */
        if (st->want_allow_mmap && st->minor >= 40 && (st->flags & SYNAPSE_FUSE_INIT_EXT) && (st->flags2 & SYNAPSE_FUSE_DIRECT_IO_ALLOW_MMAP_HI)) {
          init.flags |= SYNAPSE_FUSE_INIT_EXT;
          init.flags2 |= SYNAPSE_FUSE_DIRECT_IO_ALLOW_MMAP_HI;
          allow_mmap = 1;
        }
        /* Nothing asked for (--max-request-size 128K without shared mmap): libfuse's reply as it is. */
        if (max_pages != 0 || allow_mmap) {
          out.len = sizeof(out) + sizeof(init);
          patched[0].iov_base = &out;
          patched[0].iov_len = sizeof(out);
          patched[1].iov_base = &init;
          patched[1].iov_len = sizeof(init);
          iov = patched;
        }
      }
      synapse_granted_minor = st->minor;
      synapse_granted_max_pages = max_pages;
      synapse_granted_max_write = out.error == 0 ? init.max_write : 0;
      __atomic_store_n(&synapse_granted_allow_mmap, allow_mmap, __ATOMIC_RELAXED);
      __atomic_store_n(&synapse_granted_done, out.error == 0 ? 1 : 0, __ATOMIC_RELEASE);
    }
  }
  /* 7.: libfuse's own ENOENT to an open, stat or xattr read of a node that lost its path to a
     rename or removal becomes ESTALE, once per caller and repeat. */
  struct iovec stale[1];
  if (synapse_req_reached_fs && synapse_stale_opcode(synapse_req_opcode)) synapse_stale_note(synapse_req_pid, 1);
  if (count == 1 && iov[0].iov_len == sizeof(out) && !synapse_req_reached_fs && synapse_stale_opcode(synapse_req_opcode)) {
    memcpy(&out, iov[0].iov_base, sizeof(out));
    if (out.unique == synapse_req_unique && out.error == -ENOENT && synapse_may_answer_stale(synapse_req_nodeid, synapse_req_pid, synapse_req_opcode)) {
      out.error = -ESTALE;
      stale[0].iov_base = &out;
      stale[0].iov_len = sizeof(out);
      iov = stale;
    }
  }
  /* 8.: the descriptor an OPEN or CREATE gives, noted before the kernel has it (once it does,
     the file can be closed and its RELEASE handled by another worker before a later note), and
     forgotten again if the answer does not reach the kernel (an interrupted open: libfuse then
     releases it itself, with no RELEASE request). */
  uint64_t given_node = 0, given_fh = 0;
  int gives = 0;
  if (count >= 1 && iov[0].iov_len == sizeof(out)) {
    memcpy(&out, iov[0].iov_base, sizeof(out));
    gives = synapse_answer_gives_fh(&out, iov, count, &given_node, &given_fh);
    if (gives) synapse_open_note(given_node, given_fh, synapse_req_pid, synapse_req_opcode == SYNAPSE_FUSE_CREATE_OPCODE || synapse_req_writable,
      synapse_req_opcode == SYNAPSE_FUSE_OPENDIR_OPCODE);
  }
  if (writev(fuse_chan_fd(ch), iov, count) == -1) {
    int err = errno;
    if (gives) synapse_open_forget(given_node, given_fh);
    struct fuse_session *se = fuse_chan_session(ch);
    if (se != NULL && !fuse_session_exited(se) && err != ENOENT) perror("fuse: writing device");
    return -err;
  }
  return 0;
}

static void synapse_chan_destroy (struct fuse_chan *ch) {
  /* fuse_unmount took the descriptor (fuse_chan_clearfd) and closed it: fd is -1 then. */
  int fd = fuse_chan_fd(ch);
  if (fd >= 0) close(fd);
  free(fuse_chan_data(ch));
}

/* fuse_mount's channel, replaced by one over the same descriptor with the receive and send above
   and a buffer for the largest write asked for (libfuse derives max_write from it). fuse_mount's
   own channel object stays allocated and unused: destroying it would close its copy of the
   descriptor number, which by unmount time may belong to another file. */
static struct fuse_chan *synapse_wrap_chan (struct fuse_chan *ch) {
  synapse_chan_state_t *st = calloc(1, sizeof(synapse_chan_state_t));
  if (st == NULL) {
    fprintf(stderr, "synapse-mount: out of memory; FUSE requests stay at 128 KiB\\n");
    return ch;
  }
  st->want_max_pages = synapse_want_max_pages;
  st->want_allow_mmap = synapse_want_allow_mmap;
  const char *reply = getenv("SYNAPSE_MOUNT_FAST_REPLY");
  st->answer_reads = reply == NULL || strcmp(reply, "0") != 0;
  struct fuse_chan_ops ops = { .receive = synapse_chan_receive, .send = synapse_chan_send, .destroy = synapse_chan_destroy };
  size_t bufsize = fuse_chan_bufsize(ch);
  size_t wanted = (size_t) synapse_want_max_pages * 4096 + 4096; /* libfuse keeps a page for headers */
  if (wanted > bufsize) bufsize = wanted;
  struct fuse_chan *wrapped = fuse_chan_new(&ops, fuse_chan_fd(ch), bufsize, st);
  if (wrapped == NULL) {
    fprintf(stderr, "synapse-mount: fuse_chan_new failed; FUSE requests stay at 128 KiB\\n");
    free(st);
    return ch;
  }
  return wrapped;
}

/* synapse_fuse_terms(maxPages, allowMmap): what the next mount asks the kernel for. */
NAPI_METHOD(synapse_fuse_terms) {
  NAPI_ARGV(2)
  NAPI_ARGV_UINT32(max_pages, 0)
  bool allow = false;
  NAPI_STATUS_THROWS(napi_get_value_bool(env, argv[1], &allow))
  synapse_want_max_pages = max_pages > 256 ? 256 : max_pages;
  synapse_want_allow_mmap = allow ? 1 : 0;
  __atomic_store_n(&synapse_granted_allow_mmap, 0, __ATOMIC_RELAXED);
  uv_mutex_lock(&synapse_program_lock); /* a new mount learns afresh */
  __atomic_store_n(&synapse_small_program_count, 0, __ATOMIC_RELEASE);
  uv_mutex_unlock(&synapse_program_lock);
  __atomic_store_n(&synapse_granted_done, 0, __ATOMIC_RELEASE); /* until this mount's INIT */
  __atomic_store_n(&synapse_session_ended, 0, __ATOMIC_RELEASE);
  return NULL;
}

/* synapse_fuse_granted(): [initDone, kernelMinor, maxPages (0: libfuse's 32), maxWrite,
   allowMmap, largestRead, largestWrite, sessionEnded] for the latest mount. */
NAPI_METHOD(synapse_fuse_granted) {
  napi_value arr, v;
  int done = __atomic_load_n(&synapse_granted_done, __ATOMIC_ACQUIRE);
  double vals[8] = {
    done, done ? synapse_granted_minor : 0, done ? synapse_granted_max_pages : 0, done ? synapse_granted_max_write : 0,
    done ? __atomic_load_n(&synapse_granted_allow_mmap, __ATOMIC_RELAXED) : 0,
    (double) __atomic_load_n(&synapse_largest_read, __ATOMIC_RELAXED), (double) __atomic_load_n(&synapse_largest_write, __ATOMIC_RELAXED),
    __atomic_load_n(&synapse_session_ended, __ATOMIC_ACQUIRE),
  };
  NAPI_STATUS_THROWS(napi_create_array_with_length(env, 8, &arr))
  for (uint32_t i = 0; i < 8; i++) {
    NAPI_STATUS_THROWS(napi_create_double(env, vals[i], &v))
    NAPI_STATUS_THROWS(napi_set_element(env, arr, i, v))
  }
  return arr;
}

/* Reads answered by the fast path since the addon loaded. */
NAPI_METHOD(synapse_fast_hits_count) {
  napi_value n;
  NAPI_STATUS_THROWS(napi_create_double(env, (double) __atomic_load_n(&synapse_fast_hits, __ATOMIC_RELAXED), &n))
  return n;
}

/* Of those, the ones answered by the mount's channel as it received them. */
NAPI_METHOD(synapse_fast_replies_count) {
  napi_value n;
  NAPI_STATUS_THROWS(napi_create_double(env, (double) __atomic_load_n(&synapse_fast_replies, __ATOMIC_RELAXED), &n))
  return n;
}

/* synapse_rcvlowat(fd, bytes) (12.): SO_RCVLOWAT on a socket S3 bodies are read from; 0 or -errno.
   Under 1 is refused: the kernel would read a negative mark as INT_MAX, a socket never readable. */
NAPI_METHOD(synapse_rcvlowat) {
  NAPI_ARGV(2)
  NAPI_ARGV_INT32(fd, 0)
  NAPI_ARGV_INT32(bytes, 1)
  int r = bytes < 1 ? -EINVAL : setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &bytes, sizeof(bytes)) == 0 ? 0 : -errno;
  napi_value n;
  NAPI_STATUS_THROWS(napi_create_int32(env, r, &n))
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
        '  synapse_note_size(&synapse_largest_read, len);\n' +
        '  synapse_note_direct_read(info, len, offset);\n' +
        '  { int fast = synapse_fast_read(info, buf, len, offset); if (fast >= 0) return fast; }\n',
    ],
    // Writes: the largest request seen (status).
    [
      'FUSE_METHOD(write, 6, 2, (const char *path, const char *buf, size_t len, off_t offset, struct fuse_file_info *info), {\n',
      'FUSE_METHOD(write, 6, 2, (const char *path, const char *buf, size_t len, off_t offset, struct fuse_file_info *info), {\n' +
        '  synapse_note_size(&synapse_largest_write, len);\n',
    ],
    // Opens and creates: the page-cache decision for write-only files.
    [
      'FUSE_METHOD(open, 2, 1, (const char *path, struct fuse_file_info *info), {\n  l->path = path;\n  l->info = info;\n',
      'FUSE_METHOD(open, 2, 1, (const char *path, struct fuse_file_info *info), {\n  l->path = path;\n  l->info = info;\n  synapse_open_flags(info);\n',
    ],
    // The open's fh, once JS answered: direct reads of it are counted (small readers).
    [
      '  NAPI_ARGV_INT32(fd, 2)\n  if (fd != 0) {\n    l->info->fh = fd;\n  }\n})\n\nFUSE_METHOD(opendir',
      '  NAPI_ARGV_INT32(fd, 2)\n  if (fd != 0) {\n    l->info->fh = fd;\n  }\n  synapse_track_open(l->info);\n})\n\nFUSE_METHOD(opendir',
    ],
    // Creates and mkdirs also pass their caller's uid and gid (10.); creates their open flags too
    // (11.), which fuse-native's create leaves out (its open passes them).
    [
      'FUSE_METHOD(create, 2, 1, (const char *path, mode_t mode, struct fuse_file_info *info), {\n  l->path = path;\n  l->mode = mode;\n  l->info = info;\n}, {\n' +
        '  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n  napi_create_uint32(env, l->mode, &(argv[3]));\n}, {\n',
      'FUSE_METHOD(create, 5, 1, (const char *path, mode_t mode, struct fuse_file_info *info), {\n  l->path = path;\n  l->mode = mode;\n  l->info = info;\n' +
        '  synapse_open_flags(info);\n  SYNAPSE_NOTE_CALLER(l);\n}, {\n' +
        '  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n  napi_create_uint32(env, l->mode, &(argv[3]));\n' +
        '  napi_create_uint32(env, (uint32_t) l->uid, &(argv[4]));\n  napi_create_uint32(env, (uint32_t) l->gid, &(argv[5]));\n' +
        '  napi_create_uint32(env, (uint32_t) l->info->flags, &(argv[6]));\n}, {\n',
    ],
    [
      'FUSE_METHOD_VOID(mkdir, 2, 0, (const char *path, mode_t mode), {\n  l->path = path;\n  l->mode = mode;\n}, {\n' +
        '  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n  napi_create_uint32(env, l->mode, &(argv[3]));\n})\n',
      'FUSE_METHOD_VOID(mkdir, 4, 0, (const char *path, mode_t mode), {\n  l->path = path;\n  l->mode = mode;\n  SYNAPSE_NOTE_CALLER(l);\n}, {\n' +
        '  napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH, &(argv[2]));\n  napi_create_uint32(env, l->mode, &(argv[3]));\n' +
        '  napi_create_uint32(env, (uint32_t) l->uid, &(argv[4]));\n  napi_create_uint32(env, (uint32_t) l->gid, &(argv[5]));\n})\n',
    ],
    // Every operation fuse-native runs marks its request as seen by the filesystem (7.).
    [
      '  fuse_thread_locals_t *l = get_thread_locals();\\\n  l->op = op_##name;\\\n',
      '  fuse_thread_locals_t *l = get_thread_locals();\\\n  l->op = op_##name;\\\n  synapse_req_reached_fs = 1;\\\n',
    ],
    // The mount's channel: our receive and send over fuse_mount's descriptor.
    [
      '  struct fuse_chan *ch = fuse_mount(mnt, &args);\n\n  if (ch == NULL) {\n    napi_throw_error(env, "fuse failed", "fuse failed");\n    return NULL;\n  }\n',
      '  struct fuse_chan *ch = fuse_mount(mnt, &args);\n\n  if (ch == NULL) {\n    napi_throw_error(env, "fuse failed", "fuse failed");\n    return NULL;\n  }\n  ch = synapse_wrap_chan(ch);\n',
    ],
    // fuse_unmount has already destroyed the channel (which took it out of the session): asking
    // the session to remove it again read freed memory.
    [
      '  fuse_unmount(ft->mnt, ft->ch);\n  fuse_session_remove_chan(ft->ch);\n',
      '  fuse_unmount(ft->mnt, ft->ch);\n',
    ],
    // Exported next to the read signal; the lock is made when the module loads.
    [
      '  NAPI_EXPORT_FUNCTION(fuse_native_signal_read)\n',
      '  NAPI_EXPORT_FUNCTION(fuse_native_signal_read)\n' +
        '  uv_once(&synapse_fast_once, synapse_fast_init);\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_fast_block_size)\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_fast_set)\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_fast_clear)\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_fast_take)\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_fast_hits_count)\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_fast_replies_count)\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_direct_writes)\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_direct_reads)\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_small_readers)\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_fuse_terms)\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_fuse_granted)\n' +
        '  NAPI_EXPORT_FUNCTION(synapse_rcvlowat)\n',
    ],
  ];
  // Unlinked-but-open files (5.): libfuse may hand these ops a NULL path. Times set one at a
  // time (6.): libfuse passes UTIME_OMIT/UTIME_NOW instead of dropping the call.
  hooks.push([
    '  struct fuse_operations ops = { };\n',
    '  struct fuse_operations ops = { };\n  ops.flag_nullpath_ok = 1;\n  ops.flag_utime_omit_ok = 1;\n',
  ]);
  hooks.push([
    '  l->atime = timespec_to_uint64(&tv[0]);\n  l->mtime = timespec_to_uint64(&tv[1]);\n',
    '  l->atime = synapse_utime_ms(&tv[0]);\n  l->mtime = synapse_utime_ms(&tv[1]);\n',
  ]);
  const missing = hooks.filter(([from]) => text.split(from).length !== 2);
  const PATH_ARG = 'napi_create_string_utf8(env, l->path, NAPI_AUTO_LENGTH';
  if (missing.length > 0 || !text.includes(PATH_ARG)) {
    console.warn('synapse-mount: fuse-native source is not the expected 2.2.6; read fast path not applied');
  } else {
    for (const [from, to] of hooks) text = text.replace(from, to);
    text = text.replaceAll(PATH_ARG, 'napi_create_string_utf8(env, l->path ? l->path : "", NAPI_AUTO_LENGTH');
  }
}

// index.js (5.): plain JS, so done even without a compiler.
const CREATE_FIX = '  _op_create (signal, path, mode, uid, gid, flags) {\n    this.ops.create(path, mode, (err, fd) => {\n      return signal(err, fd)\n    }, uid, gid, flags)\n  }\n';
const JS_PATCHES = [
  {
    // An index.js an earlier synapse-mount patched (10. only): before the entry that expects the
    // pristine source, which then finds its fix in place.
    upgrade: true,
    what: 'create does not pass its open flags (O_SYNC writes through a new file publish a version each)',
    bug: '  _op_create (signal, path, mode, uid, gid) {\n    this.ops.create(path, mode, (err, fd) => {\n      return signal(err, fd)\n    }, uid, gid)\n  }\n',
    fix: CREATE_FIX,
  },
  {
    // 10.: the creating process's uid and gid, after the callback (the C side passes them); 11.:
    // then its open flags.
    what: "create does not pass its caller's uid (with --allow-other, other users' new files show as the mount owner's)",
    bug: '  _op_create (signal, path, mode) {\n    this.ops.create(path, mode, (err, fd) => {\n      return signal(err, fd)\n    })\n  }\n',
    fix: CREATE_FIX,
  },
  {
    what: "mkdir does not pass its caller's uid (with --allow-other, other users' new folders show as the mount owner's)",
    bug: '  _op_mkdir (signal, path, mode) {\n    this.ops.mkdir(path, mode, err => {\n      return signal(err)\n    })\n  }\n',
    fix: '  _op_mkdir (signal, path, mode, uid, gid) {\n    this.ops.mkdir(path, mode, err => {\n      return signal(err)\n    }, uid, gid)\n  }\n',
  },
  {
    // 8.: a file removed or replaced while open has st_nlink 0 (fuse-native turned 0 into 1).
    what: 'st_nlink 0 not passed (fstat of a file removed while open shows 1 link)',
    bug: '  ints[6] = (stat && stat.nlink) || 1\n',
    fix: "  ints[6] = stat && typeof stat.nlink === 'number' ? stat.nlink : 1\n",
  },
  {
    what: 'fstat by descriptor not patched (a file unlinked while open may answer ENOENT)',
    bug: '      return\n    }\n    this.ops.getattr(path, (err, stat) => {\n      if (err) return signal(err)\n      return signal(0, getStatArray(stat))\n    })\n  }\n\n  _op_access',
    fix: '      return\n    }\n    this.ops.fgetattr(path, fd, (err, stat) => {\n      if (err) return signal(err)\n      return signal(0, getStatArray(stat))\n    })\n  }\n\n  _op_access',
  },
];
try {
  const indexJs = path.join(dir, 'index.js');
  const js = readFileSync(indexJs, 'utf8');
  let patched = js;
  for (const p of JS_PATCHES) {
    if (patched.split(p.bug).length === 2) patched = patched.replace(p.bug, p.fix);
    else if (!patched.includes(p.fix) && !p.upgrade) console.warn(`synapse-mount: fuse-native's index.js is not the expected 2.2.6; ${p.what}`);
  }
  if (patched !== js) {
    const tmp = `${indexJs}.synapse-mount-${process.pid}`;
    writeFileSync(tmp, patched);
    renameSync(tmp, indexJs);
  }
} catch (err) {
  console.warn(`synapse-mount: could not patch fuse-native's index.js (${err.code ?? err.message}); fstat of a file unlinked while open fails`);
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
  console.log('synapse-mount: rebuilt fuse-native with the utimens fix, the read fast path, direct reads and writes, 1 MiB requests, and socket low-water marks for S3 reads');
} catch (err) {
  console.warn(`synapse-mount: fuse-native rebuild failed (${String(err.stderr ?? err.message).split('\n')[0]}); using the prebuild`);
}
