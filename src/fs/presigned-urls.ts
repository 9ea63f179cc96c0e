/**
 * Presigned download URLs for files on storage without STS (Synapse-managed, or STS refused),
 * fetched together: POST /fileHandle/batch takes 100 files per request.
 *
 * A URL lives 30 s, so a file being read needs a new one every `maxAgeMs` (20 s). Fetched one
 * file at a time, 50 files read at once cost 150 requests a minute — a quarter of Synapse's
 * 600/min throttle, shared with every other call of the mount and the user's other clients.
 * Here, requests made in the same turn of the event loop go out as one batch, and each batch
 * also renews every other URL past half its life whose file was read in the last half-life, so
 * files read together fall into step and renew together: ~3 requests a minute for up to 100
 * files. A renewal nobody asked for that fails is dropped; the next read asks again.
 *
 * URLs are shared by every open of the same (entity, file handle). Entries not used for a few
 * URL lifetimes are dropped. A renewal Synapse refuses (the file deleted or unshared since it
 * was opened) leaves the URL in hand in use until S3 refuses it; then the read fails with ESTALE
 * for a deleted file, EACCES otherwise.
 */
import type { SynapseApi } from '../synapse/api.js';
import type { FileHandleAssociation } from '../synapse/types.js';
import type { UrlProvider } from '../s3/presigned-store.js';
import { FsError } from './errors.js';

/** Synapse's limit for POST /fileHandle/batch. */
const BATCH_MAX = 100;

interface Waiter {
  promise: Promise<string>;
  resolve: (url: string) => void;
  reject: (err: unknown) => void;
  /** A reader's S3 refused the current URL (forced): it must never get that one back. */
  forced: boolean;
}

interface Entry {
  readonly key: string;
  readonly association: FileHandleAssociation;
  /** The newest URL, stamped with the time its request was sent (its age is never understated). */
  current?: { url: string; at: number };
  /** A reader waits for the next batch that carries this entry. */
  waiting?: Waiter | undefined;
  /** Batches carrying this entry now (an unasked renewal is not sent twice). */
  inFlight: number;
  lastUsed: number;
  /** When Synapse last refused a renewal: the URL in hand is used without asking again for a while. */
  refusedAt?: number;
}

export class PresignedUrls {
  private readonly entries = new Map<string, Entry>();
  private readonly queued = new Set<Entry>();
  private scheduled = false;

  constructor(
    private readonly api: Pick<SynapseApi, 'batchFileHandles'> & Partial<Pick<SynapseApi, 'getEntity'>>,
    private readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Files whose URLs are kept (for tests and status). */
  get size(): number {
    return this.entries.size;
  }

  /** The URL source of one file: a fresh URL when forced or older than `maxAgeMs`. */
  provider(file: { entityId: string; fileHandleId: string }): UrlProvider {
    const key = `${file.entityId}:${file.fileHandleId}`;
    return (force) => {
      let e = this.entries.get(key);
      if (!e) {
        e = { key, association: { fileHandleId: file.fileHandleId, associateObjectId: file.entityId, associateObjectType: 'FileEntity' }, inFlight: 0, lastUsed: 0 };
        this.entries.set(key, e);
      }
      e.lastUsed = this.now();
      const t = this.now();
      if (!force && e.current && (t - e.current.at < this.maxAgeMs || t - (e.refusedAt ?? -Infinity) < this.maxAgeMs)) return Promise.resolve(e.current.url);
      return this.request(e, force);
    };
  }

  private request(e: Entry, force: boolean): Promise<string> {
    if (e.waiting) {
      e.waiting.forced ||= force;
      return e.waiting.promise;
    }
    let resolve!: (url: string) => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<string>((res, rej) => { resolve = res; reject = rej; });
    e.waiting = { promise, resolve, reject, forced: force };
    this.queued.add(e);
    this.schedule();
    return promise;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // Every reader that asks during this turn of the loop rides in the same request.
    setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    // Each slot keeps the waiter it was sent for: an answer settles that waiter only, never one
    // who asked after the request left while the file rode in it as an unasked renewal (that
    // one rides in the next batch). Queued entries always have a waiter.
    const sent: Array<{ e: Entry; w: Waiter | undefined }> = [];
    for (const e of this.queued) {
      if (sent.length === BATCH_MAX) break;
      this.queued.delete(e);
      sent.push({ e, w: e.waiting });
    }
    if (this.queued.size > 0) this.schedule();
    const t = this.now();
    for (const e of this.entries.values()) {
      const busy = e.waiting !== undefined || e.inFlight > 0;
      if (!busy && t - e.lastUsed > 3 * this.maxAgeMs) {
        this.entries.delete(e.key); // not read for a while: no renewals on its behalf
        continue;
      }
      // Renew, unasked, the URLs past half their life of files read in the last half-life.
      if (sent.length < BATCH_MAX && !busy && e.current && t - e.current.at > this.maxAgeMs / 2 && t - e.lastUsed < this.maxAgeMs / 2) {
        sent.push({ e, w: undefined });
      }
    }
    if (sent.length === 0) return;
    for (const s of sent) s.e.inFlight++;
    try {
      const results = await this.api.batchFileHandles(sent.map((s) => s.e.association), { includeFileHandles: false, includePreSignedURLs: true });
      sent.forEach(({ e, w }, i) => {
        // Synapse answers in request order; a mismatched entry is treated as missing.
        const r = results[i]?.fileHandleId === e.association.fileHandleId ? results[i] : undefined;
        if (r?.preSignedURL) {
          if (!e.current || e.current.at <= t) e.current = { url: r.preSignedURL, at: t };
          this.settle(e, w, r.preSignedURL);
        } else if (!w) {
          e.refusedAt = t; // an unasked renewal: the next read asks (or uses the URL in hand a while)
        } else if (!w.forced && e.current && t - e.current.at < 1.5 * this.maxAgeMs) {
          // A renewal refused (the file deleted or unshared since it was opened): the URL in hand
          // may still be good (URLs live 30 s) — S3 says when it is not, and that forced renewal
          // fails the read.
          e.refusedAt = t;
          this.settle(e, w, e.current.url);
        } else {
          // S3 refused the URL in hand, or it is past its life: never handed out again (review).
          delete e.current;
          void this.refusal(e, r?.failureCode).then((err) => this.settle(e, w, undefined, err));
        }
      });
    } catch (err) {
      // The request failed (or its answer could not be used): every reader in it hears of it.
      for (const { e, w } of sent) this.settle(e, w, undefined, err);
    } finally {
      for (const s of sent) s.e.inFlight--;
    }
  }

  /**
   * Why Synapse gave no URL: a file deleted since it was opened is ESTALE, as on NFS — its
   * readers learn the file is gone, not that they lack a permission (QA: EACCES); one whose
   * sharing changed is EACCES.
   */
  private async refusal(e: Entry, failureCode: string | undefined): Promise<FsError> {
    const id = e.association.associateObjectId;
    const message = `${id}: no download URL (${failureCode ?? 'none returned'})`;
    // The version's file handle is gone (a version deleted elsewhere): stale as well.
    if (failureCode === 'NOT_FOUND') return new FsError('ESTALE', `${id}: this version is no longer in Synapse (${message})`);
    if (failureCode !== 'UNAUTHORIZED') return new FsError('EIO', message);
    const gone = this.api.getEntity ? await this.api.getEntity(id).then(() => false, (err: unknown) => (err as { status?: number }).status === 404) : false;
    if (gone) return new FsError('ESTALE', `${id}: deleted in Synapse since it was opened (${message})`);
    return new FsError('EACCES', message);
  }

  /** Answer the waiter a slot was sent for (none: an unasked renewal, whose failure is dropped). */
  private settle(e: Entry, w: Waiter | undefined, url: string | undefined, err?: unknown): void {
    if (!w) return;
    if (e.waiting === w) e.waiting = undefined;
    if (url !== undefined) w.resolve(url);
    else w.reject(err);
  }
}
