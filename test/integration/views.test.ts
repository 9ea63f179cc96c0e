/**
 * Entity views through real HTTP (--metadata-view): the local server's EntityView and async query
 * endpoints in Synapse's shapes (raw fetch), and HttpSynapseClient's startTableQuery /
 * getTableQueryResult / queryView against them — 202 then done, paging by offset, errors, READ
 * filtering, scope = whole subtrees, the eventual-consistency knob, and request counting.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startStack, type Stack } from '../server/stack.js';
import { HttpSynapseClient } from '../../src/synapse/http-client.js';
import { SynapseError } from '../../src/synapse/errors.js';
import { CONCRETE } from '../../src/synapse/types.js';

let stack: Stack;
let client: HttpSynapseClient;
let projectId: string;
let data: string;
let sub: string;
let other: string;
let viewId: string;
const files: Record<string, { id: string; size: number }> = {};

interface Res { status: number; json: any }

async function call(method: string, path: string, body?: unknown, token = stack.authToken): Promise<Res> {
  const r = await fetch(`${stack.endpoint}/repo/v1${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    signal: AbortSignal.timeout(20_000),
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : undefined };
}

const SQL = (v: string, where: string): string =>
  `SELECT id, name, parentId, currentVersion, dataFileSizeBytes, dataFileMD5Hex, modifiedOn FROM ${v} WHERE ${where}`;

before(async () => {
  stack = await startStack({ fixture: 'empty' });
  projectId = stack.seed.project('Views');
  data = (await stack.seed.folder(projectId, 'data')).id;
  sub = (await stack.seed.folder(data, 'sub')).id;
  other = (await stack.seed.folder(projectId, 'other')).id;
  for (let i = 0; i < 6; i++) {
    const bytes = Buffer.alloc(10 + i, i);
    files[`d${i}`] = { id: (await stack.seed.file(data, `d${i}.bin`, bytes)).id, size: bytes.length };
  }
  files.s0 = { id: (await stack.seed.file(sub, 's0.bin', Buffer.from('deep'))).id, size: 4 };
  files.o0 = { id: (await stack.seed.file(other, 'o0.bin', Buffer.from('other'))).id, size: 5 };
  viewId = stack.seed.view(projectId, 'all files', [data]);
  client = new HttpSynapseClient({ endpoint: stack.endpoint, authToken: stack.authToken, backoff: { initialMs: 10, maxMs: 100 } });
});

after(async () => {
  await stack?.close();
});

describe('local server: EntityView and async queries', () => {
  test('an EntityView made through POST /entity with the default columns; GET shows its definition', async () => {
    const defaults = await call('GET', '/column/tableview/defaults?viewEntityType=entityview&viewTypeMask=1');
    assert.equal(defaults.status, 200);
    assert.equal(defaults.json.concreteType, CONCRETE.columnModel);
    const names = defaults.json.list.map((c: { name: string }) => c.name);
    for (const n of ['id', 'name', 'parentId', 'currentVersion', 'dataFileSizeBytes', 'dataFileMD5Hex', 'modifiedOn']) assert.ok(names.includes(n), n);
    const size = defaults.json.list.find((c: { name: string }) => c.name === 'dataFileSizeBytes');
    assert.equal(size.columnType, 'INTEGER');
    assert.deepEqual((await call('GET', `/column/${size.id}`)).json, size);

    const created = await call('POST', '/entity', {
      concreteType: CONCRETE.entityView, name: 'made by REST', parentId: projectId,
      scopeIds: [data.replace('syn', '')], viewTypeMask: 1, columnIds: defaults.json.list.map((c: { id: string }) => c.id),
    });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const got = await call('GET', `/entity/${created.json.id}`);
    assert.equal(got.json.concreteType, CONCRETE.entityView);
    assert.deepEqual(got.json.scopeIds, [data.replace('syn', '')]);
    assert.equal(got.json.viewTypeMask, 1);
    assert.equal(got.json.columnIds.length, defaults.json.list.length);
    assert.equal(got.json.versionNumber, 1);

    const bad = await call('POST', '/entity', { concreteType: CONCRETE.entityView, name: 'bad', parentId: projectId, scopeIds: [data], viewTypeMask: 3 });
    assert.equal(bad.status, 400);
    assert.match(bad.json.reason, /Project type cannot be combined/);
    const notContainer = await call('POST', '/entity', { concreteType: CONCRETE.entityView, name: 'bad2', parentId: projectId, scopeIds: [files.d0!.id], viewTypeMask: 1 });
    assert.equal(notContainer.status, 400);
  });

  test('start → 201 {token}; the first get is 202 with an AsynchronousJobStatus, the next 201 with a QueryResultBundle', async () => {
    const start = await call('POST', `/entity/${viewId}/table/query/async/start`, {
      concreteType: CONCRETE.queryBundleRequest, entityId: viewId, query: { sql: SQL(viewId, `parentId = '${data}'`) }, partMask: 0x1 | 0x2 | 0x4 | 0x8,
    });
    assert.equal(start.status, 201);
    assert.deepEqual(Object.keys(start.json), ['token']);
    const first = await call('GET', `/entity/${viewId}/table/query/async/get/${start.json.token}`);
    assert.equal(first.status, 202);
    assert.equal(first.json.jobState, 'PROCESSING');
    assert.equal(first.json.jobId, start.json.token);
    assert.equal(first.json.requestBody.concreteType, CONCRETE.queryBundleRequest);
    const done = await call('GET', `/entity/${viewId}/table/query/async/get/${start.json.token}`);
    assert.equal(done.status, 201);
    const b = done.json;
    assert.equal(b.concreteType, CONCRETE.queryResultBundle);
    assert.equal(b.queryCount, 6);
    assert.equal(typeof b.maxRowsPerPage, 'number');
    assert.deepEqual(b.selectColumns.map((c: { name: string }) => c.name), ['id', 'name', 'parentId', 'currentVersion', 'dataFileSizeBytes', 'dataFileMD5Hex', 'modifiedOn']);
    const rs = b.queryResult.queryResults;
    assert.equal(b.queryResult.concreteType, CONCRETE.queryResult);
    assert.equal(rs.concreteType, CONCRETE.rowSet);
    assert.equal(rs.tableId, viewId);
    assert.equal(b.queryResult.nextPageToken, undefined);
    assert.equal(rs.rows.length, 6);
    const row = rs.rows[0];
    assert.equal(row.rowId, Number(files.d0!.id.slice(3)));
    assert.equal(row.versionNumber, 1);
    assert.deepEqual(row.values.slice(0, 5), [files.d0!.id, 'd0.bin', data, '1', String(files.d0!.size)]);
    assert.match(row.values[5], /^[0-9a-f]{32}$/);
    assert.match(row.values[6], /^\d{13}$/, 'DATE cells are epoch milliseconds');
  });

  test('scope: a folder scope covers its whole subtree; IN lists several parents; other folders stay out', async () => {
    const r = await client.queryView(viewId, SQL(viewId, `parentId IN ('${data}', '${sub}', '${other}')`));
    const ids = r.rows.map((x) => x.values[0]);
    assert.ok(ids.includes(files.s0!.id), 'a file of a sub-folder of the scope');
    assert.ok(!ids.includes(files.o0!.id), 'a folder outside the scope');
    assert.equal(ids.length, 7);
  });

  test('errors come back on the get as the job failure: unknown column 400, not a view 400, another user 403, unknown token 404', async () => {
    const start = async (sql: string, token = stack.authToken) =>
      (await call('POST', `/entity/${viewId}/table/query/async/start`, { concreteType: CONCRETE.queryBundleRequest, query: { sql } }, token)).json.token as string;
    const finish = async (t: string, token = stack.authToken) => {
      await call('GET', `/entity/${viewId}/table/query/async/get/${t}`, undefined, token);
      return call('GET', `/entity/${viewId}/table/query/async/get/${t}`, undefined, token);
    };
    const unknownColumn = await finish(await start(`SELECT nope FROM ${viewId}`));
    assert.equal(unknownColumn.status, 400);
    assert.match(unknownColumn.json.reason, /Column does not exist: nope/);
    const notView = await finish(await start(`SELECT id FROM ${data}`));
    assert.equal(notView.status, 400);
    const t = await start(`SELECT id FROM ${viewId}`);
    const foreign = await call('GET', `/entity/${viewId}/table/query/async/get/${t}`, undefined, stack.secondAuthToken);
    assert.equal(foreign.status, 403);
    assert.equal((await call('GET', `/entity/${viewId}/table/query/async/get/424242`)).status, 404);
    const noSql = await call('POST', `/entity/${viewId}/table/query/async/start`, { concreteType: CONCRETE.queryBundleRequest, query: {} });
    assert.equal(noSql.status, 400);

    // the client: a failed job is a SynapseError with the job's status
    await assert.rejects(client.queryView(viewId, `SELECT nope FROM ${viewId}`), (e: unknown) => e instanceof SynapseError && e.status === 400);
  });

  test('rows are filtered by READ: a collaborator sees only what was shared with them', async () => {
    stack.seed.grant(viewId, 'user2', ['READ']);
    stack.seed.grant(sub, 'user2', ['READ']);
    const collab = new HttpSynapseClient({ endpoint: stack.endpoint, authToken: stack.secondAuthToken });
    const r = await collab.queryView(viewId, SQL(viewId, `parentId IN ('${data}', '${sub}')`));
    assert.deepEqual(r.rows.map((x) => x.values[0]), [files.s0!.id]);
  });
});

describe('HttpSynapseClient table queries', () => {
  test('startTableQuery sends a QueryBundleRequest; getTableQueryResult is {done:false} then the bundle', async () => {
    const token = await client.startTableQuery(viewId, SQL(viewId, `parentId = '${sub}'`), { partMask: 0x1 });
    assert.match(token, /^\d+$/);
    const first = await client.getTableQueryResult(viewId, token);
    assert.equal(first.done, false);
    assert.equal(!first.done && first.status.jobState, 'PROCESSING');
    const second = await client.getTableQueryResult(viewId, token);
    assert.ok(second.done);
    assert.equal(second.bundle.queryResult?.queryResults.rows.length, 1);
    assert.equal(second.bundle.queryCount, undefined, 'only the parts asked for');
  });

  test('queryView follows full pages by offset (maxRowsPerPage from the row width) and counts its requests', async () => {
    // id (44) + currentVersion (20) + dataFileSizeBytes (20) = 84 bytes a row: 2 rows a page
    stack.dev.setConfig({ tableMaxBytesPerPage: 2 * 84 });
    try {
      const before = stack.dev.stats().synapse.byRoute;
      const r = await client.queryView(viewId, `SELECT id, currentVersion, dataFileSizeBytes FROM ${viewId} WHERE parentId = '${data}'`, { pollInitialMs: 5 });
      const after = stack.dev.stats().synapse.byRoute;
      assert.deepEqual(r.rows.map((x) => x.values[0]), ['d0', 'd1', 'd2', 'd3', 'd4', 'd5'].map((k) => files[k]!.id));
      const starts = (after['POST /entity/{id}/table/query/async/start'] ?? 0) - (before['POST /entity/{id}/table/query/async/start'] ?? 0);
      const gets = (after['GET /entity/{id}/table/query/async/get/{asyncToken}'] ?? 0) - (before['GET /entity/{id}/table/query/async/get/{asyncToken}'] ?? 0);
      assert.equal(starts, 4, 'pages of 2, 2, 2 and an empty last one (a full page always promises more)');
      assert.equal(gets, 8);
      assert.equal(r.requests, starts + gets);
    } finally {
      stack.dev.setConfig({ tableMaxBytesPerPage: 2_097_152 });
    }
  });

  test('viewSnapshotAtMs: a view answers as of an earlier time (eventual consistency)', async () => {
    const target = files.d3!;
    const at = Date.now();
    await new Promise((r) => setTimeout(r, 5));
    stack.dev.setConfig({ viewSnapshotAtMs: at });
    try {
      await stack.seed.fileVersion(target.id, Buffer.alloc(999, 1));
      const late = await stack.seed.file(data, 'late.bin', Buffer.from('late'));
      const r = await client.queryView(viewId, `SELECT id, currentVersion, dataFileSizeBytes FROM ${viewId} WHERE parentId = '${data}'`);
      const row = r.rows.find((x) => x.values[0] === target.id);
      assert.deepEqual(row?.values, [target.id, '1', String(target.size)], 'the version the view replicated');
      assert.ok(!r.rows.some((x) => x.values[0] === late.id), 'created after the snapshot: not in the view yet');
      stack.dev.setConfig({ viewSnapshotAtMs: 0 });
      const now = await client.queryView(viewId, `SELECT id, currentVersion, dataFileSizeBytes FROM ${viewId} WHERE parentId = '${data}'`);
      assert.deepEqual(now.rows.find((x) => x.values[0] === target.id)?.values, [target.id, '2', '999']);
      assert.ok(now.rows.some((x) => x.values[0] === late.id));
    } finally {
      stack.dev.setConfig({ viewSnapshotAtMs: 0 });
    }
  });
});
