/**
 * --metadata-view, without HTTP: the trust rule of src/fs/view-sizes.ts (a view row's size is used
 * only when its currentVersion equals the listing's versionNumber), batching of folders, the
 * permanent/transient failure split, the out-of-scope memo, queryView's polling and paging, and
 * the InodeTable hook (a getattr waits for its folder's view query; only untrusted files cost a
 * per-file request, each once).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SynapseApi, TableQueryOptions } from '../../src/synapse/api.js';
import { SynapseError } from '../../src/synapse/errors.js';
import { queryView } from '../../src/synapse/table-query.js';
import { CONCRETE, type EntityHeader, type TableQueryPoll, type TableRow, type VersionInfo } from '../../src/synapse/types.js';
import { InodeTable, type FsNode } from '../../src/fs/inode-table.js';
import { ViewSizes, checkMetadataView, viewSizesSql } from '../../src/fs/view-sizes.js';
import { MountError } from '../../src/fs/preflight.js';

const HEADERS = [
  { name: 'id', columnType: 'ENTITYID' }, { name: 'currentVersion', columnType: 'INTEGER' },
  { name: 'dataFileSizeBytes', columnType: 'INTEGER' }, { name: 'dataFileMD5Hex', columnType: 'STRING' },
];

interface ViewRowSpec { id: string; parentId: string; version: number; size: number; md5?: string }

/**
 * A fake of the two table-query calls over a list of rows: every job answers 202 once, then the
 * rows whose parentId the SQL names; pages of `pageSize` with a nextPageToken when full.
 */
class FakeView {
  rows: ViewRowSpec[] = [];
  starts: Array<{ sql: string; opts: TableQueryOptions | undefined }> = [];
  polls = 0;
  pageSize = 1000;
  fail: SynapseError | undefined;
  /** Resolves the next start (to hold a query in flight). */
  gate: Promise<void> | undefined;
  private jobs = new Map<string, { rows: TableRow[]; full: boolean; polled: boolean }>();

  api(): SynapseApi {
    return {
      startTableQuery: async (_viewId: string, sql: string, opts?: TableQueryOptions) => {
        this.starts.push({ sql, opts });
        if (this.gate) await this.gate;
        if (this.fail) throw this.fail;
        const parents = [...sql.matchAll(/'(syn\d+)'/g)].map((m) => m[1]);
        const all = this.rows.filter((r) => parents.includes(r.parentId));
        const offset = opts?.offset ?? 0;
        const page = all.slice(offset, offset + this.pageSize);
        const token = String(this.jobs.size + 1);
        this.jobs.set(token, {
          rows: page.map((r) => ({ values: [r.id, String(r.version), String(r.size), r.md5 ?? null] })),
          full: page.length === this.pageSize,
          polled: false,
        });
        return token;
      },
      getTableQueryResult: async (_viewId: string, token: string): Promise<TableQueryPoll> => {
        this.polls++;
        const job = this.jobs.get(token)!;
        if (!job.polled) {
          job.polled = true;
          return { done: false, status: { jobState: 'PROCESSING' } };
        }
        return {
          done: true,
          bundle: {
            queryResult: {
              queryResults: { headers: HEADERS, rows: job.rows },
              ...(job.full ? { nextPageToken: { token: 'next' } } : {}),
            },
          },
        };
      },
    } as unknown as SynapseApi;
  }
}

const fast = { query: { pollInitialMs: 1, pollMaxMs: 2 } };
const node = (id: string, versionNumber: number | undefined, parentId = 'syn10'): FsNode => ({
  entityId: id, name: `${id}.txt`, kind: 'file', parentId, versionNumber, modifiedOn: 0, createdOn: 0,
});

test('trust rule: a row is used only when currentVersion equals the listing version', async () => {
  const view = new FakeView();
  view.rows = [
    { id: 'syn1', parentId: 'syn10', version: 1, size: 11, md5: 'a1' }, // same version → trusted
    { id: 'syn2', parentId: 'syn10', version: 1, size: 22, md5: 'b1' }, // view behind (listing says 2) → not used
    { id: 'syn3', parentId: 'syn10', version: 3, size: 33 }, // view ahead of the listing → not used
    { id: 'syn5', parentId: 'syn10', version: 1, size: 0 }, // empty file, no md5 → trusted, md5 undefined
  ];
  const vs = new ViewSizes({ api: view.api(), viewId: 'syn99', ...fast });
  const got = await vs.folderSizes('syn10', [node('syn1', 1), node('syn2', 2), node('syn3', 2), node('syn4', 1), node('syn5', 1), node('syn6', undefined)]);
  assert.deepEqual([...got.entries()].sort(), [['syn1', { size: 11, md5: 'a1' }], ['syn5', { size: 0, md5: undefined }]]);
  assert.deepEqual(vs.stats, { queries: 1, requests: 3, trusted: 2, stale: 2, missing: 2 });
  assert.equal(view.starts.length, 1);
  assert.equal(view.starts[0]!.sql, "SELECT id, currentVersion, dataFileSizeBytes, dataFileMD5Hex FROM syn99 WHERE parentId = 'syn10'");
  assert.equal(view.starts[0]!.opts?.partMask, 1, 'only the query results part');
});

test('SQL: only synN ids reach it; several folders use IN', () => {
  assert.equal(viewSizesSql('syn9', ['syn1', 'syn2']), "SELECT id, currentVersion, dataFileSizeBytes, dataFileMD5Hex FROM syn9 WHERE parentId IN ('syn1', 'syn2')");
  assert.throws(() => viewSizesSql('syn9', ["syn1') OR ('1'='1"]), /not a Synapse id/);
});

test('folders asked while a query is in flight go together in the next query', async () => {
  const view = new FakeView();
  view.rows = [1, 2, 3].map((i) => ({ id: `syn${i}`, parentId: `syn${10 + i}`, version: 1, size: i }));
  let open!: () => void;
  view.gate = new Promise<void>((r) => { open = r; });
  const vs = new ViewSizes({ api: view.api(), viewId: 'syn99', ...fast });
  const a = vs.folderSizes('syn11', [node('syn1', 1, 'syn11')]);
  const b = vs.folderSizes('syn12', [node('syn2', 1, 'syn12')]);
  const c = vs.folderSizes('syn13', [node('syn3', 1, 'syn13')]);
  await new Promise((r) => setImmediate(r));
  assert.equal(view.starts.length, 1, 'the first folder is asked at once, the others wait');
  view.gate = undefined;
  open();
  assert.equal((await a).get('syn1')?.size, 1);
  assert.equal((await b).get('syn2')?.size, 2);
  assert.equal((await c).get('syn3')?.size, 3);
  assert.equal(view.starts.length, 2);
  assert.match(view.starts[1]!.sql, /WHERE parentId IN \('syn12', 'syn13'\)$/);
});

test('a 4xx from the view switches it off for good; a 5xx fails only that query', async () => {
  const view = new FakeView();
  view.rows = [{ id: 'syn1', parentId: 'syn10', version: 1, size: 5 }];
  const vs = new ViewSizes({ api: view.api(), viewId: 'syn99', ...fast });
  view.fail = new SynapseError(503, 'busy', 'POST', '/x', { attempts: 5 });
  await assert.rejects(vs.folderSizes('syn10', [node('syn1', 1)]), /busy/);
  assert.equal(vs.disabled, undefined);
  view.fail = undefined;
  assert.equal((await vs.folderSizes('syn10', [node('syn1', 1)])).get('syn1')?.size, 5, 'still in use after a transient failure');
  view.fail = new SynapseError(400, 'Column does not exist: dataFileSizeBytes', 'GET', '/x');
  await assert.rejects(vs.folderSizes('syn10', [node('syn1', 1)]), /Column does not exist/);
  assert.match(vs.disabled ?? '', /Column does not exist/);
  const starts = view.starts.length;
  assert.equal((await vs.folderSizes('syn10', [node('syn1', 1)])).size, 0);
  assert.equal(view.starts.length, starts, 'no more queries once switched off');
});

test('a folder with files but no rows is not asked again until the memo expires', async () => {
  const view = new FakeView();
  let now = 1_000;
  const vs = new ViewSizes({ api: view.api(), viewId: 'syn99', uncoveredRetryMs: 500, now: () => now, ...fast });
  assert.equal((await vs.folderSizes('syn10', [node('syn1', 1)])).size, 0);
  assert.equal((await vs.folderSizes('syn10', [node('syn1', 1)])).size, 0);
  assert.equal(view.starts.length, 1, 'outside the view: asked once');
  now += 501;
  view.rows = [{ id: 'syn1', parentId: 'syn10', version: 1, size: 7 }];
  assert.equal((await vs.folderSizes('syn10', [node('syn1', 1)])).get('syn1')?.size, 7, 'asked again after the memo');
});

test('queryView: polls with growing waits and pages by offset while pages are full', async () => {
  const view = new FakeView();
  view.pageSize = 2;
  view.rows = [1, 2, 3, 4, 5].map((i) => ({ id: `syn${i}`, parentId: 'syn10', version: 1, size: i }));
  const waits: number[] = [];
  const r = await queryView(view.api(), 'syn99', "SELECT id FROM syn99 WHERE parentId = 'syn10'", {
    pollInitialMs: 100, pollMaxMs: 1000, sleep: async (ms) => { waits.push(ms); },
  });
  assert.deepEqual(r.rows.map((x) => x.values[0]), ['syn1', 'syn2', 'syn3', 'syn4', 'syn5']);
  assert.deepEqual(view.starts.map((s) => s.opts?.offset), [undefined, 2, 4]);
  assert.equal(r.requests, 3 * 3, 'three pages, each a start, a 202 and the answer');
  assert.deepEqual(waits, [100, 100, 100]);

  // A job that never ends is given up at the deadline (a SynapseError, so callers fall back).
  let t = 0;
  const stuck = {
    startTableQuery: async () => 'x',
    getTableQueryResult: async (): Promise<TableQueryPoll> => ({ done: false, status: { jobState: 'PROCESSING' } }),
  } as unknown as SynapseApi;
  const slept: number[] = [];
  await assert.rejects(
    queryView(stuck, 'syn99', 'SELECT id FROM syn99', { timeoutMs: 5_000, now: () => t, sleep: async (ms) => { slept.push(ms); t += ms; } }),
    (e: unknown) => e instanceof SynapseError && /timed out/.test(e.message),
  );
  assert.deepEqual(slept, [100, 200, 400, 800, 1000, 1000, 1000], 'doubling from 100 ms to 1 s, bounded by the timeout');
});

test('checkMetadataView: an EntityView with files passes; anything else is a clear MountError', async () => {
  const entity = (concreteType: string, viewTypeMask?: number) => ({
    getEntity: async () => ({ id: 'syn9', name: 'v', etag: 'e', concreteType, createdOn: '', modifiedOn: '', createdBy: '', modifiedBy: '', viewTypeMask }),
  }) as unknown as SynapseApi;
  await checkMetadataView(entity(CONCRETE.entityView, 1), 'syn9');
  await assert.rejects(checkMetadataView(entity(CONCRETE.folder), 'syn9'), (e: unknown) => e instanceof MountError && /is a Folder, not a file view/.test(e.message));
  await assert.rejects(checkMetadataView(entity(CONCRETE.entityView, 2), 'syn9'), /does not include files/);
  const missing = { getEntity: async () => { throw new SynapseError(404, 'gone', 'GET', '/x'); } } as unknown as SynapseApi;
  await assert.rejects(checkMetadataView(missing, 'syn9'), /no such entity \(404\)/);
});

test('inode table: getattr waits for the folder view query; only untrusted files cost a per-file request, once', async () => {
  const view = new FakeView();
  const headers: EntityHeader[] = [];
  for (let i = 1; i <= 50; i++) {
    headers.push({ id: `syn${100 + i}`, name: `f${i}.txt`, type: CONCRETE.file, versionNumber: i === 7 ? 2 : 1 });
    // syn107 changed after the view was built: the view still has version 1 (size 7), Synapse has 2 (size 700)
    view.rows.push({ id: `syn${100 + i}`, parentId: 'syn10', version: 1, size: i, md5: `m${i}` });
  }
  headers.push({ id: 'syn200', name: 'new.txt', type: CONCRETE.file, versionNumber: 1 }); // not in the view yet
  headers.push({ id: 'syn300', name: 'sub', type: CONCRETE.folder, versionNumber: 1 });
  let open!: () => void;
  view.gate = new Promise<void>((r) => { open = r; });
  const perFile: string[] = [];
  const fakeApi = {
    ...view.api(),
    listChildren: async (parentId: string) => (parentId === 'syn10' ? headers : []),
    getLatestVersionInfo: async (id: string): Promise<VersionInfo> => {
      perFile.push(id);
      const size = id === 'syn107' ? '700' : id === 'syn200' ? '2000' : '1';
      return { id, versionNumber: id === 'syn107' ? 2 : 1, contentSize: size, contentMd5: 'x', modifiedOn: new Date(0).toISOString() };
    },
  } as unknown as SynapseApi;
  const vs = new ViewSizes({ api: fakeApi, viewId: 'syn99', ...fast });
  const root: FsNode = { entityId: 'syn10', name: 'p', kind: 'dir', parentId: undefined, versionNumber: undefined, modifiedOn: 0, createdOn: 0 };
  const table = new InodeTable(fakeApi, root, { ttlMs: 60_000, folderSizes: vs.folderSizes });

  const nodes = await table.children('syn10');
  // `ls -l`: every getattr arrives while the view query is held in flight
  const sizes = Promise.all(nodes.filter((n) => n.kind === 'file').map(async (n) => [n.name, (await table.size(n)).size] as const));
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(perFile, [], 'no per-file request while the view query is in flight');
  assert.equal(view.starts.length, 1);
  view.gate = undefined;
  open();
  const got = new Map(await sizes);
  assert.equal(got.get('f1.txt'), 1);
  assert.equal(got.get('f50.txt'), 50);
  assert.equal(got.get('f7.txt'), 700, 'version mismatch → the per-file answer');
  assert.equal(got.get('new.txt'), 2000, 'missing from the view → the per-file answer');
  assert.deepEqual(perFile.sort(), ['syn107', 'syn200'], 'exactly the untrusted files, once each');
  assert.equal(view.starts.length, 1, 'one view query for the folder');

  // a second `ls -l` is all memory
  for (const n of nodes) if (n.kind === 'file') await table.size(n);
  assert.equal(perFile.length, 2);
  assert.equal(view.starts.length, 1);
});

test('inode table: a failed view query leaves every size to the per-file path', async () => {
  const view = new FakeView();
  view.fail = new SynapseError(403, 'no READ', 'POST', '/x');
  const perFile: string[] = [];
  const fakeApi = {
    ...view.api(),
    listChildren: async () => [{ id: 'syn1', name: 'a', type: CONCRETE.file, versionNumber: 1 }, { id: 'syn2', name: 'b', type: CONCRETE.file, versionNumber: 1 }],
    getLatestVersionInfo: async (id: string): Promise<VersionInfo> => {
      perFile.push(id);
      return { id, versionNumber: 1, contentSize: '3', modifiedOn: new Date(0).toISOString() };
    },
  } as unknown as SynapseApi;
  const vs = new ViewSizes({ api: fakeApi, viewId: 'syn99', ...fast });
  const root: FsNode = { entityId: 'syn10', name: 'p', kind: 'dir', parentId: undefined, versionNumber: undefined, modifiedOn: 0, createdOn: 0 };
  const table = new InodeTable(fakeApi, root, { ttlMs: 60_000, folderSizes: vs.folderSizes });
  await table.children('syn10'); // `ls -l`: the readdir asks for the folder's sizes
  const a = await table.resolve('/a');
  assert.equal((await table.size(a)).size, 3);
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(perFile.sort(), ['syn1', 'syn2'], 'both fetched one by one (b in the background)');
  assert.match(vs.disabled ?? '', /no READ/);
});
