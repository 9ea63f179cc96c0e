/**
 * RangeSource over an ObjectStore (S3 with credentials). The object version is pinned at open
 * by the store's `readVersion` (a GET of the first byte on the lean path, aws-object-store.ts),
 * or its `head` where it has none: the ETag goes into the cache key and is sent as If-Match on
 * every GET, so an object replaced under an open file fails the read (PreconditionFailed → EIO) instead of mixing
 * versions, and a later open (new ETag) never meets blocks cached from the old object.
 *
 * A small file's open may ask for its whole body with the version (`wholeBytes`): one request
 * instead of the version check and then the read's GET — on S3 a round trip (tens of ms) saved
 * per small file. The body is the pinned version's by construction (the same answer carries the
 * ETag); `takeWhole()` hands it over once, for the block cache (file-sources.ts).
 */
import type { Alloc, ObjectStore, RangeSource, S3Location } from './object-store.js';
import { allocDroppable } from '../fs/buffer-pool.js';

export class S3RangeSource implements RangeSource {
  readonly cacheKey: string;

  private constructor(
    idKey: string,
    readonly size: number,
    private readonly etag: string,
    private readonly store: ObjectStore,
    private readonly loc: S3Location,
    /** The whole object, when the open's GET brought it, until takeWhole(). */
    private whole: Buffer | undefined,
  ) {
    this.cacheKey = `${idKey}:${etag}`;
  }

  /**
   * Stat the object and pin its current version. `idKey` names the bytes (a file handle id).
   * `wholeBytes` > 0: the size Synapse recorded for a small file — fetch it whole with the
   * version, where the store can. Kept only when the object is exactly that size.
   */
  static async open(idKey: string, store: ObjectStore, loc: S3Location, wholeBytes = 0): Promise<S3RangeSource> {
    if (!store.readVersion) {
      const head = await store.head(loc);
      return new S3RangeSource(idKey, head.size, head.etag, store, loc, undefined);
    }
    // Droppable: it becomes block 0 in the cache (block-cache.ts offer), which gives it back when it leaves.
    const first = wholeBytes > 0 ? allocDroppable(wholeBytes) : undefined;
    const v = await store.readVersion(loc, first);
    const whole = first && v.firstBytes === first.length && v.size === first.length ? first : undefined;
    return new S3RangeSource(idKey, v.size, v.etag, store, loc, whole);
  }

  /** The whole object if the open fetched it; once (the caller keeps it from then on). */
  takeWhole(): Buffer | undefined {
    const whole = this.whole;
    this.whole = undefined;
    return whole;
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
