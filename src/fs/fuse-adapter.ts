/**
 * The only module that knows fuse-native: turns SynapseFilesystem's async methods into
 * fuse-native callbacks and negative errnos (CONVENTIONS §8 — treat its contract as hostile).
 *
 *  - Mount options: fuse-native has no option for big_writes or max_background, but its option
 *    string is not escaped, so they ride in `fsname` (DESIGN §6): 128 KiB writes instead of
 *    4 KiB, 64 requests in flight for parallel readahead. hard_remove so an unlinked open file
 *    never becomes a `.fuse_hidden…` entity. No kernel_cache/auto_cache: the page cache is
 *    dropped at each open, so a new open always sees the current object (our block cache, keyed
 *    by version, keeps warm re-reads fast). Pinned to fuse-native 2.2.6.
 *  - Read-only opens bypass the page cache where the kernel allows shared mmap of such files
 *    (Linux ≥ 6.9), write-only opens (dd of=, cp, rsync's temp files, `>`) where it keeps readers
 *    coherent (Linux ≥ 6.6); read-write opens keep it (page-cache-bypass.ts says why and when;
 *    `--[no-]direct-reads`, `--[no-]direct-writes`).
 *  - `--direct-io` adds libfuse's direct_io: every open file gets FOPEN_DIRECT_IO, read-write
 *    ones and older kernels included (there MAP_SHARED of such files fails with ENODEV).
 *  - Requests of up to --max-request-size (1 MiB; libfuse 2 alone gets 128 KiB): fuse-terms.ts.
 *  - entry_timeout/attr_timeout = 2 × --metadata-ttl (kernelCacheMs says why; at most 1 h; 0
 *    with a TTL of 0 — fuse-native drops a 0 option, so they ride in `fsname` too): the kernel
 *    answers a repeated stat/lookup itself. libfuse's default of 1 s made a warm `ls -l` of
 *    1,000 files cost 1,000 lookup round trips through fuse-native (30–100 µs each here, even
 *    for a filesystem that answers at once). Consistency: the mount's own changes go through
 *    the kernel, which updates what it caches; an open reads the version the kernel was told
 *    about (filesystem.ts, `shown`).
 *  - Per-op timeouts on purpose: the library's default 15 s would answer ETIMEDOUT while a
 *    throttled Synapse call is still retrying. Reads get `readTimeoutMs` + slack (the read path
 *    fails with EIO first); metadata ops get the retry budget + slack; flush/fsync/release run
 *    uploads and get none.
 *  - Reads inside a block the cache holds are answered in C (fast-read.ts): after each read JS
 *    answers, the block where the next read starts is offered; a released fd loses its window
 *    before anything else.
 *  - `write` buffers are reused by libfuse: copied before any await.
 *  - Errors are logged once here (debug for the expected ENOENT, warn otherwise).
 */
import { execFile } from 'node:child_process';
import { readdir, readlink } from 'node:fs/promises';
import Fuse from 'fuse-native';
import type { Logger } from 'pino';
import { ERRNO, errnoName, FsError, toErrno } from './errors.js';
import { S3Error } from '../s3/object-store.js';
import { applyDirectReads, applyDirectWrites, smallReaders } from './page-cache-bypass.js';
import { FastReadWindows, loadFastBinding } from './fast-read.js';
import { fuseSessionEnded, grantedFuseTerms, requestFuseTerms, requestPages } from './fuse-terms.js';
import { mountIdAt, mountpointOf, mountPresent, readMountinfoText as readMountinfo } from './preflight.js';
import { MAX_HELD_BACK_MS } from './read-handle.js';
import type { PageCacheStatus } from './mount-status.js';
import { kernelCacheMs, type SynapseFilesystem } from './filesystem.js';
import { Owners, type Owner } from './owners.js';

export interface FuseMountOptions {
  mountpoint: string;
  fsname: string;
  allowOther: boolean;
  /** --uid/--gid: whose the files are; with allowOther, what other users create shows as theirs (owners.ts). */
  owner?: Owner;
  /** libfuse's direct_io: every open file bypasses the kernel page cache. */
  directIo?: boolean;
  /** --read-only: the kernel mounts it `ro` (EROFS before a request reaches us; `/proc/mounts` says so). */
  readOnly?: boolean;
  /** Write-only opens bypass the page cache (default: on when the kernel keeps readers coherent). */
  directWrites?: boolean;
  /** Read-only opens bypass the page cache (default: on; applies where shared mmap of them is granted). */
  directReads?: boolean;
  /** Largest FUSE read/write request to ask the kernel for (default 1 MiB; fuse-terms.ts). */
  maxRequestBytes?: number;
  readTimeoutMs: number;
  metadataTimeoutMs: number;
  debug?: boolean;
}

type Cb = (...args: unknown[]) => void;

/** Directory entries' type bits (readdir's d_type). */
const S_IFDIR = 0o040000;

/** Answers that tools provoke in normal use (lookups of absent files, xattr probes): debug only. */
const EXPECTED = new Set(['ENOENT', 'ENODATA', 'ENOTSUP', 'EEXIST', 'ENOTEMPTY', 'EXDEV', 'EISDIR', 'ENOTDIR']);
/** The mount's own refusals (a right Synapse would refuse, a read-only mount or view): logged by their reason alone. */
const REFUSALS = new Set(['EACCES', 'EPERM', 'EROFS']);

/**
 * fuse-native unmounts with `exec(\`fusermount -uz ${JSON.stringify(mnt)}\`)` — through a shell,
 * and the path may now come from mountinfo (a mount that moved), where a folder name like
 * `$(…)` would run as a command (review). The same call without a shell.
 */
(Fuse as unknown as { unmount: (mnt: string, cb: (err: Error | null) => void) => void }).unmount = (mnt, cb) => {
  // Our mount is gone from there already: what is mounted at the path now is someone else's.
  if (goneFrom.delete(mnt)) {
    cb(null);
    return;
  }
  execFile('fusermount', ['-uz', '--', mnt], (err) => cb(err ?? null));
};

/**
 * Mountpoints whose mount was unmounted from outside: closing such a session must not unmount
 * by path (a mount made there since — the user's next mount — would be detached); libfuse's own
 * teardown, which follows, checks its descriptor before it unmounts anything.
 */
const goneFrom = new Set<string>();

/**
 * fuse-native's deadline for a read: past anything the read path itself allows — --read-timeout,
 * plus up to MAX_HELD_BACK_MS waiting for the mount's own Synapse pacing — so the read path's
 * answer (data, or EIO) always comes first (QA: `git add` failed with ETIMEDOUT after 45 s while
 * its presigned URL waited behind a burst of writes).
 */
export function readOpTimeoutMs(readTimeoutMs: number): number {
  return readTimeoutMs + MAX_HELD_BACK_MS + 15_000;
}

/** The mount option string smuggled through fuse-native's unescaped `fsname`. */
export function fsnameOption(name: string, kernelCacheSeconds: number, directIo = false, readOnly = false): string {
  const safe = name.replace(/[^A-Za-z0-9_.:-]/g, '_');
  const t = Number(kernelCacheSeconds.toFixed(3));
  const base = `${safe},big_writes,max_background=64,congestion_threshold=48,hard_remove,entry_timeout=${t},attr_timeout=${t}`;
  return `${base}${directIo ? ',direct_io' : ''}${readOnly ? ',ro' : ''}`;
}

export class FuseAdapter {
  private fuse: Fuse | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  /** The watch saw this mount unmounted from outside (never unmount by path after that). */
  private goneFromOutside = false;
  /** The mount's identity in /proc/self/mountinfo (preflight.ts mountIdAt), once mounted. */
  mountId: string | undefined;
  private readonly fast: FastReadWindows | undefined;
  /** Write-only opens bypass the page cache (in effect). */
  private readonly directWrites: boolean;
  /** Read-only opens are to bypass it — in effect once the kernel grants shared mmap of them (pageCache). */
  private readonly directReadsWanted: boolean;
  /** Shared mounts: who made what other users created here (owners.ts). */
  private readonly owners: Owners | undefined;

  constructor(
    private readonly fs: SynapseFilesystem,
    private readonly opts: FuseMountOptions,
    private readonly log: Logger,
  ) {
    const binding = loadFastBinding();
    this.fast = binding && new FastReadWindows(binding, fs.blockSize);
    // A reader moving on to a newer version (filesystem.ts readersFollow): its windows hold the old one.
    fs.onReaderMoved = (fd) => this.fast?.forget(fd);
    this.directWrites = applyDirectWrites(opts.directWrites);
    // --direct-io bypasses the page cache for every open already: no per-open decision (or learning) then.
    this.directReadsWanted = applyDirectReads(opts.directIo === true ? false : opts.directReads);
    this.owners = opts.allowOther && opts.owner ? new Owners(opts.owner) : undefined;
    log.debug({ fastRead: this.fast !== undefined, directWrites: this.directWrites, directReadsWanted: this.directReadsWanted }, 'native fast paths');
  }

  /** Where file data meets the kernel's page cache (`synapse-mount status`); direct reads depend on the kernel's grant at INIT. */
  get pageCache(): PageCacheStatus {
    const all = this.opts.directIo === true;
    const reads = all || (this.directReadsWanted && grantedFuseTerms().directIoSharedMmap);
    const small = reads && !all ? smallReaders() : undefined;
    return {
      reads: reads ? 'bypassed' : 'kernel',
      ...(small ? { smallReaders: small } : {}),
      readWriteOpens: all ? 'bypassed' : 'kernel',
      writeOnlyOpens: all || this.directWrites ? 'bypassed' : 'kernel',
    };
  }

  /**
   * After JS answered `n` bytes at `pos` of `fd`: hand C the block where the next read starts, or,
   * after a random read, the block just read (kept with the fd's others: fast-read.ts).
   */
  private offerWindow(fd: number, pos: number, n: number): void {
    if (!this.fast || n <= 0) return;
    try {
      const random = this.fs.readWasRandom(fd);
      this.fast.offer(fd, random ? pos : pos + n, random ? 'keep' : 'next', (f, offset, onDropped) => this.fs.readWindow(f, offset, onDropped, !random));
    } catch (err) {
      this.log.warn({ err }, 'read fast path: window not set');
    }
  }

  /** Answer -errno; logged at warn unless the errno is routine (EXPECTED) or `byDesign` (an unsupported op tools probe). */
  private fail(op: string, path: string, err: unknown, cb: Cb, byDesign = false): void {
    const name = errnoName(err);
    const level = byDesign || EXPECTED.has(name) ? 'debug' : 'warn';
    if (err instanceof S3Error && err.code === 'PreconditionFailed') {
      // Expected, and worth one plain line rather than a stack: the pinned version is gone.
      this.log.warn({ op, path, errno: name }, `${op} failed: the file was replaced in S3 after it was opened; this open file answers EIO, a new open reads the new version`);
    } else if (err instanceof FsError && err.cause === undefined && REFUSALS.has(name) && level === 'warn') {
      // The mount's own refusal (a right Synapse would refuse, a scratch-name view, a read-only
      // mount): its message says why; its stack says nothing (QA: ≈ 1 KB per refused write).
      this.log.warn({ op, path, errno: name, reason: err.message }, `${op} failed`);
    } else if (this.log.isLevelEnabled(level)) this.log[level]({ op, path, errno: name, err }, `${op} failed`);
    cb(toErrno(err));
  }

  /** Run an async op and answer with cb(0, result) or cb(-errno). */
  private run<T>(op: string, path: string, cb: Cb, fn: () => Promise<T>, answer: (v: T) => unknown[] = (v) => [0, v]): void {
    fn().then((v) => cb(...answer(v)), (err: unknown) => this.fail(op, path, err, cb));
  }

  private ops(): Record<string, unknown> {
    const fs = this.fs;
    const owners = this.owners;
    const getattr = (path: string, cb: Cb): void => {
      // The kernel's lookups: answered at once when memory has the answer (no promise chain).
      const now = fs.getattrNow(path);
      if (now) cb(0, owners ? owners.apply(path, now) : now);
      else this.run('getattr', path, cb, async () => {
        const stat = await fs.getattr(path);
        return owners ? owners.apply(path, stat) : stat;
      });
    };
    return {
      getattr,
      // fstat by fd (fuse-native's wrapper patched to pass it: scripts/fix-fuse-native.mjs 5.):
      // by path while there is one (an open directory's getattr carries one too: 9.).
      fgetattr: (path: string, fd: number, cb: Cb) => {
        if (path !== '') getattr(path, cb);
        else this.run('fgetattr', path, cb, () => fs.fgetattr(path, fd));
      },
      // `.` and `..` as every Linux filesystem lists them (`ls -a`; libfuse 2 adds none). No path
      // (a directory removed while open; flag_nullpath_ok): ENOENT — '' would resolve to the root.
      // With each entry's type (d_type: only the type bits of the stat are used by libfuse 2).
      readdir: (path: string, cb: Cb) => this.run('readdir', path, cb, async () => {
        if (path === '') throw new FsError('ENOENT', 'directory removed while open');
        const dot = { name: '.', mode: S_IFDIR };
        return [dot, { ...dot, name: '..' }, ...await fs.readdirTyped(path)];
      }, (entries) => [0, entries.map((e) => e.name), entries.map((e) => ({ mode: e.mode }))]),
      open: (path: string, flags: number, cb: Cb) => this.run('open', path, cb, () => fs.open(path, flags)),
      release: (path: string, fd: number, cb: Cb) => {
        this.fast?.forget(fd);
        this.run('release', path, cb, () => fs.release(fd), () => [0]);
      },
      read: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
        // Answered at once when the block cache has the bytes (no promise chain per request).
        let r: number | Promise<number>;
        try {
          r = fs.readAny(fd, buf, len, pos);
        } catch (err) {
          this.fail('read', path, err, cb);
          return;
        }
        if (typeof r === 'number') {
          cb(r);
          this.offerWindow(fd, pos, r);
        } else {
          r.then((n) => {
            cb(n);
            this.offerWindow(fd, pos, n);
          }, (err: unknown) => this.fail('read', path, err, cb));
        }
      },
      readlink: (path: string, cb: Cb) => this.run('readlink', path, cb, () => fs.readlink(path)),
      statfs: (path: string, cb: Cb) => this.run('statfs', path, cb, () => fs.statfs()),
      listxattr: (path: string, cb: Cb) => this.run('listxattr', path, cb, () => fs.listxattr(path)),
      getxattr: (path: string, name: string, _pos: number, cb: Cb) => {
        // `ls -l` asks every file for security.selinux and system.posix_acl_access: answer
        // those at once (ENOTSUP makes ls stop asking) — only user.* names are ours.
        if (!name.startsWith('user.')) {
          cb(-ERRNO.ENOTSUP);
          return;
        }
        this.run('getxattr', path, cb, () => fs.getxattr(path, name), (v) => [0, v]);
      },
      // uid: the creating process's (scripts/fix-fuse-native.mjs 10.); flags: its open flags (11.);
      // both undefined with the prebuild.
      create: (path: string, mode: number, cb: Cb, uid?: number, _gid?: number, flags?: number) => this.run('create', path, cb, async () => {
        const fd = await fs.create(path, mode, flags);
        owners?.created(path, uid);
        return fd;
      }),
      write: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
        // `buf` is libfuse's: valid until we answer (writes have no fuse-native timeout, so only
        // we answer), detached after. The write path copies what it keeps (spool file, part
        // buffer) before it resolves, so no copy here — a fresh 128 KiB per op was a third of
        // a write's memory traffic.
        this.run('write', path, cb, () => fs.write(fd, buf.subarray(0, len), pos), (n) => [n]);
      },
      flush: (path: string, fd: number, cb: Cb) => this.run('flush', path, cb, () => fs.flush(fd), () => [0]),
      fsync: (path: string, _datasync: boolean, fd: number, cb: Cb) => this.run('fsync', path, cb, () => fs.fsync(fd), () => [0]),
      truncate: (path: string, size: number, cb: Cb) => this.run('truncate', path, cb, () => fs.truncate(path, size), () => [0]),
      ftruncate: (path: string, fd: number, size: number, cb: Cb) => this.run('ftruncate', path, cb, () => fs.ftruncate(fd, size), () => [0]),
      mkdir: (path: string, _mode: number, cb: Cb, uid?: number) => this.run('mkdir', path, cb, async () => {
        await fs.mkdir(path);
        owners?.created(path, uid);
      }, () => [0]),
      rmdir: (path: string, cb: Cb) => this.run('rmdir', path, cb, async () => {
        await fs.rmdir(path);
        owners?.removed(path);
      }, () => [0]),
      unlink: (path: string, cb: Cb) => this.run('unlink', path, cb, async () => {
        await fs.unlink(path);
        owners?.removed(path);
      }, () => [0]),
      rename: (src: string, dest: string, cb: Cb) => this.run('rename', src, cb, async () => {
        const kind = owners && fs.table.resolveCached(src)?.kind;
        await fs.rename(src, dest);
        // Unknown kind (not in memory): treated as a folder, which moves what is below it too.
        owners?.renamed(src, dest, kind === undefined || kind === 'dir');
      }, () => [0]),
      utimens: (path: string, atime: number, mtime: number, cb: Cb) =>
        this.run('utimens', path, cb, () => fs.utimens(path, atime, mtime), () => [0]),
      chmod: (path: string, _mode: number, cb: Cb) => this.run('chmod', path, cb, () => fs.chmod(path), () => [0]),
      chown: (path: string, _uid: number, _gid: number, cb: Cb) => this.run('chown', path, cb, () => fs.chmod(path), () => [0]),
      // Not supported by design, and probed routinely (`mv -b` tries link() first): no warning each time.
      symlink: (_src: string, dest: string, cb: Cb) => this.fail('symlink', dest, fs.unsupported(dest, 'creating symbolic links'), cb, true),
      link: (_src: string, dest: string, cb: Cb) => this.fail('link', dest, fs.unsupported(dest, 'hard links'), cb, true),
      // FIFOs and device files: no Synapse equivalent (without the op, libfuse answered ENOSYS; QA).
      mknod: (path: string, _mode: number, _dev: number, cb: Cb) => this.fail('mknod', path, fs.unsupported(path, 'creating FIFOs and device files'), cb, true),
      // The mount's own attributes are read-only: a set to their value is a no-op, any other ENOTSUP.
      setxattr: (path: string, name: string, value: Buffer, _p: number, _f: number, cb: Cb) =>
        this.run('setxattr', path, cb, () => fs.setxattr(path, name, value), () => [0]),
      removexattr: (path: string, name: string, cb: Cb) => this.run('removexattr', path, cb, () => fs.removexattr(path, name), () => [0]),
    };
  }

  async mount(): Promise<void> {
    const meta = this.opts.metadataTimeoutMs;
    // Shared mmap of direct-I/O files matters to readable ones only (write-only opens cannot be mapped).
    requestFuseTerms(requestPages(this.opts.maxRequestBytes), this.opts.directIo === true || this.directReadsWanted);
    const fuse = new Fuse(this.opts.mountpoint, this.ops(), {
      fsname: fsnameOption(this.opts.fsname, kernelCacheMs(this.fs.table.ttlMs) / 1000, this.opts.directIo === true, this.opts.readOnly === true),
      subtype: 'synapse-mount',
      allowOther: this.opts.allowOther,
      // Shared mounts: let the kernel enforce --uid/--gid/--file-mode/--dir-mode for other users.
      defaultPermissions: this.opts.allowOther,
      debug: this.opts.debug ?? false,
      timeout: {
        default: meta,
        read: readOpTimeoutMs(this.opts.readTimeoutMs),
        flush: false,
        fsync: false,
        release: false,
        write: false,
        // A tool's temporary file renamed onto its real name is published by the rename (filesystem.ts).
        rename: false,
        create: meta,
      },
    });
    await new Promise<void>((resolve, reject) => fuse.mount((err?: Error | null) => (err ? reject(err) : resolve())));
    this.fuse = fuse;
    // Known by id from now on (watchForUnmount): a folder above the mountpoint renamed right
    // after the mount left nothing at the path to find it by (QA).
    const info = await readMountinfo();
    if (info !== undefined) this.mountId = mountIdAt(this.opts.mountpoint, info);
  }

  /**
   * Watch /proc/self/mountinfo: fuse-native has no destroy callback, so an outside `umount`
   * would otherwise leave this process serving nothing forever.
   */
  watchForUnmount(onGone: () => void, intervalMs = 1000): void {
    // Found by its path once (canonical, mount.ts: compared as is, never resolved here — a stat
    // of it from this process would ask this very mount), then by its mount id: a rename of a
    // folder above the mountpoint changes the path mountinfo shows, not the mount.
    const check = async (): Promise<void> => {
      const info = await readMountinfo();
      // Unreadable (EMFILE under load): no verdict — never take that for an unmount.
      if (info !== undefined) {
        this.mountId ??= mountIdAt(this.opts.mountpoint, info);
        // The kernel's word first: a mount made right after an outside umount can take this one's
        // id and device, and look present in mountinfo while this process serves nothing.
        const present = this.mountId !== undefined && mountPresent(this.mountId, info) && !fuseSessionEnded();
        if (!present) {
          this.goneFromOutside = true;
          // Gone: its id and device are free for the next mount — never unmount by them (review).
          this.mountId = undefined;
          this.stopWatching();
          onGone();
          return;
        }
      }
      this.watchTimer = setTimeout(() => void check(), intervalMs);
      this.watchTimer.unref();
    };
    this.watchTimer = setTimeout(() => void check(), intervalMs);
    this.watchTimer.unref();
  }

  /**
   * The kernel still talks to this process: libfuse holds /dev/fuse open until its loop ends,
   * which it does once a lazily unmounted filesystem's last file is closed. (The RELEASE of that
   * last file may never come — the kernel aborts the connection — so counting our open handles
   * alone waited forever.)
   */
  async sessionAlive(): Promise<boolean> {
    if (fuseSessionEnded()) return false;
    const fds = await readdir('/proc/self/fd').catch(() => [] as string[]);
    for (const fd of fds) {
      if ((await readlink(`/proc/self/fd/${fd}`).catch(() => '')) === '/dev/fuse') return true;
    }
    return false;
  }

  private stopWatching(): void {
    if (this.watchTimer) clearTimeout(this.watchTimer);
    this.watchTimer = undefined;
  }

  async unmount(): Promise<void> {
    this.stopWatching();
    const fuse = this.fuse;
    if (!fuse) return;
    this.fuse = undefined;
    // fuse-native unmounts by the path it mounted at: where the mount is now, if a folder above
    // it was renamed since (QA: the unmount failed and left a dead mount at the new path).
    // Only while the watch last saw it (mountId is dropped once the mount is gone).
    const info = this.mountId ? await readMountinfo() : undefined;
    const now = info !== undefined && this.mountId ? mountpointOf(this.mountId, info) : undefined;
    if (now && now !== this.opts.mountpoint) (fuse as unknown as { mnt: string }).mnt = now;
    if (this.goneFromOutside || fuseSessionEnded()) goneFrom.add((fuse as unknown as { mnt: string }).mnt);
    await new Promise<void>((resolve) => fuse.unmount(() => resolve()));
    this.fast?.clearAll();
  }
}
