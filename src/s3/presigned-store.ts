/**
 * RangeSource over presigned GET URLs (Synapse-managed storage, or any storage without STS).
 *
 * URLs are opaque: production may hand out CloudFront or other signed URLs, so we never parse
 * them. The UrlProvider renews a URL by age (src/fs/presigned-urls.ts) and when asked after a
 * 403 (expired early, clock skew). Transient failures of the GET (5xx, resets, truncated bodies)
 * are retried with backoff; a provider that fails (Synapse refused the file, or gave up after its
 * own retries) fails the read at once, with its own error (EACCES stays EACCES).
 * Version pinning: the first response's ETag is remembered and a later response with another
 * ETag fails the read (the object was replaced) rather than mixing bytes of two versions.
 * `openPinned` pins it at open — a GET of the first byte, or of a small file whole — and puts it
 * in the cache key, as the STS path does (s3-range-source.ts): for storage whose objects can be
 * replaced in place (an external bucket), blocks cached from the old object are never served
 * with the new one's (QA: `md5sum` exited 0 on old and new blocks interleaved).
 * Transport: DirectRangeGetter (bodies read straight into the block, direct-range-get.ts) when
 * the mount passes one and the URL needs no proxy; Node's fetch otherwise.
 */
import { proxyForUrl, s3FetchDispatcher } from '../net/proxy.js';
import { DirectGetUnsupported, type DirectRangeGetter } from './direct-range-get.js';
import { S3Error, type Alloc, type RangeSource } from './object-store.js';
import { backoff, GetTries, markCutShort, s3ErrorCode, stripQuotes } from './retry.js';
import { s3Stats } from './s3-stats.js';
import { allocDroppable } from '../fs/buffer-pool.js';

export type UrlProvider = (forceRefresh: boolean) => Promise<string>;

const originOf = (url: string): string => {
  try {
    return new URL(url).origin;
  } catch {
    return 'unparsed';
  }
};

/** As for S3 GETs (aws-object-store.ts BODY_ATTEMPTS): 8 tries, capped jittered backoff. */
const ATTEMPTS = 8;

export interface PresignedRangeSourceOptions {
  requestTimeoutMs?: number;
  /**
   * The lean GET path, shared by every presigned source of a mount (one connection pool per
   * origin): used while it is `usable` and the URL needs no proxy; fetch otherwise (the proxy
   * settings reach fetch).
   */
  direct?: DirectRangeGetter;
}

interface Got {
  data: Buffer;
  etag: string | undefined;
  /** The object's whole size, where the answer says (Content-Range). */
  size?: number | undefined;
}

export class PresignedRangeSource implements RangeSource {
  private pinnedEtag: string | undefined;
  private key: string;
  /** The whole object, when openPinned's GET brought it, until takeWhole(). */
  private whole: Buffer | undefined;
  private readonly timeoutMs: number;
  /** Reads waiting for a URL: POST /fileHandle/batch, which the mount's pacing may hold back for up to a minute. */
  private urlWaits = 0;

  heldBack(): boolean {
    return this.urlWaits > 0;
  }

  constructor(
    cacheKey: string,
    /** Synapse's record of the object's size; what S3 holds once openPinned asked it. */
    public size: number,
    private readonly url: UrlProvider,
    private readonly opts: PresignedRangeSourceOptions = {},
  ) {
    this.key = cacheKey;
    this.timeoutMs = opts.requestTimeoutMs ?? 60_000;
  }

  /** The bytes' name in the block cache: the file handle, and the object's ETag once pinned. */
  get cacheKey(): string {
    return this.key;
  }

  /**
   * A source whose object version is pinned now: its first byte (or, `wholeBytes` > 0, the whole
   * small object) fetched, its ETag in the cache key and its size what S3 holds — an object not
   * the size Synapse recorded is read as it is, as on the STS path (filesystem.ts open says so).
   */
  static async openPinned(idKey: string, size: number, url: UrlProvider, opts: PresignedRangeSourceOptions = {}, wholeBytes = 0): Promise<PresignedRangeSource> {
    const source = new PresignedRangeSource(idKey, size, url, opts);
    // A small object asked whole may be shorter than Synapse recorded (replaced in its bucket):
    // S3 then answers other bytes than asked (InvalidRange) — its first byte tells its size. An
    // empty one answers that byte 416: size 0 (review: both failed the open with EIO).
    const firstByte = (): Promise<Got> => source.fetch(0, 1).catch((err: unknown) => {
      if (err instanceof S3Error && err.status === 416) return { data: Buffer.alloc(0), etag: undefined, size: 0 };
      throw err;
    });
    const got = wholeBytes > 0
      ? await source.fetch(0, wholeBytes, undefined, allocDroppable).catch((err: unknown) => (err instanceof S3Error && err.code === 'InvalidRange' ? firstByte() : Promise.reject(err)))
      : await firstByte();
    if (got.etag) source.key = `${idKey}:${got.etag}`;
    if (got.size !== undefined) source.size = got.size;
    if (wholeBytes > 0 && got.size === wholeBytes && got.data.length === wholeBytes) source.whole = got.data;
    return source;
  }

  /** The whole object if openPinned fetched it; once (the caller keeps it from then on). */
  takeWhole(): Buffer | undefined {
    const whole = this.whole;
    this.whole = undefined;
    return whole;
  }

  async read(start: number, end: number, signal?: AbortSignal, alloc?: Alloc): Promise<Buffer> {
    const length = Math.min(end, this.size) - start;
    if (length <= 0) return Buffer.alloc(0);
    return (await this.fetch(start, length, signal, alloc)).data;
  }

  /** [start, start+length) with retries, checked against (or pinning) the object's ETag. */
  private async fetch(start: number, length: number, signal?: AbortSignal, alloc?: Alloc): Promise<Got> {
    let forceRefresh = false;
    let lastErr: unknown;
    let tries: GetTries | undefined;
    for (;;) {
      this.urlWaits++;
      let url: string;
      try {
        url = await this.url(forceRefresh);
      } finally {
        this.urlWaits--;
      }
      forceRefresh = false;
      // Known once the first URL is: the outage memory is per origin (retry.ts OutageMemory).
      tries ??= new GetTries(ATTEMPTS, `url:${originOf(url)}`);
      const timeout = AbortSignal.timeout(this.timeoutMs);
      const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
      try {
        const got = await this.get(url, start, length, combined, alloc);
        tries.answered();
        if (got.etag) {
          if (this.pinnedEtag === undefined) this.pinnedEtag = got.etag;
          else if (this.pinnedEtag !== got.etag) throw new S3Error('PreconditionFailed', 'object changed while open', 412);
        }
        return got;
      } catch (err) {
        if (err instanceof S3Error && (err.status === 403 || err.code === 'ExpiredToken')) {
          // Expired early, clock skew, or signed with a session token that expired (S3 answers
          // that one 400 ExpiredToken): a new URL, at once.
          forceRefresh = true;
          lastErr = new S3Error('AccessDenied', 'presigned URL refused (expired?)', 403, { cause: err });
          if (!tries.another(lastErr)) break;
          continue;
        }
        if (err instanceof S3Error && err.status !== 0 && err.status < 500 && err.status !== 429) throw err;
        if (signal?.aborted) throw err;
        if (timeout.aborted) throw new S3Error('RequestTimeout', `presigned GET: no answer within ${this.timeoutMs} ms`, 0, { cause: err });
        lastErr = err;
        if (!tries.another(err)) break;
        await backoff(tries.step, 1000);
      }
    }
    throw lastErr instanceof S3Error ? lastErr : new S3Error('NetworkError', `presigned GET failed: ${(lastErr as Error)?.message}`, 0, { cause: lastErr });
  }

  /** One GET of [start, start+length): the bytes, or an S3Error carrying the HTTP status, or a network error. */
  private async get(url: string, start: number, length: number, signal: AbortSignal, alloc?: Alloc): Promise<Got> {
    const direct = this.opts.direct;
    if (direct?.usable && proxyForUrl(url) === undefined) {
      const out = alloc ? alloc(length) : Buffer.allocUnsafe(length);
      try {
        const { etag, size } = await direct.getUrlInto(url, start, start + length, out, { signal });
        return { data: out, etag, size };
      } catch (err) {
        // Handed over (a redirect, or an answer it cannot read — then it is off for good): fetch.
        if (!(err instanceof DirectGetUnsupported)) throw err;
      }
    }
    return this.fetchRange(url, start, length, signal, alloc);
  }

  private async fetchRange(url: string, start: number, length: number, signal: AbortSignal, alloc?: Alloc): Promise<Got> {
    s3Stats.request();
    let res: Response;
    try {
      // AWS_CA_BUNDLE applies to S3 however it is reached (src/net/proxy.ts).
      const dispatcher = s3FetchDispatcher();
      res = await fetch(url, { headers: { Range: `bytes=${start}-${start + length - 1}` }, signal, ...(dispatcher ? { dispatcher } : {}) } as RequestInit);
    } catch (err) {
      s3Stats.error();
      throw err;
    }
    if (res.status !== 206 && res.status !== 200) {
      s3Stats.error();
      // S3's error document names the code (ExpiredToken matters: it renews the URL).
      const small = Number(res.headers.get('content-length') ?? '0') <= 64 * 1024;
      const text = small ? await res.text().catch(() => '') : (await res.body?.cancel(), '');
      const code = s3ErrorCode(text) ?? (res.status === 404 ? 'NoSuchKey' : res.status === 403 ? 'AccessDenied' : `HTTP${res.status}`);
      throw new S3Error(code, `presigned GET answered ${res.status} ${code}`, res.status);
    }
    const asked = `bytes ${start}-${start + length - 1}`;
    const range = res.status === 206 ? /^bytes (\d+)-(\d+)\/(\d+|\*)/.exec(res.headers.get('content-range') ?? '') : null;
    if (range && `bytes ${range[1]}-${range[2]}` !== asked) {
      // Other bytes than asked for (a server or cache that got the range wrong): never use them.
      s3Stats.error();
      await res.body?.cancel();
      throw new S3Error('InvalidRange', `presigned GET answered ${range[0]}… for ${asked}`, 206);
    }
    const etag = stripQuotes(res.headers.get('etag'));
    let body: Buffer;
    try {
      // A ranged answer goes straight into the caller's (pooled) buffer: no fresh 8 MiB
      // ArrayBuffer and copy per block. A 200 (Range ignored) is the whole object, cut below.
      body = res.status === 206 ? await readInto(res, length, alloc) : Buffer.from(await res.arrayBuffer());
    } catch (err) {
      s3Stats.error();
      throw err;
    }
    s3Stats.down(body.length);
    const data = res.status === 200 ? body.subarray(start, start + length) : body;
    if (data.length !== length) {
      s3Stats.error();
      const short = Object.assign(new Error(`short body: ${data.length} of ${length}`), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
      markCutShort(short, data.length);
      throw short;
    }
    // The whole size from Content-Range (a 206 without one says nothing: Synapse's record stands).
    const size = res.status === 200 ? body.length : range && range[3] !== '*' ? Number(range[3]) : undefined;
    return { data, etag, size };
  }
}

/** Copy a response body into one buffer (from `alloc` when given) without intermediate copies. */
async function readInto(res: Response, length: number, alloc?: Alloc): Promise<Buffer> {
  const out = alloc ? alloc(length) : Buffer.allocUnsafe(length);
  let offset = 0;
  if (!res.body) return out.subarray(0, 0);
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      if (offset + chunk.length > length) throw new S3Error('InvalidRange', 'presigned GET returned more bytes than asked for', 206);
      out.set(chunk, offset);
      offset += chunk.length;
    }
  } catch (err) {
    if (!(err instanceof S3Error)) markCutShort(err, offset);
    throw err;
  }
  return offset === length ? out : out.subarray(0, offset);
}
