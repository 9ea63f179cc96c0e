/**
 * Small helpers every S3 transport shares (aws-object-store, presigned-store, direct-range-get):
 * one backoff curve, one way to read an ETag and one to read an error document's code, so the
 * transports cannot drift apart.
 */

/** Capped, jittered exponential backoff before retry `attempt` (0-based): `baseMs` (50) × 2^attempt, at most `capMs`. */
export function backoff(attempt: number, capMs: number, baseMs = 50): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.min(capMs, baseMs * 2 ** attempt) * (0.5 + Math.random() / 2)));
}

/** An ETag header as S3 sends it ("…", quotes included) → the bare value. */
export function stripQuotes(etag: string | undefined | null): string | undefined {
  return etag?.replace(/^"|"$/g, '');
}

/** The <Code> of an S3 error document (`<Error><Code>SlowDown</Code>…`), if the body is one. */
export function s3ErrorCode(body: string): string | undefined {
  return /<Code>([^<]{1,100})<\/Code>/.exec(body)?.[1];
}

/** Marks `err` as a GET whose body was cut short after `bytes` of it had arrived (readers set it). */
export function markCutShort(err: unknown, bytes: number): void {
  if (bytes > 0 && err !== null && typeof err === 'object') (err as { cutShortAfter?: number }).cutShortAfter = bytes;
}

/** Was `err` (or what it wraps) a body cut short after some of it arrived? */
function cutShort(err: unknown): boolean {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (((e as { cutShortAfter?: number }).cutShortAfter ?? 0) > 0) return true;
  }
  return false;
}

/** S3 asking for a slower pace: 503 SlowDown (the SDK's exceptions carry it as their name). */
function isSlowDown(err: unknown): boolean {
  const e = (err ?? {}) as { code?: unknown; name?: unknown };
  return e.code === 'SlowDown' || e.name === 'SlowDown';
}

/**
 * What a SlowDown costs of a request's tries: half of one. S3 answered — slow down, not failed —
 * so a throttled request gets twice its tries (CI: at 30 % SlowDown, 8 tries lost one read of
 * ≈ 100 in ≈ 150 runs, 6 one 5-part upload in ≈ 280), its backoff growing with each; not more, as
 * every try is one more request against a bucket that asked for fewer (review).
 */
const SLOWDOWN_TRY_COST = 0.5;

/** What the failure `err` costs of a request's tries: half of one for a SlowDown, else one. */
export function tryCost(err: unknown): number {
  return isSlowDown(err) ? SLOWDOWN_TRY_COST : 1;
}

/**
 * The tries of one ranged GET. A body cut short after some of it arrived is a flaky link, not a
 * server that is gone: such a try does not count toward `limit`, so a read through a link that
 * keeps cutting bodies short (30% of them in the fault tests: 8 whole tries failed one read in
 * ~100 there) goes on — up to 3 × `limit` tries in all — while a server that answers nothing
 * still fails after `limit`. A SlowDown costs half a try (SLOWDOWN_TRY_COST), its backoff growing
 * as a failure's: at most 2 × `limit` tries, ≈ 8 s of waits — inside the default --read-timeout.
 */
export class GetTries {
  /** Of `limit`: tryCost of each failure, a body cut short costing nothing. */
  private counted = 0;
  /** The failures the backoff grows with: all but bodies cut short. */
  private waited = 0;
  private all = 0;
  private limit: number;

  /** `where`: the store the GET goes to (a bucket, a URL's origin), for the outage memory. */
  constructor(private readonly fullLimit: number, private readonly where?: string, private readonly outages: OutageMemory = s3Outages) {
    this.limit = where !== undefined && outages.down(where) ? 1 : fullLimit;
  }

  /** After the failure `err` (one worth retrying: 5xx, no answer, a refused URL): is another try allowed? */
  another(err: unknown): boolean {
    this.all++;
    if (!cutShort(err)) {
      this.counted += tryCost(err);
      this.waited++;
    }
    // An answer (a 403 to renew a URL, a SlowDown, a body cut short) says the store is up: it
    // ends a remembered outage, and never starts one (review: one object's 403s made its bucket
    // "down", and healthy reads there lost their URL renewal and retries).
    const outage = outageSign(err);
    if (!outage) this.answered();
    const more = this.counted < this.limit && this.all < 3 * this.limit;
    if (!more && outage && this.where !== undefined) this.outages.gaveUp(this.where);
    return more;
  }

  /** The GET was answered: its store is up (full tries again). */
  answered(): void {
    this.limit = this.fullLimit;
    if (this.where !== undefined) this.outages.answered(this.where);
  }

  /** backoff()'s attempt for the wait before the next try: grows with the tries that got nothing, and with SlowDowns. */
  get step(): number {
    return Math.max(0, this.waited - 1);
  }
}

/** A failure that may mean the store is down: no answer at all, or a 5xx other than SlowDown. */
function outageSign(err: unknown): boolean {
  if (cutShort(err)) return false;
  // S3Error (status, code), or the SDK's own exceptions ($metadata.httpStatusCode, name).
  const e = (err ?? {}) as { status?: unknown; code?: unknown; name?: unknown; $metadata?: { httpStatusCode?: unknown } };
  const status = typeof e.status === 'number' ? e.status : e.$metadata?.httpStatusCode;
  if (typeof status !== 'number' || status === 0) return true;
  return status >= 500 && !isSlowDown(e);
}

/**
 * Stores whose GETs gave up lately (every try failed: 5xx or no answer). Such a store is taken as
 * down for `windowMs` after the last read that gave up, and reads meanwhile try once: through a
 * sustained outage each read() paid 8 tries and 2–3 s of backoff, so `rsync -a` (which reads on
 * after EIO) took minutes per few files and `dd conv=noerror` 290 GETs for one block (QA). The
 * first answer ends it. Keyed by bucket or URL origin: one failing bucket slows no other.
 */
export class OutageMemory {
  private readonly lastGaveUp = new Map<string, number>();

  constructor(private readonly windowMs = 30_000, private readonly now: () => number = Date.now) {}

  down(where: string): boolean {
    const at = this.lastGaveUp.get(where);
    return at !== undefined && this.now() - at < this.windowMs;
  }

  gaveUp(where: string): void {
    this.lastGaveUp.delete(where);
    this.lastGaveUp.set(where, this.now());
    // Bounded: the oldest go first (a mount reads from a handful of buckets).
    if (this.lastGaveUp.size > 256) this.lastGaveUp.delete(this.lastGaveUp.keys().next().value!);
  }

  answered(where: string): void {
    this.lastGaveUp.delete(where);
  }
}

/** The process's memory of failing stores, shared by every S3 transport. */
export const s3Outages = new OutageMemory();
