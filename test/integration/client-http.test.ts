/**
 * HttpSynapseClient against a scripted node:http server on 127.0.0.1:0 (no dependency on the
 * shared test server): retries (429 Retry-After, 5xx, connection resets, timeouts) and their time
 * bound, error mapping, paging, the 3-in-flight queue and its priorities, response checks,
 * normalisation, and that the token never leaks into errors or logs.
 */
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { HttpSynapseClient, parseRetryAfter, type HttpSynapseClientOptions } from '../../src/synapse/http-client.js';
import { SynapseError } from '../../src/synapse/errors.js';

const TOKEN = 'tok-SECRET-4f2a9c1e-very-secret';
const T = { timeout: 15_000 };

interface Seen {
  method: string;
  url: string;
  body: string;
  auth: string | undefined;
  userAgent: string | undefined;
  contentType: string | undefined;
}
type Handler = (req: Seen, res: ServerResponse, raw: IncomingMessage) => void | Promise<void>;

let server: Server;
let endpoint: string;
let handler: Handler;
let seen: Seen[] = [];
let inFlight = 0;
let maxInFlight = 0;

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

const ENTITY = {
  id: 'syn1',
  name: 'a.txt',
  parentId: 'syn0',
  etag: 'e1',
  concreteType: 'org.sagebionetworks.repo.model.FileEntity',
  createdOn: '2026-01-01T00:00:00.000Z',
  modifiedOn: '2026-01-01T00:00:00.000Z',
  createdBy: '1',
  modifiedBy: '1',
  versionNumber: 1,
  dataFileHandleId: '7',
};

before(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      let done = false;
      const finish = (): void => {
        if (!done) { done = true; inFlight--; }
      };
      res.on('close', finish);
      const s: Seen = {
        method: req.method ?? '',
        url: req.url ?? '',
        body: Buffer.concat(chunks).toString('utf8'),
        auth: req.headers.authorization,
        userAgent: req.headers['user-agent'],
        contentType: req.headers['content-type'],
      };
      seen.push(s);
      Promise.resolve(handler(s, res, req)).catch((e: unknown) => {
        res.destroy(e as Error);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  seen = [];
  inFlight = 0;
  maxInFlight = 0;
  handler = (_s, res) => json(res, 200, ENTITY);
});

function client(opts: Partial<HttpSynapseClientOptions> = {}): HttpSynapseClient {
  return new HttpSynapseClient({ endpoint, authToken: TOKEN, backoff: { initialMs: 10, maxMs: 50 }, ...opts });
}

async function rejects(p: Promise<unknown>): Promise<SynapseError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof SynapseError, `expected SynapseError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a rejection');
}

test('sends bearer token, JSON content type, user agent; endpoint /repo/v1 suffix tolerated', T, async () => {
  const c = client({ endpoint: `${endpoint}/repo/v1/`, userAgent: 'test-agent/1' });
  const e = await c.createEntity({ concreteType: 'org.sagebionetworks.repo.model.Folder', name: 'f', parentId: 'syn0' });
  assert.equal(e.id, 'syn1');
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.url, '/repo/v1/entity');
  assert.equal(seen[0]!.auth, `Bearer ${TOKEN}`);
  assert.equal(seen[0]!.userAgent, 'test-agent/1');
  assert.match(seen[0]!.contentType ?? '', /^application\/json/);
  assert.deepEqual(JSON.parse(seen[0]!.body), { concreteType: 'org.sagebionetworks.repo.model.Folder', name: 'f', parentId: 'syn0' });
});

test('429 with Retry-After is honoured (waits at least that long), then succeeds', T, async () => {
  let n = 0;
  handler = (_s, res) => {
    if (n++ === 0) json(res, 429, { reason: 'Too many requests' }, { 'Retry-After': '1' });
    else json(res, 200, ENTITY);
  };
  const c = client();
  const t0 = Date.now();
  const e = await c.getEntity('syn1');
  const elapsed = Date.now() - t0;
  assert.equal(e.id, 'syn1');
  assert.equal(seen.length, 2);
  assert.ok(elapsed >= 1000, `elapsed ${elapsed} ms < Retry-After`);
  assert.ok(elapsed < 2500, `elapsed ${elapsed} ms: waited far longer than Retry-After`);
  const st = c.stats();
  assert.equal(st.throttled, 1);
  assert.equal(st.retries, 1);
  assert.equal(st.requests, 2);
  assert.equal(st.errors, 0);
});

test('a 429 Retry-After pauses the whole queue, not just the throttled call', T, async () => {
  let first = true;
  const arrivals: Array<{ url: string; at: number }> = [];
  const t0 = Date.now();
  handler = (s, res) => {
    arrivals.push({ url: s.url, at: Date.now() - t0 });
    if (first) {
      first = false;
      json(res, 429, { reason: 'slow down' }, { 'Retry-After': '1' });
    } else {
      json(res, 200, { ...ENTITY, id: s.url.split('/').pop() });
    }
  };
  const c = client();
  const a = c.getEntity('synA');
  // Wait (bounded) until the client has seen the 429, however slow the machine is.
  for (let i = 0; i < 200 && c.stats().throttled < 1; i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(c.stats().throttled, 1);
  const b = c.getEntity('synB');
  await Promise.all([a, b]);
  const bArrival = arrivals.find((x) => x.url.endsWith('synB'));
  assert.ok(bArrival !== undefined && bArrival.at >= 950, `synB sent at ${bArrival?.at} ms, during the pause`);
});

test('503 (and 500/502/504) retried with backoff, then success', T, async () => {
  for (const status of [503, 500, 502, 504]) {
    seen = [];
    let n = 0;
    handler = (_s, res) => {
      if (n++ < 2) json(res, status, { reason: 'transient' });
      else json(res, 200, ENTITY);
    };
    const c = client();
    assert.equal((await c.getEntity('syn1')).id, 'syn1');
    assert.equal(seen.length, 3, `status ${status}`);
    assert.equal(c.stats().retries, 2);
  }
});

test('400/401/403/404/409/412 are not retried and map to SynapseError with the reason', T, async () => {
  const cases: Array<[number, string]> = [
    [400, 'BAD_REQUEST'],
    [401, 'UNAUTHORIZED'],
    [403, 'FORBIDDEN'],
    [404, 'NOT_FOUND'],
    [409, 'CONFLICT'],
    [412, 'PRECONDITION_FAILED'],
  ];
  for (const [status, code] of cases) {
    seen = [];
    handler = (_s, res) => json(res, status, { reason: `reason for ${status}`, concreteType: 'org.sagebionetworks.repo.model.ErrorResponse' });
    const c = client();
    const err = await rejects(c.updateEntity({ ...ENTITY }));
    assert.equal(err.status, status);
    assert.equal(err.code, code);
    assert.equal(err.reason, `reason for ${status}`);
    assert.equal(err.method, 'PUT');
    assert.equal(err.path, '/repo/v1/entity/syn1');
    assert.equal(err.attempts, 1);
    assert.equal(seen.length, 1, `status ${status} must not be retried`);
    assert.equal(c.stats().errors, 1);
  }
});

test('non-JSON error bodies become the reason (truncated); empty bodies the status text', T, async () => {
  handler = (_s, res) => {
    res.writeHead(502, { 'Content-Type': 'text/html' });
    res.end('<html>' + 'x'.repeat(2000) + '</html>');
  };
  const e1 = await rejects(client({ retryTimeoutSec: 0.1 }).getEntity('syn1'));
  assert.equal(e1.status, 502);
  assert.ok(e1.reason.startsWith('<html>xxx'));
  assert.ok(e1.reason.length <= 501);
  handler = (_s, res) => { res.writeHead(403); res.end(); };
  const e2 = await rejects(client().getEntity('syn1'));
  assert.equal(e2.reason, 'Forbidden');
});

test('listChildren posts the documented body and follows nextPageToken across 3 pages', T, async () => {
  handler = (s, res) => {
    const body = JSON.parse(s.body) as Record<string, unknown>;
    const pages: Record<string, { page: unknown[]; nextPageToken?: string | null }> = {
      start: { page: [{ id: 'syn2', name: 'a', type: 'org.sagebionetworks.repo.model.Folder' }], nextPageToken: 't2' },
      t2: { page: [{ id: 'syn3', name: 'b', type: 'org.sagebionetworks.repo.model.FileEntity', versionNumber: 2 }], nextPageToken: 't3' },
      t3: { page: [{ id: 'syn4', name: 'c', type: 'org.sagebionetworks.repo.model.Link' }], nextPageToken: null },
    };
    json(res, 200, pages[(body.nextPageToken as string | undefined) ?? 'start']);
  };
  const c = client();
  const children = await c.listChildren('syn1', ['folder', 'file', 'link']);
  assert.deepEqual(children.map((h) => h.id), ['syn2', 'syn3', 'syn4']);
  assert.equal(seen.length, 3);
  const bodies = seen.map((s) => JSON.parse(s.body) as Record<string, unknown>);
  assert.deepEqual(bodies[0], { parentId: 'syn1', includeTypes: ['folder', 'file', 'link'], sortBy: 'NAME', sortDirection: 'ASC' });
  assert.equal(bodies[1]!.nextPageToken, 't2');
  assert.equal(bodies[2]!.nextPageToken, 't3');
  assert.ok(seen.every((s) => s.method === 'POST' && s.url === '/repo/v1/entity/children'));
});

test('listChildren: an absent nextPageToken ends paging; a repeated one is BAD_RESPONSE, not a loop', T, async () => {
  handler = (_s, res) => json(res, 200, { page: [] });
  assert.deepEqual(await client().listChildren('syn1', ['file']), []);
  handler = (_s, res) => json(res, 200, { page: [], nextPageToken: 'same' });
  const err = await rejects(client().listChildren('syn1', ['file']));
  assert.equal(err.code, 'BAD_RESPONSE');
  assert.ok(seen.length <= 3);
});

test('never more than 3 requests in flight', T, async () => {
  handler = (s, res) => {
    setTimeout(() => json(res, 200, { ...ENTITY, id: s.url.split('/').pop() }), 30);
  };
  const c = client();
  const ids = Array.from({ length: 20 }, (_, i) => `syn${i}`);
  const got = await Promise.all(ids.map((id, i) => (i % 2 === 0 ? c : c.background()).getEntity(id)));
  assert.deepEqual(got.map((e) => e.id), ids);
  assert.equal(maxInFlight, 3);
  assert.equal(c.stats().inFlight, 0);
});

test('maxConcurrent is honoured (1)', T, async () => {
  handler = (_s, res) => { setTimeout(() => json(res, 200, ENTITY), 10); };
  const c = client({ maxConcurrent: 1 });
  await Promise.all(Array.from({ length: 6 }, () => c.getEntity('syn1')));
  assert.equal(maxInFlight, 1);
});

test('high-priority calls overtake queued low-priority ones', T, async () => {
  const held: Array<() => void> = [];
  handler = (s, res) => {
    const id = s.url.split('/').pop() ?? '';
    const reply = (): void => json(res, 200, { ...ENTITY, id });
    if (id.startsWith('synHold')) held.push(reply);
    else setTimeout(reply, 5);
  };
  const c = client();
  const bg = c.background();
  assert.equal(bg.priority, 'low');
  assert.equal(c.priority, 'high');
  const all: Array<Promise<unknown>> = [];
  for (let i = 0; i < 3; i++) all.push(bg.getEntity(`synHold${i}`));
  while (held.length < 3) await new Promise((r) => setTimeout(r, 5));
  for (let i = 0; i < 5; i++) all.push(bg.getEntity(`synLow${i}`));
  for (let i = 0; i < 2; i++) all.push(c.getEntity(`synHigh${i}`));
  assert.deepEqual(c.stats().queued, { high: 2, low: 5 });
  for (const r of held) r();
  await Promise.all(all);
  const order = seen.map((s) => s.url.split('/').pop()).slice(3);
  assert.deepEqual(order.slice(0, 2), ['synHigh0', 'synHigh1'], `order was ${order.join(',')}`);
  assert.deepEqual(order.slice(2), ['synLow0', 'synLow1', 'synLow2', 'synLow3', 'synLow4']);
});

test('malformed or truncated JSON in a 2xx → BAD_RESPONSE with the HTTP status', T, async () => {
  for (const body of ['{"id": "syn1", "name": ', 'not json at all', '']) {
    handler = (_s, res) => { res.writeHead(200, { 'Content-Type': 'application/json' }); res.end(body); };
    const err = await rejects(client().getEntity('syn1'));
    assert.equal(err.code, 'BAD_RESPONSE');
    assert.equal(err.status, 200);
    assert.match(err.message, body === '' ? /empty body/ : /malformed or truncated JSON/);
  }
});

test('missing fields the filesystem depends on → BAD_RESPONSE', T, async () => {
  handler = (_s, res) => json(res, 200, { id: 'syn1', name: 'x', etag: 'e' }); // no concreteType
  let err = await rejects(client().getEntity('syn1'));
  assert.equal(err.code, 'BAD_RESPONSE');
  assert.match(err.message, /concreteType/);
  handler = (_s, res) => json(res, 200, { page: { not: 'an array' } });
  err = await rejects(client().listChildren('syn1', ['file']));
  assert.equal(err.code, 'BAD_RESPONSE');
  assert.match(err.message, /page/);
  handler = (_s, res) => json(res, 200, { page: [{ id: 'syn2', type: 'x' }] });
  err = await rejects(client().listChildren('syn1', ['file']));
  assert.match(err.message, /name/);
  handler = (_s, res) => json(res, 200, { accessKeyId: 'a', secretAccessKey: 's', sessionToken: 't', expiration: 'never' });
  err = await rejects(client().getStsCredentials('syn1', 'read_only'));
  assert.match(err.message, /expiration/);
  handler = (_s, res) => json(res, 200, { results: [] });
  err = await rejects(client().getLatestVersionInfo('syn1'));
  assert.equal(err.code, 'BAD_RESPONSE');
});

test('project setting: 200 empty body (no JSON content type) → null; a setting → normalised', T, async () => {
  handler = (_s, res) => { res.writeHead(200); res.end(); };
  const c = client();
  assert.equal(await c.getUploadProjectSetting('syn1'), null);
  assert.equal(seen[0]!.url, '/repo/v1/projectSettings/syn1/type/upload');
  handler = (_s, res) =>
    json(res, 200, {
      concreteType: 'org.sagebionetworks.repo.model.project.UploadDestinationListSetting',
      id: 55,
      etag: 'x',
      projectId: 'syn1',
      settingsType: 'upload',
      locations: ['12', 13],
    });
  const s = await c.getUploadProjectSetting('syn1');
  assert.deepEqual(s?.locations, [12, 13]);
  assert.equal(s?.id, '55');
  handler = (_s, res) => { res.writeHead(200); res.end(); };
  await c.updateProjectSetting({ ...s!, locations: [12] });
  assert.equal(seen.at(-1)!.method, 'PUT');
});

test('lookupChild: 404 → null, 200 → id; deleteEntity accepts an empty body', T, async () => {
  handler = (_s, res) => json(res, 404, { reason: 'not found' });
  const c = client();
  assert.equal(await c.lookupChild('syn1', 'x'), null);
  assert.equal(c.stats().errors, 0);
  assert.deepEqual(JSON.parse(seen[0]!.body), { parentId: 'syn1', entityName: 'x' });
  handler = (_s, res) => json(res, 200, { id: 'syn9' });
  assert.equal(await c.lookupChild('syn1', 'x'), 'syn9');
  handler = (_s, res) => { res.writeHead(204); res.end(); };
  await c.deleteEntity('syn9');
  assert.equal(seen.at(-1)!.method, 'DELETE');
  assert.equal(seen.at(-1)!.url, '/repo/v1/entity/syn9');
});

test('batchFileHandles splits >100 into chunks of 100, keeps order, normalises ids', T, async () => {
  handler = (s, res) => {
    const body = JSON.parse(s.body) as { requestedFiles: Array<{ fileHandleId: string }>; includePreSignedURLs: boolean };
    json(res, 200, {
      requestedFiles: body.requestedFiles.map((f) => ({
        fileHandleId: Number(f.fileHandleId),
        fileHandle: {
          id: Number(f.fileHandleId),
          concreteType: 'org.sagebionetworks.repo.model.file.S3FileHandle',
          storageLocationId: '5',
          contentSize: '42',
          bucketName: 'b',
          key: `k/${f.fileHandleId}`,
        },
        preSignedURL: body.includePreSignedURLs ? `https://s3/${f.fileHandleId}` : undefined,
      })),
    });
  };
  const files = Array.from({ length: 250 }, (_, i) => ({
    fileHandleId: String(1000 + i),
    associateObjectId: `syn${i}`,
    associateObjectType: 'FileEntity' as const,
  }));
  const c = client();
  const results = await c.batchFileHandles(files, { includeFileHandles: true, includePreSignedURLs: true });
  assert.equal(seen.length, 3);
  assert.deepEqual(seen.map((s) => (JSON.parse(s.body) as { requestedFiles: unknown[] }).requestedFiles.length).sort(), [100, 100, 50]);
  assert.ok(seen.every((s) => s.url === '/file/v1/fileHandle/batch'));
  assert.equal(results.length, 250);
  assert.deepEqual(results.map((r) => r.fileHandleId), files.map((f) => f.fileHandleId));
  assert.equal(results[0]!.fileHandle?.id, '1000');
  assert.equal(results[0]!.fileHandle?.storageLocationId, 5);
  assert.equal(results[0]!.fileHandle?.contentSize, 42);
  assert.equal(results[249]!.preSignedURL, 'https://s3/1249');
  assert.deepEqual(await c.batchFileHandles([], { includeFileHandles: true, includePreSignedURLs: false }), []);
});

test('entity, multipart and version responses are normalised', T, async () => {
  handler = (s, res) => {
    if (s.url.startsWith('/repo/v1/entity/syn1/version')) json(res, 200, { results: [{ id: 'syn1', versionNumber: 3, contentSize: 1234, modifiedOn: 'x' }], totalNumberOfResults: 3 });
    else if (s.url.startsWith('/file/v1/file/multipart?')) json(res, 201, { uploadId: 77, state: 'UPLOADING', partsState: '00' });
    else if (s.url.endsWith('/complete')) json(res, 200, { uploadId: '77', state: 'COMPLETED', partsState: '11', resultFileHandleId: 9001 });
    else json(res, 200, { ...ENTITY, dataFileHandleId: 7 });
  };
  const c = client();
  assert.equal((await c.getEntity('syn1')).dataFileHandleId, '7');
  const v = await c.getLatestVersionInfo('syn1');
  assert.equal(v.contentSize, '1234');
  assert.equal(v.versionNumber, 3);
  assert.match(seen.at(-1)!.url, /\/repo\/v1\/entity\/syn1\/version\?offset=0&limit=1$/);
  const st = await c.startMultipartUpload({ contentMD5Hex: 'a'.repeat(32), fileName: 'f', fileSizeBytes: 10, partSizeBytes: 5 });
  assert.equal(st.uploadId, '77');
  assert.equal(seen.at(-1)!.url, '/file/v1/file/multipart?forceRestart=false');
  assert.equal((JSON.parse(seen.at(-1)!.body) as { concreteType: string }).concreteType, 'org.sagebionetworks.repo.model.file.MultipartUploadRequest');
  const done = await c.completeMultipartUpload('77');
  assert.equal(done.resultFileHandleId, '9001');
});

test('the token never appears in error messages, even when the server echoes it', T, async () => {
  handler = (s, res) => json(res, 401, { reason: `Invalid token: ${s.auth ?? ''}` });
  const err = await rejects(client().getUserProfile());
  assert.equal(err.status, 401);
  assert.ok(!err.message.includes(TOKEN), err.message);
  assert.ok(!err.reason.includes(TOKEN));
  assert.ok(!JSON.stringify({ ...err, message: err.message }).includes(TOKEN));
  assert.match(err.message, /\[REDACTED\]/);
  // Network failure (nothing listens there).
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const nerr = await rejects(new HttpSynapseClient({ endpoint: `http://127.0.0.1:${port}`, authToken: TOKEN, retryTimeoutSec: 0.2, backoff: { initialMs: 10, maxMs: 20 } }).getEntity('syn1'));
  assert.equal(nerr.status, 0);
  assert.equal(nerr.code, 'NETWORK');
  assert.match(nerr.message, /ECONNREFUSED/);
  assert.ok(nerr.attempts > 1);
  assert.ok(!nerr.message.includes(TOKEN));
});

test('log lines carry method, path, status and duration, never the token', T, async () => {
  const lines: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString()); cb(); } });
  const logger = pino({ level: 'trace' }, sink);
  let n = 0;
  handler = (_s, res) => (n++ === 0 ? json(res, 503, { reason: 'x' }) : json(res, 200, ENTITY));
  await client({ logger }).getEntity('syn1');
  assert.ok(lines.length >= 2);
  const all = lines.join('');
  assert.ok(!all.includes(TOKEN));
  const first = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(first.method, 'GET');
  assert.equal(first.path, '/repo/v1/entity/syn1');
  assert.equal(first.status, 503);
  assert.equal(typeof first.ms, 'number');
  assert.equal(first.level, 20);
});

test('a token Synapse refuses mid-session (401) is said once, clearly, in the log — never the token', T, async () => {
  const lines: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString()); cb(); } });
  const logger = pino({ level: 'warn' }, sink);
  handler = (_s, res) => json(res, 401, { reason: 'The access token has expired' });
  const c = client({ logger });
  assert.equal((await rejects(c.getEntity('syn1'))).status, 401);
  assert.equal((await rejects(c.getEntity('syn2'))).status, 401);
  const warned = lines.filter((l) => /refused the auth token \(401\)/.test(l));
  assert.equal(warned.length, 1, 'once, not per call');
  assert.match(warned[0]!, /expired or was revoked.*mount again with a valid token/);
  assert.ok(!lines.join('').includes(TOKEN));
});

test('connection reset mid-request is retried', T, async () => {
  let n = 0;
  handler = (_s, res, req) => {
    if (n++ === 0) req.socket.destroy();
    else json(res, 200, ENTITY);
  };
  const c = client();
  assert.equal((await c.getEntity('syn1')).id, 'syn1');
  assert.equal(seen.length, 2);
  assert.equal(c.stats().retries, 1);
});

test('a response that stalls past requestTimeoutMs is abandoned and retried', T, async () => {
  let n = 0;
  handler = (_s, res) => {
    if (n++ === 0) {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"id":'); // then never finish
    } else json(res, 200, ENTITY);
  };
  const c = client({ requestTimeoutMs: 200 });
  const t0 = Date.now();
  assert.equal((await c.getEntity('syn1')).id, 'syn1');
  assert.ok(Date.now() - t0 >= 200);
  assert.equal(seen.length, 2);
});

test('retryTimeoutSec bounds the total time of a call that keeps failing', T, async () => {
  handler = (_s, res) => json(res, 503, { reason: 'Service Unavailable' });
  const c = client({ retryTimeoutSec: 0.6, backoff: { initialMs: 50, maxMs: 200 } });
  const t0 = Date.now();
  const err = await rejects(c.getEntity('syn1'));
  const elapsed = Date.now() - t0;
  assert.equal(err.status, 503);
  assert.equal(err.reason, 'Service Unavailable');
  assert.ok(err.attempts >= 3, `attempts ${err.attempts}`);
  assert.match(err.message, /gave up after \d+ attempts/);
  assert.ok(elapsed >= 300, `gave up too early (${elapsed} ms)`);
  assert.ok(elapsed < 1500, `took ${elapsed} ms, bound is 600 ms + one request`);
  assert.equal(c.stats().errors, 1);
});

test('no answer for a whole retry timeout marks Synapse unreachable: later calls make one probe (others fail at once) until an answer clears it', T, async () => {
  let up = false;
  handler = (_s, res, req) => { if (up) json(res, 200, ENTITY); else req.socket.destroy(); };
  const c = client({ retryTimeoutSec: 0.4, probeIntervalMs: 0 });
  const t0 = Date.now();
  const first = await rejects(c.getEntity('syn1'));
  assert.equal(first.code, 'NETWORK');
  assert.ok(first.attempts > 1 && Date.now() - t0 >= 400, 'the first call waits out its retry timeout');
  // Two calls at once: one probe (a single attempt), the other not tried at all.
  const before = seen.length;
  const [a, b] = await Promise.all([rejects(c.getEntity('syn1')), rejects(c.getEntity('syn2'))]);
  assert.deepEqual([a.attempts, b.attempts].sort(), [0, 1]);
  assert.equal(seen.length - before, 1, 'one request between them');
  assert.match((a.attempts === 0 ? a : b).message, /still unreachable .*calls fail at once until Synapse answers again/);
  // Synapse answers again: the probe succeeds and calls retry normally once more.
  up = true;
  assert.equal((await c.getEntity('syn1')).id, 'syn1');
  up = false;
  const again = await rejects(c.getEntity('syn1'));
  assert.ok(again.attempts > 1, 'after an answer, a call retries for its whole timeout again');
});

test('one call that hangs while Synapse answers others is that call\'s failure, not an outage: later calls go through', T, async () => {
  // QA: a single 65 s request (a latency fault on one route) made every later call fail at once
  // ("still unreachable"), Synapse answering all along.
  handler = (s, res) => { if (!s.url.includes('syn1')) json(res, 200, ENTITY); };
  const c = client({ retryTimeoutSec: 0.4, requestTimeoutMs: 150, probeIntervalMs: 60_000 });
  const hung = rejects(c.getEntity('syn1'));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await c.getEntity('syn2')).id, 'syn1', 'answered meanwhile');
  assert.equal((await hung).code, 'NETWORK');
  const t0 = Date.now();
  assert.equal((await c.getEntity('syn3')).id, 'syn1', 'the next call is sent, and answered');
  assert.ok(Date.now() - t0 < 1000);
});

test('an unreachable Synapse is probed at most once per probe interval: a hanging one costs one request timeout, not one per call', T, async () => {
  handler = () => undefined; // never answers
  const c = client({ retryTimeoutSec: 0.3, requestTimeoutMs: 150, probeIntervalMs: 60_000 });
  await rejects(c.getEntity('syn1'));
  const before = seen.length;
  const t0 = Date.now();
  for (let i = 0; i < 5; i++) assert.equal((await rejects(c.getEntity('syn2'))).attempts, 0);
  assert.equal(seen.length, before, 'no request within the probe interval');
  assert.ok(Date.now() - t0 < 500, 'each failed at once (a request each would take 5 × 150 ms)');
});

test('a call already retrying gives up when another declares Synapse unreachable; a 5xx answer clears that mark', T, async () => {
  handler = (_s, _res, req) => { req.socket.destroy(); };
  // The first gives up ≈ 400 ms after the second starts, whose own deadline is 1 s: wide
  // margins on both sides (a loaded CI machine runs timers late).
  const c = client({ retryTimeoutSec: 1, probeIntervalMs: 0 });
  const first = rejects(c.getEntity('syn1'));
  await new Promise((r) => setTimeout(r, 600));
  const t1 = Date.now();
  const second = await rejects(c.getEntity('syn2'));
  await first;
  assert.match(second.message, /still unreachable/, 'stopped at its next retry');
  assert.ok(Date.now() - t1 < 900, 'before its own deadline');
  // 503s are answers: they clear the mark, and are retried as before.
  handler = (_s, res) => json(res, 503, { reason: 'Service Unavailable' });
  const five = await rejects(c.getEntity('syn1'));
  assert.equal(five.status, 503);
  assert.ok(five.attempts > 1, 'retried for its whole timeout');
});

test('a route answering 503 for a whole retry timeout is not retried afterwards (one attempt per call, one call at a time); other routes and any other answer are unaffected', T, async () => {
  // An outage behind a load balancer answers 503 to everything (QA: a `cp` paid the whole
  // timeout once per call); Synapse's read-only mode answers 503 to writes while reads work.
  let down = true;
  handler = (s, res) => {
    if (s.method === 'GET' && !down) json(res, 200, ENTITY);
    else if (s.method === 'GET') json(res, 503, { reason: 'Service Unavailable' });
    else json(res, 200, { page: [] });
  };
  const c = client({ retryTimeoutSec: 0.4, probeIntervalMs: 60_000 });
  const first = await rejects(c.getEntity('syn1'));
  assert.equal(first.status, 503);
  assert.ok(first.attempts > 1, 'the first call retries for its whole timeout');
  const before = seen.length;
  const t0 = Date.now();
  const next = await rejects(c.getEntity('syn2'));
  assert.equal(next.attempts, 1, 'the same route (GET /entity/{id}): one attempt, no retries');
  assert.equal(next.status, 503, 'as the outage answered (EIO for the filesystem)');
  assert.ok(Date.now() - t0 < 1000, 'not retried');
  assert.equal(seen.length, before + 1);
  // Calls at once: one probes, the others fail without a request.
  const [a, b] = await Promise.all([rejects(c.getEntity('syn1')), rejects(c.getEntity('syn2'))]);
  assert.deepEqual([a.attempts, b.attempts].sort(), [0, 1], 'one probe (a single attempt), the other not tried');
  assert.match((a.attempts === 0 ? a : b).message, /still failing .*503 to every GET \/repo\/entity\/\{id\} .*not retried until one succeeds/);
  // Another route is not marked: a listing still goes through.
  assert.deepEqual(await c.listChildren('syn1', ['file']), []);
  // The outage ends: the very next call succeeds (no probe interval to wait out) and clears the route.
  down = false;
  assert.equal((await c.getEntity('syn1')).id, 'syn1');
  down = true;
  assert.ok((await rejects(c.getEntity('syn1'))).attempts > 1, 'after a success, a call retries for its whole timeout again');
});

test('read-only mode (503 to writes): writes are marked, reads go on; a 500 marks nothing; a probe that gets no answer is one attempt', T, async () => {
  let writes = 503;
  let reset = false;
  handler = (s, res, req) => {
    if (reset) req.socket.destroy();
    else if (s.method === 'PUT') json(res, writes, { reason: writes === 503 ? 'Synapse is in read-only mode' : 'boom' });
    else json(res, 200, ENTITY);
  };
  const c = client({ retryTimeoutSec: 0.3, probeIntervalMs: 0 });
  const put = await rejects(c.updateEntity({ ...ENTITY } as never));
  assert.ok(put.attempts > 1 && put.status === 503);
  assert.equal((await c.getEntity('syn1')).id, 'syn1', 'a read in read-only mode works');
  // A read's answer does not clear the write route: the next write is a single probe.
  assert.equal((await rejects(c.updateEntity({ ...ENTITY } as never))).attempts, 1);
  // The probe finds no Synapse at all: one attempt, not a retry loop of its own.
  reset = true;
  assert.equal((await rejects(c.updateEntity({ ...ENTITY } as never))).attempts, 1, 'a probe meeting no answer gives up at once');
  reset = false;
  // A 500 is a failing request, not an outage: each call retries in full, none is cut short.
  writes = 500;
  const c3 = client({ retryTimeoutSec: 0.3, probeIntervalMs: 0 });
  assert.ok((await rejects(c3.updateEntity({ ...ENTITY } as never))).attempts > 1);
  assert.ok((await rejects(c3.updateEntity({ ...ENTITY } as never))).attempts > 1, 'a 500 marks nothing');
});

test('a Retry-After beyond the retry deadline ends the call at once with the 429', T, async () => {
  handler = (_s, res) => json(res, 429, { reason: 'throttled' }, { 'Retry-After': '30' });
  const t0 = Date.now();
  const err = await rejects(client({ retryTimeoutSec: 2 }).getEntity('syn1'));
  assert.equal(err.status, 429);
  assert.equal(err.code, 'THROTTLED');
  assert.ok(Date.now() - t0 < 1000);
  assert.equal(seen.length, 1);
});

test('429 without Retry-After uses jittered backoff and succeeds', T, async () => {
  let n = 0;
  handler = (_s, res) => (n++ < 3 ? json(res, 429, { reason: 'Too many concurrent requests' }) : json(res, 200, ENTITY));
  const c = client();
  assert.equal((await c.getEntity('syn1')).id, 'syn1');
  assert.equal(c.stats().throttled, 3);
});

test('redirects are not followed (the token must not travel) and not retried', T, async () => {
  handler = (_s, res) => { res.writeHead(307, { Location: 'http://example.invalid/x' }); res.end(); };
  const err = await rejects(client().getEntity('syn1'));
  assert.equal(err.status, 307);
  assert.match(err.reason, /redirect/);
  assert.equal(seen.length, 1);
});

test('parseRetryAfter handles seconds, HTTP dates and junk', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  assert.equal(parseRetryAfter('2', now), 2000);
  assert.equal(parseRetryAfter(' 0 ', now), 0);
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:03 GMT', now), 3000);
  assert.equal(parseRetryAfter('Wed, 31 Dec 2025 00:00:00 GMT', now), 0);
  assert.equal(parseRetryAfter('soon', now), undefined);
  assert.equal(parseRetryAfter(null, now), undefined);
});

test('constructor validates its options', () => {
  assert.throws(() => new HttpSynapseClient({ endpoint: 'not a url', authToken: TOKEN }), /invalid Synapse endpoint/);
  assert.throws(() => new HttpSynapseClient({ endpoint, authToken: ' ' }), /authToken is empty/);
  assert.throws(() => new HttpSynapseClient({ endpoint, authToken: TOKEN, maxConcurrent: 0 }), /maxConcurrent/);
});
