/**
 * The HTTP/1.1 wire under DirectRangeGetter (direct-range-get.ts): one ranged GET on a
 * keep-alive net/tls socket opened with `onread`, so that once the answer's head is parsed the
 * socket reads the body straight into the caller's buffer (no per-chunk ArrayBuffer, no copy).
 *
 * Knows HTTP and S3's answers, not signing or routing: the caller gives the route and headers.
 * How answers are judged is described in direct-range-get.ts; the pieces are here:
 * `Connection.onBytes` (head, body, error body however framed), `errorFromAnswer` (S3 error
 * documents, redirects, clock skew), `checkRange` (the bytes asked for, or InvalidRange).
 *
 * Memory safety: while a body is being read, the socket's read buffer *is* the caller's block.
 * Node calls the buffer generator (`nextBuffer`) after every read callback, even one that
 * destroyed the socket, so a request that ended points it back at the scratch buffer; a request
 * that ends any other way than complete (abort, timeout, error, surplus bytes) destroys its
 * socket before it settles (destroy stops reads synchronously on TCP and TLS). `onBytes` must
 * never throw: a throw would skip the generator.
 */
import net from 'node:net';
import tls from 'node:tls';
import { loweredMark, lowWaterFor, type SetLowWater } from './receive-low-water.js';
import { markCutShort, s3ErrorCode, stripQuotes } from './retry.js';
import { s3Stats } from './s3-stats.js';
import { S3Error } from './object-store.js';

/**
 * The answer was not one this reader handles; send the request through the SDK (or fetch).
 * `requestOnly`: this request only (a redirect, an error answer that is not S3's, a closed
 * reader) — the reader stays in use. Otherwise the server speaks HTTP in a way this reader
 * does not, and callers stop using it.
 */
export class DirectGetUnsupported extends Error {
  override readonly name = 'DirectGetUnsupported';
  constructor(message: string, readonly requestOnly = false) {
    super(message);
  }
}

/** The largest status line + headers accepted, and the largest error body read. */
const MAX_HEAD_BYTES = 64 * 1024;
/** An idle keep-alive socket is closed after this; below the 5 s of Node servers (and S3's ~20 s). */
const IDLE_MS = 4000;
const EMPTY = Buffer.alloc(0);
/** Give up on a connection that is not up after this (the SDK's connectionTimeout here). */
const CONNECT_MS = 10_000;

/** One request on a connection: where its body goes and how far its answer has got. */
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
  /** The answer's head so far (copied out of the shared scratch buffer). */
  head: Buffer;
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

/** A body's socket kept a low-water mark it could not lower: retried on a new connection, as a reset is. */
const stuckMarkError = (): Error => Object.assign(new Error('could not lower the socket\'s low-water mark for the end of the body'), { code: 'ECONNRESET' });

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

  /** SO_RCVLOWAT set on this socket now (1: none, the kernel's default). */
  private lowWater = 1;

  constructor(host: string, port: number, private readonly secure: boolean, ca: string[] | undefined, scratch: Buffer,
    private readonly onIdle: (c: Connection) => void, private setLowWater: SetLowWater | undefined) {
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

  /**
   * Set the socket's low-water mark (receive-low-water.ts): a few big reads of a body instead of
   * one per segment. Node keeps the descriptor on the socket's handle (TCPWrap, TLSWrap). Without
   * one, or if the kernel refuses (or the setter throws: this runs in a read callback), this
   * connection goes without marks from then on. True when the socket now has `mark`.
   */
  private setMark(mark: number): boolean {
    const fd = (this.socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    let ok = false;
    try {
      ok = this.setLowWater !== undefined && typeof fd === 'number' && fd >= 0 && this.setLowWater(fd, mark) === 0;
    } catch {
      ok = false;
    }
    if (ok) this.lowWater = mark;
    else this.setLowWater = undefined;
    return ok;
  }

  /** At a body's start: the highest safe mark for it (no harm if it cannot be set). */
  private markBody(remaining: number): void {
    const mark = lowWaterFor(remaining, this.secure);
    if (this.setLowWater && mark > this.lowWater && this.setMark(mark)) s3Stats.markedGet();
  }

  /**
   * With `remaining` bytes to come: lower the mark if it is above what is safe. False when it is
   * and cannot be lowered — the socket must not be read from again.
   */
  private socketUsable(remaining: number): boolean {
    const lower = loweredMark(this.lowWater, remaining, this.secure);
    return lower === undefined || this.setMark(lower);
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
      else if (this.lowWater > 1 && !this.socketUsable(t.length - t.received)) this.abort(stuckMarkError());
      return;
    }
    if (t.errorHead) {
      this.collectError(t, Buffer.from(buf.subarray(0, n)));
      return;
    }
    // Still in the head: gather until the blank line, then parse.
    const all = t.head.length === 0 ? Buffer.from(buf.subarray(0, n)) : Buffer.concat([t.head, buf.subarray(0, n)]);
    const end = all.indexOf('\r\n\r\n');
    if (end < 0) {
      if (all.length > MAX_HEAD_BYTES) this.abort(new DirectGetUnsupported('response head too large'));
      else t.head = all;
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
      t.head = EMPTY;
      this.headOf = head;
      s3Stats.down(rest.length);
      if (t.received === t.length) this.finish(undefined);
      else this.markBody(t.length - t.received);
      return;
    }
    this.abort(new DirectGetUnsupported(`answer ${head.status}`));
  }

  /** Is this success answer exactly the bytes asked for? An Error says why not. */
  private checkRange(t: Target, head: ParsedHead, bodyLength: number): Error | undefined {
    const asked = `bytes ${t.start}-${t.start + t.length - 1}`;
    if (head.status === 200) {
      if (t.start === 0 && bodyLength === t.length) return undefined;
      // The whole object, shorter than the range asked (an empty one, for a first-byte stat):
      // it ends early, as a short 206 does below — not a server that ignores ranges.
      if (t.start === 0 && bodyLength < t.length) return new S3Error('InvalidRange', `S3 GetObject: the object has ${bodyLength} bytes, ${asked} asked for`, head.status);
      return new DirectGetUnsupported(`a 200 answer of ${bodyLength} bytes to ${asked}`);
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
    // The next answer's head may be a few bytes: no mark between answers (or no next answer).
    const reusable = !this.closeAfter && head?.headers.get('connection')?.toLowerCase() !== 'close' && this.socketUsable(0);
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
  const code = s3ErrorCode(body);
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
function dechunk(raw: Buffer): Buffer | undefined {
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
export class ClockSkew extends Error {
  constructor(readonly date: string | undefined) {
    super('RequestTimeTooSkewed');
  }
}

/** The object's whole size as a success answer states it: a 206's Content-Range total, a 200's length. */
function wholeSize(head: ParsedHead): number | undefined {
  const stated = head.status === 200 ? head.headers.get('content-length') : /\/(\d+)$/.exec(head.headers.get('content-range') ?? '')?.[1];
  return stated !== undefined && /^\d+$/.test(stated) ? Number(stated) : undefined;
}

/** What a GET's answer said of the object besides its bytes. */
export interface WireAnswer {
  etag?: string;
  /** The object's whole size. */
  size?: number;
}

export interface Route {
  host: string;
  port: number;
  secure: boolean;
  /** Path and query, already encoded. */
  path: string;
}

/** The Host header: the port only when it is not the scheme's default. */
export function hostHeader(route: Route): string {
  if (route.port === (route.secure ? 443 : 80)) return route.host;
  return `${net.isIPv6(route.host) ? `[${route.host}]` : route.host}:${route.port}`;
}

export class RegionRedirect extends Error {
  constructor(readonly region: string) {
    super(`bucket is in ${region}`);
  }
}

/**
 * Keep-alive connections per origin, one request at a time each, for ranged GETs whose bodies
 * go straight into the caller's buffer.
 */
export class RangeWire {
  private readonly idle = new Map<string, Connection[]>();
  private readonly open = new Set<Connection>();
  /** Shared by every connection: a head is consumed (copied) within the read that delivered it. */
  private readonly scratch = Buffer.allocUnsafe(64 * 1024);
  private destroyed = false;

  /** `setLowWater`: SO_RCVLOWAT for bodies (receive-low-water.ts); undefined: none. */
  constructor(private readonly ca: string[] | undefined, private readonly setLowWater: SetLowWater | undefined) {}

  /**
   * GET `route` with `headers` (Host included); the body, [start, end) of the object, into `into`.
   * Resolves with the object's ETag and whole size when the answer gave them.
   */
  async get(route: Route, headers: Record<string, string>, start: number, end: number, into: Buffer, signal: AbortSignal | undefined): Promise<WireAnswer> {
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
    const conn = new Connection(route.host, route.port, route.secure, this.ca, this.scratch, (c) => {
      if (this.destroyed) {
        c.socket.destroy();
        return;
      }
      let list = this.idle.get(poolKey);
      if (!list) this.idle.set(poolKey, (list = []));
      list.push(c);
    }, this.setLowWater);
    this.open.add(conn);
    conn.socket.on('close', () => {
      this.open.delete(conn);
      const list = this.idle.get(poolKey);
      const i = list?.indexOf(conn) ?? -1;
      if (i >= 0) list!.splice(i, 1);
    });
    return conn;
  }

  private exchange(conn: Connection, start: number, end: number, into: Buffer, request: string, signal: AbortSignal | undefined): Promise<WireAnswer> {
    s3Stats.request();
    return new Promise((resolve, reject) => {
      const onAbort = (): void => conn.abort(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
      const target: Target = {
        buf: into, length: end - start, start, received: 0, inBody: false, head: EMPTY, gotAnyByte: false,
        settle: (err, head) => {
          signal?.removeEventListener('abort', onAbort);
          if (err) {
            if (!target.gotAnyByte) (err as { beforeAnswer?: boolean }).beforeAnswer = true;
            if (target.inBody) markCutShort(err, target.received);
            s3Stats.error();
            reject(err);
            return;
          }
          s3Stats.leanGet();
          const etag = stripQuotes(head?.headers.get('etag'));
          const size = head ? wholeSize(head) : undefined;
          resolve({ ...(etag ? { etag } : {}), ...(size !== undefined ? { size } : {}) });
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
