/**
 * Path ↔ entity map: directory listings from /entity/children, cached with a TTL, plus
 * per-file sizes cached for good per (entity id, versionNumber).
 *
 * libfuse 2.9's high-level API is path based, so the table resolves a path by walking cached
 * listings from the root (single-flight: many concurrent lookups in one folder make one paged
 * listing). The mount's own changes patch the cached listing directly, so they show at once.
 *
 * Freshness rule — a folder's *snapshot* is its listing plus the sizes of its files that a
 * readdir of it sets off fetching. The snapshot's age counts from when it finished loading (the
 * listing arrived and every one of those sizes settled, fetched or failed), and the listing is
 * refetched once that age reaches `ttlMs`. While the snapshot is still loading it is never
 * refetched (up to `maxLoadHoldMs` after the listing, default 10 min — a safety net for a load
 * Synapse keeps failing or starving). Why: under Synapse's throttle (600 requests/min) the sizes
 * of N uncached files take ≈ N/10 s, so a cold `ls -l` of 1,000 files lasts longer than the
 * default 60 s TTL; an age counted from the listing made the lookups of that very `ls -l`
 * re-list the folder it was traversing (20 wasted requests per 1,000 files, per minute). Bound:
 * a change made by another client (file added, removed, renamed) shows at most `ttlMs` after
 * the snapshot finished loading, i.e. within load time + `ttlMs` of the listing (load time ≈ 0
 * when sizes are cached or come from --metadata-view; never more than `maxLoadHoldMs`). A new
 * version of a listed file can show sooner: a size fetch asks for the latest version. Folders
 * on the path to a folder are separate snapshots: each expires by its own age.
 *
 * Sizes: EntityHeader has none (synapse-api.md, "Sizes for a whole folder"), so after a readdir,
 * from the stat of a few of its files (children, SIZES_AFTER_STATS), the sizes of its files are fetched in the
 * background — POST /entity/{id}/bundle2 with the
 * file handle, kept for the file's open (sizeWithHandle; GET /entity/{id}/version?limit=1 where
 * Synapse gives no handle, or without the option) — at most `backgroundConcurrency` at a time
 * so a user's own calls always find a free slot in the client's queue of 3; a getattr that needs a size now takes that file out of the queue and asks
 * at once (or joins the request in flight) — no size is ever requested twice. A
 * (id, version) size never changes, so it is cached without TTL (bounded LRU), and — with
 * `--cache-dir` — also in an optional persistent `sizeStore` (disk-cache.ts), consulted on a
 * memory miss, so after a remount a cold `ls -l` costs only the children listing.
 *
 * --metadata-view (optional `folderSizes`, view-sizes.ts): after a listing, the folder's file
 * sizes are first asked of a Synapse file view in one query; only the files it cannot vouch for
 * go to the per-file background queue. A getattr arriving while that query is in flight waits
 * for it instead of asking on its own, so no size is requested twice.
 *
 * Memory: listings are kept least recently used first up to `maxListedEntries` entries in all
 * (default 500,000, ≈ 0.25 KB each). A dropped listing is listed again at its next lookup, as one
 * past its TTL — nothing in it is only here (the mount's own local entries and hidden names live
 * apart and are merged back at every fetch). Never dropped: a listing whose sizes are loading
 * (its snapshot waits for them), nor one of the KEEP_RECENT_LISTINGS most recently used — the
 * folders on the path being looked up (QA: a folder of 100,000 files dropped the root's listing,
 * whose fetch then dropped the folder's, at every lookup under it). A walk of a tree bigger than
 * the bound lists its folders again each time (LRU: each walk drops what the next needs first).
 * Why a bound: QA walked 50,000 entries and the mount kept every listing for good.
 *
 * INVARIANT: `listings` entries hold FsNodes whose `parentId` is the listing's entity id.
 * INVARIANT: `listedEntries` is the sum of `entries.size` over `listings` (keepListing,
 * dropListing, upsert and remove are the only writers of either).
 * INVARIANT: a cached size belongs to exactly the (id, versionNumber) in its key.
 * INVARIANT: a listing's `loading` holds only size keys that are in flight, queued or waiting
 * for a view query, and the listing is in `awaiting` under each of them; it has `loadedAt` iff
 * `loading` is empty.
 * Across an `await`, a listing may be replaced by a fresher one; callers re-read the map.
 */
import { LRUCache } from 'lru-cache';
import { entryBound } from './lru-bound.js';
import type { Logger } from 'pino';
import type { SynapseApi } from '../synapse/api.js';
import { CONCRETE, type EntityHeader, type VersionInfo } from '../synapse/types.js';
import { FsError } from './errors.js';
import { SynapseError } from '../synapse/errors.js';

export type NodeKind = 'dir' | 'file' | 'link';

export interface FsNode {
  entityId: string;
  name: string;
  kind: NodeKind;
  parentId: string | undefined;
  versionNumber: number | undefined;
  modifiedOn: number;
  createdOn: number;
  /** Reads must use exactly `versionNumber` (an editor's backup of a version now superseded). */
  pinnedVersion?: boolean;
  /** A scratch view of a published file: where the file's entity still is, hidden (InodeTable.hide). */
  hides?: { parentId: string; name: string };
  /** The entity whose ACL governs this one (listings name it), as a synID: permissions.ts caches by it. */
  benefactorId?: string;
  /** The mount's root is a project: always an ACL of its own, which new entities in it inherit. */
  project?: boolean;
}

export interface FileSize {
  size: number;
  md5: string | undefined;
}

interface Listing {
  entries: Map<string, FsNode>;
  /** When the listing request started. */
  fetchedAt: number;
  /** Size keys of its files still being fetched: the snapshot is loading while non-empty. */
  loading: Set<string>;
  /** When the snapshot finished loading (its freshness counts from here); undefined while loading. */
  loadedAt: number | undefined;
  /** Its files' sizes were asked for (a stat of one of them after a readdir); a lookup asks none. */
  sizesAsked: boolean;
  /** A readdir listed it: a stat of SIZES_AFTER_STATS of its files asks for all their sizes (size()). */
  readdirDone: boolean;
  /** Names of its files stat'ed since the readdir, until their sizes are asked (SIZES_AFTER_STATS). */
  statted?: Set<string>;
  /** A mount-local folder's (addLocalDir): its entries are the local ones, and never expire. */
  local?: boolean;
}

/**
 * Mount-local folders (InodeTable.addLocalDir): a tool's staging folder under a name Synapse
 * refuses — rsync --delay-updates' `.~tmp~` — exists in this mount only. Its id is this prefix
 * and a counter: never an entity's, never sent to Synapse; its listing is its local entries.
 */
const LOCAL_DIR_PREFIX = 'local-dir:';
let localDirs = 0;

/** Whether `id` names a mount-local folder (no Synapse entity). */
export function isLocalDirId(id: string | undefined): boolean {
  return id !== undefined && id.startsWith(LOCAL_DIR_PREFIX);
}

/** How long a file's ACL that gave no file handle (no DOWNLOAD) sends its files' sizes to `/version`. */
const NO_HANDLE_MEMORY_MS = 10 * 60_000;

/** Default bound on the entries of all cached listings (head comment: Memory). */
export const DEFAULT_MAX_LISTED_ENTRIES = 500_000;

/** The most recently used listings, never dropped for memory: deeper than any path looked up. */
const KEEP_RECENT_LISTINGS = 32;

/**
 * Distinct files of a folder stat'ed after its readdir before the sizes of all its files are
 * fetched in the background: `ls -l` and `du` stat them all at once; an `ls`, then a `cat` or
 * `stat` of one or two of its files, is a person looking (QA: `ls` of a folder of 100,000 files,
 * then one stat, set off 100,000 size requests — hours of the token's 600 a minute).
 */
const SIZES_AFTER_STATS = 4;

/** Default cap on how long a loading snapshot keeps its listing from being refetched. */
export const DEFAULT_MAX_LOAD_HOLD_MS = 10 * 60_000;

/** Sizes that outlive the mount (disk-cache.ts openSizeLog); keyed by (id, version) only. */
export interface SizeStore {
  get(entityId: string, versionNumber: number): FileSize | undefined;
  set(entityId: string, versionNumber: number, size: FileSize): void;
}

export interface InodeTableOptions {
  /** Snapshot TTL, counted from when the snapshot finished loading; Infinity = never refetch. */
  ttlMs: number;
  /** Longest a still-loading snapshot holds off a refetch of its listing (default 10 min). */
  maxLoadHoldMs?: number;
  now?: () => number;
  logger?: Logger;
  /** A low-priority view of the API (the client's background lane) for speculative fetches. */
  backgroundApi?: SynapseApi;
  /** Background size fetches in flight at once; leaves the client's other slots for users. */
  backgroundConcurrency?: number;
  maxSizes?: number;
  /** Entries of all cached listings together (head comment: Memory); default DEFAULT_MAX_LISTED_ENTRIES. */
  maxListedEntries?: number;
  /** Distinct files stat'ed after a readdir before the folder's sizes are fetched (default SIZES_AFTER_STATS). */
  sizesAfterStats?: number;
  /** The most recently used listings never dropped for memory (default KEEP_RECENT_LISTINGS). */
  keepRecentListings?: number;
  /** Persistent (id, version) → size store, read on a memory miss and written on every learn. */
  sizeStore?: SizeStore;
  /**
   * --metadata-view: sizes of a folder's files in one batch (view-sizes.ts), keyed by entity id;
   * files left out (or a rejection) fall back to the per-file path.
   */
  folderSizes?: (dirId: string, nodes: readonly FsNode[]) => Promise<Map<string, FileSize>>;
  /**
   * A file's latest version and size together with its file handle, which the caller keeps for
   * the open that usually follows (file-sources.ts latestWithHandle: one bundle2 instead of
   * `/version` now and bundle2 at the open). Undefined: Synapse gave no handle (no DOWNLOAD
   * permission, an unmet access requirement) — sizes under that file's ACL come from `/version`
   * for a while after.
   */
  sizeWithHandle?: (api: SynapseApi, entityId: string) => Promise<VersionInfo | undefined>;
}

function kindOf(type: string): NodeKind | undefined {
  switch (type) {
    case CONCRETE.folder: return 'dir';
    case CONCRETE.file: return 'file';
    case CONCRETE.link: return 'link';
    default: return undefined;
  }
}

/** Names the kernel cannot take as a directory entry (never a path escape). */
export function isUnsafeName(name: string): boolean {
  return name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0');
}

export function nodeFromHeader(h: EntityHeader, parentId: string): FsNode | undefined {
  const kind = kindOf(h.type);
  if (!kind) return undefined;
  return {
    entityId: h.id,
    name: h.name,
    kind,
    parentId,
    versionNumber: h.versionNumber,
    modifiedOn: h.modifiedOn ? Date.parse(h.modifiedOn) : Date.now(),
    createdOn: h.createdOn ? Date.parse(h.createdOn) : Date.now(),
    // A number in EntityHeader: kept as a synID, the form of entity ids here (an own ACL is benefactorId === entityId).
    ...(h.benefactorId !== undefined && h.benefactorId !== null ? { benefactorId: `syn${String(h.benefactorId).replace(/^syn/i, '')}` } : {}),
  };
}

export class InodeTable {
  /** Folder id → its listing, least recently used first (keepListing, touch). */
  private readonly listings = new Map<string, Listing>();
  /** Entries in all of `listings` (the INVARIANT above). */
  private listedEntries = 0;
  /**
   * Entries that exist only in this mount (files being written and not yet published, editors'
   * scratch files): merged into every listing of their folder until removed.
   */
  private readonly localEntries = new Map<string, Map<string, FsNode>>();
  /**
   * Published files hidden under their own name (folder → name → entity id): renamed to an
   * editor's scratch name (vim's `file~`), a file's entity stays in Synapse as it was, so
   * listings must leave it out — matched by entity id, so anything else that takes the name
   * later shows. Lifted when the mount puts something at that name or the scratch view goes.
   */
  private readonly hidden = new Map<string, Map<string, string>>();
  /** Per folder whose listing is being fetched: the mount's own changes since it started. */
  private readonly inflightChanges = new Map<string, Array<{ upsert: FsNode } | { remove: string }>>();
  private readonly pendingListings = new Map<string, Promise<Listing>>();
  private readonly sizes: LRUCache<string, FileSize>;
  private readonly pendingSizes = new Map<string, Promise<FileSize>>();
  private readonly now: () => number;
  /**
   * Files whose sizes are wanted but not yet asked for: per folder in listing order, the folders
   * taking turns, so a small folder's snapshot never waits behind a big one's load.
   */
  private readonly backgroundQueues = new Map<string, Map<string, FsNode>>();
  /** Size key → the folder whose queue holds it. */
  private readonly queuedIn = new Map<string, string>();
  private backgroundInflight = 0;
  /** A size fetch runs in a waiting getattr's slot (lendSlot). */
  private lending = false;
  /** --metadata-view: size key → the folder view query that will (or will not) answer it. */
  private readonly viewPending = new Map<string, Promise<void>>();
  /** Size key → the listings whose snapshot waits for it. */
  private readonly awaiting = new Map<string, Set<Listing>>();
  /**
   * ACLs (benefactors; the folder where the listing named none) under which Synapse gave a file's
   * size but no handle (sizeWithHandle): `/version` for their files, for a while — a grant later
   * is seen (QA: one file without DOWNLOAD sent its whole folder to the two-request path, for good).
   */
  private readonly noHandlesIn = new LRUCache<string, number>(entryBound(10_000));

  constructor(
    private readonly api: SynapseApi,
    readonly root: FsNode,
    private readonly opts: InodeTableOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.sizes = new LRUCache(entryBound(opts.maxSizes ?? 1_000_000));
  }

  /** How long the table trusts a folder snapshot (ms; Infinity = for good). */
  get ttlMs(): number {
    return this.opts.ttlMs;
  }

  /**
   * resolve() from fresh cached listings alone, without waiting (getattr's fast path): undefined
   * when that is not enough (a listing to fetch, or no such entry — resolve() says which error).
   */
  resolveCached(path: string): FsNode | undefined {
    let node = this.root;
    for (const part of path.split('/')) {
      if (part === '') continue;
      const listing = node.kind === 'dir' ? this.listings.get(node.entityId) : undefined;
      const child = listing && this.isFresh(listing) ? listing.entries.get(part) : undefined;
      if (!child) return undefined;
      this.touch(node.entityId, listing!);
      node = child;
    }
    return node;
  }

  /** Resolve an absolute mount path ("/a/b") to its node; ENOENT / ENOTDIR as POSIX says. */
  async resolve(path: string): Promise<FsNode> {
    let node = this.root;
    if (path === '/' || path === '') return node;
    const parts = path.split('/').filter((p) => p.length > 0);
    for (const part of parts) {
      if (node.kind !== 'dir') throw new FsError('ENOTDIR', `${path}: not a directory`);
      const listing = await this.listing(node.entityId);
      const child = listing.entries.get(part);
      if (!child) throw new FsError('ENOENT', `${path}: no such entry`);
      node = child;
    }
    return node;
  }

  /** Resolve the parent directory of `path` and the last name. */
  async resolveParent(path: string): Promise<{ parent: FsNode; name: string }> {
    const idx = path.lastIndexOf('/');
    const parentPath = idx <= 0 ? '/' : path.slice(0, idx);
    const parent = await this.resolve(parentPath);
    if (parent.kind !== 'dir') throw new FsError('ENOTDIR', `${parentPath}: not a directory`);
    return { parent, name: path.slice(idx + 1) };
  }

  /**
   * The children of a directory (fresh within the TTL). `sizes` (a readdir: `ls -l` and `du` stat
   * them all next) sets off fetching its files' sizes in the background once a few of them are
   * stat'ed (size(), SIZES_AFTER_STATS) — not before: `find -name`, `os.walk`, `ls` in a script read d_type and stat
   * nothing (QA: `find` of a 10,000-file tree spent 10,000 requests of the user's 600 a minute, 17
   * minutes of them, on sizes nobody asked for). A listing made to resolve a path, or to see whether
   * a folder is empty, asks none (`cat` of one file in a folder of 2,000 asked its siblings' sizes).
   */
  async children(dirId: string, opts: { sizes?: boolean } = {}): Promise<FsNode[]> {
    const listing = await this.listing(dirId);
    if (opts.sizes ?? true) listing.readdirDone = true;
    return [...listing.entries.values()];
  }

  /** The snapshot starts loading its sizes now (once per listing); its age counts from when they are in. */
  private askSizes(listing: Listing, dirId: string): void {
    if (listing.sizesAsked) return;
    listing.sizesAsked = true;
    delete listing.statted;
    listing.loadedAt = undefined;
    this.prefetchSizes(listing, dirId);
  }

  cachedListing(dirId: string): Map<string, FsNode> | undefined {
    return this.listings.get(dirId)?.entries;
  }

  /** The freshness rule (head comment): age from the end of loading; no refetch while loading. */
  private isFresh(listing: Listing): boolean {
    if (listing.local) return true;
    const now = this.now();
    if (listing.loadedAt !== undefined) return now - listing.loadedAt < this.opts.ttlMs;
    return now - listing.fetchedAt < Math.max(this.opts.ttlMs, this.opts.maxLoadHoldMs ?? DEFAULT_MAX_LOAD_HOLD_MS);
  }

  private async listing(dirId: string): Promise<Listing> {
    const cached = this.listings.get(dirId);
    if (cached && this.isFresh(cached)) return this.touch(dirId, cached);
    if (isLocalDirId(dirId)) return this.localListing(dirId);
    let pending = this.pendingListings.get(dirId);
    if (!pending) {
      pending = this.fetchListing(dirId).catch((err: unknown) => {
        // Synapse out of reach (after the client's retries): the expired snapshot is served for
        // another TTL (and again while the outage lasts) rather than failing every lookup under the folder (a QA pass: `ls` of a
        // listed folder answered EIO during an outage). A refusal (404, 403) still fails.
        if (!cached || !isUnreachable(err)) throw err;
        this.opts.logger?.warn({ dirId, err: (err as Error).message }, 'Synapse unreachable: serving the folder\'s last listing for another --metadata-ttl');
        cached.fetchedAt = this.now();
        // Fresh for another TTL, renewed while the outage lasts; still loading: its sizes end it.
        if (cached.loading.size === 0) cached.loadedAt = this.now();
        return cached;
      }).finally(() => this.pendingListings.delete(dirId));
      this.pendingListings.set(dirId, pending);
    }
    return pending;
  }

  private async fetchListing(dirId: string): Promise<Listing> {
    const fetchedAt = this.now();
    // The mount's own changes made while this listing is in flight may be missing from it
    // (Synapse answered first): they are recorded and replayed onto the result.
    const changes: Array<{ upsert: FsNode } | { remove: string }> = [];
    this.inflightChanges.set(dirId, changes);
    let headers;
    try {
      headers = await this.api.listChildren(dirId, ['folder', 'file', 'link']);
    } finally {
      if (this.inflightChanges.get(dirId) === changes) this.inflightChanges.delete(dirId);
    }
    const entries = new Map<string, FsNode>();
    for (const h of headers) {
      const node = nodeFromHeader(h, dirId);
      if (!node) continue;
      if (isUnsafeName(node.name)) {
        this.opts.logger?.warn({ entityId: h.id, name: h.name }, 'entity name is not a valid file name; hidden');
        continue;
      }
      if (this.hidden.get(dirId)?.get(node.name) === node.entityId) continue;
      entries.set(node.name, node);
    }
    for (const c of changes) {
      if ('upsert' in c) entries.set(c.upsert.name, c.upsert);
      else entries.delete(c.remove);
    }
    for (const local of this.localEntries.get(dirId)?.values() ?? []) {
      if (!entries.has(local.name)) entries.set(local.name, local);
    }
    // Loaded as listed: its sizes are asked only at a stat after a readdir (size()), which reopens the load.
    const listing: Listing = { entries, fetchedAt, loading: new Set(), loadedAt: this.now(), sizesAsked: false, readdirDone: false };
    return this.keepListing(dirId, listing);
  }

  /** A mount-local folder's listing: its local entries, never asked of Synapse, never stale. */
  private localListing(dirId: string): Listing {
    const now = this.now();
    const entries = new Map(this.localEntries.get(dirId) ?? []);
    const listing: Listing = { entries, fetchedAt: now, loading: new Set(), loadedAt: now, sizesAsked: true, readdirDone: true, local: true };
    return this.keepListing(dirId, listing);
  }

  /** A new mount-local folder `name` in `parentId` (LOCAL_DIR_PREFIX): listed at once, empty. */
  addLocalDir(parentId: string, name: string): FsNode {
    const now = this.now();
    const node: FsNode = {
      entityId: `${LOCAL_DIR_PREFIX}${++localDirs}`, name, kind: 'dir', parentId, versionNumber: undefined, modifiedOn: now, createdOn: now,
    };
    this.addLocal(node);
    this.localListing(node.entityId);
    return node;
  }

  /**
   * A folder this mount has just created is empty: its listing is known without asking (QA
   * audit: `cp -r` listed every folder it had just made). Other clients' additions show after
   * the TTL, as for any listing.
   */
  addEmptyFolder(dirId: string): void {
    if (this.listings.has(dirId)) return;
    const now = this.now();
    this.keepListing(dirId, { entries: new Map(), fetchedAt: now, loading: new Set(), loadedAt: now, sizesAsked: true, readdirDone: true });
  }

  /** Drop a directory's listing so the next lookup refetches it. */
  invalidate(dirId: string): void {
    this.dropListing(dirId);
  }

  /**
   * Drop the listings of a directory and of every directory cached below it. Those below a
   * folder whose own listing was dropped for memory cannot be reached by the walk: with
   * `formerBenefactor` (a folder moved out of that ACL), every listing naming it goes too.
   */
  invalidateTree(dirId: string, formerBenefactor?: string): void {
    const listing = this.listings.get(dirId);
    this.dropListing(dirId);
    for (const child of listing?.entries.values() ?? []) if (child.kind === 'dir' && child.entityId) this.invalidateTree(child.entityId);
    if (formerBenefactor === undefined) return;
    for (const [id, l] of [...this.listings]) {
      for (const n of l.entries.values()) {
        if (n.benefactorId === formerBenefactor) {
          this.dropListing(id);
          break;
        }
      }
    }
  }

  /** Cache `listing` as `dirId`'s (the most recently used), then keep within maxListedEntries. */
  private keepListing(dirId: string, listing: Listing): Listing {
    this.dropListing(dirId);
    this.listings.set(dirId, listing);
    this.listedEntries += listing.entries.size;
    const max = this.opts.maxListedEntries ?? DEFAULT_MAX_LISTED_ENTRIES;
    if (this.listedEntries <= max) return listing;
    // Least recently used first; the most recent (the one just kept among them), and loading
    // snapshots, stay.
    for (const [id, l] of this.listings) {
      if (this.listedEntries <= max || this.listings.size <= (this.opts.keepRecentListings ?? KEEP_RECENT_LISTINGS)) break;
      if (l === listing || l.loading.size > 0) continue;
      this.dropListing(id);
    }
    return listing;
  }

  private dropListing(dirId: string): void {
    const listing = this.listings.get(dirId);
    if (!listing) return;
    this.listings.delete(dirId);
    this.listedEntries -= listing.entries.size;
  }

  /** `listing` was used: it moves to the most recently used end. */
  private touch(dirId: string, listing: Listing): Listing {
    this.listings.delete(dirId);
    this.listings.set(dirId, listing);
    return listing;
  }

  /** How many folders' listings, and entries in them, are cached (tests, status). */
  get listedCounts(): { folders: number; entries: number } {
    return { folders: this.listings.size, entries: this.listedEntries };
  }

  /** The mount's own change: add or replace an entry in a cached listing. */
  upsert(node: FsNode): void {
    if (!node.parentId) return;
    this.dropHidden(node.parentId, node.name);
    const listing = this.listings.get(node.parentId);
    if (listing) {
      if (!listing.entries.has(node.name)) this.listedEntries++;
      listing.entries.set(node.name, node);
    }
    this.inflightChanges.get(node.parentId)?.push({ upsert: node });
  }

  /** The mount's own change: remove an entry from a cached listing (and any local entry). */
  remove(parentId: string, name: string): void {
    if (this.listings.get(parentId)?.entries.delete(name)) this.listedEntries--;
    this.inflightChanges.get(parentId)?.push({ remove: name });
    this.removeLocal(parentId, name);
  }

  /** Leave `entityId` out of its folder's listings under `name` (the `hidden` note above). */
  hide(parentId: string, name: string, entityId: string): void {
    let dir = this.hidden.get(parentId);
    if (!dir) this.hidden.set(parentId, (dir = new Map()));
    dir.set(name, entityId);
    this.remove(parentId, name);
  }

  /** Show the name again; the folder is listed afresh, so a hidden entity reappears at once. */
  unhide(parentId: string, name: string): void {
    if (this.dropHidden(parentId, name)) this.invalidate(parentId);
  }

  /** Forget that `name` hides an entity (it is gone): true if it did. */
  dropHidden(parentId: string, name: string): boolean {
    const dir = this.hidden.get(parentId);
    if (!dir?.delete(name)) return false;
    if (dir.size === 0) this.hidden.delete(parentId);
    return true;
  }

  /** The entity hidden under `name` in `parentId`, if any. */
  hiddenAt(parentId: string, name: string): string | undefined {
    return this.hidden.get(parentId)?.get(name);
  }

  /** Is `entityId` still hidden under `name`? (Nothing else has taken the name since.) */
  isHidden(parentId: string, name: string, entityId: string): boolean {
    return this.hidden.get(parentId)?.get(name) === entityId;
  }

  /** An entry that exists only in this mount until it is published (or forever, for scratch). */
  addLocal(node: FsNode): void {
    if (!node.parentId) return;
    let dir = this.localEntries.get(node.parentId);
    if (!dir) this.localEntries.set(node.parentId, (dir = new Map()));
    dir.set(node.name, node);
    this.upsert(node);
  }

  /** The entries only this mount holds that show `entityId` (backup views of it). */
  localEntriesOf(entityId: string): FsNode[] {
    const out: FsNode[] = [];
    for (const dir of this.localEntries.values()) for (const n of dir.values()) if (n.entityId === entityId) out.push(n);
    return out;
  }

  /**
   * Files only this mount holds, with no entity (empty placeholders, new files waiting for
   * recover): paths from the mount root where the cached listings lead to their folder, else
   * `synID/name`.
   */
  localOnlyFiles(): Array<{ path: string; parentId: string; name: string }> {
    if (this.localEntries.size === 0) return [];
    const paths = new Map<string, string>([[this.root.entityId, '']]);
    const queue = [this.root.entityId];
    for (let i = 0; i < queue.length; i++) {
      const id = queue[i]!;
      for (const [name, n] of this.listings.get(id)?.entries ?? []) {
        if (n.kind === 'dir' && n.entityId && !paths.has(n.entityId)) {
          paths.set(n.entityId, `${paths.get(id)}/${name}`);
          queue.push(n.entityId);
        }
      }
    }
    const out: Array<{ path: string; parentId: string; name: string }> = [];
    for (const [parentId, dir] of this.localEntries) {
      for (const [name, n] of dir) {
        if (n.kind !== 'file' || n.entityId) continue;
        const folder = paths.get(parentId);
        out.push({ path: folder !== undefined ? `${folder}/${name}` : `${parentId}/${name}`, parentId, name });
      }
    }
    return out;
  }

  removeLocal(parentId: string, name: string): void {
    const dir = this.localEntries.get(parentId);
    if (!dir) return;
    dir.delete(name);
    if (dir.size === 0) this.localEntries.delete(parentId);
  }

  private sizeKey(node: FsNode): string {
    return `${node.entityId}.${node.versionNumber ?? 'latest'}`;
  }

  knownSize(node: FsNode): FileSize | undefined {
    return this.cachedSize(this.sizeKey(node), node);
  }

  /** Memory first, then the persistent store (only for a known version: 'latest' moves). */
  private cachedSize(key: string, node: FsNode): FileSize | undefined {
    const hit = this.sizes.get(key);
    if (hit || node.versionNumber === undefined || !this.opts.sizeStore) return hit;
    const stored = this.opts.sizeStore.get(node.entityId, node.versionNumber);
    if (stored) this.sizes.set(key, stored);
    return stored;
  }

  setSize(entityId: string, versionNumber: number, size: FileSize): void {
    const key = `${entityId}.${versionNumber}`;
    this.sizes.set(key, size);
    this.opts.sizeStore?.set(entityId, versionNumber, size);
    this.settled(key);
  }

  /** A size key is no longer outstanding (learned, or its fetch failed): snapshots waiting on it move on. */
  private settled(key: string): void {
    const waiting = this.awaiting.get(key);
    if (!waiting) return;
    this.awaiting.delete(key);
    const now = this.now();
    for (const listing of waiting) {
      listing.loading.delete(key);
      if (listing.loading.size === 0 && listing.loadedAt === undefined) listing.loadedAt = now;
    }
  }

  /**
   * Size of a file: cached, in flight (shared), or fetched now. A file still waiting in the
   * background queue is taken out of it and fetched at once, so no request is ever made twice.
   */
  async size(node: FsNode): Promise<FileSize> {
    // Stats after a readdir of its folder (`ls -l`, `du`): its siblings' are wanted next.
    const folder = node.parentId === undefined ? undefined : this.listings.get(node.parentId);
    if (folder?.readdirDone && !folder.sizesAsked && folder.entries.get(node.name) === node) {
      (folder.statted ??= new Set()).add(node.name);
      // With --metadata-view, a folder's sizes are one query: asked at the first stat.
      if (folder.statted.size >= (this.opts.sizesAfterStats ?? (this.opts.folderSizes ? 1 : SIZES_AFTER_STATS))) this.askSizes(folder, node.parentId!);
    }
    const key = this.sizeKey(node);
    const known = this.cachedSize(key, node);
    if (known) return known;
    const pending = this.pendingSizes.get(key);
    if (pending) {
      this.lendSlot(node.parentId);
      return pending;
    }
    // --metadata-view: the folder's view query is in flight; its answer (or the fallback it
    // queues) decides — no request of our own meanwhile.
    const viaView = this.viewPending.get(key);
    if (viaView) {
      await viaView;
      return this.size(node);
    }
    this.unqueue(key);
    return this.fetchSize(node, key, this.api);
  }

  /** The latest version of a file, with its handle where Synapse gives one (sizeWithHandle). */
  private async latestVersion(node: FsNode, api: SynapseApi): Promise<VersionInfo> {
    const withHandle = this.opts.sizeWithHandle;
    const acl = node.benefactorId ?? `in:${node.parentId ?? ''}`;
    const refusedAt = this.noHandlesIn.get(acl);
    if (!withHandle || (refusedAt !== undefined && this.now() - refusedAt < NO_HANDLE_MEMORY_MS)) return api.getLatestVersionInfo(node.entityId);
    const info = await withHandle(api, node.entityId);
    if (info) return info;
    this.noHandlesIn.set(acl, this.now());
    return api.getLatestVersionInfo(node.entityId);
  }

  private fetchSize(node: FsNode, key: string, api: SynapseApi): Promise<FileSize> {
    const pending = this.latestVersion(node, api).then((info) => {
      const size: FileSize = { size: Number(info.contentSize ?? 0), md5: info.contentMd5 };
      this.setSize(node.entityId, info.versionNumber, size);
      if (node.versionNumber === undefined || node.versionNumber === info.versionNumber) this.sizes.set(key, size);
      if (node.versionNumber !== undefined && info.versionNumber > node.versionNumber) {
        // The listing is behind Synapse: a newer version exists. Show it now; the listing
        // catches up at its TTL.
        node.versionNumber = info.versionNumber;
        node.modifiedOn = Date.parse(info.modifiedOn) || node.modifiedOn;
        this.sizes.set(this.sizeKey(node), size);
      }
      return size;
    }).finally(() => {
      this.pendingSizes.delete(key);
      this.settled(key);
    });
    this.pendingSizes.set(key, pending);
    return pending;
  }

  /**
   * Queue background size fetches for a new listing's files (at most `backgroundConcurrency` run
   * at once); the listing's snapshot is loading until every size it lacks has settled.
   */
  private prefetchSizes(listing: Listing, dirId: string): void {
    const wanted: FsNode[] = [];
    for (const node of listing.entries.values()) {
      // Local-only entries (entityId '') have nothing to fetch.
      if (node.kind !== 'file' || !node.entityId) continue;
      const key = this.sizeKey(node);
      if (this.cachedSize(key, node)) continue;
      listing.loading.add(key);
      let waiting = this.awaiting.get(key);
      if (!waiting) this.awaiting.set(key, (waiting = new Set()));
      waiting.add(listing);
      if (this.pendingSizes.has(key) || this.viewPending.has(key) || this.queuedIn.has(key)) continue;
      wanted.push(node);
    }
    if (listing.loading.size === 0) listing.loadedAt = this.now();
    if (this.opts.folderSizes && wanted.length > 0) {
      this.prefetchFromView(dirId, wanted, this.opts.folderSizes);
      return;
    }
    for (const node of wanted) this.enqueue(dirId, this.sizeKey(node), node);
    this.pumpBackground();
  }

  /**
   * --metadata-view: one view query for the folder; what it vouches for is cached under the
   * (id, version) the listing gave, the rest joins the per-file background queue.
   */
  private prefetchFromView(dirId: string, wanted: FsNode[], folderSizes: NonNullable<InodeTableOptions['folderSizes']>): void {
    const asked = wanted.map((node) => ({ node, key: this.sizeKey(node), version: node.versionNumber }));
    const done = folderSizes(dirId, wanted)
      .then((found) => {
        for (const a of asked) {
          const size = found.get(a.node.entityId);
          if (size && a.version !== undefined) this.setSize(a.node.entityId, a.version, size);
        }
      }, (err: unknown) => this.opts.logger?.debug({ dirId, err }, 'metadata view query failed; sizes fetched one by one'))
      .finally(() => {
        for (const a of asked) {
          this.viewPending.delete(a.key);
          if (this.cachedSize(a.key, a.node)) this.settled(a.key);
          else if (!this.pendingSizes.has(a.key)) this.enqueue(dirId, a.key, a.node);
        }
        this.pumpBackground();
      });
    for (const a of asked) this.viewPending.set(a.key, done);
  }

  private enqueue(dirId: string, key: string, node: FsNode): void {
    if (this.queuedIn.has(key)) return;
    let queue = this.backgroundQueues.get(dirId);
    if (!queue) this.backgroundQueues.set(dirId, (queue = new Map()));
    queue.set(key, node);
    this.queuedIn.set(key, dirId);
  }

  private unqueue(key: string): void {
    const dirId = this.queuedIn.get(key);
    if (dirId === undefined) return;
    this.queuedIn.delete(key);
    const queue = this.backgroundQueues.get(dirId);
    queue?.delete(key);
    if (queue?.size === 0) this.backgroundQueues.delete(dirId);
  }

  /**
   * The next wanted size: of folder `dirId`, or round-robin over folders (the folder served goes
   * to the back). Undefined when there is none.
   */
  private dequeue(dirId?: string): [string, FsNode] | undefined {
    const [dir, queue] = dirId === undefined
      ? this.backgroundQueues.entries().next().value ?? []
      : [dirId, this.backgroundQueues.get(dirId)];
    const first = queue?.entries().next().value;
    if (dir === undefined || !queue || !first) return undefined;
    this.unqueue(first[0]);
    if (queue.size > 0) {
      this.backgroundQueues.delete(dir);
      this.backgroundQueues.set(dir, queue);
    }
    return first;
  }

  /**
   * A getattr waiting for a size already in flight in the background leaves its own slot in the
   * client's queue idle (the background lane keeps to `backgroundConcurrency` so that user calls
   * always find a slot): it lends that slot to the next size its folder waits for, one lent
   * fetch at a time. A cold `ls -l` thus keeps all of Synapse's 3 concurrent requests busy
   * instead of 2 (it trails right behind the background fetches).
   */
  private lendSlot(dirId: string | undefined): void {
    if (this.lending || dirId === undefined) return;
    const next = this.dequeue(dirId);
    if (!next) return;
    const fetch = this.fetchQueued(next, this.api);
    if (!fetch) return;
    this.lending = true;
    void fetch.finally(() => { this.lending = false; });
  }

  /** Fetch a size taken off the queue, unless it is known or in flight by now. */
  private fetchQueued([key, node]: [string, FsNode], api: SynapseApi): Promise<void> | undefined {
    if (this.pendingSizes.has(key)) return undefined;
    if (this.sizes.has(key)) {
      this.settled(key);
      return undefined;
    }
    return this.fetchSize(node, key, api).then(
      () => undefined,
      (err: unknown) => this.opts.logger?.debug({ entityId: node.entityId, err }, 'prefetched size fetch failed'),
    );
  }

  private pumpBackground(): void {
    const limit = this.opts.backgroundConcurrency ?? 2;
    while (this.backgroundInflight < limit && this.backgroundQueues.size > 0) {
      const fetch = this.fetchQueued(this.dequeue()!, this.opts.backgroundApi ?? this.api);
      if (!fetch) continue;
      this.backgroundInflight++;
      void fetch.finally(() => {
        this.backgroundInflight--;
        this.pumpBackground();
      });
    }
  }
}

/** No answer from Synapse, or only errors it may get over (5xx, throttling) after every retry. */
function isUnreachable(err: unknown): boolean {
  return err instanceof SynapseError && (err.code === 'NETWORK' || err.status >= 500 || err.status === 429);
}
