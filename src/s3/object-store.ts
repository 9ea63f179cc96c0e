/**
 * ObjectStore: the seam between the filesystem and S3-compatible object storage.
 *
 * Knows nothing of Synapse. Two ways in:
 *  - `ObjectStore` for direct S3 calls with credentials (STS-enabled storage, the admin client
 *    in tests); implemented by aws-object-store.ts.
 *  - `RangeSource` for reading one immutable object by byte ranges, whatever the transport
 *    (S3 with credentials, or presigned URLs from Synapse); the block cache reads through it.
 * Errors are `S3Error` with S3's error code (AccessDenied, ExpiredToken, NoSuchKey,
 * PreconditionFailed, …) so the errno table can map them without knowing the SDK.
 */

export interface S3Location {
  bucket: string;
  key: string;
}

export class S3Error extends Error {
  override readonly name = 'S3Error';
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface RangeResult {
  data: Buffer;
  /** ETag of the object the bytes came from (quotes stripped), when the server said. */
  etag?: string;
}

/** Supplies the buffer a body of `length` bytes is read into (a pool of block buffers). */
export type Alloc = (length: number) => Buffer;

export interface CompletedPart {
  partNumber: number;
  etag: string;
}

/** What an open pins (readVersion), and whether the object's first bytes came with it. */
export interface ObjectVersion {
  size: number;
  etag: string;
  firstBytes?: number;
}

export interface ObjectStore {
  /** Bytes [start, end) of the object. `ifMatch` pins the version: a changed object → S3Error PreconditionFailed. */
  getRange(loc: S3Location, start: number, end: number, opts?: { ifMatch?: string; signal?: AbortSignal; alloc?: Alloc }): Promise<RangeResult>;
  head(loc: S3Location): Promise<{ size: number; etag: string }>;
  /**
   * Size and ETag of the version a read would get now (an open pins it, s3-range-source.ts).
   * Unlike head(), it may read the object's first byte to learn them — cheaper where reads have
   * a path of their own — so it needs what reading needs (an archived object or a KMS key the
   * caller may not use fails here, as the reads after it would). Stores without a cheaper way
   * leave it out, and callers use head().
   *
   * With `first`, the same GET asks for the object's first `first.length` bytes instead of one
   * (a small file's open then costs one request for both its version and its bytes);
   * `firstBytes` says `first` holds them. Absent (the answer came from HeadObject, or the object
   * is shorter than asked): `first` holds nothing.
   */
  readVersion?(loc: S3Location, first?: Buffer): Promise<ObjectVersion>;
  putObject(loc: S3Location, body: Buffer, opts?: { contentMd5Base64?: string; contentType?: string }): Promise<{ etag: string }>;
  createMultipartUpload(loc: S3Location, opts?: { contentType?: string }): Promise<string>;
  uploadPart(loc: S3Location, uploadId: string, partNumber: number, body: Buffer, contentMd5Base64?: string): Promise<string>;
  completeMultipartUpload(loc: S3Location, uploadId: string, parts: CompletedPart[]): Promise<{ etag: string }>;
  abortMultipartUpload(loc: S3Location, uploadId: string): Promise<void>;
  /** Remove an object (a streamed upload read back into the spool leaves one behind). */
  deleteObject(loc: S3Location): Promise<void>;
  /** Stream the whole object through `onChunk` (for hashing without holding it in memory). */
  streamObject(loc: S3Location, onChunk: (chunk: Buffer) => void): Promise<void>;
}

/**
 * Reads one immutable object by ranges. `cacheKey` names the exact bytes (a Synapse file handle
 * id), so blocks cached under it can never be stale: file handles are immutable in Synapse.
 */
export interface RangeSource {
  readonly cacheKey: string;
  readonly size: number;
  read(start: number, end: number, signal?: AbortSignal, alloc?: Alloc): Promise<Buffer>;
  /**
   * A read of this source is waiting for the mount itself (a presigned URL queued behind the
   * mount's own Synapse pacing), not for the network: --read-timeout does not run out then.
   */
  heldBack?(): boolean;
}
