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
 * URL lifetimes are dropped.
 */
import type { SynapseApi } from '../synapse/api.js';
import type { FileHandleAssociation } from '../synapse/types.js';
import type { UrlProvider } from '../s3/presigned-store.js';
import { FsError } from './errors.js';

/** Synapse's limit for POST /fileHandle/batch. */
const BATCH_MAX = 100;

interface Entry {
  readonly key: string;
  readonly association: FileHandleAssociation;
  current?: { url: string; at: number };
  /** Set while this entry waits for (or rides in) a batch a reader asked for. */
  waiting?: { promise: Promise<string>; resolve: (url: string) => void; reject: (err: unknown) => void } | undefined;
  lastUsed: number;
}

export class PresignedUrls {
  private readonly entries = new Map<string, Entry>();
  private readonly queued = new Set<Entry>();
  private scheduled = false;

  constructor(
    private readonly api: Pick<SynapseApi, 'batchFileHandles'>,
    private readonly maxAgeMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** The URL source of one file: a fresh URL when forced or older than `maxAgeMs`. */
  provider(file: { entityId: string; fileHandleId: string }): UrlProvider {
    const key = `${file.entityId}:${file.fileHandleId}`;
    return (force) => {
      let e = this.entries.get(key);
      if (!e) {
        e = { key, association: { fileHandleId: file.fileHandleId, associateObjectId: file.entityId, associateObjectType: 'FileEntity' }, lastUsed: 0 };
        this.entries.set(key, e);
      }
      e.lastUsed = this.now();
      if (!force && e.current && this.now() - e.current.at < this.maxAgeMs) return Promise.resolve(e.current.url);
      return this.request(e);
    };
  }

  private request(e: Entry): Promise<string> {
    if (e.waiting) return e.waiting.promise;
    let resolve!: (url: string) => void;
    let reject!: (err: unknown) => void;
    const promise = new Promise<string>((res, rej) => { resolve = res; reject = rej; });
    e.waiting = { promise, resolve, reject };
    this.queued.add(e);
    if (!this.scheduled) {
      this.scheduled = true;
      // Every reader that asks during this turn of the loop rides in the same request.
      setImmediate(() => void this.flush());
    }
    return promise;
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batch: Entry[] = [];
    for (const e of this.queued) {
      if (batch.length === BATCH_MAX) break;
      batch.push(e);
      this.queued.delete(e);
    }
    if (this.queued.size > 0) {
      this.scheduled = true;
      setImmediate(() => void this.flush());
    }
    const t = this.now();
    for (const e of this.entries.values()) {
      if (t - e.lastUsed > 3 * this.maxAgeMs && !e.waiting) {
        this.entries.delete(e.key); // not read for a while: no renewals on its behalf
        continue;
      }
      // Renew, unasked, the URLs past half their life of files read in the last half-life.
      if (batch.length < BATCH_MAX && !e.waiting && e.current && t - e.current.at > this.maxAgeMs / 2 && t - e.lastUsed < this.maxAgeMs / 2) batch.push(e);
    }
    let results: Awaited<ReturnType<SynapseApi['batchFileHandles']>>;
    try {
      results = await this.api.batchFileHandles(batch.map((e) => e.association), { includeFileHandles: false, includePreSignedURLs: true });
    } catch (err) {
      for (const e of batch) this.settle(e, undefined, err);
      return;
    }
    const at = this.now();
    batch.forEach((e, i) => {
      // Synapse answers in request order; a mismatched entry is treated as missing.
      const r = results[i]?.fileHandleId === e.association.fileHandleId ? results[i] : undefined;
      if (r?.preSignedURL) {
        e.current = { url: r.preSignedURL, at };
        this.settle(e, r.preSignedURL);
      } else {
        this.settle(e, undefined, new FsError(r?.failureCode === 'UNAUTHORIZED' ? 'EACCES' : 'EIO',
          `${e.association.associateObjectId}: no download URL (${r?.failureCode ?? 'none returned'})`));
      }
    });
  }

  private settle(e: Entry, url: string | undefined, err?: unknown): void {
    const w = e.waiting;
    e.waiting = undefined;
    if (!w) return; // renewed unasked: a failure waits for the next reader to ask
    if (url !== undefined) w.resolve(url);
    else w.reject(err);
  }
}
