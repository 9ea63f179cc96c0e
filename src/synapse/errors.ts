/**
 * Errors of the Synapse layer. Every failed Synapse call becomes a SynapseError carrying the HTTP
 * status and Synapse's `reason`; transport failures after retries become SynapseError with
 * status 0. `code` is a stable name for logs and the errno table (src/fs/errors.ts).
 * Messages never contain the auth token.
 * `attempts` is how many HTTP attempts the call made (1 unless it was retried); the message says so
 * when retries were exhausted, so a user reading a log knows the failure was not a single blip.
 */
export type SynapseErrorCode =
  | 'BAD_REQUEST'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'PRECONDITION_FAILED'
  | 'THROTTLED'
  | 'SERVER_ERROR'
  | 'NETWORK'
  | 'BAD_RESPONSE';

export function codeForStatus(status: number): SynapseErrorCode {
  switch (status) {
    case 400: return 'BAD_REQUEST';
    case 401: return 'UNAUTHORIZED';
    case 403: return 'FORBIDDEN';
    case 404: return 'NOT_FOUND';
    case 409: return 'CONFLICT';
    case 412: return 'PRECONDITION_FAILED';
    case 429: return 'THROTTLED';
    case 0: return 'NETWORK';
    default: return status >= 500 ? 'SERVER_ERROR' : 'BAD_REQUEST';
  }
}

export class SynapseError extends Error {
  override readonly name = 'SynapseError';
  readonly code: SynapseErrorCode;
  readonly attempts: number;
  constructor(
    readonly status: number,
    readonly reason: string,
    readonly method: string,
    readonly path: string,
    options?: { cause?: unknown; code?: SynapseErrorCode; attempts?: number },
  ) {
    const attempts = options?.attempts ?? 1;
    super(
      `Synapse ${method} ${path} failed${status ? ` (${status})` : ''}: ${reason}` +
        (attempts > 1 ? ` [gave up after ${attempts} attempts]` : ''),
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.code = options?.code ?? codeForStatus(status);
    this.attempts = attempts;
  }
}
