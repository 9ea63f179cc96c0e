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
 * Streaming (STS fast path): a file written sequentially from offset 0 streams its parts to S3
 * as they fill (multipart-upload.ts), so close only sends the last part and registers the
 * handle — upload overlaps writing. A streamed file's bytes are NOT written to the spool: on
 * this class of VM, writing every byte into fresh page cache cost ~3.5 CPU-s per GiB and half
 * the write throughput (bench/README.md), while mountpoint-s3, gcsfuse's streaming writes and
 * rclone keep no local copy at all. The bytes live in the upload (parts on S3, part buffers),
 * which keeps the file's MD5 as they pass. When the file stops being append-only — a read, a
 * write elsewhere, a truncate, a move to another folder — the stream is spilled: its bytes are
 * copied into the spool (read back from S3 if parts were sent) and the file goes on from there.
 * Failures: parts are retried (aws-object-store.ts); a part S3 still refuses is written to the
 * spool at its offset and sent again at close. If it is still refused then, close() fails
 * (EIO) and the open multipart upload — parts on S3 plus the refused ones in the spool — is
 * journaled, so `recover` finishes it; nothing partial is ever published. A completed object
 * whose registration in Synapse fails is journaled by its S3 location, so `recover` registers it
 * without the bytes. Either way the file is then broken for this mount (later writes fail).
 *
 * INVARIANT: `loaded` ⇒ spool holds the file's entire current content, unless `stream`.
 * INVARIANT: `stream` ⇒ the file's content is exactly the stream's bytes; the spool holds
 *            nothing but parts S3 refused, at their offsets.
 * INVARIANT: at most one publish runs at a time (`busy` chain); writes wait for it.
 */
import type { Logger } from 'pino';
import { KeptWhole, NoWriteMemory, PartsMissing, UploadNotStarted, type FailedPartStore, type StreamingUpload } from '../s3/multipart-upload.js';
import { errnoName, FsError } from './errors.js';
import { SynapseError } from '../synapse/errors.js';
import type { RemovedFile } from './removed-names.js';
import { EmptyFileNotSupported, NO_VERSION, type Publisher } from './publisher.js';
import { publishingNow, SYNCED_OPEN, type JournalEntry, type Spool, type SpoolFile } from './spool.js';

/**
 * Synapse's 404 to an entity call of a publish (creating the file in its folder, or its next
 * version): the folder or the file was deleted elsewhere — close() answers ESTALE, and the
 * filesystem forgets that folder. Not an upload's 404 (an unknown multipart upload; review).
 */
export function entityGone(err: unknown): boolean {
  // Also the folder's upload destination, asked first for a new file (QA: ENOENT there, ESTALE otherwise).
  return err instanceof SynapseError && err.status === 404
    && /^\/(repo\/v1\/entity(\/syn\d+)?(\?|$)|file\/v1\/entity\/syn\d+\/uploadDestination$)/.test(err.path);
}

export interface PublishedVersion {
  /** A removed file brought back by this publish (removed-names.ts): it inherits its folder's ACL, as a new one. */
  revived?: boolean;
  entityId: string;
  versionNumber: number;
  size: number;
  md5: string;
  modifiedOn: number;
  fileHandleId: string;
  /** The spool file holding exactly the published bytes (until the last close); undefined if streamed. */
  spoolFile: string | undefined;
}

export interface ActiveFileDeps {
  spool: Spool;
  publisher: Publisher;
  /** Copy the published content of `entityId` into `into` (used once, on first need). */
  loadBase: (entityId: string, version: number | undefined, into: SpoolFile) => Promise<void>;
  /** Bytes of that version through the block cache: reads of a file opened for writing and not changed yet. */
  readBase?: (entityId: string, version: number | undefined, position: number, length: number) => Promise<Buffer>;
  /** Its last fd closed: whatever readBase holds (a reader's prefetched block) can go. */
  baseDone?: () => void;
  /**
   * Start streaming a new file to S3, or undefined where its storage does not allow it. Parts S3
   * refuses for good are kept in `keep` (the file's spool, at their offsets) to be sent again.
   */
  /** `heldTemp`: the file is a tool's temporary one (ActiveFile.heldTemp), its object named as it will be. */
  startStream?: (parentId: string, name: string, keep: FailedPartStore, heldTemp: boolean) => Promise<StreamTarget | undefined>;
  logger?: Logger;
}

/** Where a failed publish's bytes wait for recover (ActiveFile.journalEntry). */
export interface JournaledAs {
  spoolFile: string;
  journalId: string;
  size: number;
  md5: string;
  /** The spool file holds all of the content. */
  whole: boolean;
  /** The version of the entity these bytes were written over. */
  baseVersion?: number;
  /** Why the bytes may be incomplete (JournalEntry.incomplete): never shown at the path (kept-files.ts). */
  incomplete?: string;
}

export interface StreamTarget {
  upload: StreamingUpload;
  /** The folder whose storage location the stream writes to. */
  parentId: string;
  /** Where the object lands (journaled if its registration fails). */
  object: { bucket: string; key: string; storageLocationId: number };
  register: (size: number, md5: string, name: string) => Promise<string>;
  /**
   * The completed object is referenced now (registered, or named by a journal entry): its
   * upload record goes, so no orphan sweep deletes it. Called before any entity can refer to
   * it; throws if the record could not be removed.
   */
  referenced?: () => Promise<void>;
  /**
   * The completed object is wanted by no entity after all (a held temporary file removed, or read
   * back into the spool): delete it, then its upload record. A failed delete keeps the record,
   * so the next orphan sweep deletes the object.
   */
  discard?: () => Promise<void>;
  /** It now goes to `parentId`, a folder of the same storage location (its record follows). */
  moved?: (parentId: string) => Promise<void>;
}

export interface ActiveFileInit {
  parentId: string;
  name: string;
  entityId: string | undefined;
  base: { size: number; md5: string | undefined; version?: number | undefined } | undefined;
  localOnly: boolean;
  /** Local only until given bytes (vim's `4913` probe, names.ts isProbeName); implies localOnly. */
  localWhileEmpty?: boolean;
  /**
   * The content starts as these bytes instead of the entity's (`base` describes them): a file
   * waiting for recover, opened for writing (kept-files.ts). Not dirty until changed.
   */
  seed?: (into: SpoolFile) => Promise<void>;
  /** The mtime the file showed when opened (default: now, a new file). */
  mtime?: number;
}

/** What readParked fetches at a time from a parked file's object. */
const PARKED_READ_WINDOW = 4 * 1024 * 1024;

/** A local disk's errno for a failure to keep bytes: ENOSPC when the disk is full, else EIO. */
const diskFullOrEio = (err: unknown): 'ENOSPC' | 'EIO' => (errnoName(err) === 'ENOSPC' ? 'ENOSPC' : 'EIO');

/** Emptying a published file where Synapse cannot store 0 bytes: nothing changed, nothing to recover. */
export class EmptyVersionRefused extends FsError {
  constructor(name: string, cause: unknown) {
    super('ENOTSUP', `${name}: not emptied — this folder's storage cannot hold a 0-byte file, so the file keeps its last version`, { cause });
  }
}

export class ActiveFile {
  parentId: string;
  name: string;
  entityId: string | undefined;
  /** Kept in this mount, never published: a scratch name (follows renames: `mv t~ t` publishes). */
  localOnly: boolean;
  /** localOnly only while empty: the first byte written makes it an ordinary new file. */
  private localWhileEmpty: boolean;
  /** Kept local because its storage cannot hold an empty file (see Publisher). */
  emptyPlaceholder = false;
  refs = 0;
  /** Of those fds, the ones opened for writing (a reader may share the bytes too). */
  writers = 0;
  /** Content differs from the last published version. */
  dirty = false;
  /** write() was called since the last publish (flush publishes only then). */
  writtenSincePublish = false;
  /**
   * Counts the moments the content became "published" (a publish, or bytes found equal to the
   * published version): an fd that wrote before the last one has nothing of its own to publish
   * (filesystem.ts flush — another fd's half-written state is not its to publish).
   */
  publishEpoch = 0;
  unlinked = false;
  /** A write failed (e.g. ENOSPC in the spool): the content is incomplete and is never published. */
  broken: unknown;
  /**
   * The file's mtime: what it showed when opened, then moved by every write and truncate, or set
   * by utimens (setMtime) — what fstat shows and what its published version keeps (filesystem.ts).
   */
  mtime: number;
  /** The mtime moved since the open: a close that publishes no new version still keeps it. */
  mtimeMoved = false;
  private base: { size: number; md5: string | undefined; version?: number | undefined } | undefined;
  /**
   * The version of `entityId` these bytes will replace (the journal's baseVersion, so `recover`
   * can tell when someone published since). Apart from `base`, which adopt() drops.
   */
  private overVersion: number | undefined;
  /**
   * The published version the current bytes build on (its content was loaded and kept: an
   * append, a partial rewrite), or undefined when they replace the file outright (new, or
   * rewritten from empty). Publishing over a newer version than this is a conflict (Publisher.commit).
   */
  private builtOn: number | undefined;
  private loaded: boolean;
  private spoolFile: SpoolFile | undefined;
  private busy: Promise<unknown> = Promise.resolve();
  private stream: StreamTarget | undefined;
  /** A dropped stream's abort (S3 AbortMultipartUpload), awaited by dispose(). */
  private aborting: Promise<void> | undefined;
  /** A dropped stream's kept-part writes have ended: the spool is ours again once it resolves. */
  private spoolQuiet: Promise<void> | undefined;
  /** A journal entry exists for this file's spool (a publish failed and was recorded). */
  private journaled = false;
  /**
   * An entry for this spool file was written and not yet removed — also when a later rewrite of
   * it failed (ENOSPC) and `journaled` went false: a publish that then succeeds removes it (QA:
   * a stale entry stayed for `recover` to find "already published").
   */
  private entryOnDisk = false;

  /** Bytes go straight to S3 (a streamed upload): reading them means reading them back first. */
  get streaming(): boolean {
    return this.stream !== undefined;
  }

  /** utimens on an open file (`cp -p`, `tar x`), or a change to its bytes. */
  setMtime(ms: number): void {
    this.mtime = ms;
    this.mtimeMoved = true;
  }

  /** The published version these bytes are, when they are one (not changed since it). */
  get cleanVersion(): number | undefined {
    // Seeded with kept bytes (a file waiting for recover): not the version it was written over,
    // whose time and bytes are another's (review: touch set that version's time).
    return this.dirty || this.broken || !this.entityId || this.fromKept ? undefined : this.overVersion;
  }

  /** A publish failed and was reported (to close() or the log): `recover` owns these bytes now. */
  get awaitingRecovery(): boolean {
    return this.journaled;
  }

  /**
   * Its journal entry, while one waits for recover; `whole` when the spool file holds all the
   * content (a spooled file, or a small streamed one kept whole) — not for a stream journaled
   * by its S3 object or open upload.
   */
  get journalEntry(): JournaledAs | undefined {
    return this.journaled ? this.journaledAs : undefined;
  }
  private journaledAs: JournaledAs | undefined;
  /** Streaming is tried once per file, for its first publish only. */
  private streamTried = false;

  constructor(private readonly deps: ActiveFileDeps, init: ActiveFileInit) {
    this.parentId = init.parentId;
    this.name = init.name;
    this.entityId = init.entityId;
    this.base = init.base;
    this.overVersion = init.base?.version;
    this.localWhileEmpty = init.localWhileEmpty ?? false;
    this.localOnly = init.localOnly || this.localWhileEmpty;
    this.seed = init.seed;
    this.fromKept = init.seed !== undefined;
    this.mtime = init.mtime ?? Date.now();
    // A new file has no published content: the (empty) spool is the whole file.
    this.loaded = init.entityId === undefined && !init.seed;
    // A new file exists once created, even if nothing is ever written to it (touch, cp of 0 B).
    this.dirty = init.entityId === undefined && !init.seed;
  }

  private readonly seed: ActiveFileInit['seed'];
  /** The content is a kept file's (seed) until a publish makes it a version. */
  private fromKept: boolean;

  get size(): number {
    if (this.stream) return this.stream.upload.length;
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

  /**
   * Removed by the user (rm, or replaced by a rename) while a failed publish's journal entry
   * waits: that entry is not wanted any more (review: recover brought a removed file back). The
   * spool file goes at the last close, as for any unlinked file.
   */
  async dropJournal(): Promise<void> {
    // A held temporary file's entry too: it must not bring a removed file back after a crash.
    await this.dropHeldEntry();
    const id = this.journalEntry?.journalId ?? (this.entryOnDisk ? this.spoolFile?.id : undefined);
    if (!id) return;
    this.journaled = false;
    this.entryOnDisk = false;
    await this.deps.spool.removeJournal(id).catch(() => undefined);
  }

  /** A failed publish's entry (or this publish's write-ahead one in its place) goes: its bytes are superseded. */
  private async dropEntryOnDisk(): Promise<void> {
    if (!(this.journaled || this.entryOnDisk) || !this.spoolFile) return;
    this.journaled = false;
    this.entryOnDisk = false;
    await this.deps.spool.removeJournal(this.spoolFile.id).catch(() => undefined);
  }

  /**
   * The write-ahead journal entry of a publish (publish()); its id, or undefined if it could not be
   * written. From the spool, it names the spool file; for a streamed file, once its object is
   * registered, the file handle and object (`registered`) — the upload record goes next, and a crash
   * before the entity exists would leave a billed object nothing names (QA: kill -9 mid-close).
   */
  private async writeAhead(spool: SpoolFile, size: number, md5: string,
    registered?: Pick<JournalEntry, 'fileHandleId' | 's3Object'>, inSpool = registered === undefined): Promise<string | undefined> {
    try {
      // It takes the place of an entry already on disk (a failed publish's, same id): durably then,
      // or a power cut could leave a torn entry where a sound one was (review).
      return await this.writeAheadEntry(spool, size, md5, registered, inSpool, this.journaled || this.entryOnDisk);
    } catch (err) {
      this.deps.logger?.warn({ err, name: this.name }, 'could not write the write-ahead journal entry; if the mount dies while publishing, these bytes are not recoverable (the next mount removes the spool file)');
      return undefined;
    }
  }

  /**
   * A held temporary file's entry (journalHeld, park): as writeAhead's, but one that cannot be
   * written is its close's error — close() must not say 0 for bytes nothing names (review). Tried
   * again at RELEASE; failing there too, the file is published as it is (filesystem.ts held).
   */
  private async writeHeldEntry(spool: SpoolFile, size: number, md5: string, registered?: Pick<JournalEntry, 's3Object'>, durable = false): Promise<string> {
    try {
      return await this.writeAheadEntry(spool, size, md5, registered, registered === undefined, durable);
    } catch (err) {
      throw new FsError(diskFullOrEio(err), `${this.name}: its journal entry could not be written (${(err as Error).message}); it is published at its rename, or now if that fails again`, { cause: err });
    }
  }

  /** `state`: what the entry says of the file (default: a publish under way, its close begun). */
  private async writeAheadEntry(spool: SpoolFile, size: number, md5: string,
    registered: Pick<JournalEntry, 'fileHandleId' | 's3Object'> | undefined, inSpool: boolean, durable = false,
    state: Pick<JournalEntry, 'error' | 'publishing' | 'incomplete' | 'heldOpen'> = { error: 'the mount stopped while publishing this file (its close had begun)', publishing: publishingNow() }): Promise<string> {
    await this.deps.spool.writeJournal({
      id: spool.id, spoolFile: spool.file, parentId: this.parentId, name: this.name,
      ...(this.entityId ? { entityId: this.entityId } : {}),
      ...(this.entityId && this.overVersion !== undefined ? { baseVersion: this.overVersion } : {}),
      ...(registered ?? {}),
      size, md5, inSpool, createdAt: new Date().toISOString(), mtime: this.mtime,
      ...state,
    }, { durable });
    return spool.id;
  }

  /** Resolves once the operations queued so far (a publish, a truncate) have finished. */
  idle(): Promise<void> {
    return this.exclusive(async () => undefined);
  }

  /** Run `fn` after any publish in progress (serialises spool access against uploads). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.busy.then(fn, fn);
    this.busy = run.catch(() => undefined);
    return run;
  }

  private async spool(): Promise<SpoolFile> {
    if (this.spoolQuiet) {
      await this.spoolQuiet;
      this.spoolQuiet = undefined;
    }
    if (!this.spoolFile) this.spoolFile = await this.deps.spool.create();
    return this.spoolFile;
  }

  private async ensureLoaded(): Promise<SpoolFile> {
    const spool = await this.spool();
    if (!this.loaded) {
      // The version open() saw, not whatever is newest now: never mix two versions' bytes.
      if (this.seed) {
        await this.seed(spool);
        this.builtOn = this.base?.version;
      } else if (this.entityId) {
        if ((this.base?.size ?? 0) > 0) await this.deps.loadBase(this.entityId, this.base?.version, spool);
        // An empty version too: an append to it must not hide what someone published since.
        this.builtOn = this.base?.version;
      }
      this.loaded = true;
    }
    return spool;
  }

  /** End the stream and discard its bytes (the file was emptied, removed, or closed). */
  private dropStream(why: string): void {
    const s = this.stream;
    if (!s) return;
    this.stream = undefined;
    this.deps.logger?.debug({ name: this.name, why }, 'streaming upload dropped');
    this.parkedWindow = undefined;
    if (this.parked) {
      // Complete on S3, named only by the held entry: both go (removed, emptied, or the same bytes
      // as a removed file brought back).
      this.parked = undefined;
      this.aborting = (async () => {
        await this.dropHeldEntryNow();
        await s.discard?.().catch((err: unknown) => this.deps.logger?.warn({ err, name: this.name }, 'could not delete the S3 object of a removed temporary file; the next mount\'s orphan sweep tries again'));
      })();
      return;
    }
    this.aborting = s.upload.abort();
    // A part still failing could otherwise write its bytes into the spool after we reuse it.
    this.spoolQuiet = s.upload.keptPartsSettled();
  }

  /**
   * Move the stream's bytes into the spool and end the stream: the file needs them there (a
   * read, a non-sequential write, a truncate, a move). If that fails the bytes are gone, so the
   * file is broken: never published.
   */
  private async spill(why: string): Promise<void> {
    const s = this.stream;
    if (!s) return;
    if (this.parked) return this.unpark(s, this.parked, why);
    const spool = await this.spool();
    this.deps.logger?.debug({ name: this.name, why, bytes: s.upload.length }, 'streamed bytes move to the spool');
    try {
      await s.upload.spill((data, offset) => spool.write(data, offset), this.deps.logger);
    } catch (err) {
      this.stream = undefined;
      this.broken = err;
      this.aborting = s.upload.abort();
      // The spool's disk full is the program's ENOSPC, as a local disk's (review: it saw EIO).
      throw new FsError(diskFullOrEio(err), `${this.name}: the streamed bytes could not be brought back for a ${why} (${(err as Error).message})`, { cause: err });
    }
    // Only now: until the spool holds every byte, `size` (getattr) must still come from the stream.
    this.stream = undefined;
  }

  /** Start a stream at the first write of a new (or emptied) file at offset 0. */
  private async maybeStartStream(spool: SpoolFile, position: number): Promise<void> {
    if (this.streamTried || this.localOnly || !this.deps.startStream) return;
    this.streamTried = true;
    if (position !== 0 || spool.size !== 0) return;
    try {
      this.stream = await this.deps.startStream(this.parentId, this.name, {
        save: (data, offset) => spool.write(data, offset),
        load: (offset, length) => spool.read(offset, length),
      }, this.heldTemp);
    } catch (err) {
      this.deps.logger?.debug({ err, name: this.name }, 'no streaming upload; the spool will be uploaded at close');
    }
  }

  write(data: Buffer, position: number): Promise<number> {
    return this.exclusive(async () => {
      if (this.broken) throw this.broken;
      if (this.frozen) throw new FsError('EIO', `${this.name}: ${this.frozen}`);
      // POSIX: writing nothing changes nothing — not the size (even past the end), not the
      // stream, not `dirty`. FUSE never sends one; fs callers (and the model test) can.
      if (data.length === 0) return 0;
      // Written again after its last close while held: its bytes back from S3 first (unpark).
      if (this.stream && this.parked) await this.unpark(this.stream, this.parked, 'write');
      this.givenBytes();
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

  /** A probe-named file given bytes is a data file: published like any other from now on. */
  private givenBytes(): void {
    if (!this.localWhileEmpty) return;
    this.localWhileEmpty = false;
    this.localOnly = false;
  }

  private async writeNow(data: Buffer, position: number): Promise<number> {
    const spool = await this.ensureLoaded();
    await this.maybeStartStream(spool, position);
    if (this.stream && position + data.length > this.stream.upload.capacity) {
      // More than 10,000 parts: go on in the spool, whose publish picks a part size to fit.
      this.deps.logger?.warn({ name: this.name, bytes: this.stream.upload.capacity },
        'file outgrew a streamed upload (10,000 × --part-size); moving it to the spool (one read-back); a larger --part-size avoids this');
      await this.spill('file larger than 10,000 parts');
    }
    if (this.stream) {
      // append() throws for a part that could be neither uploaded nor kept in the spool, and
      // NoWriteMemory when every part buffer is held by other files being written.
      if (position === this.stream.upload.length) await this.appendOrSpill(this.stream.upload, spool, data, position);
      else {
        await this.spill('non-sequential write');
        await spool.write(data, position);
      }
    } else await spool.write(data, position);
    this.dirty = true;
    this.writtenSincePublish = true;
    this.setMtime(Date.now());
    return data.length;
  }

  /**
   * Append to the stream. Without a part buffer to be had (MemoryBudget: a program writing more
   * big files at once than --max-write-memory holds parts for), go on in the spool instead of
   * waiting on buffers only the program itself can free. Likewise when S3 refuses to start the
   * upload (down, throttling past every retry): the bytes so far are all in the first part, so
   * the file goes on in the spool and close() publishes it from there — or journals it for
   * `recover` — instead of failing the write and losing the bytes.
   */
  private async appendOrSpill(upload: StreamingUpload, spool: SpoolFile, data: Buffer, position: number): Promise<void> {
    try {
      await upload.append(data, position);
    } catch (err) {
      if (err instanceof NoWriteMemory) {
        // Before a part was sent this costs nothing; after, one read-back of what was sent.
        const level = upload.partsSent > 0 ? 'warn' : 'debug';
        this.deps.logger?.[level]({ name: this.name, bytes: upload.length },
          'every part buffer is held by other files being written: this one goes on in the spool (a larger --max-write-memory avoids it)');
      } else if (err instanceof UploadNotStarted) {
        this.deps.logger?.warn({ name: this.name, err: err.cause },
          'S3 did not start a streaming upload: the file goes on in the spool and is uploaded at close');
      } else throw err;
      // append() may have taken the head of `data` (upload.length says how much): the spill
      // brought that back, so only the rest is written — the spool's running MD5 stays valid.
      const taken = upload.length - position;
      await this.spill(err instanceof NoWriteMemory ? 'write memory full' : 'upload not started');
      await spool.write(data.subarray(taken), position + taken);
    }
  }

  /**
   * This file's bytes become the next version of another entity (a rename onto a published
   * file). The bytes are loaded first — they are this file's, and a later load would fetch
   * `entityId`'s — and the base is dropped, as it describes another entity's content: without
   * that, a file unchanged since its last publish compared equal to it and was never published,
   * and the target kept its old bytes (found by test/unit/fs-model.test.ts). `target`: what the
   * target's version holds, when known — the same bytes then make no version (QA: `rsync -aI` of
   * an unchanged tree registered a file handle and swapped it into every file's version).
   */
  adopt(entityId: string, version: number | undefined, target?: { size: number; md5: string }): Promise<void> {
    return this.exclusive(async () => {
      await this.ensureLoaded();
      this.entityId = entityId;
      this.overVersion = version;
      this.base = target && version !== undefined ? { size: target.size, md5: target.md5, version } : undefined;
      // These bytes replace the target outright (a rename onto it), whatever it holds now.
      this.builtOn = undefined;
      this.dirty = true;
    });
  }

  /** Read what has been written (loads the published content first if needed). */
  read(position: number, length: number): Promise<Buffer> {
    return this.exclusive(async () => {
      if (this.broken) throw new FsError('EIO', `${this.name}: an earlier write failed; its content is incomplete (${(this.broken as Error).message})`);
      // Opened read-write but not changed yet (SQLite opens its database so, Python's 'r+b'): the
      // version it opened is read through the block cache; the whole file is copied into the
      // spool only at the first change (QA: one SELECT copied a 110 MiB database at every connection).
      if (!this.loaded && !this.stream && !this.seed && this.entityId && this.deps.readBase) {
        const size = this.base?.size ?? 0;
        if (position >= size) return Buffer.alloc(0);
        return this.deps.readBase(this.entityId, this.base?.version, position, Math.min(length, size - position));
      }
      // A parked file's bytes are whole in its object: read there, not brought back (QA: a read
      // before the rename downloaded it into the spool and the rename uploaded it again).
      if (this.stream && this.parked) return this.readParked(this.stream, this.parked, position, length);
      await this.spill('read');
      return (await this.ensureLoaded()).read(position, length);
    });
  }

  /**
   * Bytes of a parked file, from its object a window at a time: a program reading it back before
   * its rename (a checksum) made one GET per read() — 8,192 for a 1 GiB file at 128 KiB each.
   */
  private async readParked(s: StreamTarget, parked: { size: number }, position: number, length: number): Promise<Buffer> {
    const end = Math.min(parked.size, position + length);
    if (end <= position) return Buffer.alloc(0);
    let w = this.parkedWindow;
    if (!w || w.parked !== parked || position < w.start || end > w.start + w.data.length) {
      const upTo = Math.min(parked.size, Math.max(end, position + PARKED_READ_WINDOW));
      w = { parked, start: position, data: await s.upload.readCompleted(position, upTo) };
      this.parkedWindow = w;
    }
    return w.data.subarray(position - w.start, end - w.start);
  }

  /** The last window readParked fetched, of the parked object it came from. */
  private parkedWindow: { parked: object; start: number; data: Buffer } | undefined;

  /**
   * Copy the published bytes this file builds on into its spool now, if not done yet: its entity
   * is about to be deleted (unlink while a writer holds it), and a later truncate, append or read
   * through that fd would have nowhere else to load them from.
   */
  keepBaseLocally(): Promise<void> {
    return this.exclusive(async () => {
      if (!this.stream && !this.loaded) await this.ensureLoaded();
    });
  }

  truncate(size: number): Promise<void> {
    return this.exclusive(async () => {
      if (this.frozen) throw new FsError('EIO', `${this.name}: ${this.frozen}`);
      if (size > 0) this.givenBytes();
      if (this.stream) {
        if (size === 0) this.dropStream('truncate to 0');
        else if (size !== this.stream.upload.length) await this.spill('truncate');
      }
      if (this.stream) {
        // Same size: nothing changes.
      } else if (size === 0) {
        // O_TRUNC: the old content is not needed at all.
        const spool = await this.spool();
        await spool.truncate(0);
        this.loaded = true;
        this.builtOn = undefined;
      } else {
        await (await this.ensureLoaded()).truncate(size);
      }
      this.dirty = true;
      this.setMtime(Date.now());
    });
  }

  /**
   * The mount is stopping while this file is still open for writing: nothing written from now on
   * is taken (EIO), so the journal entry `publish({ holdBack })` writes holds every byte a write
   * was acknowledged for — the writer's later writes fail rather than vanish (QA).
   */
  freeze(why: string): void {
    this.frozen = why;
  }

  private frozen: string | undefined;

  /**
   * Publish the current content if it changed. Returns the new version, or undefined when
   * nothing was published (clean, unchanged bytes, local-only file). With `holdBack`, the bytes
   * go to S3 and get their file handle, but the file is journaled instead of committed — marked
   * incomplete for the reason given (the mount stops while a writer still has it open).
   */
  publish(opts: { holdBack?: string; holdBackLocal?: boolean; staysOpen?: boolean } = {}): Promise<PublishedVersion | undefined> {
    // Frozen while a writer had it open (the mount stopping): whoever publishes it — the drain,
    // or that writer's close racing it — journals it as incomplete; never commits it (QA: a
    // writer that got the freeze's EIO and closed had its half-written file published).
    const holdBack = opts.holdBack ?? this.frozen;
    return this.exclusive(() => this.tracked(async () => {
      if (this.broken) {
        throw new FsError(errnoName(this.broken), `${this.name}: not published, an earlier write failed (${(this.broken as Error).message})`);
      }
      if (!this.dirty || this.localOnly || this.unlinked) return undefined;
      if (this.stream && this.stream.parentId !== this.parentId) await this.followMove(this.stream);
      const stream = this.stream;
      const spool = stream ? undefined : await this.ensureLoaded();
      const md5 = this.parked?.md5 ?? (stream ? await stream.upload.finalMd5() : await spool!.md5());
      const size = this.parked?.size ?? (stream ? stream.upload.length : spool!.size);
      // Made again under the name it was removed from a moment ago (removed-names.ts): with the
      // very bytes it had, the removed file just comes back; other bytes bring it back only once
      // they are uploaded (below), so a failed publish never undoes the removal.
      const revive = this.takeRevive();
      if (revive && revive.md5 === md5 && revive.size === size) {
        const back = await this.deps.publisher.restoreRemoved(revive.entityId, this.parentId, this.name);
        if (back) {
          const version = back.versionNumber ?? 1;
          this.entityId = back.id;
          this.base = { size, md5, version };
          this.overVersion = version;
          this.builtOn = stream ? undefined : version;
          await this.nothingNew(stream);
          return {
            revived: true, entityId: back.id, versionNumber: version, size, md5, fileHandleId: String(back.dataFileHandleId),
            spoolFile: undefined, modifiedOn: Date.parse(back.modifiedOn) || Date.now(),
          };
        }
      }
      // Same bytes as the version they replace — if that version is still the newest: bytes
      // rewritten from empty (cp, `>`) over a file another client changed since must win, as any
      // rewrite does (review: close() said 0 while Synapse kept the other client's bytes).
      const unchanged = !!this.entityId && this.base !== undefined && this.base.md5 === md5 && this.base.size === size
        && (this.builtOn !== undefined || await this.deps.publisher.isNewest(this.entityId, this.base.version));
      if (unchanged) {
        await this.nothingNew(stream);
        return undefined;
      }
      // Write-ahead: the file as it is now, in the journal while it is published, so that a
      // crash (kill -9, OOM) mid-publish leaves it for recover — not an unreferenced spool file
      // (QA). Gone once published; replaced by the real entry if the publish fails.
      // Held back with every byte in the spool (a SQLite database mid-transaction): journaled as it
      // is, not uploaded — its next save usually supersedes it, which left a billed file handle
      // nothing used (QA).
      if (holdBack && opts.holdBackLocal && !stream) {
        this.broken = new FsError('EIO', `${this.name}: ${holdBack}`);
        throw await this.journal(this.broken, size, md5, {}, true, holdBack);
      }
      let ahead = stream ? undefined : await this.writeAhead(spool!, size, md5);
      try {
        let fileHandleId: string;
        try {
          fileHandleId = stream ? await this.completeStream(stream, size, md5, (id) => { ahead = id; }, opts.staysOpen === true)
            : await this.deps.publisher.upload({
              file: spool!.file, size, md5, onProgress: (n) => { this.publishStream = undefined; this.uploadedBytes += n; },
              // The write-ahead entry names the registered object too (its bytes are still in the spool).
              onRegistered: async (fileHandleId, object) => {
                if (ahead) ahead = (await this.writeAhead(spool!, size, md5, { fileHandleId, s3Object: object }, true)) ?? ahead;
              },
            }, this.parentId, this.name);
        } catch (err) {
          if (stream) {
            // completeStream journaled whatever of it can be recovered.
            this.endStream();
            throw err;
          }
          // Emptied since an earlier publish failed: that entry's bytes are not the file any more
          // (review: it stayed, as a write-ahead entry of 0 bytes recover could never publish).
          if (err instanceof EmptyFileNotSupported) await this.dropEntryOnDisk();
          if (err instanceof EmptyFileNotSupported && !this.entityId) {
            this.emptyPlaceholder = true;
            // Info, not a warning: documented (README, Empty files), and git makes one per lock (QA: noise).
            this.deps.logger?.info({ name: this.name, parentId: this.parentId },
              'empty file kept in this mount only: this folder\'s storage cannot hold a 0-byte file; it is published once it has content');
            return undefined;
          }
          if (err instanceof EmptyFileNotSupported) {
            // A published file emptied (truncate to 0, `>` with nothing written): Synapse cannot
            // hold the empty version, so its last version stays. Not a journal entry (it could
            // never be published). The file stays empty and dirty for its open fds — bytes written
            // next are published without any of the old ones; if none come, the last close drops
            // it and the last version is the content again (filesystem.ts lastClosed).
            this.deps.logger?.warn({ name: this.name, parentId: this.parentId, entityId: this.entityId },
              'not emptied: this folder\'s storage cannot hold a 0-byte file; the file keeps its last version');
            throw new EmptyVersionRefused(this.name, err);
          }
          throw await this.journal(err, size, md5, {});
        }
        if (holdBack) {
          if (stream) this.endStream();
          this.broken = new FsError('EIO', `${this.name}: ${holdBack}`);
          throw await this.journal(this.broken, size, md5, { fileHandleId }, !stream, holdBack);
        }
        // The removed file of this name back out of the trash can: these bytes are its next version.
        const revived = revive && !this.entityId && (await this.deps.publisher.restoreRemoved(revive.entityId, this.parentId, this.name)) !== undefined;
        if (revived) this.entityId = revive.entityId;
        let entity;
        try {
          entity = await this.deps.publisher.commit(this.parentId, this.name, fileHandleId, this.entityId,
            this.entityId ? (revived ? undefined : this.builtOn) : this.createdBuiltOn(), () => !this.unlinked);
        } catch (err) {
          if (revived) {
            // Not its next version after all: back to the trash can, as the user left it.
            this.entityId = undefined;
            await this.deps.publisher.removeAgain(revive.entityId);
          }
          if (stream) {
            // Its bytes are only the registered file handle, which the journal names.
            this.endStream();
            this.broken = err;
          }
          // A streamed file's bytes are only in that file handle: its spool has none to show.
          throw await this.journal(err, size, md5, { fileHandleId }, !stream);
        }
        this.entityId = entity.id;
        this.base = { size, md5, version: entity.versionNumber };
        this.overVersion = entity.versionNumber;
        this.fromKept = false;
        // What the spool holds now is that version: later writes build on it.
        this.builtOn = stream ? undefined : entity.versionNumber;
        if (stream) {
          // A streamed file's bytes are now only in Synapse: a later write loads them from there.
          this.endStream();
          this.loaded = false;
        }
        this.dirty = false;
        this.writtenSincePublish = false;
        this.publishEpoch++;
        this.emptyPlaceholder = false;
        this.unjournaledBytes = undefined;
        // A publish that failed earlier (at close) left a journal entry: these bytes are now in
        // Synapse, so it must not linger as "waiting for recover".
        await this.dropEntryOnDisk();
        return {
          ...(revived ? { revived: true } : {}),
          entityId: entity.id, versionNumber: entity.versionNumber ?? 1, size, md5, fileHandleId, spoolFile: spool?.file,
          modifiedOn: Date.parse(entity.modifiedOn) || Date.now(),
        };
      } finally {
        if (ahead && !this.journaled) await this.deps.spool.removeJournal(ahead).catch(() => undefined);
      }
    }));
  }

  /**
   * These bytes are a version Synapse has already (the one they replace, or a removed file
   * brought back): nothing to upload; a streamed file's upload is dropped — that version is the
   * content again, and later writes load it from Synapse.
   */
  private async nothingNew(stream: StreamTarget | undefined): Promise<void> {
    if (stream) {
      this.dropStream('unchanged');
      this.loaded = false;
    }
    this.dirty = false;
    this.writtenSincePublish = false;
    this.publishEpoch++;
    // An O_SYNC fd's entry (journalSynced) named bytes Synapse has: nothing left to recover.
    await this.dropEntryOnDisk();
  }

  /**
   * What this file's name held until this mount removed it a moment ago (`revive`,
   * removed-names.ts), if the file still has that name and no entity of its own; taken once.
   */
  private takeRevive(): RemovedFile | undefined {
    const r = this.revive;
    this.revive = undefined;
    return r && !this.entityId && r.parentId === this.parentId && r.name === this.name ? r : undefined;
  }

  /** The file this new file's name held until this mount removed it a moment ago (removed-names.ts). */
  revive: RemovedFile | undefined;

  /**
   * Created O_EXCL (`open(…, 'x')`, h5py 'w-') as `folderId/name`: the program asked for a file no
   * one else has. Should another user's file of that name appear in Synapse before the publish
   * (this mount's listing had not seen it), these bytes are not made that file's next version: the
   * publish fails with EEXIST and keeps them for recover (QA session 32). Not once renamed.
   */
  exclusiveAs: string | undefined;

  /** The builtOn for a publish that creates this file (Publisher.commit): NO_VERSION when exclusive. */
  private createdBuiltOn(): number | undefined {
    return this.exclusiveAs === `${this.parentId}/${this.name}` ? NO_VERSION : undefined;
  }

  /** A tool's temporary file (names.ts isHeldTempName): its publish waits for the rename after its last close. */
  heldTemp = false;
  /** Held until renamed or removed, however long (a git lock: git holds `index.lock` through a commit's editor); published at unmount. */
  heldUntilRenamed = false;
  /** Renames of this file under way (filesystem.ts rename): a held temporary file's timer waits for them. */
  renaming = 0;
  /** Renames onto this file under way (filesystem.ts renameSettled): its publishes wait for them to end. */
  readonly replacing = new Set<Promise<void>>();

  /**
   * An fsync through an O_SYNC or O_DSYNC descriptor (filesystem.ts fsync: the kernel's, after
   * each write): the spool file and an entry reach the disk before it answers, as such a write
   * promises — not a version per write(). The entry says the file is still open here (heldOpen:
   * recover leaves it to this process) and may be incomplete: after a crash recover calls it a
   * conflict, `--force` publishing it. The file's last close publishes as usual, its write-ahead
   * entry (the same id) taking this one's place. False when it cannot (a streamed file, one
   * journaled after a failed publish): the caller publishes instead.
   */
  journalSynced(): Promise<boolean> {
    return this.exclusive(async () => {
      if (!this.dirty || this.unlinked || this.localOnly) return true; // nothing to make durable
      // Streamed (another fd began it before this one), or journaled after a failed publish: the
      // caller publishes, as every fsync did before — durable, a version each (review).
      if (this.broken || this.journaled || this.stream) return false;
      const spool = await this.ensureLoaded();
      await this.writeAheadEntry(spool, spool.size, await spool.md5(), undefined, true, true, {
        error: 'written through an O_SYNC descriptor, not published yet: the mount stopped with the file still open',
        incomplete: SYNCED_OPEN, heldOpen: publishingNow(),
      });
      this.entryOnDisk = true;
      return true;
    });
  }

  /**
   * An O_SYNC descriptor's entry (journalSynced) stands for this file's bytes now: an entry on
   * disk that no failed publish wrote (journal() sets both; every remover clears both).
   */
  private get synced(): boolean {
    return this.entryOnDisk && !this.journaled;
  }

  /** The file moved (a rename while open): its O_SYNC entry names where it is now, and what it replaces. */
  async followSyncedEntry(): Promise<void> {
    if (this.synced) await this.journalSynced();
  }

  /** Spooled from its first write: an O_SYNC descriptor's bytes must be on this disk at each write (journalSynced). */
  noStream(): void {
    this.streamTried = true;
  }

  /** The write-ahead entry of a held temporary file (journalHeld), while it waits for its rename. */
  private heldAhead: string | undefined;

  /**
   * A held temporary file's last close (filesystem.ts lastClosed): close() said 0 before the bytes
   * are in Synapse, so they are in the journal meanwhile (as a publish's write-ahead entry: seen by
   * recover only once this process is gone). Its publish replaces the entry; unlink drops it.
   * A streamed one is parked once no writer has it (`park`): its upload completed on S3 now, the
   * entry naming the object. Called again (a rename while a reader has it open), the entry is
   * written afresh: the file's name and folder now.
   */
  journalHeld(opts: { park: boolean; durable?: boolean }): Promise<void> {
    return this.exclusive(async () => {
      // A failed publish's entry (a park that failed) is what recover needs: never overwritten
      // with what the spool holds of a streamed file (review: a partial file, its upload let go).
      // Removed: nothing to keep (review: Python's TemporaryFile — mkstemp, unlink, write — had its
      // bytes journaled at a FLUSH, and a crash then let recover publish the removed file).
      if (!this.dirty || this.broken || this.journaled || this.unlinked) return;
      if (this.stream && this.parked) {
        this.heldAhead = await this.writeHeldEntry(await this.spool(), this.parked.size, this.parked.md5, { s3Object: this.stream.object }, opts.durable);
        return;
      }
      if (this.stream) {
        if (opts.park) await this.park(this.stream);
        return;
      }
      if (!this.spoolFile) return;
      // At an fsync, durably: the spool file's bytes and the entry reach the disk before it
      // answers, as fsync(2) promises (review: a power cut lost what fsync had said was safe).
      this.heldAhead = await this.writeHeldEntry(this.spoolFile, this.spoolFile.size, await this.spoolFile.md5(), undefined, opts.durable);
    });
  }

  /**
   * A held temporary file's streamed bytes, completed on S3 at its last close (park) and
   * registered only when it is published — under the name it has then: rsync's rename. Before,
   * a streamed temporary file (every new file in an STS folder) was published under its temp
   * name at its close and renamed after: two more requests per file, an entity other clients
   * could see, and a file handle named `.x.csv.Ab12Cd` — the name Synapse's clients download it
   * as (QA audit F6). Changed again before that, its bytes come back into the spool (unpark);
   * removed, its object is deleted (dropStream).
   */
  private parked: { size: number; md5: string } | undefined;

  private async park(s: StreamTarget): Promise<void> {
    const md5 = await s.upload.finalMd5();
    const size = s.upload.length;
    try {
      await this.finishUpload(s, size, md5, { keptWhole: 'spool' });
    } catch (err) {
      // Journaled as a publish failing there would have been (finishUpload).
      this.stream = undefined;
      // Under one part, its PutObject failed: the bytes are whole in the spool, a spooled held
      // file now — its rename publishes it from there (review: it waited for a recover that the
      // live mount's mark kept away).
      if (err instanceof KeptWhole) {
        this.heldAhead = await this.writeHeldEntry(await this.spool(), size, md5);
        return;
      }
      throw err;
    }
    this.parked = { size, md5 };
    // The upload record stays until the object is registered (or deleted): with this entry naming
    // the object, no orphan sweep takes it, and recover registers it if the mount dies first.
    this.heldAhead = await this.writeHeldEntry(await this.spool(), size, md5, { s3Object: s.object });
  }

  /**
   * A parked file changes again (a write, a truncate, a move out of its location): its bytes back
   * into the spool. If that fails, the file is broken here, journaled by its object — never
   * published with the change missing (review: a later write at a higher offset published a
   * hole; a failed move deleted the object with the file).
   */
  private async unpark(s: StreamTarget, parked: { size: number; md5: string }, why: string): Promise<void> {
    const spool = await this.spool();
    try {
      await s.upload.readBack((data, offset) => spool.write(data, offset), parked.size);
    } catch (err) {
      throw await this.journalParked(new FsError(diskFullOrEio(err),
        `${this.name}: its bytes could not be brought back from S3 for a ${why} (${(err as Error).message}); they are still there, journaled`, { cause: err }));
    }
    this.deps.logger?.debug({ name: this.name, why, bytes: parked.size }, 'a held temporary file\'s bytes came back from S3 into the spool');
    this.stream = undefined;
    this.parked = undefined;
    this.parkedWindow = undefined;
    // The entry named the object; the spool has every byte now. Only once it says so does the object go.
    if (this.heldAhead) {
      const entry = await this.writeAhead(spool, parked.size, parked.md5);
      if (!entry) return; // the old entry still names the object: both stay
      this.heldAhead = entry;
    }
    await s.discard?.().catch((err: unknown) => this.deps.logger?.warn({ err, name: this.name }, 'could not delete the S3 object of a temporary file read back into the spool; the next mount\'s orphan sweep tries again'));
  }

  /**
   * The stream wrote into its old folder's storage location. Moved within it (a subfolder —
   * a tool's staging folder — or one sharing its STS location), it is registered there
   * as it is; moved out, its bytes go via the spool (a parked file's read back from S3: if that
   * fails, they stay there, journaled).
   */
  private async followMove(s: StreamTarget): Promise<void> {
    if (!(await this.sameLocation(s))) await this.spill('move to another folder');
  }

  /**
   * Renamed into another folder (filesystem.ts rename): a stream into the same STS location goes
   * there now — its upload record too, which names the folder an orphan sweep would ask STS
   * credentials through. One moved out is left to its publish (followMove: via the spool).
   */
  streamFollows(): Promise<void> {
    return this.exclusive(async () => {
      if (this.stream && this.stream.parentId !== this.parentId) await this.sameLocation(this.stream);
    });
  }

  /** Whether `s` may go on in the file's folder now (the same STS location); if so it does. */
  private async sameLocation(s: StreamTarget): Promise<boolean> {
    const location = await this.deps.publisher.stsLocationOf(this.parentId).catch(() => undefined);
    if (location !== s.object.storageLocationId) return false;
    s.parentId = this.parentId;
    await s.moved?.(this.parentId).catch((err: unknown) =>
      this.deps.logger?.warn({ err, name: this.name }, 'could not move an upload\'s record to its new folder; an orphan sweep may not reach its object'));
    return true;
  }

  /** A parked file that cannot be published now: journaled by its object, the file broken here. */
  private async journalParked(err: unknown): Promise<unknown> {
    const s = this.stream!;
    const p = this.parked!;
    this.endStream();
    this.broken ??= err;
    this.heldAhead = undefined; // the failure's entry (same id) replaces it
    const reported = await this.journal(err, p.size, p.md5, { s3Object: s.object });
    // Named by the entry now: the upload record goes (recover would remove it anyway).
    await s.referenced?.().catch(() => undefined);
    return reported;
  }

  /** The stream is over (published, or journaled by whatever failed). */
  private endStream(): void {
    this.stream = undefined;
    this.parked = undefined;
    this.parkedWindow = undefined;
  }

  /** The held entry goes (the file became a scratch file, or was removed) — after a park under way. */
  dropHeldEntry(): Promise<void> {
    return this.exclusive(() => this.dropHeldEntryNow());
  }

  private async dropHeldEntryNow(): Promise<void> {
    const id = this.heldAhead;
    this.heldAhead = undefined;
    if (id && !this.journaled) await this.deps.spool.removeJournal(id).catch(() => undefined);
  }

  /**
   * Complete the stream and register its object; on failure, journal what can be recovered and
   * throw the error for close(). Unless its bytes went whole into the spool (KeptWhole), the
   * file is then broken for this mount: they are only on S3, or nowhere.
   */
  private async completeStream(s: StreamTarget, size: number, md5: string, onAhead: (id: string | undefined) => void, staysOpen: boolean): Promise<string> {
    // A parked file's upload completed at its last close: only its registration is left.
    if (!this.parked) await this.finishUpload(s, size, md5);
    let fileHandleId: string;
    try {
      fileHandleId = await s.register(size, md5, this.name);
    } catch (err) {
      // Still being written (an fsync, or a close with other fds open): its bytes back into the
      // spool, so later writes and the close go on as for any spooled file whose publish failed
      // (QA: every later write and the close failed EIO). If that fails, journaled by its object.
      if (staysOpen && !this.parked && (await this.readBackFailed(s, size))) {
        const reported = await this.journal(err, size, md5, {});
        // Only once an entry names the spool file (or it is kept) does the object go.
        await s.discard?.().catch((derr: unknown) => this.deps.logger?.warn({ err: derr, name: this.name }, 'could not delete the S3 object of a file read back into the spool; the next mount\'s orphan sweep tries again'));
        throw reported;
      }
      this.broken = err;
      const reported = await this.journal(err, size, md5, { s3Object: s.object });
      // Named by the journal — or, if that could not be written, in S3 only: never the sweep's.
      // A record that stays is harmless while the entry names its object (recover removes it).
      await s.referenced?.().catch(() => undefined);
      throw reported;
    }
    // Named by a write-ahead entry before its upload record goes (writeAhead).
    onAhead(await this.writeAhead(await this.spool(), size, md5, { fileHandleId, s3Object: s.object }));
    try {
      await s.referenced?.();
    } catch (err) {
      // Left in place, the record would let a later sweep delete the object of the published
      // file (review). The journal entry names the object, which keeps sweeps away, and recover
      // removes the record before it publishes.
      this.broken = err;
      throw await this.journal(err, size, md5, { fileHandleId, s3Object: s.object });
    }
    return fileHandleId;
  }

  /**
   * A completed stream whose registration failed, while the file is still written: its object
   * read back into the spool (which then holds the file: `loaded`) and the stream ended; the
   * journal entry written next names the spool file. False if it could not be read back.
   */
  private async readBackFailed(s: StreamTarget, size: number): Promise<boolean> {
    try {
      const spool = await this.spool();
      await s.upload.readBack((data, offset) => spool.write(data, offset), size);
    } catch (err) {
      this.deps.logger?.warn({ err, name: this.name }, 'could not read a streamed file back into the spool after its registration failed; journaled by its S3 object');
      return false;
    }
    this.endStream();
    this.loaded = true;
    return true;
  }

  /**
   * Send the stream's last part and complete its upload on S3; on failure, journal what can be
   * recovered and throw the error for close(). Unless its bytes went whole into the spool
   * (KeptWhole), the file is then broken for this mount: they are only on S3, or nowhere.
   */
  private async finishUpload(s: StreamTarget, size: number, md5: string, opts: { keptWhole: 'journal' | 'spool' } = { keptWhole: 'journal' }): Promise<void> {
    try {
      await s.upload.complete(Buffer.from(md5, 'hex').toString('base64'));
    } catch (err) {
      // A file under one part: an ordinary spooled file whose publish failed (or, parking, a
      // spooled file still held: the caller's).
      if (err instanceof KeptWhole) throw opts.keptWhole === 'spool' ? err : await this.journal(err, size, md5, {});
      this.broken = err;
      if (err instanceof PartsMissing) {
        // The journal owns the open upload now (the orphan sweep leaves journaled uploads alone).
        const reported = await this.journal(err, size, md5, {
          s3Upload: { ...s.object, uploadId: err.uploadId, parts: err.parts, missing: err.missing },
        });
        throw new FsError('EIO', `${this.name}: not published (${err.message}); kept for \`synapse-mount recover\``, { cause: reported });
      }
      this.deps.logger?.error({ err, name: this.name }, 'streaming upload failed; nothing was published');
      throw new FsError('EIO', `${this.name}: upload failed, nothing was published (${(err as Error).message})`, { cause: err });
    }
  }

  /** Record a failed publish for `recover`; returns the error to give to close(). */
  private async journal(err: unknown, size: number, md5: string,
    where: Pick<JournalEntry, 'fileHandleId' | 's3Object' | 's3Upload'>, inSpool = !where.s3Object && !where.s3Upload,
    incomplete?: string): Promise<unknown> {
    const spool = await this.spool();
    try {
      this.journaled = true; // a failure's entry takes the place of an O_SYNC one (same id)
      // `inSpool`: the spool has every byte (not a stream's, which holds at most refused parts).
      this.journaledAs = {
        spoolFile: spool.file, journalId: spool.id, size, md5, whole: inSpool,
        ...(this.entityId && this.overVersion !== undefined ? { baseVersion: this.overVersion } : {}),
        ...(incomplete ? { incomplete } : {}),
      };
      const file = await this.deps.spool.writeJournal({
        id: spool.id, spoolFile: spool.file, parentId: this.parentId, name: this.name,
        ...(this.entityId ? { entityId: this.entityId } : {}),
        ...(this.entityId && this.overVersion !== undefined ? { baseVersion: this.overVersion } : {}),
        ...(where.fileHandleId ? { fileHandleId: where.fileHandleId } : {}),
        ...(where.s3Object ? { s3Object: where.s3Object } : {}),
        ...(where.s3Upload ? { s3Upload: where.s3Upload } : {}),
        size, md5, inSpool, createdAt: new Date().toISOString(), mtime: this.mtime, error: (err as Error).message ?? String(err),
        ...(incomplete ? { incomplete } : {}),
        // Ours until the last close (dispose): other fds may still write this spool file.
        heldOpen: publishingNow(),
      });
      this.entryOnDisk = true;
      this.deps.logger?.error({ err, journal: file, name: this.name }, 'publish failed; bytes kept for `synapse-mount recover`');
      // Its folder (or the file) deleted elsewhere meanwhile: Synapse's 404 made close() answer
      // ENOENT, which says nothing a program can act on (QA). The file's place is gone: ESTALE.
      if (entityGone(err)) {
        return new FsError('ESTALE', `${this.name}: its folder or the file was deleted in Synapse meanwhile; not published, journaled for \`synapse-mount recover\``, { cause: err });
      }
    } catch (jerr) {
      // No entry, so recover will not find these bytes: say where they are, keep them, and tell
      // the program (QA: close() said EIO, the spool file was removed at the last close, and the
      // README's "run recover" found nothing).
      this.journaled = false;
      this.journaledAs = undefined;
      // An older entry for this spool file describes other bytes than it now holds: not for recover.
      if (this.entryOnDisk) {
        this.entryOnDisk = false;
        await this.deps.spool.removeJournal(spool.id).catch(() => undefined);
      }
      this.unjournaledBytes = inSpool ? spool.file : undefined;
      if (inSpool) await this.deps.spool.markKept(spool.file);
      const where = inSpool ? `its bytes are in ${spool.file}` : 'its bytes are in S3 only (see the log)';
      this.deps.logger?.error({ err: jerr, publishError: err, name: this.name, spoolFile: spool.file },
        'publish failed and the journal entry could not be written: `recover` will not find this file; copy its bytes from the spool file');
      return new FsError(errnoName(jerr), `${this.name}: not published (${(err as Error).message ?? String(err)}) and not journaled (${(jerr as Error).message}); ${where}`, { cause: err });
    }
    return err;
  }

  /** The spool file of a failed publish whose journal entry could not be written: kept, never removed. */
  unjournaledBytes: string | undefined;

  /** Last fd closed: drop the spool unless a failed publish still needs it. */
  async dispose(keepForRecovery: boolean): Promise<void> {
    await this.busy;
    this.deps.baseDone?.();
    // (A scratch file's — one in a mount-local folder — goes with the mount: its object below.)
    if (this.parked && !this.unlinked && !this.localOnly) {
      // Let go while parked, not removed and not published (a failed publish that left it so):
      // its bytes are on S3 only — journaled for recover, never deleted (review: the object went
      // with the file, and the rename said 0).
      await this.journalParked(new FsError('EIO', `${this.name}: let go before it was published`));
      keepForRecovery = true;
    }
    await this.dropHeldEntry();
    this.dropStream('closed');
    await this.aborting;
    if (!this.spoolFile) return;
    if (this.synced && !keepForRecovery) {
      // Never published: O_SYNC writes acknowledged, then a write failed (broken) — the entry
      // (incomplete) and its bytes stay for recover (review: they were deleted). Removed or
      // replaced by a rename: the entry goes with the file.
      if (this.broken && !this.unlinked) keepForRecovery = true;
      else await this.dropEntryOnDisk();
    }
    if (keepForRecovery && this.entryOnDisk) {
      // No fd writes it any more: recover may publish it now. If this fails the mark lapses
      // with this process.
      await this.deps.spool.releaseHeld(this.spoolFile.id).catch((err: unknown) =>
        this.deps.logger?.warn({ err, name: this.name }, 'could not mark the journal entry closed; `recover` takes it once this mount stops'));
    }
    if (keepForRecovery || this.unjournaledBytes) await this.spoolFile.close();
    else await this.spoolFile.remove();
  }
}
