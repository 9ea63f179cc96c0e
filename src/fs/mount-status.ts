/**
 * What `synapse-mount status DIR` reports about a live mount (issue 8): what a worried user
 * needs — uploads in flight with bytes done, journal entries waiting for `recover`, cache use,
 * Synapse and S3 request/error counts, uptime, entity and endpoint.
 *
 * Collected inside the serving process (from the filesystem, the Synapse client's counters, the
 * process-wide S3 counters and the spool directory) and sent over the control socket as JSON.
 * Nothing here may carry a secret: the endpoint loses any user-info and query, journal errors
 * are the messages close() returned (Synapse reasons are scrubbed of the token by the client;
 * S3 errors name codes, never URLs), and go through the log scrubber (log.ts) once more.
 */
import path from 'node:path';
import type { SynapseClientStats } from '../synapse/http-client.js';
import { s3Stats, type S3Counters } from '../s3/s3-stats.js';
import { scrubSecrets } from '../log.js';
import { cacheLayout } from './cache-layout.js';
import { fastReadHits, fastReadReplies } from './fast-read.js';
import { grantedFuseTerms, type FuseTerms } from './fuse-terms.js';
import type { SynapseFilesystem } from './filesystem.js';
import { Spool, syncedOpenHere } from './spool.js';
import { orphanedUploads } from './orphans.js';

/** Bumped when a field changes meaning (scripts reading `status --json` can check it). */
export const STATUS_FORMAT = 1;

export interface UploadStatus {
  /** Path inside the mount. */
  path: string;
  /** The entity that gets a new version, or undefined for a new file. */
  entityId?: string;
  /** Current size of the file as written. */
  size: number;
  /** Bytes S3 has acknowledged for the upload now running (streamed parts or the publish). */
  uploaded: number;
  /**
   * writing: open, not yet published; publishing: upload/registration running; clean: open,
   * nothing to publish; local: a scratch or probe name kept in this mount only, never published
   * (README, "scratch files"), until removed or the mount stops.
   */
  state: 'writing' | 'publishing' | 'clean' | 'local';
  /** fds open on it. */
  openHandles: number;
}

export interface JournalStatus {
  id: string;
  parentId: string;
  name: string;
  entityId?: string;
  size: number;
  createdAt: string;
  error: string;
}

export interface MountStatus {
  format: number;
  pid: number;
  mountpoint: string;
  entityId: string;
  endpoint: string;
  s3Endpoint?: string;
  userName: string;
  startedAt: string;
  uptimeSec: number;
  readOnly: boolean;
  /** Where file data goes through the kernel's page cache (page-cache-bypass.ts). Absent from mounts started before it existed. */
  pageCache?: PageCacheStatus;
  /** What the kernel granted the FUSE connection (fuse-terms.ts). Absent from older mounts. */
  fuse?: FuseTerms;
  logFile?: string;
  spoolDir: string;
  uploads: UploadStatus[];
  /** Entries in the spool dir's journal (the spool dir may be shared by several mounts). */
  journal: JournalStatus[];
  /** Journal files that cannot be read (torn, edited by hand): `recover --list` names them. Absent before session 20. */
  unreadableJournal?: number;
  /** Recorded S3 multipart uploads whose process is gone (aborted at the next mount or recover). */
  orphanedUploads: number;
  cache: {
    bytes: number;
    limitBytes: number;
    fetchingBytes: number;
    /** Readahead outstanding: prefetches in flight and prefetched blocks not read yet. */
    readaheadBytes: number;
    blockBytes: number;
    /** What a random read's miss fetches (a piece of a block; blockBytes when pieces are off). */
    pieceBytes: number;
    hits: number;
    misses: number;
    diskHits: number;
    /** Misses of random reads that fetched a piece, not a whole block. */
    pieceFetches: number;
    bytesFetched: number;
    /** Kernel reads answered in C from a held block (fast-read.ts), never reaching JS. */
    fastReads: number;
    /** Of fastReads, those the mount's own /dev/fuse channel answered as it received them. */
    fastReplies: number;
    dir?: string;
  };
  synapse: Pick<SynapseClientStats, 'calls' | 'requests' | 'retries' | 'throttled' | 'errors' | 'inFlight' | 'heldForMs'> & { queued: number };
  s3: S3Counters;
  /** Folder listings cached, and their entries (inode-table.ts: at most 500,000 in all, beyond the most recently used). Absent before session 31. */
  listings?: { folders: number; entries: number };
}

export type PageCacheUse = 'kernel' | 'bypassed';

/** Per kind of open: does file data go through the kernel's page cache? */
export interface PageCacheStatus {
  /** Read-only opens: bypassed with --direct-io, or by default where the kernel allows shared mmap of such files. */
  reads: PageCacheUse;
  /** With reads bypassed by default: programs learned to read in small pieces, whose read-only opens keep the page cache. */
  smallReaders?: string[];
  /** Read-write opens: bypassed only with --direct-io. Absent from mounts started before it existed. */
  readWriteOpens?: PageCacheUse;
  /** Write-only opens: bypassed with --direct-io or --direct-writes. */
  writeOnlyOpens: PageCacheUse;
}

export interface StatusSources {
  fs: SynapseFilesystem;
  client: { stats(): SynapseClientStats };
  userName: string;
  config: {
    entityId: string; mountpoint: string; endpoint: string; s3Endpoint?: string; readOnly: boolean;
    spoolDir: string; cacheBytes: number; blockBytes: number; cacheDir?: string;
  };
  startedAt: Date;
  pageCache: PageCacheStatus;
  logFile?: string;
}

/** A URL fit to show: no user-info, query or fragment (a proxy-style endpoint could carry one). */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(unparseable URL)';
  }
}


export async function collectStatus(src: StatusSources): Promise<MountStatus> {
  const { fs, config } = src;
  const uploads: UploadStatus[] = fs.activeFilesByPath.map(([file, f]) => ({
    path: file,
    ...(f.entityId ? { entityId: f.entityId } : {}),
    size: f.size,
    uploaded: f.bytesUploaded,
    state: f.localOnly ? 'local' : f.publishing ? 'publishing' : f.dirty ? 'writing' : 'clean',
    openHandles: f.refs,
  }));
  const spool = new Spool(config.spoolDir);
  const { entries, unreadable } = await spool.readJournal();
  // A file this mount has open O_SYNC is journaled at each write, and published at its close: not recover's.
  const journal: JournalStatus[] = entries.filter((e) => !syncedOpenHere(e)).map((e) => ({
    id: e.id, parentId: e.parentId, name: e.name, ...(e.entityId ? { entityId: e.entityId } : {}),
    size: e.size, createdAt: e.createdAt, error: scrubSecrets(String(e.error ?? '')),
  }));
  const orphanedCount = (await orphanedUploads(spool, true)).length;
  const syn = src.client.stats();
  const cache = fs.cache;
  return {
    format: STATUS_FORMAT,
    pid: process.pid,
    mountpoint: path.resolve(config.mountpoint),
    entityId: config.entityId,
    endpoint: displayUrl(config.endpoint),
    ...(config.s3Endpoint ? { s3Endpoint: displayUrl(config.s3Endpoint) } : {}),
    userName: src.userName,
    startedAt: src.startedAt.toISOString(),
    uptimeSec: Math.round((Date.now() - src.startedAt.getTime()) / 1000),
    readOnly: config.readOnly,
    pageCache: src.pageCache,
    fuse: grantedFuseTerms(),
    ...(src.logFile ? { logFile: src.logFile } : {}),
    spoolDir: config.spoolDir,
    uploads,
    journal,
    unreadableJournal: unreadable.length,
    orphanedUploads: orphanedCount,
    cache: {
      bytes: cache.cachedBytes,
      limitBytes: cacheLayout(config.cacheBytes, config.blockBytes).totalBytes,
      fetchingBytes: cache.inflightBytes,
      readaheadBytes: cache.readaheadInUse(),
      blockBytes: config.blockBytes,
      pieceBytes: cache.pieceSize,
      hits: cache.stats.hits,
      misses: cache.stats.misses,
      diskHits: cache.stats.diskHits,
      pieceFetches: cache.stats.pieceFetches,
      bytesFetched: cache.stats.bytesFetched,
      fastReads: fastReadHits(),
      fastReplies: fastReadReplies(),
      ...(config.cacheDir ? { dir: config.cacheDir } : {}),
    },
    synapse: {
      calls: syn.calls, requests: syn.requests, retries: syn.retries, throttled: syn.throttled, errors: syn.errors,
      inFlight: syn.inFlight, queued: syn.queued.high + syn.queued.low, heldForMs: syn.heldForMs,
    },
    s3: s3Stats.snapshot(),
    listings: fs.table.listedCounts,
  };
}
