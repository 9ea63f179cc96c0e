/**
 * Turns a Synapse FileEntity into a RangeSource, choosing the cheapest path its storage allows
 * (DESIGN §3 open/read; the Python client's `use_boto_sts_transfers`, with no flag):
 *  - STS-enabled storage location → S3 with the location's read_only STS credentials (one
 *    AwsObjectStore per location; credentials cached and refreshed by the StsCache);
 *  - anything else → presigned URLs from POST /fileHandle/batch, refreshed by age or on 403,
 *    batched across files (presigned-urls.ts).
 * Whether a location is STS-enabled is learned once per location by asking for credentials
 * (400 "not in an STS-enabled storage location" → presigned) — a GET /storageLocation would
 * need the caller to be its creator.
 *
 * File handles are immutable, so the (entity, version) → file handle answer is cached for good;
 * open() therefore costs one bundle2 call only when the listing's version is new to us — and
 * none after a stat, whose size came from the same bundle2 (latestWithHandle).
 */
import { LRUCache } from 'lru-cache';
import { entryBound } from './lru-bound.js';
import type { Logger } from 'pino';
import type { SynapseApi } from '../synapse/api.js';
import { SynapseError } from '../synapse/errors.js';
import { SYNAPSE_STORAGE_LOCATION_ID, type EntityBundle, type S3FileHandle, type StsCredentials, type StsPermission, type VersionInfo } from '../synapse/types.js';
import type { ObjectStore, RangeSource } from '../s3/object-store.js';
import { directGetsWanted, DirectRangeGetter } from '../s3/direct-range-get.js';
import { PresignedRangeSource } from '../s3/presigned-store.js';
import { S3RangeSource } from '../s3/s3-range-source.js';
import { FsError } from './errors.js';
import { PresignedUrls } from './presigned-urls.js';

import type { FsNode } from './inode-table.js';

/**
 * Files up to this size (Synapse's contentSize; and at most one block) are fetched whole by the
 * open's version check, straight into the block cache: one S3 request per small-file open and
 * read instead of two (s3-range-source.ts).
 */
export const WHOLE_AT_OPEN_BYTES = 1024 * 1024;

/** What an open asks of the block cache (block-cache.ts) to fetch a small file whole. */
export interface OpenCache {
  readonly blockSize: number;
  /** Might block 0 of the object named `cacheKey` (undefined: none known) be served without S3? */
  mayHoldStart(cacheKey: string | undefined): boolean;
  /** Keep `buf` as block `index` of `source`, as if fetched. */
  offer(source: RangeSource, index: number, buf: Buffer): void;
}

/** What a read needs of a file's bundle2: the entity (its version) and its file handle. */
const BUNDLE_WITH_HANDLE = { includeEntity: true, includeFileHandles: true } as const;

/** Synapse's download URLs live 30 s; refresh at 20 s so a slow GET never starts on a dead URL. */
const PRESIGNED_URL_MAX_AGE_MS = 20_000;

export interface StsProvider {
  get(scopeKey: string, entityId: string, permission: StsPermission): Promise<StsCredentials>;
  invalidate(scopeKey: string, permission: StsPermission): void;
}

/** Builds an ObjectStore for one storage location from a credentials provider. */
export type StoreFactory = (
  credentials: () => Promise<{ accessKeyId: string; secretAccessKey: string; sessionToken: string; expiration: Date }>,
  onExpired: () => void,
) => ObjectStore;

export interface ResolvedFile {
  entityId: string;
  versionNumber: number;
  fileHandle: S3FileHandle;
}

export interface FileSourcesOptions {
  useSts: boolean;
  requestTimeoutMs: number;
  logger?: Logger;
}

class EmptySource implements RangeSource {
  readonly size = 0;
  constructor(readonly cacheKey: string) {}
  read(): Promise<Buffer> {
    return Promise.resolve(Buffer.alloc(0));
  }
}

export class FileSources {
  private readonly handles = new LRUCache<string, ResolvedFile>(entryBound(100_000));
  /** storageLocationId → STS-enabled? (learned on first use) */
  private readonly stsEnabled = new Map<number, Promise<boolean>>();
  private readonly stores = new Map<string, ObjectStore>();
  /** File handle → the cache key of its last open here, to tell whether its bytes are likely cached. */
  private readonly lastOpened = new LRUCache<string, string>(entryBound(100_000));

  private readonly urls: PresignedUrls;
  /** One lean GET pool for every presigned read (undefined with SYNAPSE_MOUNT_S3_GET=sdk). */
  private readonly presignedDirect = directGetsWanted() ? new DirectRangeGetter({}) : undefined;

  constructor(
    private readonly api: SynapseApi,
    private readonly sts: StsProvider,
    private readonly makeStore: StoreFactory,
    private readonly opts: FileSourcesOptions,
  ) {
    this.urls = new PresignedUrls(api, PRESIGNED_URL_MAX_AGE_MS);
  }

  /** The file handle behind a file node; uses the cached answer when the version is known. */
  /** A version this mount published, with the handle it registered: resolve() needs no bundle2 for it. */
  remember(entityId: string, versionNumber: number, fileHandle: S3FileHandle): void {
    this.handles.set(`${entityId}.${versionNumber}`, { entityId, versionNumber, fileHandle });
  }

  async resolve(node: FsNode, trustCachedVersion: boolean): Promise<ResolvedFile> {
    if (trustCachedVersion && node.versionNumber !== undefined) {
      const cached = this.handles.get(`${node.entityId}.${node.versionNumber}`);
      if (cached) return cached;
    }
    const pinned = node.pinnedVersion === true && node.versionNumber !== undefined;
    const bundle = await this.api.getBundle(node.entityId, BUNDLE_WITH_HANDLE, ...(pinned ? [node.versionNumber] : []));
    if (!bundle.entity?.dataFileHandleId) throw new FsError('EIO', `${node.entityId}: bundle has no file entity`);
    const resolved = this.keep(bundle);
    if (!resolved) throw new FsError('EACCES', `${node.entityId}: no DOWNLOAD permission (Synapse returned no file handle)`);
    if (!pinned) node.versionNumber = resolved.versionNumber;
    return resolved;
  }

  /**
   * A file's latest version and size from one bundle2, its file handle kept for the open that
   * usually follows a stat (inode-table.ts sizeWithHandle): `cat`, `md5sum`, `cp` of a file not
   * opened before cost one request where `/version` and then bundle2 cost two (QA audit F3).
   * Undefined when Synapse gives no handle (no DOWNLOAD permission, an unmet access requirement).
   */
  async latestWithHandle(api: SynapseApi, entityId: string): Promise<VersionInfo | undefined> {
    const bundle = await api.getBundle(entityId, BUNDLE_WITH_HANDLE);
    const file = this.keep(bundle);
    if (!file || !bundle.entity) return undefined;
    const fh = file.fileHandle;
    return {
      id: file.entityId, versionNumber: file.versionNumber, modifiedOn: bundle.entity.modifiedOn,
      contentSize: String(fh.contentSize), ...(fh.contentMd5 ? { contentMd5: fh.contentMd5 } : {}),
    };
  }

  /** The bundle's file handle, cached under (entity, version) for good (handles never change). */
  private keep(bundle: EntityBundle): ResolvedFile | undefined {
    const entity = bundle.entity;
    if (!entity?.dataFileHandleId) return undefined;
    const fileHandle = bundle.fileHandles?.find((fh) => String(fh.id) === String(entity.dataFileHandleId));
    if (!fileHandle) return undefined;
    const resolved: ResolvedFile = { entityId: entity.id, versionNumber: entity.versionNumber ?? 1, fileHandle };
    this.handles.set(`${entity.id}.${resolved.versionNumber}`, resolved);
    return resolved;
  }

  /**
   * A RangeSource for the resolved file, through STS when its location allows. With `cache`, a
   * small STS file whose start the cache may not hold is fetched whole by the open and given to
   * the cache as its block 0.
   */
  async source(file: ResolvedFile, cache?: OpenCache): Promise<RangeSource> {
    const fh = file.fileHandle;
    const key = `fh${fh.id}`;
    if (fh.contentSize === 0) return new EmptySource(key);
    const loc = fh.storageLocationId;
    const small = cache !== undefined && fh.contentSize <= Math.min(WHOLE_AT_OPEN_BYTES, cache.blockSize);
    const whole = small && !cache.mayHoldStart(this.lastOpened.get(key)) ? fh.contentSize : 0;
    let source: S3RangeSource | PresignedRangeSource;
    if (this.opts.useSts && loc !== undefined && (await this.isStsEnabled(loc, file.entityId))) {
      const store = this.storeFor(loc, file.entityId, 'read_only');
      source = await S3RangeSource.open(key, store, { bucket: fh.bucketName, key: fh.key }, whole);
    } else {
      const url = this.urls.provider({ entityId: file.entityId, fileHandleId: String(fh.id) });
      const opts = { requestTimeoutMs: this.opts.requestTimeoutMs, ...(this.presignedDirect ? { direct: this.presignedDirect } : {}) };
      // Synapse's own bucket is written by Synapse alone, once per file handle: its bytes cannot
      // change under a handle. Any other bucket's objects can be replaced in place (a lab's
      // external bucket, an STS folder read without STS): their version is pinned at open.
      if (loc === SYNAPSE_STORAGE_LOCATION_ID) return new PresignedRangeSource(key, fh.contentSize, url, opts);
      source = await PresignedRangeSource.openPinned(key, fh.contentSize, url, opts, whole);
    }
    this.lastOpened.set(key, source.cacheKey);
    const body = source.takeWhole();
    if (body && cache) cache.offer(source, 0, body);
    return source;
  }

  private isStsEnabled(locationId: number, entityId: string): Promise<boolean> {
    // Synapse's own storage (location 1) never hands out STS credentials: no request to hear it
    // say 400 (QA audit: one per mount for every user of Synapse storage).
    if (locationId === SYNAPSE_STORAGE_LOCATION_ID) return Promise.resolve(false);
    let known = this.stsEnabled.get(locationId);
    if (!known) {
      known = this.sts.get(`loc${locationId}`, entityId, 'read_only').then(
        () => true,
        (err: unknown) => {
          if (err instanceof SynapseError && (err.status === 400 || err.status === 403)) {
            if (err.status === 403) {
              this.opts.logger?.warn({ storageLocationId: locationId, reason: err.reason },
                'STS credentials refused (a token needs view, modify and download scopes); using presigned URLs');
            }
            return false;
          }
          this.stsEnabled.delete(locationId); // transient: ask again next time
          throw err;
        },
      );
      this.stsEnabled.set(locationId, known);
    }
    return known;
  }

  /** One ObjectStore per (storage location, permission), fed by the STS cache. */
  storeFor(locationId: number, entityId: string, permission: StsPermission): ObjectStore {
    const scope = `loc${locationId}`;
    const id = `${scope}:${permission}`;
    let store = this.stores.get(id);
    if (!store) {
      store = this.makeStore(async () => {
        const c = await this.sts.get(scope, entityId, permission);
        return { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey, sessionToken: c.sessionToken, expiration: new Date(c.expiration) };
      }, () => this.sts.invalidate(scope, permission));
      this.stores.set(id, store);
    }
    return store;
  }
}
