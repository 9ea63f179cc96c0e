/**
 * RangeSource over an ObjectStore (S3 with credentials). The object version is pinned at open
 * by the store's `readVersion` (a GET of the first byte on the lean path, aws-object-store.ts),
 * or its `head` where it has none: the ETag goes into the cache key and is sent as If-Match on
 * every GET, so an object replaced under an open file fails the read (PreconditionFailed → EIO) instead of mixing
 * versions, and a later open (new ETag) never meets blocks cached from the old object.
 */
import type { Alloc, ObjectStore, RangeSource, S3Location } from './object-store.js';

export class S3RangeSource implements RangeSource {
  readonly cacheKey: string;

  private constructor(
    idKey: string,
    readonly size: number,
    private readonly etag: string,
    private readonly store: ObjectStore,
    private readonly loc: S3Location,
  ) {
    this.cacheKey = `${idKey}:${etag}`;
  }

  /** Stat the object and pin its current version. `idKey` names the bytes (a file handle id). */
  static async open(idKey: string, store: ObjectStore, loc: S3Location): Promise<S3RangeSource> {
    const head = await (store.readVersion ? store.readVersion(loc) : store.head(loc));
    return new S3RangeSource(idKey, head.size, head.etag, store, loc);
  }

  async read(start: number, end: number, signal?: AbortSignal, alloc?: Alloc): Promise<Buffer> {
    const stop = Math.min(end, this.size);
    if (stop <= start) return Buffer.alloc(0);
    const res = await this.store.getRange(this.loc, start, stop, {
      ...(this.etag ? { ifMatch: this.etag } : {}),
      ...(signal ? { signal } : {}),
      ...(alloc ? { alloc } : {}),
    });
    return res.data;
  }
}
