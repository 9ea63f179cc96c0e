/**
 * SynapseFilesystem: POSIX semantics over Synapse, as async methods that throw FsError.
 *
 * Knows nothing of fuse-native (fuse-adapter.ts turns these into callbacks and errnos) — so the
 * whole filesystem can be driven from tests without a kernel. Paths are absolute within the
 * mount ("/", "/a/b.txt").
 *
 * What each op costs in Synapse requests (DESIGN §3):
 *  - readdir: the folder's children pages when the listing is older than the TTL, else nothing;
 *    sizes of its files are then fetched in the background.
 *  - getattr: nothing when the size is known; one version lookup otherwise.
 *  - open: one bundle2 unless this (entity, version) was opened before; STS once per storage
 *    location per token lifetime; reads then cost no Synapse request (presigned storage: one
 *    batch call per 20 s of reading).
 *
 * Writes (DESIGN §3, §5): an fd opened for writing shares one ActiveFile per path (so every
 * reader and writer of the path sees the written bytes); flush/fsync publish, release drops
 * the spool. Names Synapse refuses → EINVAL; editors' scratch names stay local (names.ts).
 *
 * Kernel attribute cache: the kernel keeps each getattr/lookup answer for `kernelCacheMs(ttl)`
 * (2 × --metadata-ttl; fuse-adapter.ts passes it as entry_timeout/attr_timeout). While it may
 * still hold an answer, the kernel caps reads at the size it
 * was told (and appends at it), so an open of that path reads — and a write builds on — exactly
 * the version that answer described (`shown`), even if a newer one has appeared in Synapse
 * since: stat and read always agree, never a newer version cut to the old size. The mount's own
 * changes go through the kernel, which updates its attributes itself; they drop `shown` so
 * the next open takes the listing's (just published) version.
 *
 * INVARIANT: every fd in `handles` maps to a handle opened by open()/create() and not yet released.
 * INVARIANT: `active` holds exactly the ActiveFiles with refs > 0, keyed by their current path.
 */
import { constants as fsConstants } from 'node:fs';
import { open as openFile, stat, type FileHandle } from 'node:fs/promises';
import { LRUCache } from 'lru-cache';
import { entryBound } from './lru-bound.js';
import type { Logger } from 'pino';
import type { SynapseApi } from '../synapse/api.js';
import { SynapseError } from '../synapse/errors.js';
import type { RangeSource } from '../s3/object-store.js';
import { CONCRETE, type Entity } from '../synapse/types.js';
import { BlockCache } from './block-cache.js';
import { errnoName, FsError } from './errors.js';
import { GONE_DIR_FH } from './fuse-terms.js';
import type { FileSources } from './file-sources.js';
import { RemovedNames } from './removed-names.js';
import { isLocalDirId, type FileSize, type FsNode, type InodeTable } from './inode-table.js';
import { heldTempTarget, isGitLockPath, isHeldTempName, isMkstempCreate, isProbeName, isScratchName, isSqliteSideFile, isStagingFolderName, MAX_NAME_LENGTH, NAME_MAX, nameProblem } from './names.js';
import type { MtimeStore } from './mtime-log.js';
import type { Publisher } from './publisher.js';
import { ReadHandle, type ReadaheadOptions } from './read-handle.js';
import { KeptFiles, type KeptFile } from './kept-files.js';
import { Permissions } from './permissions.js';
import type { Spool, SpoolFile } from './spool.js';
import { MemoryBudget, StreamingUpload, type FailedPartStore, type PartBuffers } from '../s3/multipart-upload.js';
import { guessContentType, readPart, VersionConflict } from './publisher.js';
import { ActiveFile, EmptyVersionRefused, entityGone, type ActiveFileInit } from './write-handle.js';

/** How long a closed temporary file (names.ts isHeldTempName) waits for its rename before it is published as it is. */
export const HELD_TEMP_MS = 10_000;
/** How long a rename of a held temporary file waits for the RELEASE of its tool's close. */
const HELD_RELEASE_WAIT_MS = 1_000;
/**
 * The same into a mount-local staging folder (rsync --delay-updates' `.~tmp~`), where a file still
 * open cannot go (EBUSY): its tool closed it, so the RELEASE is on its way — waited for longer, as
 * a late one on a loaded machine would fail the whole rsync (review). A real-name rename waits
 * less: Python's atomic write may os.replace a NamedTemporaryFile it still holds open.
 */
const STAGING_RELEASE_WAIT_MS = 10_000;

export interface Stat {
  mode: number;
  size: number;
  mtime: Date;
  atime: Date;
  ctime: Date;
  uid: number;
  gid: number;
  nlink: number;
  blocks: number;
  blksize: number;
}

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  fsid: number;
  flag: number;
  namemax: number;
}

export interface FilesystemOptions {
  readOnly: boolean;
  uid: number;
  gid: number;
  fileMode: number;
  dirMode: number;
  readahead: ReadaheadOptions;
  /** mtimes logged for the next mount, per (entity, version) (mtime-log.ts). */
  mtimeLog?: MtimeStore;
  /** How long a closed temporary file waits for its rename (default HELD_TEMP_MS; tests). */
  heldTempMs?: number;
  logger?: Logger;
}

/** `size` bytes of `file` into `into` (a kept file's bytes into a new spool file), block by block. */
async function copyInto(file: string, size: number, into: SpoolFile): Promise<void> {
  // readPart: the publisher's reader of spool files (EIO if the file is shorter).
  for (let off = 0; off < size; off += COPY_CHUNK) await into.write(await readPart(file, off, Math.min(COPY_CHUNK, size - off)), off);
}
const COPY_CHUNK = 8 * 1024 * 1024;

/** How the patched fuse-native passes UTIME_OMIT to utimens (scripts/fix-fuse-native.mjs 6.). */
const UTIME_OMIT_MS = 1;

/** A node Synapse has: not a file being written or kept local, not a mount-local folder. */
const inSynapse = (node: FsNode): boolean => !!node.entityId && !isLocalDirId(node.entityId);

/** How a SQLite database held back mid-transaction is journaled (JournalEntry.incomplete starts so). */
const SQLITE_HELD_BACK = 'a SQLite database closed mid-transaction';

/** The first bytes of a SQLite rollback journal that can still undo a transaction (a "hot" one). */
const SQLITE_JOURNAL_MAGIC = Buffer.from('d9d505f920a163d7', 'hex');
/**
 * A file open for writing whose bytes its earlier readers read instead of their own version
 * (readersShare): once it differs from what is published — before, reading it would copy the
 * whole published file into the spool first (a `touch` during a long md5sum) for the same bytes
 * — and unless a write failed (its bytes are incomplete).
 */
const sharedNow = (file: ActiveFile): boolean => (file.dirty || file.publishing) && !file.broken
  // Not a stream: reading it would end the stream (a read-back from S3); they read their own
  // version until it is published.
  && !file.streaming;
/** Up to `length` bytes at `position` of a file open for writing, into `target`. */
const readActive = (file: ActiveFile, target: Buffer, length: number, position: number): Promise<number> =>
  file.read(position, length).then((data) => data.copy(target, 0, 0, Math.min(length, data.length)));
/**
 * The version a folder's mtime is logged under (mtime-log.ts): folders have no versions in
 * Synapse (files' start at 1), so a folder's time stands until it is set or moved again.
 */
const FOLDER_LOGGED_VERSION = 0;
/**
 * A SQLite journal (or WAL index) in Synapse itself, published before session 29 kept them in the
 * mount — listed under its own name, not a backup view a rename made: rm deletes it (review: a
 * hot one left by a killed program made its database unusable, and rm changed nothing).
 */
const isStaleSqliteSideFile = (node: FsNode): boolean => isSqliteSideFile(node.name) && !node.hides && !node.pinnedVersion;

/** A scratch name showing a version of a published file (`mv f f~`: a backup view, read-only). */
const isView = (node: FsNode): boolean => node.entityId !== '' && isScratchName(node.name);
/** `mtimes` key of one version of a file (SynapseFilesystem.mtimes). */
const versionMtimeKey = (entityId: string, version: number): string => `${entityId}@${version}`;
/** What fuse-native's prebuild passes for UTIME_NOW and UTIME_OMIT (their tv_nsec in ms). */
const PREBUILD_UTIME_SPECIAL_MS = 1073;
const O_ACCMODE = 0o3;
const O_TRUNC = 0o1000;
/** Linux's O_DSYNC bit, which O_SYNC includes. */
const O_DSYNC = 0o10000;
const { O_EXCL } = fsConstants;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

export const XATTR_NAMES = ['user.synapse.id', 'user.synapse.version', 'user.synapse.md5'] as const;

/**
 * A read-only fd of a published file. `version`: the one `reader` reads, or is moving on to
 * (`following`: the new reader is being made) — a version this mount published after the open
 * (readersFollow). `detached`: the fd's file was replaced or became a backup view; its entity
 * is another file's now, so nothing published there is followed (readersOfReplaced).
 */
interface ReadOpen {
  kind: 'read'; node: FsNode; reader: ReadHandle; version: number; following?: Promise<void>; detached?: boolean;
  /** Where its last read found the end of its version — no read of its last byte since (followAtEnd). */
  atEnd?: number;
  /** A version it could not move on to (follow failed): not tried again at every read at the end. */
  unreachable?: number;
  /** The file is open for writing here: the fd reads the writer's bytes meanwhile (readersShare). */
  live?: ActiveFile;
}

/**
 * A read-only fd of a file only this mount lists, not open for writing when opened (an empty
 * placeholder). `live`: the file is open for writing now — its bytes are read; once it is
 * published the fd becomes a reader of it (`becoming`: being made; readersFollow's rule).
 */
interface EmptyOpen {
  kind: 'empty'; parentId: string; name: string; live?: ActiveFile; becoming?: Promise<void>;
  /** Its file was removed or replaced: whatever takes the name later is another file. */
  detached?: boolean;
}

type OpenHandle =
  | ReadOpen
  /**
   * `wroteIn` / `changedIn`: the file's publishEpoch when this fd last wrote / wrote or
   * truncated. Flush and fsync publish only if that is the current epoch: a reader's close must
   * not publish another process's half-written file (QA found `head` and `md5sum` doing so), nor
   * may a writer whose bytes were published already (an fsync) publish another fd's writes since.
   */
  | { kind: 'write'; path: string; file: ActiveFile; writable: boolean; wroteIn?: number; changedIn?: number; syncWrites?: boolean }
  | { kind: 'kept'; view: KeptFile; fh: FileHandle }
  | EmptyOpen;

export interface WriteDeps {
  publisher: Publisher;
  spool: Spool;
  /** Shared bound on part buffers of streaming uploads (--max-write-memory). */
  budget: MemoryBudget;
  partSize: number;
  /** Part buffers shared by all streaming uploads (reused, not fresh memory per part). */
  partBuffers?: PartBuffers;
  /** After a publish, while the spool still holds the bytes (e.g. fill the disk cache). */
  onPublished?: (fileHandleId: string, spoolFile: string, size: number) => Promise<void>;
}

/**
 * Parts in flight per streaming upload. A writer is fed by one synchronous FUSE write at a time,
 * so S3 must absorb parts as fast as they fill: 8 × 16 MiB kept the local bench's write at
 * 89–94 MiB/s against 77–83 with 4 (the direct client's setting is 8 too); --max-write-memory
 * still bounds all uploads together.
 */
const PARTS_IN_FLIGHT = 8;

/** Longest the kernel keeps an answer (--metadata-ttl indefinite). */
const KERNEL_CACHE_MAX_MS = 3_600_000;

/**
 * How long the kernel may keep a getattr/lookup answer: twice --metadata-ttl (0 → the kernel
 * asks every time), at most an hour. Why twice: the inode table trusts a folder snapshot for the
 * TTL *after* it finished loading, so an answer given while it loads — every lookup of a cold
 * `ls -l` waits for its file's size, i.e. is part of the load — comes from a snapshot trusted up
 * to load time + TTL later. A cold `ls -l` of 1,000 files loads for ≈ 70 s (Synapse's 600
 * requests/min): with the kernel keeping answers only for the TTL, the ≈ 580 answered in its
 * first 10 s were gone by its end and the next `ls -l` looked them all up again. The price: an
 * answer given late in a snapshot's life can outlive it by up to 2 × TTL — a path the kernel
 * already knows may show a remote change up to 2 × TTL later than the folder listing does.
 */
export function kernelCacheMs(metadataTtlMs: number): number {
  return Math.min(2 * Math.max(0, metadataTtlMs), KERNEL_CACHE_MAX_MS);
}

/** A file's attributes as last told to the kernel. */
interface Shown {
  entityId: string;
  version: number;
  size: number;
  md5: string | undefined;
  /** The kernel was shown this kept file (kept-files.ts), not a version of the entity. */
  keptJournalId?: string;
}

function joinPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

function parentPath(path: string): string {
  const i = path.lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}

/** `node`'s ACL benefactor, to carry over to a node of the same entity. */
function benefactorOf(node: FsNode | undefined): Pick<FsNode, 'benefactorId'> {
  return node?.benefactorId ? { benefactorId: node.benefactorId } : {};
}

/**
 * The ACL benefactor an entity without an ACL of its own has in `folder`: a new one (Synapse
 * gives it none), or one moved there. permissions.ts keys answers by benefactor — without this,
 * each file or folder the mount created cost a permission request of its own at its first
 * change (rsync's temp file renamed onto its target, `mkdir dA; mv -T dA dB`).
 */
function inheritedIn(folder: FsNode | undefined): Pick<FsNode, 'benefactorId'> {
  if (folder?.benefactorId) return { benefactorId: folder.benefactorId };
  return folder?.project ? { benefactorId: folder.entityId } : {};
}

/** A moved entity's benefactor: its own ACL stays; an inherited one is its new folder's; unknown stays unknown. */
function benefactorAfterMove(node: FsNode, destParent: FsNode): Pick<FsNode, 'benefactorId'> {
  if (node.benefactorId === undefined) return {};
  return node.benefactorId === node.entityId ? benefactorOf(node) : inheritedIn(destParent);
}

/** EXDEV for a move across an STS folder's boundary (mv then copies and deletes). */
function stsMoveRefused(src: string, dest: string, cause?: unknown): FsError {
  return new FsError('EXDEV', `${src} → ${dest}: Synapse refuses moves into or out of an STS folder`, cause === undefined ? undefined : { cause });
}

/** 409: the name is taken in the parent — by an entity another client made after our listing. */
function isNameTaken(err: unknown): boolean {
  return err instanceof SynapseError && err.status === 409;
}

/**
 * The plain move's 409 (renameNow's update, before anything local changed): the only rename
 * failure rename() lists the folder again and retries for. Other paths (a file open for
 * writing) change local state before asking Synapse, and a repeat would build on that (review).
 */
class MoveNameTaken extends Error {
  constructor(readonly synapseError: unknown) {
    super((synapseError as Error).message);
  }
}

/** Synapse answers a move into or out of an STS folder with 400 naming STS. */
function isStsMoveRefusal(err: unknown): boolean {
  return err instanceof SynapseError && err.status === 400 && /\bSTS\b/i.test(err.reason);
}

export class SynapseFilesystem {
  private readonly handles = new Map<number, OpenHandle>();
  /** Versions whose S3 object is not the size Synapse recorded, already warned about (open). */
  private readonly sizeWarned = new LRUCache<string, true>({ max: 10_000 });
  /** Asked before changes Synapse would refuse only at close (permissions.ts). */
  private readonly permissions: Permissions;
  /** Files waiting for recover, shown read-only until then (kept-files.ts). */
  private readonly kept: KeptFiles | undefined;
  private nextFd = 10;
  /** Files a last-close publish is publishing (publishAtLastClose). */
  private readonly lastPublish = new WeakMap<ActiveFile, Promise<void>>();
  /** baseSource(): sources of versions files open for writing build on, by `${entityId}.${version}`. */
  private readonly baseSources = new LRUCache<string, Promise<RangeSource>>({ max: 64 });
  /** Files lastClosed has let go (or is letting go). */
  private readonly letGo = new WeakSet<ActiveFile>();
  /** Removed files kept for the readers sharing their bytes (lastClosed, sharerClosed). */
  private readonly lingering = new Set<ActiveFile>();
  /** Renames of held temporary files waiting for the RELEASE that follows their tool's close (renameLocalFile). */
  private readonly releaseWaiters = new Map<ActiveFile, Array<() => void>>();
  /** Files this mount removed a moment ago: made again under their name, they come back (removed-names.ts). */
  private readonly removedNames = new RemovedNames();
  /** A read-only fd moves on to a newer version: its read fast-path windows must go (fuse-adapter.ts). */
  onReaderMoved: ((fd: number) => void) | undefined;
  private readonly linkTargets = new Map<string, Promise<string>>();
  /** Files open for writing, by path. */
  private readonly active = new Map<string, ActiveFile>();
  /** Publishes running at release (touch, files only created or truncated), by path. */
  private readonly releasing = new Map<string, Promise<void>>();
  /**
   * mtimes Synapse does not keep, so a second `rsync -a` skips and vim sees the time it wrote:
   * per file version (`<id>@<version>`: set by utimens, or left by its writer here), per folder
   * (`<id>`: utimens, or an entry added or removed) and per local-only file (`local:<path>`); a
   * file open for writing holds its own (ActiveFile.mtime). Versions' and folders' times are
   * also logged (mtime-log.ts) for the next mount. Bounded (a long-lived mount rsync'd into
   * daily would otherwise grow without end): a time dropped here is read from the log, else
   * Synapse's modifiedOn shows — then the next rsync copies that file once more, and, its bytes
   * unchanged, that publishes no new version (the publish rule).
   */
  private readonly mtimes = new LRUCache<string, number>(entryBound(1_000_000));
  /**
   * Per path, the file version whose attributes the kernel may still hold (head comment);
   * entries live a second longer than the kernel's timeout. Absent when the kernel caches nothing.
   */
  private readonly shown: LRUCache<string, Shown> | undefined;

  constructor(
    private readonly api: SynapseApi,
    readonly table: InodeTable,
    private readonly sources: FileSources,
    readonly cache: BlockCache,
    private readonly opts: FilesystemOptions,
    private readonly writes?: WriteDeps,
  ) {
    this.permissions = new Permissions(api, () => table.ttlMs, opts.logger);
    this.kept = writes ? new KeptFiles(writes.spool, table, opts.logger) : undefined;
    const kernelMs = kernelCacheMs(table.ttlMs);
    this.shown = kernelMs > 0 ? new LRUCache({ ...entryBound(1_000_000), ttl: kernelMs + 1000 }) : undefined;
    // lru-cache leaves expired entries in place until they are read or pushed out: a walk of a
    // big tree (every file stat'ed once) kept one per file, up to the million (review of QA's
    // 50k-entry walk). Swept every few kernel timeouts instead (a timer per entry, ttlAutopurge, costs more).
    if (this.shown) {
      const shown = this.shown;
      setInterval(() => shown.purgeStale(), Math.min(60_000, Math.max(5_000, kernelMs))).unref();
    }
  }

  get openHandleCount(): number {
    return this.handles.size;
  }

  /** Files open for writing (for status and for draining at unmount). */
  get activeFiles(): ActiveFile[] {
    return [...this.active.values()];
  }

  /** Files open for writing with their paths (for `synapse-mount status`). */
  get activeFilesByPath(): Array<[string, ActiveFile]> {
    return [...this.active.entries()];
  }

  private stat(kind: 'dir' | 'file' | 'link', size: number, mtimeMs: number): Stat {
    const t = new Date(mtimeMs);
    const mode = kind === 'dir' ? S_IFDIR | this.opts.dirMode
      : kind === 'link' ? S_IFLNK | 0o777
      : S_IFREG | this.opts.fileMode;
    return {
      mode, size, mtime: t, atime: t, ctime: t,
      uid: this.opts.uid, gid: this.opts.gid,
      nlink: kind === 'dir' ? 2 : 1,
      blocks: Math.ceil(size / 512), blksize: 131072,
    };
  }

  /**
   * The file open for writing at `path`. Open files are keyed by path, so when another client
   * moves a folder above one, the file is found by its folder's id and name (the listing of
   * the moved folder carries its local entry) and re-keyed to the path it has now.
   */
  private activeFile(path: string, node?: FsNode): ActiveFile | undefined {
    const af = this.active.get(path);
    if (af || this.active.size === 0) return af;
    const n = node ?? this.table.resolveCached(path);
    if (!n || n.kind !== 'file') return undefined;
    for (const [old, f] of this.active) {
      if (f.parentId !== n.parentId || f.name !== n.name) continue;
      this.active.delete(old);
      this.active.set(path, f);
      for (const h of this.handles.values()) if (h.kind === 'write' && h.file === f) h.path = path;
      return f;
    }
    return undefined;
  }

  /**
   * getattr answered from memory alone, or undefined when a listing or a size must be fetched:
   * the fast path for the kernel's lookups (no promise, no await — fuse-adapter.ts).
   */
  getattrNow(path: string): Stat | undefined {
    let af = this.active.get(path);
    const node = af ? undefined : this.table.resolveCached(path);
    af ??= node && this.activeFile(path, node);
    if (af) {
      this.shown?.delete(path);
      return this.activeStat(af);
    }
    // A kept file is checked against its journal entry first (getattr).
    if (node && this.kept?.has(node.parentId, node.name)) return undefined;
    return node && this.nodeStat(path, node, node.kind === 'file' && node.entityId ? this.table.knownSize(node) : undefined);
  }

  /**
   * fstat(2): the open file's attributes, by fd — a file unlinked while open has no path (libfuse
   * passes none), and its fds still answer: POSIX, and Python's TemporaryFile.
   */
  async fgetattr(path: string, fd: number): Promise<Stat> {
    if (path !== '') return this.getattr(path);
    // An open directory without a path: removed by rmdir or replaced by a rename (`mv -T dA dB`),
    // hence empty — the mount's channel names no handle for it (scripts/fix-fuse-native.mjs 9.).
    if (fd === GONE_DIR_FH) return { ...this.stat('dir', 4096, Date.now()), nlink: 0 };
    // No path: the file was removed, or replaced by a rename, while open. No name links to it
    // any more: st_nlink 0, as a local disk says (log shippers test it to notice a deletion).
    return { ...await this.statByFd(fd), nlink: 0 };
  }

  /** The file open as `fd`, as that descriptor sees it. */
  private async statByFd(fd: number): Promise<Stat> {
    const h = this.handles.get(fd);
    if (h?.kind === 'write') return this.activeStat(h.file);
    if (h?.kind === 'read' && h.live && sharedNow(h.live)) return this.stat('file', h.live.size, h.live.mtime);
    if (h?.kind === 'read') {
      await h.following;
      return this.stat('file', h.reader.source.size, this.mtimeOf(h.node));
    }
    if (h?.kind === 'kept') return this.stat('file', h.view.size, h.view.mtime);
    if (h?.kind === 'empty') {
      await h.becoming;
      const now = this.handles.get(fd);
      if (now !== h) return this.statByFd(fd); // a reader of the published file now
      return h.live && sharedNow(h.live) ? this.stat('file', h.live.size, h.live.mtime) : this.stat('file', 0, Date.now());
    }
    // No path and no handle of ours: never the root's stat (resolve('') is the root).
    throw new FsError('ENOENT', `fd ${fd}: not open`);
  }

  /** A file open for writing: its current size and mtime. */
  private activeStat(af: ActiveFile): Stat {
    return this.stat('file', af.size, af.mtime);
  }

  async getattr(path: string): Promise<Stat> {
    const now = this.getattrNow(path);
    if (now) return now;
    const resolved = await this.table.resolve(path).catch((err: unknown) => {
      // A name no Synapse entity can have: what a local disk answers for it (QA: ENOENT).
      if (errnoName(err) === 'ENOENT' && path.slice(path.lastIndexOf('/') + 1).length > MAX_NAME_LENGTH) {
        throw new FsError('ENAMETOOLONG', `${path}: longer than any name Synapse allows`);
      }
      throw err;
    });
    if (this.activeFile(path, resolved)) return this.getattrNow(path)!;
    const { node, view } = await this.keptOrFresh(path, resolved);
    if (view) {
      this.shown?.set(path, { entityId: node.entityId, version: view.baseVersion ?? 0, size: view.size, md5: view.md5, keptJournalId: view.journalId });
      return this.stat('file', view.size, view.mtime);
    }
    const size = node.kind === 'file' && node.entityId ? await this.table.size(node) : undefined;
    const stat = this.nodeStat(path, node, size);
    if (!stat) throw new FsError('EIO', `${path}: no size`); // unreachable: size() answers or throws
    return stat;
  }

  /**
   * The kept file `node` shows, if any (kept-files.ts); when its journal entry has just ended
   * (recover ran), the path listed afresh — not the stale node, an empty local entry for a new file.
   */
  private async keptOrFresh(path: string, node: FsNode): Promise<{ node: FsNode; view?: KeptFile }> {
    if (!this.kept?.has(node.parentId, node.name)) return { node };
    const view = await this.kept.shown(node);
    if (view) return { node, view };
    return { node: this.kept.has(node.parentId, node.name) ? node : await this.table.resolve(path) };
  }

  /**
   * A node's mtime: the one this mount keeps for it (`mtimes`), else the one logged by an earlier
   * mount on this machine (mtime-log.ts), else Synapse's modifiedOn. `path`: a local-only file's.
   */
  private mtimeOf(node: FsNode, path?: string): number {
    if (node.kind === 'dir') return this.mtimes.get(node.entityId) ?? this.loggedMtime(node.entityId, FOLDER_LOGGED_VERSION) ?? node.modifiedOn;
    if (!node.entityId) return (path !== undefined ? this.mtimes.get(`local:${path}`) : undefined) ?? node.modifiedOn;
    const v = node.versionNumber;
    if (v === undefined) return node.modifiedOn;
    return this.mtimes.get(versionMtimeKey(node.entityId, v)) ?? this.loggedMtime(node.entityId, v) ?? node.modifiedOn;
  }

  private loggedMtime(entityId: string, version: number): number | undefined {
    return entityId ? this.opts.mtimeLog?.get(entityId, version) : undefined;
  }

  /** The mtime of one version of a file, here and for the next mount (mtime-log.ts). */
  private setVersionMtime(entityId: string, version: number | undefined, mtimeMs: number): void {
    if (!entityId || version === undefined) return;
    this.mtimes.set(versionMtimeKey(entityId, version), mtimeMs);
    this.opts.mtimeLog?.set(entityId, version, mtimeMs);
  }

  private setFolderMtime(folderId: string, mtimeMs: number): void {
    this.mtimes.set(folderId, mtimeMs);
    if (!isLocalDirId(folderId)) this.opts.mtimeLog?.set(folderId, FOLDER_LOGGED_VERSION, mtimeMs); // a local folder ends with the mount
  }

  /** A deleted entity's time goes, here and from the log (it would only take room there). */
  private forgetTimeOf(node: FsNode): void {
    const v = node.kind === 'dir' ? FOLDER_LOGGED_VERSION : node.versionNumber;
    if (!node.entityId || v === undefined) return;
    this.mtimes.delete(node.kind === 'dir' ? node.entityId : versionMtimeKey(node.entityId, v));
    this.opts.mtimeLog?.delete(node.entityId, v);
  }

  /**
   * POSIX: adding, removing or renaming an entry changes its folder's mtime (`find -newer`,
   * `ls -lt`). Synapse's folder modifiedOn does not move for that.
   */
  private folderChanged(folderId: string | undefined): void {
    if (folderId) this.setFolderMtime(folderId, Date.now());
  }

  /** The attributes of a listed node; for a published file, `size` is needed (else undefined). */
  private nodeStat(path: string, node: FsNode, size: FileSize | undefined): Stat | undefined {
    const mtime = this.mtimeOf(node, path);
    if (node.kind === 'dir') return this.stat('dir', 4096, mtime);
    if (node.kind === 'link') return this.stat('link', 0, mtime);
    if (!node.entityId) return this.stat('file', 0, mtime); // local-only, not open
    if (!size) return undefined;
    // A size fetch that found a newer version has moved the node to it: node and size agree.
    if (this.shown && node.versionNumber !== undefined) {
      this.shown.set(path, { entityId: node.entityId, version: node.versionNumber, size: size.size, md5: size.md5 });
    }
    return this.stat('file', size.size, mtime);
  }

  /**
   * The version an open of `path` must use: the one the kernel was told about while it may
   * still hold that answer (same entity only), else the listing's.
   */
  private shownVersion(path: string, node: FsNode): { node: FsNode; base: { size: number; md5: string | undefined; version: number } } | undefined {
    const shown = this.shown?.get(path);
    if (!shown || shown.entityId !== node.entityId || shown.keptJournalId) return undefined;
    return {
      node: { ...node, versionNumber: shown.version, pinnedVersion: true },
      base: { size: shown.size, md5: shown.md5, version: shown.version },
    };
  }

  /** The kept file whose attributes the kernel may still hold for `path`, if its entry still waits. */
  private async keptShownToKernel(path: string, node: FsNode): Promise<KeptFile | undefined> {
    const journalId = this.shown?.get(path)?.keptJournalId;
    return journalId ? this.kept?.stillKept(node, journalId) : undefined;
  }

  /**
   * The mount changed what is at `path` (and below it, for a folder): the kernel learns that
   * from the op itself, and the next open takes the listing's version.
   */
  private forgetShown(path: string, folder = false): void {
    if (!this.shown) return;
    this.shown.delete(path);
    if (!folder) return;
    const prefix = `${path}/`;
    for (const p of [...this.shown.keys()]) if (p.startsWith(prefix)) this.shown.delete(p);
  }

  async readdir(path: string): Promise<string[]> {
    return (await this.readdirTyped(path)).map((c) => c.name);
  }

  /**
   * The entries with their types, which the kernel passes on as d_type: `find -type f`, Python's
   * `os.scandir().is_file()` and `ls` without colours need no stat (and no size) per entry.
   */
  async readdirTyped(path: string): Promise<Array<{ name: string; mode: number }>> {
    const node = await this.table.resolve(path);
    if (node.kind !== 'dir') throw new FsError('ENOTDIR', `${path}: not a directory`);
    const children = await this.table.children(node.entityId);
    return children.map((c) => ({ name: c.name, mode: c.kind === 'dir' ? S_IFDIR : c.kind === 'link' ? S_IFLNK : S_IFREG }));
  }

  /**
   * Wait for the publish of `path`'s last close, if one is running. The kernel sends RELEASE
   * after close() has returned, so `open(f, 'wb').close(); open(f, 'wb')` reaches open() while
   * that release publishes. Joining the file then let release() drop it from under the new
   * handle (getattr reported the old size, which the kernel kept: reads came back empty for
   * 2 × --metadata-ttl). release() awaited the same promise first, so it has finished with the
   * file by the time a waiter here goes on.
   */
  private async settled(...paths: string[]): Promise<void> {
    for (const p of paths) await this.releasing.get(p);
  }

  /**
   * The kernel opens only paths it believes exist (its cached entry); one this mount no longer
   * has — a kept file `recover` just discarded, a file another client deleted — answers ESTALE,
   * not ENOENT: the VFS then looks the path up once more, afresh (LOOKUP_REVAL), finds it gone,
   * and an O_CREAT open creates it. With ENOENT, `echo x > f` failed for up to 2 × the
   * metadata TTL (QA).
   */
  async open(path: string, flags: number): Promise<number> {
    try {
      return this.noteSyncWrites(await this.openExisting(path, flags), flags);
    } catch (err) {
      if (errnoName(err) !== 'ENOENT') throw err;
      const before = this.table.resolveCached(path);
      // Maybe gone from Synapse while still listed here (deleted elsewhere): list the folder
      // afresh. ESTALE only if the path is really gone (or another entity now): the kernel's one
      // retry must not meet the same answer — an ENOENT about something else (an S3 object
      // missing, a spool file) stays ENOENT (review).
      await this.table.resolveParent(path).then(({ parent }) => this.table.invalidate(parent.entityId), () => undefined);
      const now = await this.table.resolve(path).catch(() => undefined);
      if (now && (!before || now.entityId === before.entityId)) throw err;
      throw new FsError('ESTALE', `${path}: no longer exists (the kernel's entry is stale)`, { cause: err });
    }
  }

  private async openExisting(path: string, flags: number): Promise<number> {
    await this.settled(path);
    const writing = (flags & O_ACCMODE) !== 0 || (flags & O_TRUNC) !== 0;
    let af = this.active.get(path);
    const resolved = af ? undefined : await this.table.resolve(path);
    af ??= resolved && this.activeFile(path, resolved);
    if (af) {
      // Another fd has this path open for writing: share its bytes, readers included.
      if (writing) this.checkWritable(path);
      if ((flags & O_TRUNC) !== 0) await af.truncate(0);
      return this.addWriteHandle(path, af, writing);
    }
    if (!resolved) throw new FsError('ENOENT', `${path}: no such entry`); // unreachable: resolve() throws
    if (resolved.kind === 'dir') throw new FsError('EISDIR', `${path}: is a directory`);
    const { node, view } = await this.keptOrFresh(path, resolved);
    if (view && !writing) {
      const fd = this.nextFd++;
      this.handles.set(fd, { kind: 'kept', view, fh: await openFile(view.spoolFile, 'r') });
      return fd;
    }
    const shown = this.shownVersion(path, node);
    if (writing) {
      this.checkWritable(path);
      if (node.kind !== 'file') throw new FsError('EACCES', `${path}: links are read-only`);
      // A scratch name showing a Synapse file (`mv f f~`, vim's backup) is a read-only view:
      // bytes written there would stay in this mount and be lost at unmount.
      if (node.entityId && isStaleSqliteSideFile(node)) {
        throw new FsError('EACCES', `${path}: a SQLite journal published by an older release (they stay in this mount now); if no program is mid-transaction on its database, remove it (rm deletes it in Synapse)`);
      }
      if (node.entityId && isScratchName(node.name)) {
        throw new FsError('EACCES', `${path}: a read-only view of a Synapse file (scratch names are never published); rename it to a real name to edit it`);
      }
      if (node.entityId && !isScratchName(node.name)) await this.permissions.require('change', node.entityId, path, node.benefactorId);
      // The kernel may still hold a kept file's size after the view stopped showing (a newer
      // version appeared since): an append builds on those bytes, as it was told (QA: it landed
      // at that offset in the newer version, published over it). Publishing then is ESTALE.
      const keptView = view ?? (await this.keptShownToKernel(path, node));
      // A new file waiting for recover (never published): its next close publishes a new file
      // there, so the folder must still take one (QA: the open answered 0, and the close failed
      // EACCES, its entry replaced by bytes that could never publish).
      if (!node.entityId && keptView && !isLocalDirId(node.parentId!)) {
        const { parent } = await this.table.resolveParent(path);
        await this.permissions.require('add files to', parent.entityId, path, parent.benefactorId);
      }
      // A SQLite database held back mid-transaction whose journal went with the mount that had it:
      // its bytes are half a transaction nothing can undo now, and SQLite would take them for sound
      // and publish its uncommitted rows (QA). Written only once recover has decided.
      if (keptView?.incomplete?.startsWith(SQLITE_HELD_BACK) && !(await this.hotJournalAt(path))) {
        throw new FsError('EACCES', `${path}: ${SQLITE_HELD_BACK} and its rollback journal is gone (the mount that had it stopped): \`synapse-mount recover --list\` shows it; \`recover --discard ID\` goes back to the last committed version`);
      }
      // Appends and partial rewrites land where the kernel thinks the file ends: build on that version.
      const base = keptView ? undefined : shown?.base ?? (node.entityId ? { ...(await this.table.size(node)), version: node.versionNumber } : undefined);
      // Another open of this path for writing made the file's state while this one asked Synapse
      // (two `>>` writers opening together), or its last close is publishing: start over, to
      // share that file or build on what it published. Each open had built its own copy, and
      // each published its own bytes (QA: lines lost, NUL bytes where the other's appends went).
      if (this.active.has(path) || this.releasing.has(path)) return this.openExisting(path, flags);
      if (keptView) return this.writeKept(path, node, keptView, flags);
      this.shown?.delete(path);
      // Opening for writing changes no time: writes do.
      const file = this.newActiveFile(path, node.parentId!, node.name, node.entityId || undefined, base, this.mtimeOf(shown?.node ?? node, path));
      if ((flags & O_TRUNC) !== 0) await this.emptiedOrUndone(path, file);
      return this.addWriteHandle(path, file);
    }
    // Read-only: an empty file kept in this mount only. Never a new file to publish at its close
    // (QA: reading a failed stream's listed name published a 0-byte version; such names are no
    // longer listed — kept-files.ts closed — and a read-only open must not publish regardless).
    if (!node.entityId) {
      const fd = this.nextFd++;
      const writer = this.active.get(path);
      this.handles.set(fd, { kind: 'empty', parentId: node.parentId!, name: node.name, ...(writer ? { live: writer } : {}) });
      return fd;
    }
    const file = await this.sources.resolve(shown?.node ?? node, true);
    const fh = file.fileHandle;
    const source = await this.sources.source(file, this.cache);
    // The S3 object is not the size Synapse recorded (an external bucket's object replaced, or
    // registered with a wrong size): reads return the object's bytes, so stat says so too (QA:
    // md5sum read past the size stat gave). Recorded once, after the object answered: a stat
    // meanwhile must not see the size flip back and forth (review).
    const objectDiffers = source.size !== fh.contentSize;
    this.table.setSize(file.entityId, file.versionNumber, objectDiffers ? { size: source.size, md5: undefined } : { size: fh.contentSize, md5: fh.contentMd5 });
    const versionKey = `${file.entityId}.${file.versionNumber}`;
    if (objectDiffers && !this.sizeWarned.has(versionKey)) {
      this.sizeWarned.set(versionKey, true);
      this.opts.logger?.warn({ path, entityId: file.entityId, version: file.versionNumber, synapseSize: fh.contentSize, objectSize: source.size },
        'the S3 object is not the size Synapse recorded for this file; reading the object as it is');
    }
    const fd = this.nextFd++;
    // A backup view reads its version for good: what the file's name gets later is another file.
    const opened: ReadOpen = { kind: 'read', node, reader: new ReadHandle(source, this.cache, this.opts.readahead), version: file.versionNumber };
    if (isView(node)) opened.detached = true;
    // A writer opened it while this open was asking Synapse: share its bytes as readersShare would (review).
    const writer = this.active.get(path);
    if (writer && !opened.detached && writer.entityId === node.entityId) opened.live = writer;
    this.handles.set(fd, opened);
    return fd;
  }

  /** A name Synapse would refuse: ENAMETOOLONG when too long, else EINVAL, with a log line naming the rule. */
  private checkName(path: string, name: string): void {
    const problem = nameProblem(name);
    if (!problem) return;
    this.opts.logger?.warn({ path, rule: problem }, 'name refused: Synapse would reject it');
    throw new FsError(name.length > NAME_MAX ? 'ENAMETOOLONG' : 'EINVAL', `${path}: ${problem}`);
  }

  private checkWritable(path: string): void {
    if (this.opts.readOnly || !this.writes) throw new FsError('EROFS', `${path}: the mount is read-only`);
  }

  private newActiveFile(path: string, parentId: string, name: string, entityId: string | undefined,
    base: { size: number; md5: string | undefined; version?: number | undefined } | undefined, mtime: number | undefined,
    seed?: ActiveFileInit['seed']): ActiveFile {
    const w = this.writes!;
    // Its reads before any change go through a ReadHandle of their own: 1 MiB pieces for
    // SQLite's scattered pages (QA session 26: a whole block each), whole blocks for a run. No
    // readahead: these opens keep the page cache, whose own readahead after SQLite's 100-byte
    // header read looks like a run from the start, and fetched a 34 MB database whole.
    let baseReader: ReadHandle | undefined;
    const file = new ActiveFile({
      spool: w.spool, publisher: w.publisher, loadBase: (id, version, into) => this.loadBase(id, version, into),
      readBase: async (id, version, position, length) => {
        const source = await this.baseSource(id, version);
        if (baseReader?.source !== source) {
          baseReader?.close();
          baseReader = new ReadHandle(source, this.cache, { ...this.opts.readahead, maxWindowBlocks: 0 });
        }
        return baseReader.read(position, length);
      },
      // Staged readahead (a block its pieces grew into) gives the budget back now, not when it expires.
      baseDone: () => {
        baseReader?.close();
        baseReader = undefined;
      },
      startStream: (parentId, name, keep, heldTemp) => this.startStream(parentId, name, keep, heldTemp),
      ...(this.opts.logger ? { logger: this.opts.logger } : {}),
    }, {
      // In a mount-local folder every file is this mount's only (review: an empty one moved in, then
      // written, was published there — asking Synapse about the local folder).
      parentId, name, entityId, base, localOnly: isScratchName(name) || isLocalDirId(parentId), ...(mtime !== undefined ? { mtime } : {}),
      localWhileEmpty: isProbeName(name) && entityId === undefined && !seed && !isLocalDirId(parentId), ...(seed ? { seed } : {}),
    });
    this.active.set(path, file);
    this.readersShare(file);
    return file;
  }

  /**
   * Read-only fds of the file just opened for writing read the writer's bytes until its last
   * close, as on a local disk: `tail -f` started before a long-running writer (a daemon's log)
   * sees its lines as they are written, as one started after it always did (review: it saw
   * nothing until the writer closed). Then they read what was published (readersFollow).
   */
  private readersShare(file: ActiveFile): void {
    for (const h of this.handles.values()) {
      if (h.kind === 'empty' && !h.live && !h.detached && h.parentId === file.parentId && h.name === file.name) h.live = file;
    }
    if (!file.entityId) return;
    for (const [fd, h] of this.handles) {
      if (h.kind !== 'read' || h.detached || h.live || h.node.entityId !== file.entityId) continue;
      h.live = file;
      this.onReaderMoved?.(fd);
    }
  }

  /**
   * Readers of empty local files are matched by name (they have no entity): the file at
   * (parentId, name) was removed (`to` undefined) or moved to `to` — readers of a file replaced
   * there are detached, its own follow it (QA: they read whatever took the name next).
   */
  private emptyReadersRenamed(parentId: string, name: string, to: { parentId: string; name: string } | undefined): void {
    if (to && to.parentId === parentId && to.name === name) return;
    for (const h of this.handles.values()) {
      if (h.kind !== 'empty' || h.detached) continue;
      if (to && h.parentId === to.parentId && h.name === to.name) h.detached = true;
    }
    for (const h of this.handles.values()) {
      if (h.kind !== 'empty' || h.detached || h.parentId !== parentId || h.name !== name) continue;
      if (to) {
        h.parentId = to.parentId;
        h.name = to.name;
      } else h.detached = true;
    }
  }

  /** Read-only fds opened before `file`'s writer that read its bytes now. */
  private sharers(file: ActiveFile): number {
    let n = 0;
    for (const h of this.handles.values()) if ((h.kind === 'read' || h.kind === 'empty') && h.live === file && sharedNow(file)) n++;
    return n;
  }

  /** A reader sharing a removed file's bytes closed: the file goes with the last of them. */
  private async sharerClosed(file: ActiveFile | undefined): Promise<void> {
    if (!file || !this.lingering.has(file) || this.sharers(file) > 0) return;
    this.lingering.delete(file);
    this.unshare(file);
    await file.dispose(file.awaitingRecovery).catch(() => undefined);
  }

  /** `file` was removed or replaced while in this mount: let it go now if nobody has it open. */
  private releaseUnlinked(file: ActiveFile): void {
    if (file.refs > 0) return;
    if (this.sharers(file) > 0) {
      this.lingering.add(file);
      return;
    }
    this.unshare(file);
    void file.dispose(false).catch(() => undefined);
  }

  /** `file` is being let go: the fds sharing its bytes read their own version again. */
  private unshare(file: ActiveFile): void {
    for (const h of this.handles.values()) if ((h.kind === 'read' || h.kind === 'empty') && h.live === file) delete h.live;
  }

  /** The kept file `file` started from (writeKept) is no longer needed: its entry goes. */
  private async dropSuperseded(file: ActiveFile, why: string): Promise<void> {
    await this.kept?.superseded(file, file.journalEntry?.journalId, why);
  }

  /**
   * A file waiting for recover, opened for writing: its content starts as the kept bytes the
   * path shows — an append or an edit in place builds on what the kernel was told, and O_TRUNC
   * (a truncate to 0 before the open, from the kernel) drops them. Once this file is published,
   * the entry it started from is dropped: what it held is in Synapse, or was replaced (kept-files.ts).
   */
  private async writeKept(path: string, node: FsNode, view: KeptFile, flags: number): Promise<number> {
    const file = this.newActiveFile(path, node.parentId!, node.name, node.entityId || undefined,
      { size: view.size, md5: view.md5, version: view.baseVersion }, view.mtime, (into) => copyInto(view.spoolFile, view.size, into));
    this.kept?.openedOver(file, view);
    if ((flags & O_TRUNC) !== 0) await this.emptiedOrUndone(path, file);
    return this.addWriteHandle(path, file);
  }

  /**
   * Truncate a file just made for an open to 0 (O_TRUNC); if that fails (ENOSPC in the spool…)
   * the open fails and leaves nothing behind (review: a file with no fd stayed in `active` for
   * good, and a kept view it was opened over stopped being tracked).
   */
  private async emptiedOrUndone(path: string, file: ActiveFile): Promise<void> {
    try {
      await file.truncate(0);
    } catch (err) {
      if (this.active.get(path) === file) this.active.delete(path);
      this.kept?.closed(file, {
        parentId: file.parentId, name: file.name, entityId: file.entityId, mtime: file.mtime, entry: undefined,
        unlinked: false, replaced: this.active.has(path),
      });
      this.unshare(file);
      await file.dispose(false).catch(() => undefined);
      throw err;
    }
  }

  /** An fd on a file open for writing; `writable`: opened for writing (else a reader sharing its bytes). */
  private addWriteHandle(path: string, file: ActiveFile, writable = true): number {
    file.refs++;
    if (writable) file.writers++;
    const fd = this.nextFd++;
    this.handles.set(fd, { kind: 'write', path, file, writable });
    return fd;
  }

  /** A streaming upload for a new file, where its folder's storage allows one (STS fast path). */
  private async startStream(parentId: string, name: string, keep: FailedPartStore, heldTemp: boolean): Promise<import('./write-handle.js').StreamTarget | undefined> {
    const w = this.writes!;
    // rsync's `.x.csv.Ab12Cd` becomes `x.csv`: the object is named as the file will be (the key
    // holds the name, as the Python client's uploads do; a held file is registered under its real name).
    const objectName = (heldTemp ? heldTempTarget(name) : undefined) ?? name;
    const t = await w.publisher.streamTarget(parentId, objectName);
    if (!t) return undefined;
    const record = { bucket: t.bucket, key: t.key, storageLocationId: t.locationId, parentId, startedAt: new Date().toISOString(), pid: process.pid };
    /** The upload's record (multipart or single PutObject), removed once the object is referenced. */
    let recordId: string | undefined;
    let completing = false;
    const upload = new StreamingUpload(t.store, { bucket: t.bucket, key: t.key }, w.budget, {
      partSize: w.partSize, partsInFlight: PARTS_IN_FLIGHT, contentType: guessContentType(objectName),
      ...(w.partBuffers ? { partBuffers: w.partBuffers } : {}),
      keepFailedParts: keep,
      onPartKept: (partNumber, err) => this.opts.logger?.warn({ err, name, partNumber }, 'S3 refused a part after retries; kept in the spool to send again at close'),
      onStarted: (uploadId) => {
        recordId = uploadId;
        return w.spool.recordUpload({ uploadId, ...record });
      },
      onFinished: (uploadId) => w.spool.removeUpload(uploadId),
      // Until `referenced`, a crash would leave a complete object no one names: the record says so.
      onCompleting: (uploadId) => {
        completing = true;
        return w.spool.recordUpload({ uploadId, ...record, completing: true }).catch((err: unknown) =>
          this.opts.logger?.warn({ err, name }, 'could not mark an upload as completing; a crash before it is registered would leave its object in S3'));
      },
    });
    return {
      upload, parentId, object: { bucket: t.bucket, key: t.key, storageLocationId: t.locationId },
      register: (size, md5, finalName) => w.publisher.registerExternal(t.bucket, t.key, t.locationId, size, md5, finalName),
      // Throws if the record stays: the caller must then not let an entity refer to the object.
      referenced: async () => {
        if (recordId !== undefined) await w.spool.removeUpload(recordId);
      },
      discard: async () => {
        await t.store.deleteObject({ bucket: t.bucket, key: t.key });
        if (recordId !== undefined) await w.spool.removeUpload(recordId);
      },
      // Its record names the folder an orphan sweep asks STS credentials through: the one it is
      // in now (review: the old one may be removed once the file has left it).
      moved: async (newParentId) => {
        record.parentId = newParentId;
        if (recordId !== undefined) await w.spool.recordUpload({ uploadId: recordId, ...record, ...(completing ? { completing: true } : {}) });
      },
    };
  }

  /**
   * The bytes of a version files open for writing build on; one source per version (an STS
   * source's open costs a GET), kept while those files read it.
   */
  private baseSource(entityId: string, version: number | undefined): Promise<RangeSource> {
    const key = `${entityId}.${version}`;
    const known = version === undefined ? undefined : this.baseSources.get(key);
    if (known) return known;
    const source = this.sources.resolve({
      entityId, name: '', kind: 'file', parentId: undefined, versionNumber: version, modifiedOn: 0, createdOn: 0,
      pinnedVersion: version !== undefined,
    }, version !== undefined).then((file) => this.sources.source(file, this.cache));
    if (version !== undefined) {
      this.baseSources.set(key, source);
      source.catch(() => this.baseSources.delete(key));
    }
    return source;
  }

  /** Copy the published bytes of an entity into a spool file (append, partial rewrite). */
  private async loadBase(entityId: string, version: number | undefined, into: SpoolFile): Promise<void> {
    const source = await this.baseSource(entityId, version);
    const chunk = this.cache.blockSize;
    for (let off = 0; off < source.size; off += chunk) {
      await into.write(await this.cache.read(source, off, chunk), off);
    }
  }

  /** `flags`: the create's open flags (scripts/fix-fuse-native.mjs 11.; undefined with the prebuild). */
  async create(path: string, mode: number, flags?: number): Promise<number> {
    return this.noteSyncWrites(await this.createFile(path, mode, flags), flags ?? 0);
  }

  /**
   * A writable fd opened O_SYNC or O_DSYNC: the kernel fsyncs after each of its writes (through
   * the page cache, i.e. read-write opens; write-only ones bypass it and get none), so such an
   * fd's fsync journals the bytes durably rather than publishing a version per write() (fsync).
   */
  private noteSyncWrites(fd: number, flags: number): number {
    const h = this.handles.get(fd);
    if (h?.kind === 'write' && h.writable && (flags & O_DSYNC) !== 0) {
      h.syncWrites = true;
      // Its bytes in the spool, where each fsync makes them durable — not streamed to S3, whose
      // last part stays in memory (review: a crash lost every acknowledged write).
      h.file.noStream();
    }
    return fd;
  }

  /** `flags`: the create's open flags, when known (O_EXCL; mkstemp's way, names.ts isMkstempCreate). */
  private async createFile(path: string, mode: number, flags?: number): Promise<number> {
    this.checkWritable(path);
    const { parent, name } = await this.table.resolveParent(path);
    const existing = this.active.get(path);
    if (existing) return this.addWriteHandle(path, existing);
    // A scratch name, or any name in a mount-local folder: a file of this mount only.
    const local = isScratchName(name) || isLocalDirId(parent.entityId);
    if (!local) {
      this.checkName(path, name);
    }
    const listed = this.table.cachedListing(parent.entityId)?.get(name);
    if (listed && listed.kind !== 'file') throw new FsError('EISDIR', `${path}: exists and is not a file`);
    // A name a backup view hides (`mv f f~`, then vim or `cp -b` writes f): Synapse still holds
    // it, so these bytes are that file's next version — said so here, not learnt from a 409 and
    // logged as "created elsewhere meanwhile" (QA).
    const hiddenId = listed || local ? undefined : this.table.hiddenAt(parent.entityId, name);
    if (!local) {
      if (listed?.entityId) await this.permissions.require('change', listed.entityId, path, listed.benefactorId);
      else if (hiddenId) await this.permissions.require('change', hiddenId, path);
      else await this.permissions.require('add files to', parent.entityId, path, parent.benefactorId);
    }
    const size = listed?.entityId ? await this.table.size(listed).catch(() => undefined) : undefined;
    // An open for writing of this path made its file while this create asked Synapse: share it
    // (openExisting says why).
    const raced = this.active.get(path);
    if (raced) return this.addWriteHandle(path, raced);
    // The version these bytes replace travels with the base (recover's conflict check).
    const base = size ? { ...size, version: listed?.versionNumber } : undefined;
    const file = this.newActiveFile(path, parent.entityId, name, listed?.entityId || hiddenId, base, listed ? this.mtimeOf(listed, path) : undefined);
    if (!listed && !hiddenId && !local) {
      file.revive = this.removedNames.take(parent.entityId, name);
      file.heldUntilRenamed = isGitLockPath(path);
      file.heldTemp = isHeldTempName(name, isMkstempCreate(mode, flags)) || file.heldUntilRenamed;
      // O_EXCL: the kernel found no such name (lookup), but this mount's listing may be older than
      // a file someone made since — its publish must not become that file's version (ActiveFile.exclusiveAs).
      if (((flags ?? 0) & O_EXCL) !== 0) file.exclusiveAs = `${parent.entityId}/${name}`;
    }
    if (listed?.entityId || hiddenId) await this.emptiedOrUndone(path, file);
    if (!listed?.entityId) {
      // Visible at once in the writer's listing; published on flush.
      this.table.addLocal({
        entityId: '', name, kind: 'file', parentId: parent.entityId, versionNumber: undefined,
        modifiedOn: Date.now(), createdOn: Date.now(),
      });
      this.folderChanged(parent.entityId);
    }
    return this.addWriteHandle(path, file);
  }

  async write(fd: number, data: Buffer, position: number): Promise<number> {
    const h = this.handle(fd);
    if (h.kind !== 'write') throw new FsError('EBADF', `fd ${fd} is not open for writing`);
    // An unlinked file still takes writes through the fds that hold it (never published).
    try {
      return await h.file.write(data, position);
    } finally {
      // After the write: one queued behind a running publish belongs to the epoch after it. A
      // failed one counts too, so that close() reports it (publish refuses a broken file).
      h.wroteIn = h.changedIn = h.file.publishEpoch;
    }
  }

  /**
   * close(): publish if this fd wrote bytes since the last publish (rule in write-handle.ts), or
   * truncated the file through the fd (`truncate -s`, ftruncate then close): then close() reports
   * the publish and readers see the new size at once (QA: published at RELEASE, after close()
   * returned — open readers read the old bytes meanwhile, and a failure reached nobody).
   */
  async flush(fd: number): Promise<void> {
    const h = this.handles.get(fd);
    if (!h || h.kind !== 'write') return;
    const wrote = h.wroteIn === h.file.publishEpoch && h.file.writtenSincePublish;
    const truncated = h.changedIn === h.file.publishEpoch && h.file.dirty;
    if (!wrote && !truncated) return;
    await this.publish(h.path, h.file, 'close');
  }

  /** fsync: publish whatever changed, if this fd changed anything since the last publish. */
  /** Whether `path` is a SQLite database whose rollback journal in this mount is hot (publish). */
  private async sqliteMidTransaction(path: string, file: ActiveFile): Promise<boolean> {
    return isSqliteSideFile(`${file.name}-journal`) && this.hotJournalAt(path);
  }

  /** Whether this mount holds a hot SQLite rollback journal for the database at `path`. */
  private async hotJournalAt(path: string): Promise<boolean> {
    const journal = this.active.get(`${path}-journal`);
    if (!journal || journal.unlinked || journal.size < SQLITE_JOURNAL_MAGIC.length) return false;
    const head = await journal.read(0, SQLITE_JOURNAL_MAGIC.length).catch(() => undefined);
    return head !== undefined && head.equals(SQLITE_JOURNAL_MAGIC);
  }

  async fsync(fd: number): Promise<void> {
    const h = this.handles.get(fd);
    if (!h || h.kind !== 'write' || h.changedIn !== h.file.publishEpoch) return;
    // O_SYNC or O_DSYNC (noteSyncWrites): the kernel's fsync after each write() — a program's own
    // fsync on that fd cannot be told apart — makes the bytes durable in the spool, journaled
    // as still open, and the last close publishes them once (QA: 20 writes made 20 versions,
    // 4 requests each out of the 600 a minute). A held temporary file journals as it always does.
    if (h.syncWrites && !h.file.heldTemp && (await h.file.journalSynced())) return;
    await this.publish(h.path, h.file, 'fsync');
  }

  private async publish(path: string, file: ActiveFile, why: 'close' | 'fsync' | 'other' = 'other'): Promise<void> {
    // A tool's temporary file: published by the rename that follows its close (or later:
    // lastClosed) — but journaled now, before close() returns, when no other fd writes it (a
    // streamed one's upload completed first): the process dying before RELEASE lost it (QA: cp
    // said 0, kill -9, the next mount aborted its upload as an orphan). An fsync journals a
    // spooled one and parks nothing: writes may follow it, and each would bring a parked file's
    // bytes back from S3 (a stream's bytes are then S3's parts, as for any streamed file).
    if (file.heldTemp) {
      if (why !== 'other') await file.journalHeld({ park: why === 'close' && file.writers <= 1, durable: why === 'fsync' });
      return;
    }
    let version;
    let mtime: number;
    const newEntity = !file.entityId;
    // A SQLite database closed while its rollback journal is hot: its program ended mid-transaction
    // (killed, out of memory) with half of it written into the database, which only that journal —
    // kept in this mount only (names.ts isSqliteSideFile) — can undo. Not published: journaled as
    // incomplete, Synapse keeping the last committed version; SQLite's next open here rolls it
    // back and publishes that (review). An fsync comes at a commit, with every page written.
    const midTransaction = why !== 'fsync' && (await this.sqliteMidTransaction(path, file));
    // A rename replacing this file is under way: its outcome decides whether these bytes still
    // have a name (renameSettled). Nothing awaited between this wait and file.publish queueing.
    while (file.replacing.size > 0) await Promise.all(file.replacing);
    try {
      version = await file.publish(midTransaction ? { holdBack: `${SQLITE_HELD_BACK} (its rollback journal is hot): not published; open it here again and SQLite rolls it back`, holdBackLocal: true }
        : { staysOpen: why === 'fsync' || (why === 'close' && file.writers > 1) });
      mtime = file.mtime; // before anything else is awaited: a write after this is not in the version
    } catch (err) {
      // Journaled again: the new entry holds (or replaced) what the one it started from held. Not
      // half a transaction: the entry it was written over (a commit whose publish failed) stays,
      // what the rollback returns to (review: it was dropped, and the commit lost).
      if (file.awaitingRecovery && !midTransaction) await this.dropSuperseded(file, 'a newer entry of the same file replaces it');
      // Its folder (or the file) deleted elsewhere: forget the folder's listing and its own
      // entry, so the next lookup asks Synapse — not every later create there failing at close
      // for a TTL (QA: opens in a deleted folder succeeded, and `echo x > f` exited 0).
      // A newer version published elsewhere refused these bytes: the listing learns it now, so the
      // path shows theirs, as the README says — not the journaled bytes until the TTL ran out (QA).
      if (err instanceof VersionConflict) this.table.invalidate(file.parentId);
      if (err instanceof FsError && err.errno === 'ESTALE' && entityGone(err.cause)) {
        const folder = this.table.resolveCached(parentPath(path));
        this.table.invalidate(file.parentId);
        if (folder?.parentId) this.table.invalidate(folder.parentId);
      }
      throw err;
    }
    if (!version) {
      // Nothing new to publish (same bytes, or published by an fsync already): a time set or
      // moved since the open is still the version's (`cp -p` onto an identical file) — or, for a
      // file kept in this mount only (an empty placeholder, a scratch file), its path's.
      if (file.mtimeMoved && file.entityId) this.setVersionMtime(file.entityId, file.cleanVersion, mtime);
      else if (file.mtimeMoved && this.active.get(path) === file) this.mtimes.set(`local:${path}`, mtime);
      return;
    }
    const listed = this.table.cachedListing(file.parentId)?.get(file.name);
    // Whose ACL decides: the file's as listed; a file this publish created (version 1) or brought
    // back out of the trash can (its own ACL, if it had one, stayed there), its folder's (the
    // folder at the path now, if it is still the file's).
    const created = newEntity && (version.versionNumber === 1 || version.revived === true);
    const folder = created ? this.table.resolveCached(parentPath(path)) : undefined;
    const node: FsNode = {
      entityId: version.entityId, name: file.name, kind: 'file', parentId: file.parentId,
      versionNumber: version.versionNumber, modifiedOn: version.modifiedOn, createdOn: version.modifiedOn,
      ...(listed?.entityId === version.entityId ? benefactorOf(listed) : folder?.entityId === file.parentId ? inheritedIn(folder) : {}),
    };
    // The mtime the writer's fstat saw (its last write, or a time utimens set on it: cp -p, tar x)
    // stays the version's: Synapse's modifiedOn is a little later (QA: vim's next save saw the
    // file "changed since reading it" and did not write). Set first: readers following it fstat.
    this.setVersionMtime(version.entityId, version.versionNumber, mtime);
    // Readers move on before anything else is awaited: the file is no longer "changed", so until
    // then they read the version they had (review: old bytes mid-stream of a rewrite).
    this.readersFollow(version.entityId, version.versionNumber, version.modifiedOn);
    this.emptyReadersBecome(node);
    await this.dropSuperseded(file, 'its content was published from this mount');
    if (version.spoolFile) {
      await this.writes?.onPublished?.(version.fileHandleId, version.spoolFile, version.size)
        .catch((err: unknown) => this.opts.logger?.debug({ err }, 'post-publish hook failed'));
    }
    // Removed while this publish ran (rm of a file being closed): unlink deletes what it created;
    // listing it again would show a file the user removed (review).
    if (file.unlinked) return;
    const handle = this.writes?.publisher.registeredHandle(version.fileHandleId);
    if (handle) this.sources.remember(version.entityId, version.versionNumber, handle);
    this.table.removeLocal(file.parentId, file.name);
    this.table.upsert(node);
    this.table.setSize(version.entityId, version.versionNumber, { size: version.size, md5: version.md5 });
    this.forgetShown(path);
    this.mtimes.delete(`local:${path}`);
    this.opts.logger?.info({ path, entityId: version.entityId, version: version.versionNumber, size: version.size }, 'published');
  }

  /**
   * Read-only fds of a file this mount just published a newer version of read that version from
   * their next read on, as a local disk's readers see a writer's bytes: `tail -f` of a log
   * appended to through the mount follows it (QA: it stalled at the size it opened with while
   * fstat showed more). Versions other clients publish are seen by the next open (pinned reads).
   * Until the new reader is made, the fd's reads and fstat wait for it; if it cannot be made
   * (Synapse unreachable) the fd keeps reading the version it had.
   */
  private readersFollow(entityId: string, versionNumber: number, modifiedOn?: number): void {
    for (const [fd, h] of this.handles) {
      if (h.kind !== 'read' || h.detached || h.node.entityId !== entityId || h.version >= versionNumber) continue;
      this.follow(fd, h, entityId, versionNumber, modifiedOn);
    }
  }

  /** Read-only fds of the empty placeholder `node` replaced become readers of it (EmptyOpen). */
  private emptyReadersBecome(node: FsNode): void {
    for (const [fd, h] of this.handles) {
      if (h.kind !== 'empty' || h.becoming || h.detached || h.parentId !== node.parentId || h.name !== node.name) continue;
      const pinned = { ...node, pinnedVersion: true };
      const becoming: Promise<void> = (async () => {
        const file = await this.sources.resolve(pinned, true);
        const source = await this.sources.source(file, this.cache);
        // Closed, removed or replaced meanwhile (it reads no more of this name), or moved on.
        if (this.handles.get(fd) !== h || h.detached || h.parentId !== node.parentId || h.name !== node.name) return;
        this.handles.set(fd, {
          kind: 'read', node: pinned, reader: new ReadHandle(source, this.cache, this.opts.readahead), version: file.versionNumber,
          // Still shares the file while it is open for writing (an fsync published it; review).
          ...(h.live ? { live: h.live } : {}),
        });
      })().catch((err: unknown) => {
        this.opts.logger?.warn({ err, name: node.name }, 'an open reader of an empty file could not move on to its published version');
      }).finally(() => {
        if (h.becoming === becoming) delete h.becoming;
      });
      h.becoming = becoming;
    }
  }

  /** Move reader `h` on to `entityId`'s version `versionNumber` (after any move already under way). */
  private follow(fd: number, h: ReadOpen, entityId: string, versionNumber: number, modifiedOn?: number): void {
    const from = h.version;
    h.version = versionNumber;
    this.onReaderMoved?.(fd);
    const following: Promise<void> = (h.following ?? Promise.resolve())
      .then(() => this.followTo(fd, h, entityId, versionNumber, modifiedOn))
      .catch((err: unknown) => {
        this.opts.logger?.warn({ err, entityId, fd, version: versionNumber }, 'an open reader could not move on to a newer version of its file; it keeps reading the one it had');
        if (h.version === versionNumber && h.node.entityId === entityId) h.version = from;
        h.unreachable = versionNumber;
      })
      .finally(() => {
        if (h.following === following) delete h.following;
      });
    h.following = following;
  }

  /**
   * A rename put the file `source` (entity id; undefined: a new file) over `target`'s name: its
   * bytes are `target`'s version `version` now. As with inodes, readers of the replaced file keep
   * what they read and follow nothing more; readers of the moved one follow its publishes there
   * — and, when `version` holds the moved bytes (`movedBytes`: replaceContent), move on to it
   * now (a reader whose earlier move failed reads the moved file's newest bytes from then on).
   */
  private readersOfReplaced(source: string | undefined, target: string, version: number | undefined, movedBytes = false): void {
    for (const [fd, h] of this.handles) {
      if (h.kind !== 'read' || h.detached) continue;
      if (h.node.entityId === target) h.detached = true;
      else if (source !== undefined && h.node.entityId === source) {
        h.node = { ...h.node, entityId: target };
        if (movedBytes && version !== undefined) {
          h.version = -1;
          this.follow(fd, h, target, version);
        } else {
          // The file open for writing will publish over this version: publishes after it are followed.
          h.version = version ?? 0;
        }
      }
    }
  }

  private async followTo(fd: number, h: ReadOpen, entityId: string, versionNumber: number, modifiedOn: number | undefined): Promise<void> {
    // Closed, detached or re-keyed by a rename, or a later version asked for since: not this move.
    const wanted = (): boolean => this.handles.get(fd) === h && !h.detached && h.node.entityId === entityId && h.version === versionNumber;
    if (!wanted()) return;
    const source = await this.sources.source(await this.sources.resolve({ ...h.node, versionNumber, pinnedVersion: true }, true), this.cache);
    if (!wanted()) return;
    const old = h.reader;
    h.reader = new ReadHandle(source, this.cache, this.opts.readahead);
    h.node = { ...h.node, versionNumber, pinnedVersion: true, ...(modifiedOn !== undefined ? { modifiedOn } : {}) };
    old.close();
  }

  private handle(fd: number): OpenHandle {
    const h = this.handles.get(fd);
    if (!h) throw new FsError('EBADF', `fd ${fd} is not open`);
    return h;
  }

  /**
   * Copy up to `length` bytes at `position` into `target` (libfuse's buffer); returns the count —
   * synchronously when the block cache has every byte (ReadHandle.readAny).
   */
  readAny(fd: number, target: Buffer, length: number, position: number): number | Promise<number> {
    const h = this.handle(fd);
    if (h.kind === 'write') return readActive(h.file, target, length, position);
    if (h.kind === 'kept') return h.fh.read(target, 0, Math.min(length, target.length), position).then((r) => r.bytesRead);
    if (h.kind === 'empty') {
      // QA scenario: `touch app.log; tail -f app.log & app >> app.log` read nothing, ever.
      if (h.live && sharedNow(h.live)) return readActive(h.live, target, length, position);
      if (h.becoming) return h.becoming.then(() => this.readAny(fd, target, length, position));
      return 0;
    }
    if (h.live && sharedNow(h.live)) return readActive(h.live, target, length, position);
    const size = h.reader.source.size;
    if (position >= size) {
      // The second read in a row at the end, nothing read in between: a reader waiting there.
      if (!h.following && h.atEnd === position) this.followAtEnd(fd, h);
      h.atEnd = position;
    } else if (position + length >= size) {
      delete h.atEnd; // a pass reached the last byte: its read at the end stops there
    }
    if (h.following) return h.following.then(() => h.reader.readAny(target, position, Math.min(length, target.length)));
    return h.reader.readAny(target, position, Math.min(length, target.length));
  }

  /**
   * A reader that stays at the end of its version — reads there again with nothing read in
   * between, as `tail -f` does — moves on to a newer version of the same file this mount has heard
   * of (the kernel's `stat`, a listing), and reads past its old end what the newer one holds there
   * (QA: a teammate's `tail -f` showed nothing new, ever). A pass over the file (`cp`, `md5sum`,
   * `rsync`: each stops at its first read at the end) reads one version, whole (review). Another
   * file renamed onto the name is not followed (a new inode on a local disk too).
   */
  private followAtEnd(fd: number, h: ReadOpen): void {
    if (h.detached || !h.node.parentId) return;
    const now = this.table.cachedListing(h.node.parentId)?.get(h.node.name);
    if (now?.kind !== 'file' || now.entityId !== h.node.entityId || now.versionNumber === undefined || now.versionNumber <= h.version) return;
    if (now.versionNumber === h.unreachable) return;
    this.follow(fd, h, now.entityId, now.versionNumber, now.modifiedOn);
  }

  /**
   * For the FUSE read fast path (fast-read.ts): the cached block of a read-only fd that holds
   * `offset` — at the end of the file, the last block, whose window answers the reader's EOF
   * read — held until released; undefined for files open for writing (their bytes change) or a
   * block not in memory.
   */
  readWindow(fd: number, offset: number, onDropped: () => boolean, moveOn = true): ReturnType<ReadHandle['window']> {
    const h = this.handles.get(fd);
    if (h?.kind !== 'read' || h.following || h.live) return undefined;
    const size = h.reader.source.size;
    const w = h.reader.window(Math.min(offset, size - 1), onDropped, moveOn);
    if (!w) return undefined;
    // Reads of a file's last byte and past its end come to JS (two per pass over a file): it
    // sees each pass reach the end, and a reader that stays there (followAtEnd: `tail -f`).
    if (w.start + w.length < size) return { ...w, eof: false };
    if (w.length > 1) return { ...w, eof: false, length: w.length - 1 };
    w.release();
    return undefined;
  }

  /** The last read of `fd` that JS answered was a random one (a seek away from a sequential run). */
  readWasRandom(fd: number): boolean {
    const h = this.handles.get(fd);
    return h?.kind === 'read' && h.reader.lastReadRandom;
  }

  /** The block cache's block size (the fast path's windows are blocks). */
  get blockSize(): number {
    return this.cache.blockSize;
  }

  /** readAny(), always as a promise. */
  async read(fd: number, target: Buffer, length: number, position: number): Promise<number> {
    return this.readAny(fd, target, length, position);
  }

  /**
   * Last close of an fd. Errors here reach nobody (libfuse ignores release's answer), so a file
   * still dirty — its flush failed — is published once more and otherwise left journaled.
   */
  async release(fd: number): Promise<void> {
    const h = this.handles.get(fd);
    this.handles.delete(fd);
    if (h?.kind === 'read') h.reader.close();
    if (h?.kind === 'read' || h?.kind === 'empty') await this.sharerClosed(h.live);
    if (h?.kind === 'kept') await h.fh.close().catch(() => undefined);
    if (!h || h.kind !== 'write') return;
    const file = h.file;
    file.refs--;
    if (h.writable) file.writers--;
    if (file.refs === 0) for (const wake of this.releaseWaiters.get(file)?.splice(0) ?? []) wake();
    if (file.refs > 0) {
      if (h.writable && file.writers === 0) await this.lastWriterClosed(h.path, file);
      return;
    }
    await this.lastClosed(h.path, file);
  }

  /**
   * The last writer of a file closed while read-only fds still share its bytes: publish as at a
   * last close, then make those fds readers of the version published (they follow later ones)
   * and let the file go. Before, the file stayed open for writing until they closed (QA: a
   * `tail -f` made `mv f f~` EBUSY — vim then replaced the file with a new entity — and kept
   * other clients' versions from new opens). A file that is not a published version now (its
   * publish failed, it was removed) stays shared until its readers close.
   */
  private async lastWriterClosed(path: string, file: ActiveFile): Promise<void> {
    if (file.localOnly) return;
    // Published by its rename, or after its last close (lastClosed); a failed park lets it go as
    // any failed publish (below).
    if (file.heldTemp && (await this.held(path, file))) return;
    // One promise for the publish and the readers' source, in `releasing` and awaited here at
    // once: this goes on before the ops waiting in `settled` (the model test found a truncate
    // applied to the file meanwhile, then lost), and they find the file let go.
    const work = (async (): Promise<RangeSource | undefined> => {
      await this.publishAtLastClose(path, file);
      const version = file.cleanVersion;
      if (version === undefined || file.unlinked || file.writers > 0) return undefined;
      // The readers' bytes before they are handed over: never an fd left reading nothing
      // (review). If Synapse cannot say, they keep sharing the file until they close.
      return this.sources.resolve(this.sharedNode(file, version), true).then((f) => this.sources.source(f, this.cache)).catch((err: unknown) => {
        this.opts.logger?.warn({ err, path }, 'open readers keep the file\'s bytes in this mount until they close: its published version could not be opened');
        return undefined;
      });
    })();
    const pending = work.then(() => undefined);
    this.releasing.set(path, pending);
    const source = await work;
    if (this.releasing.get(path) === pending) this.releasing.delete(path);
    const version = file.cleanVersion;
    if (!source || version === undefined || file.unlinked || file.writers > 0 || this.active.get(path) !== file) return;
    const node = this.sharedNode(file, version);
    for (const [fd, h] of [...this.handles]) {
      if (h.kind !== 'write' || h.file !== file || h.writable) continue;
      file.refs--;
      this.handles.set(fd, { kind: 'read', node, reader: new ReadHandle(source, this.cache, this.opts.readahead), version });
    }
    if (file.refs === 0) await this.lastClosed(path, file);
  }

  /** The published version `file`'s bytes are, as the node of a reader of it. */
  private sharedNode(file: ActiveFile, version: number): FsNode {
    return {
      entityId: file.entityId!, name: file.name, kind: 'file', parentId: file.parentId, versionNumber: version,
      modifiedOn: file.mtime, createdOn: file.mtime, pinnedVersion: true,
    };
  }

  /** Resolves once `file` has no fd left, or after `ms`. */
  private untilReleased(file: ActiveFile, ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const waiters = this.releaseWaiters.get(file) ?? [];
      this.releaseWaiters.set(file, waiters);
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        const i = waiters.indexOf(done);
        if (i >= 0) waiters.splice(i, 1);
        resolve();
      }
      waiters.push(done);
    }).finally(() => {
      if (this.releaseWaiters.get(file)?.length === 0) this.releaseWaiters.delete(file);
    });
  }

  /**
   * A held temporary file's last writer closed: journal it (a streamed one's upload completed) to
   * wait for its rename. False when that failed — its bytes journaled for recover by the failure
   * (ActiveFile finishUpload): it is let go as any failed publish, not held forever (review: no
   * timer was set, and the rename answered EIO however S3 fared by then).
   */
  private async held(path: string, file: ActiveFile): Promise<boolean> {
    try {
      await file.journalHeld({ park: true });
      // Its close's journaling failed (close() said so): let go as any failed publish.
      if (file.broken || file.awaitingRecovery) {
        file.heldTemp = false;
        return false;
      }
      return true;
    } catch (err) {
      this.opts.logger?.error({ err, path }, 'a temporary file\'s upload failed at its close; its bytes are kept for `synapse-mount recover`');
      file.heldTemp = false;
      return false;
    }
  }

  /**
   * A temporary file (names.ts isHeldTempName) closed and not renamed within HELD_TEMP_MS: it was
   * not one, or its tool stopped before the rename — published under its own name, as any file.
   */
  /** The latest timer publishHeldLater armed for each held file (earlier ones stand down). */
  private readonly heldTimers = new WeakMap<ActiveFile, number>();

  private publishHeldLater(file: ActiveFile): void {
    // git keeps `index.lock` closed through a commit's editor, then renames or removes it (review:
    // published after 10 s, its rename had to delete it — EACCES for a "Can edit" collaborator).
    if (file.heldUntilRenamed) return;
    // Counted from the last close: a timer armed at an earlier one stands down (QA: `>> log.tmp`
    // every 4 s published a version at the first close's 10 s, and again at each later one).
    const armed = (this.heldTimers.get(file) ?? 0) + 1;
    this.heldTimers.set(file, armed);
    const timer = setTimeout(() => {
      if (this.heldTimers.get(file) !== armed) return;
      const path = [...this.active].find(([, f]) => f === file)?.[0];
      if (!path || !file.heldTemp || file.unlinked || file.refs > 0) return;
      if (file.renaming > 0) {
        this.publishHeldLater(file); // the rename decides
        return;
      }
      file.heldTemp = false;
      void this.lastClosed(path, file).catch((err: unknown) => this.opts.logger?.error({ err, path }, 'publish of a temporary file never renamed failed'));
    }, this.opts.heldTempMs ?? HELD_TEMP_MS);
    timer.unref();
  }

  /** A file's last fd is gone (or a kept scratch file got a real name): publish it and let it go. */
  private async lastClosed(path: string, file: ActiveFile): Promise<void> {
    // Scratch files (editor autosaves, swap files) live only in this mount: keep their bytes
    // until they are removed, so a later open (emacs recovering #file#) still finds them.
    if (file.localOnly && !file.unlinked) return;
    // A tool's temporary file: the rename onto its real name comes next, and publishes it there.
    // Journaled meanwhile, so a crash leaves it to recover (QA: the next mount swept its bytes);
    // a streamed one's upload is completed on S3 first, and registered at the rename (ActiveFile park).
    if (file.heldTemp && !file.unlinked && (await this.held(path, file))) {
      this.publishHeldLater(file);
      return;
    }
    if (this.letGo.has(file)) return; // already (lastWriterClosed, then a reader's close)
    this.letGo.add(file);
    const publishing = this.publishAtLastClose(path, file);
    if (publishing) {
      await publishing;
      if (this.releasing.get(path) === publishing) this.releasing.delete(path);
    }
    const replaced = this.active.has(path) && this.active.get(path) !== file;
    if (this.active.get(path) === file) this.active.delete(path);
    // What waits for recover shows at its path from the moment the file stops being active, not
    // after the awaits below: a stat there showed the old version, whose size an append then
    // wrote at, into the journaled bytes (QA: `cp big f` refused, `echo x >> f`, recover
    // published the big file with x written over its 1 MiB mark).
    this.kept?.closed(file, {
      parentId: file.parentId, name: file.name, entityId: file.entityId, mtime: file.mtime, entry: file.journalEntry,
      unlinked: file.unlinked, replaced,
    });
    // An unlinked file's name is no longer its own (a new file may hold it): leave its entry be.
    if (!file.unlinked && !file.localOnly && !file.emptyPlaceholder && file.entityId) this.table.removeLocal(file.parentId, file.name);
    // Removed (or replaced) while readers opened before its writer share its bytes: those are
    // the only copy of what they read (QA: they fell back to the old version at the writer's
    // close; on a local disk they keep the removed file). Let go when the last of them closes.
    // So is one whose publish failed (journaled): its readers read what they were reading, not the
    // old version (review).
    if ((file.unlinked || file.awaitingRecovery) && this.sharers(file) > 0) {
      this.lingering.add(file);
    } else {
      // Keep the spool only for a journal entry: a failure that wrote none (a lost streamed
      // upload) has nothing in it for `recover`.
      this.unshare(file);
      await file.dispose(file.awaitingRecovery);
    }
    // A new file neither published nor journaled (the spool disk full): nothing here to show.
    if (file.unjournaledBytes && !file.entityId && !file.unlinked) {
      this.table.remove(file.parentId, file.name);
      this.table.invalidate(file.parentId);
    }
  }

  /**
   * A publish that already failed was reported to close() and journaled: leave it to `recover`
   * rather than retrying behind the user's back (predictable, exactly once). One whose journal
   * entry could not be written is tried once more: recover cannot find it.
   */
  private publishAtLastClose(path: string, file: ActiveFile): Promise<void> | undefined {
    // One last-close publish at a time: a second (a reader's close during the last writer's)
    // waits for the first to end — it found nothing left to do before the first had listed the
    // version, and let the file go under it (review).
    const under = this.lastPublish.get(file);
    if (under) return under;
    if (!file.dirty || file.unlinked || file.broken || file.awaitingRecovery) return undefined;
    // Its close failed and its bytes could not be journaled (the log named their spool file):
    // said when this try publishes them after all (QA: whoever followed the log found no bytes).
    const unjournaled = file.unjournaledBytes;
    const publishing = this.publish(path, file).then(() => {
      if (unjournaled !== undefined && !file.dirty) {
        this.opts.logger?.warn({ path, spoolFile: unjournaled }, 'published at its last close after all: the bytes its failed close left in the spool are in Synapse now');
      }
    }, (err: unknown) => {
      // An emptied file left as it was has been logged, and has nothing to recover.
      if (err instanceof EmptyVersionRefused) return;
      this.opts.logger?.error({ err, path: path }, 'publish at last close failed; kept for `synapse-mount recover`');
    });
    this.releasing.set(path, publishing);
    this.lastPublish.set(file, publishing);
    void publishing.finally(() => {
      if (this.lastPublish.get(file) === publishing) this.lastPublish.delete(file);
    });
    return publishing;
  }

  /** At mount: the files of the spool's journal show until recover (kept-files.ts). Returns how many. */
  showJournaled(): Promise<number> {
    return this.kept?.loadJournal() ?? Promise.resolve(0);
  }

  /**
   * Unmount. A file whose last fd has closed but is not published yet is published (a failure
   * leaves its journal entry). A file a program still has open for writing may be half-written:
   * it is never published (QA: SIGTERM published 1 MiB of a 30 MiB copy, over the real file's
   * newest version). Its writes stop (EIO from now on), its bytes go to S3 and the journal as
   * `incomplete`, which `recover` reports as a conflict (`--force` publishes it).
   * Returns what became of each, so the process can say so.
   */
  async drain(): Promise<{ published: string[]; journaled: string[]; lost: string[]; incomplete: string[]; scratch: string[]; emptyLocal: string[] }> {
    const published: string[] = [];
    const journaled: string[] = [];
    const lost: string[] = [];
    const incomplete: string[] = [];
    // Scratch-named files with bytes (never published): they go with the mount. Said at unmount,
    // once, rather than silently (QA: `cp -r` of a tree with `notes~` kept it only here).
    const scratch = [...this.active].filter(([, f]) => f.localOnly && !f.unlinked && f.size > 0).map(([p]) => p);
    const writing = (file: ActiveFile): boolean => file.writers > 0 && !file.unlinked && !file.localOnly;
    // Decided at the freeze: a writer that gets its EIO and closes before its turn below still
    // had the file open when the mount stopped (QA: such a file was published half-written).
    // Temporary files waiting for their rename: it is not coming now; published as they are, then let go.
    const held = new Set([...this.active.values()].filter((f) => f.heldTemp));
    for (const file of held) file.heldTemp = false;
    const openAtStop = new Set([...this.active.values()].filter(writing));
    const why = 'still open for writing when the mount stopped';
    for (const file of openAtStop) file.freeze(why);
    for (const [path, file] of [...this.active]) {
      // Or opened for writing since (review): held back the same way.
      const open = openAtStop.has(file) || writing(file);
      if (open) file.freeze(why);
      await this.releasing.get(path);
      if (!file.dirty || file.unlinked || file.localOnly) continue;
      try {
        if (open) await file.publish({ holdBack: why });
        else await this.publish(path, file);
        published.push(path);
        if (held.has(file) && file.refs === 0) {
          this.active.delete(path);
          await file.dispose(false).catch(() => undefined);
        }
      } catch (err) {
        if (err instanceof EmptyVersionRefused) continue; // logged; Synapse keeps its last version
        // Journaled, or a file whose upload failed outright (its writer already got EIO).
        (!file.awaitingRecovery ? lost : open ? incomplete : journaled).push(path);
      }
    }
    // Scratch files nobody has open go with the mount: their spool files too (QA: left behind,
    // then the next mount's sweep reported them as a crashed mount's).
    for (const [path, file] of [...this.active]) {
      if (!file.localOnly || file.unlinked || file.refs > 0) continue;
      this.active.delete(path);
      await file.dispose(false).catch(() => undefined);
    }
    // Removed files kept for their readers go with the mount too.
    for (const file of [...this.lingering]) {
      this.lingering.delete(file);
      await file.dispose(file.awaitingRecovery).catch(() => undefined);
    }
    // Empty files this folder's storage could not hold, kept here only: gone with the mount, as
    // documented — named at unmount, once (QA: git saw `__init__.py` deleted after a remount,
    // and nothing had said so).
    const accounted = new Set([...published, ...journaled, ...lost, ...incomplete, ...scratch]);
    const emptyLocal = this.table.localOnlyFiles()
      .filter((f) => !accounted.has(f.path) && !this.active.has(f.path) && !this.kept?.has(f.parentId, f.name)
        && !isScratchName(f.name) && !isProbeName(f.name))
      .map((f) => f.path);
    return { published, journaled, lost, incomplete, scratch, emptyLocal };
  }

  async truncate(path: string, size: number): Promise<void> {
    this.checkWritable(path);
    await this.settled(path);
    const af = this.activeFile(path);
    if (af) {
      const wasLocal = af.localOnly;
      await af.truncate(size);
      // A probe-named file given bytes after its last close (`touch 4913; truncate -s 5 4913`):
      // no close is coming to publish it (review).
      if (wasLocal && !af.localOnly && af.refs === 0) await this.lastClosed(path, af);
      return;
    }
    // truncate(1) on a file nobody has open: open, truncate, close (release publishes). Emptying
    // is published here instead, so that Synapse storage's refusal of 0 bytes is truncate's
    // answer (release's reaches nobody); other sizes may mean a long download and upload, which
    // must not run under the op's timeout.
    // To 0 it is how the kernel delivers O_TRUNC (no atomic_o_trunc): a rewrite from empty.
    const fd = await this.open(path, size === 0 ? 1 | O_TRUNC : 1);
    try {
      const file = (this.handle(fd) as { file: ActiveFile }).file;
      await file.truncate(size);
      if (size === 0) await this.publish(path, file);
    } finally {
      await this.release(fd);
    }
  }

  async ftruncate(fd: number, size: number): Promise<void> {
    const h = this.handle(fd);
    if (h.kind !== 'write') throw new FsError('EBADF', `fd ${fd} is not open for writing`);
    await h.file.truncate(size);
    h.changedIn = h.file.publishEpoch;
  }

  async mkdir(path: string): Promise<void> {
    this.checkWritable(path);
    const { parent, name } = await this.table.resolveParent(path);
    if (isLocalDirId(parent.entityId)) throw new FsError('EPERM', `${path}: a mount-local folder holds files only`);
    // A tool's staging folder (rsync --delay-updates' `.~tmp~`: Synapse refuses the `~`): in this
    // mount only. rsync renames its finished temp files into it and, at the end, each onto its
    // real name, then removes it (QA: mkdir failed, and rsync discarded every file with a warning
    // and exited 0). Its files are never published while in it.
    if (isStagingFolderName(name)) {
      if (await this.table.resolve(path).then(() => true, () => false)) {
        throw new FsError('EEXIST', `${path}: exists`);
      }
      this.table.addLocalDir(parent.entityId, name);
      this.folderChanged(parent.entityId);
      return;
    }
    this.checkName(path, name);
    // A file open for writing and not yet in Synapse: Synapse would happily make the folder.
    if (this.active.has(path)) throw new FsError('EEXIST', `${path}: a file is being written there`);
    let entity: Entity;
    try {
      entity = await this.api.createEntity({ concreteType: CONCRETE.folder, name, parentId: parent.entityId });
    } catch (err) {
      // Made by another client since we listed the folder: list it again, so the EEXIST that
      // `mkdir -p` takes for "there already" is true of what it then looks up (QA: the folder
      // stayed invisible, and mkdir -p failing, until the listing's TTL ran out).
      if (isNameTaken(err)) this.table.invalidate(parent.entityId);
      throw err;
    }
    this.table.upsert(this.nodeOf(entity, 'dir', inheritedIn(parent)));
    this.table.addEmptyFolder(entity.id);
    this.writes?.publisher.newFolder(entity.id, parent.entityId);
    this.folderChanged(parent.entityId);
  }

  /** A node for `entity`; `acl`: its benefactor, when known (benefactorOf, inheritedIn, benefactorAfterMove). */
  private nodeOf(entity: Entity, kind: FsNode['kind'], acl: Pick<FsNode, 'benefactorId'> = {}): FsNode {
    return {
      entityId: entity.id, name: entity.name, kind, parentId: entity.parentId, versionNumber: entity.versionNumber,
      modifiedOn: Date.parse(entity.modifiedOn) || Date.now(), createdOn: Date.parse(entity.createdOn) || Date.now(), ...acl,
    };
  }

  async rmdir(path: string): Promise<void> {
    this.checkWritable(path);
    const node = await this.table.resolve(path);
    if (node.kind !== 'dir') throw new FsError('ENOTDIR', `${path}: not a directory`);
    if (node === this.table.root) throw new FsError('EBUSY', 'cannot remove the mount root');
    if (isLocalDirId(node.entityId)) {
      if ((await this.table.children(node.entityId, { sizes: false })).length > 0) throw new FsError('ENOTEMPTY', `${path}: directory not empty`);
      this.table.remove(node.parentId!, node.name);
      this.folderChanged(node.parentId);
      return;
    }
    this.table.invalidate(node.entityId);
    if ((await this.table.children(node.entityId, { sizes: false })).length > 0) throw new FsError('ENOTEMPTY', `${path}: directory not empty`);
    await this.api.deleteEntity(node.entityId);
    this.table.remove(node.parentId!, node.name);
    this.table.invalidate(node.entityId);
    this.forgetTimeOf(node);
    this.folderChanged(node.parentId);
  }

  async unlink(path: string): Promise<void> {
    this.checkWritable(path);
    await this.settled(path);
    const listed = await this.table.resolve(path);
    if (listed.kind === 'dir') throw new FsError('EISDIR', `${path}: is a directory`);
    let node = listed;
    const af = this.activeFile(path, node);
    if (af) {
      // POSIX keeps an unlinked file usable through the fds that hold it: keep its bytes first.
      if (af.refs > 0) {
        await af.keepBaseLocally().catch((err: unknown) => {
          this.opts.logger?.warn({ err, path }, 'could not keep the bytes of an unlinked file still open; its writer may get errors');
        });
      }
      // A publish that ran meanwhile (an fd's close or fsync; keepBaseLocally waits for it) may
      // have created the file in Synapse after the node was read: that entity is what rm removes
      // (review: rm answered 0 and the file stayed in Synapse).
      if (!node.entityId && af.entityId) node = { ...node, entityId: af.entityId };
      af.unlinked = true;
      this.active.delete(path);
      // Opened over a file waiting for recover, or journaled itself: removing it drops that entry too.
      await this.dropSuperseded(af, 'removed');
      await af.dropJournal();
      if (af.refs === 0 && this.sharers(af) > 0) this.lingering.add(af);
      else if (af.refs === 0) {
        this.unshare(af);
        await af.dispose(false);
      }
    }
    // A scratch name never owns a Synapse entity, even when it shows one (an editor's backup
    // `file~` is a read-only view of the version it was renamed from): removing it deletes
    // nothing in Synapse.
    if (node.entityId && (!isScratchName(node.name) || isStaleSqliteSideFile(node))) {
      await this.api.deleteEntity(node.entityId);
      this.forgetTimeOf(node);
      // Its readers keep the bytes they were reading, as a removed inode's do (review: brought back
      // by a file made again under its name, they would have followed its new version).
      for (const h of this.handles.values()) if (h.kind === 'read' && h.node.entityId === node.entityId) h.detached = true;
      // Made again under this name soon (tar x, unzip -o, zip): it comes back as the next version
      // (removed-names.ts) — only a file whose sharing is its folder's (an own ACL stays in the trash).
      if (node.kind === 'file' && node.benefactorId !== undefined && node.benefactorId !== node.entityId) {
        const known = this.table.knownSize(node);
        this.removedNames.note({ entityId: node.entityId, parentId: node.parentId!, name: node.name, size: known?.size, md5: known?.md5 });
      }
      // Backup views of it (`mv -b g f; rm f`) showed versions of this entity, now in the trash
      // can: they go with it rather than stay listed and answer EIO (review; README, Names).
      for (const view of this.table.localEntriesOf(node.entityId)) {
        if (isView(view)) this.table.remove(view.parentId!, view.name);
      }
    }
    // The view of a file still hidden under its own name (`mv f f~; rm f~`): its only name is
    // gone, so the file goes to the trash can, as rm of a renamed file does (QA: it showed
    // again, and `rm -rf` of its folder failed with ENOTEMPTY).
    const onlyName = node.hides && node.entityId && this.table.isHidden(node.hides.parentId, node.hides.name, node.entityId);
    if (onlyName) {
      await this.api.deleteEntity(node.entityId);
      this.forgetTimeOf(node);
    }
    this.table.remove(node.parentId!, node.name);
    this.emptyReadersRenamed(node.parentId!, node.name, undefined);
    if (node.hides) {
      if (onlyName) this.table.dropHidden(node.hides.parentId, node.hides.name);
      else this.table.unhide(node.hides.parentId, node.hides.name);
    }
    this.forgetShown(path);
    this.mtimes.delete(`local:${path}`);
    this.folderChanged(node.parentId);
    await this.kept?.discard(node, 'unlink');
  }

  /**
   * rename(2). Onto an existing file, the moved content becomes the next version of the
   * target entity (its synID, annotations and history survive) and the source entity goes.
   * Into or out of an STS folder Synapse refuses the move: EXDEV, so `mv` copies instead.
   */
  async rename(src: string, dest: string): Promise<void> {
    this.checkWritable(src);
    // A temporary file waiting for this very rename: its timer must not publish it meanwhile (review).
    const renaming = this.active.get(src);
    if (renaming) renaming.renaming++;
    try {
      await this.renameSettled(src, dest);
    } finally {
      if (renaming) renaming.renaming--;
    }
  }

  private async renameSettled(src: string, dest: string): Promise<void> {
    await this.settled(src, dest);
    // A publish of the file the rename replaces (a flush or fsync of one of its fds: `settled`
    // waits only for last closes) finishes first, so its bytes become a version before the
    // renamed ones, never after (review: `mv new F` answered 0, then F's writer's close made its
    // old bytes F's newest version). One that starts while the rename runs waits for it (publish),
    // then finds its file replaced — nameless, as in POSIX — and publishes nothing (review: a
    // flush starting just after the wait committed while the rename's calls ran).
    const replaced = this.active.get(dest);
    if (!replaced || replaced === this.active.get(src)) return this.renameResolved(src, dest);
    let done!: () => void;
    const fence = new Promise<void>((resolve) => { done = resolve; });
    replaced.replacing.add(fence);
    try {
      await replaced.idle();
      await this.renameResolved(src, dest);
    } finally {
      replaced.replacing.delete(fence);
      done();
    }
  }

  private async renameResolved(src: string, dest: string): Promise<void> {
    let node = await this.table.resolve(src);
    let target = await this.table.resolve(dest).catch(() => undefined);
    let outcome: 'unchanged' | void;
    try {
      outcome = await this.renameNow(src, dest, node);
    } catch (err) {
      // The name was taken by another client after we listed its folder: list it again and
      // rename onto what is there now, as rename(2) does (QA: `mv f.tmp f` failed with EEXIST,
      // which rename never answers for a file, and left f.tmp behind).
      if (!(err instanceof MoveNameTaken)) throw err;
      const { parent: destParent } = await this.table.resolveParent(dest);
      this.table.invalidate(destParent.entityId);
      target = await this.table.resolve(dest).catch(() => undefined);
      const again = await this.table.resolve(src).catch(() => undefined);
      if (!target || !again) throw err.synapseError;
      node = again;
      outcome = await this.renameNow(src, dest, node).catch((e: unknown) => {
        throw e instanceof MoveNameTaken ? e.synapseError : e;
      });
    }
    if (outcome === 'unchanged') return; // nothing moved: no folder's time, no kept entry (review)
    const moved = await this.table.resolveParent(dest).catch(() => undefined);
    this.folderChanged(node.parentId);
    if (moved && moved.parent.entityId !== node.parentId) this.folderChanged(moved.parent.entityId);
    if (moved) this.emptyReadersRenamed(node.parentId!, node.name, { parentId: moved.parent.entityId, name: moved.name });
    // A file waiting for recover follows its name; one replaced by the rename is dropped (kept-files.ts).
    if (target && (target.parentId !== node.parentId || target.name !== node.name)) await this.kept?.discard(target, 'replaced by a rename');
    if (!moved || !this.kept) return;
    await this.kept.moved(node, moved.parent.entityId, moved.name);
    // Open for writing over a kept file: the entry it started from follows too (shown again if
    // the file is closed unchanged; review: it kept the old name and was lost).
    const af = this.active.get(dest);
    if (af) await this.kept.followRename(af, moved.parent.entityId, moved.name);
  }

  /** The rename, as it applies; 'unchanged' when source and target are one file (POSIX: nothing happens). */
  private async renameNow(src: string, dest: string, resolved: FsNode): Promise<'unchanged' | void> {
    let node = resolved;
    const { parent: destParent, name: destName } = await this.table.resolveParent(dest);
    // A mount-local folder (mkdir of a scratch name: rsync's `.~tmp~`) stays where it is made, and
    // takes only files Synapse does not have yet — a tool's temporary or scratch file — which are
    // published when renamed out of it. A published file moved in would leave Synapse for a
    // folder that ends with the mount (`mv` falls back to copy and delete on EXDEV: refused, not that).
    if (isLocalDirId(node.entityId)) throw new FsError('EPERM', `${src}: a mount-local folder cannot be renamed`);
    const intoLocal = isLocalDirId(destParent.entityId);
    if (intoLocal) {
      // A published file (a tool's temp file whose name the mount does not hold: rsync's all
      // lower-case `.f.XXXXXX`, 0.55 % of them) moves in as `mv f f~` does: a view, its entity
      // left where it is until it moves out (review: EPERM, and rsync exit 23). A folder, or a
      // file waiting for recover (its entry would name the local folder), may not.
      if (node.kind !== 'file' || (this.kept?.has(node.parentId, node.name) ?? false)) {
        throw new FsError('EPERM', `${dest}: a mount-local folder holds only files`);
      }
      // Closed, its RELEASE maybe still to come (its publish at close then lets it go): wait, and
      // take the file as that leaves it (review: rsync's rename came between FLUSH and RELEASE).
      const open = this.active.get(src);
      if (open && open.refs > 0 && !open.localOnly && !open.heldTemp) {
        await this.untilReleased(open, STAGING_RELEASE_WAIT_MS);
        node = await this.table.resolve(src);
      }
    }
    const scratch = isScratchName(destName) || intoLocal;
    if (!scratch) {
      this.checkName(dest, destName);
    }
    let target = (await this.table.resolve(dest).catch(() => undefined))
      ?? (scratch ? undefined : await this.hiddenTarget(destParent.entityId, destName, node, src))
      // Only for a tool's temporary file (zip's; published already if it streamed): any other
      // published file keeps its own identity (`rm g; mv h g` moves h).
      ?? (scratch || node.kind !== 'file' || (node.entityId && !isHeldTempName(node.name)) ? undefined
        : await this.revivedTarget(destParent.entityId, destName, dest));
    // Replacing the mount-local folder itself (`mv dir .~tmp~`): Synapse has no such folder to replace.
    if (target && isLocalDirId(target.entityId)) throw new FsError('EPERM', `${dest}: a mount-local folder cannot be replaced`);
    // The same file under two names (a hard link, had Synapse any) — not a backup view and the
    // file it was made from: those show different versions of one entity (QA: `mv f~ f` to
    // restore a backup, and `mv f f~` over an older backup, answered 0 and did nothing).
    if (target && target.entityId && target.entityId === node.entityId && !isView(target) && !isView(node)) return 'unchanged';
    // A published file whose newer bytes wait for recover, onto another file: Synapse would move
    // its old version there (replaceContent) while the kept bytes stay behind. Refused instead.
    if (target?.kind === 'file' && node.entityId && (await this.kept?.shown(node))) {
      throw new FsError('EBUSY', `${src}: waits for \`synapse-mount recover\`; recover it first, or copy it (cp) onto ${dest}`);
    }
    // A folder into itself or its own subtree: EINVAL before anything changes (the VFS answers
    // this for FUSE; the check here keeps the replaced target from being deleted first).
    if (node.kind === 'dir' && dest.startsWith(`${src.replace(/\/+$/, '')}/`)) {
      throw new FsError('EINVAL', `${dest}: a folder cannot move into itself`);
    }
    const af = this.activeFile(src, node);
    this.forgetShown(src, node.kind === 'dir');
    this.forgetShown(dest, node.kind === 'dir');

    // A scratch view of a file still hidden under its own name (`mv f f~; mv f~ g`): the file
    // itself moves, as if by `mv f g` — back under its own name, nothing changes in Synapse.
    const hidden = node.hides;
    if (hidden && !scratch && !af && this.table.isHidden(hidden.parentId, hidden.name, node.entityId)) {
      // Refused moves first, before the view is taken apart (QA: EXDEV halfway, and `mv`'s copy
      // fallback then found no source).
      if (hidden.parentId !== destParent.entityId && (await this.crossesSts(hidden.parentId, destParent.entityId))) {
        throw stsMoveRefused(src, dest);
      }
      this.table.remove(node.parentId!, node.name);
      node = { ...node, parentId: hidden.parentId, name: hidden.name, pinnedVersion: false };
      delete node.hides;
      this.table.upsert(node);
      if (hidden.parentId === destParent.entityId && hidden.name === destName) return;
      target = (await this.table.resolve(dest).catch(() => undefined)) ?? await this.hiddenTarget(destParent.entityId, destName, node, src);
    } else if (node.kind === 'file' && (scratch || isScratchName(node.name) || af)) {
      return this.renameLocalFile(src, dest, node, destParent, destName, target, af, scratch);
    } else if (node.kind === 'file' && !node.entityId) {
      return this.renameLocalEntry(src, dest, node, destParent, destName, target);
    }
    // Fetched before anything changes: a folder replacing another is then missing from Synapse
    // for one update only.
    let entity: Entity | undefined;
    if (target) {
      if (node.kind === 'dir') {
        if (target.kind !== 'dir') throw new FsError('ENOTDIR', `${dest}: not a directory`);
        this.table.invalidate(target.entityId);
        if ((await this.table.children(target.entityId, { sizes: false })).length > 0) throw new FsError('ENOTEMPTY', `${dest}: directory not empty`);
        // Synapse has no rename-over: the empty target folder is deleted, then the folder moved.
        // Whatever would refuse the move is asked first, or the target (its synID, annotations,
        // sharing) would be gone for nothing: a folder renamed onto an empty folder in an STS
        // folder failed with EXDEV after deleting it.
        await this.permissions.require('change', node.entityId, src, node.benefactorId);
        await this.permissions.require('delete', target.entityId, dest, target.benefactorId);
        if (node.parentId !== destParent.entityId) {
          await this.permissions.require('add files to', destParent.entityId, dest, destParent.benefactorId);
          if (await this.crossesSts(node.parentId!, destParent.entityId)) throw stsMoveRefused(src, dest);
        }
        entity = await this.api.getEntity(node.entityId);
        await this.api.deleteEntity(target.entityId);
        this.table.remove(destParent.entityId, destName);
      } else if (target.kind === 'dir') {
        throw new FsError('EISDIR', `${dest}: is a directory`);
      } else if (node.kind === 'file' && target.kind === 'file' && !target.entityId) {
        // A name only this mount holds (an empty placeholder, a new file waiting for recover —
        // rename() drops its entry): nothing in Synapse to replace, the file simply moves there
        // (a file open for writing there is replaced once the move succeeded, below).
      } else if (node.kind === 'file' && target.kind === 'file') {
        await this.replaceContent(node, target);
        this.table.remove(node.parentId!, node.name);
        this.orphanReplaced(dest, destParent.entityId, destName);
        return;
      }
    }
    entity ??= await this.api.getEntity(node.entityId);
    // rename(2) keeps the file's (or folder's) own mtime; Synapse's modifiedOn moves with the update.
    const mtime = this.mtimeOf(node, src);
    let moved: Entity;
    try {
      moved = await this.api.updateEntity({ ...entity, name: destName, parentId: destParent.entityId });
    } catch (err) {
      // The empty folder this move replaced is already in the trash can: put it back.
      if (target?.kind === 'dir' && node.kind === 'dir') await this.restoreReplaced(target, destParent, dest);
      if (isStsMoveRefusal(err)) throw stsMoveRefused(src, dest, err);
      // A name taken after our listing, with no target known here: rename() looks again.
      if (isNameTaken(err) && !target) throw new MoveNameTaken(err);
      throw err;
    }
    if (node.kind === 'dir') this.setFolderMtime(moved.id, mtime);
    else if (moved.versionNumber === node.versionNumber) this.setVersionMtime(moved.id, moved.versionNumber, mtime);
    this.table.remove(node.parentId!, node.name);
    if (target && !target.entityId) {
      this.orphanReplaced(dest, destParent.entityId, destName);
      this.table.removeLocal(destParent.entityId, destName);
    }
    const acl = benefactorAfterMove(node, destParent);
    this.table.upsert(this.nodeOf(moved, node.kind, acl));
    // A folder that changed ACL by moving: what is cached below it names the old one.
    if (node.kind === 'dir' && acl.benefactorId !== node.benefactorId) this.table.invalidateTree(moved.id, node.benefactorId);
    this.moveActivePaths(src, dest);
    // Its readers look for newer versions under its new name (followAtEnd; review: they stopped following).
    if (node.kind === 'file') {
      for (const h of this.handles.values()) {
        if (h.kind === 'read' && h.node.entityId === moved.id) h.node = { ...h.node, parentId: destParent.entityId, name: destName };
      }
    }
  }

  /**
   * The file this mount removed from `dest` a moment ago, back out of the trash can as the
   * rename's target (removed-names.ts): `zip` updating an archive removes it and renames its
   * temp file onto the name, which then becomes the archive's next version, not a new synID.
   */
  private async revivedTarget(parentId: string, name: string, dest: string): Promise<FsNode | undefined> {
    const removed = this.removedNames.take(parentId, name);
    if (removed === undefined || !this.writes) return undefined;
    if (!(await this.writes.publisher.restoreRemoved(removed.entityId, parentId, name).catch(() => undefined))) return undefined;
    this.table.invalidate(parentId);
    return this.table.resolve(dest).catch(() => undefined);
  }

  /**
   * A folder renamed onto an empty folder deletes the target first (Synapse has no
   * rename-over); when the move itself then fails, the target comes back out of the trash can
   * with its synID and annotations, so the failed rename leaves it where it was. Not its
   * sharing: Synapse drops an entity's own ACL when it goes to the trash can, so a folder shared
   * by an ACL of its own would come back open to whatever its parent allows — such a folder
   * (or one whose ACL is unknown) stays in the trash can, and the log says so. Best effort: if
   * Synapse refuses the restore too, the log says where the folder went.
   */
  private async restoreReplaced(target: FsNode, destParent: FsNode, dest: string): Promise<void> {
    if (target.benefactorId === undefined || target.benefactorId === target.entityId) {
      this.opts.logger?.error({ entity: target.entityId, path: dest },
        'a folder rename failed after its target folder was deleted; the target had sharing settings of its own, which Synapse does not bring back, so it is left in your Synapse trash can');
      return;
    }
    try {
      await this.api.restoreFromTrash(target.entityId);
    } catch (err) {
      // A restore whose answer was lost and was repeated finds it out of the trash already.
      const back = await this.api.getEntity(target.entityId).then((e) => e.parentId === destParent.entityId, () => false);
      if (!back) {
        this.opts.logger?.error({ err, entity: target.entityId, path: dest },
          'a folder rename failed after its target folder was deleted, and the target could not be restored: it is in your Synapse trash can');
        return;
      }
    }
    // Listed again rather than the node put back: the restore changed its etag and times.
    this.table.invalidate(destParent.entityId);
  }

  /**
   * The file hidden under `name` by a scratch view of it (`mv f f~`), as a rename's target:
   * Synapse still holds the name, so `mv g f` (`mv -b`, `rsync -b`) makes the moved bytes its
   * next version, as onto a listed file; the view keeps showing the version it was renamed
   * from (QA: EEXIST). Not when `node` is that view itself, or a file only this mount holds
   * (an empty placeholder: replacing would delete the file the view reads).
   */
  private async hiddenTarget(parentId: string, name: string, node: FsNode, src: string): Promise<FsNode | undefined> {
    const hiddenId = this.table.hiddenAt(parentId, name);
    if (!hiddenId || hiddenId === node.entityId || node.kind !== 'file') return undefined;
    if (!node.entityId && !this.active.has(src)) return undefined;
    try {
      const entity = await this.api.getEntity(hiddenId);
      if (entity.parentId === parentId && entity.name === name) return this.nodeOf(entity, 'file');
    } catch (err) {
      if (!(err instanceof SynapseError && err.status === 404)) throw err;
    }
    // Deleted or moved elsewhere meanwhile: the name is free.
    this.table.unhide(parentId, name);
    return undefined;
  }

  /**
   * A file open for writing at `path` was just replaced by a rename onto it: as in POSIX its
   * fds keep the old, now nameless file, whose bytes are never published (as after unlink);
   * its local listing entry goes. Without this, its last close published its bytes over the
   * renamed file (found by test/unit/fs-model.test.ts).
   */
  private orphanReplaced(path: string, parentId: string, name: string): void {
    const af = this.active.get(path);
    if (!af) return;
    af.unlinked = true;
    this.active.delete(path);
    this.table.removeLocal(parentId, name);
    this.releaseUnlinked(af); // a kept scratch file nobody has open (review: never disposed)
    void this.dropSuperseded(af, 'replaced by a rename').then(() => af.dropJournal());
  }

  /**
   * A closed file that lives only in this mount — an empty file where Synapse storage cannot
   * hold 0 bytes, or a new file waiting for recover — moves in the mount's view alone. Onto a
   * published file it replaces that file as an empty one would: the entity goes to Synapse's
   * trash can. (QA: `: > f.lock; mv f.lock f` said ENOENT, which broke `git stash pop`.)
   */
  private async renameLocalEntry(src: string, dest: string, node: FsNode, destParent: FsNode, destName: string, target: FsNode | undefined): Promise<void> {
    if (target?.kind === 'dir') throw new FsError('EISDIR', `${dest}: is a directory`);
    if (target?.entityId) await this.trashReplaced(dest, target);
    if (target) this.table.remove(destParent.entityId, destName);
    this.orphanReplaced(dest, destParent.entityId, destName);
    this.table.remove(node.parentId!, node.name);
    this.table.addLocal({ ...node, name: destName, parentId: destParent.entityId });
    const mtime = this.mtimes.get(`local:${src}`);
    this.mtimes.delete(`local:${src}`);
    if (mtime !== undefined) this.mtimes.set(`local:${dest}`, mtime);
  }

  /** A published file replaced by one kept in this mount only: it goes to Synapse's trash can. */
  private async trashReplaced(dest: string, target: FsNode): Promise<void> {
    // A publish of the file open there (an fsync) finishes first: meeting the deleted entity,
    // it would publish a new file of that name (Publisher.commit), back from the dead.
    await this.active.get(dest)?.idle();
    await this.api.deleteEntity(target.entityId);
    this.opts.logger?.warn({ path: dest, entityId: target.entityId },
      'replaced by a file kept in this mount only (empty in Synapse storage, or waiting for recover): the old file is in Synapse\'s trash can');
  }

  /** The content of `source` becomes the next version of `target`; `source` is deleted. */
  private async replaceContent(source: FsNode, target: FsNode): Promise<void> {
    // Both, before anything changes: Synapse would take the new version, then refuse the delete.
    await this.permissions.require('change', target.entityId, target.name, target.benefactorId);
    await this.permissions.require('delete', source.entityId, source.name, source.benefactorId);
    const src = await this.api.getEntity(source.entityId);
    if (src.parentId !== target.parentId && (await this.crossesSts(src.parentId!, target.parentId!))) {
      throw new FsError('EXDEV', 'Synapse refuses moving content into or out of an STS folder');
    }
    const updated = await this.writes!.publisher.commit(target.parentId!, target.name, String(src.dataFileHandleId), target.entityId);
    // As rename(2): the moved file keeps its mtime — the one utimens gave it (rsync's temp file),
    // else its own; without this a second `rsync -a` saw the target's old time and sent it again.
    // Before anything is awaited: readers moved to the new version fstat it.
    this.setVersionMtime(updated.id, updated.versionNumber, this.mtimeOf(source));
    if (updated.versionNumber !== undefined) this.readersOfReplaced(source.entityId, target.entityId, updated.versionNumber, true);
    await this.api.deleteEntity(source.entityId);
    this.table.upsert(this.nodeOf(updated, 'file', benefactorOf(target)));
    this.forgetTimeOf(source); // gone (rsync's temp file)
    const size = this.table.knownSize(source);
    if (size && updated.versionNumber !== undefined) this.table.setSize(updated.id, updated.versionNumber, size);
  }

  private async crossesSts(a: string, b: string): Promise<boolean> {
    const [da, db] = await Promise.all([this.api.getUploadDestination(a), this.api.getUploadDestination(b)]);
    return (da.stsEnabled ?? false) !== (db.stsEnabled ?? false) || (da.stsEnabled === true && da.storageLocationId !== db.storageLocationId);
  }

  /**
   * Renames that involve a file not (yet) published as itself: an open file being written, a
   * scratch file, or a published file renamed to a scratch name (vim/emacs backups). The
   * Synapse entity, if any, is left as it is; the mount's view changes at once.
   */
  private async renameLocalFile(src: string, dest: string, node: FsNode, destParent: FsNode, destName: string,
    target: FsNode | undefined, af: ActiveFile | undefined, toLocal = isScratchName(destName)): Promise<void> {
    if (target?.kind === 'dir') throw new FsError('EISDIR', `${dest}: is a directory`);
    if (af) {
      // Out of a mount-local folder onto a real name (rsync --delay-updates' last step): published
      // now, the rename answering for it, as a tool's temporary file given its name.
      const staged = isLocalDirId(node.parentId) && !toLocal;
      // A tool's close is FLUSH, then an asynchronous RELEASE, which may come after this rename
      // (review): a held file waits a moment for it, so what it holds, and its publish, are known
      // — before the check below, which its FLUSHed fd would fail (review: rsync --delay-updates' EBUSY).
      if (af.heldTemp && af.refs > 0) await this.untilReleased(af, toLocal ? STAGING_RELEASE_WAIT_MS : HELD_RELEASE_WAIT_MS);
      if (af.writers > 0 && !af.localOnly && toLocal) {
        // Its bytes could be published under no name (Synapse refuses scratch names), and would
        // be lost at unmount if kept local (QA: every later close failed with EINVAL).
        throw new FsError('EBUSY', `${src}: open for writing; close it before renaming it to a scratch name (${destName} is never published)`);
      }
      // Out of a mount-local folder to a new name: may this user add files there? (Made in the
      // local folder, it was never asked; review: a viewer's move out failed EIO and journaled it.)
      if (staged && !target?.entityId) await this.permissions.require('add files to', destParent.entityId, dest, destParent.benefactorId);
      if (target?.entityId && !toLocal && (af.heldTemp || staged) && af.refs === 0 && af.size === 0
        && !(await this.writes!.publisher.holdsEmptyFiles(destParent.entityId))) {
        // A tool's empty temporary file (rsync of an empty file, `sed -i '1,$d'`) where Synapse
        // cannot hold 0 bytes: as any closed empty file renamed onto a file (renameLocalEntry, git's
        // lock dance), the old file goes to the trash can and the empty one stays in this mount
        // (QA: the rename answered 0 and the file kept its bytes; a temp name the mount does not
        // hold — no capital in its suffix — already went that way).
        await this.permissions.require('delete', target.entityId, dest, target.benefactorId);
        await this.trashReplaced(dest, target);
        this.table.remove(destParent.entityId, destName);
        target = undefined;
      }
      if (target?.entityId && !toLocal) {
        // Before anything changes: the target gets these bytes, the source entity goes.
        await this.permissions.require('change', target.entityId, dest, target.benefactorId);
        if (af.entityId && af.entityId !== target.entityId) await this.permissions.require('delete', af.entityId, src, node.benefactorId);
      }
      // A file waiting for recover that these bytes replace: dropped once they are published or
      // journaled in its place (rename() after a rename that answers 0; below, when the publish fails).
      const replacedKept = target && (await this.kept?.waiting(target));
      // Publish under the new name: as a new version of the file it replaces, if any.
      this.active.delete(src);
      const old = this.active.get(dest);
      const before = { parentId: af.parentId, name: af.name, localOnly: af.localOnly, heldTemp: af.heldTemp };
      af.parentId = destParent.entityId;
      af.name = destName;
      // A scratch file given a real name is published from now on (the other way is refused above).
      const wasLocal = af.localOnly;
      if (wasLocal && !toLocal) af.localOnly = false;
      // A temporary file given its real name: published there now (below), once. Given a scratch
      // name instead, it is a scratch file (review: it vanished from the listing).
      const wasHeld = af.heldTemp || staged;
      af.heldTemp = false;
      if (wasHeld && toLocal) af.localOnly = true;
      try {
        // A stream into the same STS location goes on there, its record following (ActiveFile followMove).
        // Not into a mount-local folder: its stream stays its folder's, where it most likely goes next.
        if (!isLocalDirId(af.parentId)) await af.streamFollows();
        if (target?.entityId && !toLocal) {
          // adopt() loads the bytes from the source entity, so it is deleted only afterwards.
          const source = af.entityId;
          const known = this.table.knownSize(target);
          await af.adopt(target.entityId, target.versionNumber, known?.md5 ? { size: known.size, md5: known.md5 } : undefined);
          this.readersOfReplaced(source, target.entityId, target.versionNumber);
          // The move has happened here (the bytes are the target's next version): a source that
          // cannot be deleted now stays behind in Synapse, said in the log — not a failed rename
          // whose file the program can no longer find.
          if (source && source !== target.entityId) {
            await this.api.deleteEntity(source).catch((err: unknown) => this.opts.logger?.warn({ err, path: src, entityId: source },
              'renamed onto a file, but its old entity could not be deleted: it stays in Synapse under its old name'));
          }
        } else if (af.entityId && !toLocal) {
          const entity = await this.api.getEntity(af.entityId);
          await this.api.updateEntity({ ...entity, name: destName, parentId: destParent.entityId }).catch((err: unknown) => {
            if (isStsMoveRefusal(err)) throw stsMoveRefused(src, dest, err);
            throw err;
          });
          // Unchanged since its version: that version keeps its time past the update's modifiedOn.
          this.setVersionMtime(af.entityId, af.cleanVersion, af.mtime);
        }
      } catch (err) {
        // Nothing moved: the file stays at its name, and the one it was to replace stays whole —
        // its writer's close publishes it (review: marked replaced first, its bytes were dropped).
        Object.assign(af, before);
        this.active.set(src, af);
        throw err;
      }
      // Only now is the replaced file nameless (its publishes waited for this: renameSettled).
      if (old) {
        old.unlinked = true;
        // Nameless now, as a removed file (unlink): no entry of its may have recover bring it back
        // (review: its O_SYNC entry did).
        await old.dropJournal();
        if (old !== af) this.releaseUnlinked(old);
      }
      this.active.set(dest, af);
      for (const h of this.handles.values()) if (h.kind === 'write' && h.file === af) h.path = dest;
      // Its O_SYNC entry names where it is now, and the file it replaced (review: recover made it anew under its old name).
      await af.followSyncedEntry();
      this.table.remove(node.parentId!, node.name);
      const { benefactorId: _src, ...rest } = node;
      this.table.addLocal({
        ...rest, entityId: target?.entityId ?? af.entityId ?? '', name: destName, parentId: destParent.entityId,
        // The target's version, until these bytes make the next one — or for good when they are
        // its bytes (review: an unchanged rsync -aI showed no version and the temp file's time).
        ...(target?.entityId ? { versionNumber: target.versionNumber, modifiedOn: target.modifiedOn, createdOn: target.createdOn } : {}),
        // The ACL of the entity the name now shows: the replaced target's, or the moved file's.
        ...(target?.entityId ? benefactorOf(target) : af.entityId && af.entityId === node.entityId ? benefactorAfterMove(node, destParent) : {}),
      });
      // A tool's temporary file given its real name is published now, and the rename answers for
      // it — the tool's only word on its file (QA: rsync exited 0 with the publish failing). The
      // rename has no op timeout (fuse-adapter.ts), as close has none.
      // git renames a lock onto a file it also removes whole later (`gc.pid.lock` → `gc.pid`;
      // pack-objects' temp pack → repack's `.tmp-<pid>-pack-*`): held under its new name, not
      // published (QA: a "Can edit" collaborator's `git gc` could not unlink gc.pid).
      if (wasHeld && !af.localOnly && !target?.entityId && isGitLockPath(dest)) {
        af.heldTemp = true;
        af.heldUntilRenamed = true;
        await af.journalHeld({ park: false }); // its entry names the new path
        return;
      }
      if (wasHeld && !af.localOnly) {
        if (af.refs === 0) {
          await (this.lastPublish.get(af) ?? this.lastClosed(dest, af));
          if (af.awaitingRecovery || af.broken || af.unjournaledBytes) {
            // Journaled in its place: the replaced file's entry goes, or recover would publish both
            // (review). Not when these bytes have no entry (the spool full): the old ones are all there is.
            if (replacedKept && af.journalEntry && !af.unjournaledBytes) await this.kept!.discardKept(replacedKept, 'replaced by a rename');
            throw new FsError('EIO', `${dest}: renamed, but not published (see the log); its bytes are kept for \`synapse-mount recover\``);
          }
          return;
        }
        // Still open (a reader): published at its last close; journaled under its new name meanwhile.
        await af.journalHeld({ park: false });
        return;
      }
      if (wasHeld) await af.dropHeldEntry(); // a scratch file now: never published, nothing to recover
      // A scratch file kept after its last close (`echo x > t~; mv t~ t`) is published now: no
      // close is coming to do it. Not awaited (an upload may outlast the rename's op timeout);
      // later ops on `dest` wait for it (`releasing`).
      if (wasLocal && !af.localOnly && af.refs === 0) {
        void this.lastClosed(dest, af).catch((err: unknown) => this.opts.logger?.error({ err, path: dest }, 'publish after rename failed'));
      }
      return;
    }
    if (toLocal) {
      // e.g. vim's backup `file~`: hide the published file under its old name; keep a local,
      // read-only view of it under the scratch name. The entity itself is untouched.
      const hides = node.hides ?? (isScratchName(node.name) ? undefined : { parentId: node.parentId!, name: node.name });
      if (hides && !node.hides) this.table.hide(hides.parentId, hides.name, node.entityId);
      else this.table.remove(node.parentId!, node.name);
      // Their file is the backup now: what is written at the old name later (vim's save) is
      // another file to them, as a renamed inode's readers never see it (review).
      this.readersOfReplaced(undefined, node.entityId, undefined);
      this.table.addLocal({ ...node, name: destName, parentId: destParent.entityId, pinnedVersion: true, ...(hides ? { hides } : {}) });
      return;
    }
    // A scratch file renamed to a real name: publish its bytes under that name.
    if (!node.entityId) throw new FsError('EINVAL', `${src}: local scratch file has no content to publish`);
    // The bytes it shows: a backup view is pinned to the version it was renamed from, which
    // may no longer be the newest (`mv -b` gave the file a new version since).
    const shows = await this.sources.resolve(node, node.pinnedVersion === true);
    this.table.remove(node.parentId!, node.name);
    const updated = await this.writes!.publisher.commit(destParent.entityId, destName, String(shows.fileHandle.id), target?.entityId);
    if (target?.entityId) this.readersOfReplaced(undefined, target.entityId, undefined);
    this.table.upsert(this.nodeOf(updated, 'file', target?.entityId === updated.id ? benefactorOf(target) : updated.versionNumber === 1 ? inheritedIn(destParent) : {}));
    // As rename(2): the restored bytes keep the time the view showed.
    this.setVersionMtime(updated.id, updated.versionNumber, this.mtimeOf(node));
  }

  private moveActivePaths(src: string, dest: string): void {
    for (const [p, file] of [...this.active]) {
      if (p === src || p.startsWith(`${src}/`)) {
        const np = dest + p.slice(src.length);
        this.active.delete(p);
        this.active.set(np, file);
        for (const h of this.handles.values()) if (h.kind === 'write' && h.file === file) h.path = np;
      }
    }
  }

  /** utimens: the time is kept (mtimes, ActiveFile.mtime) so a second `rsync -a` sees it and skips the file. */
  async utimens(path: string, _atime: number, mtimeMs: number): Promise<void> {
    this.checkWritable(path);
    let af = this.active.get(path);
    const node = af ? undefined : await this.table.resolve(path);
    // Open under a path another client's move of a folder above it changed (review).
    af ??= this.activeFile(path, node);
    // The patched addon sends UTIME_OMIT as 1 (`touch -a`: the mtime stays) and UTIME_NOW as the
    // time; a prebuild sends either as 1073 ms (below), taken as "now".
    if (mtimeMs === UTIME_OMIT_MS) return;
    // Only who may change the entity sets its time, as a local disk lets only the owner (QA: a
    // read-only collaborator's `touch -d 2020-01-01 f` said 0 and the mount showed that date).
    // A file open for writing was checked at its open; local and scratch entries are this mount's.
    if (!af && node!.entityId && !isLocalDirId(node!.entityId) && !isScratchName(node!.name)) {
      await this.permissions.require('change', node!.entityId, path, node!.benefactorId);
    }
    // A prebuild sends UTIME_NOW and UTIME_OMIT alike as tv_sec 0 + 1,073,741,82x ns: 1073 ms.
    const mtime = mtimeMs === PREBUILD_UTIME_SPECIAL_MS ? Date.now() : mtimeMs;
    if (af) {
      af.setMtime(mtime); // the version its close publishes keeps it (publish)
      // Unchanged since its published version: that version's time now (a close may publish nothing).
      if (af.entityId) this.setVersionMtime(af.entityId, af.cleanVersion, mtime);
      else this.mtimes.set(`local:${path}`, mtime); // kept if its close publishes nothing (an empty placeholder)
    } else if (node!.kind === 'dir') this.setFolderMtime(node!.entityId, mtime);
    else if (!node!.entityId) this.mtimes.set(`local:${path}`, mtime);
    else {
      // A file waiting for recover that the path shows: its kept bytes take the time (the
      // published version is other bytes). One the path does not show (a collaborator's newer
      // version, a streamed entry): the version shown takes it, as `stat` then says (review).
      const shown = await this.keptOrFresh(path, node!);
      if (!(shown.view && (await this.kept?.setMtime(shown.node, mtime)))) this.setVersionMtime(shown.node.entityId, shown.node.versionNumber, mtime);
    }
  }

  /** chmod/chown: accepted (Synapse has no POSIX modes) so `cp -p`, rsync and tar work; EROFS on a read-only mount. */
  async chmod(path: string): Promise<void> {
    this.checkWritable(path);
    await this.table.resolve(path).catch((err: unknown) => { if (!this.active.has(path)) throw err; });
  }

  async readlink(path: string): Promise<string> {
    const node = await this.table.resolve(path);
    if (node.kind !== 'link') throw new FsError('EINVAL', `${path}: not a symbolic link`);
    let target = this.linkTargets.get(`${node.entityId}.${node.versionNumber ?? ''}`);
    if (!target) {
      target = this.linkTarget(path, node);
      this.linkTargets.set(`${node.entityId}.${node.versionNumber ?? ''}`, target);
      target.catch(() => this.linkTargets.delete(`${node.entityId}.${node.versionNumber ?? ''}`));
    }
    return target;
  }

  /**
   * Where a Link entity points: the relative path to its target when the target is inside the
   * mount, else `<mount root>/.synapse/<synID>` (documented; not resolvable in the mount).
   */
  private async linkTarget(path: string, node: FsNode): Promise<string> {
    const link = await this.api.getEntity(node.entityId);
    const targetId = link.linksTo?.targetId;
    if (!targetId) throw new FsError('EIO', `${node.entityId}: link without target`);
    const depth = path.split('/').filter(Boolean).length - 1;
    const up = depth === 0 ? './' : '../'.repeat(depth);
    const chain: Entity[] = [];
    let current: Entity | undefined = await this.api.getEntity(targetId).catch(() => undefined);
    while (current && chain.length < 100) {
      if (current.id === this.table.root.entityId) {
        return up + chain.reverse().map((e) => e.name).join('/');
      }
      chain.push(current);
      if (!current.parentId) break;
      current = await this.api.getEntity(current.parentId).catch(() => undefined);
    }
    return `${up}.synapse/${targetId}`;
  }

  async statfs(): Promise<StatFs> {
    // Synapse storage has no meaningful capacity: report a large, stable amount (1 PiB). In
    // 1 MiB blocks: fuse-native passes statfs fields as 32-bit integers, and 2^38 blocks of
    // 4 KiB arrived as 0 — `df` showed a full filesystem of size 0.
    const blockBytes = 2 ** 20;
    const blocks = 2 ** 50 / blockBytes;
    return {
      bsize: blockBytes, frsize: blockBytes, blocks, bfree: blocks, bavail: blocks,
      files: 1e9, ffree: 1e9, favail: 1e9, fsid: 0x5e1a, flag: 0, namemax: 255,
    };
  }

  /**
   * The names getxattr answers for `path`, and only those: none for a file not in Synapse yet
   * (rsync -X then tried to remove them from its temp file and exited 23, QA), md5 only when
   * Synapse has one.
   */
  async listxattr(path: string): Promise<string[]> {
    const names: string[] = [];
    for (const name of XATTR_NAMES) if ((await this.getxattr(path, name)) !== null) names.push(name);
    return names;
  }

  /**
   * Removing one of the mount's attributes is accepted and changes nothing, as chmod is: they
   * are Synapse's, derived from the entity, and `rsync -aX` removes every attribute its source
   * lacks — with an error it exited 23 on every run after the first (QA). Other names do not exist.
   */
  async removexattr(path: string, name: string): Promise<void> {
    this.checkWritable(path);
    if (name.startsWith('user.synapse.') && (await this.getxattr(path, name)) !== null) return;
    throw new FsError('ENODATA', `${path}: no attribute ${name}`);
  }

  /**
   * Setting an attribute to the value it has is done (cp -a and rsync -X copying a file within
   * the mount); so is setting one of the mount's on a file not in Synapse yet — a copy being made
   * (rsync -X sets its source's on its new temp file, and exited 23 on every file: QA): the copy
   * gets its own once published. Any other set is ENOTSUP — the mount's attributes are Synapse's,
   * and coreutils stays quiet about ENOTSUP where EPERM printed three warnings per file `mv` copied (QA).
   */
  async setxattr(path: string, name: string, value: Buffer): Promise<void> {
    this.checkWritable(path);
    if (name.startsWith('user.synapse.')) {
      const node = await this.xattrNode(path);
      if (!inSynapse(node)) return;
      const current = await this.xattrOf(node, name);
      if (current !== null && current.equals(value)) return;
    }
    throw new FsError('ENOTSUP', `${path}: ${name.startsWith('user.synapse.') ? `${name} is set by Synapse, not writable` : 'extended attributes are read-only'}`);
  }

  async getxattr(path: string, name: string): Promise<Buffer | null> {
    return this.xattrOf(await this.xattrNode(path), name);
  }

  /** The node whose attributes `path` shows: a file published at its last close (touch) may still be on its way into Synapse. */
  private async xattrNode(path: string): Promise<FsNode> {
    await this.releasing.get(path);
    return this.table.resolve(path);
  }

  private async xattrOf(node: FsNode, name: string): Promise<Buffer | null> {
    // Not in Synapse yet (being written, or local only): no attributes (ENODATA), not empty ones.
    if (!inSynapse(node)) return null;
    switch (name) {
      case 'user.synapse.id': return Buffer.from(node.entityId);
      case 'user.synapse.version':
        return node.kind === 'file' && node.versionNumber !== undefined ? Buffer.from(String(node.versionNumber)) : null;
      case 'user.synapse.md5': {
        if (node.kind !== 'file') return null;
        const { md5 } = await this.table.size(node);
        return md5 ? Buffer.from(md5) : null;
      }
      default: return null;
    }
  }

  /** Operations Synapse has no equivalent for (hard links, symlink creation, xattr writes). */
  unsupported(path: string, what: string): FsError {
    return new FsError(this.opts.readOnly ? 'EROFS' : 'EPERM', `${path}: ${what} is not supported on Synapse`);
  }
}
