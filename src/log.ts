/**
 * pino logger factory: JSON lines to stderr (foreground) or a log file (background), one child
 * logger per component. Secrets never reach a line: `redact` removes token-bearing keys
 * wherever they appear (auth token, STS keys, presigned URLs and their signatures), and error
 * serialisation goes through pino's standard `err` serializer.
 *
 * A second net at the sink (issue 8), for whatever a key-based redaction cannot see — a secret
 * inside an error message, a URL in a nested object: every finished line goes through
 * `scrubSecrets`, which blanks the values of presigned-URL authorisation parameters
 * (X-Amz-Signature, X-Amz-Security-Token, X-Amz-Credential, CloudFront's Signature/Policy/
 * Key-Pair-Id) and every value handed to `registerSecret` (the auth token, STS secret keys and
 * session tokens, registered by the composition root as they arrive). The same function cleans
 * the one-line error messages the CLI prints.
 */
import path from 'node:path';
import pino, { type Logger } from 'pino';
import { makeDirsSync } from './fs/make-dirs.js';

export const REDACT_PATHS = [
  'authToken', 'token', 'authorization', 'Authorization',
  'accessKeyId', 'secretAccessKey', 'sessionToken',
  '*.authToken', '*.token', '*.authorization', '*.Authorization',
  '*.accessKeyId', '*.secretAccessKey', '*.sessionToken',
  'url', '*.url', 'preSignedURL', '*.preSignedURL', 'uploadPresignedUrl', '*.uploadPresignedUrl',
  'headers.authorization', 'req.headers.authorization',
];

/** Secret values never to be written, most recent last; bounded (STS credentials refresh hourly). */
const secrets = new Set<string>();
const MAX_SECRETS = 64;
/** Shorter values are not treated as secrets (they would blank ordinary text). */
const MIN_SECRET_LENGTH = 8;
const URL_SECRET_PARAMS = /\b(X-Amz-Signature|X-Amz-Security-Token|X-Amz-Credential|Signature|Policy|Key-Pair-Id)=[^&"'\s\\]+/gi;

/** Never write `value` to a log line or an error message from now on. */
export function registerSecret(value: string | undefined): void {
  if (!value || value.length < MIN_SECRET_LENGTH) return;
  secrets.delete(value);
  secrets.add(value);
  if (secrets.size > MAX_SECRETS) secrets.delete(secrets.values().next().value as string);
}

/** `text` with registered secrets and presigned-URL authorisation values replaced by [redacted]. */
export function scrubSecrets(text: string): string {
  let out = text.replace(URL_SECRET_PARAMS, '$1=[redacted]');
  for (const secret of secrets) {
    if (out.includes(secret)) out = out.split(secret).join('[redacted]');
  }
  return out;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export function createLogger(level: LogLevel, file?: string): Logger {
  const options = {
    level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { pid: process.pid },
    hooks: { streamWrite: scrubSecrets },
  };
  if (file) {
    makeDirsSync(path.dirname(file));
    return pino(options, pino.destination({ dest: file, sync: true, mkdir: true }));
  }
  return pino(options, pino.destination({ fd: 2, sync: true }));
}
