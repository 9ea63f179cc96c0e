/**
 * One errno table for the whole filesystem (CONVENTIONS §4).
 *
 * Filesystem ops throw `FsError` (an errno name plus a cause) or let lower-layer errors
 * (SynapseError, S3Error) escape; `toErrno()` maps anything to a negative errno for fuse-native,
 * defaulting to EIO. Keeping the table here means a Synapse 403 is EACCES everywhere, not
 * EACCES in one op and EPERM in another.
 */
import { SynapseError } from '../synapse/errors.js';
import { S3Error } from '../s3/object-store.js';

/** Linux errno values (fuse-native expects negated ones). */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ENODATA: 61,
  ETIMEDOUT: 110,
  ESTALE: 116,
  ENOTSUP: 95,
} as const;

export type ErrnoName = keyof typeof ERRNO;

export class FsError extends Error {
  override readonly name = 'FsError';
  constructor(
    readonly errno: ErrnoName,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function synapseErrno(err: SynapseError): ErrnoName {
  switch (err.status) {
    case 400: return 'EINVAL';
    case 401: return 'EACCES';
    case 403: return 'EACCES';
    case 404: return 'ENOENT';
    case 409: return 'EEXIST';
    // An etag that no longer matches: someone changed the entity meanwhile (after the caller's
    // own retries). ESTALE, as for a version conflict — EAGAIN from close() made programs retry
    // a write that had been journaled (QA); the VFS retries a rename once on ESTALE by itself.
    case 412: return 'ESTALE';
    default: return 'EIO';
  }
}

function s3Errno(err: S3Error): ErrnoName {
  switch (err.code) {
    case 'AccessDenied':
    case 'InvalidToken':
    case 'SignatureDoesNotMatch':
      return 'EACCES';
    case 'NoSuchKey':
    case 'NotFound':
      return 'ENOENT';
    default:
      return 'EIO';
  }
}

export function errnoName(err: unknown): ErrnoName {
  if (err instanceof FsError) return err.errno;
  if (err instanceof SynapseError) return synapseErrno(err);
  if (err instanceof S3Error) return s3Errno(err);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return 'ENOSPC';
  if (code === 'ENOENT') return 'ENOENT';
  if (code === 'EACCES') return 'EACCES';
  return 'EIO';
}

/** Negative errno for fuse-native callbacks. */
export function toErrno(err: unknown): number {
  return -ERRNO[errnoName(err)];
}
