/**
 * FaultyObjectStore: a failure-injecting wrapper around any ObjectStore (CONVENTIONS §2, after
 * mountpoint-s3's failure_client.rs) — the S3 twin of src/synapse/faulty-api.ts, with the same
 * script shape.
 *
 * `fail('getRange', { times: 2, code: 'SlowDown', status: 503 })` makes the next two getRange
 * calls throw S3Error('SlowDown', …, 503) without reaching the wrapped store;
 * `failNext(op, times, code?, status?)` is the short form. Options: `skip` (let calls through
 * first), `afterCall` (do the real call, then throw — S3 stored the part or object but the
 * answer was lost), `error` (throw this instead), `delayMs` (wait before answering, failing or
 * not). Default error: S3Error('InternalError', 'injected failure', 500). `calls` counts every
 * call per op, `injected` the failures thrown.
 *
 * MemoryObjectStore has its own `failNext` for quick cases; this wrapper works over any store
 * (AwsObjectStore against the local S3 included) and adds skip/afterCall/delay.
 */
import { FaultScript, type ScriptedFault } from '../fault-script.js';
import { S3Error, type CompletedPart, type ObjectStore, type RangeResult, type S3Location } from './object-store.js';

export type ObjectStoreOp = keyof ObjectStore;

export interface S3Fault extends ScriptedFault {
  /** S3 error code of the injected S3Error (default InternalError). */
  code?: string;
  /** Its HTTP status (default 500). */
  status?: number;
}

export class FaultyObjectStore implements ObjectStore {
  private readonly script = new FaultScript<ObjectStoreOp, S3Fault>();
  readonly calls = this.script.calls;
  readonly injected = this.script.injected;

  constructor(readonly inner: ObjectStore) {}

  fail(op: ObjectStoreOp, fault: S3Fault = {}): this {
    this.script.add(op, fault);
    return this;
  }

  failNext(op: ObjectStoreOp, times = 1, code = 'InternalError', status = 500): this {
    return this.fail(op, { times, code, status });
  }

  pending(op: ObjectStoreOp): number {
    return this.script.pending(op);
  }

  clear(): void {
    this.script.clear();
  }

  private run<T>(op: ObjectStoreOp, call: () => Promise<T>): Promise<T> {
    return this.script.run(op, call, (f) => new S3Error(f.code ?? 'InternalError', `injected ${op} failure`, f.status ?? 500));
  }

  getRange(loc: S3Location, start: number, end: number, opts?: { ifMatch?: string; signal?: AbortSignal }): Promise<RangeResult> {
    return this.run('getRange', () => this.inner.getRange(loc, start, end, opts));
  }
  head(loc: S3Location): Promise<{ size: number; etag: string }> {
    return this.run('head', () => this.inner.head(loc));
  }
  putObject(loc: S3Location, body: Buffer, opts?: { contentMd5Base64?: string; contentType?: string }): Promise<{ etag: string }> {
    return this.run('putObject', () => this.inner.putObject(loc, body, opts));
  }
  createMultipartUpload(loc: S3Location, opts?: { contentType?: string }): Promise<string> {
    return this.run('createMultipartUpload', () => this.inner.createMultipartUpload(loc, opts));
  }
  uploadPart(loc: S3Location, uploadId: string, partNumber: number, body: Buffer, contentMd5Base64?: string): Promise<string> {
    return this.run('uploadPart', () => this.inner.uploadPart(loc, uploadId, partNumber, body, contentMd5Base64));
  }
  completeMultipartUpload(loc: S3Location, uploadId: string, parts: CompletedPart[]): Promise<{ etag: string }> {
    return this.run('completeMultipartUpload', () => this.inner.completeMultipartUpload(loc, uploadId, parts));
  }
  abortMultipartUpload(loc: S3Location, uploadId: string): Promise<void> {
    return this.run('abortMultipartUpload', () => this.inner.abortMultipartUpload(loc, uploadId));
  }
  deleteObject(loc: S3Location): Promise<void> {
    return this.run('deleteObject', () => this.inner.deleteObject(loc));
  }
  streamObject(loc: S3Location, onChunk: (chunk: Buffer) => void): Promise<void> {
    return this.run('streamObject', () => this.inner.streamObject(loc, onChunk));
  }
}
