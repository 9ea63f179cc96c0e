/**
 * File sizes for a whole folder from a Synapse file view (--metadata-view synV): one view query
 * (start + a poll or two ≈ 3 requests, whatever the folder's size) instead of one
 * `GET /entity/{id}/version?limit=1` per file (synapse-api.md, "Sizes for a whole folder").
 *
 *   SELECT id, currentVersion, dataFileSizeBytes, dataFileMD5Hex FROM synV WHERE parentId = 'synD'
 *
 * Trust rule: views are eventually consistent (Synapse replicates entity changes into view
 * indexes asynchronously), so a row is used only when its `currentVersion` equals the
 * `versionNumber` the folder listing gave for that file — sizes never change for an (id,
 * version), so such a row is exactly right however stale the view is. A row with another
 * version, a missing row (a file newer than the view, or outside its scope) or a node with no
 * known version is left out of the answer, and the inode table fetches that file's size the
 * per-file way.
 *
 * Batching: folders asked for while a query is in flight wait and then go together in one
 * `parentId IN (…)` query (at most `maxFoldersPerQuery`, default 20, so the SQL stays short);
 * a lone folder is asked at once — no added latency.
 *
 * Failures: a 400/403/404 from the view (not a view, columns missing, no READ on it, a token
 * without the `download` scope the query needs, view deleted) is permanent: the view is switched
 * off for the rest of the mount with one warning, and every size goes the per-file way. Anything
 * else (throttling or 5xx beyond the client's retries, a timeout) fails only that query. A folder
 * whose query returned no row at all although it has files is taken to be outside the view's
 * scope and not asked again for `uncoveredRetryMs` (default 10 min): no request is wasted on
 * every re-listing.
 */
import type { Logger } from 'pino';
import type { SynapseApi } from '../synapse/api.js';
import { SynapseError } from '../synapse/errors.js';
import { columnIndex, queryView, type QueryViewOptions } from '../synapse/table-query.js';
import { CONCRETE, VIEW_TYPE_FILE } from '../synapse/types.js';
import type { FileSize, FsNode } from './inode-table.js';
import { MountError } from './preflight.js';

export interface ViewSizesOptions {
  /** Where view queries go: the client's background lane (they are speculative prefetches). */
  api: SynapseApi;
  viewId: string;
  logger?: Logger;
  maxFoldersPerQuery?: number;
  uncoveredRetryMs?: number;
  query?: QueryViewOptions;
  now?: () => number;
}

export interface ViewSizesStats {
  /** View queries run (one per batch of folders). */
  queries: number;
  /** HTTP requests they took (starts + polls). */
  requests: number;
  /** Files whose size came from the view. */
  trusted: number;
  /** Rows not used: their currentVersion differs from the listing's version. */
  stale: number;
  /** Files the view had no row for (or no version to compare). */
  missing: number;
}

interface Pending {
  dirId: string;
  nodes: Array<{ entityId: string; versionNumber: number | undefined }>;
  resolve: (sizes: Map<string, FileSize>) => void;
  reject: (err: unknown) => void;
}

interface Row { version: number; size: number; md5: string | undefined }

const DEFAULT_MAX_FOLDERS_PER_QUERY = 20;
const DEFAULT_UNCOVERED_RETRY_MS = 10 * 60_000;

/** Check at mount time that `viewId` is a file view we can use; MountError otherwise. */
export async function checkMetadataView(api: SynapseApi, viewId: string): Promise<void> {
  let entity;
  try {
    entity = await api.getEntity(viewId);
  } catch (err) {
    if (err instanceof SynapseError && (err.status === 403 || err.status === 404)) {
      throw new MountError(`--metadata-view ${viewId}: ${err.status === 404 ? 'no such entity' : 'you cannot read it'} (${err.status})`);
    }
    throw err;
  }
  if (entity.concreteType !== CONCRETE.entityView) {
    const kind = entity.concreteType.split('.').pop();
    throw new MountError(`--metadata-view ${viewId} is a ${kind}, not a file view (EntityView)`);
  }
  if (typeof entity.viewTypeMask === 'number' && (entity.viewTypeMask & VIEW_TYPE_FILE) === 0) {
    throw new MountError(`--metadata-view ${viewId} does not include files (viewTypeMask ${entity.viewTypeMask})`);
  }
}

/** The SQL for some folders of a view (ids are synN, validated: nothing else reaches the SQL). */
export function viewSizesSql(viewId: string, dirIds: readonly string[]): string {
  for (const id of [viewId, ...dirIds]) if (!/^syn\d+$/.test(id)) throw new Error(`not a Synapse id: ${JSON.stringify(id)}`);
  const where = dirIds.length === 1 ? `parentId = '${dirIds[0]}'` : `parentId IN (${dirIds.map((d) => `'${d}'`).join(', ')})`;
  return `SELECT id, currentVersion, dataFileSizeBytes, dataFileMD5Hex FROM ${viewId} WHERE ${where}`;
}

export class ViewSizes {
  readonly stats: ViewSizesStats = { queries: 0, requests: 0, trusted: 0, stale: 0, missing: 0 };
  private queue: Pending[] = [];
  private inFlight = false;
  private disabledReason: string | undefined;
  /** Folders that looked outside the view's scope → when to ask again. */
  private readonly uncovered = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly opts: ViewSizesOptions) {
    this.now = opts.now ?? Date.now;
  }

  get disabled(): string | undefined {
    return this.disabledReason;
  }

  /**
   * Sizes of the given files of folder `dirId`, from the view, keyed by entity id: only the
   * trusted ones (row version = node version). InodeTableOptions.folderSizes.
   */
  folderSizes = (dirId: string, nodes: readonly FsNode[]): Promise<Map<string, FileSize>> => {
    const asked = nodes.map((n) => ({ entityId: n.entityId, versionNumber: n.versionNumber }));
    if (this.disabledReason !== undefined || asked.every((n) => n.versionNumber === undefined)) return Promise.resolve(new Map());
    const retryAt = this.uncovered.get(dirId);
    if (retryAt !== undefined && this.now() < retryAt) return Promise.resolve(new Map());
    return new Promise((resolve, reject) => {
      this.queue.push({ dirId, nodes: asked, resolve, reject });
      this.pump();
    });
  };

  private pump(): void {
    if (this.inFlight || this.queue.length === 0) return;
    const max = this.opts.maxFoldersPerQuery ?? DEFAULT_MAX_FOLDERS_PER_QUERY;
    const batch: Pending[] = [];
    const dirs = new Set<string>();
    while (this.queue.length > 0 && (dirs.size < max || dirs.has(this.queue[0]!.dirId))) {
      const p = this.queue.shift()!;
      batch.push(p);
      dirs.add(p.dirId);
    }
    this.inFlight = true;
    this.run(batch, [...dirs]).finally(() => {
      this.inFlight = false;
      this.pump();
    });
  }

  private async run(batch: Pending[], dirIds: string[]): Promise<void> {
    if (this.disabledReason !== undefined) {
      for (const p of batch) p.resolve(new Map());
      return;
    }
    let rows: Map<string, Row>;
    const perDir = new Map<string, number>();
    try {
      this.stats.queries++;
      const r = await queryView(this.opts.api, this.opts.viewId, viewSizesSql(this.opts.viewId, dirIds), this.opts.query);
      this.stats.requests += r.requests;
      rows = parseRows(r.headers, r.rows);
      for (const id of dirIds) perDir.set(id, 0);
    } catch (err) {
      if (err instanceof SynapseError && (err.status === 400 || err.status === 403 || err.status === 404)) {
        this.disabledReason = err.reason;
        this.opts.logger?.warn(
          { viewId: this.opts.viewId, status: err.status, reason: err.reason },
          `--metadata-view ${this.opts.viewId} cannot be queried (${err.status}: ${err.reason}); file sizes are fetched one by one instead`,
        );
      } else {
        this.opts.logger?.debug({ viewId: this.opts.viewId, err }, 'view query failed; sizes of these folders are fetched one by one');
      }
      for (const p of batch) p.reject(err);
      return;
    }
    for (const p of batch) {
      const out = new Map<string, FileSize>();
      for (const n of p.nodes) {
        const row = rows.get(n.entityId);
        if (row) perDir.set(p.dirId, (perDir.get(p.dirId) ?? 0) + 1);
        if (!row || n.versionNumber === undefined) { this.stats.missing++; continue; }
        if (row.version !== n.versionNumber) { this.stats.stale++; continue; }
        this.stats.trusted++;
        out.set(n.entityId, { size: row.size, md5: row.md5 });
      }
      p.resolve(out);
    }
    for (const [dirId, n] of perDir) {
      if (n > 0) { this.uncovered.delete(dirId); continue; }
      const retryMs = this.opts.uncoveredRetryMs ?? DEFAULT_UNCOVERED_RETRY_MS;
      this.uncovered.set(dirId, this.now() + retryMs);
      this.opts.logger?.info({ viewId: this.opts.viewId, dirId }, 'the metadata view has no rows for this folder (outside its scope, or not yet indexed); its sizes are fetched one by one');
    }
  }
}

/** id → (currentVersion, size, md5) of the rows that have all three readable. */
function parseRows(headers: Parameters<typeof columnIndex>[0], rows: Array<{ values: Array<string | null> }>): Map<string, Row> {
  const col = columnIndex(headers);
  const iId = col.get('id');
  const iVersion = col.get('currentVersion');
  const iSize = col.get('dataFileSizeBytes');
  const iMd5 = col.get('dataFileMD5Hex');
  const out = new Map<string, Row>();
  if (iId === undefined || iVersion === undefined || iSize === undefined) return out;
  for (const r of rows) {
    const idText = r.values[iId];
    const version = Number(r.values[iVersion]);
    const sizeText = r.values[iSize];
    if (typeof idText !== 'string' || !Number.isInteger(version) || typeof sizeText !== 'string' || !/^\d+$/.test(sizeText)) continue;
    const id = /^\d+$/.test(idText) ? `syn${idText}` : idText;
    const md5 = iMd5 === undefined ? undefined : r.values[iMd5] ?? undefined;
    out.set(id, { version, size: Number(sizeText), md5 });
  }
  return out;
}
