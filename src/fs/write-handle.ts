/**
 * ActiveFile: the state of one file open for writing, shared by every fd open on its path.
 *
 * Bytes live in a spool file (spool.ts). An existing file's content is NOT downloaded at open —
 * O_TRUNC arrives later as truncate(0) (fuse-native has no atomic_o_trunc), and `cp` over a file
 * never needs the old bytes. The old content is copied into the spool only when a write,
 * read or truncate needs it (append with `>>`, seek-and-rewrite).
 *
 * Publish rule (documented in the README): a close() (flush) publishes the file's complete
 * current content as one version if bytes were WRITTEN since the last publish; a file that was
 * only created or truncated (touch, the shell's `>` which dups and closes its fd before the
 * first write) is published at the last close (release) instead, so `echo x > f` makes one
 * version, not an empty one first. fsync publishes whatever changed. An unchanged MD5 and size
 * make no version. The bytes published are always the whole file as written so far — writes
 * wait while a publish reads the spool. A publish that fails leaves a journal entry and the
 * spool file for `recover`.
 *
 * Streaming (STS fast path): a file written sequentially from offset 0 also streams its parts
 * to S3 as they fill (multipart-upload.ts), so close only sends the last part and registers
 * the handle — upload overlaps writing. Any other write, a truncate, or a failed part drops the
 * stream (aborted on S3) and the publish falls back to uploading the spool.
 *
 * INVARIANT: `loaded` ⇒ spool holds the file's entire current content.
 * INVARIANT: `stream` ⇒ stream.length === spool size (every byte of the file went to it in order).
 * INVARIANT: at most one publish runs at a time (`busy` chain); writes wait for it.
 */
import type { Logger } from 'pino';
import type { StreamingUpload } from '../s3/multipart-upload.js';
import { errnoName, FsError } from './errors.js';
import { EmptyFileNotSupported, type Publisher } from './publisher.js';
import type { Spool, SpoolFile } from './spool.js';

export interface PublishedVersion {
  entityId: string;
  versionNumber: number;
  size: number;
  md5: string;
  modifiedOn: number;
  fileHandleId: string;
  /** The spool file holding exactly the published bytes (until the last close). */
  spoolFile: string;
}

export interface ActiveFileDeps {
  spool: Spool;
  publisher: Publisher;
  /** Copy the published content of `entityId` into `into` (used once, on first need). */
  loadBase: (entityId: string, version: number | undefined, into: SpoolFile) => Promise<void>;
  /** Start streaming a new file to S3, or undefined where its storage does not allow it. */
  startStream?: (parentId: string, name: string) => Promise<StreamTarget | undefined>;
  logger?: Logger;
}

export interface StreamTarget {
  upload: StreamingUpload;
  /** The folder whose storage location the stream writes to. */
  parentId: string;
  register: (size: number, md5: string, name: string) => Promise<string>;
}

export interface ActiveFileInit {
  parentId: string;
  name: string;
  entityId: string | undefined;
  base: { size: number; md5: string | undefined; version?: number | undefined } | undefined;
  localOnly: boolean;
}

export class ActiveFile {
  parentId: string;
  name: string;
  entityId: string | undefined;
  readonly localOnly: boolean;
  /** Kept local because its storage cannot hold an empty file (see Publisher). */
  emptyPlaceholder = false;
  refs = 0;
  /** Content differs from the last published version. */
  dirty = false;
  /** write() was called since the last publish (flush publishes only then). */
  writtenSincePublish = false;
  unlinked = false;
  /** A write failed (e.g. ENOSPC in the spool): the content is incomplete and is never published. */
  broken: unknown;
  mtime = Date.now();
  private base: { size: number; md5: string | undefined; version?: number | undefined } | undefined;
  private loaded: boolean;
  private spoolFile: SpoolFile | undefined;
  private busy: Promise<unknown> = Promise.resolve();
  private stream: StreamTarget | undefined;
  /** A journal entry exists for this file's spool (a publish failed and was recorded). */
  private journaled = false;

  /** A publish failed and was reported (to close() or the log): `recover` owns these bytes now. */
  get awaitingRecovery(): boolean {
    return this.journaled;
  }
  /** Streaming is tried once per file, for its first publish only. */
  private streamTried = false;

  constructor(private readonly deps: ActiveFileDeps, init: ActiveFileInit) {
    this.parentId = init.parentId;
    this.name = init.name;
    this.entityId = init.entityId;
    this.base = init.base;
    this.localOnly = init.localOnly;
    // A new file has no published content: the (empty) spool is the whole file.
    this.loaded = init.entityId === undefined;
    // A new file exists once created, even if nothing is ever written to it (touch, cp of 0 B).
    this.dirty = init.entityId === undefined;
  }

  get size(): number {
    if (this.loaded) return this.spoolFile?.size ?? 0;
    return this.base?.size ?? 0;
  }

  get journalId(): string | undefined {
    return this.spoolFile?.id;
  }

  /** A publish of this file is running (for `synapse-mount status`). */
  publishing = false;
  private uploadedBytes = 0;
  private publishStream: StreamingUpload | undefined;

  /** Bytes of the current content S3 has acknowledged (streamed parts, or the running publish's). */
  get bytesUploaded(): number {
    if (!this.publishing) return this.stream?.upload.uploaded ?? 0;
    return Math.max(this.uploadedBytes, this.publishStream?.uploaded ?? 0);
  }

  /** Mark a publish as running while `fn` runs, so status can show its progress. */
  private async tracked<T>(fn: () => Promise<T>): Promise<T> {
    this.publishing = true;
    this.uploadedBytes = 0;
    this.publishStream = this.stream?.upload;
    try {
      return await fn();
    } finally {
      this.publishing = false;
      this.publishStream = undefined;
    }
  }

  /** Run `fn` after any publish in progress (serialises spool access against uploads). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.busy.then(fn, fn);
    this.busy = run.catch(() => undefined);
    return run;
  }

  private async spool(): Promise<SpoolFile> {
    if (!this.spoolFile) this.spoolFile = await this.deps.spool.create();
    return this.spoolFile;
  }

  private async ensureLoaded(): Promise<SpoolFile> {
    const spool = await this.spool();
    if (!this.loaded) {
      // The version open() saw, not whatever is newest now: never mix two versions' bytes.
      if (this.entityId && (this.base?.size ?? 0) > 0) await this.deps.loadBase(this.entityId, this.base?.version, spool);
      this.loaded = true;
    }
    return spool;
  }

  private dropStream(why: string): void {
    const s = this.stream;
    if (!s) return;
    this.stream = undefined;
    this.deps.logger?.debug({ name: this.name, why }, 'streaming upload dropped; will upload from the spool');
    void s.upload.abort();
  }

  /** Start a stream at the first write of a new (or emptied) file at offset 0. */
  private async maybeStartStream(spool: SpoolFile, position: number): Promise<void> {
    if (this.streamTried || this.localOnly || !this.deps.startStream) return;
    this.streamTried = true;
    if (position !== 0 || spool.size !== 0) return;
    try {
      this.stream = await this.deps.startStream(this.parentId, this.name);
    } catch (err) {
      this.deps.logger?.debug({ err, name: this.name }, 'no streaming upload; the spool will be uploaded at close');
    }
  }

  write(data: Buffer, position: number): Promise<number> {
    return this.exclusive(async () => {
      if (this.broken) throw this.broken;
      try {
        return await this.writeNow(data, position);
      } catch (err) {
        // The file as the program meant it can no longer be built: never publish a part of it.
        this.broken = err;
        this.dropStream('write failed');
        throw err;
      }
    });
  }

  private async writeNow(data: Buffer, position: number): Promise<number> {
    const spool = await this.ensureLoaded();
    await this.maybeStartStream(spool, position);
    if (this.stream) {
      if (position !== this.stream.upload.length || this.stream.upload.failed) this.dropStream('non-sequential write or failed part');
      else {
        try {
          await this.stream.upload.append(data, position);
        } catch {
          this.dropStream('append failed');
        }
      }
    }
    await spool.write(data, position);
    this.dirty = true;
    this.writtenSincePublish = true;
    this.mtime = Date.now();
    return data.length;
  }

  /**
   * This file's bytes become the next version of another entity (a rename onto a published
   * file). The bytes are loaded first — they are this file's, and a later load would fetch
   * `entityId`'s — and the base is dropped, as it describes another entity's content: without
   * that, a file unchanged since its last publish compared equal to it and was never published,
   * and the target kept its old bytes (found by test/unit/fs-model.test.ts).
   */
  adopt(entityId: string): Promise<void> {
    return this.exclusive(async () => {
      await this.ensureLoaded();
      this.entityId = entityId;
      this.base = undefined;
      this.dirty = true;
    });
  }

  /** Read what has been written (loads the published content first if needed). */
  read(position: number, length: number): Promise<Buffer> {
    return this.exclusive(async () => (await this.ensureLoaded()).read(position, length));
  }

  truncate(size: number): Promise<void> {
    return this.exclusive(async () => {
      if (this.stream && size !== this.stream.upload.length) this.dropStream('truncate');
      if (size === 0) {
        // O_TRUNC: the old content is not needed at all.
        const spool = await this.spool();
        await spool.truncate(0);
        this.loaded = true;
      } else {
        await (await this.ensureLoaded()).truncate(size);
      }
      this.dirty = true;
      this.mtime = Date.now();
    });
  }

  /**
   * Publish the current content if it changed. Returns the new version, or undefined when
   * nothing was published (clean, unchanged bytes, local-only file).
   */
  publish(): Promise<PublishedVersion | undefined> {
    return this.exclusive(() => this.tracked(async () => {
      if (this.broken) {
        throw new FsError(errnoName(this.broken), `${this.name}: not published, an earlier write failed (${(this.broken as Error).message})`);
      }
      if (!this.dirty || this.localOnly || this.unlinked) return undefined;
      const spool = await this.ensureLoaded();
      const md5 = await spool.md5();
      const size = spool.size;
      if (this.entityId && this.base && this.base.md5 === md5 && this.base.size === size) {
        this.dirty = false;
        this.writtenSincePublish = false;
        return undefined;
      }
      let fileHandleId: string;
      try {
        fileHandleId = await this.uploadStreamed(size, md5)
          ?? await this.deps.publisher.upload({
            file: spool.file, size, md5, onProgress: (n) => { this.publishStream = undefined; this.uploadedBytes += n; },
          }, this.parentId, this.name);
      } catch (err) {
        if (err instanceof EmptyFileNotSupported && !this.entityId) {
          this.emptyPlaceholder = true;
          this.deps.logger?.warn({ name: this.name, parentId: this.parentId },
            'empty file kept in this mount only: this folder\'s storage cannot hold a 0-byte file; it is published once it has content');
          return undefined;
        }
        throw await this.journal(err, size, md5);
      }
      let entity;
      try {
        entity = await this.deps.publisher.commit(this.parentId, this.name, fileHandleId, this.entityId);
      } catch (err) {
        throw await this.journal(err, size, md5, fileHandleId);
      }
      this.entityId = entity.id;
      this.base = { size, md5 };
      this.dirty = false;
      this.writtenSincePublish = false;
      this.emptyPlaceholder = false;
      // A publish that failed earlier (at close) left a journal entry: these bytes are now in
      // Synapse, so it must not linger as "waiting for recover".
      if (this.journaled) {
        this.journaled = false;
        await this.deps.spool.removeJournal(spool.id).catch(() => undefined);
      }
      return {
        entityId: entity.id, versionNumber: entity.versionNumber ?? 1, size, md5, fileHandleId, spoolFile: spool.file,
        modifiedOn: Date.parse(entity.modifiedOn) || Date.now(),
      };
    }));
  }

  /** Finish the streaming upload if it holds exactly the file; undefined → use the spool. */
  private async uploadStreamed(size: number, md5: string): Promise<string | undefined> {
    const s = this.stream;
    this.stream = undefined;
    if (!s) return undefined;
    if (s.upload.length !== size || s.upload.failed || s.parentId !== this.parentId) {
      void s.upload.abort();
      return undefined;
    }
    try {
      await s.upload.complete(Buffer.from(md5, 'hex').toString('base64'));
    } catch (err) {
      this.deps.logger?.warn({ err, name: this.name }, 'streaming upload failed; uploading from the spool');
      return undefined;
    }
    return s.register(size, md5, this.name);
  }

  /** Record a failed publish for `recover`; returns the error to give to close(). */
  private async journal(err: unknown, size: number, md5: string, fileHandleId?: string): Promise<unknown> {
    const spool = this.spoolFile!;
    try {
      this.journaled = true;
      const file = await this.deps.spool.writeJournal({
        id: spool.id, spoolFile: spool.file, parentId: this.parentId, name: this.name,
        ...(this.entityId ? { entityId: this.entityId } : {}),
        ...(fileHandleId ? { fileHandleId } : {}),
        size, md5, createdAt: new Date().toISOString(), error: (err as Error).message ?? String(err),
      });
      this.deps.logger?.error({ err, journal: file, name: this.name }, 'publish failed; bytes kept for `synapse-mount recover`');
    } catch (jerr) {
      this.deps.logger?.error({ err: jerr }, 'could not write the journal entry');
    }
    return err;
  }

  /** Last fd closed: drop the spool unless a failed publish still needs it. */
  async dispose(keepForRecovery: boolean): Promise<void> {
    await this.busy;
    this.dropStream('closed');
    if (!this.spoolFile) return;
    if (keepForRecovery) await this.spoolFile.close();
    else await this.spoolFile.remove();
  }

  assertWritable(): void {
    if (this.unlinked) throw new FsError('ENOENT', `${this.name} was removed`);
  }
}
