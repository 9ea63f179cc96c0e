/**
 * Ranged S3 GETs whose bodies the kernel writes straight into the caller's block buffer.
 *
 * Why not the SDK here: Node's HTTP client allocates a fresh ArrayBuffer for every socket read
 * (64 KiB) and the body is then copied into the block buffer; at 1 GiB that is 16,384
 * allocations, one copy of every byte, and a major GC per ~64 MB of chunks. A net/tls socket
 * with `onread` reads into memory we choose: the status line and headers land in a small
 * scratch buffer, and once they are parsed the next reads go into the target block itself.
 * Measured against s3rver on the bench machine (1 GiB, 8 MiB ranges × 16): 0.4 CPU-s per GiB
 * instead of 1.0–1.4 through the SDK (bench/README.md, "Where the time goes").
 *
 * Scope, kept small on purpose: only the success path of GetObject with a Range, two ways in:
 *  - getInto: signed with the SDK's own SigV4 signer (@smithy/signature-v4), with the SDK's
 *    credentials and STS session tokens (aws-object-store.ts); a RequestTimeTooSkewed answer
 *    sets a clock offset from S3's Date header and the request is signed again, as the SDK does;
 *  - getUrlInto: a presigned URL, sent as given (presigned-store.ts, Synapse-managed storage).
 * Answers are judged as follows:
 *  - 206 with the asked Content-Range and Content-Length (or 200 for a whole small object):
 *    the bytes, read into the target.
 *  - an S3 error document (<Error><Code>…): S3Error with that code and status, exactly what the
 *    SDK path produces (ExpiredToken refreshes credentials, 5xx and SlowDown are retried, 412 is
 *    PreconditionFailed) — the caller's retry loop is the same for both paths.
 *  - a redirect naming the bucket's region (x-amz-bucket-region): the region is learnt for that
 *    bucket and the request signed again, as the SDK's followRegionRedirects does.
 *  - any other redirect: `DirectGetUnsupported` for this request only; the SDK or fetch follows it.
 *  - an error answer that is not S3's (no <Code>): `DirectGetUnsupported` for this request only.
 *  - a success answer it cannot read (chunked, no length, no Content-Range): `DirectGetUnsupported`;
 *    the caller repeats the request through the SDK (or fetch) and stops using this reader.
 *  - a 206 with other bytes than asked for: InvalidRange (never used, never retried).
 *  - a socket that dies before its answer: retried once on a fresh connection when it was a
 *    reused keep-alive socket (the server may have closed it as we wrote); otherwise the error
 *    goes to the caller's body-retry loop as ECONNRESET / ERR_STREAM_PREMATURE_CLOSE.
 * Connections through a proxy are not handled here (aws-object-store uses the SDK for them).
 *
 * This module signs and routes (and learns regions and S3's clock); the connections, the
 * parsing of answers and the memory-safety rules are range-wire.ts's.
 */
import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { S3Error, type ObjectVersion, type S3Location } from './object-store.js';
import { ClockSkew, DirectGetUnsupported, hostHeader, RangeWire, RegionRedirect, type Route, type WireAnswer } from './range-wire.js';
import { lowWaterSetter, type SetLowWater } from './receive-low-water.js';
import { s3CaCertificates } from '../net/proxy.js';

export { DirectGetUnsupported } from './range-wire.js';

/** Unless SYNAPSE_MOUNT_S3_GET=sdk: then every GET goes through the SDK / Node's fetch. */
export function directGetsWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env['SYNAPSE_MOUNT_S3_GET'] ?? '').toLowerCase() !== 'sdk';
}

type Credentials = ConstructorParameters<typeof SignatureV4>[0]['credentials'];

export interface DirectRangeGetOptions {
  /** e.g. http://127.0.0.1:9000 (path-style); undefined = AWS S3 (virtual-hosted where possible). */
  endpoint?: string;
  /** Signing region for getInto (us-east-1 if unset; a redirect teaches the bucket's own). */
  region?: string;
  /** For getInto (signed requests); getUrlInto needs none. */
  credentials?: Credentials;
  /** Trust anchors; unless given, AWS_CA_BUNDLE's (src/net/proxy.ts), else Node's defaults. */
  ca?: string[];
  /** SO_RCVLOWAT for bodies (receive-low-water.ts): the patched addon's unless given; null: none. */
  setLowWater?: SetLowWater | null;
}

/** SHA-256 of the empty body: GetObject has none, so no hashing per request. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** Regions whose S3 hosts are s3.<region>.amazonaws.com (not China, GovCloud or ISO). */
const AWS_PARTITION_REGION = /^(?!cn-|us-gov-|us-iso)[a-z]{2}-[a-z]+-\d+$/;
export const isAwsPartitionRegion = (region: string): boolean => AWS_PARTITION_REGION.test(region);
const DNS_BUCKET = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;

/** node:crypto behind the hash interface the signer expects (an HMAC when given a secret). */
type SourceData = string | ArrayBuffer | ArrayBufferView;
const asBytes = (d: SourceData): string | Uint8Array =>
  typeof d === 'string' ? d : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

class NodeSha256 {
  private readonly hash: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', asBytes(secret));
  }
  update(data: SourceData): void {
    this.hash.update(asBytes(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.hash.digest()));
  }
  reset(): void {
    throw new Error('NodeSha256.reset is not used by the signer');
  }
}

/** RFC 3986 encoding of one key segment, as S3 canonicalises it (the SDK's extendedEncodeURIComponent). */
function encodeKeyPath(key: string): string {
  return key.split('/').map((seg) => encodeURIComponent(seg).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)).join('/');
}

export class DirectRangeGetter {
  private readonly wire: RangeWire;
  private readonly signers = new Map<string, SignatureV4>();
  private readonly bucketRegion = new Map<string, string>();
  private readonly endpoint: URL | undefined;
  /** S3's clock minus ours, learnt from a RequestTimeTooSkewed answer (the SDK's systemClockOffset). */
  private clockOffsetMs = 0;
  /**
   * False for good once a server answered in a way this reader cannot read (a permanent
   * DirectGetUnsupported): callers then use the SDK or fetch. Requests in flight finish.
   */
  usable = true;
  /** False once a first-byte stat got an answer it could not use; HeadObject pins versions then. */
  statUsable = true;

  constructor(private readonly opts: DirectRangeGetOptions) {
    this.endpoint = opts.endpoint ? new URL(opts.endpoint) : undefined;
    // AWS_CA_BUNDLE is trusted for S3 however a GET is signed (STS credentials or a presigned URL).
    this.wire = new RangeWire(opts.ca ?? s3CaCertificates(), opts.setLowWater === undefined ? lowWaterSetter() : opts.setLowWater ?? undefined);
  }

  private signer(region: string, credentials: Credentials): SignatureV4 {
    let s = this.signers.get(region);
    if (!s) {
      s = new SignatureV4({ credentials, region, service: 's3', sha256: NodeSha256, uriEscapePath: false, applyChecksum: false });
      this.signers.set(region, s);
    }
    return s;
  }

  /** Where a bucket's object lives: host, port, TLS, and the request path. */
  private route(loc: S3Location, region: string): Route {
    const key = encodeKeyPath(loc.key);
    if (this.endpoint) {
      const secure = this.endpoint.protocol === 'https:';
      const base = this.endpoint.pathname.replace(/\/$/, '');
      return { host: this.endpoint.hostname.replace(/^\[|\]$/g, ''), port: Number(this.endpoint.port) || (secure ? 443 : 80), secure, path: `${base}/${encodeURIComponent(loc.bucket)}/${key}` };
    }
    // AWS: virtual-hosted style for DNS-safe names without dots (TLS wildcards cover one label), as the SDK.
    if (DNS_BUCKET.test(loc.bucket)) return { host: `${loc.bucket}.s3.${region}.amazonaws.com`, port: 443, secure: true, path: `/${key}` };
    return { host: `s3.${region}.amazonaws.com`, port: 443, secure: true, path: `/${encodeURIComponent(loc.bucket)}/${key}` };
  }

  /**
   * Read bytes [start, end) of the object into `into[0, end - start)`. Resolves with the object's
   * ETag (quotes stripped) and whole size when S3 sent them.
   */
  getInto(loc: S3Location, start: number, end: number, into: Buffer, opts: { ifMatch?: string; signal?: AbortSignal } = {}): Promise<WireAnswer> {
    return this.noting(this.signedGet(loc, start, end, into, opts));
  }

  /**
   * The object's size and ETag, as HeadObject gives them, from a GET of its first byte: the same
   * signed request as every read, so pinning a version at open costs one small answer on a
   * pooled connection, not the SDK's first-use set-up and its own connection (≈ 25 ms of CPU on
   * a fresh mount's first open; bench/README.md, "Session 12"). An empty object has no first
   * byte (S3 answers 416 InvalidRange); the caller asks HeadObject then.
   *
   * With `into`, the GET asks for the first `into.length` bytes and leaves them there
   * (`firstBytes`): a small file's whole body comes with its version, in one request.
   */
  async stat(loc: S3Location, opts: { signal?: AbortSignal; into?: Buffer } = {}): Promise<ObjectVersion> {
    const into = opts.into && opts.into.length > 0 ? opts.into : Buffer.allocUnsafeSlow(1);
    let answer: WireAnswer;
    try {
      // Not through noting(): a server that answers this one range oddly (the whole object for
      // `bytes=0-0`, as s3rver does) must not turn the reader off for every read.
      answer = await this.signedGet(loc, 0, into.length, into, opts.signal ? { signal: opts.signal } : {});
    } catch (err) {
      if (err instanceof DirectGetUnsupported && !err.requestOnly) {
        this.statUsable = false;
        throw new DirectGetUnsupported(err.message, true);
      }
      throw err;
    }
    if (answer.size === undefined || !answer.etag) {
      this.statUsable = false; // it will not say next time either: HeadObject from now on
      throw new DirectGetUnsupported('no size or ETag in the answer to a first-byte GET', true);
    }
    return { size: answer.size, etag: answer.etag, ...(into === opts.into ? { firstBytes: into.length } : {}) };
  }

  /** Turn the reader off when `request` fails with a permanent DirectGetUnsupported. */
  private noting<T>(request: Promise<T>): Promise<T> {
    return request.catch((err: unknown) => {
      if (err instanceof DirectGetUnsupported && !err.requestOnly) this.usable = false;
      throw err;
    });
  }

  private async signedGet(loc: S3Location, start: number, end: number, into: Buffer, opts: { ifMatch?: string; signal?: AbortSignal }): Promise<WireAnswer> {
    let redirected = false;
    let skewed = false;
    for (;;) {
      const region = this.bucketRegion.get(loc.bucket) ?? this.opts.region ?? 'us-east-1';
      try {
        return await this.getOnce(loc, region, start, end, into, opts);
      } catch (err) {
        if (err instanceof RegionRedirect) {
          // Learn the bucket's region once, as the SDK's followRegionRedirects does; outside
          // the aws partition (amazonaws.com.cn, GovCloud, ISO) hosts differ: leave it to the SDK.
          if (redirected || err.region === region || (!this.endpoint && !AWS_PARTITION_REGION.test(err.region))) {
            throw new DirectGetUnsupported(err.message, this.endpoint !== undefined || AWS_PARTITION_REGION.test(err.region));
          }
          this.bucketRegion.set(loc.bucket, err.region);
          redirected = true;
          continue;
        }
        if (err instanceof ClockSkew) {
          // As the SDK does: take S3's clock from its Date header and sign again, once.
          const serverNow = err.date ? Date.parse(err.date) : NaN;
          if (skewed || !Number.isFinite(serverNow)) throw new S3Error('RequestTimeTooSkewed', 'S3 GetObject: RequestTimeTooSkewed (403)', 403);
          this.clockOffsetMs = serverNow - Date.now();
          skewed = true;
          continue;
        }
        throw err;
      }
    }
  }

  private async getOnce(loc: S3Location, region: string, start: number, end: number, into: Buffer, opts: { ifMatch?: string; signal?: AbortSignal }): Promise<WireAnswer> {
    const credentials = this.opts.credentials;
    if (!credentials) throw new Error('DirectRangeGetter: getInto needs credentials (getUrlInto does not)');
    const route = this.route(loc, region);
    const signed = await this.signer(region, credentials).sign({
      method: 'GET', protocol: route.secure ? 'https:' : 'http:', hostname: route.host, port: route.port, path: route.path, query: {},
      headers: {
        host: hostHeader(route),
        range: `bytes=${start}-${end - 1}`,
        'x-amz-content-sha256': EMPTY_SHA256,
        ...(opts.ifMatch ? { 'if-match': `"${opts.ifMatch}"` } : {}),
      },
    }, { signingDate: new Date(Date.now() + this.clockOffsetMs) });
    return this.wire.get(route, signed.headers, start, end, into, opts.signal);
  }

  /**
   * The same for a presigned (or otherwise self-authorising) URL: only Host and Range are sent.
   * The URL is never parsed beyond its origin and path (it may be any signed URL).
   */
  getUrlInto(url: string, start: number, end: number, into: Buffer, opts: { signal?: AbortSignal } = {}): Promise<WireAnswer> {
    const u = new URL(url);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') return Promise.reject(new DirectGetUnsupported(`${u.protocol} URL`, true));
    const secure = u.protocol === 'https:';
    const route = { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) || (secure ? 443 : 80), secure, path: `${u.pathname}${u.search}` };
    return this.noting(this.wire.get(route, { host: hostHeader(route), range: `bytes=${start}-${end - 1}` }, start, end, into, opts.signal)).catch((err: unknown) => {
      // A presigned URL is bound to its region: a region redirect is for fetch to follow. A
      // skewed clock is the URL's signer's: a 403, which renews the URL.
      if (err instanceof RegionRedirect) throw new DirectGetUnsupported(err.message, true);
      if (err instanceof ClockSkew) throw new S3Error('RequestTimeTooSkewed', 'presigned GET: RequestTimeTooSkewed (403)', 403);
      throw err;
    });
  }

  destroy(): void {
    this.wire.destroy();
  }
}
