/**
 * pino logger factory: JSON lines to stderr (foreground) or a log file (background), one child
 * logger per component. Secrets never reach a line: `redact` removes token-bearing keys
 * wherever they appear (auth token, STS keys, presigned URLs and their signatures), and error
 * serialisation goes through pino's standard `err` serializer.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import pino, { type Logger } from 'pino';

export const REDACT_PATHS = [
  'authToken', 'token', 'authorization', 'Authorization',
  'accessKeyId', 'secretAccessKey', 'sessionToken',
  '*.authToken', '*.token', '*.authorization', '*.Authorization',
  '*.accessKeyId', '*.secretAccessKey', '*.sessionToken',
  'url', '*.url', 'preSignedURL', '*.preSignedURL', 'uploadPresignedUrl', '*.uploadPresignedUrl',
  'headers.authorization', 'req.headers.authorization',
];

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export function createLogger(level: LogLevel, file?: string): Logger {
  const options = { level, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, base: { pid: process.pid } };
  if (file) {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    return pino(options, pino.destination({ dest: file, sync: true, mkdir: true }));
  }
  return pino(options, pino.destination({ fd: 2, sync: true }));
}
