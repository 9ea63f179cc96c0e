/**
 * The filesystem layer wired as src/fs/mount.ts `mount()` and `transferServices()` do, over the
 * in-memory Synapse (src/synapse/memory-api.ts) and S3 (src/s3/memory-object-store.ts) — no
 * FUSE, no HTTP. Shared by the model test (fs-model.test.ts) and the tests of single behaviours
 * that need the same wiring (kept-files.test.ts).
 *
 * InodeTable, StsCredentialCache → FileSources with a store factory, Publisher, BlockCache,
 * Spool in a temp dir, MemoryBudget; mounted on an STS folder so writes take the STS fast path.
 * 1 KiB blocks, so files of a few KiB span several. The metadata TTL is 0 unless asked (every
 * lookup sees what other clients did); with a TTL the filesystem also remembers what the
 * kernel was told (`shown`), as a real mount does.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { MemorySynapseApi } from '../../src/synapse/memory-api.js';
import { FaultySynapseApi } from '../../src/synapse/faulty-api.js';
import { MemoryObjectStore } from '../../src/s3/memory-object-store.js';
import { StsCredentialCache } from '../../src/synapse/sts.js';
import { FileSources } from '../../src/fs/file-sources.js';
import { Publisher } from '../../src/fs/publisher.js';
import { BlockCache } from '../../src/fs/block-cache.js';
import { InodeTable, type FsNode } from '../../src/fs/inode-table.js';
import { Spool } from '../../src/fs/spool.js';
import { SynapseFilesystem } from '../../src/fs/filesystem.js';
import type { MtimeStore } from '../../src/fs/mtime-log.js';
import { MemoryBudget } from '../../src/s3/multipart-upload.js';

/** Small blocks so a few-KiB file spans several (reads across block boundaries). */
export const BLOCK = 1024;
const MiB = 1024 * 1024;

export interface Real {
  fs: SynapseFilesystem;
  api: MemorySynapseApi;
  /** Another Synapse client of the same user (the user's Python client elsewhere). */
  remote: MemorySynapseApi;
  store: MemoryObjectStore;
  /** The mounted folder, as mount() makes its node. */
  root: FsNode;
  rootId: string;
  /** The mount's own Synapse client, for injected failures (the fake's others are untouched). */
  faults: FaultySynapseApi;
  spool: Spool;
  spoolDir: string;
  /** fds held open for writing across commands, in the order of Model.handles. */
  fds: number[];
  /** fds held open for reading across commands, in the order of Model.readers. */
  rfds: number[];
  /**
   * RELEASEs still running. The kernel sends RELEASE after close() has returned, so the next
   * command can run while the last close publishes (`release later` commands model that).
   */
  releases: Array<Promise<void>>;
  /** The last command left a release running: compare after the next one, not now. */
  skipNextCheck: boolean;
}

/** What a test may set of the wiring; `cache` replaces the small-block cache (pieces off) made otherwise. */
export interface WiringOptions { ttlMs?: number; mtimeStore?: MtimeStore; heldTempMs?: number; cache?: BlockCache }

export async function makeReal(opts: WiringOptions = {}): Promise<Real> {
  const store = new MemoryObjectStore();
  const api = new MemorySynapseApi({ store });
  const project = await api.createProject('Model Project');
  const { folder } = await api.createStsFolder(project.id, 'mounted');
  // The mount's own client: the fake itself behind a fault wrapper (no faults unless scripted).
  const faults = new FaultySynapseApi(api);
  const spoolDir = await mkdtemp(path.join(tmpdir(), 'fs-model-'));
  const spool = new Spool(spoolDir);
  await spool.init();
  const root: FsNode = {
    entityId: folder.id, name: folder.name, kind: 'dir', parentId: folder.parentId, versionNumber: undefined,
    modifiedOn: Date.parse(folder.modifiedOn), createdOn: Date.parse(folder.createdOn),
  };
  const fs = mountOver({ api, faults, store, spool, root }, opts);
  return { fs, api, faults, spool, remote: api.otherClient(), store, root, rootId: folder.id, spoolDir, fds: [], rfds: [], releases: [], skipNextCheck: false };
}

/**
 * A filesystem over `r`'s Synapse, object store and spool, as mount() wires one — called again,
 * a remount: nothing of the last one's memory (listings, sizes, mtimes) is carried over.
 */
export function mountOver(r: Pick<Real, 'api' | 'faults' | 'store' | 'spool' | 'root'>, opts: WiringOptions = {}): SynapseFilesystem {
  const { faults, spool } = r;
  const { sources, publisher } = transferOver(r);
  // As mount(); with TTL 0 (the default here) every lookup sees what other clients did.
  // maxSizes: far below the production default (1e6); the model touches a few hundred files.
  const table = new InodeTable(faults, r.root, {
    ttlMs: opts.ttlMs ?? 0, maxSizes: 10_000, sizeWithHandle: (api, entityId) => sources.latestWithHandle(api, entityId),
  });
  const cache = opts.cache ?? new BlockCache({ maxBytes: 256 * 1024, blockSize: BLOCK });
  return new SynapseFilesystem(faults, table, sources, cache, {
    readOnly: false, uid: 1000, gid: 1000, fileMode: 0o644, dirMode: 0o755,
    readahead: { maxWindowBlocks: 4, inflightBudget: 64 * 1024, readTimeoutMs: 5_000 },
    ...(opts.mtimeStore ? { mtimeLog: opts.mtimeStore } : {}),
    ...(opts.heldTempMs !== undefined ? { heldTempMs: opts.heldTempMs } : {}),
  }, { publisher, spool, budget: new MemoryBudget(64 * MiB), partSize: 5 * MiB });
}

/** As transferServices(): STS cache → FileSources (one store per location) → Publisher. */
export function transferOver(r: Pick<Real, 'api' | 'faults' | 'store' | 'spool'>): { sources: FileSources; publisher: Publisher } {
  const { api, faults, store, spool } = r;
  const sts = new StsCredentialCache({ fetch: (id, permission) => faults.getStsCredentials(id, permission) });
  const sources = new FileSources(faults, sts, () => store, { useSts: true, requestTimeoutMs: 5_000 });
  const publisher = new Publisher(faults, (locationId, entityId) => sources.storeFor(locationId, entityId, 'read_write'), {
    userId: api.user.id, partSize: 5 * MiB, useSts: true, uploads: spool,
  });
  return { sources, publisher };
}

/** Run `fn` on a fresh wiring (a metadata TTL of a minute unless asked), then remove its spool. */
export async function withReal(fn: (r: Real) => Promise<void>, ttlMs = 60_000, mtimeStore?: MtimeStore): Promise<void> {
  const r = await makeReal({ ttlMs, ...(mtimeStore ? { mtimeStore } : {}) });
  try {
    await fn(r);
  } finally {
    await rm(r.spoolDir, { recursive: true, force: true });
  }
}

/** create, write `text` (nothing when empty), close: as `printf text > p` on a new path. */
export async function writeNew(r: Real, p: string, text: string): Promise<void> {
  const fd = await r.fs.create(p, 0o644);
  if (text) await r.fs.write(fd, Buffer.from(text), 0);
  await r.fs.flush(fd);
  await r.fs.release(fd);
}

/** The first 4 KiB at `p`, through a read-only open. */
export async function readText(r: Real, p: string): Promise<string> {
  const fd = await r.fs.open(p, 0);
  try {
    const buf = Buffer.alloc(4096);
    return buf.subarray(0, await r.fs.read(fd, buf, buf.length, 0)).toString();
  } finally {
    await r.fs.release(fd);
  }
}
