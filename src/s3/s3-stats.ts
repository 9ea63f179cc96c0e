/**
 * Process-wide S3 traffic counters for `synapse-mount status`: every HTTP attempt against S3 —
 * SDK calls with STS credentials (aws-object-store.ts, counted per attempt, retries included),
 * presigned ranged GETs (presigned-store.ts) and presigned part PUTs of Synapse's multipart API
 * (publisher.ts). One serving process serves one mount, so process-wide is per-mount.
 *
 * An error is an attempt that got no usable answer: an HTTP status ≥ 400 (the SDK's retries
 * of a 503 each count), a network failure, or a body cut short.
 */

export interface S3Counters {
  /** HTTP attempts sent. */
  requests: number;
  /** Attempts that failed (status ≥ 400, network error, truncated body). */
  errors: number;
  /** Body bytes received (GETs). */
  bytesDown: number;
  /** Body bytes sent (PUT object, upload part). */
  bytesUp: number;
  /**
   * Ranged GETs answered through the lean reader (range-wire.ts), the first-byte GETs that pin
   * an object's version at open included; the others went through the AWS SDK or fetch (a
   * proxy, SYNAPSE_MOUNT_S3_GET=sdk, or a server it cannot read).
   */
  leanGets: number;
  /**
   * Of those, the GETs whose body was read under a socket low-water mark (receive-low-water.ts):
   * 0 without the patched addon, with SYNAPSE_MOUNT_RCVLOWAT=0, on kernels before 5.10, and for
   * bodies too short for one.
   */
  markedGets: number;
}

const counters: S3Counters = { requests: 0, errors: 0, bytesDown: 0, bytesUp: 0, leanGets: 0, markedGets: 0 };

export const s3Stats = {
  request(): void {
    counters.requests++;
  },
  error(): void {
    counters.errors++;
  },
  down(bytes: number): void {
    counters.bytesDown += bytes;
  },
  up(bytes: number): void {
    counters.bytesUp += bytes;
  },
  leanGet(): void {
    counters.leanGets++;
  },
  markedGet(): void {
    counters.markedGets++;
  },
  snapshot(): S3Counters {
    return { ...counters };
  },
  /** Tests only. */
  reset(): void {
    counters.requests = 0;
    counters.errors = 0;
    counters.bytesDown = 0;
    counters.bytesUp = 0;
    counters.leanGets = 0;
    counters.markedGets = 0;
  },
};
