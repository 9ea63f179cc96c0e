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
 * Memory safety: while a body is being read, the socket's read buffer *is* the caller's block.
 * A request that ends any other way than complete (abort, timeout, error, surplus bytes)
 * destroys its socket before it settles, so no later read can land in a block that went back
 * to the pool.
 */
import { createHash, createHmac } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { SignatureV4 } from '@smithy/signature-v4';
import { stripQuotes } from './retry.js';
import { s3Stats } from './s3-stats.js';
import { S3Error, type S3Location } from './object-store.js';

/** Unless SYNAPSE_MOUNT_S3_GET=sdk: then every GET goes through the SDK / Node's fetch. */
export function directGetsWanted(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env['SYNAPSE_MOUNT_S3_GET'] ?? '').toLowerCase() !== 'sdk';
}

/**
 * The answer was not one this reader handles; send the request through the SDK (or fetch).
 * `requestOnly`: a redirect, which those follow — this request only, the reader stays in use.
 * Otherwise the server speaks HTTP in a way this reader does not, and callers stop using it.
 */
export class DirectGetUnsupported extends Error {
  override readonly name = 'DirectGetUnsupported';
  constructor(message: string, readonly requestOnly = false) {
    super(message);
  }
}

type Credentials = ConstructorParameters<typeof SignatureV4>[0]['credentials'];

export interface DirectRangeGetOptions {
  /** e.g. http://127.0.0.1:9000 (path-style); undefined = AWS S3 (virtual-hosted where possible). */
  endpoint?: string;
  /** Signing region for getInto (us-east-1 if unset; a redirect teaches the bucket's own). */
  region?: string;
  /** For getInto (signed requests); getUrlInto needs none. */
  credentials?: Credentials;
  /** Extra trust anchors (AWS_CA_BUNDLE); Node's defaults otherwise. */
  ca?: string[];
}

/** SHA-256 of the empty body: GetObject has none, so no hashing per request. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** The largest status line + headers accepted, and the largest error body read. */
const MAX_HEAD_BYTES = 64 * 1024;
/** An idle keep-alive socket is closed after this; below the 5 s of Node servers (and S3's ~20 s). */
const IDLE_MS = 4000;
/** Give up on a connection that is not up after this (the SDK's connectionTimeout here). */
const CONNECT_MS = 10_000;
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

interface Target {
  /** The block being filled; the body goes to buf[0, length). */
  buf: Buffer;
  length: number;
  start: number;
  received: number;
  inBody: boolean;
  /** Parsed head of a non-success answer whose (small) body is being collected. */
  errorHead?: ParsedHead;
  errorBody?: Buffer[];
  errorBytes?: number;
  /** How that body ends: at Content-Length, at the last chunk, or when the server closes. */
  errorFraming?: { kind: 'length'; length: number } | { kind: 'chunked' } | { kind: 'close' };
  head: Buffer[];
  headBytes: number;
  gotAnyByte: boolean;
  settle: (err: Error | undefined, head?: ParsedHead) => void;
}

interface ParsedHead {
  status: number;
  headers: Map<string, string>;
}

function parseHead(text: string): ParsedHead {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
  if (!m) throw new DirectGetUnsupported(`unexpected status line: ${JSON.stringify((lines[0] ?? '').slice(0, 60))}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim());
  }
  return { status: Number(m[1]), headers };
}

/** One keep-alive connection; carries one request at a time. */
class Connection {
  target: Target | undefined;
  /** The head of the answer being read (kept for finish()). */
  private headOf: ParsedHead | undefined;
  /** Close instead of pooling once the current answer is read. */
  private closeAfter = false;
  reused = false;
  private readonly scratch: Buffer;

  readonly socket: net.Socket;

  constructor(host: string, port: number, secure: boolean, ca: string[] | undefined, scratch: Buffer, private readonly onIdle: (c: Connection) => void) {
    this.scratch = scratch;
    const onread = { buffer: () => this.nextBuffer(), callback: (n: number, buf: Uint8Array) => this.onBytes(n, buf) };
    this.socket = secure
      ? tls.connect({ host, port, ...(net.isIP(host) ? {} : { servername: host }), ...(ca ? { ca } : {}), onread } as tls.ConnectionOptions)
      : net.connect({ host, port, onread } as net.NetConnectOpts);
    this.socket.setNoDelay(true);
    const connectTimer = setTimeout(() => this.socket.destroy(new S3Error('RequestTimeout', `S3 GetObject: no connection to ${host}:${port} within ${CONNECT_MS / 1000} s`, 0)), CONNECT_MS);
    this.socket.once(secure ? 'secureConnect' : 'connect', () => clearTimeout(connectTimer));
    this.socket.once('close', () => clearTimeout(connectTimer));
    this.socket.on('error', (err) => this.fail(err));
    this.socket.on('close', () => this.fail(Object.assign(new Error('socket closed before the answer was complete'), { code: 'ERR_STREAM_PREMATURE_CLOSE' })));
    this.socket.on('timeout', () => this.socket.destroy());
  }

  /** Where the next socket read goes: the rest of the body in the block, else the scratch buffer. */
  private nextBuffer(): Uint8Array {
    const t = this.target;
    if (t && t.inBody) return t.buf.subarray(t.received, t.length);
    return this.scratch;
  }

  private onBytes(n: number, buf: Uint8Array): void {
    const t = this.target;
    if (!t) {
      // Bytes nobody asked for (a server speaking out of turn): this socket cannot be trusted.
      this.socket.destroy();
      return;
    }
    t.gotAnyByte = true;
    if (t.inBody) {
      t.received += n;
      s3Stats.down(n);
      if (t.received === t.length) this.finish(undefined);
      return;
    }
    if (t.errorHead) {
      this.collectError(t, Buffer.from(buf.subarray(0, n)));
      return;
    }
    // Still in the head: gather until the blank line, then parse.
    t.head.push(Buffer.from(buf.subarray(0, n)));
    t.headBytes += n;
    const all = t.head.length === 1 ? t.head[0]! : Buffer.concat(t.head);
    const end = all.indexOf('\r\n\r\n');
    if (end < 0) {
      if (t.headBytes > MAX_HEAD_BYTES) this.abort(new DirectGetUnsupported('response head too large'));
      else t.head = [all];
      return;
    }
    let head: ParsedHead;
    try {
      head = parseHead(all.subarray(0, end).toString('latin1'));
    } catch (err) {
      this.abort(err as Error);
      return;
    }
    const rest = all.subarray(end + 4);
    const lengthHeader = head.headers.get('content-length');
    const chunked = /chunked/i.test(head.headers.get('transfer-encoding') ?? '');
    const bodyLength = lengthHeader !== undefined && /^\d+$/.test(lengthHeader) && !chunked ? Number(lengthHeader) : undefined;
    if (head.status >= 300) {
      // An error answer: collect its small body, however it is framed (S3 sends some chunked),
      // then judge it. An error status never turns this reader off (errorFromAnswer).
      t.errorHead = head;
      t.errorBody = [];
      t.errorBytes = 0;
      t.errorFraming = bodyLength !== undefined ? { kind: 'length', length: bodyLength } : chunked ? { kind: 'chunked' } : { kind: 'close' };
      this.collectError(t, rest);
      return;
    }
    if (bodyLength === undefined) {
      this.abort(new DirectGetUnsupported(`answer ${head.status} without a Content-Length`));
      return;
    }
    if (head.status === 206 || head.status === 200) {
      const problem = this.checkRange(t, head, bodyLength);
      if (problem) {
        this.abort(problem);
        return;
      }
      if (rest.length > t.length) {
        this.abort(new S3Error('InvalidRange', 'S3 returned more bytes than requested', head.status));
        return;
      }
      rest.copy(t.buf, 0);
      t.received = rest.length;
      t.inBody = true;
      t.head = [];
      this.headOf = head;
      s3Stats.down(rest.length);
      if (t.received === t.length) this.finish(undefined);
      return;
    }
    this.abort(new DirectGetUnsupported(`answer ${head.status}`));
  }

  /** Is this success answer exactly the bytes asked for? An Error says why not. */
  private checkRange(t: Target, head: ParsedHead, bodyLength: number): Error | undefined {
    const asked = `bytes ${t.start}-${t.start + t.length - 1}`;
    if (head.status === 200) {
      return t.start === 0 && bodyLength === t.length ? undefined : new DirectGetUnsupported(`a 200 answer of ${bodyLength} bytes to ${asked}`);
    }
    const range = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(head.headers.get('content-range') ?? '');
    if (!range) return new DirectGetUnsupported(`a 206 answer without Content-Range for ${asked}`);
    if (Number(range[1]) !== t.start || Number(range[2]) - t.start + 1 !== bodyLength) {
      // Other bytes than asked for (a server or cache that got the range wrong): never use them.
      return new S3Error('InvalidRange', `S3 GetObject: ${range[0]} with ${bodyLength} bytes for ${asked}`, head.status);
    }
    // A consistent answer that ends early: the object is shorter than the caller thinks (the SDK
    // path fails such a read too, as a body that ended early).
    if (bodyLength !== t.length) return new S3Error('InvalidRange', `S3 GetObject: object ends at byte ${range[2]}, ${asked} asked for`, head.status);
    return undefined;
  }

  private collectError(t: Target, chunk: Buffer): void {
    t.errorBody!.push(chunk);
    t.errorBytes! += chunk.length;
    const framing = t.errorFraming!;
    if (t.errorBytes! > MAX_HEAD_BYTES + 1024) {
      this.abort(new DirectGetUnsupported(`answer ${t.errorHead!.status} with a body over ${MAX_HEAD_BYTES} bytes`, true));
      return;
    }
    let body: Buffer | undefined;
    if (framing.kind === 'length') {
      if (t.errorBytes! < framing.length) return;
      if (t.errorBytes! > framing.length) {
        this.abort(new DirectGetUnsupported('error answer longer than its Content-Length', true));
        return;
      }
      body = Buffer.concat(t.errorBody!);
    } else if (framing.kind === 'chunked') {
      body = dechunk(Buffer.concat(t.errorBody!));
      if (!body) return;
      // Trailers or surplus bytes after the last chunk are not worth reading: no reuse.
      this.closeAfter = true;
    } else {
      return; // ends when the server closes (fail() below)
    }
    this.headOf = t.errorHead;
    this.finish(errorFromAnswer(t.errorHead!, body.toString('utf8')));
  }

  /** Settle the current request; the socket goes back to the pool only after a complete answer. */
  private finish(err: Error | undefined): void {
    const t = this.target!;
    const head = this.headOf;
    this.target = undefined;
    this.headOf = undefined;
    const reusable = !this.closeAfter && head?.headers.get('connection')?.toLowerCase() !== 'close';
    this.closeAfter = false;
    if (!reusable) this.socket.destroy();
    else {
      // Idle: closed after IDLE_MS, and it does not keep the process alive (as http.Agent does).
      this.socket.setTimeout(IDLE_MS);
      this.socket.unref();
      this.onIdle(this);
    }
    t.settle(err, head);
  }

  /** End the current request with an error; the socket dies first (its read buffer may be the block). */
  abort(err: Error): void {
    const t = this.target;
    this.target = undefined;
    this.headOf = undefined;
    this.socket.destroy();
    t?.settle(err);
  }

  private fail(err: Error): void {
    const t = this.target;
    if (t?.errorHead && t.errorFraming?.kind === 'close' && this.socket.destroyed) {
      // An error body that ends with the connection: it has ended.
      this.headOf = t.errorHead;
      this.closeAfter = true;
      this.finish(errorFromAnswer(t.errorHead, Buffer.concat(t.errorBody!).toString('utf8')));
      return;
    }
    if (t) this.abort(err);
  }

  start(target: Target, request: string): void {
    this.target = target;
    this.socket.setTimeout(0);
    this.socket.ref();
    this.socket.write(request);
  }
}

function isRedirect(status: number): boolean {
  return status >= 300 && status < 400;
}

/** S3 codes that mean "this bucket is in another region" (with x-amz-bucket-region). */
const REGION_CODES = new Set(['PermanentRedirect', 'AuthorizationHeaderMalformed', 'IllegalLocationConstraintException', 'TemporaryRedirect']);

/**
 * Turn a non-success answer into the error the SDK path would give; DirectGetUnsupported
 * (this request only: an error status never turns the reader off) when it is not S3's.
 */
function errorFromAnswer(head: ParsedHead, body: string): Error {
  const code = /<Code>([^<]{1,100})<\/Code>/.exec(body)?.[1];
  const region = head.headers.get('x-amz-bucket-region');
  if (region && (head.status === 301 || head.status === 307 || (head.status === 400 && code !== undefined && REGION_CODES.has(code)))) {
    return new RegionRedirect(region);
  }
  if (code === 'RequestTimeTooSkewed') return new ClockSkew(head.headers.get('date'));
  // Other redirects (S3's 307 TemporaryRedirect for a new bucket, a CDN's 302): the SDK or
  // fetch follows them.
  if (isRedirect(head.status)) return new DirectGetUnsupported(`answer ${head.status} (a redirect)`, true);
  if (code) {
    const name = head.status === 412 ? 'PreconditionFailed' : code;
    return new S3Error(name, `S3 GetObject: ${name} (${head.status})`, head.status);
  }
  if (head.status === 412) return new S3Error('PreconditionFailed', 'S3 GetObject: PreconditionFailed (412)', 412);
  if (head.status >= 500) return new S3Error('InternalError', `S3 GetObject: InternalError (${head.status})`, head.status);
  return new DirectGetUnsupported(`answer ${head.status} without an S3 error code`, true);
}

/** A chunked body, decoded; undefined until its last chunk has arrived. */
export function dechunk(raw: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    if (eol < 0) return undefined;
    const size = parseInt(raw.subarray(at, eol).toString('latin1').split(';')[0]!.trim(), 16);
    if (!Number.isFinite(size) || size < 0) return Buffer.alloc(0); // malformed: judge what we have
    if (size === 0) return Buffer.concat(parts);
    if (raw.length < eol + 2 + size + 2) return undefined;
    parts.push(raw.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/** S3 refused the request's clock; `date` is the server's (its Date header). */
class ClockSkew extends Error {
  constructor(readonly date: string | undefined) {
    super('RequestTimeTooSkewed');
  }
}

interface Route {
  host: string;
  port: number;
  secure: boolean;
  /** Path and query, already encoded. */
  path: string;
}

/** The Host header: the port only when it is not the scheme's default. */
function hostHeader(route: Route): string {
  if (route.port === (route.secure ? 443 : 80)) return route.host;
  return `${net.isIPv6(route.host) ? `[${route.host}]` : route.host}:${route.port}`;
}

class RegionRedirect extends Error {
  constructor(readonly region: string) {
    super(`bucket is in ${region}`);
  }
}

export class DirectRangeGetter {
  private readonly idle = new Map<string, Connection[]>();
  private readonly open = new Set<Connection>();
  private readonly signers = new Map<string, SignatureV4>();
  private readonly bucketRegion = new Map<string, string>();
  private readonly endpoint: URL | undefined;
  /** Shared by every connection: a head is consumed (copied) within the read that delivered it. */
  private readonly scratch = Buffer.allocUnsafe(64 * 1024);
  private destroyed = false;
  /** S3's clock minus ours, learnt from a RequestTimeTooSkewed answer (the SDK's systemClockOffset). */
  private clockOffsetMs = 0;

  constructor(private readonly opts: DirectRangeGetOptions) {
    this.endpoint = opts.endpoint ? new URL(opts.endpoint) : undefined;
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
   * ETag (quotes stripped) when S3 sent one.
   */
  async getInto(loc: S3Location, start: number, end: number, into: Buffer, opts: { ifMatch?: string; signal?: AbortSignal } = {}): Promise<{ etag?: string }> {
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

  private async getOnce(loc: S3Location, region: string, start: number, end: number, into: Buffer, opts: { ifMatch?: string; signal?: AbortSignal }): Promise<{ etag?: string }> {
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
    return this.send(route, signed.headers, start, end, into, opts.signal);
  }

  /**
   * The same for a presigned (or otherwise self-authorising) URL: only Host and Range are sent.
   * The URL is never parsed beyond its origin and path (it may be any signed URL).
   */
  getUrlInto(url: string, start: number, end: number, into: Buffer, opts: { signal?: AbortSignal } = {}): Promise<{ etag?: string }> {
    const u = new URL(url);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') return Promise.reject(new DirectGetUnsupported(`${u.protocol} URL`));
    const secure = u.protocol === 'https:';
    const route = { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) || (secure ? 443 : 80), secure, path: `${u.pathname}${u.search}` };
    return this.send(route, { host: hostHeader(route), range: `bytes=${start}-${end - 1}` }, start, end, into, opts.signal).catch((err: unknown) => {
      // A presigned URL is bound to its region: a region redirect is for fetch to follow. A
      // skewed clock is the URL's signer's: a 403, which renews the URL.
      if (err instanceof RegionRedirect) throw new DirectGetUnsupported(err.message, true);
      if (err instanceof ClockSkew) throw new S3Error('RequestTimeTooSkewed', 'presigned GET: RequestTimeTooSkewed (403)', 403);
      throw err;
    });
  }

  private async send(route: Route, headers: Record<string, string>, start: number, end: number, into: Buffer, signal: AbortSignal | undefined): Promise<{ etag?: string }> {
    let request = `GET ${route.path} HTTP/1.1\r\n`;
    for (const [name, value] of Object.entries(headers)) request += `${name}: ${value}\r\n`;
    request += '\r\n';
    signal?.throwIfAborted();
    if (this.destroyed) throw new DirectGetUnsupported('the reader was closed', true);
    const poolKey = `${route.secure ? 's' : ''}${route.host}:${route.port}`;
    for (let fresh = 0; ; fresh++) {
      const conn = this.connection(poolKey, route, fresh > 0);
      try {
        return await this.exchange(conn, start, end, into, request, signal);
      } catch (err) {
        // A reused socket the server closed as we wrote to it: one more try on a new one.
        if (conn.reused && fresh === 0 && (err as { beforeAnswer?: boolean }).beforeAnswer && !signal?.aborted) continue;
        throw err;
      }
    }
  }

  private connection(poolKey: string, route: Route, forceNew: boolean): Connection {
    const idle = this.idle.get(poolKey);
    if (!forceNew) {
      while (idle && idle.length > 0) {
        const c = idle.pop()!;
        // Not one whose end the server already sent (its 'close' may still be pending).
        if (!c.socket.destroyed && !c.socket.readableEnded && c.socket.writable) {
          c.reused = true;
          return c;
        }
      }
    }
    const conn = new Connection(route.host, route.port, route.secure, this.opts.ca, this.scratch, (c) => {
      if (this.destroyed) {
        c.socket.destroy();
        return;
      }
      let list = this.idle.get(poolKey);
      if (!list) this.idle.set(poolKey, (list = []));
      list.push(c);
    });
    this.open.add(conn);
    conn.socket.on('close', () => {
      this.open.delete(conn);
      const list = this.idle.get(poolKey);
      const i = list?.indexOf(conn) ?? -1;
      if (i >= 0) list!.splice(i, 1);
    });
    return conn;
  }

  private exchange(conn: Connection, start: number, end: number, into: Buffer, request: string, signal: AbortSignal | undefined): Promise<{ etag?: string }> {
    s3Stats.request();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => conn.abort(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
      const target: Target = {
        buf: into, length: end - start, start, received: 0, inBody: false, head: [], headBytes: 0, gotAnyByte: false,
        settle: (err, head) => {
          signal?.removeEventListener('abort', onAbort);
          if (err) {
            if (!target.gotAnyByte) (err as { beforeAnswer?: boolean }).beforeAnswer = true;
            s3Stats.error();
            reject(err);
            return;
          }
          const etag = stripQuotes(head?.headers.get('etag'));
          resolve(etag ? { etag } : {});
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      conn.start(target, request);
    });
  }

  destroy(): void {
    this.destroyed = true;
    for (const c of this.open) c.socket.destroy();
    this.open.clear();
    this.idle.clear();
  }
}
