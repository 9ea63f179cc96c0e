/**
 * The control socket of a serving process, so `synapse-mount status DIR` can ask the process
 * that serves DIR what it is doing. A Unix socket next to the mount record
 * (`<state dir>/mounts/<hash>.sock`, mount-registry.ts), created when the mount is ready and
 * removed at unmount; mode 0600 inside a 0700 directory, so only the mounting user (and root)
 * can connect. It answers questions and changes nothing, and what it tells holds no secret
 * (no token, no STS keys, no presigned URL).
 *
 * Protocol: the client writes one JSON line `{"op":"status"}`; the server answers one JSON line
 * `{"ok":true,"result":…}` or `{"ok":false,"error":"…"}` and closes. Requests larger than
 * MAX_REQUEST_BYTES or slower than REQUEST_TIMEOUT_MS are dropped, so a stuck client cannot pin
 * the serving process.
 */
import { chmod, rm } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { makeDirs } from '../fs/make-dirs.js';

export type ControlOp = 'status';

const MAX_REQUEST_BYTES = 4096;
const REQUEST_TIMEOUT_MS = 5_000;
/** Unix socket paths are limited to 108 bytes including the NUL (sun_path). */
export const MAX_SOCKET_PATH = 107;

export interface ControlServer {
  readonly path: string;
  close(): Promise<void>;
}

export type ControlHandler = (op: ControlOp) => Promise<unknown>;

/** Listen on `socketPath` (replacing a stale socket left by a killed process). */
export async function startControlServer(socketPath: string, handler: ControlHandler, log?: Logger): Promise<ControlServer> {
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new Error(`control socket path is longer than ${MAX_SOCKET_PATH} bytes: ${socketPath} (set XDG_STATE_HOME to a shorter directory)`);
  }
  await makeDirs(path.dirname(socketPath));
  // Only reached once this process owns the mountpoint: a socket already there is stale.
  await rm(socketPath, { force: true });
  const server = net.createServer((conn) => {
    conn.setTimeout(REQUEST_TIMEOUT_MS, () => conn.destroy());
    let buf = '';
    conn.on('error', () => undefined);
    conn.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      if (buf.length > MAX_REQUEST_BYTES) {
        conn.destroy();
        return;
      }
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      conn.removeAllListeners('data');
      void answer(line).then((reply) => conn.end(`${JSON.stringify(reply)}\n`));
    });
  });
  const answer = async (line: string): Promise<{ ok: true; result: unknown } | { ok: false; error: string }> => {
    let op: unknown;
    try {
      op = (JSON.parse(line) as { op?: unknown }).op;
    } catch {
      return { ok: false, error: 'request is not JSON' };
    }
    if (op !== 'status') return { ok: false, error: `unknown op ${JSON.stringify(op)}` };
    try {
      return { ok: true, result: await handler(op) };
    } catch (err) {
      log?.warn({ err }, 'control request failed');
      return { ok: false, error: (err as Error).message ?? String(err) };
    }
  };
  server.on('error', (err) => log?.warn({ err }, 'control socket error'));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(socketPath, 0o600);
  server.unref();
  return {
    path: socketPath,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(socketPath, { force: true });
    },
  };
}

export class ControlError extends Error {
  override readonly name = 'ControlError';
  constructor(message: string, readonly code?: string) {
    super(message);
  }
}

/** Ask the process behind `socketPath`; rejects with ControlError (code ENOENT/ECONNREFUSED/ETIMEDOUT/…). */
export function queryControl(socketPath: string, op: ControlOp, timeoutMs = 3_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const conn = net.createConnection(socketPath);
    let buf = '';
    let done = false;
    const finish = (err: ControlError | undefined, value?: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      conn.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(() => finish(new ControlError(`no answer within ${timeoutMs} ms`, 'ETIMEDOUT')), timeoutMs);
    conn.on('connect', () => conn.write(`${JSON.stringify({ op })}\n`));
    conn.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let reply: { ok?: boolean; result?: unknown; error?: string };
      try {
        reply = JSON.parse(buf.slice(0, nl)) as typeof reply;
      } catch {
        finish(new ControlError('the serving process sent an unreadable answer', 'EPROTO'));
        return;
      }
      if (reply.ok) finish(undefined, reply.result);
      else finish(new ControlError(reply.error ?? 'request failed', 'EREMOTE'));
    });
    conn.on('end', () => finish(new ControlError('the serving process closed the connection without answering', 'EPROTO')));
    conn.on('error', (err: NodeJS.ErrnoException) => finish(new ControlError(err.message, err.code)));
  });
}
