/**
 * Knobs of the local Synapse + S3 stack and their defaults.
 *
 * Defaults mirror production Synapse: STS credentials live 1 hour (3600 s), presigned download
 * URLs 30 s (FileHandleManagerImpl.PRESIGNED_URL_EXPIRE_TIME_S), children pages hold 50 entries,
 * throttling is 3 concurrent requests and 600 requests per sliding 60 s per user; a table/view
 * query page holds at most 2 MiB of (maximum-width) rows (org.sagebionetworks.table.max.bytes.per.request
 * = 2097152, so maxRowsPerPage = 2097152 / row width). Throttling and latency are off by default so
 * unit-style tests run fast; benches turn them on.
 *
 * `viewSnapshotAtMs` plays the eventual consistency of entity views: 0 (default) = views show the
 * entities as they are now; T > 0 (ms since the epoch) = view replication stopped at T, so a view
 * query answers with the entities created by T and, for each file, the newest version made by T
 * (names, parents and trash state are always current).
 */

export interface StackOptions {
  synapseLatencyMs?: number;
  s3LatencyMs?: number;
  stsLifetimeSec?: number;
  presignedUrlLifetimeSec?: number;
  childrenPageSize?: number;
  throttle?: boolean;
  tableMaxBytesPerPage?: number;
  viewSnapshotAtMs?: number;
  fixture?: 'sample' | 'empty';
  port?: number;
  s3Port?: number;
  dataDir?: string;
}

/** The knobs that can change at runtime (POST /_dev/config). */
export interface DevConfig {
  synapseLatencyMs: number;
  s3LatencyMs: number;
  stsLifetimeSec: number;
  presignedUrlLifetimeSec: number;
  childrenPageSize: number;
  throttle: boolean;
  tableMaxBytesPerPage: number;
  viewSnapshotAtMs: number;
}

export const DEFAULT_CONFIG: Readonly<DevConfig> = {
  synapseLatencyMs: 0,
  s3LatencyMs: 0,
  stsLifetimeSec: 3600,
  presignedUrlLifetimeSec: 30,
  childrenPageSize: 50,
  throttle: false,
  tableMaxBytesPerPage: 2_097_152,
  viewSnapshotAtMs: 0,
};

/** Production limits enforced when `throttle` is on. */
export const THROTTLE_MAX_CONCURRENT = 3;
export const THROTTLE_MAX_PER_WINDOW = 600;
export const THROTTLE_WINDOW_MS = 60_000;

/** S3 limits (AWS documentation): 5 MiB minimum part except the last, parts 1..10,000. */
export const S3_MIN_PART_SIZE = 5 * 1024 * 1024;
export const S3_MAX_PARTS = 10_000;

/** Synapse presigns multipart part-upload URLs for 15 minutes (S3MultipartUploadDAOImpl). */
export const PART_URL_LIFETIME_SEC = 15 * 60;

/** Synapse's fileHandle/batch limit (FileHandleManagerImpl.MAX_REQUESTS_PER_CALL). */
export const MAX_BATCH_FILE_REQUESTS = 100;

/** Copy the knob fields present in `partial` onto `target` after validating their types. */
export function applyConfig(target: DevConfig, partial: Record<string, unknown>): string | null {
  const numeric: Array<keyof DevConfig> = [
    'synapseLatencyMs', 's3LatencyMs', 'stsLifetimeSec', 'presignedUrlLifetimeSec', 'childrenPageSize',
    'tableMaxBytesPerPage', 'viewSnapshotAtMs',
  ];
  for (const k of numeric) {
    const v = partial[k];
    if (v === undefined) continue;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) return `${k} must be a non-negative number`;
    if ((k === 'childrenPageSize' || k === 'tableMaxBytesPerPage') && (v < 1 || !Number.isInteger(v))) return `${k} must be a positive integer`;
  }
  if (partial.throttle !== undefined && typeof partial.throttle !== 'boolean') return 'throttle must be a boolean';
  for (const k of numeric) {
    const v = partial[k];
    if (typeof v === 'number') (target as unknown as Record<string, number>)[k] = v;
  }
  if (typeof partial.throttle === 'boolean') target.throttle = partial.throttle;
  return null;
}
