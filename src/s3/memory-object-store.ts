/**
 * In-memory ObjectStore: the fake at the S3 seam (CONVENTIONS §2), for unit tests of the layers
 * above. Multipart parts are kept apart until completed (as S3 does: nothing is visible before
 * CompleteMultipartUpload), part-size rules are S3's (≥ 5 MiB except the last), and every call
 * is counted. `failNext(op, n)` makes the next n calls of an op fail with an S3Error.
 */
import { createHash, randomUUID } from 'node:crypto';
import { S3Error, type CompletedPart, type ObjectStore, type RangeResult, type S3Location } from './object-store.js';

const MIN_PART = 5 * 1024 * 1024;

interface Upload {
  loc: S3Location;
  parts: Map<number, { data: Buffer; etag: string }>;
}

export class MemoryObjectStore implements ObjectStore {
  readonly objects = new Map<string, { data: Buffer; etag: string }>();
  readonly uploads = new Map<string, Upload>();
  readonly calls: Record<string, number> = {};
  private readonly failures: Record<string, number> = {};
  /** Resolve to hold uploadPart calls (to observe backpressure). */
  partGate: Promise<void> | undefined;
  maxConcurrentParts = 0;
  private partsNow = 0;

  private k(loc: S3Location): string {
    return `${loc.bucket}/${loc.key}`;
  }

  failNext(op: string, times = 1): void {
    this.failures[op] = times;
  }

  private enter(op: string): void {
    this.calls[op] = (this.calls[op] ?? 0) + 1;
    if ((this.failures[op] ?? 0) > 0) {
      this.failures[op]!--;
      throw new S3Error('InternalError', `injected ${op} failure`, 500);
    }
  }

  async getRange(loc: S3Location, start: number, end: number, opts: { ifMatch?: string } = {}): Promise<RangeResult> {
    this.enter('getRange');
    const o = this.objects.get(this.k(loc));
    if (!o) throw new S3Error('NoSuchKey', 'no such key', 404);
    if (opts.ifMatch && opts.ifMatch !== o.etag) throw new S3Error('PreconditionFailed', 'etag mismatch', 412);
    return { data: o.data.subarray(start, end), etag: o.etag };
  }

  async head(loc: S3Location): Promise<{ size: number; etag: string }> {
    this.enter('head');
    const o = this.objects.get(this.k(loc));
    if (!o) throw new S3Error('NotFound', 'not found', 404);
    return { size: o.data.length, etag: o.etag };
  }

  async putObject(loc: S3Location, body: Buffer, opts: { contentMd5Base64?: string } = {}): Promise<{ etag: string }> {
    this.enter('putObject');
    const md5 = createHash('md5').update(body).digest();
    if (opts.contentMd5Base64 && opts.contentMd5Base64 !== md5.toString('base64')) throw new S3Error('BadDigest', 'md5 mismatch', 400);
    const etag = md5.toString('hex');
    this.objects.set(this.k(loc), { data: Buffer.from(body), etag });
    return { etag };
  }

  async createMultipartUpload(loc: S3Location): Promise<string> {
    this.enter('createMultipartUpload');
    const id = randomUUID();
    this.uploads.set(id, { loc, parts: new Map() });
    return id;
  }

  async uploadPart(_loc: S3Location, uploadId: string, partNumber: number, body: Buffer, contentMd5Base64?: string): Promise<string> {
    this.partsNow++;
    this.maxConcurrentParts = Math.max(this.maxConcurrentParts, this.partsNow);
    try {
      if (this.partGate) await this.partGate;
      this.enter('uploadPart');
      const u = this.uploads.get(uploadId);
      if (!u) throw new S3Error('NoSuchUpload', 'no such upload', 404);
      const md5 = createHash('md5').update(body).digest();
      if (contentMd5Base64 && contentMd5Base64 !== md5.toString('base64')) throw new S3Error('BadDigest', 'md5 mismatch', 400);
      const etag = md5.toString('hex');
      u.parts.set(partNumber, { data: Buffer.from(body), etag });
      return etag;
    } finally {
      this.partsNow--;
    }
  }

  async completeMultipartUpload(loc: S3Location, uploadId: string, parts: CompletedPart[]): Promise<{ etag: string }> {
    this.enter('completeMultipartUpload');
    const u = this.uploads.get(uploadId);
    if (!u) throw new S3Error('NoSuchUpload', 'no such upload', 404);
    const sorted = [...parts].sort((a, b) => a.partNumber - b.partNumber);
    const chunks: Buffer[] = [];
    sorted.forEach((p, i) => {
      const stored = u.parts.get(p.partNumber);
      if (!stored || stored.etag !== p.etag) throw new S3Error('InvalidPart', `part ${p.partNumber}`, 400);
      if (i < sorted.length - 1 && stored.data.length < MIN_PART) throw new S3Error('EntityTooSmall', 'part too small', 400);
      chunks.push(stored.data);
    });
    const data = Buffer.concat(chunks);
    const etag = `${createHash('md5').update(data).digest('hex')}-${sorted.length}`;
    this.objects.set(this.k(loc), { data, etag });
    this.uploads.delete(uploadId);
    return { etag };
  }

  async abortMultipartUpload(_loc: S3Location, uploadId: string): Promise<void> {
    this.enter('abortMultipartUpload');
    // As S3: an upload it does not know (completed, or aborted before) is 404 NoSuchUpload.
    if (!this.uploads.delete(uploadId)) throw new S3Error('NoSuchUpload', 'no such upload', 404);
  }

  async deleteObject(loc: S3Location): Promise<void> {
    this.enter('deleteObject');
    this.objects.delete(this.k(loc));
  }

  async streamObject(loc: S3Location, onChunk: (chunk: Buffer) => void): Promise<void> {
    this.enter('streamObject');
    const o = this.objects.get(this.k(loc));
    if (!o) throw new S3Error('NoSuchKey', 'no such key', 404);
    onChunk(o.data);
  }
}
