/**
 * queryView: run one SQL query against a Synapse table or view to the end — start the async job,
 * poll until it is done, and follow the pages — over any SynapseApi.
 *
 * Polling: Synapse answers the first GETs of a query job with 202 while its worker runs (a view
 * query usually takes 0.1–1 s). Waits grow from `pollInitialMs` (default 100 ms, about one round
 * trip) doubling to `pollMaxMs` (default 1 s): a quick job costs one or two polls, a slow one at
 * most one request per second against the 600 requests/min budget. The whole query is bounded by
 * `timeoutMs` (default 60 s, as the client's retry bound); past it a SynapseError NETWORK-coded
 * "timed out" is thrown so callers fall back to another path.
 *
 * Paging: a page holds at most maxRowsPerPage rows and a full page carries a nextPageToken. The
 * token itself is only usable with the deprecated …/nextPage/async endpoints, so the next page is
 * asked for as Synapse's documentation now advises: the same SQL with query.offset advanced by the
 * rows received. At most `maxPages` (default 1,000) pages, a guard against a server that never
 * stops; reaching it is BAD_RESPONSE. Only the results part (partMask 0x1) is requested: counts
 * and facets cost Synapse work nobody reads here.
 */
import type { SynapseApi } from './api.js';
import { SynapseError } from './errors.js';
import { QUERY_PART, type SelectColumn, type TableRow } from './types.js';

export interface QueryViewOptions {
  pollInitialMs?: number;
  pollMaxMs?: number;
  timeoutMs?: number;
  maxPages?: number;
  /** Injected for tests. */
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

export interface QueryViewResult {
  headers: SelectColumn[];
  rows: TableRow[];
  /** HTTP requests made: starts + polls (pages × (1 + polls)). */
  requests: number;
}

const DEFAULT_POLL_INITIAL_MS = 100;
const DEFAULT_POLL_MAX_MS = 1_000;
const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_PAGES = 1_000;

const defaultSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function queryView(api: SynapseApi, viewId: string, sql: string, opts: QueryViewOptions = {}): Promise<QueryViewResult> {
  const sleep = opts.sleep ?? defaultSleep;
  const now = opts.now ?? Date.now;
  const deadline = now() + (opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const maxPages = opts.maxPages ?? DEFAULT_MAX_PAGES;
  const path = `/repo/v1/entity/${viewId}/table/query/async/get`;
  let headers: SelectColumn[] | undefined;
  const rows: TableRow[] = [];
  let requests = 0;
  let offset = 0;
  for (let page = 0; ; page++) {
    if (page >= maxPages) {
      throw new SynapseError(200, `the query did not end after ${maxPages} pages`, 'GET', path, { code: 'BAD_RESPONSE' });
    }
    requests++;
    const token = await api.startTableQuery(viewId, sql, { partMask: QUERY_PART.results, ...(offset > 0 ? { offset } : {}) });
    let wait = opts.pollInitialMs ?? DEFAULT_POLL_INITIAL_MS;
    for (;;) {
      requests++;
      const poll = await api.getTableQueryResult(viewId, token);
      if (poll.done) {
        const result = poll.bundle.queryResult;
        if (!result) throw new SynapseError(200, 'the query result bundle has no queryResult', 'GET', path, { code: 'BAD_RESPONSE' });
        headers ??= result.queryResults.headers;
        const got = result.queryResults.rows;
        rows.push(...got);
        if (!result.nextPageToken || got.length === 0) return { headers, rows, requests };
        offset += got.length;
        break;
      }
      if (now() + wait > deadline) {
        throw new SynapseError(0, `the query job was still running after ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms (timed out)`, 'GET', path, { code: 'NETWORK' });
      }
      await sleep(wait);
      wait = Math.min(wait * 2, opts.pollMaxMs ?? DEFAULT_POLL_MAX_MS);
    }
  }
}

/** The index of each header name, for reading rows by column name. */
export function columnIndex(headers: SelectColumn[]): Map<string, number> {
  return new Map(headers.map((h, i) => [h.name, i]));
}
