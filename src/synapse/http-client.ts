/**
 * HttpSynapseClient: `SynapseApi` over Synapse's REST API (shared/synapse-api.md).
 *
 * Every call goes through one `RequestQueue` per client (shared by its priority views):
 *
 * - At most `maxConcurrent` (default 3) HTTP requests in flight. Synapse throttles each user to 3
 *   concurrent requests and 600 per minute and answers 429 beyond that, so a larger number only
 *   buys 429s and backoff. S3 traffic does not pass through here.
 * - Two priorities. `high` (the default) is for work a user is waiting on (lookup, getattr, open,
 *   readdir, publishing on close); `low` is for speculative background work (per-file size fetches
 *   after a readdir, prefetch of metadata). A waiting `high` call is always dispatched before any
 *   waiting `low` call; calls already in flight are never cancelled. Low calls can starve while
 *   high calls keep arriving — that is intended: background work only fills idle slots.
 *   Express it by asking for a view: `client.background()` (or `client.withPriority('low')`)
 *   returns a `SynapseApi` whose calls queue at low priority; views share the queue, retries and
 *   counters of the client they came from.
 * - A slot is held for one HTTP attempt, including reading the whole body, and released while a
 *   retry waits, so a backing-off call never blocks others.
 *
 * Retries (all methods, like the Python client): 429, 500, 502, 503, 504 and transport failures
 * (connection refused/reset, socket hang up, `fetch failed`, no response within
 * `requestTimeoutMs`). 429 honours `Retry-After` (seconds or HTTP date) and also pauses the whole
 * queue until then (the limit is per user, so every call would get 429 too); otherwise the delay is
 * full-jitter exponential: random(0, min(5 s, 100 ms × 2^attempt)). 100 ms is about one Synapse
 * round trip; 5 s is far below the 60 s window of the 600/min limit, so a throttled client keeps
 * probing; full jitter spreads the 3 concurrent callers apart. The whole call (all attempts and
 * waits) is bounded by `retryTimeoutSec` (default 60 s, one throttle window): a Retry-After that
 * would end beyond the deadline ends the call at once with the 429. A retried POST whose first
 * attempt did reach Synapse may answer 409 (e.g. POST /entity): callers resolve that as they
 * resolve any 409 (lookupChild). Other 4xx are never retried. Redirects are not followed (the
 * JSON endpoints used here never redirect; following one could send the bearer token elsewhere).
 *
 * Outages: once a call has retried for its whole `retryTimeoutSec` without any answer from
 * Synapse (transport failures only — a 5xx or 429 is an answer, and Synapse's read-only mode
 * answers 503 to writes while reads work) — to it or to any other call meanwhile (one hung request
 * is not an outage) — Synapse is marked unreachable. Until any HTTP answer
 * clears the mark, calls fail at once, except one probe — a single attempt — at most every
 * PROBE_INTERVAL_MS (a Synapse that hangs rather than refuses costs its caller one request
 * timeout per probe); calls already retrying give up at their next retry. The bound the user set
 * is per outage, not per call: before this, each lookup of a `cp -r` waited the whole timeout.
 * An outage behind a load balancer answers 502/503/504 instead; those answers mark only the
 * *route* that kept giving them for a whole timeout (method and path with ids left out, e.g. POST
 * /entity/{id}/bundle2): its calls then make a single attempt each, one at a time (others fail at
 * once; no probe interval — such answers come at once), and any answer on that route but those
 * and 429 clears it — read-only mode's 503s to writes never stop reads (QA: a `cp` during a 503
 * outage waited the timeout once per call it made, 5 × --retry-timeout).
 *
 * Errors: a non-2xx answer → `SynapseError(status, reason, method, path)` with Synapse's JSON
 * `reason` (or the start of the text body); a 2xx whose JSON is malformed, truncated, or lacks a
 * field the filesystem depends on → code `BAD_RESPONSE`, never a crash later. The token is sent
 * only in the Authorization header and is scrubbed from every message; log lines (debug level)
 * carry method, path, status, duration and attempt only.
 *
 * Table queries (views): `startTableQuery` posts a QueryBundleRequest and returns the job token;
 * `getTableQueryResult` answers `{done: false}` for a 202 (job still running) and otherwise checks
 * the QueryResultBundle (rows' `values` arrays of strings or nulls, headers with names) — any
 * other 2xx counts as done (the controller answers 201). A failed job comes back as the job's
 * HTTP error (400/403/404), so it becomes a SynapseError like any other call. Polling and paging
 * live in table-query.ts.
 *
 * Normalisation: file handle ids (`id`, `fileHandleId`, `dataFileHandleId`, `resultFileHandleId`)
 * become strings, `storageLocationId`/`locations` numbers, file handle `contentSize` a number and
 * VersionInfo `contentSize` a string, whatever form the server sent.
 */
import type { Logger } from 'pino';
import type { BundleRequest, ChildType, SynapseApi, TableQueryOptions } from './api.js';
import { SynapseError } from './errors.js';
import { queryView, type QueryViewOptions, type QueryViewResult } from './table-query.js';
import {
  CONCRETE,
  type AddPartResponse,
  type BatchFileResult,
  type Entity,
  type EntityBundle,
  type EntityHeader,
  type ExternalS3FileHandleRequest,
  type FileHandleAssociation,
  type MultipartUploadRequest,
  type MultipartUploadStatus,
  type NewEntity,
  type PartPresignedUrl,
  type S3FileHandle,
  type StorageLocationSetting,
  type AsynchronousJobStatus,
  type QueryBundleRequest,
  type QueryResultBundle,
  type StsCredentials,
  type StsPermission,
  type TableQueryPoll,
  type UploadDestination,
  type UploadDestinationListSetting,
  type UserProfile,
  type VersionInfo,
} from './types.js';

export type Priority = 'high' | 'low';

/**
 * What a command says while Synapse cannot be reached and it keeps trying (`onUnreachable`):
 * one line. `shownEndpoint`: the endpoint as fit to show (mount-status.ts displayUrl).
 */
export function unreachableNotice(shownEndpoint: string, err: SynapseError, secondsLeft: number): string {
  return `cannot reach Synapse at ${shownEndpoint} yet (${err.reason}); retrying for up to ${secondsLeft} s (--retry-timeout)`;
}

export interface HttpSynapseClientOptions {
  /** Base URL, e.g. https://repo-prod.prod.sagebase.org; `/repo/v1` etc. are appended. A trailing
   *  `/repo/v1` (the form ~/.synapseConfig uses) is tolerated and stripped. */
  endpoint: string;
  authToken: string;
  /** HTTP requests in flight at once (default 3 = Synapse's per-user limit). */
  maxConcurrent?: number;
  /** Bound on one call's total time across retries, in seconds (default 60). */
  retryTimeoutSec?: number;
  logger?: Logger;
  /** Per-attempt timeout until the whole response body has arrived (default 60 000 ms). */
  requestTimeoutMs?: number;
  userAgent?: string;
  /** Backoff schedule (defaults 100 ms doubling to 5 000 ms); tests shorten it. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Source of randomness for jitter (default Math.random); tests pin it. */
  random?: () => number;
  /**
   * Called before each retry of a request that could not reach Synapse (no HTTP answer), with
   * the error and the seconds left to keep trying — so a command can say at once that it is
   * waiting instead of sitting silent for up to --retry-timeout.
   */
  onUnreachable?: (error: SynapseError, secondsLeft: number) => void;
  /** Outages: the least time between two probes of an unreachable Synapse (default 5 s). */
  probeIntervalMs?: number;
}

export interface SynapseClientStats {
  /** Logical API calls started (a paged listChildren counts once per page). */
  calls: number;
  /** HTTP attempts sent, including retries. */
  requests: number;
  /** Attempts that were retried (after a 429/5xx/transport failure). */
  retries: number;
  /** 429 answers received. */
  throttled: number;
  /** Calls that ended in an error (any SynapseError, after retries). */
  errors: number;
  inFlight: number;
  queued: { high: number; low: number };
  /** How long queued requests still wait for Synapse's 600/min pace (or a 429's Retry-After); 0 when none wait. */
  heldForMs: number;
}

export const DEFAULT_ENDPOINT = 'https://repo-prod.prod.sagebase.org';
const DEFAULT_MAX_CONCURRENT = 3;
const DEFAULT_RETRY_TIMEOUT_SEC = 60;
const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;
const BACKOFF_INITIAL_MS = 100;
const BACKOFF_MAX_MS = 5_000;
/** Synapse's limit for POST /fileHandle/batch. */
export const FILE_HANDLE_BATCH_MAX = 100;
/** How much of a non-JSON error body becomes the reason. */
const MAX_REASON_CHARS = 500;
const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);

type Service = 'repo' | 'file' | 'auth';

// ---------------------------------------------------------------------------------------------
// Queue

/**
 * A counting semaphore with two FIFO wait lists. INVARIANT: active <= max; a waiter is resumed
 * only when a slot is free and the queue is not paused; high waiters always before low ones.
 */
export class RequestQueue {
  #active = 0;
  readonly #waiting: Record<Priority, Array<() => void>> = { high: [], low: [] };
  #pausedUntil = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Dispatch times within the rate window (oldest first). */
  readonly #sent: number[] = [];

  /**
   * `rate`: Synapse's second limit, N requests per sliding window per user (600 per 60 s).
   * Holding a request here costs nothing; sending it into a 429 costs a wasted request and a
   * backoff, so the queue keeps under the limit itself (a small margin covers clock skew).
   */
  constructor(readonly max: number, readonly rate: { limit: number; windowMs: number } = { limit: 600, windowMs: 60_500 },
    /** Requests are being held back because the window is full (QA: 20–50 s stalls said nothing). */
    private readonly onHold?: (waitMs: number, queued: number) => void) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`maxConcurrent must be a positive integer, got ${max}`);
  }

  get active(): number { return this.#active; }
  queued(priority: Priority): number { return this.#waiting[priority].length; }

  /** How long waiting requests are still held back (the pace, or a pause); 0 if none wait. */
  /** The hold under way was reported (onHold). */
  #holdTold = false;

  heldForMs(now = Date.now()): number {
    if (this.#waiting.high.length + this.#waiting.low.length === 0) return 0;
    return Math.max(0, this.#pausedUntil - now, this.#windowFullFor(now));
  }

  /** How long until the rate window has room (0: it has); forgets sends older than the window. */
  #windowFullFor(now: number): number {
    while (this.#sent.length > 0 && this.#sent[0]! <= now - this.rate.windowMs) this.#sent.shift();
    return this.#sent.length >= this.rate.limit ? this.#sent[this.#sent.length - this.rate.limit]! + this.rate.windowMs - now : 0;
  }

  acquire(priority: Priority): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#waiting[priority].push(resolve);
      this.#pump();
    });
  }

  release(): void {
    this.#active--;
    this.#pump();
  }

  /** Dispatch nothing new before `untilMs` (Date.now() clock), e.g. after a 429 with Retry-After. */
  pause(untilMs: number): void {
    if (untilMs > this.#pausedUntil) this.#pausedUntil = untilMs;
  }

  #pump(): void {
    const now = Date.now();
    const windowFull = this.#windowFullFor(now);
    const wait = Math.max(this.#pausedUntil - now, windowFull);
    if (wait > 0) {
      if (this.#timer === undefined && (this.#waiting.high.length > 0 || this.#waiting.low.length > 0)) {
        // Told once per hold: a timer that fires a millisecond early (Date.now's rounding) finds
        // the same hold, not a new one (a unit test saw it reported twice under load).
        if (windowFull > 0 && !this.#holdTold) this.onHold?.(wait, this.#waiting.high.length + this.#waiting.low.length);
        this.#holdTold ||= windowFull > 0;
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.#pump();
        }, wait);
      }
      return;
    }
    this.#holdTold = false;
    while (this.#active < this.max) {
      if (this.#sent.length >= this.rate.limit) {
        this.#pump();
        return;
      }
      const next = this.#waiting.high.shift() ?? this.#waiting.low.shift();
      if (next === undefined) return;
      this.#active++;
      this.#sent.push(Date.now());
      next();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Transport: queue + retries + error mapping, shared by all priority views of one client.

interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  service: Service;
  /** Path below the service prefix, already URL-encoded, e.g. `/entity/syn1`. */
  path: string;
  body?: unknown;
  priority: Priority;
}

interface RawResponse {
  status: number;
  text: string;
  /** path as shown in errors: `/repo/v1/entity/syn1` */
  shownPath: string;
}

type AttemptResult =
  | { kind: 'response'; status: number; statusText: string; retryAfter: string | null; text: string }
  | { kind: 'network'; error: unknown };

/** Synapse marked unreachable, or a route marked failing (module head: Outages). */
interface Outage {
  since: number;
  error: SynapseError;
  /** No probe before this (ms since the epoch); 0 for a route, probed by any call. */
  nextProbeAt: number;
  /** A call is probing it (one at a time). */
  probing: boolean;
  /** The route that kept answering 5xx; absent: no answer at all (Synapse unreachable). */
  route?: string;
}

/** A call's route for outages: its method and path, ids and query left out (`GET /entity/{id}/version`). */
function routeOf(spec: RequestSpec): string {
  const path = spec.path.split('?')[0]!.replace(/\/(syn)?\d+(?=\/|$)/gi, '/{id}');
  return `${spec.method} /${spec.service}${path}`;
}

/**
 * An outage's answers: a gateway's or load balancer's 502/503/504. Not 500 — one entity that
 * always breaks the server would mark its route for every entity — and not 429, the throttle's.
 */
function isOutageAnswer(status: number): boolean {
  return status === 502 || status === 503 || status === 504;
}

/** Outages: the least time between two probes of an unreachable Synapse. */
const PROBE_INTERVAL_MS = 5_000;

/** The error of a call not tried (or not retried) because of an outage (module head: Outages). */
function outageError(outage: Outage, method: string, shownPath: string, attempts: number): SynapseError {
  const seconds = Math.round((Date.now() - outage.since) / 1000);
  if (outage.route) {
    return new SynapseError(outage.error.status, `still failing (${outage.error.reason}): Synapse answered ${outage.error.status} to every ${outage.route} for a whole retry timeout ${seconds} s ago; such calls are not retried until one succeeds`,
      method, shownPath, { attempts });
  }
  return new SynapseError(0, `still unreachable (${outage.error.reason}): a call gave up on it ${seconds} s ago after the whole retry timeout; calls fail at once until Synapse answers again`,
    method, shownPath, { code: 'NETWORK', attempts });
}

class Transport {
  readonly queue: RequestQueue;
  readonly counters = { calls: 0, requests: 0, retries: 0, throttled: 0, errors: 0 };
  readonly #base: string;
  readonly #token: string;
  readonly #retryTimeoutMs: number;
  readonly #requestTimeoutMs: number;
  readonly #userAgent: string;
  readonly #log: Logger | undefined;
  readonly #backoffInitial: number;
  readonly #backoffMax: number;
  readonly #random: () => number;
  readonly #onUnreachable: HttpSynapseClientOptions['onUnreachable'];
  readonly #probeIntervalMs: number;
  /** Set when a call gave up without ever reaching Synapse (module head: Outages); any answer clears it. */
  #unreachable: Outage | undefined;
  /** Last time a 401 was logged (#tokenRefused). */
  #told401At = 0;

  /**
   * Synapse refused the token mid-session (expired, revoked): every call fails with EACCES from
   * now on, which says nothing of why — one clear warning every ten minutes does (QA).
   */
  #tokenRefused(reason: string): void {
    const now = Date.now();
    if (now - this.#told401At < 600_000) return;
    this.#told401At = now;
    this.#log?.warn({ reason: this.scrub(reason) }, 'Synapse refused the auth token (401): it expired or was revoked. Every operation fails with EACCES (files closed meanwhile are journaled for `synapse-mount recover`); unmount and mount again with a valid token');
  }

  /** When Synapse last answered any call (an outage is marked only by a call no answer came during). */
  #lastAnswerAt = 0;
  /** Routes that answered 5xx for a whole retry timeout (module head: Outages); any other answer on the route clears one. */
  readonly #failing = new Map<string, Outage>();

  /** The Synapse this client talks to (normalised: no trailing slash or /repo/v1). */
  get endpoint(): string {
    return this.#base;
  }

  constructor(opts: HttpSynapseClientOptions) {
    this.#base = normaliseEndpoint(opts.endpoint);
    if (typeof opts.authToken !== 'string' || opts.authToken.trim() === '') {
      throw new TypeError('HttpSynapseClient: authToken is empty');
    }
    this.#token = opts.authToken.trim();
    // One info line per half minute at most while the pace holds requests back: an operation
    // may wait up to a minute, and without it nothing said why.
    let lastHoldLog = 0;
    this.queue = new RequestQueue(opts.maxConcurrent ?? DEFAULT_MAX_CONCURRENT, undefined, (waitMs, queued) => {
      const now = Date.now();
      if (now - lastHoldLog < 30_000) return;
      lastHoldLog = now;
      opts.logger?.info({ waitMs, queued }, 'Synapse allows 600 requests a minute and the mount has used them: holding requests back until the minute frees (operations wait meanwhile)');
    });
    this.#retryTimeoutMs = 1000 * (opts.retryTimeoutSec ?? DEFAULT_RETRY_TIMEOUT_SEC);
    this.#requestTimeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#userAgent = opts.userAgent ?? `synapse-mount/0.1.0 node/${process.versions.node}`;
    this.#log = opts.logger;
    this.#backoffInitial = opts.backoff?.initialMs ?? BACKOFF_INITIAL_MS;
    this.#backoffMax = opts.backoff?.maxMs ?? BACKOFF_MAX_MS;
    this.#random = opts.random ?? Math.random;
    this.#onUnreachable = opts.onUnreachable;
    this.#probeIntervalMs = opts.probeIntervalMs ?? PROBE_INTERVAL_MS;
  }

  /** Replace every occurrence of the token (a server might echo it back) before text leaves us. */
  scrub(text: string): string {
    return this.#token.length >= 4 ? text.split(this.#token).join('[REDACTED]') : text;
  }

  /**
   * One logical call: queued, retried, mapped. Resolves with the 2xx status and body text;
   * throws SynapseError otherwise. `okStatuses` lets a caller accept a non-2xx (e.g. 404 → null).
   */
  async request(spec: RequestSpec, okStatuses: readonly number[] = []): Promise<RawResponse> {
    this.counters.calls++;
    const shownPath = `/${spec.service}/v1${spec.path}`;
    const route = routeOf(spec);
    const outage = this.#unreachable ?? this.#failing.get(route);
    if (!outage) return this.#retried(spec, okStatuses, shownPath, route, undefined);
    if (outage.probing || Date.now() < outage.nextProbeAt) return this.#fail(outageError(outage, spec.method, shownPath, 0));
    outage.probing = true;
    try {
      return await this.#retried(spec, okStatuses, shownPath, route, outage);
    } finally {
      outage.probing = false;
    }
  }

  /**
   * The call with its retries. A probe of an outage (`probed`) makes one attempt while the outage
   * goes on: no answer, or the route's outage answer again; any other answer makes it a call like
   * any other.
   */
  async #retried(spec: RequestSpec, okStatuses: readonly number[], shownPath: string, route: string, probed: Outage | undefined): Promise<RawResponse> {
    let probe = probed;
    const url = this.#base + shownPath;
    const started = Date.now();
    const deadline = started + this.#retryTimeoutMs;
    const body = spec.body === undefined ? undefined : JSON.stringify(spec.body);
    for (let attempt = 1; ; attempt++) {
      await this.queue.acquire(spec.priority);
      let result: AttemptResult;
      const t0 = Date.now();
      try {
        this.counters.requests++;
        result = await this.#attempt(spec.method, url, body);
      } finally {
        this.queue.release();
      }
      const ms = Date.now() - t0;
      if (this.#log?.isLevelEnabled('debug')) {
        this.#log.debug(
          { method: spec.method, path: shownPath, status: result.kind === 'response' ? result.status : 0, ms, attempt },
          'synapse request',
        );
      }

      let error: SynapseError;
      let retryable: boolean;
      let retryAfterMs: number | undefined;
      if (result.kind === 'response') {
        this.#unreachable = undefined;
        this.#lastAnswerAt = Date.now();
        const { status } = result;
        if (!isOutageAnswer(status) && status !== 429) this.#failing.delete(route);
        if ((status >= 200 && status < 300) || okStatuses.includes(status)) {
          return { status, text: result.text, shownPath };
        }
        error = new SynapseError(status, this.#reasonOf(result), spec.method, shownPath, { attempts: attempt });
        if (status === 401) this.#tokenRefused(error.reason);
        retryable = RETRYABLE_STATUS.has(status);
        if (status === 429) {
          this.counters.throttled++;
          retryAfterMs = parseRetryAfter(result.retryAfter, Date.now());
        }
        const failing = isOutageAnswer(status) ? this.#failing.get(route) : undefined;
        if (probe && failing) return this.#fail(error);
        probe = undefined;
        // Another call on this route gave up on it after this one started: so does this one.
        if (failing && failing.since >= started) return this.#fail(outageError(failing, spec.method, shownPath, attempt));
      } else {
        error = new SynapseError(0, this.scrub(describeNetworkError(result.error, this.#requestTimeoutMs)), spec.method, shownPath, {
          code: 'NETWORK',
          attempts: attempt,
          cause: result.error,
        });
        retryable = true;
        const outage = this.#unreachable;
        // No answer to a probe (of Synapse, or of a failing route): the outage goes on. A probe
        // of Synapse that another call's answer ended meanwhile retries as usual.
        if (probe && (probe.route !== undefined || outage)) {
          if (outage) outage.nextProbeAt = Date.now() + this.#probeIntervalMs;
          return this.#fail(error);
        }
        probe = undefined;
        // Another call gave up on Synapse after this one started: so does this one.
        if (outage && outage.since >= started) return this.#fail(outageError(outage, spec.method, shownPath, attempt));
      }

      if (!retryable) return this.#fail(error);
      const now = Date.now();
      const remaining = deadline - now;
      // Not when Synapse answered other calls meanwhile: this call's request hung, Synapse did not
      // (QA: one slow call made every later one fail at once, Synapse answering all along).
      if (remaining <= 0 && error.code === 'NETWORK' && this.#lastAnswerAt < started) {
        this.#unreachable ??= { since: now, error, nextProbeAt: now + this.#probeIntervalMs, probing: false };
      }
      // A route's answers come at once, so any call may probe it (no interval): the first call
      // after the outage ends succeeds (an e2e write right after one failed while an interval ran).
      if (remaining <= 0 && isOutageAnswer(error.status) && !this.#failing.has(route)) {
        this.#failing.set(route, { since: now, error, nextProbeAt: 0, probing: false, route });
      }
      let delay: number;
      if (retryAfterMs !== undefined) {
        // Honour the server's word exactly; if it asks for longer than we may wait, stop now.
        if (retryAfterMs > remaining) return this.#fail(error);
        delay = retryAfterMs;
        this.queue.pause(now + retryAfterMs);
      } else {
        const cap = Math.min(this.#backoffMax, this.#backoffInitial * 2 ** (attempt - 1));
        delay = Math.floor(this.#random() * cap);
        if (remaining <= 0) return this.#fail(error);
        delay = Math.min(delay, remaining);
      }
      this.counters.retries++;
      if (error.code === 'NETWORK') this.#onUnreachable?.(error, Math.ceil(remaining / 1000));
      if (this.#log?.isLevelEnabled('debug')) {
        this.#log.debug({ method: spec.method, path: shownPath, status: error.status, attempt, delayMs: delay }, 'synapse retry');
      }
      await sleep(delay);
    }
  }

  #fail(error: SynapseError): never {
    this.counters.errors++;
    throw error;
  }

  /** A SynapseError for a 2xx we cannot use, counted as an error. */
  badResponse(raw: RawResponse, method: string, detail: string): SynapseError {
    this.counters.errors++;
    return new SynapseError(raw.status, this.scrub(detail), method, raw.shownPath, { code: 'BAD_RESPONSE' });
  }

  async #attempt(method: string, url: string, body: string | undefined): Promise<AttemptResult> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new RequestTimeout()), this.#requestTimeoutMs);
    try {
      const headers: Record<string, string> = {
        Authorization: `Bearer ${this.#token}`,
        Accept: 'application/json',
        'User-Agent': this.#userAgent,
      };
      if (body !== undefined) headers['Content-Type'] = 'application/json; charset=utf-8';
      const res = await fetch(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
        redirect: 'manual',
        signal: controller.signal,
      });
      // Read the whole body inside the slot and under the timeout: a response cut mid-body is a
      // transport failure like any other.
      const text = await res.text();
      return { kind: 'response', status: res.status, statusText: res.statusText, retryAfter: res.headers.get('retry-after'), text };
    } catch (error) {
      return { kind: 'network', error: controller.signal.aborted ? controller.signal.reason : error };
    } finally {
      clearTimeout(timer);
    }
  }

  #reasonOf(r: { status: number; statusText: string; text: string }): string {
    let reason: string | undefined;
    const text = r.text.trim();
    if (text.startsWith('{')) {
      try {
        const parsed: unknown = JSON.parse(text);
        if (isRecord(parsed) && typeof parsed.reason === 'string') reason = parsed.reason;
      } catch { /* not JSON: fall through to the text */ }
    }
    if (reason === undefined) {
      if (r.status >= 300 && r.status < 400) reason = `unexpected redirect (${r.status}); redirects are not followed`;
      else if (text !== '') reason = text.length > MAX_REASON_CHARS ? `${text.slice(0, MAX_REASON_CHARS)}…` : text;
      else reason = r.statusText || `HTTP ${r.status}`;
    }
    return this.scrub(reason);
  }
}

class RequestTimeout extends Error {
  override readonly name = 'RequestTimeout';
}

function describeNetworkError(error: unknown, timeoutMs: number): string {
  if (error instanceof RequestTimeout) return `no complete response within ${timeoutMs} ms`;
  const parts: string[] = [];
  let e: unknown = error;
  for (let depth = 0; depth < 4 && e instanceof Error; depth++) {
    const code = (e as { code?: unknown }).code;
    parts.push(typeof code === 'string' && !e.message.includes(code) ? `${code} ${e.message}` : e.message);
    e = e.cause;
  }
  return `network error: ${parts.length > 0 ? parts.join(': ') : String(error)}`;
}

/** Retry-After is delay-seconds or an HTTP-date (RFC 9110 §10.2.3). undefined when absent/invalid. */
export function parseRetryAfter(value: string | null, nowMs: number): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const date = Date.parse(v);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - nowMs);
}

export function normaliseEndpoint(endpoint: string): string {
  let base = endpoint.trim().replace(/\/+$/, '');
  base = base.replace(/\/(repo|file|auth)\/v1$/, '');
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new TypeError(`invalid Synapse endpoint URL: ${JSON.stringify(endpoint)}`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new TypeError(`Synapse endpoint must be http(s): ${JSON.stringify(endpoint)}`);
  }
  return base;
}

function sleep(ms: number): Promise<void> {
  return ms <= 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------------------------
// Response checks

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

class ShapeError extends Error {}

function record(v: unknown, what: string): Record<string, unknown> {
  if (!isRecord(v)) throw new ShapeError(`${what} is not a JSON object`);
  return v;
}
function str(o: Record<string, unknown>, key: string, what: string): string {
  const v = o[key];
  if (typeof v !== 'string') throw new ShapeError(`${what} lacks string field '${key}'`);
  return v;
}
/** An id that may arrive as a string or an integer → string. */
function idString(o: Record<string, unknown>, key: string, what: string): string {
  const v = o[key];
  if (typeof v === 'string' && v !== '') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  throw new ShapeError(`${what} lacks id field '${key}'`);
}
function num(v: unknown, what: string): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) throw new ShapeError(`${what} is not a number`);
  return n;
}
function array(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new ShapeError(`${what} is not an array`);
  return v;
}
/** Normalise optional id-ish fields in place (only when present and non-null). */
function optIdString(o: Record<string, unknown>, key: string, what: string): void {
  if (o[key] !== undefined && o[key] !== null) o[key] = idString(o, key, what);
}
function optNum(o: Record<string, unknown>, key: string, what: string): void {
  if (o[key] !== undefined && o[key] !== null) o[key] = num(o[key], `${what}.${key}`);
}

function checkEntity(v: unknown, what = 'entity'): Entity {
  const o = { ...record(v, what) };
  str(o, 'id', what);
  str(o, 'name', what);
  str(o, 'concreteType', what);
  str(o, 'etag', what);
  optIdString(o, 'dataFileHandleId', what);
  optNum(o, 'versionNumber', what);
  return o as unknown as Entity;
}

function checkFileHandle(v: unknown, what = 'file handle'): S3FileHandle {
  const o = { ...record(v, what) };
  o.id = idString(o, 'id', what);
  str(o, 'concreteType', what);
  optNum(o, 'storageLocationId', what);
  optNum(o, 'contentSize', what);
  optIdString(o, 'previewId', what);
  return o as unknown as S3FileHandle;
}

function checkHeader(v: unknown): EntityHeader {
  const o = record(v, 'child entity header');
  str(o, 'id', 'child entity header');
  str(o, 'name', 'child entity header');
  str(o, 'type', 'child entity header');
  return o as unknown as EntityHeader;
}

function checkVersionInfo(v: unknown): VersionInfo {
  const o = { ...record(v, 'version info') };
  str(o, 'id', 'version info');
  o.versionNumber = num(o.versionNumber, 'version info.versionNumber');
  if (typeof o.contentSize === 'number') o.contentSize = String(o.contentSize);
  return o as unknown as VersionInfo;
}

function checkUploadDestination(v: unknown): UploadDestination {
  const o = { ...record(v, 'upload destination') };
  str(o, 'concreteType', 'upload destination');
  o.storageLocationId = num(o.storageLocationId, 'upload destination.storageLocationId');
  return o as unknown as UploadDestination;
}

function checkStorageLocation(v: unknown): StorageLocationSetting {
  const o = { ...record(v, 'storage location') };
  str(o, 'concreteType', 'storage location');
  optNum(o, 'storageLocationId', 'storage location');
  return o as unknown as StorageLocationSetting;
}

function checkProjectSetting(v: unknown): UploadDestinationListSetting {
  const o = { ...record(v, 'project setting') };
  str(o, 'concreteType', 'project setting');
  optIdString(o, 'id', 'project setting');
  o.locations = array(o.locations ?? [], 'project setting.locations').map((l, i) => num(l, `project setting.locations[${i}]`));
  return o as unknown as UploadDestinationListSetting;
}

function checkSts(v: unknown): StsCredentials {
  const o = record(v, 'STS credentials');
  for (const k of ['accessKeyId', 'secretAccessKey', 'sessionToken', 'expiration']) str(o, k, 'STS credentials');
  if (Number.isNaN(Date.parse(o.expiration as string))) throw new ShapeError('STS credentials have an unparseable expiration');
  return o as unknown as StsCredentials;
}

function checkJobStatus(v: unknown): AsynchronousJobStatus {
  const o = record(v, 'asynchronous job status');
  const state = str(o, 'jobState', 'asynchronous job status');
  if (state !== 'PROCESSING' && state !== 'FAILED' && state !== 'COMPLETE') throw new ShapeError(`unknown jobState ${JSON.stringify(state)}`);
  return o as unknown as AsynchronousJobStatus;
}

function checkSelectColumns(v: unknown, what: string): void {
  array(v, what).forEach((h, i) => str(record(h, `${what}[${i}]`), 'name', `${what}[${i}]`));
}

/** A QueryResultBundle: when queryResult is present, its rows are arrays of strings/nulls as wide as the headers. */
function checkQueryBundle(v: unknown): QueryResultBundle {
  const o = record(v, 'query result bundle');
  if (o.queryResult !== undefined && o.queryResult !== null) {
    const qr = record(o.queryResult, 'queryResult');
    const rs = record(qr.queryResults, 'queryResult.queryResults');
    checkSelectColumns(rs.headers, 'queryResults.headers');
    const width = (rs.headers as unknown[]).length;
    array(rs.rows ?? [], 'queryResults.rows').forEach((r, i) => {
      const values = array(record(r, `row ${i}`).values, `row ${i}.values`);
      if (values.length !== width) throw new ShapeError(`row ${i} has ${values.length} values for ${width} headers`);
      for (const x of values) if (x !== null && typeof x !== 'string') throw new ShapeError(`row ${i} has a value that is neither a string nor null`);
    });
    if (rs.rows === undefined) rs.rows = [];
    if (qr.nextPageToken !== undefined && qr.nextPageToken !== null) str(record(qr.nextPageToken, 'nextPageToken'), 'token', 'nextPageToken');
  }
  if (o.selectColumns !== undefined && o.selectColumns !== null) checkSelectColumns(o.selectColumns, 'selectColumns');
  optNum(o, 'maxRowsPerPage', 'query result bundle');
  optNum(o, 'queryCount', 'query result bundle');
  return o as unknown as QueryResultBundle;
}

function checkMultipartStatus(v: unknown): MultipartUploadStatus {
  const o = { ...record(v, 'multipart upload status') };
  o.uploadId = idString(o, 'uploadId', 'multipart upload status');
  str(o, 'state', 'multipart upload status');
  if (o.partsState !== undefined) str(o, 'partsState', 'multipart upload status');
  optIdString(o, 'resultFileHandleId', 'multipart upload status');
  return o as unknown as MultipartUploadStatus;
}

// ---------------------------------------------------------------------------------------------
// The client

export class HttpSynapseClient implements SynapseApi {
  readonly #t: Transport;
  /** The priority of every call made through this object. */
  readonly priority: Priority;

  constructor(options: HttpSynapseClientOptions);
  /** @internal — a priority view sharing `source`'s queue and counters (see withPriority). */
  constructor(options: HttpSynapseClientOptions | Transport, priority?: Priority);
  constructor(options: HttpSynapseClientOptions | Transport, priority: Priority = 'high') {
    this.#t = options instanceof Transport ? options : new Transport(options);
    this.priority = priority;
  }

  /** A view of this client whose calls queue at `priority`; shares queue, retries and stats. */
  withPriority(priority: Priority): HttpSynapseClient {
    return priority === this.priority ? this : new HttpSynapseClient(this.#t, priority);
  }

  /** Shorthand for withPriority('low'): for background work that must yield to user requests. */
  background(): HttpSynapseClient {
    return this.withPriority('low');
  }

  /** The Synapse this client talks to (normalised: no trailing slash or /repo/v1). */
  get endpoint(): string {
    return this.#t.endpoint;
  }

  stats(): SynapseClientStats {
    const q = this.#t.queue;
    return { ...this.#t.counters, inFlight: q.active, queued: { high: q.queued('high'), low: q.queued('low') }, heldForMs: q.heldForMs() };
  }

  // -- plumbing ---------------------------------------------------------------------------------

  #req(method: RequestSpec['method'], service: Service, path: string, body?: unknown, okStatuses?: readonly number[]): Promise<RawResponse> {
    const spec: RequestSpec = { method, service, path, priority: this.priority };
    if (body !== undefined) spec.body = body;
    return this.#t.request(spec, okStatuses);
  }

  /** Parse a JSON body and run `check` on it; any failure → BAD_RESPONSE. */
  #parse<T>(raw: RawResponse, method: string, check: (v: unknown) => T): T {
    if (raw.text.trim() === '') throw this.#t.badResponse(raw, method, `empty body in a ${raw.status} response where JSON was expected`);
    let value: unknown;
    try {
      value = JSON.parse(raw.text);
    } catch (e) {
      throw this.#t.badResponse(
        raw,
        method,
        `malformed or truncated JSON in a ${raw.status} response of ${raw.text.length} characters (${(e as Error).message})`,
      );
    }
    try {
      return check(value);
    } catch (e) {
      if (e instanceof ShapeError) throw this.#t.badResponse(raw, method, `unexpected response shape: ${e.message}`);
      throw e;
    }
  }

  async #json<T>(method: RequestSpec['method'], service: Service, path: string, body: unknown, check: (v: unknown) => T): Promise<T> {
    const raw = await this.#req(method, service, path, body);
    return this.#parse(raw, method, check);
  }

  // -- entities ---------------------------------------------------------------------------------

  getUserProfile(): Promise<UserProfile> {
    return this.#json('GET', 'repo', '/userProfile', undefined, (v) => {
      const o = { ...record(v, 'user profile') };
      o.ownerId = idString(o, 'ownerId', 'user profile');
      str(o, 'userName', 'user profile');
      return o as unknown as UserProfile;
    });
  }

  getEntity(id: string): Promise<Entity> {
    return this.#json('GET', 'repo', `/entity/${enc(id)}`, undefined, (v) => checkEntity(v));
  }

  createEntity(entity: NewEntity): Promise<Entity> {
    return this.#json('POST', 'repo', '/entity', entity, (v) => checkEntity(v));
  }

  updateEntity(entity: Entity, opts?: { newVersion?: boolean }): Promise<Entity> {
    const q = opts?.newVersion === true ? '?newVersion=true' : '';
    return this.#json('PUT', 'repo', `/entity/${enc(entity.id)}${q}`, entity, (v) => checkEntity(v));
  }

  async deleteEntity(id: string): Promise<void> {
    await this.#req('DELETE', 'repo', `/entity/${enc(id)}`);
  }

  async restoreFromTrash(id: string): Promise<void> {
    await this.#req('PUT', 'repo', `/trashcan/restore/${enc(id)}`);
  }

  async listChildren(parentId: string, types: ChildType[]): Promise<EntityHeader[]> {
    const all: EntityHeader[] = [];
    let token: string | null = null;
    const seen = new Set<string>();
    for (;;) {
      const body: Record<string, unknown> = {
        parentId,
        includeTypes: types,
        sortBy: 'NAME',
        sortDirection: 'ASC',
      };
      if (token !== null) body.nextPageToken = token;
      const raw = await this.#req('POST', 'repo', '/entity/children', body);
      const page = this.#parse(raw, 'POST', (v) => {
        const o = record(v, 'children response');
        const headers = array(o.page, 'children response.page').map(checkHeader);
        const next = o.nextPageToken;
        if (next !== undefined && next !== null && typeof next !== 'string') throw new ShapeError('children response.nextPageToken is not a string');
        return { headers, next: typeof next === 'string' && next !== '' ? next : null };
      });
      all.push(...page.headers);
      if (page.next === null) return all;
      if (seen.has(page.next)) throw this.#t.badResponse(raw, 'POST', `children paging did not advance (token ${JSON.stringify(page.next)} repeated)`);
      seen.add(page.next);
      token = page.next;
    }
  }

  async lookupChild(parentId: string, name: string): Promise<string | null> {
    const raw = await this.#req('POST', 'repo', '/entity/child', { parentId, entityName: name }, [404]);
    if (raw.status === 404) return null;
    return this.#parse(raw, 'POST', (v) => str(record(v, 'entity id'), 'id', 'entity id'));
  }

  getBundle(id: string, request: BundleRequest, version?: number): Promise<EntityBundle> {
    const path = version === undefined ? `/entity/${enc(id)}/bundle2` : `/entity/${enc(id)}/version/${version}/bundle2`;
    return this.#json('POST', 'repo', path, request, (v) => {
      const o = { ...record(v, 'entity bundle') };
      if (o.entity !== undefined && o.entity !== null) o.entity = checkEntity(o.entity, 'bundle entity');
      if (o.fileHandles !== undefined && o.fileHandles !== null) {
        o.fileHandles = array(o.fileHandles, 'bundle fileHandles').map((h) => checkFileHandle(h, 'bundle file handle'));
      }
      if (o.permissions !== undefined && o.permissions !== null) {
        const p = record(o.permissions, 'bundle permissions');
        o.permissions = { canAddChild: p.canAddChild === true, canEdit: p.canEdit === true, canDelete: p.canDelete === true };
      }
      return o as EntityBundle;
    });
  }

  getLatestVersionInfo(id: string): Promise<VersionInfo> {
    return this.#json('GET', 'repo', `/entity/${enc(id)}/version?offset=0&limit=1`, undefined, (v) => {
      const results = array(record(v, 'version list').results, 'version list.results');
      if (results.length === 0) throw new ShapeError('version list is empty');
      return checkVersionInfo(results[0]);
    });
  }

  // -- file handles -----------------------------------------------------------------------------

  getFileHandle(id: string): Promise<S3FileHandle> {
    return this.#json('GET', 'file', `/fileHandle/${enc(id)}`, undefined, (v) => checkFileHandle(v));
  }

  /**
   * POST /fileHandle/batch. Synapse takes at most 100 associations per request; longer lists are
   * split into chunks of 100 sent concurrently (through the queue) and the results concatenated in
   * request order.
   */
  async batchFileHandles(
    files: FileHandleAssociation[],
    opts: { includeFileHandles: boolean; includePreSignedURLs: boolean },
  ): Promise<BatchFileResult[]> {
    if (files.length === 0) return [];
    const chunks: FileHandleAssociation[][] = [];
    for (let i = 0; i < files.length; i += FILE_HANDLE_BATCH_MAX) chunks.push(files.slice(i, i + FILE_HANDLE_BATCH_MAX));
    const results = await Promise.all(
      chunks.map((chunk) =>
        this.#json(
          'POST',
          'file',
          '/fileHandle/batch',
          {
            requestedFiles: chunk.map((f) => ({ ...f, fileHandleId: String(f.fileHandleId) })),
            includeFileHandles: opts.includeFileHandles,
            includePreSignedURLs: opts.includePreSignedURLs,
            includePreviewPreSignedURLs: false,
          },
          (v) =>
            array(record(v, 'batch file result').requestedFiles, 'batch file result.requestedFiles').map((r) => {
              const o = { ...record(r, 'batch file result entry') };
              o.fileHandleId = idString(o, 'fileHandleId', 'batch file result entry');
              if (o.fileHandle !== undefined && o.fileHandle !== null) o.fileHandle = checkFileHandle(o.fileHandle);
              return o as unknown as BatchFileResult;
            }),
        ),
      ),
    );
    return results.flat();
  }

  createExternalS3FileHandle(request: ExternalS3FileHandleRequest): Promise<S3FileHandle> {
    return this.#json('POST', 'file', '/externalFileHandle/s3', request, (v) => checkFileHandle(v));
  }

  // -- storage ----------------------------------------------------------------------------------

  getUploadDestination(parentId: string): Promise<UploadDestination> {
    return this.#json('GET', 'file', `/entity/${enc(parentId)}/uploadDestination`, undefined, checkUploadDestination);
  }

  createStorageLocation(setting: StorageLocationSetting): Promise<StorageLocationSetting> {
    return this.#json('POST', 'repo', '/storageLocation', setting, checkStorageLocation);
  }

  getStorageLocation(id: number): Promise<StorageLocationSetting> {
    return this.#json('GET', 'repo', `/storageLocation/${enc(String(id))}`, undefined, checkStorageLocation);
  }

  /** Synapse answers 200 with an empty body (no JSON content type) when no setting exists → null. */
  async getUploadProjectSetting(projectOrFolderId: string): Promise<UploadDestinationListSetting | null> {
    const raw = await this.#req('GET', 'repo', `/projectSettings/${enc(projectOrFolderId)}/type/upload`);
    const text = raw.text.trim();
    if (text === '' || text === 'null') return null;
    return this.#parse(raw, 'GET', checkProjectSetting);
  }

  createProjectSetting(setting: UploadDestinationListSetting): Promise<UploadDestinationListSetting> {
    return this.#json('POST', 'repo', '/projectSettings', setting, checkProjectSetting);
  }

  /** PUT /projectSettings answers 200 with no body (the controller returns void). */
  async updateProjectSetting(setting: UploadDestinationListSetting): Promise<void> {
    await this.#req('PUT', 'repo', '/projectSettings', setting);
  }

  getStsCredentials(entityId: string, permission: StsPermission): Promise<StsCredentials> {
    return this.#json('GET', 'repo', `/entity/${enc(entityId)}/sts?permission=${enc(permission)}`, undefined, checkSts);
  }

  // -- multipart upload -------------------------------------------------------------------------

  startMultipartUpload(request: MultipartUploadRequest, forceRestart = false): Promise<MultipartUploadStatus> {
    const body = { concreteType: CONCRETE.multipartUploadRequest, ...request };
    return this.#json('POST', 'file', `/file/multipart?forceRestart=${forceRestart ? 'true' : 'false'}`, body, checkMultipartStatus);
  }

  getPartUploadUrls(uploadId: string, partNumbers: number[]): Promise<PartPresignedUrl[]> {
    return this.#json('POST', 'file', `/file/multipart/${enc(uploadId)}/presigned/url/batch`, { uploadId, partNumbers }, (v) =>
      array(record(v, 'presigned URL batch').partPresignedUrls, 'presigned URL batch.partPresignedUrls').map((p) => {
        const o = { ...record(p, 'part presigned URL') };
        o.partNumber = num(o.partNumber, 'part presigned URL.partNumber');
        str(o, 'uploadPresignedUrl', 'part presigned URL');
        return o as unknown as PartPresignedUrl;
      }),
    );
  }

  addPart(uploadId: string, partNumber: number, partMd5Hex: string): Promise<AddPartResponse> {
    return this.#json(
      'PUT',
      'file',
      `/file/multipart/${enc(uploadId)}/add/${partNumber}?partMD5Hex=${enc(partMd5Hex)}`,
      undefined,
      (v) => {
        const o = { ...record(v, 'add part response') };
        str(o, 'addPartState', 'add part response');
        optIdString(o, 'uploadId', 'add part response');
        optNum(o, 'partNumber', 'add part response');
        return o as unknown as AddPartResponse;
      },
    );
  }

  completeMultipartUpload(uploadId: string): Promise<MultipartUploadStatus> {
    return this.#json('PUT', 'file', `/file/multipart/${enc(uploadId)}/complete`, undefined, checkMultipartStatus);
  }

  // -- table / view queries ---------------------------------------------------------------------

  startTableQuery(viewId: string, sql: string, opts: TableQueryOptions = {}): Promise<string> {
    const body: QueryBundleRequest = { concreteType: CONCRETE.queryBundleRequest, entityId: viewId, query: { sql } };
    if (opts.offset !== undefined) body.query.offset = opts.offset;
    if (opts.limit !== undefined) body.query.limit = opts.limit;
    if (opts.partMask !== undefined) body.partMask = opts.partMask;
    return this.#json('POST', 'repo', `/entity/${enc(viewId)}/table/query/async/start`, body, (v) =>
      idString(record(v, 'async job id'), 'token', 'async job id'));
  }

  async getTableQueryResult(viewId: string, token: string): Promise<TableQueryPoll> {
    const raw = await this.#req('GET', 'repo', `/entity/${enc(viewId)}/table/query/async/get/${enc(token)}`);
    if (raw.status === 202) {
      const status = this.#parse(raw, 'GET', checkJobStatus);
      // Synapse rethrows a failed job's error instead; a FAILED status here is not a shape we can use.
      if (status.jobState === 'FAILED') {
        throw this.#t.badResponse(raw, 'GET', `query job failed: ${status.errorMessage ?? 'no error message'}`);
      }
      return { done: false, status };
    }
    return { done: true, bundle: this.#parse(raw, 'GET', checkQueryBundle) };
  }

  /** The whole answer of a view query: start, poll with bounded backoff, follow pages (table-query.ts). */
  queryView(viewId: string, sql: string, opts?: QueryViewOptions): Promise<QueryViewResult> {
    return queryView(this, viewId, sql, opts);
  }
}

function enc(s: string): string {
  return encodeURIComponent(s);
}
