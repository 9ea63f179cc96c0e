/**
 * STS credential cache: temporary AWS credentials from `GET /entity/{id}/sts?permission=…`, kept
 * per (scope key, permission) so every file of one STS storage location shares one set.
 *
 * - Scope key: the caller's choice of what the credentials cover — normally the storage location
 *   (e.g. `"sl:" + storageLocationId`), since Synapse scopes the credentials to the location's
 *   bucket/baseKey and any entity in it yields the same scope. The entity id passed with `get` is
 *   only what the request is made for (any entity in that location will do).
 * - Single flight: concurrent `get`s of one key share one request. A failed fetch is not cached;
 *   every waiter of that flight sees the error, the next `get` tries again.
 * - Refresh before expiry: an entry is served while more than `threshold` remains, where
 *   threshold = min(minRemainingMs, lifetime / 2) and lifetime = expiration − time of fetch. The
 *   default 5 minutes matches the AWS SDK's own refresh window for credentials with an
 *   `expiration` (it calls the provider again when < 5 min remain), so one provider call after the
 *   SDK's refresh decision always gets fresh credentials. The lifetime/2 cap keeps short-lived
 *   tokens usable: Synapse issues 1-hour tokens (threshold 5 min), the local test server 1–2 s ones
 *   (2 s token → refreshed at 1 s left, not on every call).
 * - `invalidate(key)` after S3 answered ExpiredToken/InvalidToken (clock skew, revoked session):
 *   the next `get` fetches anew.
 * - Bounded: an LRU of at most `maxEntries` (default 100) resolved entries; a mount touches a handful
 *   of storage locations, 100 leaves ample room while capping a pathological caller.
 * - `now` is injectable so tests drive time; it must be the clock that `expiration` is compared to
 *   (milliseconds since the epoch).
 *
 * `credentialProvider` adapts an entry to the AWS SDK v3 `AwsCredentialIdentityProvider` shape
 * (`() => Promise<{accessKeyId, secretAccessKey, sessionToken, expiration: Date}>`) without
 * importing the SDK.
 */
import { LRUCache } from 'lru-cache';
import type { StsCredentials, StsPermission } from './types.js';

export type StsFetcher = (entityId: string, permission: StsPermission) => Promise<StsCredentials>;

export interface StsCacheOptions {
  /** Fetches credentials, e.g. `(id, p) => client.getStsCredentials(id, p)`. */
  fetch: StsFetcher;
  /** Refresh when less than this remains (capped at half the lifetime); default 5 min. */
  minRemainingMs?: number;
  /** Most (scope, permission) entries kept; default 100. */
  maxEntries?: number;
  /** Clock in epoch milliseconds; default Date.now. */
  now?: () => number;
}

/** The AWS SDK v3 credential identity shape. */
export interface AwsCredentialIdentity {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
}

export type AwsCredentialProvider = () => Promise<AwsCredentialIdentity>;

export const DEFAULT_MIN_REMAINING_MS = 5 * 60_000;
export const DEFAULT_MAX_ENTRIES = 100;

interface Entry {
  creds: StsCredentials;
  expiresAt: number;
  /** Refresh once expiresAt − now ≤ threshold. */
  threshold: number;
}

export class StsCredentialCache {
  readonly #fetch: StsFetcher;
  readonly #minRemainingMs: number;
  readonly #now: () => number;
  readonly #entries: LRUCache<string, Entry>;
  /** INVARIANT: holds a key only while its fetch is pending (deleted on settle). */
  readonly #inFlight = new Map<string, Promise<StsCredentials>>();
  #fetches = 0;

  constructor(opts: StsCacheOptions) {
    this.#fetch = opts.fetch;
    this.#minRemainingMs = opts.minRemainingMs ?? DEFAULT_MIN_REMAINING_MS;
    this.#now = opts.now ?? Date.now;
    const max = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxEntries must be a positive integer, got ${max}`);
    this.#entries = new LRUCache<string, Entry>({ max });
  }

  /** Credentials for `scopeKey`, fetched for `entityIdForRequest` when missing or near expiry. */
  get(scopeKey: string, entityIdForRequest: string, permission: StsPermission): Promise<StsCredentials> {
    const key = cacheKey(scopeKey, permission);
    const entry = this.#entries.get(key);
    if (entry !== undefined && entry.expiresAt - this.#now() > entry.threshold) return Promise.resolve(entry.creds);
    const pending = this.#inFlight.get(key);
    if (pending !== undefined) return pending;

    const flight = this.#start(key, entityIdForRequest, permission);
    this.#inFlight.set(key, flight);
    const clear = (): void => { if (this.#inFlight.get(key) === flight) this.#inFlight.delete(key); };
    flight.then(clear, clear);
    return flight;
  }

  async #start(key: string, entityId: string, permission: StsPermission): Promise<StsCredentials> {
    this.#fetches++;
    const fetchedAt = this.#now();
    const creds = await this.#fetch(entityId, permission);
    const expiresAt = Date.parse(creds.expiration);
    if (Number.isNaN(expiresAt)) throw new TypeError(`STS credentials for ${entityId} have an unparseable expiration`);
    const lifetime = Math.max(0, expiresAt - fetchedAt);
    this.#entries.set(key, { creds, expiresAt, threshold: Math.min(this.#minRemainingMs, lifetime / 2) });
    return creds;
  }

  /** Forget the credentials of `scopeKey` (one permission, or both when omitted). */
  invalidate(scopeKey: string, permission?: StsPermission): void {
    for (const p of permission === undefined ? (['read_only', 'read_write'] as const) : [permission]) {
      this.#entries.delete(cacheKey(scopeKey, p));
    }
  }

  /**
   * An AWS-SDK-compatible provider for one scope. The SDK calls it when it has no credentials or
   * when `expiration` is near; each call goes through the cache.
   */
  credentialProvider(entityId: string, permission: StsPermission, scopeKey: string = entityId): AwsCredentialProvider {
    return async () => {
      const c = await this.get(scopeKey, entityId, permission);
      return {
        accessKeyId: c.accessKeyId,
        secretAccessKey: c.secretAccessKey,
        sessionToken: c.sessionToken,
        expiration: new Date(c.expiration),
      };
    };
  }

  /** For tests and a status command. */
  stats(): { entries: number; inFlight: number; fetches: number } {
    return { entries: this.#entries.size, inFlight: this.#inFlight.size, fetches: this.#fetches };
  }
}

function cacheKey(scopeKey: string, permission: StsPermission): string {
  return `${permission}\u0000${scopeKey}`;
}
