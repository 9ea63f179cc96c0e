/**
 * The local S3: s3rver (in-process, loopback, a temp directory) behind the S3 gate, plus the
 * operations the Synapse server performs on S3 itself — HEAD an object, read owner.txt,
 * create/complete multipart uploads — and the presigned URLs it hands out. Server-side calls use
 * an internal key the gate does not count; presigned URLs are signed with the admin key, exactly
 * like Synapse's own URLs are signed with Synapse's AWS key. Region us-east-1 (any fixed value
 * works: the gate checks the signature with the region the client used).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import S3rver from 's3rver';
import {
  S3Client, HeadObjectCommand, GetObjectCommand, PutObjectCommand, CreateMultipartUploadCommand,
  CompleteMultipartUploadCommand, UploadPartCommand, S3ServiceException,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { S3Gate, type KeyPair, type StsSession } from './s3-gate.js';
import type { DevConfig } from './config.js';
import type { Faults } from './faults.js';
import type { Stats } from './stats.js';

export const S3_REGION = 'us-east-1';

export interface S3BackendOptions {
  dataDir?: string;
  s3Port: number;
  buckets: string[];
  config: DevConfig;
  faults: Faults;
  stats: Stats;
}

const randomKey = (prefix: string, n: number): string => prefix + randomBytes(n).toString('hex').toUpperCase().slice(0, n);

/**
 * S3 keys may be 1,024 bytes, but s3rver stores each key's last segment as a file name plus
 * "._S3rver_object": a file named near Synapse's 256-character limit crashed the whole server
 * (ENAMETOOLONG from a write stream nobody listened to — found by a QA pass). Such segments are
 * stored under a hash instead (only s3rver's own directory listing would show it).
 */
function shortenLongNames(s3rver: S3rver): void {
  const store = (s3rver as unknown as { store: { getResourcePath: (bucket: string, key?: string, resource?: string) => string } }).store;
  const original = store.getResourcePath.bind(store);
  store.getResourcePath = (bucket, key = '', resource) => {
    const full = original(bucket, key, resource);
    const name = path.basename(full);
    if (Buffer.byteLength(name) <= 255) return full;
    const cut = name.lastIndexOf('._S3rver_');
    return path.join(path.dirname(full), `${createHash('sha256').update(name.slice(0, cut)).digest('hex')}${name.slice(cut)}`);
  };
}

export class S3Backend {
  private constructor(
    readonly gate: S3Gate,
    readonly admin: KeyPair,
    private readonly s3rver: S3rver,
    private readonly dataDir: string,
    private readonly removeDataDir: boolean,
    private readonly client: S3Client,
    private readonly presignClient: S3Client,
  ) {}

  get endpoint(): string { return this.gate.endpoint; }

  static async start(opts: S3BackendOptions): Promise<S3Backend> {
    const dataDir = opts.dataDir ?? await mkdtemp(path.join(tmpdir(), 'synapse-mount-s3-'));
    const s3rver = new S3rver({
      port: 0,
      address: '127.0.0.1',
      silent: true,
      directory: dataDir,
      allowMismatchedSignatures: true,
      configureBuckets: opts.buckets.map((name) => ({ name })),
    });
    shortenLongNames(s3rver);
    const addr = await s3rver.run();
    // s3rver's Console transport is silent, but winston still complains about lines logged after
    // close (e.g. an aborted GET finishing late): make the logger itself silent.
    const logger = (s3rver as unknown as { logger?: { silent?: boolean } }).logger;
    if (logger) logger.silent = true;
    const admin: KeyPair = { accessKeyId: randomKey('AKIALOCAL', 11), secretAccessKey: randomBytes(30).toString('base64') };
    const internal: KeyPair = { accessKeyId: randomKey('AKIAINTERNAL', 8), secretAccessKey: randomBytes(30).toString('base64') };
    const gate = new S3Gate({
      backendPort: addr.port, port: opts.s3Port, admin, internal, config: opts.config, faults: opts.faults, stats: opts.stats,
    });
    const endpoint = await gate.start();
    process.env['AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED'] ??= 'true'; // Node 20 is ours (aws-object-store.ts)
    const mk = (k: KeyPair, whenRequired: boolean): S3Client => new S3Client({
      endpoint, region: S3_REGION, forcePathStyle: true, credentials: k,
      ...(whenRequired ? { requestChecksumCalculation: 'WHEN_REQUIRED' as const, responseChecksumValidation: 'WHEN_REQUIRED' as const } : {}),
    });
    return new S3Backend(gate, admin, s3rver, dataDir, opts.dataDir === undefined, mk(internal, true), mk(admin, true));
  }

  async close(): Promise<void> {
    this.client.destroy();
    this.presignClient.destroy();
    await this.gate.close();
    await this.s3rver.close();
    if (this.removeDataDir) await rm(this.dataDir, { recursive: true, force: true });
  }

  registerSession(s: StsSession): void { this.gate.registerSession(s); }

  async head(bucket: string, key: string): Promise<{ size: number; etag: string } | undefined> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return { size: r.ContentLength ?? 0, etag: (r.ETag ?? '').replace(/"/g, '') };
    } catch (e) {
      if (e instanceof S3ServiceException && (e.$metadata.httpStatusCode === 404)) return undefined;
      throw e;
    }
  }

  /** Object bytes, or the S3 error code (NoSuchKey, NoSuchBucket, …). */
  async get(bucket: string, key: string): Promise<Buffer | { code: string }> {
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const body = r.Body;
      if (!body) return Buffer.alloc(0);
      return Buffer.from(await body.transformToByteArray());
    } catch (e) {
      if (e instanceof S3ServiceException) return { code: e.name };
      throw e;
    }
  }

  async put(bucket: string, key: string, body: Buffer, contentType: string): Promise<string> {
    const r = await this.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }));
    return (r.ETag ?? '').replace(/"/g, '');
  }

  async createMultipart(bucket: string, key: string, contentType: string): Promise<string> {
    const r = await this.client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, ContentType: contentType }));
    if (!r.UploadId) throw new Error('CreateMultipartUpload returned no UploadId');
    return r.UploadId;
  }

  /** Completes the upload; returns the object's ETag, or the S3 error code. */
  async completeMultipart(bucket: string, key: string, uploadId: string, parts: Array<{ PartNumber: number; ETag: string }>):
    Promise<{ etag: string } | { code: string; message: string }> {
    try {
      const r = await this.client.send(new CompleteMultipartUploadCommand({
        Bucket: bucket, Key: key, UploadId: uploadId, MultipartUpload: { Parts: parts },
      }));
      return { etag: (r.ETag ?? '').replace(/"/g, '') };
    } catch (e) {
      if (e instanceof S3ServiceException) return { code: e.name, message: e.message };
      throw e;
    }
  }

  partInfo(uploadId: string, partNumber: number): { etag: string; size: number } | undefined {
    return this.gate.partInfo(uploadId, partNumber);
  }

  presignGet(bucket: string, key: string, expiresIn: number, fileName: string, contentType: string): Promise<string> {
    return getSignedUrl(this.presignClient, new GetObjectCommand({
      Bucket: bucket, Key: key,
      ResponseContentDisposition: `attachment; filename=${encodeURIComponent(fileName)}`,
      ResponseContentType: contentType,
    }), { expiresIn: Math.max(1, Math.round(expiresIn)) });
  }

  presignUploadPart(bucket: string, key: string, uploadId: string, partNumber: number, expiresIn: number): Promise<string> {
    return getSignedUrl(this.presignClient, new UploadPartCommand({
      Bucket: bucket, Key: key, UploadId: uploadId, PartNumber: partNumber,
    }), { expiresIn });
  }
}
