/**
 * The Synapse-compatible HTTP server: /repo/v1, /file/v1 and /auth/v1 routes over the
 * in-memory state, plus the test-only /_dev endpoints (faults, stats, config; no auth). Per
 * request, in order: count it, match the route (404 otherwise, 405-like mismatches also 404 as
 * Synapse's dispatcher does), apply a synapse fault rule, authenticate the bearer token (401),
 * apply the throttle (429, no Retry-After), add the latency knob, parse JSON (400 when
 * malformed), run the handler. Errors are `{"reason": ...}`; a handler crash is a 500.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { applyConfig, type DevConfig } from './config.js';
import { sleep, type Faults } from './faults.js';
import {
  Router, SynapseError, parseJsonBody, readBody, sendJson, sendReason, type Reply,
} from './http.js';
import type { State } from './state.js';
import type { Stats } from './stats.js';
import { Throttle } from './throttle.js';
import type { S3Backend } from './s3-backend.js';
import type { Deps } from './routes/common.js';
import { register as registerEntities } from './routes/entities.js';
import { register as registerChildren } from './routes/children.js';
import { register as registerFiles } from './routes/files.js';
import { register as registerStorage } from './routes/storage.js';
import { register as registerSts } from './routes/sts.js';
import { register as registerMultipart } from './routes/multipart.js';
import { register as registerUsers } from './routes/users.js';
import { register as registerTables } from './routes/tables.js';

export interface SynapseServerOptions {
  port: number;
  state: State;
  config: DevConfig;
  faults: Faults;
  stats: Stats;
  s3: S3Backend;
}

export class SynapseServer {
  private readonly router = new Router();
  private readonly throttle = new Throttle();
  private server: http.Server | undefined;
  endpoint = '';

  constructor(private readonly opts: SynapseServerOptions) {
    const deps: Deps = { state: opts.state, config: opts.config, s3: opts.s3, stats: opts.stats, faults: opts.faults };
    for (const reg of [registerUsers, registerEntities, registerChildren, registerFiles, registerStorage, registerSts, registerMultipart, registerTables]) {
      reg(this.router, deps);
    }
  }

  async start(): Promise<string> {
    const server = http.createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) sendReason(res, 500, `Internal error: ${(e as Error).message ?? String(e)}`);
        else res.destroy();
      });
    });
    server.keepAliveTimeout = 30_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, '127.0.0.1', () => resolve());
    });
    this.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.endpoint;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname.startsWith('/_dev/')) { await this.handleDev(method, url, req, res); return; }

    const { stats, faults, config, state } = this.opts;
    stats.synapse.requests++;
    const m = this.router.match(method, url.pathname);
    if (!('route' in m)) {
      req.resume();
      sendReason(res, 404, `The requested URL ${url.pathname} was not found on this server (${method}).`);
      return;
    }
    stats.countRoute(`${method} ${m.route.template}`);

    const fault = faults.take('synapse', method, url.pathname);
    if (fault) {
      if (fault.latencyMs > 0) await sleep(fault.latencyMs);
      if (fault.reset) {
        req.resume();
        const body = JSON.stringify({ reason: 'connection reset by fault injection' });
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
        res.write(body.slice(0, Math.floor(body.length / 2)), () => res.destroy());
        return;
      }
      if (fault.body !== undefined) {
        req.resume();
        res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(fault.body) });
        res.end(fault.body);
        return;
      }
      if (fault.status !== undefined) {
        req.resume();
        const headers: Record<string, string> = {};
        if (fault.retryAfterSec !== undefined) headers['Retry-After'] = String(fault.retryAfterSec);
        sendReason(res, fault.status, faultReason(fault.status), headers);
        return;
      }
    }

    const auth = req.headers.authorization;
    const token = auth && /^Bearer\s+(.+)$/i.exec(auth)?.[1]?.trim();
    const user = token ? state.userByToken(token) : undefined;
    if (!user) {
      req.resume();
      sendReason(res, 401, token ? 'Invalid access token' : 'Missing access token. Provide a personal access token as "Authorization: Bearer <token>".');
      return;
    }

    let release = (): void => {};
    if (config.throttle) {
      const t = this.throttle.acquire(user.id);
      if ('reason' in t) {
        stats.synapse.throttled++;
        req.resume();
        sendReason(res, 429, t.reason);
        return;
      }
      release = t.release;
      res.on('close', release);
    }
    try {
      if (config.synapseLatencyMs > 0) await sleep(config.synapseLatencyMs);
      const raw = await readBody(req);
      const body = method === 'GET' || method === 'DELETE' ? undefined : parseJsonBody(raw);
      const reply = await m.route.handler({ req, res, url, params: m.params, user, state, config, body });
      sendReply(res, reply);
    } catch (e) {
      if (e instanceof SynapseError) sendReason(res, e.status, e.reason, e.headers);
      else throw e;
    } finally {
      if (res.writableEnded) release();
    }
  }

  private async handleDev(method: string, url: URL, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { faults, stats, config } = this.opts;
    let body: unknown;
    try {
      body = parseJsonBody(await readBody(req));
    } catch (e) {
      sendReason(res, 400, (e as Error).message);
      return;
    }
    const p = url.pathname;
    if (p === '/_dev/faults' && method === 'POST') {
      const r = faults.add((body ?? {}) as Record<string, unknown>);
      if (typeof r === 'string') sendReason(res, 400, r); else sendJson(res, 200, r);
    } else if (p === '/_dev/faults' && method === 'DELETE') {
      faults.clear();
      sendJson(res, 200, {});
    } else if (p === '/_dev/faults' && method === 'GET') {
      sendJson(res, 200, { rules: faults.list() });
    } else if (p === '/_dev/stats' && method === 'GET') {
      sendJson(res, 200, stats.snapshot());
    } else if (p === '/_dev/config' && (method === 'POST' || method === 'GET')) {
      if (method === 'POST') {
        const err = applyConfig(config, (body ?? {}) as Record<string, unknown>);
        if (err) { sendReason(res, 400, err); return; }
      }
      sendJson(res, 200, { ...config });
    } else {
      sendReason(res, 404, `Unknown dev endpoint ${method} ${p}`);
    }
  }
}

function faultReason(status: number): string {
  if (status === 429) return 'Too many requests (fault injection).';
  if (status >= 500) return `Service temporarily unavailable (fault injection, status ${status}).`;
  return `Fault injection answered status ${status}.`;
}

function sendReply(res: ServerResponse, r: Reply): void {
  if (r.location !== undefined) {
    res.writeHead(r.status, { Location: r.location, 'Content-Length': 0 });
    res.end();
  } else if (r.text !== undefined) {
    res.writeHead(r.status, { 'Content-Type': 'text/plain;charset=UTF-8', 'Content-Length': Buffer.byteLength(r.text) });
    res.end(r.text);
  } else if (r.empty || r.json === undefined) {
    res.writeHead(r.status, { 'Content-Length': 0 });
    res.end();
  } else {
    sendJson(res, r.status, r.json);
  }
}
