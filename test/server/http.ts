/**
 * HTTP plumbing for the Synapse server: a tiny router keyed by Synapse's URL templates, JSON
 * body parsing, and errors that render as Synapse does — `{"reason": "..."}` with the status of
 * the Java exception Synapse maps it from (IllegalArgumentException 400, UnauthorizedException
 * 403, NotFoundException 404, NameConflictException 409, ConflictingUpdateException 412).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { State, User } from './state.js';
import type { DevConfig } from './config.js';

export class SynapseError extends Error {
  constructor(readonly status: number, readonly reason: string, readonly headers: Record<string, string> = {}) {
    super(reason);
  }
}
export const badRequest = (reason: string) => new SynapseError(400, reason);
export const forbidden = (reason: string) => new SynapseError(403, reason);
export const notFound = (reason: string) => new SynapseError(404, reason);
export const conflict = (reason: string) => new SynapseError(409, reason);
export const preconditionFailed = (reason: string) => new SynapseError(412, reason);

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
  user: User;
  state: State;
  config: DevConfig;
  body: unknown;
}

export interface Reply {
  status: number;
  json?: unknown;
  /** raw text body with no JSON content type (Synapse's empty project-setting answer) */
  empty?: boolean;
  /** text/plain body (GET /fileHandle/{id}/url?redirect=false) */
  text?: string;
  /** redirect target (307) */
  location?: string;
}

export type Handler = (ctx: Ctx) => Promise<Reply> | Reply;

export interface Route {
  method: string;
  service: 'repo' | 'file' | 'auth';
  template: string; // e.g. /entity/{id}/version
  regex: RegExp;
  keys: string[];
  handler: Handler;
}

export class Router {
  readonly routes: Route[] = [];

  add(method: string, service: Route['service'], template: string, handler: Handler): void {
    const keys: string[] = [];
    const pattern = template.replace(/\{(\w+)\}/g, (_m, k: string) => { keys.push(k); return '([^/]+)'; });
    this.routes.push({ method, service, template, regex: new RegExp(`^${pattern}$`), keys, handler });
  }

  /** Match `/repo/v1/...` etc.; `methodMismatch` when the path exists with another method. */
  match(method: string, path: string): { route: Route; params: Record<string, string> } | { methodMismatch: boolean } {
    const m = /^\/(repo|file|auth)\/v1(\/.*)$/.exec(path);
    if (!m) return { methodMismatch: false };
    const service = m[1] as Route['service'];
    const rest = m[2] ?? '';
    let mismatch = false;
    for (const route of this.routes) {
      if (route.service !== service) continue;
      const mm = route.regex.exec(rest);
      if (!mm) continue;
      if (route.method !== method) { mismatch = true; continue; }
      const params: Record<string, string> = {};
      route.keys.forEach((k, i) => { params[k] = decodeURIComponent(mm[i + 1] ?? ''); });
      return { route, params };
    }
    return { methodMismatch: mismatch };
  }
}

const MAX_BODY_BYTES = 16 * 1024 * 1024;

export async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    const b = c as Buffer;
    size += b.length;
    if (size > MAX_BODY_BYTES) throw badRequest('Request body is too large');
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

export function parseJsonBody(buf: Buffer): unknown {
  if (buf.length === 0) return undefined;
  try {
    return JSON.parse(buf.toString('utf8')) as unknown;
  } catch (e) {
    throw badRequest(`Could not parse the request body as JSON: ${(e as Error).message}`);
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json;charset=UTF-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendReason(res: ServerResponse, status: number, reason: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { reason }, headers);
}

// ---------- body field helpers (validation errors read like Synapse's ValidateArgument) ----------

export type Obj = Record<string, unknown>;

export function asObject(body: unknown, what = 'body'): Obj {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest(`${what} is required.`);
  return body as Obj;
}

export function optString(o: Obj, k: string): string | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number') return String(v);
  if (typeof v !== 'string') throw badRequest(`${k} must be a string`);
  return v;
}

export function reqString(o: Obj, k: string): string {
  const v = optString(o, k);
  if (v === undefined || v === '') throw badRequest(`${k} is required.`);
  return v;
}

export function optNumber(o: Obj, k: string): number | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n)) throw badRequest(`${k} must be a number`);
  return n;
}

export function optBool(o: Obj, k: string): boolean | undefined {
  const v = o[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw badRequest(`${k} must be a boolean`);
  return v;
}
