/**
 * ObjectStore over @aws-sdk/client-s3 — the only module that imports the AWS SDK client.
 *
 * One client per credential scope (an STS storage location, or the admin key in tests).
 * Choices and why:
 *  - sha256: OffThreadSha256 — the SigV4 payload hash of a 16 MiB part took ~9 ms of the event
 *    loop that answers FUSE writes; parts in shared memory are hashed on a worker instead.
 *  - UNSIGNED-PAYLOAD over HTTPS (`unsignedPayload`): part and object PUTs skip SigV4's payload
 *    SHA-256 (0.6 CPU-s per GiB here, a third of a write's hashing) where TLS already protects
 *    the bytes in transit — every AWS endpoint, as the AWS CLI's and mountpoint-s3's uploads do.
 *    Plain-HTTP endpoints (a local S3, the tests) keep it: there it is S3's only check of the
 *    bytes.
 *  - checksums WHEN_REQUIRED: the SDK's default aws-chunked CRC trailers cost CPU on the hot path
 *    and some S3-compatible servers store the framing. S3 still checks every byte of a part: the
 *    SigV4 payload hash covers it (multipart-upload.ts sends no per-part Content-MD5).
 *  - maxSockets 256 + keep-alive: readahead keeps dozens of ranged GETs in flight; the SDK's
 *    default of 50 sockets queues them invisibly.
 *  - followRegionRedirects: STS credentials cannot call GetBucketLocation, so without
 *    --s3-region the SDK must learn the region from S3's 301s.
 *  - Proxies and CAs: the agents come from src/net/proxy.ts (HTTPS_PROXY, NO_PROXY, AWS_CA_BUNDLE).
 *  - Ranged GETs (the read hot path) go through DirectRangeGetter (direct-range-get.ts), which
 *    reads bodies straight into the block buffer, signed by the SDK's SigV4 signer; anything it
 *    does not handle — a proxy, a redirect, an answer it cannot read — goes through the SDK, and
 *    an answer it cannot read turns it off for this store. SYNAPSE_MOUNT_S3_GET=sdk turns it off.
 *  - Body errors (connection reset mid-body) are retried here: the SDK retries only until the
 *    headers arrive. ExpiredToken triggers `onCredentialsExpired` (drop the cached STS token) and
 *    one more try.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { finished, type Readable } from 'node:stream';
// The SDK warns on every start that Node 20 leaves its support window in 2027; this project
// pins Node 20 (engines), so the warning would only alarm users on stderr.
process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';

import { proxyConfigured, proxyForUrl, s3Agents } from '../net/proxy.js';
import { DirectGetUnsupported, DirectRangeGetter, directGetsWanted, isAwsPartitionRegion } from './direct-range-get.js';
import { HashWorkerLost, OffThreadSha256 } from './offthread-hash.js';
import { backoff, GetTries, markCutShort, stripQuotes, tryCost } from './retry.js';
import { s3Stats } from './s3-stats.js';
import { S3Error, type Alloc, type CompletedPart, type ObjectStore, type ObjectVersion, type RangeResult, type S3Location } from './object-store.js';

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

export interface AwsObjectStoreOptions {
  /** e.g. http://127.0.0.1:9000; undefined = AWS S3. */
  endpoint?: string;
  region?: string;
  credentials: AwsCredentials | (() => Promise<AwsCredentials>);
  /** Abort a single request (headers and body) after this long. */
  requestTimeoutMs?: number;
  onCredentialsExpired?: () => void;
  maxAttempts?: number;
  /**
   * PUT bodies are sent as UNSIGNED-PAYLOAD, without SigV4's SHA-256 of them. Default: when the
   * endpoint is HTTPS (AWS itself included), whose TLS protects the bytes in transit.
   */
  unsignedPayload?: boolean;
}

/** The SDK commands whose bodies `unsignedPayload` leaves unhashed: the upload bodies. */
const UNSIGNED_PAYLOAD_COMMANDS = new Set(['PutObjectCommand', 'UploadPartCommand']);

/** Whether PUT bodies to `endpoint` (undefined: AWS) go as UNSIGNED-PAYLOAD by default: HTTPS only. */
export function unsignedPayloadByDefault(endpoint: string | undefined): boolean {
  return endpoint === undefined || new URL(endpoint).protocol === 'https:';
}

/**
 * Attempts for one ranged GET whose body fails mid-way (resets, truncation, 5xx): S3 errors are
 * independent per request, so 8 tries make a lost block rare even at a 30% fault rate
 * (0.3^8 ≈ 7e-5 — yet a read of many blocks failed about once in 100 runs of the fault tests),
 * so a try whose body was cut short after some bytes does not count (retry.ts GetTries: 3 × as many tries at most); the
 * capped backoff keeps the worst case (~4 s of waits; ≈ 8 s when S3 keeps saying SlowDown, which costs
 * half a try) inside the default --read-timeout.
 */
const BODY_ATTEMPTS = 8;

/**
 * Attempts for one part PUT beyond the SDK's own retries (whose shared retry quota drains under
 * a burst of 503s). A streamed part lives only in memory until S3 has it — the spool does not
 * hold streamed bytes (write-handle.ts) — so a part gives up only after these, ~10 s of backoff.
 */
const PART_ATTEMPTS = 6;

/** Turn an SDK error into an S3Error with S3's code. */
export function toS3Error(err: unknown, what: string): S3Error {
  if (err instanceof S3Error) return err;
  const e = err as { name?: string; Code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode ?? 0;
  let code = e.Code ?? e.name ?? 'Unknown';
  if (code === 'TimeoutError' || code === 'AbortError') code = 'RequestTimeout';
  if (status === 412) code = 'PreconditionFailed';
  return new S3Error(code, `S3 ${what}: ${code}${status ? ` (${status})` : ''}`, status, { cause: err });
}

/**
 * Socket errors worth another try: resets and cut bodies, and the network failures the SDK's
 * own retry strategy retries (smithy's NODEJS_NETWORK_ERROR_CODES and NODEJS_TIMEOUT_ERROR_CODES),
 * which reach us directly from DirectRangeGetter.
 */
const RETRYABLE_NETWORK_CODES = new Set([
  'ECONNRESET', 'EPIPE', 'ERR_STREAM_PREMATURE_CLOSE', 'ECONNREFUSED', 'ECONNABORTED',
  'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT',
]);

export function isRetryableBodyError(err: unknown): boolean {
  if (err instanceof S3Error) {
    // status 0: no S3 answer at all (a reset or truncated body, wrapped by call()): judge the cause.
    if (err.status === 0 && err.cause !== undefined && !(err.cause instanceof S3Error)) return err.code === 'RequestTimeout' || isRetryableBodyError(err.cause);
    return err.status >= 500 || err.code === 'RequestTimeout' || err.code === 'SlowDown';
  }
  const code = (err as NodeJS.ErrnoException).code;
  return code !== undefined && RETRYABLE_NETWORK_CODES.has(code)
    || (err as Error).name === 'Error' && /aborted|socket hang up|premature/i.test((err as Error).message);
}

/**
 * A part PUT worth another try: S3's transient answers, and a hash worker that died while
 * signing it (call() wraps that as an S3Error; the next attempt starts a new worker).
 */
export function isRetryablePartError(err: unknown): boolean {
  const cause = err instanceof S3Error ? err.cause : err;
  return cause instanceof HashWorkerLost || isRetryableBodyError(err);
}

/**
 * Copy a GET body into one buffer. 'data' events, not `for await`: the async iterator cost a
 * promise and a microtask per 64 KiB chunk (16,384 per GiB; ~10 % of a read's CPU here).
 * `finished` reports resets and premature closes as errors (retried by getRange).
 */
function readBodyInto(body: Readable, length: number, out: Buffer): Promise<Buffer> {
  let offset = 0;
  return new Promise<Buffer>((resolve, reject) => {
    body.on('data', (c: Buffer) => {
      if (offset + c.length > length) {
        body.destroy(new S3Error('InvalidRange', 'S3 returned more bytes than requested', 200));
        return;
      }
      c.copy(out, offset);
      offset += c.length;
      s3Stats.down(c.length);
    });
    finished(body, (err) => {
      if (err) {
        markCutShort(err, offset);
        reject(err);
      } else if (offset !== length) {
        const e = new Error(`premature end of body: ${offset} of ${length} bytes`) as NodeJS.ErrnoException;
        e.code = 'ERR_STREAM_PREMATURE_CLOSE';
        markCutShort(e, offset);
        reject(e);
      } else resolve(out);
    });
  });
}

/**
 * After a failed first-byte stat, may HeadObject still answer? For an empty object (416) and
 * what is not S3's final word (a reset, a 5xx: the SDK retries those) — not after our own
 * timeout, which would make an open wait twice --read-timeout.
 */
function headMayAnswer(err: unknown): boolean {
  if (!(err instanceof S3Error)) return isRetryableBodyError(err);
  if (err.code === 'InvalidRange') return true;
  const ourTimeout = err.code === 'RequestTimeout' && err.status === 0;
  return !ourTimeout && isRetryableBodyError(err);
}

/**
 * Should ranged GETs use DirectRangeGetter? Not through a proxy (it connects directly), and not
 * when the user asked for the SDK.
 */
function directGetsAllowed(endpoint: string | undefined, region: string, env: NodeJS.ProcessEnv = process.env): boolean {
  if (!directGetsWanted(env)) return false;
  // AWS itself: only where the host is s3.<region>.amazonaws.com — not China, GovCloud or ISO,
  // not with the endpoint, FIPS or dual-stack settings the SDK reads from the environment.
  if (endpoint === undefined) {
    if (env['AWS_ENDPOINT_URL_S3'] || env['AWS_ENDPOINT_URL'] || /^true$/i.test(env['AWS_USE_FIPS_ENDPOINT'] ?? '') || /^true$/i.test(env['AWS_USE_DUALSTACK_ENDPOINT'] ?? '')) return false;
    if (!isAwsPartitionRegion(region)) return false;
  }
  if (!proxyConfigured(env)) return true;
  // Virtual-hosted AWS hosts vary per bucket; with a proxy configured, leave AWS to the SDK.
  return endpoint !== undefined && proxyForUrl(endpoint, env) === undefined;
}

export class AwsObjectStore implements ObjectStore {
  private sdkClient: S3Client | undefined;
  private readonly timeoutMs: number;
  /** The fast path for ranged GETs (its `usable` goes false once it met an answer it cannot read). */
  private readonly direct: DirectRangeGetter | undefined;

  constructor(private readonly opts: AwsObjectStoreOptions) {
    this.timeoutMs = opts.requestTimeoutMs ?? 60_000;
    if (directGetsAllowed(opts.endpoint, opts.region ?? 'us-east-1')) {
      this.direct = new DirectRangeGetter({ ...(opts.endpoint ? { endpoint: opts.endpoint } : {}), region: opts.region ?? 'us-east-1', credentials: opts.credentials });
    }
  }

  /**
   * The SDK client, made on first use: reads on the lean path never need it, and its set-up and
   * first request cost a fresh mount's first open ≈ 25 ms of CPU (bench/README.md, "Session 12").
   */
  private get client(): S3Client {
    return (this.sdkClient ??= this.makeClient());
  }

  private makeClient(): S3Client {
    // Node 20 is this project's runtime and the SDK version is locked: its notice that later SDK
    // releases will need Node 22 went to every mount's stderr, for users who can do nothing about it.
    process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true';
    const opts = this.opts;
    const agentOpts = { keepAlive: true, maxSockets: 256 };
    const client = new S3Client({
      ...(opts.endpoint ? { endpoint: opts.endpoint, forcePathStyle: true } : {}),
      region: opts.region ?? 'us-east-1',
      followRegionRedirects: true,
      credentials: opts.credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // SigV4's payload SHA-256 of a part in shared memory is computed on a worker thread.
      sha256: OffThreadSha256,
      maxAttempts: opts.maxAttempts ?? 5,
      requestHandler: {
        // HTTPS_PROXY/HTTP_PROXY/NO_PROXY and AWS_CA_BUNDLE applied (src/net/proxy.ts).
        ...s3Agents(agentOpts),
        connectionTimeout: 10_000,
      },
    });
    if (opts.unsignedPayload ?? unsignedPayloadByDefault(opts.endpoint)) {
      // A declared payload hash is what the signer signs (it computes one only when none is
      // declared), so declaring UNSIGNED-PAYLOAD before signing skips hashing the body.
      client.middlewareStack.add((next, context) => async (args) => {
        const request = args.request as { headers?: Record<string, string> } | undefined;
        if (request?.headers && UNSIGNED_PAYLOAD_COMMANDS.has(context.commandName ?? '')) {
          request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
        }
        return next(args);
      }, { step: 'build', name: 'synapseMountUnsignedPayload' });
    }
    // Count every HTTP attempt (inside the SDK's retry middleware) for `synapse-mount status`.
    client.middlewareStack.add((next) => async (args) => {
      s3Stats.request();
      try {
        return await next(args);
      } catch (err) {
        s3Stats.error();
        throw err;
      }
    }, { step: 'finalizeRequest', priority: 'low', name: 'synapseMountS3Stats' });
    return client;
  }

  /** Run one SDK call with a timeout; on ExpiredToken refresh credentials once. */
  private async call<T>(what: string, fn: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const timeout = AbortSignal.timeout(this.timeoutMs);
      const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
      try {
        return await fn(combined);
      } catch (err) {
        const s3err = toS3Error(err, what);
        if (timeout.aborted) throw new S3Error('RequestTimeout', `S3 ${what}: no answer within ${this.timeoutMs} ms`, 0, { cause: err });
        if ((s3err.code === 'ExpiredToken' || s3err.code === 'InvalidToken') && attempt === 0 && this.opts.onCredentialsExpired) {
          this.opts.onCredentialsExpired();
          continue;
        }
        throw s3err;
      }
    }
  }

  async getRange(loc: S3Location, start: number, end: number, opts: { ifMatch?: string; signal?: AbortSignal; alloc?: Alloc } = {}): Promise<RangeResult> {
    const length = end - start;
    if (length <= 0) return { data: Buffer.alloc(0) };
    const tries = new GetTries(BODY_ATTEMPTS, `s3:${this.opts.endpoint ?? ''}/${loc.bucket}`);
    for (;;) {
      try {
        const got = await this.call('GetObject', async (signal) => {
          const out = opts.alloc ? opts.alloc(length) : Buffer.allocUnsafe(length);
          const direct = await this.directGet(loc, start, end, out, opts.ifMatch, signal);
          if (direct) return direct;
          const res = await this.client.send(new GetObjectCommand({
            Bucket: loc.bucket, Key: loc.key, Range: `bytes=${start}-${end - 1}`,
            ...(opts.ifMatch ? { IfMatch: `"${opts.ifMatch}"` } : {}),
          }), { abortSignal: signal });
          const body = res.Body as Readable;
          try {
            const data = await readBodyInto(body, length, out);
            const etag = stripQuotes(res.ETag);
            return etag ? { data, etag } : { data };
          } catch (err) {
            body.destroy();
            s3Stats.error(); // the middleware saw this attempt succeed: its body was cut short
            throw err;
          }
        }, opts.signal);
        tries.answered();
        return got;
      } catch (err) {
        if (opts.signal?.aborted || !isRetryableBodyError(err) || !tries.another(err)) throw toS3Error(err, 'GetObject');
        // Capped at 1 s even when S3 says SlowDown: a read waits under --read-timeout (3 s in
        // some deployments' tests, 30 s by default), and 8 tries (16 SlowDowns) should fit inside it.
        await backoff(tries.step, 1000);
      }
    }
  }

  /**
   * The GET through DirectRangeGetter, or undefined when the SDK must make it: the reader is off,
   * or this answer is one it hands over (a redirect for this request; anything else for good).
   */
  private async directGet(loc: S3Location, start: number, end: number, out: Buffer, ifMatch: string | undefined, signal: AbortSignal): Promise<RangeResult | undefined> {
    return this.lean(async (direct) => {
      const { etag } = await direct.getInto(loc, start, end, out, { ...(ifMatch ? { ifMatch } : {}), signal });
      return etag ? { data: out, etag } : { data: out };
    });
  }

  /** `request` on the lean path; undefined when there is none or it hands this request to the SDK. */
  private async lean<T>(request: (direct: DirectRangeGetter) => Promise<T>): Promise<T | undefined> {
    if (!this.direct?.usable) return undefined;
    try {
      return await request(this.direct);
    } catch (err) {
      if (err instanceof DirectGetUnsupported) return undefined;
      throw err;
    }
  }

  async head(loc: S3Location): Promise<{ size: number; etag: string }> {
    const res = await this.call('HeadObject', (signal) =>
      this.client.send(new HeadObjectCommand({ Bucket: loc.bucket, Key: loc.key }), { abortSignal: signal }));
    return { size: res.ContentLength ?? 0, etag: stripQuotes(res.ETag) ?? '' };
  }

  /**
   * What an open pins: size and ETag from a GET of the first byte (of `first.length` bytes, into
   * `first`, when given) on the lean path (direct-range-get.ts `stat`); from HeadObject when
   * there is no lean path, when it hands the request over, or after a failure HeadObject may
   * still answer (`headMayAnswer`; an object shorter than `first` is one: InvalidRange).
   */
  async readVersion(loc: S3Location, first?: Buffer): Promise<ObjectVersion> {
    if (this.direct?.statUsable) {
      try {
        const stat = await this.call(first ? 'GetObject' : 'HeadObject', (signal) => this.lean((direct) => direct.stat(loc, { signal, ...(first ? { into: first } : {}) })));
        if (stat) return stat;
      } catch (err) {
        if (!headMayAnswer(err)) throw err;
      }
    }
    return this.head(loc);
  }

  async putObject(loc: S3Location, body: Buffer, opts: { contentMd5Base64?: string; contentType?: string } = {}): Promise<{ etag: string }> {
    const res = await this.call('PutObject', (signal) => this.client.send(new PutObjectCommand({
      Bucket: loc.bucket, Key: loc.key, Body: body, ContentLength: body.length,
      ...(opts.contentMd5Base64 ? { ContentMD5: opts.contentMd5Base64 } : {}),
      ...(opts.contentType ? { ContentType: opts.contentType } : {}),
    }), { abortSignal: signal }));
    s3Stats.up(body.length);
    return { etag: stripQuotes(res.ETag) ?? '' };
  }

  async createMultipartUpload(loc: S3Location, opts: { contentType?: string } = {}): Promise<string> {
    const res = await this.call('CreateMultipartUpload', (signal) => this.client.send(new CreateMultipartUploadCommand({
      Bucket: loc.bucket, Key: loc.key, ...(opts.contentType ? { ContentType: opts.contentType } : {}),
    }), { abortSignal: signal }));
    if (!res.UploadId) throw new S3Error('InvalidResponse', 'S3 CreateMultipartUpload returned no UploadId', 200);
    return res.UploadId;
  }

  async uploadPart(loc: S3Location, uploadId: string, partNumber: number, body: Buffer, contentMd5Base64?: string): Promise<string> {
    let spent = 0; // of PART_ATTEMPTS: a SlowDown costs half a try (retry.ts)
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.call('UploadPart', (signal) => this.client.send(new UploadPartCommand({
          Bucket: loc.bucket, Key: loc.key, UploadId: uploadId, PartNumber: partNumber, Body: body, ContentLength: body.length,
          ...(contentMd5Base64 ? { ContentMD5: contentMd5Base64 } : {}),
        }), { abortSignal: signal }));
        s3Stats.up(body.length);
        return stripQuotes(res.ETag) ?? '';
      } catch (err) {
        spent += tryCost(err);
        if (spent >= PART_ATTEMPTS || !isRetryablePartError(err)) throw toS3Error(err, 'UploadPart');
        await backoff(attempt + 3, 4000);
      }
    }
  }

  async completeMultipartUpload(loc: S3Location, uploadId: string, parts: CompletedPart[]): Promise<{ etag: string }> {
    const sorted = [...parts].sort((a, b) => a.partNumber - b.partNumber);
    const res = await this.call('CompleteMultipartUpload', (signal) => this.client.send(new CompleteMultipartUploadCommand({
      Bucket: loc.bucket, Key: loc.key, UploadId: uploadId,
      MultipartUpload: { Parts: sorted.map((p) => ({ PartNumber: p.partNumber, ETag: `"${p.etag}"` })) },
    }), { abortSignal: signal }));
    return { etag: stripQuotes(res.ETag) ?? '' };
  }

  async abortMultipartUpload(loc: S3Location, uploadId: string): Promise<void> {
    await this.call('AbortMultipartUpload', (signal) => this.client.send(new AbortMultipartUploadCommand({
      Bucket: loc.bucket, Key: loc.key, UploadId: uploadId,
    }), { abortSignal: signal }));
  }

  async deleteObject(loc: S3Location): Promise<void> {
    await this.call('DeleteObject', (signal) => this.client.send(new DeleteObjectCommand({ Bucket: loc.bucket, Key: loc.key }), { abortSignal: signal }));
  }

  async streamObject(loc: S3Location, onChunk: (chunk: Buffer) => void): Promise<void> {
    await this.call('GetObject', async (signal) => {
      const res = await this.client.send(new GetObjectCommand({ Bucket: loc.bucket, Key: loc.key }), { abortSignal: signal });
      for await (const chunk of res.Body as Readable) {
        s3Stats.down((chunk as Buffer).length);
        onChunk(chunk as Buffer);
      }
    });
  }

  destroy(): void {
    this.direct?.destroy();
    this.sdkClient?.destroy();
  }
}
