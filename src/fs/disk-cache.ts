/**
 * Persistent cache under `--cache-dir` (DESIGN §2): blocks of immutable objects on local disk,
 * and the sizes of (entity, version) pairs — both survive unmount and remount, and several
 * mounts (processes) on one machine may share one directory at once.
 *
 * Why a block is never stale: it is keyed by the object's identity — `fh<fileHandleId>` for
 * Synapse-managed storage, `fh<fileHandleId>:<ETag>` for S3 reads with STS credentials (the ETag
 * is pinned at open by a first-byte GET or a HEAD) — plus the block size and index. Synapse file handles are
 * immutable: a new version of a file is a new file handle, so its blocks have another key.
 *
 * Layout (`<dir>`):
 *   blocks/<object>/<blockSize>-<index>.blk   one block: header + bytes
 *   blocks/<object>/p<pieceSize>-<index>.blk  one piece of a block (a random read's), the same way
 *   tmp/<pid>-<random>.tmp                    writes in progress (renamed into blocks/)
 *   meta/sizes.jsonl                          (entity id, version) → size, md5 (version-log.ts)
 *
 * Ids are Synapse's, which another Synapse (a local server) reuses: keys of any Synapse but
 * synapse.org carry its host (`scope`, synapse-scope.ts), so mounts of two of them may share a
 * directory.
 *
 * Block file: 20-byte header — magic "SMBC", u16 format, u16 key length, u32 data length,
 * u32 CRC-32 of the data, u32 CRC-32 of the header's first 16 bytes and the key — then the key
 * (`<object>#<blockSize>#<index>`), then the data. A reader checks all of it (file size, magic,
 * key, length, both CRCs); a block that fails is deleted and counted as a miss, so the caller
 * refetches it from S3: a truncated, corrupt or foreign file is never served. CRC-32 (zlib's,
 * native) costs ~2 ms per 8 MiB block — negligible next to a GET, and it catches torn writes
 * that a length check alone would not (a crash after rename without fsync can leave zeros).
 *
 * Concurrency between mounts: every write goes to a private temp file and is renamed into
 * place (rename is atomic: a reader sees the old file, the new one, or none — never a partial
 * one); two mounts writing one block write the same bytes, so the last rename wins harmlessly.
 * Deleting a file another mount is reading is safe (its open descriptor keeps the bytes).
 *
 * Eviction (LRU by size): the file mtime is the LRU clock — a hit refreshes it (at most once a
 * minute per block, to keep hits cheap) — so all mounts sharing the directory share one LRU
 * order without talking to each other. Each mount keeps an estimate of the bytes stored (its last
 * scan plus its own writes since); when a write would pass the bound, or after it has written
 * 5% of the bound since its last scan (so the writes of other mounts are learned), it rescans
 * the directory and deletes the least recently used blocks down to 90% of the bound (batches,
 * not one delete per write). The bound is `--cache-dir-size`, and lower when the disk is short:
 * a write never takes free space below 5% of the file system (statfs, re-read at most every
 * second and debited by our own writes in between). With N mounts writing at once the bound can
 * be overshot by at most N × 5% between scans.
 *
 * Writes are asynchronous and best effort: at most 4 at a time, and at most 128 MiB of blocks
 * waiting (the readahead cap) — beyond that a block is not kept (counted in `stats.skipped`)
 * rather than let memory grow. A failing disk is a cache miss, never a read error.
 *
 * INVARIANT: a file under blocks/ is either absent or a complete block file (atomic rename).
 * INVARIANT: `usage` ≥ 0; it is an estimate between scans and exact after one (this mount's view).
 * INVARIANT: `usage` + `reserved` ≤ the bound when a write is admitted (one mount's own writes never overshoot it).
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { access, mkdir, open, readdir, rename, rmdir, stat, statfs, unlink } from 'node:fs/promises';
import path from 'node:path';
import { scopedKey } from './synapse-scope.js';
import { crc32 } from 'node:zlib';
import type { Logger } from 'pino';
import type { BlockId, BlockStore } from './block-cache.js';
import { makeDirs } from './make-dirs.js';
import { VersionLog, type VersionLogCodec } from './version-log.js';

const MiB = 1024 * 1024;
const MAGIC = Buffer.from('SMBC');
const FORMAT = 1;
const FIXED_HEADER = 20;
/** Never let a write take the file system below this fraction free (issue 9). */
export const MIN_FREE_FRACTION = 0.05;
/** Evict down to this fraction of the bound, so eviction runs in batches. */
const LOW_WATER = 0.9;
/** Rescan after writing this fraction of the bound (learns other mounts' writes). */
const RESCAN_FRACTION = 0.05;
const WRITE_CONCURRENCY = 4;
/** Blocks waiting to be written; matches the readahead cap (DESIGN §4). */
const MAX_PENDING_WRITE_BYTES = 128 * MiB;
/** A hit refreshes the block's mtime (the LRU clock) only if older than this. */
const TOUCH_AFTER_MS = 60_000;
const STATFS_MAX_AGE_MS = 1000;
/** Temp files older than this are left by a crashed writer. */
const STALE_TMP_MS = 3_600_000;

export class DiskCacheError extends Error {
  override readonly name = 'DiskCacheError';
}

export interface DiskCacheOptions {
  dir: string;
  /** Upper bound on the bytes of block files (--cache-dir-size). */
  maxBytes: number;
  minFreeFraction?: number;
  logger?: Logger;
  /** Which Synapse the mount's file handle ids belong to (synapse-scope.ts): part of every block's key. */
  scope?: string;
  /** For tests: the file system's size and free bytes. */
  diskSpace?: (dir: string) => Promise<{ total: number; avail: number }>;
}

/** How long the cache stays no larger after giving space to the spool (yieldSpace). */
const YIELD_MS = 60_000;

interface ScannedBlock {
  file: string;
  size: number;
  mtimeMs: number;
}

/** File-name-safe form of an object key (`fh12:abc-3` → `fh12%3Aabc-3`); injective. */
export function encodeObjectKey(object: string): string {
  return object.replace(/[^A-Za-z0-9._-]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** A piece's size is written `p<bytes>` (BlockId.piece), in its key and its file name. */
function sizeTag(id: BlockId): string {
  return id.piece ? `p${id.blockSize}` : String(id.blockSize);
}

function headerKey(id: BlockId): string {
  return `${id.object}#${sizeTag(id)}#${id.index}`;
}

/** Header + key for a block of `data`. */
export function encodeBlockHeader(id: BlockId, data: Buffer): Buffer {
  const key = Buffer.from(headerKey(id));
  const h = Buffer.alloc(FIXED_HEADER + key.length);
  MAGIC.copy(h, 0);
  h.writeUInt16LE(FORMAT, 4);
  h.writeUInt16LE(key.length, 6);
  h.writeUInt32LE(data.length, 8);
  h.writeUInt32LE(crc32(data), 12);
  key.copy(h, FIXED_HEADER);
  h.writeUInt32LE(crc32(key, crc32(h.subarray(0, 16))), 16);
  return h;
}

/** The data of a whole block file if it is intact and is `id` with `length` bytes; else why not. */
export function decodeBlock(file: Buffer, id: BlockId, length: number): Buffer | string {
  if (file.length < FIXED_HEADER) return `short file (${file.length} bytes)`;
  if (!file.subarray(0, 4).equals(MAGIC)) return 'bad magic';
  if (file.readUInt16LE(4) !== FORMAT) return `format ${file.readUInt16LE(4)}`;
  const keyLen = file.readUInt16LE(6);
  const dataLen = file.readUInt32LE(8);
  if (file.length < FIXED_HEADER + keyLen) return 'short header';
  const key = file.subarray(FIXED_HEADER, FIXED_HEADER + keyLen);
  if (crc32(key, crc32(file.subarray(0, 16))) !== file.readUInt32LE(16)) return 'header checksum';
  if (key.toString() !== headerKey(id)) return `key ${key.toString()}`;
  if (dataLen !== length) return `length ${dataLen}, expected ${length}`;
  if (file.length !== FIXED_HEADER + keyLen + dataLen) return `file is ${file.length} bytes, header says ${FIXED_HEADER + keyLen + dataLen}`;
  const data = file.subarray(FIXED_HEADER + keyLen);
  if (crc32(data) !== file.readUInt32LE(12)) return 'data checksum';
  return data;
}

async function defaultDiskSpace(dir: string): Promise<{ total: number; avail: number }> {
  const s = await statfs(dir);
  return { total: s.blocks * s.bsize, avail: s.bavail * s.bsize };
}

const isCode = (err: unknown, code: string): boolean => (err as NodeJS.ErrnoException | null)?.code === code;

export class DiskCache implements BlockStore {
  readonly dir: string;
  readonly stats = {
    hits: 0, misses: 0, corrupt: 0, writes: 0, writeBytes: 0, skipped: 0, evictions: 0, evictedBytes: 0, errors: 0, scans: 0,
  };
  private readonly blocksDir: string;
  private readonly tmpDir: string;
  private readonly minFree: number;
  private readonly diskSpace: (dir: string) => Promise<{ total: number; avail: number }>;
  /** Bytes of block files: exact after a scan, plus this mount's writes since. */
  private usage = 0;
  /**
   * Bytes of writes admitted by makeRoom and not yet counted in `usage`: up to
   * WRITE_CONCURRENCY writes run at once, and each must see the others' room taken, or all of
   * them pass the same check and the bound is overshot (seen: 10 MiB + 404 bytes stored under
   * a 10 MiB bound).
   */
  private reserved = 0;
  /** Bytes of completed writes ever; a scan adds those completed while it ran (it may have missed them). */
  private completedBytes = 0;
  /** `completedBytes` at the last scan: what this mount wrote since is the difference. */
  private completedAtScan = 0;
  private pendingBytes = 0;
  private running = 0;
  private readonly queue: Array<() => Promise<void>> = [];
  private idleWaiters: Array<() => void> = [];
  private evicting: Promise<void> | undefined;
  private space: { total: number; avail: number; at: number } | undefined;
  private warned = false;
  private closed = false;

  private constructor(private readonly opts: DiskCacheOptions) {
    this.dir = path.resolve(opts.dir);
    this.blocksDir = path.join(this.dir, 'blocks');
    this.tmpDir = path.join(this.dir, 'tmp');
    this.minFree = opts.minFreeFraction ?? MIN_FREE_FRACTION;
    this.diskSpace = opts.diskSpace ?? defaultDiskSpace;
  }

  /** Create the directory layout, learn what is stored, and evict if over the bound. */
  static async open(opts: DiskCacheOptions): Promise<DiskCache> {
    if (!(opts.maxBytes > 0)) throw new DiskCacheError(`cache size must be positive (got ${opts.maxBytes})`);
    const cache = new DiskCache(opts);
    try {
      for (const d of [cache.dir, cache.blocksDir, cache.tmpDir, path.join(cache.dir, 'meta')]) await makeDirs(d);
      await access(cache.blocksDir, constants.R_OK | constants.W_OK);
      await access(cache.tmpDir, constants.R_OK | constants.W_OK);
    } catch (err) {
      throw new DiskCacheError(`cache directory ${cache.dir} is not usable: ${(err as Error).message}`);
    }
    await cache.evict(0);
    return cache;
  }

  /** Bytes of block files as this mount last knew them. */
  get usedBytes(): number {
    return this.usage;
  }

  /** Where a block of this mount's Synapse lives: its object key carries the scope. */
  private scoped(id: BlockId): BlockId {
    return this.opts.scope ? { ...id, object: scopedKey(id.object, this.opts.scope) } : id;
  }

  blockPath(id: BlockId): string {
    return path.join(this.objectDir(id.object), `${sizeTag(id)}-${id.index}.blk`);
  }

  /** Where an (already scoped) object's blocks and pieces are. */
  private objectDir(object: string): string {
    return path.join(this.blocksDir, encodeObjectKey(object));
  }

  private problem(what: string, err: unknown): void {
    this.stats.errors++;
    // One warning per mount, then debug: a broken disk must not flood the log on every read.
    if (!this.warned) {
      this.warned = true;
      this.opts.logger?.warn({ err, dir: this.dir }, `disk cache: ${what} failed; continuing without it where it fails`);
    } else {
      this.opts.logger?.debug({ err }, `disk cache: ${what} failed`);
    }
  }

  async get(block: BlockId, length: number): Promise<Buffer | undefined> {
    const id = this.scoped(block);
    const file = this.blockPath(id);
    let fh;
    try {
      fh = await open(file, 'r');
    } catch (err) {
      if (!isCode(err, 'ENOENT')) this.problem('open', err);
      this.stats.misses++;
      return undefined;
    }
    let size = 0;
    try {
      const st = await fh.stat();
      size = st.size;
      const buf = Buffer.allocUnsafe(size);
      let got = 0;
      while (got < size) {
        const { bytesRead } = await fh.read(buf, got, size - got, got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      const decoded = decodeBlock(buf.subarray(0, got), id, length);
      if (typeof decoded === 'string') {
        await this.discard(file, size, decoded);
        return undefined;
      }
      const now = Date.now();
      if (now - st.mtimeMs > TOUCH_AFTER_MS) await fh.utimes(now / 1000, now / 1000).catch(() => undefined);
      this.stats.hits++;
      return decoded;
    } catch (err) {
      this.problem('read', err);
      this.stats.misses++;
      return undefined;
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /** A block that failed its checks: delete it so it is refetched and rewritten. */
  private async discard(file: string, size: number, why: string): Promise<void> {
    this.stats.corrupt++;
    this.stats.misses++;
    this.opts.logger?.warn({ file, why }, 'disk cache: damaged block discarded; refetching');
    await unlink(file).catch(() => undefined);
    this.usage = Math.max(0, this.usage - size);
  }

  put(block: BlockId, data: Buffer, replaces: BlockId[] = []): void {
    if (this.closed) return;
    const id = this.scoped(block);
    if (this.pendingBytes + data.length > MAX_PENDING_WRITE_BYTES) {
      this.stats.skipped++;
      return;
    }
    this.pendingBytes += data.length;
    this.queue.push(async () => {
      try {
        if (await this.write(id, data)) await this.remove(replaces.map((r) => this.scoped(r)));
      } catch (err) {
        this.problem('write', err);
      } finally {
        this.pendingBytes -= data.length;
      }
    });
    this.pump();
  }

  private pump(): void {
    while (this.running < WRITE_CONCURRENCY && this.queue.length > 0) {
      const job = this.queue.shift()!;
      this.running++;
      void job().finally(() => {
        this.running--;
        this.pump();
        if (this.running === 0 && this.queue.length === 0) {
          const waiters = this.idleWaiters;
          this.idleWaiters = [];
          for (const w of waiters) w();
        }
      });
    }
  }

  /**
   * Keep the bytes of a local file (a spool file just published as `object`, e.g. `fh<id>` or
   * `fh<id>:<etag>` — the key its RangeSource will have) as blocks, one block in memory at a
   * time, so a written file is read back from disk after a remount. Returns blocks stored.
   */
  async populateFromFile(object: string, blockSize: number, file: string, size: number): Promise<number> {
    if (this.closed || size <= 0) return 0;
    let stored = 0;
    const fh = await open(file, 'r');
    try {
      for (let index = 0; index * blockSize < size; index++) {
        const length = Math.min(blockSize, size - index * blockSize);
        const data = Buffer.allocUnsafe(length);
        let got = 0;
        while (got < length) {
          const { bytesRead } = await fh.read(data, got, length - got, index * blockSize + got);
          if (bytesRead === 0) throw new Error(`${file} is shorter than ${size} bytes`);
          got += bytesRead;
        }
        const before = this.stats.writes;
        await this.write(this.scoped({ object, blockSize, index }), data);
        if (this.stats.writes > before) stored++;
      }
    } catch (err) {
      this.problem('populate', err);
    } finally {
      await fh.close();
    }
    return stored;
  }

  /** Resolves when every queued write has finished. */
  flush(): Promise<void> {
    if (this.running === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Finish queued writes; later puts are ignored. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  /**
   * Delete stored blocks (pieces a whole block now stands for). Another mount reading one keeps
   * its bytes (its open descriptor), then finds the whole block. Missing ones are no error.
   */
  private async remove(ids: BlockId[]): Promise<void> {
    for (const id of ids) {
      const file = this.blockPath(id);
      const st = await stat(file).catch(() => undefined);
      if (!st) continue;
      if (await unlink(file).then(() => true, () => false)) this.usage = Math.max(0, this.usage - st.size);
    }
  }

  async hasPieces(object: string): Promise<boolean> {
    const names = await readdir(this.objectDir(this.scoped({ object, blockSize: 0, index: 0 }).object)).catch(() => [] as string[]);
    return names.some((n) => n.startsWith('p') && n.endsWith('.blk'));
  }

  /** Store one block; false when there was no room (nothing written). */
  private async write(id: BlockId, data: Buffer): Promise<boolean> {
    const header = encodeBlockHeader(id, data);
    const size = header.length + data.length;
    if (!(await this.makeRoom(size))) {
      this.stats.skipped++;
      return false;
    }
    // makeRoom reserved `size`; it moves to `usage` once the block is in place.
    try {
      await this.writeBlockFile(id, header, data, size);
    } finally {
      this.reserved -= size;
    }
    this.usage += size;
    this.completedBytes += size;
    if (this.space) this.space.avail -= size;
    this.stats.writes++;
    this.stats.writeBytes += data.length;
    if (this.completedBytes - this.completedAtScan > this.opts.maxBytes * RESCAN_FRACTION) void this.evict(0);
    return true;
  }

  /** Write a block file to a temp file and rename it into place (atomic for readers). */
  private async writeBlockFile(id: BlockId, header: Buffer, data: Buffer, size: number): Promise<void> {
    const final = this.blockPath(id);
    const tmp = path.join(this.tmpDir, `${process.pid}-${randomBytes(6).toString('hex')}.tmp`);
    try {
      const fh = await open(tmp, 'wx', 0o600);
      try {
        let { bytesWritten: done } = await fh.writev([header, data]);
        while (done < size) {
          // A short writev (rare on local files): write the rest from where it stopped.
          const rest = done < header.length ? Buffer.concat([header.subarray(done), data]) : data.subarray(done - header.length);
          const { bytesWritten } = await fh.write(rest, 0, rest.length, done);
          if (bytesWritten === 0) throw new Error(`short write: ${done} of ${size} bytes`);
          done += bytesWritten;
        }
      } finally {
        await fh.close();
      }
      await mkdir(path.dirname(final), { recursive: true, mode: 0o700 });
      try {
        await rename(tmp, final);
      } catch (err) {
        // Another mount's eviction removed the (empty) object directory in between.
        if (!isCode(err, 'ENOENT')) throw err;
        await mkdir(path.dirname(final), { recursive: true, mode: 0o700 });
        await rename(tmp, final);
      }
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }

  private async refreshSpace(force: boolean): Promise<{ total: number; avail: number }> {
    if (!force && this.space && Date.now() - this.space.at < STATFS_MAX_AGE_MS) return this.space;
    const s = await this.diskSpace(this.dir);
    this.space = { ...s, at: Date.now() };
    return this.space;
  }

  /** The bound now: --cache-dir-size, or less so the file system keeps `minFree` free. */
  private limitFor(usage: number, space: { total: number; avail: number }): number {
    const capped = this.yieldedUntil > Date.now() ? this.yieldedCap : Infinity;
    return Math.min(this.opts.maxBytes, capped, usage + space.avail - space.total * this.minFree);
  }

  /** After yieldSpace: the cache stays at most this large until `yieldedUntil`. */
  private yieldedCap = Infinity;
  private yieldedUntil = 0;

  /**
   * The spool, on the same file system, ran out of space: give back at least `bytes` (least
   * recently used blocks first) and grow no more for a minute, so the writes whose bytes must be
   * kept win over a cache (QA: blocks read into a cache sharing a small disk with the spool made
   * the next write fail with ENOSPC after 15 MiB). True if anything was freed.
   */
  async yieldSpace(bytes: number): Promise<boolean> {
    const blocks = await this.scan().catch(() => [] as ScannedBlock[]);
    const freed = await this.deleteOldest(blocks, (gone) => gone < bytes);
    const total = blocks.reduce((n, b) => n + b.size, 0) - freed;
    this.usage = total;
    this.yieldedCap = total;
    this.yieldedUntil = Date.now() + YIELD_MS;
    this.opts.logger?.info({ freed, kept: total }, 'disk cache: gave its space to the spool, which ran out; it grows again in a minute');
    return freed > 0;
  }

  /** Evict if `size` more bytes would pass the bound; false if they cannot fit at all. */
  private async makeRoom(size: number): Promise<boolean> {
    if (size > this.opts.maxBytes * LOW_WATER) return false;
    // Up to three rounds: an eviction already in flight (started for a smaller need) may not
    // have made enough room; the next round starts one for this write's size.
    for (let round = 0; round < 3; round++) {
      const space = await this.refreshSpace(false);
      // Check and reserve with no await in between: concurrent writes see each other's room.
      if (this.usage + this.reserved + size <= this.limitFor(this.usage, space)) {
        this.reserved += size;
        return true;
      }
      await this.evict(size);
    }
    return false;
  }

  /** Rescan and delete least recently used blocks until `needed` more bytes fit (single-flight). */
  evict(needed: number): Promise<void> {
    if (!this.evicting) {
      this.evicting = this.scanAndEvict(needed)
        .catch((err: unknown) => this.problem('eviction', err))
        .finally(() => { this.evicting = undefined; });
    }
    return this.evicting;
  }

  private async scanAndEvict(needed: number): Promise<void> {
    const completedBefore = this.completedBytes;
    const blocks = await this.scan();
    let total = blocks.reduce((n, b) => n + b.size, 0);
    this.completedAtScan = this.completedBytes;
    const space = await this.refreshSpace(true);
    // Writes in flight (reserved) will land: room is made for them too.
    const limit = this.limitFor(total, space);
    if (total + this.reserved + needed > limit) {
      const target = Math.max(0, limit * LOW_WATER - needed - this.reserved);
      const freed = await this.deleteOldest(blocks, (gone) => total - gone > target);
      total -= freed;
      space.avail += freed;
      this.opts.logger?.debug({ total, limit }, 'disk cache: evicted least recently used blocks');
    }
    // A write that completed while the scan ran may or may not be in it: count it (an
    // overestimate until the next scan, never an overshoot).
    this.usage = total + (this.completedBytes - completedBefore);
  }

  /**
   * Delete `blocks`, least recently used first, while `more(bytes gone so far)`; returns the bytes
   * gone. One another mount evicted first (ENOENT) is gone too; one that cannot be deleted is skipped.
   */
  private async deleteOldest(blocks: ScannedBlock[], more: (gone: number) => boolean): Promise<number> {
    let gone = 0;
    for (const b of [...blocks].sort((x, y) => x.mtimeMs - y.mtimeMs)) {
      if (!more(gone)) break;
      const deleted = await unlink(b.file).then(() => true, (err: unknown) => {
        if (!isCode(err, 'ENOENT')) this.problem('eviction', err);
        return isCode(err, 'ENOENT') ? 'already' : false;
      });
      if (deleted === false) continue;
      gone += b.size;
      if (deleted === true) {
        this.stats.evictions++;
        this.stats.evictedBytes += b.size;
      }
    }
    return gone;
  }

  /** Every block file with its size and mtime; removes empty object dirs and stale temp files. */
  private async scan(): Promise<ScannedBlock[]> {
    this.stats.scans++;
    const out: ScannedBlock[] = [];
    const objects = await readdir(this.blocksDir, { withFileTypes: true });
    for (const o of objects) {
      if (!o.isDirectory()) continue;
      const dir = path.join(this.blocksDir, o.name);
      const names = await readdir(dir).catch(() => [] as string[]);
      const files = names.filter((n) => n.endsWith('.blk'));
      if (names.length === 0) {
        await rmdir(dir).catch(() => undefined); // ENOTEMPTY if a mount just wrote into it: fine
        continue;
      }
      for (let i = 0; i < files.length; i += 64) {
        const stats = await Promise.all(files.slice(i, i + 64).map(async (n) => {
          const file = path.join(dir, n);
          const st = await stat(file).catch(() => undefined);
          return st?.isFile() ? { file, size: st.size, mtimeMs: st.mtimeMs } : undefined;
        }));
        for (const s of stats) if (s) out.push(s);
      }
    }
    const now = Date.now();
    for (const n of await readdir(this.tmpDir).catch(() => [] as string[])) {
      const file = path.join(this.tmpDir, n);
      const st = await stat(file).catch(() => undefined);
      if (st && now - st.mtimeMs > STALE_TMP_MS) await unlink(file).catch(() => undefined);
    }
    return out;
  }
}

// ---------------------------------------------------------------------------------------------

/** Sizes of (entity, version) pairs, as the inode table caches them (inode-table.ts SizeStore). */
export interface PersistedSize {
  size: number;
  md5: string | undefined;
}

/** Sizes as `[id, version, size, md5 | null]` lines (version-log.ts). */
const sizeCodec: VersionLogCodec<PersistedSize> = {
  encode: (v) => [v.size, v.md5 ?? null],
  decode: ([size, md5]) => (typeof size === 'number' && size >= 0 ? { size, md5: typeof md5 === 'string' ? md5 : undefined } : undefined),
  same: (a, b) => a.size === b.size && a.md5 === b.md5,
};

/**
 * `meta/sizes.jsonl` under `--cache-dir`: (entity id, version) → size, md5, shared by every
 * mount using the directory (version-log.ts: append-only, torn lines skipped). It is a cache: a
 * line lost to another mount's rewrite is simply asked of Synapse again.
 */
export type SizeLog = VersionLog<PersistedSize>;
export function openSizeLog(dir: string, opts: { logger?: Logger; scope?: string } = {}): Promise<SizeLog> {
  return VersionLog.open(path.join(path.resolve(dir), 'meta', 'sizes.jsonl'), sizeCodec, opts);
}
