/**
 * Publishing written bytes to Synapse (DESIGN §5): upload the spool file, register a file
 * handle, then create the FileEntity or make the new handle the next version of an existing one.
 *
 * Which upload path (decided per parent folder from its upload destination, cached):
 *  - STS fast path — an STS-enabled external S3 location created by this user: S3 multipart
 *    upload with the folder's read_write STS credentials at `<baseKey>/<uuid>/<name>` (the
 *    Python client's key layout), then POST /externalFileHandle/s3. Synapse lets only the
 *    location's creator register external handles, and only the creator can GET the location,
 *    so "GET /storageLocation/{id} answers with createdBy = me" is the test.
 *  - Everyone else, and every other storage: Synapse's multipart API (start with the whole
 *    file's MD5 — which is why bytes are spooled first — presigned part URLs, add part, complete).
 * Parts: 16 MiB by default, grown so 10,000 parts cover the file; 4 in flight per file.
 *
 * Nothing partial is ever published: the entity is touched only after a complete file handle
 * exists, and an S3 multipart upload that fails is aborted.
 */
import { createHash, randomUUID } from 'node:crypto';
import { open } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { SynapseApi } from '../synapse/api.js';
import { SynapseError } from '../synapse/errors.js';
import { CONCRETE, SYNAPSE_STORAGE_LOCATION_ID, type Entity, type MultipartUploadRequest, type PartPresignedUrl, type S3FileHandle, type UploadDestination } from '../synapse/types.js';
import { LRUCache } from 'lru-cache';
import type { ObjectStore, S3Location } from '../s3/object-store.js';
import { endUnreferencedUpload, SINGLE_PUT_PREFIX, type MemoryBudget } from '../s3/multipart-upload.js';
import { backoff, s3ErrorCode, tryCost } from '../s3/retry.js';
import { s3Stats } from '../s3/s3-stats.js';
import { FsError } from './errors.js';
import { PartUrls } from './part-urls.js';
import type { Spool } from './spool.js';

const MiB = 1024 * 1024;
const MIN_PART = 5 * MiB;
const MAX_PARTS = 10_000;
const PARTS_IN_FLIGHT = 4;
/**
 * Tries for one part PUT to its presigned URL (403 gets a fresh URL; 5xx and resets back off). A
 * SlowDown costs half a try (retry.ts tryCost).
 */
const PUT_ATTEMPTS = 6;
/** The longest wait between two tries of a part, in first waits (PublisherOptions.partRetryBaseMs, doubling): 5 s. */
const PUT_BACKOFF_CAP = 50;
/** One part PUT to a presigned URL (parts are at most a few hundred MiB here). */
const PART_PUT_TIMEOUT_MS = 10 * 60_000;
/** Upload destinations rarely change; re-ask after this long. */
const DESTINATION_TTL_MS = 60_000;

export const EMPTY_MD5 = 'd41d8cd98f00b204e9800998ecf8427e';

export interface PublishSource {
  file: string;
  size: number;
  md5: string;
  /** Called with the byte count of each part (or whole object) once S3 has it (for `status`). */
  onProgress?: (bytes: number) => void;
  /**
   * Called once an STS upload has its file handle, before its upload record goes: the caller's
   * write-ahead entry names the object from then on, so a crash before the entity exists leaves
   * it to recover (which registers nothing twice) rather than a billed object nothing names.
   */
  onRegistered?: (fileHandleId: string, object: { bucket: string; key: string; storageLocationId: number }) => Promise<void>;
}

export interface PublisherOptions {
  userId: string;
  partSize: number;
  useSts: boolean;
  logger?: Logger;
  /**
   * Where open S3 multipart uploads are recorded (the spool), so that one a crash left open is
   * aborted by the next mount's or recover's orphan sweep (QA: kill -9 mid-publish left them).
   */
  uploads?: Pick<Spool, 'recordUpload' | 'removeUpload'>;
  /** --max-write-memory, shared with streamed uploads: the part buffers of publishes count in it (sendParts). */
  memory?: MemoryBudget;
  /** The first wait between two tries of a part PUT (ms; doubles each try, at most 50 ×): 100 unless a test shortens it. */
  partRetryBaseMs?: number;
}

export type StoreForLocation = (locationId: number, entityId: string) => ObjectStore;

export class EmptyFileNotSupported extends FsError {
  constructor(where: string) {
    super('EIO', `${where}: Synapse's multipart API refuses 0-byte files and this folder's storage takes no external handles`);
  }
}

const CONTENT_TYPES: Record<string, string> = {
  txt: 'text/plain', md: 'text/markdown', csv: 'text/csv', tsv: 'text/tab-separated-values', json: 'application/json',
  html: 'text/html', xml: 'application/xml', yaml: 'application/x-yaml', yml: 'application/x-yaml',
  png: 'image/png', jpg: 'image/jpeg', jpeg: 'image/jpeg', gif: 'image/gif', svg: 'image/svg+xml', tif: 'image/tiff', tiff: 'image/tiff',
  pdf: 'application/pdf', zip: 'application/zip', gz: 'application/gzip', tar: 'application/x-tar', bz2: 'application/x-bzip2',
  py: 'text/x-python', r: 'text/plain', sh: 'application/x-sh', parquet: 'application/octet-stream',
};

export function guessContentType(name: string): string {
  const ext = name.includes('.') ? name.split('.').pop()!.toLowerCase() : '';
  return CONTENT_TYPES[ext] ?? 'application/octet-stream';
}

export function partSizeFor(size: number, preferred: number): number {
  return Math.max(MIN_PART, preferred, Math.ceil(size / MAX_PARTS));
}

/** `length` bytes of `file` at `start` (a part of a spool file); EIO if the file is shorter. */
export async function readPart(file: string, start: number, length: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(length);
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, start + got);
      if (bytesRead === 0) throw new FsError('EIO', `spool file ${file} is shorter than expected`);
      got += bytesRead;
    }
    return buf;
  } finally {
    await fh.close();
  }
}

type Target =
  | { kind: 'sts'; locationId: number; bucket: string; baseKey: string }
  | { kind: 'synapse'; locationId: number };

export class Publisher {
  private readonly destinations = new Map<string, { at: number; target: Promise<Target> }>();
  /**
   * Entities as this mount's own last create or update of them left them: the next commit PUTs
   * on that copy instead of a GET first (QA audit: one request per append, `sed -i`, git ref
   * update). Safe when stale: Synapse refuses a PUT with an old etag (412), and the commit then
   * asks for the entity as before.
   */
  private readonly recentEntities = new LRUCache<string, Entity>({ max: 1_000, ttl: 60_000 });
  private readonly creatorOf = new Map<number, Promise<boolean>>();
  /**
   * Synapse hands every start of the same request (same user, name, bytes, size, location) one
   * upload: identical files closed at once (`cp` of copies into two folders) uploaded into,
   * and completed, the same upload — the second completion failed (QA: EINVAL at close). Such
   * uploads run one after another here; the later one finds the upload completed and takes its
   * file handle.
   */
  private readonly uploadsByRequest = new Map<string, Promise<unknown>>();

  constructor(
    private readonly api: SynapseApi,
    private readonly storeFor: StoreForLocation,
    private readonly opts: PublisherOptions,
  ) {}

  /**
   * A folder this mount just made has no project setting of its own, so its files go where its
   * parent's go: no `uploadDestination` request for it (QA audit: one per folder of a `cp -r`).
   */
  newFolder(folderId: string, parentId: string): void {
    const parent = this.destinations.get(parentId);
    if (parent && Date.now() - parent.at < DESTINATION_TTL_MS) this.destinations.set(folderId, parent);
  }

  private target(parentId: string): Promise<Target> {
    const cached = this.destinations.get(parentId);
    if (cached && Date.now() - cached.at < DESTINATION_TTL_MS) return cached.target;
    const target = this.api.getUploadDestination(parentId).then((d) => this.chooseTarget(d));
    target.catch(() => this.destinations.delete(parentId));
    this.destinations.set(parentId, { at: Date.now(), target });
    return target;
  }

  private async chooseTarget(d: UploadDestination): Promise<Target> {
    const external = d.concreteType === CONCRETE.externalS3UploadDestination;
    if (this.opts.useSts && external && d.stsEnabled && d.bucket && (await this.isCreator(d.storageLocationId))) {
      return { kind: 'sts', locationId: d.storageLocationId, bucket: d.bucket, baseKey: d.baseKey ?? '' };
    }
    return { kind: 'synapse', locationId: d.storageLocationId };
  }

  private isCreator(locationId: number): Promise<boolean> {
    let known = this.creatorOf.get(locationId);
    if (!known) {
      known = this.api.getStorageLocation(locationId).then(
        (s) => String(s.createdBy) === String(this.opts.userId),
        (err: unknown) => {
          if (err instanceof SynapseError && (err.status === 403 || err.status === 404)) return false;
          this.creatorOf.delete(locationId);
          throw err;
        },
      );
      this.creatorOf.set(locationId, known);
    }
    return known;
  }

  /**
   * Where a new file of `parentId` can be streamed while it is written: the STS fast path only
   * (Synapse's multipart API needs the whole file's MD5 before the first part).
   */
  async streamTarget(parentId: string, name: string): Promise<{ store: ObjectStore; locationId: number; bucket: string; key: string } | undefined> {
    const target = await this.target(parentId);
    if (target.kind !== 'sts') return undefined;
    const key = [target.baseKey.replace(/\/+$/, ''), randomUUID(), name].filter((s) => s.length > 0).join('/');
    return { store: this.storeFor(target.locationId, parentId), locationId: target.locationId, bucket: target.bucket, key };
  }

  /** The STS storage location `parentId`'s files go to; undefined for any other storage. */
  async stsLocationOf(parentId: string): Promise<number | undefined> {
    const target = await this.target(parentId);
    return target.kind === 'sts' ? target.locationId : undefined;
  }

  /** Register an object already uploaded to an STS location (see streamTarget). */
  async registerExternal(bucket: string, key: string, locationId: number, size: number, md5: string, name: string): Promise<string> {
    const fh = await this.api.createExternalS3FileHandle({
      concreteType: CONCRETE.s3FileHandle, bucketName: bucket, key, storageLocationId: locationId,
      contentMd5: md5, contentSize: size, fileName: name, contentType: guessContentType(name),
    });
    this.registered.set(String(fh.id), fh);
    return String(fh.id);
  }

  /**
   * File handles this publisher registered lately: a file read back right after it was written
   * needs no bundle2 to learn its handle (QA: `diff -r` after `cp -r` of 1,500 files paced
   * 1,512 requests). Synapse's multipart API answers only the handle's id: those in Synapse's own
   * storage are here as far as a read needs them (synapseStorageHandle); others are not.
   */
  private readonly registered = new LRUCache<string, S3FileHandle>({ max: 1_000 });

  registeredHandle(fileHandleId: string): S3FileHandle | undefined {
    return this.registered.get(fileHandleId);
  }

  /** Whether a 0-byte file written into `parentId` can be published (only straight to S3: upload). */
  async holdsEmptyFiles(parentId: string): Promise<boolean> {
    return (await this.target(parentId)).kind === 'sts';
  }

  /** Upload the bytes and register a file handle; returns its id. */
  async upload(src: PublishSource, parentId: string, name: string): Promise<string> {
    const target = await this.target(parentId);
    if (target.kind === 'sts') return this.uploadSts(src, parentId, name, target);
    if (src.size === 0) throw new EmptyFileNotSupported(name);
    return this.uploadMultipartApi(src, name, target.locationId);
  }

  private async uploadSts(src: PublishSource, parentId: string, name: string, t: Extract<Target, { kind: 'sts' }>): Promise<string> {
    const store = this.storeFor(t.locationId, parentId);
    const key = [t.baseKey.replace(/\/+$/, ''), randomUUID(), name].filter((s) => s.length > 0).join('/');
    const loc = { bucket: t.bucket, key };
    const contentType = guessContentType(name);
    const partSize = partSizeFor(src.size, this.opts.partSize);
    const uploads = this.opts.uploads;
    if (src.size <= partSize) {
      // One part that must go: counted, even over the limit (sendParts).
      this.opts.memory?.takeSending(src.size);
      try {
        return await this.putWhole(src, parentId, name, t, store, loc, contentType);
      } finally {
        this.opts.memory?.release(src.size, true);
      }
    } else {
      const uploadId = await store.createMultipartUpload(loc, { contentType });
      const record = {
        uploadId, bucket: t.bucket, key, storageLocationId: t.locationId, parentId, startedAt: new Date().toISOString(), pid: process.pid,
      };
      await uploads?.recordUpload(record)
        .catch((err: unknown) => this.opts.logger?.warn({ err }, 'could not record an upload; a crash would leave it open'));
      let completing = false;
      try {
        const count = Math.ceil(src.size / partSize);
        const parts: Array<{ partNumber: number; etag: string }> = [];
        await this.sendParts(Array.from({ length: count }, (_, i) => i + 1), partSize, src.size, async (n) => {
          const start = (n - 1) * partSize;
          const body = await readPart(src.file, start, Math.min(partSize, src.size - start));
          const md5 = createHash('md5').update(body).digest('base64');
          parts.push({ partNumber: n, etag: await store.uploadPart(loc, uploadId, n, body, md5) });
          src.onProgress?.(body.length);
        });
        // Until its file handle exists, a crash would leave a complete object no one names.
        await uploads?.recordUpload({ ...record, completing: true })
          .catch((err: unknown) => this.opts.logger?.warn({ err }, 'could not mark an upload as completing; a crash before it is registered would leave its object in S3'));
        completing = true;
        await store.completeMultipartUpload(loc, uploadId, parts);
      } catch (err) {
        // What cannot be ended now keeps its record, for the next mount's sweep.
        if (await endUnreferencedUpload(store, loc, uploadId, completing)) await uploads?.removeUpload(uploadId).catch(() => undefined);
        throw err;
      }
      return this.registerRecorded(store, loc, uploadId, src, name, t.locationId);
    }
  }

  /** A file of at most one part: one PutObject (recorded as a multipart upload is), then its file handle. */
  private async putWhole(src: PublishSource, parentId: string, name: string, t: Extract<Target, { kind: 'sts' }>,
    store: ObjectStore, loc: S3Location, contentType: string): Promise<string> {
    const body = src.size === 0 ? Buffer.alloc(0) : await readPart(src.file, 0, src.size);
    // Recorded as a multipart upload is: a crash before the file handle would leave it unnamed.
    const record = {
      uploadId: `${SINGLE_PUT_PREFIX}${randomUUID()}`, bucket: t.bucket, key: loc.key, storageLocationId: t.locationId, parentId,
      startedAt: new Date().toISOString(), pid: process.pid,
    };
    await this.opts.uploads?.recordUpload(record).catch(() => undefined);
    try {
      await store.putObject(loc, body, { contentMd5Base64: Buffer.from(src.md5, 'hex').toString('base64'), contentType });
    } catch (err) {
      // S3 may have stored it and lost the answer; the publish fails and a retry uploads anew.
      await this.dropObject(store, loc, record.uploadId);
      throw err;
    }
    src.onProgress?.(body.length);
    return this.registerRecorded(store, loc, record.uploadId, src, name, t.locationId);
  }

  /**
   * Send parts `numbers` (`send`), up to PARTS_IN_FLIGHT at once, each part's buffer counted in
   * --max-write-memory (PublisherOptions.memory): one part is always sent — a publish must make
   * progress while writers hold the budget (a program closing one file before it writes on in
   * another) — and more only while the budget has room, so under pressure a publish sends one
   * part at a time (review: 16 parallel publishes held 1 GiB of parts outside the budget).
   */
  private async sendParts(numbers: number[], partSize: number, fileSize: number, send: (n: number) => Promise<void>): Promise<void> {
    const memory = this.opts.memory;
    let next = 0;
    const worker = async (lead: boolean): Promise<void> => {
      while (next < numbers.length) {
        const n = numbers[next]!;
        const bytes = Math.min(partSize, fileSize - (n - 1) * partSize);
        if (memory) {
          if (lead) memory.takeSending(bytes);
          else if (!memory.tryTakeSending(bytes)) return;
        }
        next++;
        try {
          await send(n);
        } finally {
          memory?.release(bytes, true);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARTS_IN_FLIGHT, numbers.length) }, (_, i) => worker(i === 0)));
  }

  /** Delete an object nothing will name, then its record; if it cannot be deleted, the record stays for the next sweep. */
  private async dropObject(store: ObjectStore, loc: S3Location, recordId: string): Promise<void> {
    await store.deleteObject(loc).then(() => this.opts.uploads?.removeUpload(recordId), () => undefined).catch(() => undefined);
  }

  /** Register an object uploadSts sent, then forget its upload record (orphans.ts). */
  private async registerRecorded(store: ObjectStore, loc: S3Location, recordId: string, src: PublishSource, name: string, locationId: number): Promise<string> {
    const uploads = this.opts.uploads;
    let fileHandleId: string;
    try {
      fileHandleId = await this.registerExternal(loc.bucket, loc.key, locationId, src.size, src.md5, name);
    } catch (err) {
      // The publish fails and a retry uploads again: this object would be nobody's.
      await this.dropObject(store, loc, recordId);
      throw err;
    }
    await src.onRegistered?.(fileHandleId, { bucket: loc.bucket, key: loc.key, storageLocationId: locationId });
    // Must go before any entity refers to the object; if it cannot, the publish fails (its
    // spooled bytes are journaled and uploaded again) and the next sweep deletes this object.
    await uploads?.removeUpload(recordId);
    return fileHandleId;
  }

  private async uploadMultipartApi(src: PublishSource, name: string, locationId: number): Promise<string> {
    const partSize = partSizeFor(src.size, this.opts.partSize);
    const request = {
      concreteType: CONCRETE.multipartUploadRequest, contentMD5Hex: src.md5, fileName: name, fileSizeBytes: src.size,
      partSizeBytes: partSize, contentType: guessContentType(name), storageLocationId: locationId, generatePreview: false,
    };
    const key = JSON.stringify(request);
    const before = this.uploadsByRequest.get(key) ?? Promise.resolve();
    const mine = before.catch(() => undefined).then(() => this.multipartUpload(src, name, request, partSize));
    this.uploadsByRequest.set(key, mine);
    let id: string;
    try {
      id = await mine;
    } finally {
      if (this.uploadsByRequest.get(key) === mine) this.uploadsByRequest.delete(key);
    }
    if (locationId === SYNAPSE_STORAGE_LOCATION_ID) this.registered.set(id, this.synapseStorageHandle(id, src, name));
    return id;
  }

  /**
   * What a read needs of a file handle this mount made in Synapse's own storage: its id, size,
   * MD5 and location (reads there go through presigned URLs, never the bucket and key, which
   * Synapse's multipart API does not tell — left empty). A file read back after it was written
   * (`diff -r` after `cp -r`) then costs no bundle2 (QA audit F4).
   */
  private synapseStorageHandle(id: string, src: PublishSource, name: string): S3FileHandle {
    return {
      id, etag: '', concreteType: CONCRETE.s3FileHandle, bucketName: '', key: '', contentMd5: src.md5, contentSize: src.size,
      contentType: guessContentType(name), fileName: name, storageLocationId: SYNAPSE_STORAGE_LOCATION_ID,
      createdBy: String(this.opts.userId), createdOn: new Date().toISOString(),
    };
  }

  private async multipartUpload(src: PublishSource, name: string, request: MultipartUploadRequest, partSize: number): Promise<string> {
    try {
      return await this.multipartUploadOnce(src, name, request, partSize, false);
    } catch (err) {
      // Another process of this user may have completed the same request meanwhile (a second
      // mount writing identical bytes): its file handle holds these very bytes.
      const now = await this.api.startMultipartUpload(request, false).catch(() => undefined);
      if (now?.state === 'COMPLETED' && now.resultFileHandleId) return String(now.resultFileHandleId);
      // Synapse refused a step of the upload it resumed (a part or the completion: an upload
      // left broken by an earlier attempt): once more, from a fresh upload (QA: recover retried
      // the same dead upload forever). Not on a timeout, a conflict or the pace (408, 409, 429):
      // restarting would throw parts away.
      if (err instanceof SynapseError && (err.status === 400 || err.status === 404)) {
        this.opts.logger?.warn({ err, name }, 'Synapse refused a step of a resumed upload; starting it afresh');
        return this.multipartUploadOnce(src, name, request, partSize, true);
      }
      throw err;
    }
  }

  private async multipartUploadOnce(src: PublishSource, name: string, request: MultipartUploadRequest, partSize: number, forceRestart: boolean): Promise<string> {
    let status = await this.api.startMultipartUpload(request, forceRestart);
    if (status.state !== 'COMPLETED') {
      const count = Math.ceil(src.size / partSize);
      const missing = Array.from({ length: count }, (_, i) => i + 1).filter((n) => status.partsState[n - 1] !== '1');
      src.onProgress?.(src.size - missing.reduce((sum, n) => sum + Math.min(partSize, src.size - (n - 1) * partSize), 0));
      const urls = new PartUrls(this.api, status.uploadId, missing);
      await this.sendParts(missing, partSize, src.size, async (n) => {
        const start = (n - 1) * partSize;
        const body = await readPart(src.file, start, Math.min(partSize, src.size - start));
        await this.putPart(urls, n, body);
        src.onProgress?.(body.length);
        const md5 = createHash('md5').update(body).digest('hex');
        const added = await this.api.addPart(status.uploadId, n, md5);
        if (added.addPartState !== 'ADD_SUCCESS') {
          throw new FsError('EIO', `Synapse refused part ${n} of ${name}: ${added.errorMessage ?? added.addPartState}`);
        }
      });
      status = await this.api.completeMultipartUpload(status.uploadId);
    }
    if (!status.resultFileHandleId) throw new FsError('EIO', `multipart upload of ${name} completed without a file handle`);
    return String(status.resultFileHandleId);
  }

  /**
   * PUT one part to its presigned URL (batched: PartUrls). A retry after a 403 (expired) or no
   * answer gets a fresh URL; after a 5xx the URL is fine, and asking Synapse for another cost a
   * request per try (review).
   */
  private async putPart(urls: PartUrls, partNumber: number, body: Buffer): Promise<void> {
    let lastStatus = 0;
    let spent = 0; // of PUT_ATTEMPTS
    let url: PartPresignedUrl | undefined; // undefined: ask for one (fresh after the first)
    for (let attempt = 0; ; attempt++) {
      url ??= await urls.get(partNumber, attempt > 0);
      try {
        s3Stats.request();
        // Bounded: an identical upload queued behind this one waits for it (review).
        const res = await fetch(url.uploadPresignedUrl, {
          method: 'PUT', body: body as unknown as BodyInit, headers: url.signedHeaders ?? {}, signal: AbortSignal.timeout(PART_PUT_TIMEOUT_MS),
        })
          .catch((err: unknown) => { s3Stats.error(); throw err; });
        if (res.ok) {
          await res.body?.cancel();
          s3Stats.up(body.length);
          return;
        }
        const code = s3ErrorCode(await res.text().catch(() => ''));
        s3Stats.error();
        this.opts.logger?.debug({ status: res.status, code, partNumber, attempt }, 'part upload refused');
        lastStatus = res.status;
        if (res.status !== 403 && res.status < 500) break;
        if (res.status === 403) url = undefined; // expired
        spent += tryCost({ code });
      } catch (err) {
        this.opts.logger?.debug({ err: (err as Error).message, partNumber, attempt }, 'part upload failed; retrying with a fresh URL');
        url = undefined;
        if (++spent >= PUT_ATTEMPTS) throw new FsError('EIO', `part ${partNumber} upload failed: ${(err as Error).message}`, { cause: err });
      }
      // No wait after the last try: the close learns at once.
      if (spent >= PUT_ATTEMPTS) break;
      const base = this.opts.partRetryBaseMs ?? 100;
      await backoff(attempt, PUT_BACKOFF_CAP * base, base);
    }
    throw new FsError('EIO', `part ${partNumber} upload refused (HTTP ${lastStatus})`);
  }

  /**
   * Bring `entityId`, which this mount removed from `name` in `parentId` a moment ago, back out of
   * the trash can (removed-names.ts): the entity as it is now, or undefined when Synapse refused (the
   * name taken again, the trash can purged, another user's removal) — then the bytes are a new file.
   */
  async restoreRemoved(entityId: string, parentId: string, name: string): Promise<Entity | undefined> {
    const refused = await this.api.restoreFromTrash(entityId).then(() => undefined, (err: unknown) => err);
    // One read tells both: what it is now, and — a restore whose answer was lost and was repeated
    // — whether it is back already.
    const entity = await this.api.getEntity(entityId).catch(() => undefined);
    const back = entity !== undefined && entity.parentId === parentId && entity.name === name;
    if (!back || entity.concreteType !== CONCRETE.file || !entity.dataFileHandleId) {
      this.opts.logger?.info({ err: refused, entityId, name }, 'the file this name held a moment ago could not be restored: these bytes become a new file');
      return undefined;
    }
    this.opts.logger?.info({ entityId, name }, 'a file removed and made again under its name: the removed file is back out of the trash can, with its synID and history');
    return entity;
  }

  /** Put a file restoreRemoved brought back into the trash can again (its new version could not be committed). */
  async removeAgain(entityId: string): Promise<void> {
    await this.api.deleteEntity(entityId).catch((err: unknown) =>
      this.opts.logger?.error({ err, entityId }, 'a removed file brought back for its next version could not be removed again: it shows its old content until removed'));
  }

  /** Is `version` still the newest of `entityId`? A check that fails answers no: publishing again is the safe side. */
  async isNewest(entityId: string, version: number | undefined): Promise<boolean> {
    if (version === undefined) return false;
    const info = await this.api.getLatestVersionInfo(entityId).catch(() => undefined);
    return info?.versionNumber === version;
  }

  private remember(entity: Entity): Entity {
    this.recentEntities.set(entity.id, entity);
    return entity;
  }

  /**
   * Make `fileHandleId` the content of `name` in `parentId`: a new FileEntity, or the next
   * version of `entityId` (or of whatever entity took the name meanwhile).
   * `builtOn`: the version whose bytes these build on (an append or a partial rewrite): if
   * Synapse has another version now, someone published in between and these bytes would hide
   * their change, so nothing is committed (VersionConflict). Bytes that do not build on the old
   * content (a rewrite from empty) replace whatever is there: last writer wins, and the other
   * version stays in the file's history. If `entityId` was deleted meanwhile, such bytes become
   * a new file of that name — unless `recreateIfDeleted()` says no (the mount removed it).
   * `builtOn` NO_VERSION: new bytes that must not become another file's version — a file of
   * that name created meanwhile is a VersionConflict (recover: bytes from before it).
   */
  async commit(parentId: string, name: string, fileHandleId: string, entityId?: string, builtOn?: number,
    recreateIfDeleted: () => boolean = () => true): Promise<Entity> {
    let takenMeanwhile = false;
    if (!entityId) {
      try {
        return this.remember(await this.api.createEntity({ concreteType: CONCRETE.file, name, parentId, dataFileHandleId: fileHandleId }));
      } catch (err) {
        if (!(err instanceof SynapseError && err.status === 409)) throw err;
        const existing = await this.api.lookupChild(parentId, name);
        if (!existing) throw err;
        entityId = existing;
        takenMeanwhile = true;
      }
    }
    for (let attempt = 0; ; attempt++) {
      // Our copy only where it cannot decide a conflict: at the version these bytes build on.
      const copy = attempt === 0 ? this.recentEntities.get(entityId) : undefined;
      const recent = copy && (builtOn === undefined || copy.versionNumber === builtOn) ? copy : undefined;
      let entity: Entity;
      try {
        entity = recent ?? await this.api.getEntity(entityId);
      } catch (err) {
        // Deleted elsewhere (trash can) while listed here. A rewrite from empty (`>`, cp, a
        // save) is a new file of that name now; bytes built on the deleted one stay journaled.
        // Not a file this mount is removing itself (`recreateIfDeleted`: unlinked meanwhile).
        if (!(err instanceof SynapseError && err.status === 404) || builtOn !== undefined || takenMeanwhile || !recreateIfDeleted()) throw err;
        this.opts.logger?.warn({ parentId, name, entityId }, 'the file was deleted elsewhere meanwhile: these bytes become a new file of that name');
        return this.commit(parentId, name, fileHandleId);
      }
      if (entity.concreteType !== CONCRETE.file) throw new FsError('EISDIR', `${name} exists and is not a file`);
      if (String(entity.dataFileHandleId) === fileHandleId) return entity;
      if (builtOn !== undefined && entity.versionNumber !== builtOn) throw new VersionConflict(name, entityId, builtOn, entity.versionNumber);
      if (takenMeanwhile && attempt === 0) {
        // Not our own creation answered late (its handle would be ours, above): another writer's.
        this.opts.logger?.warn({ parentId, name, entityId }, 'a file of this name was created elsewhere meanwhile: these bytes become its next version (the other stays in its history)');
      }
      try {
        return this.remember(await this.api.updateEntity({ ...entity, dataFileHandleId: fileHandleId }));
      } catch (err) {
        this.recentEntities.delete(entityId);
        // Our copy was stale (changed, or deleted, elsewhere): ask Synapse, as without one.
        if (recent && err instanceof SynapseError && (err.status === 412 || err.status === 404)) continue;
        if (err instanceof SynapseError && err.status === 412 && attempt < 3) continue;
        throw err;
      }
    }
  }
}

/** What a VersionConflict's message (and so its journal entry's `error`) says: recover --list reads it back. */
export const VERSION_CONFLICT_SAYS = /is at version \S+ now; these bytes build on version/;

/** commit's `builtOn` for a new file: it builds on no version of any file. */
export const NO_VERSION = 0;

/** Someone published a version after the one a write built on (Publisher.commit): ESTALE, nothing committed. */
export class VersionConflict extends FsError {
  constructor(name: string, readonly entityId: string, readonly builtOn: number, readonly current: number | undefined) {
    // NO_VERSION: a new file (an exclusive create, or recover's) whose name another file took.
    super(builtOn === NO_VERSION ? 'EEXIST' : 'ESTALE', builtOn === NO_VERSION
      ? `${name}: a file of this name (${entityId}) was created in Synapse meanwhile; these bytes would become its next version — not published, kept for \`synapse-mount recover\` (--force makes them that file's next version)`
      : `${name}: ${entityId} is at version ${current} now; these bytes build on version ${builtOn} and would hide that change — not published, kept for \`synapse-mount recover\` (--force publishes it)`);
  }
}
