/**
 * Entity views and their queries (TableController): the default view column models, and the
 * asynchronous query job — POST /entity/{id}/table/query/async/start with a QueryBundleRequest
 * answers 201 `{token}`; GET /entity/{id}/table/query/async/get/{token} answers 202 with an
 * AsynchronousJobStatus (PROCESSING) the first time, as a real job still running would, then
 * 201 with the QueryResultBundle (the controller's @ResponseStatus(CREATED)), or the job's error
 * (400/403/404 with a reason), as AsynchJobUtils.throwExceptionIfFailed rethrows it. Only the
 * user who started a job may read it (403).
 *
 * Rows: an entity view covers the files (viewTypeMask 0x01; folders 0x08 and views 0x10 too)
 * whose parent is one of the scope containers or any container below them — projects and
 * folders alike (EntityMetadataIndexProvider: HierarchicaFilter over
 * NodeDAO.getAllContainerIds, which is recursive) — and only those the caller can READ. The
 * schema is the view's columnIds (the defaults of GET /column/tableview/defaults). A row's
 * rowId is the entity id and its versionNumber the entity's current version; DATE cells are
 * epoch milliseconds, ENTITYID cells "synN", every cell a string (or null).
 *
 * Paging as TableQueryManagerImpl: a page holds at most maxRowsPerPage = max(1,
 * tableMaxBytesPerPage / maximum row width) rows (STRING = 4 bytes × maximumSize, INTEGER and DATE
 * 20, ENTITYID 44, …: TableModelUtils.calculateMaxSizeForType); query.limit/offset override
 * the SQL's LIMIT/OFFSET; a full page carries a nextPageToken (callers page with query.offset;
 * the deprecated …/nextPage/async endpoints are not served here).
 *
 * SQL: a subset — SELECT [DISTINCT] * | col, … FROM synN [WHERE cond AND …] [ORDER BY col
 * [ASC|DESC], …] [LIMIT n [OFFSET m]], cond = col IN ('v', …) | col = 'v' | col = n; anything
 * else is a 400 naming the subset (Synapse's SQL is larger; this server is not).
 *
 * Eventual consistency: the /_dev knob `viewSnapshotAtMs` (config.ts) makes views answer as of
 * an earlier time: entities created later are missing, files show the newest version made by then.
 */
import { CONCRETE } from '../../../src/synapse/types.js';
import { asObject, badRequest, forbidden, notFound, optNumber, optString, SynapseError, type Obj, type Router } from '../http.js';
import {
  nowIso, parseSynId, synId, type ColumnModelRecord, type EntityRecord, type EntityVersion, type State, type User, type ViewDefinition,
} from '../state.js';
import { columnModelJson } from '../views.js';
import type { DevConfig } from '../config.js';
import { isContainer, lookupEntity, type Deps } from './common.js';

/** EntityView viewTypeMask bits served here (HasViewTypeMask). */
const MASK_FILE = 0x01;
const MASK_PROJECT = 0x02;
const MASK_FOLDER = 0x08;
const MASK_VIEW = 0x10;
/** TableConstants.MAX_CONTAINERS_PER_VIEW */
const MAX_CONTAINERS_PER_VIEW = 35_000;
/** Jobs kept for GET; older ones are forgotten (404), as Synapse expires job statuses. */
const MAX_JOBS = 10_000;
const FIRST_JOB_ID = 9001;

/** ColumnConstants: MAX_INTEGER_BYTES_AS_STRING = 20, ENTITYID = 3 + 20 + 1 + 20, 4 bytes per character. */
const INTEGER_BYTES = 20;
function maxCellBytes(c: ColumnModelRecord): number {
  switch (c.columnType) {
    case 'STRING': case 'LINK': return 4 * (c.maximumSize ?? 50);
    case 'ENTITYID': return 3 + INTEGER_BYTES + 1 + INTEGER_BYTES;
    case 'BOOLEAN': return 5;
    case 'DOUBLE': return 23;
    default: return INTEGER_BYTES; // INTEGER, DATE, FILEHANDLEID, USERID
  }
}

// ---------- view definitions (POST/PUT /entity of an EntityView) ----------

/**
 * The view fields of an EntityView body, validated: scopeIds (containers, "synN" or N), viewTypeMask
 * (or the deprecated `type`), columnIds (existing column models). `prev` supplies fields a PUT omits.
 */
export function viewDefinition(state: State, b: Obj, prev?: ViewDefinition): ViewDefinition {
  let mask = optNumber(b, 'viewTypeMask');
  if (mask === undefined) {
    const type = optString(b, 'type');
    if (type === 'file') mask = MASK_FILE;
    else if (type === 'project') mask = MASK_PROJECT;
    else if (type === 'file_and_table') mask = 0x05;
    else if (type !== undefined) throw badRequest(`Unknown view type: ${type}`);
  }
  mask ??= prev?.viewTypeMask;
  if (mask === undefined) throw badRequest('The view type mask is required.');
  if (!Number.isInteger(mask) || mask < 1) throw badRequest('viewTypeMask must be a positive integer');
  if ((mask & MASK_PROJECT) !== 0 && mask !== MASK_PROJECT) throw badRequest('The Project type cannot be combined with any other type.');
  let scopeIds = prev?.scopeIds ?? [];
  if (b.scopeIds !== undefined && b.scopeIds !== null) {
    if (!Array.isArray(b.scopeIds)) throw badRequest('scopeIds must be a list');
    scopeIds = b.scopeIds.map((s) => {
      const id = parseSynId(typeof s === 'number' || typeof s === 'string' ? s : undefined);
      if (id === undefined) throw badRequest(`Invalid scope id: ${String(s)}`);
      const e = lookupEntity(state, synId(id));
      if (mask !== MASK_PROJECT && !isContainer(e)) throw badRequest(`The scope of a view must be projects or folders: ${synId(id)} is not`);
      return id;
    });
  }
  if (mask !== MASK_PROJECT && containersUnder(state, scopeIds).size > MAX_CONTAINERS_PER_VIEW) {
    throw badRequest(`The view's scope exceeds the maximum number of ${MAX_CONTAINERS_PER_VIEW} projects and/or folders. Note: The sub-folders of each project and folder in the scope count towards the limit.`);
  }
  let columnIds = prev?.columnIds ?? [];
  if (b.columnIds !== undefined && b.columnIds !== null) {
    if (!Array.isArray(b.columnIds)) throw badRequest('columnIds must be a list');
    columnIds = b.columnIds.map((c) => {
      const id = String(c);
      if (!state.columnModels.has(id)) throw notFound(`ColumnModel does not exist for id: ${id}`);
      return id;
    });
  }
  return { scopeIds, viewTypeMask: mask, columnIds };
}

/** The scope containers and every live project/folder below them (NodeDAO.getAllContainerIds). */
function containersUnder(state: State, scopeIds: number[]): Set<number> {
  const out = new Set<number>();
  const stack = scopeIds.filter((id) => { const e = state.live(id); return e !== undefined && isContainer(e); });
  while (stack.length > 0) {
    const id = stack.pop()!;
    if (out.has(id)) continue;
    out.add(id);
    for (const c of state.children(id)) if (isContainer(c)) stack.push(c.id);
  }
  return out;
}

// ---------- the SQL subset ----------

interface Condition { column: string; values: string[] }
interface ParsedQuery {
  tableId: number;
  columns: string[] | '*';
  where: Condition[];
  orderBy: Array<{ column: string; desc: boolean }>;
  limit?: number;
  offset?: number;
}

type Token = { kind: 'word' | 'ident' | 'string' | 'number' | 'punct'; text: string };

const SUBSET = "SELECT [DISTINCT] * | col, … FROM synN [WHERE col IN ('v', …) | col = 'v' [AND …]] [ORDER BY col [ASC|DESC], …] [LIMIT n [OFFSET m]]";

function sqlError(sql: string, what: string): SynapseError {
  return badRequest(`${what} in: ${sql} (the local server understands only ${SUBSET})`);
}

function tokenize(sql: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const ch = sql[i]!;
    if (/\s/.test(ch)) { i++; continue; }
    if (ch === "'" || ch === '"' || ch === '`') {
      let j = i + 1;
      let text = '';
      for (;;) {
        if (j >= sql.length) throw sqlError(sql, 'Unterminated quote');
        if (sql[j] === ch) {
          if (sql[j + 1] === ch) { text += ch; j += 2; continue; }
          break;
        }
        text += sql[j];
        j++;
      }
      out.push({ kind: ch === "'" ? 'string' : 'ident', text });
      i = j + 1;
      continue;
    }
    const num = /^-?\d+/.exec(sql.slice(i));
    if (num && !/[A-Za-z_]/.test(sql[i + num[0].length] ?? '')) { out.push({ kind: 'number', text: num[0] }); i += num[0].length; continue; }
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(sql.slice(i));
    if (word) { out.push({ kind: 'word', text: word[0] }); i += word[0].length; continue; }
    if (',()=*;'.includes(ch)) { out.push({ kind: 'punct', text: ch }); i++; continue; }
    throw sqlError(sql, `Unexpected character '${ch}'`);
  }
  if (out.at(-1)?.text === ';') out.pop();
  return out;
}

export function parseSql(sql: string): ParsedQuery {
  const t = tokenize(sql);
  let p = 0;
  const peek = (): Token | undefined => t[p];
  const isWord = (w: string): boolean => peek()?.kind === 'word' && peek()!.text.toUpperCase() === w;
  const expectWord = (w: string): void => { if (!isWord(w)) throw sqlError(sql, `Expected ${w}`); p++; };
  const punct = (c: string): boolean => { if (peek()?.kind === 'punct' && peek()!.text === c) { p++; return true; } return false; };
  const column = (): string => {
    const k = peek();
    if (!k || (k.kind !== 'word' && k.kind !== 'ident')) throw sqlError(sql, 'Expected a column name');
    p++;
    return k.text;
  };
  const literal = (): string => {
    const k = peek();
    if (!k || (k.kind !== 'string' && k.kind !== 'number')) throw sqlError(sql, 'Expected a literal');
    p++;
    return k.text;
  };
  const integer = (): number => {
    const k = peek();
    if (!k || k.kind !== 'number' || Number(k.text) < 0) throw sqlError(sql, 'Expected a non-negative integer');
    p++;
    return Number(k.text);
  };

  expectWord('SELECT');
  if (isWord('DISTINCT') || isWord('ALL')) p++;
  let columns: string[] | '*';
  if (punct('*')) columns = '*';
  else {
    columns = [column()];
    while (punct(',')) columns.push(column());
  }
  expectWord('FROM');
  const table = peek();
  const tableId = table && (table.kind === 'word' || table.kind === 'ident') ? parseSynId(table.text) : undefined;
  if (tableId === undefined) throw sqlError(sql, 'Expected a table id (synN)');
  p++;
  const where: Condition[] = [];
  if (isWord('WHERE')) {
    p++;
    do {
      const col = column();
      if (isWord('IN')) {
        p++;
        if (!punct('(')) throw sqlError(sql, 'Expected (');
        const values = [literal()];
        while (punct(',')) values.push(literal());
        if (!punct(')')) throw sqlError(sql, 'Expected )');
        where.push({ column: col, values });
      } else if (punct('=')) {
        where.push({ column: col, values: [literal()] });
      } else {
        throw sqlError(sql, 'Expected IN or =');
      }
    } while (isWord('AND') && ++p);
  }
  const orderBy: ParsedQuery['orderBy'] = [];
  if (isWord('ORDER')) {
    p++;
    expectWord('BY');
    do {
      const col = column();
      let desc = false;
      if (isWord('ASC')) p++;
      else if (isWord('DESC')) { p++; desc = true; }
      orderBy.push({ column: col, desc });
    } while (punct(','));
  }
  const out: ParsedQuery = { tableId, columns, where, orderBy };
  if (isWord('LIMIT')) {
    p++;
    out.limit = integer();
    if (isWord('OFFSET')) { p++; out.offset = integer(); }
  }
  if (p < t.length) throw sqlError(sql, `Unexpected '${t[p]!.text}'`);
  return out;
}

// ---------- rows ----------

/** The entity as a view replicated it at `snapshotAtMs` (0 = now): undefined when not yet replicated. */
function replicated(e: EntityRecord, snapshotAtMs: number): { version: EntityVersion; modifiedOn: string } | undefined {
  const cur = e.versions[e.versions.length - 1]!;
  if (snapshotAtMs <= 0) return { version: cur, modifiedOn: e.modifiedOn };
  if (Date.parse(e.createdOn) > snapshotAtMs) return undefined;
  let version = e.versions[0]!;
  for (const v of e.versions) if (Date.parse(v.modifiedOn) <= snapshotAtMs) version = v;
  const modifiedOn = Date.parse(e.modifiedOn) <= snapshotAtMs ? e.modifiedOn : version.modifiedOn;
  return { version, modifiedOn };
}

const KIND_MASK: Partial<Record<EntityRecord['kind'], number>> = { file: MASK_FILE, folder: MASK_FOLDER, entityview: MASK_VIEW, project: MASK_PROJECT };

interface ViewRow { entity: EntityRecord; version: EntityVersion; cells: Map<string, string | null> }

function viewRows(state: State, view: ViewDefinition, user: User, snapshotAtMs: number): ViewRow[] {
  const candidates: EntityRecord[] = [];
  if (view.viewTypeMask === MASK_PROJECT) {
    for (const id of view.scopeIds) { const e = state.live(id); if (e?.kind === 'project') candidates.push(e); }
  } else {
    for (const c of containersUnder(state, view.scopeIds)) {
      for (const e of state.children(c)) if ((view.viewTypeMask & (KIND_MASK[e.kind] ?? 0)) !== 0) candidates.push(e);
    }
  }
  const rows: ViewRow[] = [];
  for (const e of candidates) {
    if (!state.can(e, user.id, 'READ')) continue;
    const r = replicated(e, snapshotAtMs);
    if (!r) continue;
    const fh = r.version.dataFileHandleId ? state.fileHandles.get(r.version.dataFileHandleId) : undefined;
    const project = [e, ...state.ancestors(e)].find((x) => x.kind === 'project');
    const cells = new Map<string, string | null>([
      ['id', synId(e.id)],
      ['name', e.name],
      ['description', e.description ?? null],
      ['createdOn', String(Date.parse(e.createdOn))],
      ['createdBy', e.createdBy],
      ['etag', e.etag],
      ['modifiedOn', String(Date.parse(r.modifiedOn))],
      ['modifiedBy', e.modifiedBy],
      ['path', null],
      ['type', e.kind],
      ['currentVersion', String(r.version.versionNumber)],
      ['parentId', synId(e.parentId)],
      ['benefactorId', synId(state.benefactor(e).id)],
      ['projectId', project ? synId(project.id) : null],
      ['dataFileHandleId', fh?.id ?? null],
      ['dataFileName', fh?.fileName ?? null],
      ['dataFileSizeBytes', fh ? String(fh.contentSize) : null],
      ['dataFileMD5Hex', fh?.contentMd5 ?? null],
      ['dataFileConcreteType', fh ? CONCRETE.s3FileHandle : null],
      ['dataFileBucket', fh?.bucketName ?? null],
      ['dataFileKey', fh?.key ?? null],
    ]);
    rows.push({ entity: e, version: r.version, cells });
  }
  return rows;
}

/** Compare a cell with a SQL literal as Synapse would for the column's type. */
function cellMatches(cell: string | null, literal: string, columnType: string): boolean {
  if (cell === null) return false;
  if (columnType === 'ENTITYID') return parseSynId(cell) !== undefined && parseSynId(cell) === parseSynId(literal);
  if (columnType === 'INTEGER' || columnType === 'DATE' || columnType === 'USERID' || columnType === 'FILEHANDLEID') {
    return /^-?\d+$/.test(literal) && BigInt(cell) === BigInt(literal);
  }
  return cell === literal;
}

// ---------- the query job ----------

interface QueryRequest { sql: string; offset?: number; limit?: number; includeEntityEtag: boolean; partMask: number }

/** Run a query as the job worker would; throws SynapseError for what the job's GET must rethrow. */
function runQuery(state: State, config: DevConfig, user: User, q: QueryRequest): Record<string, unknown> {
  const parsed = parseSql(q.sql);
  const viewEntity = lookupEntity(state, synId(parsed.tableId));
  if (!state.can(viewEntity, user.id, 'READ')) throw forbidden('You lack READ access to the requested entity.');
  if (viewEntity.kind !== 'entityview' || !viewEntity.view) throw badRequest(`${synId(viewEntity.id)} is not a table or view`);
  const view = viewEntity.view;
  const schema = view.columnIds.map((id) => state.columnModels.get(id)).filter((c): c is ColumnModelRecord => c !== undefined);
  const byName = new Map(schema.map((c) => [c.name, c]));
  const column = (name: string, kind: 'select' | 'where'): ColumnModelRecord => {
    const c = byName.get(name);
    if (!c) throw badRequest(kind === 'select' ? `Column does not exist: ${name}` : `Unknown column reference: ${name}`);
    return c;
  };
  const selected = parsed.columns === '*' ? schema : parsed.columns.map((n) => column(n, 'select'));
  const where = parsed.where.map((w) => ({ ...w, model: column(w.column, 'where') }));
  const order = parsed.orderBy.map((o) => ({ ...o, model: column(o.column, 'where') }));

  let rows = viewRows(state, view, user, config.viewSnapshotAtMs)
    .filter((r) => where.every((w) => w.values.some((v) => cellMatches(r.cells.get(w.model.name) ?? null, v, w.model.columnType))));
  rows.sort((a, b) => {
    for (const o of order) {
      const x = a.cells.get(o.model.name) ?? null;
      const y = b.cells.get(o.model.name) ?? null;
      let c = 0;
      if (x === null || y === null) c = x === y ? 0 : x === null ? -1 : 1;
      else if (/^-?\d+$/.test(x) && /^-?\d+$/.test(y)) { const d = BigInt(x) - BigInt(y); c = d > 0n ? 1 : d < 0n ? -1 : 0; }
      else c = x < y ? -1 : x > y ? 1 : 0;
      if (c !== 0) return o.desc ? -c : c;
    }
    return a.entity.id - b.entity.id;
  });
  const total = rows.length;

  const rowWidth = Math.max(1, selected.reduce((n, c) => n + maxCellBytes(c), 0));
  const maxRowsPerPage = Math.max(1, Math.floor(config.tableMaxBytesPerPage / rowWidth));
  const offset = q.offset ?? parsed.offset ?? 0;
  const limit = Math.min(q.limit ?? parsed.limit ?? maxRowsPerPage, maxRowsPerPage);
  rows = rows.slice(offset, offset + limit);

  const headers = selected.map((c) => ({ name: c.name, columnType: c.columnType, id: c.id }));
  const out: Record<string, unknown> = { concreteType: CONCRETE.queryResultBundle };
  if ((q.partMask & 0x1) !== 0) {
    const queryResult: Record<string, unknown> = {
      concreteType: CONCRETE.queryResult,
      queryResults: {
        concreteType: CONCRETE.rowSet,
        tableId: synId(viewEntity.id),
        etag: viewEntity.etag,
        headers,
        rows: rows.map((r) => {
          const row: Record<string, unknown> = {
            rowId: r.entity.id, versionNumber: r.version.versionNumber, values: selected.map((c) => r.cells.get(c.name) ?? null),
          };
          if (q.includeEntityEtag) row.etag = r.entity.etag;
          return row;
        }),
      },
    };
    if (rows.length === maxRowsPerPage) {
      queryResult.nextPageToken = {
        concreteType: CONCRETE.queryNextPageToken,
        entityId: synId(viewEntity.id),
        token: Buffer.from(JSON.stringify({ sql: q.sql, offset: offset + maxRowsPerPage, limit: q.limit })).toString('base64'),
      };
    }
    out.queryResult = queryResult;
  }
  if ((q.partMask & 0x2) !== 0) out.queryCount = total;
  if ((q.partMask & 0x4) !== 0) out.selectColumns = headers;
  if ((q.partMask & 0x8) !== 0) out.maxRowsPerPage = maxRowsPerPage;
  if ((q.partMask & 0x10) !== 0) out.columnModels = schema.map(columnModelJson);
  return out;
}

interface Job {
  jobId: string;
  userId: string;
  requestBody: Obj;
  startedOn: string;
  polls: number;
  result?: Record<string, unknown>;
  error?: SynapseError;
}

export function register(router: Router, deps: Deps): void {
  const { state, config } = deps;
  const jobs = new Map<string, Job>();
  let nextJob = FIRST_JOB_ID;

  router.add('GET', 'repo', '/column/tableview/defaults', ({ url }) => {
    const viewEntityType = url.searchParams.get('viewEntityType') ?? 'entityview';
    if (viewEntityType !== 'entityview') throw badRequest(`Unsupported viewEntityType: ${viewEntityType}`);
    const maskText = url.searchParams.get('viewTypeMask');
    if (maskText === null) throw badRequest('The viewTypeMask is required for an entityview');
    const mask = Number(maskText);
    if (!Number.isInteger(mask) || mask < 1) throw badRequest(`Invalid viewTypeMask: ${maskText}`);
    return { status: 200, json: { concreteType: CONCRETE.columnModel, list: state.defaultViewColumns(mask).map(columnModelJson) } };
  });

  router.add('GET', 'repo', '/column/{columnId}', ({ params }) => {
    const c = state.columnModels.get(params.columnId ?? '');
    if (!c) throw notFound(`ColumnModel does not exist for id: ${params.columnId ?? ''}`);
    return { status: 200, json: columnModelJson(c) };
  });

  router.add('POST', 'repo', '/entity/{id}/table/query/async/start', ({ body, user }) => {
    const b = asObject(body, 'QueryBundleRequest');
    const ct = optString(b, 'concreteType');
    if (ct !== undefined && ct !== CONCRETE.queryBundleRequest) throw badRequest(`Unknown concreteType for this call: ${ct}`);
    const query = b.query;
    if (query === undefined || query === null) throw badRequest('query is required.');
    const qo = asObject(query, 'query');
    const sql = optString(qo, 'sql');
    if (!sql) throw badRequest('query.sql is required.');
    const offset = optNumber(qo, 'offset');
    const limit = optNumber(qo, 'limit');
    if (offset !== undefined && (!Number.isInteger(offset) || offset < 0)) throw badRequest('query.offset must be a non-negative integer');
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) throw badRequest('query.limit must be a non-negative integer');
    const partMask = optNumber(b, 'partMask') ?? 0x3ff; // "Optional, default all"
    const q: QueryRequest = { sql, includeEntityEtag: qo.includeEntityEtag === true, partMask };
    if (offset !== undefined) q.offset = offset;
    if (limit !== undefined) q.limit = limit;
    const job: Job = { jobId: String(nextJob++), userId: user.id, requestBody: b, startedOn: nowIso(), polls: 0 };
    // The worker runs now; its answer (or failure) waits for the caller's GETs.
    try {
      job.result = runQuery(state, config, user, q);
    } catch (e) {
      if (!(e instanceof SynapseError)) throw e;
      job.error = e;
    }
    jobs.set(job.jobId, job);
    if (jobs.size > MAX_JOBS) jobs.delete(jobs.keys().next().value as string);
    return { status: 201, json: { token: job.jobId } };
  });

  router.add('GET', 'repo', '/entity/{id}/table/query/async/get/{asyncToken}', ({ params, user }) => {
    const job = jobs.get(params.asyncToken ?? '');
    if (!job) throw notFound(`Asynchronous job with jobId: ${params.asyncToken ?? ''} does not exist`);
    if (job.userId !== user.id) throw forbidden("Only the user that created a job can access the job's status.");
    if (job.polls++ === 0) {
      return {
        status: 202,
        json: {
          jobState: 'PROCESSING', jobCanceling: false, requestBody: job.requestBody, etag: job.jobId, jobId: job.jobId,
          startedByUserId: Number(job.userId), startedOn: job.startedOn, changedOn: job.startedOn,
          progressMessage: 'Querying the view', progressCurrent: 0, progressTotal: 100,
        },
      };
    }
    if (job.error) throw job.error;
    return { status: 201, json: job.result };
  });
}
