/**
 * The only module that knows fuse-native: turns SynapseFilesystem's async methods into
 * fuse-native callbacks and negative errnos (CONVENTIONS §8 — treat its contract as hostile).
 *
 *  - Mount options: fuse-native has no option for big_writes or max_background, but its option
 *    string is not escaped, so they ride in `fsname` (DESIGN §6): 128 KiB writes instead of
 *    4 KiB, 64 requests in flight for parallel readahead. hard_remove so an unlinked open file
 *    never becomes a `.fuse_hidden…` entity. Pinned to fuse-native 2.2.6.
 *  - Per-op timeouts on purpose: the library's default 15 s would answer ETIMEDOUT while a
 *    throttled Synapse call is still retrying. Reads get `readTimeoutMs` + slack (the read path
 *    fails with EIO first); metadata ops get the retry budget + slack; flush/fsync/release run
 *    uploads and get none.
 *  - `write` buffers are reused by libfuse: copied before any await.
 *  - Errors are logged once here (debug for the expected ENOENT, warn otherwise).
 */
import { readFile } from 'node:fs/promises';
import Fuse from 'fuse-native';
import type { Logger } from 'pino';
import { errnoName, toErrno } from './errors.js';
import type { SynapseFilesystem } from './filesystem.js';

export interface FuseMountOptions {
  mountpoint: string;
  fsname: string;
  allowOther: boolean;
  readTimeoutMs: number;
  metadataTimeoutMs: number;
  debug?: boolean;
}

type Cb = (...args: unknown[]) => void;

/** The mount option string smuggled through fuse-native's unescaped `fsname`. */
export function fsnameOption(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_.:-]/g, '_');
  return `${safe},big_writes,max_background=64,congestion_threshold=48,hard_remove,auto_cache`;
}

export class FuseAdapter {
  private fuse: Fuse | undefined;
  private watchTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly fs: SynapseFilesystem,
    private readonly opts: FuseMountOptions,
    private readonly log: Logger,
  ) {}

  private fail(op: string, path: string, err: unknown, cb: Cb): void {
    const name = errnoName(err);
    const level = name === 'ENOENT' || name === 'ENODATA' ? 'debug' : 'warn';
    if (this.log.isLevelEnabled(level)) this.log[level]({ op, path, errno: name, err }, `${op} failed`);
    cb(toErrno(err));
  }

  /** Run an async op and answer with cb(0, result) or cb(-errno). */
  private run<T>(op: string, path: string, cb: Cb, fn: () => Promise<T>, answer: (v: T) => unknown[] = (v) => [0, v]): void {
    fn().then((v) => cb(...answer(v)), (err: unknown) => this.fail(op, path, err, cb));
  }

  private ops(): Record<string, unknown> {
    const fs = this.fs;
    return {
      getattr: (path: string, cb: Cb) => this.run('getattr', path, cb, () => fs.getattr(path)),
      readdir: (path: string, cb: Cb) => this.run('readdir', path, cb, () => fs.readdir(path)),
      open: (path: string, flags: number, cb: Cb) => this.run('open', path, cb, () => fs.open(path, flags)),
      release: (path: string, fd: number, cb: Cb) => this.run('release', path, cb, () => fs.release(fd), () => [0]),
      read: (path: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) =>
        this.run('read', path, cb, () => fs.read(fd, len, pos), (data) => {
          const n = data.copy(buf, 0, 0, Math.min(len, data.length));
          return [n];
        }),
      readlink: (path: string, cb: Cb) => this.run('readlink', path, cb, () => fs.readlink(path)),
      statfs: (path: string, cb: Cb) => this.run('statfs', path, cb, () => fs.statfs()),
      listxattr: (path: string, cb: Cb) => this.run('listxattr', path, cb, () => fs.listxattr(path)),
      getxattr: (path: string, name: string, _pos: number, cb: Cb) =>
        this.run('getxattr', path, cb, () => fs.getxattr(path, name), (v) => [0, v]),
      // Everything that changes Synapse is refused until the write path is implemented.
      create: (path: string, _mode: number, cb: Cb) => this.fail('create', path, fs.readOnlyError(path), cb),
      write: (path: string, _fd: number, _buf: Buffer, _len: number, _pos: number, cb: Cb) => this.fail('write', path, fs.readOnlyError(path), cb),
      truncate: (path: string, _size: number, cb: Cb) => this.fail('truncate', path, fs.readOnlyError(path), cb),
      ftruncate: (path: string, _fd: number, _size: number, cb: Cb) => this.fail('ftruncate', path, fs.readOnlyError(path), cb),
      mkdir: (path: string, _mode: number, cb: Cb) => this.fail('mkdir', path, fs.readOnlyError(path), cb),
      rmdir: (path: string, cb: Cb) => this.fail('rmdir', path, fs.readOnlyError(path), cb),
      unlink: (path: string, cb: Cb) => this.fail('unlink', path, fs.readOnlyError(path), cb),
      rename: (src: string, _dest: string, cb: Cb) => this.fail('rename', src, fs.readOnlyError(src), cb),
      symlink: (_src: string, dest: string, cb: Cb) => this.fail('symlink', dest, fs.readOnlyError(dest), cb),
      link: (_src: string, dest: string, cb: Cb) => this.fail('link', dest, fs.readOnlyError(dest), cb),
      chmod: (path: string, _mode: number, cb: Cb) => this.fail('chmod', path, fs.readOnlyError(path), cb),
      chown: (path: string, _uid: number, _gid: number, cb: Cb) => this.fail('chown', path, fs.readOnlyError(path), cb),
      utimens: (path: string, _a: number, _m: number, cb: Cb) => this.fail('utimens', path, fs.readOnlyError(path), cb),
      setxattr: (path: string, _n: string, _v: Buffer, _p: number, _f: number, cb: Cb) => this.fail('setxattr', path, fs.readOnlyError(path), cb),
    };
  }

  async mount(): Promise<void> {
    const meta = this.opts.metadataTimeoutMs;
    const fuse = new Fuse(this.opts.mountpoint, this.ops(), {
      fsname: fsnameOption(this.opts.fsname),
      subtype: 'synapse-mount',
      allowOther: this.opts.allowOther,
      debug: this.opts.debug ?? false,
      timeout: {
        default: meta,
        read: this.opts.readTimeoutMs + 15_000,
        flush: false,
        fsync: false,
        release: false,
        write: false,
        create: meta,
      },
    });
    await new Promise<void>((resolve, reject) => fuse.mount((err?: Error | null) => (err ? reject(err) : resolve())));
    this.fuse = fuse;
  }

  /**
   * Watch /proc/self/mountinfo: fuse-native has no destroy callback, so an outside `umount`
   * would otherwise leave this process serving nothing forever.
   */
  watchForUnmount(onGone: () => void, intervalMs = 1000): void {
    const escaped = this.opts.mountpoint.replace(/ /g, '\\040');
    const check = async (): Promise<void> => {
      const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
      const present = info.split('\n').some((line) => line.split(' ')[4] === escaped);
      if (!present) {
        this.stopWatching();
        onGone();
        return;
      }
      this.watchTimer = setTimeout(() => void check(), intervalMs);
      this.watchTimer.unref();
    };
    this.watchTimer = setTimeout(() => void check(), intervalMs);
    this.watchTimer.unref();
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
    await new Promise<void>((resolve) => fuse.unmount(() => resolve()));
  }
}
