/**
 * The S3 gate: an HTTP proxy on its own loopback port in front of s3rver that makes the local
 * S3 behave like AWS for what synapse-mount relies on.
 *  - Authentication: every request is SigV4-verified (header or presigned query) against the
 *    admin key, the stack's internal key, or a session issued by GET /entity/{id}/sts.
 *    Unknown token → 403 InvalidToken, expired → 400 ExpiredToken, bad signature → 403
 *    SignatureDoesNotMatch, presigned URL past X-Amz-Date + X-Amz-Expires → 403 AccessDenied.
 *  - Session scope like Synapse's STS policy: only the bucket, keys under `baseKey/`, listing
 *    with a prefix under it; read_only may not write.
 *  - aws-chunked bodies are decoded before s3rver sees them; per-key read/write locks make
 *    PUT/CompleteMultipartUpload atomic to readers; multipart part sizes (5 MiB minimum but
 *    the last, EntityTooSmall) and part numbers (1..10,000) are enforced; suffix ranges and
 *    `bytes=0-0` are answered right (s3rver misreads both).
 *  - Counts stats, adds the s3 latency knob, applies s3 fault rules. The internal key (used by
 *    the Synapse server itself for HEADs, owner.txt reads and multipart completion) bypasses
 *    stats, latency and faults so benches measure client traffic only.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AwsChunkedDecoder, isAwsChunked } from './aws-chunked.js';
import { KeyLocks } from './key-locks.js';
import { sendS3Error, codeForStatus } from './s3-errors.js';
import { parseAmzDate, parseAuth, signatureMatches, splitQuery, uriEncode } from './sigv4.js';
import { S3_MAX_PARTS, S3_MIN_PART_SIZE, type DevConfig } from './config.js';
import { sleep, type Faults } from './faults.js';
import type { Stats } from './stats.js';

export interface StsSession {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  bucket: string;
  baseKey?: string;
  permission: 'read_only' | 'read_write';
  expiresAt: number;
  userId: string;
}

export interface KeyPair { accessKeyId: string; secretAccessKey: string }

export interface GateOptions {
  backendPort: number;
  port: number;
  admin: KeyPair;
  internal: KeyPair;
  config: DevConfig;
  faults: Faults;
  stats: Stats;
}

type Principal = { kind: 'admin' | 'internal' } | { kind: 'session'; session: StsSession };

/** Query parameters that belong to SigV4, never forwarded to s3rver. */
const AUTH_QUERY = new Set([
  'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders',
  'X-Amz-Signature', 'X-Amz-Security-Token', 'X-Amz-Content-Sha256',
]);
/** Request headers dropped when forwarding (auth, aws-chunked framing, checksums of the framing). */
const DROP_HEADERS = new Set([
  'authorization', 'x-amz-security-token', 'x-amz-content-sha256', 'x-amz-date', 'x-amz-decoded-content-length',
  'x-amz-trailer', 'x-amz-sdk-checksum-algorithm', 'expect', 'host', 'connection', 'transfer-encoding', 'content-length',
]);
/**
 * Hop-by-hop headers of s3rver's answer (RFC 9110 §7.6.1): they describe the gate↔s3rver
 * connection, not the client's. Passing `Connection: keep-alive` on made the gate answer a
 * client that had asked for `Connection: close` with keep-alive while closing the socket; a
 * keep-alive client then reused it and its next request met Node's bare 400.
 */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer'];

/** Headers minus the hop-by-hop ones, as a proxy forwards them (also deploy.test's TLS fronts). */
export function endToEndHeaders<H extends Record<string, unknown>>(headers: H): H {
  const out = { ...headers };
  for (const h of HOP_BY_HOP) delete out[h];
  return out;
}
const RESPONSE_OVERRIDES = new Set([
  'response-content-type', 'response-content-language', 'response-expires', 'response-cache-control',
  'response-content-disposition', 'response-content-encoding',
]);
const MAX_COMPLETE_BODY = 4 * 1024 * 1024;
const RESET_AFTER_DEFAULT = 64 * 1024;

const decodeSeg = (s: string): string => { try { return decodeURIComponent(s); } catch { return s; } };

export class S3Gate {
  readonly sessions = new Map<string, StsSession>();
  /** Upload ids aborted through the gate (see the AbortMultipartUpload note in handle()). */
  private readonly aborted = new Set<string>();
  /** Upload ids completed through the gate: S3 no longer knows them (NoSuchUpload to an abort). */
  private readonly completed = new Set<string>();
  /** uploadId → partNumber → {etag, size}, learned from UploadPart responses. */
  private readonly parts = new Map<string, Map<number, { etag: string; size: number }>>();
  private readonly locks = new KeyLocks();
  /**
   * Each object's ETag as s3rver last reported it, for If-Match. Dropped whenever a write to
   * the object passes the gate — every write does, s3rver being reachable only through it — and
   * reads hold the object's read lock while they check. S3 checks If-Match at no extra cost; a
   * HEAD to s3rver per conditional GET had made the mount's reads (which pin the version with
   * If-Match) cost the server ~1 CPU-s more per GiB than the direct client's.
   */
  private readonly etags = new Map<string, string>();
  private server: http.Server | undefined;
  // Idle sockets to s3rver close after 4 s, before s3rver's own 5 s keep-alive timeout: a
  // socket reused just as s3rver closed it failed the request with a reset (a 500 to the
  // client; seen once by the bench's direct client).
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 256, timeout: 4000 });
  endpoint = '';

  constructor(private readonly opts: GateOptions) {}

  async start(): Promise<string> {
    const server = http.createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) sendS3Error(res, req.method ?? 'GET', 500, 'InternalError', String((e as Error).message ?? e));
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 30_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, '127.0.0.1', () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    this.endpoint = `http://127.0.0.1:${port}`;
    return this.endpoint;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
    this.agent.destroy();
  }

  registerSession(s: StsSession): void {
    this.sessions.set(s.accessKeyId, s);
  }

  /** What S3 knows of an uploaded part (ETag without quotes, size), if it was uploaded. */
  partInfo(uploadId: string, partNumber: number): { etag: string; size: number } | undefined {
    return this.parts.get(uploadId)?.get(partNumber);
  }

  private authenticate(req: IncomingMessage, rawPath: string, query: Array<[string, string]>):
    { principal: Principal } | { status: number; code: string; message?: string } {
    const method = req.method ?? 'GET';
    const raw = { method, rawPath, query, headers: req.headers };
    const auth = parseAuth(raw);
    if (auth === null) return { status: 403, code: 'AccessDenied' };
    if (typeof auth === 'string') {
      return { status: 400, code: req.headers.authorization ? 'AuthorizationHeaderMalformed' : 'AuthorizationQueryParametersError', message: auth };
    }
    let principal: Principal;
    let secret: string;
    if (auth.sessionToken !== undefined) {
      const s = this.sessions.get(auth.accessKeyId);
      if (!s || s.sessionToken !== auth.sessionToken) return { status: 403, code: 'InvalidToken' };
      if (Date.now() >= s.expiresAt) return { status: 400, code: 'ExpiredToken' };
      principal = { kind: 'session', session: s };
      secret = s.secretAccessKey;
    } else if (auth.accessKeyId === this.opts.admin.accessKeyId) {
      principal = { kind: 'admin' };
      secret = this.opts.admin.secretAccessKey;
    } else if (auth.accessKeyId === this.opts.internal.accessKeyId) {
      principal = { kind: 'internal' };
      secret = this.opts.internal.secretAccessKey;
    } else {
      return { status: 403, code: 'InvalidAccessKeyId' };
    }
    if (!signatureMatches(raw, auth, secret)) return { status: 403, code: 'SignatureDoesNotMatch' };
    if (auth.kind === 'query') {
      const t0 = parseAmzDate(auth.amzDate);
      if (!Number.isFinite(t0) || auth.expires === undefined || auth.expires < 1 || auth.expires > 604800) {
        return { status: 400, code: 'AuthorizationQueryParametersError', message: 'X-Amz-Expires must be between 1 and 604800 seconds' };
      }
      if (Date.now() > t0 + auth.expires * 1000) return { status: 403, code: 'AccessDenied', message: 'Request has expired' };
    }
    return { principal };
  }

  /** Session policy check; null when allowed. */
  private scopeDenied(s: StsSession, method: string, bucket: string, key: string, q: Map<string, string>): boolean {
    if (bucket !== s.bucket) return true;
    const write = method === 'PUT' || method === 'POST' || method === 'DELETE';
    if (write && s.permission === 'read_only') return true;
    const base = s.baseKey ? `${s.baseKey}/` : '';
    if (key !== '') return !key.startsWith(base);
    // bucket-level: only ListObjects (v1/v2) with a prefix inside the base key
    if (method !== 'GET') return !(method === 'POST' && q.has('delete') && s.permission === 'read_write');
    if (q.has('uploads')) return s.permission === 'read_only' || !(q.get('prefix') ?? '').startsWith(base);
    const prefix = q.get('prefix') ?? '';
    if (!s.baseKey) return false;
    return !(prefix === s.baseKey || prefix.startsWith(base));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const rawUrl = req.url ?? '/';
    const qi = rawUrl.indexOf('?');
    const rawPath = qi < 0 ? rawUrl : rawUrl.slice(0, qi);
    const query = splitQuery(qi < 0 ? '' : rawUrl.slice(qi + 1));
    const q = new Map(query);
    const segs = rawPath.split('/');
    const bucket = decodeSeg(segs[1] ?? '');
    const key = segs.slice(2).map(decodeSeg).join('/');

    const authResult = this.authenticate(req, rawPath, query);
    const internal = 'principal' in authResult && authResult.principal.kind === 'internal';
    if (!internal) this.opts.stats.s3.requests++;
    if (!internal && method === 'PUT' && req.headers['x-amz-content-sha256'] === 'UNSIGNED-PAYLOAD') this.opts.stats.s3.unsignedPayloadPuts++;
    // count request body bytes only once the body is consumed (a 'data' listener starts the flow)
    const countIn = (): void => {
      if (!internal) req.on('data', (c: Buffer) => { this.opts.stats.s3.bytesIn += c.length; });
    };
    const fail = (status: number, code: string, message?: string, extra: Record<string, string> = {}): void => {
      req.resume();
      sendS3Error(res, method, status, code, message, extra);
    };
    if (!('principal' in authResult)) { fail(authResult.status, authResult.code, authResult.message); return; }
    const principal = authResult.principal;
    if (principal.kind === 'session' && this.scopeDenied(principal.session, method, bucket, key, q)) {
      fail(403, 'AccessDenied'); return;
    }

    let resetMidBody = false;
    if (!internal) {
      const fault = this.opts.faults.take('s3', method, rawPath);
      const delay = this.opts.config.s3LatencyMs + (fault?.latencyMs ?? 0);
      if (delay > 0) await sleep(delay);
      if (fault?.reset) {
        if (method === 'GET' || method === 'HEAD') resetMidBody = true;
        else { req.socket.destroy(); return; }
      } else if (fault?.status !== undefined) {
        if (fault.retryAfterSec !== undefined) res.setHeader('Retry-After', String(fault.retryAfterSec));
        fail(fault.status, codeForStatus(fault.status)); return;
      }
    }

    const isUploadPart = method === 'PUT' && q.has('uploadId') && q.has('partNumber');
    const isComplete = method === 'POST' && q.has('uploadId');
    const startedAt = performance.now();
    const isAbort = method === 'DELETE' && q.has('uploadId');
    const chunked = isAwsChunked(req.headers);

    if (isUploadPart) {
      const n = Number(q.get('partNumber'));
      if (!Number.isInteger(n) || n < 1 || n > S3_MAX_PARTS) {
        fail(400, 'InvalidArgument', `Part number must be an integer between 1 and ${S3_MAX_PARTS}, inclusive`,
          { ArgumentName: 'partNumber', ArgumentValue: q.get('partNumber') ?? '' });
        return;
      }
    }

    // s3rver 3.7 has no AbortMultipartUpload (405); S3 answers 204 and forgets the upload, so
    // later UploadPart/Complete with that id get 404 NoSuchUpload. The parts s3rver already
    // stored stay in its temp directory, which nothing reads. An upload already completed or
    // aborted is 404 NoSuchUpload to an abort too, as on S3.
    const uploadIdParam = q.get('uploadId') ?? '';
    if (isAbort && (this.aborted.has(uploadIdParam) || this.completed.has(uploadIdParam))) {
      req.resume();
      fail(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.');
      return;
    }
    if (isAbort) {
      this.aborted.add(uploadIdParam);
      this.parts.delete(uploadIdParam);
      req.resume();
      res.writeHead(204);
      res.end();
      return;
    }
    if ((isUploadPart || isComplete) && this.aborted.has(uploadIdParam)) {
      fail(404, 'NoSuchUpload', 'The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.');
      return;
    }

    let completeBody: Buffer | undefined;
    if (isComplete) {
      countIn();
      completeBody = await readAll(chunked ? req.pipe(new AwsChunkedDecoder()) : req, MAX_COMPLETE_BODY);
      const problem = this.validateComplete(q.get('uploadId') ?? '', completeBody.toString('utf8'));
      if (problem) { fail(400, problem.code, problem.message); return; }
    }

    const objectId = `${bucket}/${key}`;
    const isRead = (method === 'GET' || method === 'HEAD') && key !== '' && !q.has('uploadId');
    const isWrite = key !== '' && ((method === 'PUT' && !isUploadPart && !q.has('tagging') && !q.has('acl')) || isComplete || (method === 'DELETE' && !isAbort));
    const release = isRead ? await this.locks.read(objectId) : isWrite ? await this.locks.write(objectId) : (): void => {};
    let released = false;
    // Remembered ETags a write makes stale: before it starts and again once it is over.
    const forgetEtags = (): void => {
      if (isWrite) this.etags.delete(objectId);
      else if (method === 'POST' && q.has('delete')) this.etags.clear(); // DeleteObjects: many keys
    };
    const done = (): void => {
      if (released) return;
      released = true;
      forgetEtags();
      release();
    };
    forgetEtags();
    res.on('close', done);

    try {
      // headers for s3rver
      const headers: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(req.headers)) {
        if (v === undefined || DROP_HEADERS.has(k) || k.startsWith('x-amz-checksum-')) continue;
        headers[k] = v;
      }
      if (chunked) {
        const enc = String(req.headers['content-encoding'] ?? '').split(',').map((s) => s.trim()).filter((s) => s && s !== 'aws-chunked');
        if (enc.length) headers['content-encoding'] = enc.join(','); else delete headers['content-encoding'];
      }
      let bodyLength: number | undefined;
      if (completeBody) bodyLength = completeBody.length;
      else if (chunked) {
        const d = Number(req.headers['x-amz-decoded-content-length']);
        if (Number.isFinite(d)) bodyLength = d;
      } else if (req.headers['content-length'] !== undefined) bodyLength = Number(req.headers['content-length']);
      if (bodyLength !== undefined) headers['content-length'] = String(bodyLength);
      else if (method === 'PUT' || method === 'POST') headers['transfer-encoding'] = 'chunked';

      // s3rver ignores If-Match; S3 answers 412 when the object's ETag differs (readers pin a
      // version this way).
      const ifMatch = req.headers['if-match'];
      if (isRead && typeof ifMatch === 'string') {
        let current = this.etags.get(objectId);
        if (current === undefined) {
          current = await this.backendEtag(rawPath);
          if (current !== undefined) this.etags.set(objectId, current);
        }
        const wanted = ifMatch.split(',').map((t) => t.trim().replace(/^W\//, '').replace(/"/g, ''));
        if (current !== undefined && !wanted.includes('*') && !wanted.includes(current)) {
          req.resume();
          fail(412, 'PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', { Condition: 'If-Match' });
          return;
        }
      }

      // s3rver misreads two ranges: `bytes=-N` (suffix) and an end of 0 (`bytes=0-0` → whole object)
      let firstByteOnly = false;
      if (isRead && method === 'GET') {
        const range = String(req.headers.range ?? '');
        if (/^bytes=0-0+$/.test(range)) {
          // An empty object has no first byte: S3 answers 416 (s3rver would send a head that
          // promises one byte and never comes).
          if ((await this.backendSize(rawPath)) === 0) {
            req.resume();
            fail(416, 'InvalidRange', 'The requested range is not satisfiable', { RangeRequested: range, ActualObjectSize: '0' });
            return;
          }
          headers.range = 'bytes=0-';
          firstByteOnly = true;
        }
        const suffix = /^bytes=-(\d+)$/.exec(range);
        if (suffix) {
          const size = await this.backendSize(rawPath);
          if (size !== undefined) {
            const n = Number(suffix[1]);
            headers.range = size === 0 ? 'bytes=0-' : `bytes=${Math.max(0, size - n)}-${size - 1}`;
          }
        }
      }

      // response-* overrides are applied here: s3rver refuses them on (to it) anonymous requests
      const overrides: Record<string, string> = {};
      for (const [k, v] of query) if (RESPONSE_OVERRIDES.has(k)) overrides[k.slice('response-'.length)] = v;
      const fwdQuery = query.filter(([k]) => !AUTH_QUERY.has(k) && !RESPONSE_OVERRIDES.has(k)).map(([k, v]) => (v === '' ? uriEncode(k) : `${uriEncode(k)}=${uriEncode(v)}`)).join('&');
      const path = rawPath + (fwdQuery ? `?${fwdQuery}` : '');

      await new Promise<void>((resolve) => {
        let partBytes = 0;
        const proxyReq = http.request({
          host: '127.0.0.1', port: this.opts.backendPort, method, path, headers, agent: this.agent,
        }, (proxyRes) => {
          const status = proxyRes.statusCode ?? 502;
          const outHeaders = endToEndHeaders(proxyRes.headers);
          if (status === 200 || status === 206) Object.assign(outHeaders, overrides);
          let limit = Infinity;
          if (firstByteOnly && status === 206) {
            const total = /\/(\d+)$/.exec(String(proxyRes.headers['content-range'] ?? ''))?.[1] ?? '*';
            outHeaders['content-range'] = `bytes 0-0/${total}`;
            outHeaders['content-length'] = '1';
            limit = 1;
          }
          res.writeHead(status, outHeaders);
          const chunks: Buffer[] = [];
          const wantBody = isComplete;
          let sent = 0;
          const resetAfter = resetMidBody
            ? Math.max(1, Math.floor(Number(proxyRes.headers['content-length'] ?? RESET_AFTER_DEFAULT * 2) / 2))
            : Infinity;
          if (resetMidBody && method === 'HEAD') { res.destroy(); proxyRes.destroy(); resolve(); return; }
          proxyRes.on('data', (chunk: Buffer) => {
            if (sent >= limit) return;
            const c = sent + chunk.length > limit ? chunk.subarray(0, limit - sent) : chunk;
            if (wantBody) chunks.push(c);
            if (sent + c.length >= resetAfter) {
              const part = c.subarray(0, Math.max(0, resetAfter - sent));
              if (!internal) this.opts.stats.s3.bytesOut += part.length;
              res.write(part, () => { res.destroy(); });
              proxyRes.destroy();
              sent = resetAfter;
              resolve();
              return;
            }
            sent += c.length;
            if (!internal) this.opts.stats.s3.bytesOut += c.length;
            if (sent >= limit) { res.end(c); proxyRes.destroy(); resolve(); return; }
            if (!res.write(c)) { proxyRes.pause(); res.once('drain', () => proxyRes.resume()); }
          });
          proxyRes.on('end', () => {
            if (status === 200 && isUploadPart) {
              const uploadId = q.get('uploadId') ?? '';
              let m = this.parts.get(uploadId);
              if (!m) { m = new Map(); this.parts.set(uploadId, m); }
              m.set(Number(q.get('partNumber')), { etag: String(proxyRes.headers.etag ?? '').replace(/"/g, ''), size: partBytes });
            }
            if (status === 200 && isComplete && !Buffer.concat(chunks).toString('utf8').includes('<Error>')) {
              this.parts.delete(q.get('uploadId') ?? '');
              this.completed.add(q.get('uploadId') ?? '');
            }
            if (isComplete && !internal) this.opts.stats.s3.completeSeconds += (performance.now() - startedAt) / 1000;
            if (isAbort && status < 300) this.parts.delete(q.get('uploadId') ?? '');
            res.end();
            resolve();
          });
          proxyRes.on('error', () => { res.destroy(); resolve(); });
          res.on('close', () => { if (!proxyRes.complete) proxyRes.destroy(); resolve(); });
        });
        proxyReq.on('error', (e) => {
          if (!res.headersSent) sendS3Error(res, method, 500, 'InternalError', e.message);
          else res.destroy();
          resolve();
        });
        if (completeBody) { proxyReq.end(completeBody); return; }
        if (method === 'GET' || method === 'HEAD' || method === 'DELETE') {
          if (bodyLength === undefined || bodyLength === 0) { req.resume(); proxyReq.end(); return; }
        }
        countIn();
        const src = chunked ? req.pipe(new AwsChunkedDecoder()) : req;
        src.on('data', (c: Buffer) => { partBytes += c.length; });
        src.on('error', (e) => { proxyReq.destroy(e); });
        req.on('aborted', () => proxyReq.destroy());
        src.pipe(proxyReq);
      });
    } finally {
      if (res.writableEnded || res.destroyed) done();
    }
  }

  private validateComplete(uploadId: string, xml: string): { code: string; message?: string } | undefined {
    const blocks = xml.match(/<Part>[\s\S]*?<\/Part>/g) ?? [];
    if (blocks.length === 0) return { code: 'MalformedXML' };
    const known = this.parts.get(uploadId);
    const list: Array<{ n: number; etag: string }> = [];
    for (const b of blocks) {
      const n = Number(/<PartNumber>\s*(\d+)\s*<\/PartNumber>/.exec(b)?.[1]);
      const etag = (/<ETag>([\s\S]*?)<\/ETag>/.exec(b)?.[1] ?? '').replace(/&quot;|&#34;|"/g, '').trim();
      if (!Number.isInteger(n)) return { code: 'MalformedXML' };
      list.push({ n, etag });
    }
    for (let i = 1; i < list.length; i++) {
      if ((list[i]?.n ?? 0) <= (list[i - 1]?.n ?? 0)) return { code: 'InvalidPartOrder' };
    }
    for (const [i, p] of list.entries()) {
      const info = known?.get(p.n);
      if (!info || (p.etag !== '' && info.etag !== p.etag)) return { code: 'InvalidPart' };
      if (i < list.length - 1 && info.size < S3_MIN_PART_SIZE) return { code: 'EntityTooSmall' };
    }
    return undefined;
  }

  private backendEtag(rawPath: string): Promise<string | undefined> {
    return new Promise((resolve) => {
      const r = http.request({ host: '127.0.0.1', port: this.opts.backendPort, method: 'HEAD', path: rawPath, agent: this.agent }, (res) => {
        res.resume();
        resolve(res.statusCode === 200 ? String(res.headers.etag ?? '').replace(/"/g, '') : undefined);
      });
      r.on('error', () => resolve(undefined));
      r.end();
    });
  }

  private backendSize(rawPath: string): Promise<number | undefined> {
    return new Promise((resolve) => {
      const r = http.request({ host: '127.0.0.1', port: this.opts.backendPort, method: 'HEAD', path: rawPath, agent: this.agent }, (res) => {
        res.resume();
        resolve(res.statusCode === 200 ? Number(res.headers['content-length']) : undefined);
      });
      r.on('error', () => resolve(undefined));
      r.end();
    });
  }
}

function readAll(stream: NodeJS.ReadableStream, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    stream.on('data', (c: Buffer) => {
      n += c.length;
      if (n > max) { reject(new Error('body too large')); return; }
      chunks.push(c);
    });
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}
