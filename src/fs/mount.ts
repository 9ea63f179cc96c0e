/**
 * Composition root: builds the Synapse client, STS cache, object stores, caches and filesystem
 * from a MountConfig, checks the root entity and the mountpoint, and mounts. Used by the CLI and
 * by end-to-end tests; nothing else wires layers together.
 */
import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { HttpSynapseClient, unreachableNotice } from '../synapse/http-client.js';
import { displayUrl } from './mount-status.js';
import { SynapseError } from '../synapse/errors.js';
import { StsCredentialCache } from '../synapse/sts.js';
import { CONCRETE } from '../synapse/types.js';
import { AwsObjectStore } from '../s3/aws-object-store.js';
import { BlockCache } from './block-cache.js';
import { cacheLayout } from './cache-layout.js';
import { DiskCache, openSizeLog, type SizeLog } from './disk-cache.js';
import { openMtimeLog } from './mtime-log.js';
import { synapseScope } from './synapse-scope.js';
import { FileSources } from './file-sources.js';
import { SynapseFilesystem } from './filesystem.js';
import { FuseAdapter } from './fuse-adapter.js';
import { InodeTable, type FsNode } from './inode-table.js';
import { checkMetadataView, ViewSizes } from './view-sizes.js';
import { canonicalMountpoint, MountError, preflight } from './preflight.js';
import { Publisher } from './publisher.js';
import { Spool } from './spool.js';
import { sweepOrphanedUploads } from './orphans.js';
import { MemoryBudget } from '../s3/multipart-upload.js';
import { BufferPool } from './buffer-pool.js';
import { startHashWorker } from '../s3/offthread-hash.js';
import { registerSecret } from '../log.js';

export interface MountConfig {
  entityId: string;
  mountpoint: string;
  endpoint: string;
  authToken: string;
  s3Endpoint?: string;
  s3Region?: string;
  readOnly: boolean;
  useSts: boolean;
  cacheBytes: number;
  blockBytes: number;
  metadataTtlMs: number;
  readTimeoutMs: number;
  retryTimeoutSec: number;
  allowOther: boolean;
  /** --direct-io: file data bypasses the kernel page cache (fuse-adapter.ts says what that changes). */
  directIo?: boolean;
  /** --[no-]direct-writes: write-only opens bypass the page cache; undefined = by kernel version. */
  directWrites?: boolean;
  /** --[no-]direct-reads: read-only opens bypass the page cache where shared mmap of them works; undefined = on. */
  directReads?: boolean;
  /** --max-request-size: the largest FUSE read/write request asked of the kernel (fuse-terms.ts). */
  maxRequestBytes?: number;
  uid: number;
  gid: number;
  fileMode: number;
  dirMode: number;
  spoolDir: string;
  partBytes: number;
  /** Persistent block + size cache directory (--cache-dir); off when undefined. */
  cacheDir?: string;
  /** Bound on the bytes of blocks under cacheDir (--cache-dir-size; default 10 GiB). */
  cacheDirBytes?: number;
  maxWriteMemoryBytes: number;
  /** --metadata-view: a Synapse file view (synN) covering the mounted tree, for folder-wide sizes. */
  metadataView?: string;
}

/** --cache-dir-size default (issue 9). */
export const DEFAULT_CACHE_DIR_BYTES = 10 * 1024 * 1024 * 1024;

export interface MountedFilesystem {
  fs: SynapseFilesystem;
  client: HttpSynapseClient;
  adapter: FuseAdapter;
  userName: string;
  unmount(): Promise<void>;
}

/**
 * Upload part buffers kept once writing has stopped for PARTS_IDLE_MS (one upload's parts in
 * flight); while writes go on, every part buffer is kept for reuse (the budget bounds them).
 */
const PARTS_KEPT = 4;
const PARTS_IDLE_MS = 30_000;

function describeRootError(err: unknown, entityId: string, asking: 'profile' | 'entity' = 'entity'): Error {
  if (err instanceof SynapseError) {
    if (err.status === 401) return new MountError(`Synapse refused the auth token (401): ${err.reason}`);
    // The user's own profile is not about the entity (QA: "syn1001: Synapse GET /repo/v1/userProfile failed").
    if (asking === 'profile') return new MountError(err.message);
    if (err.status === 403) return new MountError(`${entityId}: you do not have permission to read it (403)`);
    if (err.status === 404) return new MountError(`${entityId}: no such entity (404)`);
    return new MountError(`${entityId}: ${err.message}`);
  }
  return err instanceof Error ? err : new Error(String(err));
}

export function normaliseEntityId(id: string): string {
  const m = /^(?:syn)?(\d+)$/i.exec(id.trim());
  if (!m) throw new MountError(`"${id}" is not a Synapse ID (expected e.g. syn123)`);
  return `syn${m[1]}`;
}

/** Validate the token and the root entity; returns the user name and the root node. */
export async function checkRoot(client: HttpSynapseClient, entityId: string): Promise<{ userName: string; userId: string; root: FsNode }> {
  let userName: string;
  let userId: string;
  try {
    const profile = await client.getUserProfile();
    userName = profile.userName;
    userId = String(profile.ownerId);
  } catch (err) {
    throw describeRootError(err, entityId, 'profile');
  }
  let entity;
  try {
    entity = await client.getEntity(entityId);
  } catch (err) {
    throw describeRootError(err, entityId);
  }
  if (entity.concreteType !== CONCRETE.folder && entity.concreteType !== CONCRETE.project) {
    const kind = entity.concreteType.split('.').pop();
    throw new MountError(`${entityId} is a ${kind}, not a folder or project`);
  }
  const root: FsNode = {
    entityId: entity.id, name: entity.name, kind: 'dir', parentId: entity.parentId,
    versionNumber: undefined, modifiedOn: Date.parse(entity.modifiedOn), createdOn: Date.parse(entity.createdOn),
    // A project always has an ACL of its own, which what the mount creates in it inherits. Not its
    // benefactorId: the project's own permission answers are not its files' (Synapse asks more of
    // a file's or folder's editor — certification — than of a project's).
    ...(entity.concreteType === CONCRETE.project ? { project: true } : {}),
  };
  return { userName, userId, root };
}

export type TransferConfig = Pick<MountConfig, 's3Endpoint' | 's3Region' | 'useSts' | 'readTimeoutMs' | 'partBytes'>;

/** The STS cache, per-location S3 clients and the publisher: shared by the mount and `recover`. */
/** Are two directories on one file system (one's blocks take the other's room)? */
async function sameFileSystem(a: string, b: string): Promise<boolean> {
  const [sa, sb] = await Promise.all([stat(a).catch(() => undefined), stat(b).catch(() => undefined)]);
  return sa !== undefined && sb !== undefined && sa.dev === sb.dev;
}

export function transferServices(client: HttpSynapseClient, userId: string, config: TransferConfig, log: Logger, spool?: Spool, memory?: MemoryBudget): {
  sources: FileSources; publisher: Publisher;
} {
  const sts = new StsCredentialCache({ fetch: (id, permission) => client.getStsCredentials(id, permission) });
  const sources = new FileSources(client, sts, (credentials, onExpired) => new AwsObjectStore({
    ...(config.s3Endpoint ? { endpoint: config.s3Endpoint } : {}),
    ...(config.s3Region ? { region: config.s3Region } : {}),
    // Every STS secret is known to the log scrubber before the SDK sees it (log.ts).
    credentials: async () => {
      const c = await credentials();
      registerSecret(c.secretAccessKey);
      registerSecret(c.sessionToken);
      return c;
    },
    onCredentialsExpired: onExpired,
    requestTimeoutMs: config.readTimeoutMs,
  }), { useSts: config.useSts, requestTimeoutMs: config.readTimeoutMs, logger: log.child({ component: 'files' }) });
  const publisher = new Publisher(client, (locationId, entityId) => sources.storeFor(locationId, entityId, 'read_write'), {
    userId, partSize: config.partBytes, useSts: config.useSts, logger: log.child({ component: 'publish' }),
    ...(spool ? { uploads: spool } : {}),
    ...(memory ? { memory } : {}),
  });
  return { sources, publisher };
}

/**
 * `onWaiting`: told once, while the mount is starting, that Synapse cannot be reached yet and is
 * being retried (else a wrong --endpoint or a network down would be silent for --retry-timeout).
 */
export async function mount(given: MountConfig, log: Logger, onWaiting?: (message: string) => void): Promise<MountedFilesystem> {
  // As the kernel will name it: the unmount watch compares this with /proc/self/mountinfo.
  const config = { ...given, mountpoint: canonicalMountpoint(given.mountpoint) };
  registerSecret(config.authToken);
  let starting = true;
  let told = false;
  const client = new HttpSynapseClient({
    endpoint: config.endpoint,
    authToken: config.authToken,
    retryTimeoutSec: config.retryTimeoutSec,
    logger: log.child({ component: 'synapse' }),
    onUnreachable: (err, secondsLeft) => {
      if (!starting || told || !onWaiting) return;
      told = true;
      onWaiting(unreachableNotice(displayUrl(config.endpoint), err, secondsLeft));
    },
  });
  const { userName, userId, root } = await checkRoot(client, config.entityId);
  starting = false;
  if (config.metadataView) await checkMetadataView(client, config.metadataView);
  await preflight(config.mountpoint);
  // A --cache-dir on the spool's file system gives way when the spool runs out of room (below).
  let makeRoom: ((bytes: number) => Promise<boolean>) | undefined;
  const spool = new Spool(config.spoolDir, { endpoint: config.endpoint, makeRoom: (bytes) => makeRoom?.(bytes) ?? Promise.resolve(false) });
  if (!config.readOnly) {
    try {
      await spool.init();
    } catch (err) {
      throw new MountError(`spool directory ${config.spoolDir} is not writable: ${(err as Error).message}`);
    }
  }

  // Not essential: without it, times set through the mount last until unmount (as before).
  const scope = synapseScope(config.endpoint);
  const mtimes = await openMtimeLog(config.spoolDir, { readOnly: config.readOnly, logger: log.child({ component: 'mtimes' }), scope })
    .catch((err: unknown) => {
      log.warn({ err }, config.readOnly
        ? 'file times set through earlier mounts are not shown (Synapse\'s are): the spool directory\'s meta/mtimes.jsonl cannot be read'
        : 'file times set through the mount will not be kept past unmount: the spool directory\'s meta/mtimes.jsonl cannot be read or written');
      return undefined;
    });

  let disk: DiskCache | undefined;
  let sizes: SizeLog | undefined;
  if (config.cacheDir) {
    try {
      disk = await DiskCache.open({
        dir: config.cacheDir, maxBytes: config.cacheDirBytes ?? DEFAULT_CACHE_DIR_BYTES, logger: log.child({ component: 'disk-cache' }), scope,
      });
      sizes = await openSizeLog(config.cacheDir, { logger: log.child({ component: 'disk-cache' }), scope });
      const cache = disk;
      if (await sameFileSystem(config.cacheDir, config.spoolDir)) makeRoom = (bytes) => cache.yieldSpace(bytes);
    } catch (err) {
      throw new MountError(`--cache-dir: ${(err as Error).message}`);
    }
  }

  // --max-write-memory: part buffers of streamed uploads and of publishes from the spool.
  const writeMemory = new MemoryBudget(config.maxWriteMemoryBytes);
  const { sources, publisher } = transferServices(client, userId, config, log, spool, writeMemory);
  // View queries run at the user's priority: a getattr waits on its folder's query (view-sizes.ts).
  const viewSizes = config.metadataView
    ? new ViewSizes({ api: client, viewId: config.metadataView, logger: log.child({ component: 'metadata-view' }) })
    : undefined;
  const table = new InodeTable(client, root, {
    ttlMs: config.metadataTtlMs,
    backgroundApi: client.background(),
    logger: log.child({ component: 'inodes' }),
    ...(sizes ? { sizeStore: sizes } : {}),
    ...(viewSizes ? { folderSizes: viewSizes.folderSizes } : {}),
    sizeWithHandle: (api, entityId) => sources.latestWithHandle(api, entityId),
  });
  // --cache-size bounds every block the process holds (cache-layout.ts), so the process stays
  // within it + Node's own ~100 MiB.
  const { readaheadBytes, probationBytes, mainBytes, scanAfterBytes } = cacheLayout(config.cacheBytes, config.blockBytes);
  // Fresh block buffers are faulted in on a worker thread, not in the event loop's socket reads:
  // +5 % on a fresh mount's cold read here (bench/README.md, "Reads (session 7)").
  // Blocks readers wait for get as much in flight as readahead does (a crowd of readers missing at
  // once takes turns; QA session 31: 250 of them held 0.6 GiB of buffers being filled).
  const cache = new BlockCache({
    maxBytes: mainBytes, probationBytes, blockSize: config.blockBytes, ...(disk ? { disk } : {}), prefaultBuffers: true,
    demandBytes: readaheadBytes,
  });
  const partSize = Math.max(5 * 1024 * 1024, config.partBytes);
  const fs = new SynapseFilesystem(client, table, sources, cache, {
    readOnly: config.readOnly,
    uid: config.uid,
    gid: config.gid,
    fileMode: config.fileMode,
    dirMode: config.dirMode,
    readahead: {
      maxWindowBlocks: Math.max(1, Math.floor(readaheadBytes / config.blockBytes)),
      inflightBudget: readaheadBytes,
      readTimeoutMs: config.readTimeoutMs,
      streamAfterBytes: scanAfterBytes,
    },
    ...(mtimes ? { mtimeLog: mtimes } : {}),
    logger: log.child({ component: 'fs' }),
  }, config.readOnly ? undefined : {
    publisher, spool, budget: writeMemory, partSize,
    // Part buffers are reused across parts and files; at most --max-write-memory of them exist at
    // once (the budget), and PARTS_KEPT of them are kept while idle. Shared memory: the hash
    // worker reads them in place (src/s3/offthread-hash.ts).
    partBuffers: new BufferPool(partSize, partSize, { shared: true, idle: { keep: PARTS_KEPT, ms: PARTS_IDLE_MS } }),
    // Files written here are often read next: keep their blocks in the disk cache. Presigned
    // reads key blocks by file handle (`fh<id>`); STS reads also pin the S3 ETag, which a write
    // does not know cheaply, so those are cached on their first read instead.
    ...(disk ? { onPublished: async (fileHandleId: string, file: string, size: number) => {
      await disk.populateFromFile(`fh${fileHandleId}`, config.blockBytes, file, size);
    } } : {}),
  });
  // Files whose publish failed earlier show their kept bytes until `recover` (filesystem.ts KeptView).
  const waiting = await fs.showJournaled();
  if (waiting > 0) log.warn({ files: waiting, spoolDir: config.spoolDir }, `${waiting} file(s) wait for \`synapse-mount recover\`; shown with their kept bytes meanwhile (writing one starts from them)`);
  const adapter = new FuseAdapter(fs, {
    mountpoint: config.mountpoint,
    fsname: `synapse:${config.entityId}`,
    allowOther: config.allowOther,
    owner: { uid: config.uid, gid: config.gid },
    directIo: config.directIo === true,
    readOnly: config.readOnly,
    ...(config.directWrites !== undefined ? { directWrites: config.directWrites } : {}),
    ...(config.directReads !== undefined ? { directReads: config.directReads } : {}),
    ...(config.maxRequestBytes !== undefined ? { maxRequestBytes: config.maxRequestBytes } : {}),
    readTimeoutMs: config.readTimeoutMs,
    metadataTimeoutMs: Math.max(60_000, (config.retryTimeoutSec + 30) * 1000),
  }, log.child({ component: 'fuse' }));
  try {
    await adapter.mount();
  } catch (err) {
    throw new MountError(`mounting ${config.mountpoint} failed: ${(err as Error).message} (see the log for libfuse's message)`);
  }
  log.info({ entityId: config.entityId, mountpoint: config.mountpoint, userName, cacheDir: config.cacheDir }, 'mounted');
  if (!config.readOnly) {
    // Uploads hash on a worker thread (src/s3/offthread-hash.ts): start it with the mount.
    startHashWorker();
    void sweepOrphanedUploads(spool, (loc, entityId) => sources.storeFor(loc, entityId, 'read_write'), log)
      .catch((err: unknown) => log.warn({ err }, 'checking for orphaned uploads failed'));
    void spool.sweepOrphanedFiles().then(({ removed, bytes, unowned }) => {
      if (removed > 0) log.warn({ removed, bytes, spoolDir: config.spoolDir }, 'removed spool files that no journal entry names, left by a mount that is gone (a file being written when it died: its writer was told — writes and close failed)');
      if (unowned > 0) log.info({ unowned, spoolDir: config.spoolDir }, 'spool files from an older version that no journal entry names: not removed; delete them if nothing needs them');
    }, (err: unknown) => log.warn({ err }, 'checking the spool for orphaned files failed'));
    void spool.listKept().then((kept) => {
      if (kept.length > 0) log.warn({ files: kept.map((k) => k.file) }, 'spool files whose publish failed and whose journal entry could not be written (`synapse-mount recover --list` names them): copy their bytes, then delete them');
    }, () => undefined);
  }
  return {
    fs, client, adapter, userName,
    unmount: async () => {
      await adapter.unmount();
      // Keep what was learned: queued block writes and the last second of sizes and mtimes.
      await Promise.all([disk?.close(), sizes?.flush(), mtimes?.flush()]);
    },
  };
}
