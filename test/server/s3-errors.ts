/**
 * S3 error responses as S3 sends them: an XML <Error> document with Code and Message (no body
 * for HEAD). Messages are AWS's own wording for the codes the gate produces.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';

export const S3_MESSAGES: Record<string, string> = {
  AccessDenied: 'Access Denied',
  InvalidAccessKeyId: 'The AWS Access Key Id you provided does not exist in our records.',
  InvalidToken: 'The provided token is malformed or otherwise invalid.',
  ExpiredToken: 'The provided token has expired.',
  SignatureDoesNotMatch:
    'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
  EntityTooSmall: 'Your proposed upload is smaller than the minimum allowed object size.',
  InvalidPart:
    'One or more of the specified parts could not be found.  The part may not have been uploaded, or the specified entity tag may not have matched the part\'s entity tag.',
  InvalidPartOrder: 'The list of parts was not in ascending order. Parts must be ordered by part number.',
  InvalidArgument: 'Invalid Argument',
  SlowDown: 'Please reduce your request rate.',
  InternalError: 'We encountered an internal error. Please try again.',
  ServiceUnavailable: 'Service is unable to handle request.',
  MalformedXML: 'The XML you provided was not well-formed or did not validate against our published schema',
  AuthorizationHeaderMalformed: 'The authorization header is malformed.',
};

/** The S3 error code a fault rule with this status answers with. */
export function codeForStatus(status: number): string {
  switch (status) {
    case 400: return 'InvalidArgument';
    case 403: return 'AccessDenied';
    case 404: return 'NoSuchKey';
    case 500: return 'InternalError';
    case 503: return 'SlowDown';
    default: return status >= 500 ? 'InternalError' : 'InvalidArgument';
  }
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function sendS3Error(
  res: ServerResponse, method: string, status: number, code: string, message?: string, extra: Record<string, string> = {},
): void {
  if (res.headersSent) { res.destroy(); return; }
  const requestId = randomBytes(8).toString('hex').toUpperCase();
  const fields = Object.entries(extra).map(([k, v]) => `<${k}>${esc(v)}</${k}>`).join('');
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${esc(message ?? S3_MESSAGES[code] ?? code)}</Message>${fields}<RequestId>${requestId}</RequestId></Error>`;
  const headers: Record<string, string | number> = { 'Content-Type': 'application/xml', 'x-amz-request-id': requestId };
  if (method === 'HEAD') {
    res.writeHead(status, headers);
    res.end();
  } else {
    headers['Content-Length'] = Buffer.byteLength(body);
    res.writeHead(status, headers);
    res.end(body);
  }
}
