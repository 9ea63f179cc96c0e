/**
 * Small helpers every S3 transport shares (aws-object-store, presigned-store, direct-range-get):
 * one backoff curve, one way to read an ETag and one to read an error document's code, so the
 * transports cannot drift apart.
 */

/** Capped, jittered exponential backoff before retry `attempt` (0-based): 50 ms × 2^attempt, at most `capMs`. */
export function backoff(attempt: number, capMs: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.min(capMs, 50 * 2 ** attempt) * (0.5 + Math.random() / 2)));
}

/** An ETag header as S3 sends it ("…", quotes included) → the bare value. */
export function stripQuotes(etag: string | undefined | null): string | undefined {
  return etag?.replace(/^"|"$/g, '');
}

/** The <Code> of an S3 error document (`<Error><Code>SlowDown</Code>…`), if the body is one. */
export function s3ErrorCode(body: string): string | undefined {
  return /<Code>([^<]{1,100})<\/Code>/.exec(body)?.[1];
}
