/**
 * Streaming S3 multipart upload for append-only writers (DESIGN §5, after lib-storage's Upload
 * and gcsfuse's buffered writes): bytes are appended in order, a part is sent as soon as it
 * fills, and at most `partsInFlight` parts per upload are in the air. Memory is bounded twice:
 * per upload (filling part + parts in flight) and globally by a shared `MemoryBudget`, so a
 * writer that outruns S3 waits in `append()` instead of growing the process.
 *
 * The multipart upload is created lazily when the first part is full; a file that never fills
 * one part is sent with a single PutObject at `complete()`. Any failure aborts the upload on S3
 * (`abort()`), so no orphan parts stay billable; `onStarted`/`onFinished` let the caller journal
 * the upload id so an upload orphaned by a crash can be aborted later, and `onCompleting` lets it
 * record that S3 may now hold an object nothing refers to yet (a crash before the caller
 * registers it would otherwise leave a billed object no sweep can find).
 *
 * The upload also keeps the MD5 of everything appended (Synapse's file handles carry the whole
 * file's MD5), so a streamed file needs no second pass over its bytes; the hashing runs on a
 * worker thread, reading the part buffers in place (offthread-hash.ts), and a part buffer goes
 * back to the pool only after the worker has read it. `spill()` hands every
 * byte appended so far to a sink in order — from the filling buffer if no part was sent yet,
 * else by completing the upload, reading the object back and deleting it — for a writer that
 * stops being append-only (write-handle.ts keeps streamed bytes nowhere else).
 *
 * Appended bytes are copied at once into a part-sized buffer (`partBuffers`, a pool shared by
 * the mount's uploads), so callers may reuse theirs — the FUSE adapter hands over libfuse's own
 * buffer — and a long write reuses the same few part buffers instead of writing fresh memory for
 * every part (the main cost of a write on VMs, bench/README.md).
 */
import { randomUUID } from 'node:crypto';
import type { CompletedPart, ObjectStore, S3Location } from './object-store.js';
import { OffThreadMd5 } from './offthread-hash.js';

/**
 * The id `onStarted`/`onFinished` get for a file sent with one PutObject: no
 * multipart upload exists, but its object needs the same record until it is referenced.
 */
export const SINGLE_PUT_PREFIX = 'put:';

/**
 * End a multipart upload nothing will refer to: abort it, and if S3 no longer knows it although
 * its completion was sent (`completionSent`: completed, the answer lost), delete its object.
 * True when nothing of it is left on S3 (its record may go); false when the abort or the delete
 * failed (the record stays, for the orphan sweep).
 */
export async function endUnreferencedUpload(store: ObjectStore, loc: S3Location, uploadId: string, completionSent: boolean): Promise<boolean> {
  return store.abortMultipartUpload(loc, uploadId).then(() => true, async (err: unknown) => {
    if ((err as { code?: string }).code !== 'NoSuchUpload') return false;
    if (!completionSent) return true;
    return store.deleteObject(loc).then(() => true, () => false);
  });
}

/** Read-back chunk of spill(): one ranged GET each. */
const SPILL_CHUNK = 8 * 1024 * 1024;
/** Appended bytes are handed to the hash worker in batches this large (or at a part's end). */
const HASH_BATCH = 1024 * 1024;

/** Where part buffers come from (BufferPool of part-sized buffers; a fresh one per part if absent). */
export interface PartBuffers {
  readonly size: number;
  acquire(): Buffer;
  release(buf: Buffer): void;
}

/**
 * A counting semaphore over the bytes of part buffers, shared by every upload of a mount.
 *
 * Two kinds of bytes are held: buffers being filled, which come back only when their writer goes
 * on (or closes), and parts being sent, which come back on their own (S3 answers or the part is
 * kept). Waiting on the first kind can deadlock: a program writing many files in turn — a
 * demultiplexer with one output per sample — blocks in its write to one file while the budget
 * sits in the half-filled parts of its other files. So `acquire()` waits only when the parts in
 * flight, once back, cover it and everyone already waiting; otherwise it answers false at once
 * and the caller goes on without memory (write-handle.ts moves the file to the spool). Publishes
 * from the spool count their part buffers here too (sending at once: takeSending).
 *
 * INVARIANT: filling + promised-to-waiters ≤ limit, so every admitted waiter is served once the
 * parts in flight come back (a request larger than the whole limit is let through alone).
 */
export class MemoryBudget {
  private used = 0;
  /** Of `used`: parts on their way to S3. */
  private sending = 0;
  private readonly waiters: Array<{ bytes: number; resolve: () => void }> = [];
  private promised = 0;

  constructor(readonly limit: number) {}

  get inUse(): number {
    return this.used;
  }

  /** Take `bytes` for a buffer to fill: true once taken; false (at once) if waiting could deadlock. */
  async acquire(bytes: number): Promise<boolean> {
    if (this.waiters.length === 0 && (this.used + bytes <= this.limit || this.used === 0)) {
      this.used += bytes;
      return true;
    }
    const filling = this.used - this.sending;
    if (filling + this.promised + bytes > this.limit && !(filling === 0 && this.promised === 0)) return false;
    this.promised += bytes;
    await new Promise<void>((resolve) => this.waiters.push({ bytes, resolve }));
    return true;
  }

  /**
   * Take `bytes` for a part read and sent at once (Publisher.sendParts), even over the limit: a
   * publish must make progress while writers hold the budget. Such bytes come back on their own.
   */
  takeSending(bytes: number): void {
    this.used += bytes;
    this.sending += bytes;
  }

  /** takeSending if there is room now (within the limit, nobody waiting); false otherwise. */
  tryTakeSending(bytes: number): boolean {
    if (this.waiters.length > 0 || this.used + bytes > this.limit) return false;
    this.takeSending(bytes);
    return true;
  }

  /** A filled buffer of `bytes` is being sent: it will come back without its writer's help. */
  markSending(bytes: number): void {
    this.sending += bytes;
  }

  /** Give back `bytes`; `sent` if they were marked sending. */
  release(bytes: number, sent = false): void {
    this.used -= bytes;
    if (sent) this.sending -= bytes;
    while (this.waiters.length > 0) {
      const next = this.waiters[0]!;
      if (this.used + next.bytes > this.limit && this.used !== 0) break;
      this.waiters.shift();
      this.promised -= next.bytes;
      this.used += next.bytes;
      next.resolve();
    }
  }
}

/** No part buffer could be had without risking a deadlock (MemoryBudget): the caller must go on without streaming. */
export class NoWriteMemory extends Error {
  override readonly name = 'NoWriteMemory';
}

export class OutOfOrderWrite extends Error {
  override readonly name = 'OutOfOrderWrite';
}

/** A part S3 refused for good, kept by the caller (`keepFailedParts`) at its file offset. */
export interface MissingPart {
  partNumber: number;
  offset: number;
  length: number;
}

/** Where parts that S3 refused for good are kept, so they can be sent again (the spool file). */
export interface FailedPartStore {
  save(data: Buffer, offset: number): Promise<void>;
  load(offset: number, length: number): Promise<Buffer>;
}

/**
 * complete() could not send every part, even again from where they were kept: the multipart
 * upload is left open (not aborted) with what it holds, for a journal to finish later.
 */
export class PartsMissing extends Error {
  override readonly name = 'PartsMissing';
  constructor(readonly uploadId: string, readonly parts: CompletedPart[], readonly missing: MissingPart[], cause: unknown) {
    super(`${missing.length > 0 ? `${missing.length} part(s) could not be uploaded` : 'the upload could not be completed'}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

/**
 * S3 refused to start the multipart upload (CreateMultipartUpload) when the first part filled.
 * Nothing was sent: every byte appended is still in the filling part, so the caller can spill()
 * and go on without streaming — a write must not fail because S3 is down (write-handle.ts).
 */
export class UploadNotStarted extends Error {
  override readonly name = 'UploadNotStarted';
  constructor(cause: unknown) {
    super(`S3 did not start the upload: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

/** A file smaller than one part whose PutObject failed: its bytes were kept whole (offset 0). */
export class KeptWhole extends Error {
  override readonly name = 'KeptWhole';
  constructor(cause: unknown) {
    super(`the upload failed; the bytes were kept: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

export interface StreamingUploadOptions {
  partSize: number;
  partsInFlight: number;
  maxParts?: number;
  contentType?: string;
  partBuffers?: PartBuffers;
  /** A multipart upload started — or a single PutObject is about to (id SINGLE_PUT_PREFIX…). */
  onStarted?: (uploadId: string) => Promise<void> | void;
  onFinished?: (uploadId: string) => Promise<void> | void;
  /**
   * CompleteMultipartUpload is about to be sent: from now S3 may hold the object, and nothing
   * refers to it yet. Given, the record is the caller's to end once the object is referenced
   * (registered, journaled): `onFinished` follows only an upload that ends without an object
   * (aborted, or spill() deleted its read-back object). A single PutObject is then recorded
   * too (`onStarted` with a SINGLE_PUT_PREFIX id, before the PUT). Best effort: a throw is
   * ignored (the completion goes on; a crash would then leave the object unnamed, as before).
   */
  onCompleting?: (uploadId: string) => Promise<void> | void;
  /**
   * Keep a part that fails for good (after the store's retries) here and send it again at
   * complete(); complete() then throws PartsMissing rather than losing it. Without this, such a
   * part fails the upload.
   */
  keepFailedParts?: FailedPartStore;
  /** A part was refused for good and kept (for the log). */
  onPartKept?: (partNumber: number, err: unknown) => void;
}

export class StreamingUpload {
  private uploadId: string | undefined;
  private readonly parts: CompletedPart[] = [];
  /** The part being filled (holds `fillingBytes`), with budget taken for it. */
  private filling: Buffer | undefined;
  private fillingBytes = 0;
  private nextPart = 1;
  private readonly inflight = new Set<Promise<void>>();
  private failure: unknown;
  private finished = false;
  /** Completed on S3, or aborted: nothing more to do (abort() is then a no-op). */
  private settledOnS3 = false;
  /** CompleteMultipartUpload was sent: S3 may have completed it even if the answer was lost. */
  private completionSent = false;
  /** Parts refused for good and kept by `keepFailedParts`, to send again at complete(). */
  private readonly missing: MissingPart[] = [];
  /** Kept-part writes in progress (keepFailedPartsSettled waits for them). */
  private readonly saving = new Set<Promise<void>>();
  /** Bytes accepted so far (= the next append's required offset). */
  length = 0;
  /** Bytes S3 has acknowledged (parts uploaded, or the single PutObject) — for `status`. */
  uploaded = 0;
  private readonly hash = new OffThreadMd5();
  /** Bytes of `filling` already handed to the hash. */
  private hashedInFilling = 0;

  constructor(
    private readonly store: ObjectStore,
    readonly loc: S3Location,
    private readonly budget: MemoryBudget,
    private readonly opts: StreamingUploadOptions,
  ) {
    this.buffers = opts.partBuffers?.size === opts.partSize ? opts.partBuffers : {
      size: opts.partSize, acquire: () => Buffer.allocUnsafe(opts.partSize), release: () => undefined,
    };
  }

  private readonly buffers: PartBuffers;

  /** Give back the filling part's buffer and budget. */
  private async dropFilling(): Promise<void> {
    if (!this.filling) return;
    const buf = this.filling;
    this.filling = undefined;
    this.fillingBytes = 0;
    this.hashedInFilling = 0;
    this.budget.release(this.opts.partSize);
    // The hash worker may still be reading it.
    await this.hash.settled().catch(() => undefined);
    this.buffers.release(buf);
  }

  get failed(): unknown {
    return this.failure;
  }

  /** No more appends; `settled` = the upload is also over on S3 (completed or aborted). */
  private end(settled: boolean): void {
    this.finished = true;
    if (settled) this.settledOnS3 = true;
    this.hash.dispose();
  }

  private sortedParts(): CompletedPart[] {
    return [...this.parts].sort((a, b) => a.partNumber - b.partNumber);
  }

  /** Parts handed to S3 so far (sent, in flight, or kept to send again). */
  get partsSent(): number {
    return this.nextPart - 1;
  }

  /** The most bytes this upload can take (S3 allows 10,000 parts). */
  get capacity(): number {
    return (this.opts.maxParts ?? 10_000) * this.opts.partSize;
  }

  /** Hand the filling part's unhashed bytes to the hash worker. */
  private flushHash(): void {
    if (!this.filling || this.fillingBytes <= this.hashedInFilling) return;
    this.hash.update(this.filling.subarray(this.hashedInFilling, this.fillingBytes));
    this.hashedInFilling = this.fillingBytes;
  }

  /** MD5 (hex) of every byte appended; call once, when appending is over. */
  finalMd5(): Promise<string> {
    this.flushHash();
    return this.hash.digest();
  }

  /**
   * Append bytes at `position`; throws OutOfOrderWrite unless position === length.
   *
   * NoWriteMemory may come after part of `data` was taken: `length` says how much. An upload
   * that sends a part takes the buffer for its next one at once (waiting, if need be, for parts
   * in flight), so its need is always counted — as filling, or as promised to it — when a file
   * opened later asks: the newcomer gets memory only if everyone already streaming keeps theirs,
   * and otherwise goes without a stream, which costs it nothing yet (an established stream that
   * lost its buffer would have to read back all it sent).
   */
  async append(data: Buffer, position: number): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.finished) throw new OutOfOrderWrite('upload already completed');
    if (position !== this.length) throw new OutOfOrderWrite(`write at ${position}, expected ${this.length}`);
    let off = 0;
    while (off < data.length) {
      if (!this.filling && !(await this.takeBuffer())) {
        throw new NoWriteMemory(`no part buffer free within --max-write-memory (${this.budget.limit} bytes), held by other files being written`);
      }
      const filling = this.filling!;
      const take = Math.min(data.length - off, this.opts.partSize - this.fillingBytes);
      data.copy(filling, this.fillingBytes, off, off + take);
      this.fillingBytes += take;
      off += take;
      this.length += take;
      if (this.fillingBytes - this.hashedInFilling >= HASH_BATCH) this.flushHash();
      if (this.fillingBytes === this.opts.partSize) {
        await this.sendFilling();
        // Hold the next part's buffer now (see above); without one, the next append decides.
        if (!this.failure) await this.takeBuffer();
      }
    }
  }

  /** A buffer for the filling part, if the budget gives one. */
  private async takeBuffer(): Promise<boolean> {
    if (!(await this.budget.acquire(this.opts.partSize))) return false;
    this.filling = this.buffers.acquire();
    return true;
  }

  private async sendFilling(): Promise<void> {
    const partNumber = this.nextPart;
    if (partNumber > (this.opts.maxParts ?? 10_000)) throw new OutOfOrderWrite('too many parts for streaming');
    if (!this.uploadId) {
      try {
        this.uploadId = await this.store.createMultipartUpload(this.loc, this.opts.contentType ? { contentType: this.opts.contentType } : {});
      } catch (err) {
        // The filling part is still ours (it leaves `filling` only below): nothing is lost.
        throw new UploadNotStarted(err);
      }
      await this.opts.onStarted?.(this.uploadId);
    }
    while (this.inflight.size >= this.opts.partsInFlight) await Promise.race(this.inflight);
    if (this.failure) throw this.failure;
    // The part leaves `filling` only now: until then a failure above leaves it for dropFilling().
    this.flushHash();
    const buf = this.filling!;
    const body = buf.subarray(0, this.fillingBytes);
    this.filling = undefined;
    this.fillingBytes = 0;
    this.hashedInFilling = 0;
    this.nextPart++;
    this.budget.markSending(this.opts.partSize);
    const uploadId = this.uploadId;
    const p = (async () => {
      try {
        await this.sendPart(uploadId, partNumber, body);
      } catch (err) {
        this.failure ??= err;
      } finally {
        // Not reused before the hash worker has read it.
        await this.hash.settled().catch(() => undefined);
        this.buffers.release(buf);
        this.budget.release(this.opts.partSize, true);
      }
    })();
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /**
   * Upload one part; if S3 refuses it for good, keep it (keepFailedParts) to send again later.
   * Throws only when it can be neither uploaded nor kept.
   */
  private async sendPart(uploadId: string, partNumber: number, body: Buffer): Promise<void> {
    try {
      // No per-part Content-MD5: the SigV4 payload hash already makes S3 check every byte, and
      // MD5 of each part was a third of the CPU of a write (bench/README.md).
      const etag = await this.store.uploadPart(this.loc, uploadId, partNumber, body);
      this.parts.push({ partNumber, etag });
      this.uploaded += body.length;
    } catch (err) {
      const keep = this.opts.keepFailedParts;
      // After abort() nothing is kept: the caller may be reusing its store (truncate to 0).
      if (!keep || this.settledOnS3) throw err;
      const offset = (partNumber - 1) * this.opts.partSize;
      const saved = keep.save(body, offset);
      this.saving.add(saved);
      try {
        await saved;
      } finally {
        this.saving.delete(saved);
      }
      this.missing.push({ partNumber, offset, length: body.length });
      this.opts.onPartKept?.(partNumber, err);
    }
  }

  /** Send the kept parts again; throws PartsMissing (upload left open) if any still fails. */
  private async resendMissing(uploadId: string): Promise<void> {
    const keep = this.opts.keepFailedParts;
    if (!keep || this.missing.length === 0) return;
    // One at a time, and no further after a part is refused again: each try carries the full
    // retry budget (~16 s), so an S3 still down would otherwise hold close() for parts × 16 s
    // before the upload is journaled — and `recover` sends whatever is left anyway.
    this.missing.sort((a, b) => a.partNumber - b.partNumber);
    while (this.missing.length > 0) {
      const m = this.missing[0]!;
      try {
        const data = await keep.load(m.offset, m.length);
        if (data.length !== m.length) throw new Error(`kept part ${m.partNumber} has ${data.length} bytes, not ${m.length}`);
        this.parts.push({ partNumber: m.partNumber, etag: await this.store.uploadPart(this.loc, uploadId, m.partNumber, data) });
      } catch (err) {
        throw new PartsMissing(uploadId, this.sortedParts(), [...this.missing], err);
      }
      this.uploaded += m.length;
      this.missing.shift();
    }
  }

  /**
   * Resolves once no kept part is being written and none will be (call after abort() began,
   * which stops new ones): the FailedPartStore is the caller's again.
   */
  async keptPartsSettled(): Promise<void> {
    await Promise.allSettled([...this.saving]);
  }

  /** Send what is left and complete; returns the object's location. */
  async complete(contentMd5Base64: string): Promise<S3Location> {
    try {
      if (this.failure) throw this.failure;
      if (!this.uploadId) {
        // Never filled a part: one PutObject, recorded like a multipart upload (`onCompleting`).
        const body = this.filling ? this.filling.subarray(0, this.fillingBytes) : Buffer.alloc(0);
        const putId = this.opts.onCompleting ? `${SINGLE_PUT_PREFIX}${randomUUID()}` : undefined;
        // Best effort: a record that cannot be written must not fail a small file's close.
        if (putId) await Promise.resolve().then(() => this.opts.onStarted?.(putId)).catch(() => undefined);
        try {
          await this.store.putObject(this.loc, body, { contentMd5Base64, ...(this.opts.contentType ? { contentType: this.opts.contentType } : {}) });
        } catch (err) {
          // S3 may have stored it and lost the answer: nothing will name that object.
          if (putId) {
            await this.store.deleteObject(this.loc).then(() => this.opts.onFinished?.(putId)).catch(() => undefined);
          }
          const keep = this.opts.keepFailedParts;
          if (!keep || !contentMd5Base64) throw err;
          await keep.save(body, 0);
          throw new KeptWhole(err);
        }
        this.uploaded += body.length;
        await this.dropFilling();
      } else {
        if (this.filling && this.fillingBytes > 0) {
          this.flushHash();
          await this.sendPart(this.uploadId, this.nextPart, this.filling.subarray(0, this.fillingBytes));
          this.nextPart++;
        }
        await this.dropFilling();
        await Promise.all(this.inflight);
        if (this.failure) throw this.failure;
        await this.resendMissing(this.uploadId);
        const uploadId = this.uploadId;
        if (this.opts.onCompleting) await Promise.resolve().then(() => this.opts.onCompleting?.(uploadId)).catch(() => undefined);
        this.completionSent = true;
        try {
          await this.store.completeMultipartUpload(this.loc, this.uploadId, this.parts);
        } catch (err) {
          // Every part is on S3: leave the upload open for a journal rather than lose them.
          if (!this.opts.keepFailedParts) throw err;
          throw new PartsMissing(this.uploadId, this.sortedParts(), [], err);
        }
        if (!this.opts.onCompleting) await this.opts.onFinished?.(this.uploadId);
      }
      this.end(true);
      return this.loc;
    } catch (err) {
      // PartsMissing: left open for the caller's journal; abort() still ends it if asked.
      if (err instanceof PartsMissing) this.end(false);
      else await this.abort();
      throw err;
    } finally {
      await this.dropFilling();
    }
  }

  /**
   * Hand every byte appended so far to `sink` (in order, offsets from 0) and end the upload,
   * leaving nothing on S3. Bytes already sent as parts can only be read back from a completed
   * object, so that object is completed, read back in SPILL_CHUNK ranges and deleted.
   */
  async spill(sink: (data: Buffer, offset: number) => Promise<void>, log?: { warn: (o: object, msg: string) => void }): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.finished) throw new OutOfOrderWrite('upload already completed');
    if (!this.uploadId) {
      try {
        if (this.filling && this.fillingBytes > 0) await sink(this.filling.subarray(0, this.fillingBytes), 0);
      } finally {
        this.end(true);
        await this.dropFilling();
      }
      return;
    }
    const size = this.length;
    const uploadId = this.uploadId;
    await this.complete('');
    // The completed object is only a vehicle for the read-back: it goes whatever happens, and
    // failing to delete it loses nothing (the sink has every byte) — it is logged, and with
    // `onCompleting` its record stays for the next orphan sweep to delete it. Synapse's
    // read_write STS policy grants s3:DeleteObject (StsManagerImpl, Synapse-Repository-Services).
    const remove = (): Promise<void> => this.store.deleteObject(this.loc).then(
      async () => {
        // Nothing of the file depends on the record any more (review: a failure here broke it).
        if (this.opts.onCompleting) {
          await Promise.resolve().then(() => this.opts.onFinished?.(uploadId)).catch((err: unknown) => log?.warn({ err }, 'could not remove the record of a read-back upload'));
        }
      },
      (err: unknown) => {
        log?.warn({ err, bucket: this.loc.bucket, key: this.loc.key }, 'could not delete the temporary object of a read-back; the next mount\'s orphan sweep tries again');
      });
    try {
      await this.copyObject(sink, size);
    } finally {
      await remove();
    }
  }

  /** Bytes [start, end) of the object complete() made (a parked file read before its rename). */
  async readCompleted(start: number, end: number): Promise<Buffer> {
    if (!this.settledOnS3 || this.failure) throw new OutOfOrderWrite('only a completed upload can be read');
    const { data } = await this.store.getRange(this.loc, start, end);
    return data;
  }

  /** The completed object's bytes to `sink`, SPILL_CHUNK at a time. */
  private async copyObject(sink: (data: Buffer, offset: number) => Promise<void>, size: number): Promise<void> {
    for (let off = 0; off < size; off += SPILL_CHUNK) {
      const { data } = await this.store.getRange(this.loc, off, Math.min(size, off + SPILL_CHUNK));
      if (data.length !== Math.min(SPILL_CHUNK, size - off)) throw new OutOfOrderWrite(`read-back of ${this.loc.key} came up short at ${off}`);
      await sink(data, off);
    }
  }

  /**
   * Every byte of the object complete() made, to `sink` (in order, offsets from 0): a completed
   * upload held back from Synapse (write-handle.ts `parked`) whose file changes again. The object
   * stays; the caller deletes it once the bytes are safe elsewhere.
   */
  async readBack(sink: (data: Buffer, offset: number) => Promise<void>, size: number): Promise<void> {
    if (!this.settledOnS3 || this.failure) throw new OutOfOrderWrite('only a completed upload can be read back');
    await this.copyObject(sink, size);
  }

  /** Give up: abort the S3 upload (best effort) and free memory. */
  async abort(): Promise<void> {
    if (this.settledOnS3) return;
    this.end(true);
    this.failure ??= new OutOfOrderWrite('aborted');
    await Promise.allSettled(this.inflight);
    await this.dropFilling();
    if (this.uploadId) {
      const id = this.uploadId;
      // A failed abort keeps the record: S3 still bills the parts, and the orphan sweep retries.
      if (await endUnreferencedUpload(this.store, this.loc, id, this.completionSent)) await this.opts.onFinished?.(id);
    }
  }
}
