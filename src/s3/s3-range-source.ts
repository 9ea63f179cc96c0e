/**
 * RangeSource over an ObjectStore (S3 with credentials). The object version is pinned at open
 * by the store's `readVersion` (a GET of the first byte on the lean path, aws-object-store.ts),
 * or its `head` where it has none: the ETag goes into the cache key and is sent as If-Match on
 * every GET, so an object replaced under an open file fails the read (PreconditionFailed → EIO) instead of mixing
 * versions, and a later open (new ETag) never meets blocks cached from the old object.
 *
 * A small file's open may ask for its whole body with the version (`firstBytes`): one request
 * instead of the version check and then the read's GET — on S3 a round trip (tens of ms) saved
 * per small file. The bytes are the pinned version's by construction (same answer as the ETag).
 * They are held until the first read that wants them, which takes them (the block cache keeps
 * them from then on), so an open file holds at most `firstBytes` outside the cache, and only
 * until it is first read.
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
    /** The object's first bytes, from the open's own GET, until a read takes them. */
    private held: Buffer | undefined,
  ) {
    this.cacheKey = `${idKey}:${etag}`;
  }

  /**
   * Stat the object and pin its current version. `idKey` names the bytes (a file handle id).
   * `firstBytes` > 0: fetch the object's first that many bytes with the version, where the store
   * can (the size Synapse recorded, for a small file).
   */
  static async open(idKey: string, store: ObjectStore, loc: S3Location, firstBytes = 0): Promise<S3RangeSource> {
    if (!store.readVersion) {
      const head = await store.head(loc);
      return new S3RangeSource(idKey, head.size, head.etag, store, loc, undefined);
    }
    const first = firstBytes > 0 ? Buffer.allocUnsafeSlow(firstBytes) : undefined;
    const v = await store.readVersion(loc, first);
    const held = first && v.firstBytes ? first.subarray(0, Math.min(v.firstBytes, v.size)) : undefined;
    return new S3RangeSource(idKey, v.size, v.etag, store, loc, held);
  }

  /** Whether the open's bytes are still waiting for their first read (tests, status). */
  get holdsFirstBytes(): boolean {
    return this.held !== undefined;
  }

  async read(start: number, end: number, signal?: AbortSignal, alloc?: Alloc): Promise<Buffer> {
    const stop = Math.min(end, this.size);
    if (stop <= start) return Buffer.alloc(0);
    const held = this.takeHeld(start, stop, alloc);
    if (held) return held;
    const res = await this.store.getRange(this.loc, start, stop, {
      ...(this.etag ? { ifMatch: this.etag } : {}),
      ...(signal ? { signal } : {}),
      ...(alloc ? { alloc } : {}),
    });
    return res.data;
  }

  /** [start, stop) from the open's bytes, once; into `alloc`'s buffer when given (the cache's pool). */
  private takeHeld(start: number, stop: number, alloc: Alloc | undefined): Buffer | undefined {
    const held = this.held;
    if (!held) return undefined;
    this.held = undefined; // served now, or never (the object outgrew the size asked for)
    if (stop > held.length) return undefined;
    if (alloc) {
      const out = alloc(stop - start);
      if (out.length === stop - start) {
        held.copy(out, 0, start, stop);
        return out;
      }
    }
    return held.subarray(start, stop);
  }
}
