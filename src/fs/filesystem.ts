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
 * INVARIANT: every fd in `handles` maps to a handle opened by open()/create() and not yet released.
 */
import type { Logger } from 'pino';
import type { SynapseApi } from '../synapse/api.js';
import type { Entity } from '../synapse/types.js';
import { BlockCache } from './block-cache.js';
import { FsError } from './errors.js';
import type { FileSources } from './file-sources.js';
import type { FsNode, InodeTable } from './inode-table.js';
import { ReadHandle, type ReadaheadOptions } from './read-handle.js';

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
  logger?: Logger;
}

const O_ACCMODE = 0o3;
const O_TRUNC = 0o1000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

export const XATTR_NAMES = ['user.synapse.id', 'user.synapse.version', 'user.synapse.md5'] as const;

interface OpenHandle {
  node: FsNode;
  reader: ReadHandle;
}

export class SynapseFilesystem {
  private readonly handles = new Map<number, OpenHandle>();
  private nextFd = 10;
  private readonly linkTargets = new Map<string, Promise<string>>();

  constructor(
    private readonly api: SynapseApi,
    readonly table: InodeTable,
    private readonly sources: FileSources,
    readonly cache: BlockCache,
    private readonly opts: FilesystemOptions,
  ) {}

  get openHandleCount(): number {
    return this.handles.size;
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

  async getattr(path: string): Promise<Stat> {
    const node = await this.table.resolve(path);
    if (node.kind === 'dir') return this.stat('dir', 4096, node.modifiedOn);
    if (node.kind === 'link') return this.stat('link', 0, node.modifiedOn);
    const { size } = await this.table.size(node);
    return this.stat('file', size, node.modifiedOn);
  }

  async readdir(path: string): Promise<string[]> {
    const node = await this.table.resolve(path);
    if (node.kind !== 'dir') throw new FsError('ENOTDIR', `${path}: not a directory`);
    const children = await this.table.children(node.entityId);
    return children.map((c) => c.name);
  }

  async open(path: string, flags: number): Promise<number> {
    const node = await this.table.resolve(path);
    if (node.kind === 'dir') throw new FsError('EISDIR', `${path}: is a directory`);
    const writing = (flags & O_ACCMODE) !== 0 || (flags & O_TRUNC) !== 0;
    if (writing) throw new FsError('EROFS', `${path}: the mount is read-only`);
    const file = await this.sources.resolve(node, true);
    const fh = file.fileHandle;
    this.table.setSize(file.entityId, file.versionNumber, { size: fh.contentSize, md5: fh.contentMd5 });
    const source = await this.sources.source(file);
    const fd = this.nextFd++;
    this.handles.set(fd, { node, reader: new ReadHandle(source, this.cache, this.opts.readahead) });
    return fd;
  }

  private handle(fd: number): OpenHandle {
    const h = this.handles.get(fd);
    if (!h) throw new FsError('EBADF', `fd ${fd} is not open`);
    return h;
  }

  async read(fd: number, length: number, position: number): Promise<Buffer> {
    return this.handle(fd).reader.read(position, length);
  }

  async release(fd: number): Promise<void> {
    this.handles.delete(fd);
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
    // Synapse storage has no meaningful capacity: report a large, stable amount (1 PiB).
    const blocks = 2 ** 38;
    return {
      bsize: 4096, frsize: 4096, blocks, bfree: blocks, bavail: blocks,
      files: 1e9, ffree: 1e9, favail: 1e9, fsid: 0x5e1a, flag: 0, namemax: 255,
    };
  }

  async listxattr(path: string): Promise<string[]> {
    const node = await this.table.resolve(path);
    return node.kind === 'file' ? [...XATTR_NAMES] : ['user.synapse.id'];
  }

  async getxattr(path: string, name: string): Promise<Buffer | null> {
    const node = await this.table.resolve(path);
    switch (name) {
      case 'user.synapse.id': return Buffer.from(node.entityId);
      case 'user.synapse.version':
        return node.kind === 'file' ? Buffer.from(String(node.versionNumber ?? '')) : null;
      case 'user.synapse.md5': {
        if (node.kind !== 'file') return null;
        const { md5 } = await this.table.size(node);
        return md5 ? Buffer.from(md5) : null;
      }
      default: return null;
    }
  }

  /** Everything that would change Synapse: refused until the write path lands, or with --read-only. */
  readOnlyError(path: string): FsError {
    return new FsError('EROFS', `${path}: the mount is read-only`);
  }
}
