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
import { S3Error, type CompletedPart, type ObjectStore, type RangeResult, type S3Location } from './object-store.js';

export type ObjectStoreOp = keyof ObjectStore;

export interface S3Fault {
  times?: number;
  skip?: number;
  /** S3 error code of the injected S3Error (default InternalError). */
  code?: string;
  /** Its HTTP status (default 500). */
  status?: number;
  /** Throw this instead (a value, or built per call from the op name). */
  error?: unknown;
  afterCall?: boolean;
  delayMs?: number;
}

interface Script extends S3Fault {
  /** Failures still to inject. */
  left: number;
  /** Calls still to let through before them. */
  toSkip: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class FaultyObjectStore implements ObjectStore {
  private readonly scripts = new Map<ObjectStoreOp, Script[]>();
  readonly calls: Partial<Record<ObjectStoreOp, number>> = {};
  readonly injected: Partial<Record<ObjectStoreOp, number>> = {};

  constructor(readonly inner: ObjectStore) {}

  fail(op: ObjectStoreOp, fault: S3Fault = {}): this {
    const list = this.scripts.get(op) ?? [];
    list.push({ ...fault, left: fault.times ?? 1, toSkip: fault.skip ?? 0 });
    this.scripts.set(op, list);
    return this;
  }

  failNext(op: ObjectStoreOp, times = 1, code = 'InternalError', status = 500): this {
    return this.fail(op, { times, code, status });
  }

  pending(op: ObjectStoreOp): number {
    return (this.scripts.get(op) ?? []).reduce((n, s) => n + s.left, 0);
  }

  clear(): void {
    this.scripts.clear();
  }

  private take(op: ObjectStoreOp): { fault: Script; fail: boolean } | undefined {
    const list = this.scripts.get(op);
    const s = list?.[0];
    if (!list || !s) return undefined;
    if (s.toSkip > 0) {
      s.toSkip--;
      return { fault: s, fail: false };
    }
    s.left--;
    if (s.left <= 0) list.shift();
    if (list.length === 0) this.scripts.delete(op);
    return { fault: s, fail: true };
  }

  private async run<T>(op: ObjectStoreOp, call: () => Promise<T>): Promise<T> {
    this.calls[op] = (this.calls[op] ?? 0) + 1;
    const t = this.take(op);
    if (t?.fault.delayMs) await sleep(t.fault.delayMs);
    if (!t?.fail) return call();
    this.injected[op] = (this.injected[op] ?? 0) + 1;
    if (t.fault.afterCall) await call();
    const f = t.fault;
    if (f.error !== undefined) throw typeof f.error === 'function' ? (f.error as (o: string) => unknown)(op) : f.error;
    throw new S3Error(f.code ?? 'InternalError', `injected ${op} failure`, f.status ?? 500);
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
  streamObject(loc: S3Location, onChunk: (chunk: Buffer) => void): Promise<void> {
    return this.run('streamObject', () => this.inner.streamObject(loc, onChunk));
  }
}
