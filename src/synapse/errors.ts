/**
 * Errors of the Synapse layer. Every failed Synapse call becomes a SynapseError carrying the HTTP
 * status and Synapse's `reason`; transport failures after retries become SynapseError with
 * status 0. `code` is a stable name for logs and the errno table (src/fs/errors.ts).
 * Messages never contain the auth token.
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
  constructor(
    readonly status: number,
    readonly reason: string,
    readonly method: string,
    readonly path: string,
    options?: { cause?: unknown; code?: SynapseErrorCode },
  ) {
    super(`Synapse ${method} ${path} failed${status ? ` (${status})` : ''}: ${reason}`, options);
    this.code = options?.code ?? codeForStatus(status);
  }
}
