/**
 * Local staging of written bytes (DESIGN §5): every file open for writing has a spool file in
 * `--spool-dir`, so reads of a file being written see its bytes (git index-pack reads its pack
 * while writing it), non-sequential writes and appends need no special path, and a publish
 * that fails leaves the exact bytes on disk for `synapse-mount recover`.
 *
 * The MD5 Synapse needs is kept incrementally while writes are sequential appends; any other
 * write invalidates it and it is recomputed from the file at publish.
 *
 * Journal: a publish that fails writes `journal/<id>.json` next to the spool file, naming the
 * target (parent, name, entity to version) and the bytes' md5/size; `recover` publishes it once.
 */
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { createReadStream, readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { open, readdir, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { makeDirs } from './make-dirs.js';
import { sameProcessAlive } from '../process-alive.js';
import { synapseScope } from './synapse-scope.js';

export interface JournalEntry {
  id: string;
  spoolFile: string;
  parentId: string;
  name: string;
  /** The existing entity that should get a new version, if any. */
  entityId?: string;
  /**
   * The version of `entityId` these bytes were written over (the one open() saw): `recover`
   * will not publish over a newer one without --force. Absent for new files, and in entries
   * written before session 15.
   */
  baseVersion?: number;
  size: number;
  md5: string;
  createdAt: string;
  /** The file's mtime when journaled (ActiveFile.mtime): what the mount shows, and what recover logs. Absent before session 20. */
  mtime?: number;
  error: string;
  /** Set once the file handle exists in Synapse, so recovery does not upload twice. */
  fileHandleId?: string;
  /**
   * The spool file holds every byte (false for a streamed file, whose bytes are on S3): what a
   * mount shows until recover (kept-files.ts). Absent in entries written before session 16.
   */
  inSpool?: boolean;
  /**
   * Why these bytes may be incomplete: the file was still open for writing when the mount
   * stopped (filesystem.ts drain), so it was never published; `recover` calls it a conflict
   * (`--force` publishes it).
   */
  incomplete?: string;
  /**
   * Written while its file was still open in that process (write-handle.ts journal: a failed
   * fsync or close of one of several fds): the mount still writes that spool file and publishes
   * it at the file's last close, so recover and --discard leave the entry alone while the process
   * lives (review: recover published the bytes and removed the spool file under an open fd, and
   * the program's later writes were lost). Cleared at the last close (releaseHeld).
   */
  heldOpen?: PublishingProcess;
  /**
   * The Synapse whose entities the entry names (set by writeJournal when the spool knows it;
   * absent before session 24): ids are unique within one Synapse only, so a mount or recover of
   * another leaves the entry alone (sameSynapse).
   */
  endpoint?: string;
  /**
   * A write-ahead entry (write-handle.ts publish): this process is publishing the file right now.
   * While it lives, the entry is not one (readJournal leaves it out: recover must not publish it
   * too); once it is gone (crashed), the entry waits for recover like any other.
   */
  publishing?: PublishingProcess;
  /**
   * A streamed file (write-handle.ts): its bytes are this complete S3 object, not the spool
   * file; recovery registers it as an external handle instead of uploading.
   */
  s3Object?: { bucket: string; key: string; storageLocationId: number };
  /**
   * A streamed file whose multipart upload S3 left incomplete: the parts it holds, and the
   * refused ones, whose bytes are in the spool file at their offsets. Recovery sends those,
   * completes the upload and registers the object.
   */
  s3Upload?: {
    bucket: string; key: string; storageLocationId: number; uploadId: string;
    parts: Array<{ partNumber: number; etag: string }>;
    missing: Array<{ partNumber: number; offset: number; length: number }>;
  };
}

/**
 * An S3 upload in progress, recorded so one orphaned by a crash can be aborted — and, from the
 * moment its completion is asked for (`completing`; a single PutObject's record is that from
 * the start), the object it makes, until that object is referenced: a crash before then would
 * leave a billed object nothing names. The record goes when the object gets a file handle or a
 * journal entry names it, always before any entity can refer to it (a record that cannot be
 * removed fails the publish), so the orphan sweep may delete the object of a record a dead
 * process left — in the same boot only: a power cut can bring back a record whose removal had
 * not reached the disk (`bootId`).
 */
export interface UploadRecord {
  uploadId: string;
  bucket: string;
  key: string;
  storageLocationId: number;
  /** An entity in the location's folder, to ask Synapse for STS credentials. */
  parentId: string;
  startedAt: string;
  pid: number;
  /** The host and pid namespace of `pid` (OWNER_TAG; set by recordUpload): another's pids mean nothing here. */
  owner?: string;
  /** CompleteMultipartUpload was (or is being) sent: S3 may hold the object, which nothing names yet. */
  completing?: boolean;
  /** The boot the record was written in (set by recordUpload). */
  bootId?: string;
  /** The Synapse whose storage location it is (set by recordUpload when the spool knows it). */
  endpoint?: string;
}

/** Who is publishing (JournalEntry.publishing): the process, and when it started (pids are reused). */
export interface PublishingProcess {
  pid: number;
  processStart: number;
}

/** Asked of a full disk's cache at least (SpoolFile.write): a write that needs room will need more. */
const MAKE_ROOM_MIN = 16 * 1024 * 1024;

/** Beside a spool file: its bytes must stay (Spool.markKept). */
const KEEP_SUFFIX = '.keep';

/** When this process started (ms since the epoch), to tell it from an earlier one with its pid. */
const PROCESS_START = Math.round(Date.now() - process.uptime() * 1000);

/**
 * This host and pid namespace, in spool file names: a spool directory on a shared disk (an NFS
 * home, a volume two containers mount) holds files of processes whose pids mean nothing here,
 * and the sweep must leave them alone (review).
 */
const OWNER_TAG = ((): string => {
  let pidNamespace = '';
  try {
    pidNamespace = readlinkSync('/proc/self/ns/pid');
  } catch { /* not Linux: the host alone */ }
  return createHash('sha1').update(`${hostname()}\0${pidNamespace}`).digest('hex').slice(0, 8);
})();

/** This host and pid namespace, as spool files and upload records name them. */
export function spoolOwner(): string {
  return OWNER_TAG;
}

/** This boot of the host ('' where Linux does not say). */
const BOOT_ID = ((): string => {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
})();

/** Upload records written since the host last booted carry this (UploadRecord.bootId). */
export function currentBootId(): string {
  return BOOT_ID;
}

/** Was `rec` written by this very process (not by a predecessor that had its pid)? */
export function recordedByThisProcess(rec: { pid: number; startedAt: string }): boolean {
  return rec.pid === process.pid && Date.parse(rec.startedAt) >= PROCESS_START - 1;
}

export function publishingNow(): PublishingProcess {
  return { pid: process.pid, processStart: PROCESS_START };
}

/** What names a file this process writes (spool files, upload records' temp files): host/pid namespace, pid, start. */
const OWNED_BY_THIS_PROCESS = `${OWNER_TAG}.${process.pid}-${PROCESS_START}`;

/**
 * Who wrote the file `name` (`<stem>.<owner>.<pid>-<start>`, OWNED_BY_THIS_PROCESS), its stem
 * matching `stem`: undefined when the name says nothing (older releases, foreign files).
 */
function ownerOf(name: string, stem: RegExp): 'ours, gone' | 'ours, live' | 'another host' | undefined {
  const m = /^(.*)\.([0-9a-f]{8})\.(\d+)-(\d+)$/.exec(name);
  if (!m || !stem.test(m[1]!)) return undefined;
  if (m[2] !== OWNER_TAG) return 'another host';
  return stillPublishing({ pid: Number(m[3]), processStart: Number(m[4]) }) ? 'ours, live' : 'ours, gone';
}

/** JournalEntry.incomplete of an O_SYNC descriptor's entry (write-handle.ts journalSynced). */
export const SYNCED_OPEN = 'still open for writing (O_SYNC) when the mount stopped';

/**
 * An O_SYNC descriptor's entry whose file this very process still has open: its bytes made
 * durable, not waiting for recover — the file's close publishes it (status leaves it out).
 */
export function syncedOpenHere(e: JournalEntry): boolean {
  return e.incomplete === SYNCED_OPEN && e.heldOpen?.pid === process.pid && heldOpenBy(e) !== undefined;
}

/** The live process that still has the entry's file open (JournalEntry.heldOpen), if any. */
export function heldOpenBy(e: JournalEntry): PublishingProcess | undefined {
  return e.heldOpen && stillPublishing(e.heldOpen) ? e.heldOpen : undefined;
}

/** Is `p` a live process's publish? This one's only if it is this very process (not a predecessor with its pid). */
function stillPublishing(p: PublishingProcess): boolean {
  if (p.pid === process.pid) return p.processStart === PROCESS_START;
  return sameProcessAlive(p.pid, p.processStart);
}

/**
 * Do two endpoints name the same Synapse? An entry or record without one (written before
 * session 24), or a spool that was not told its own, matches any.
 */
export function sameSynapse(a: string | undefined, b: string | undefined): boolean {
  return a === undefined || b === undefined || synapseScope(a) === synapseScope(b);
}

export class Spool {
  /**
   * @param opts.endpoint the Synapse this spool's user talks to: stamped on entries and records written through it.
   * @param opts.makeRoom asked to free `bytes` when a spool write finds the disk full (a disk cache
   *        on the same file system: DiskCache.yieldSpace); true if it did, and the write is tried once more.
   */
  constructor(readonly dir: string, private readonly opts: { endpoint?: string; makeRoom?: (bytes: number) => Promise<boolean> } = {}) {}

  get endpoint(): string | undefined {
    return this.opts.endpoint;
  }

  /** Is this entry or record one of this spool's Synapse (sameSynapse)? */
  ours(e: { endpoint?: string }): boolean {
    return sameSynapse(e.endpoint, this.opts.endpoint);
  }

  private get filesDir(): string {
    return path.join(this.dir, 'files');
  }

  get journalDir(): string {
    return path.join(this.dir, 'journal');
  }

  private get uploadsDir(): string {
    return path.join(this.dir, 'uploads');
  }

  async init(): Promise<void> {
    await makeDirs(this.filesDir);
    await makeDirs(this.journalDir);
    await makeDirs(this.uploadsDir);
  }

  private uploadFile(uploadId: string): string {
    return path.join(this.uploadsDir, `${createHash('sha1').update(uploadId).digest('hex')}.json`);
  }

  /** Written beside and renamed into place: a record is rewritten (`completing`), and a torn one would be skipped for good. */
  async recordUpload(rec: UploadRecord): Promise<void> {
    const file = this.uploadFile(rec.uploadId);
    // Owned as spool files are: one a crash left between write and rename is swept (below).
    const tmp = `${file}.${OWNED_BY_THIS_PROCESS}.tmp`;
    const endpoint = rec.endpoint ?? this.opts.endpoint;
    await writeFile(tmp, JSON.stringify({ ...rec, owner: OWNER_TAG, bootId: BOOT_ID, ...(endpoint ? { endpoint } : {}) }), { mode: 0o600 });
    await rename(tmp, file);
  }

  /**
   * Upload records and journal entries a process died writing (between the write and its
   * rename): never read, and nothing else names them. Another host's and live processes' stay;
   * so do unowned ones (older releases named them by pid alone — tiny; left for the user).
   */
  async sweepStrayRecords(): Promise<number> {
    let removed = 0;
    for (const dir of [this.uploadsDir, this.journalDir]) {
      for (const n of await readdir(dir).catch(() => [] as string[])) {
        if (!n.endsWith('.tmp') || ownerOf(n.slice(0, -'.tmp'.length), /\.json$/) !== 'ours, gone') continue;
        await rm(path.join(dir, n), { force: true });
        removed++;
      }
    }
    return removed;
  }

  async removeUpload(uploadId: string): Promise<void> {
    await rm(this.uploadFile(uploadId), { force: true });
  }

  /** Remove every record of uploads into this object (before a file that refers to it is published). */
  async removeUploadsOf(object: { bucket: string; key: string }): Promise<void> {
    for (const rec of await this.listUploads()) {
      if (rec.bucket === object.bucket && rec.key === object.key) await this.removeUpload(rec.uploadId);
    }
  }

  async listUploads(): Promise<UploadRecord[]> {
    const names = await readdir(this.uploadsDir).catch(() => [] as string[]);
    const out: UploadRecord[] = [];
    for (const n of names.filter((x) => x.endsWith('.json'))) {
      try {
        out.push(JSON.parse(await readFile(path.join(this.uploadsDir, n), 'utf8')) as UploadRecord);
      } catch { /* ignore a torn record */ }
    }
    return out;
  }

  async create(): Promise<SpoolFile> {
    const id = randomUUID();
    // The owner in the name: a file left by a mount that died (kill -9, OOM) is found and
    // removed by the next mount's sweepOrphanedFiles.
    const file = path.join(this.filesDir, `${id}.${OWNED_BY_THIS_PROCESS}`);
    const fh = await open(file, 'w+', 0o600);
    return new SpoolFile(id, file, fh, this.opts.makeRoom);
  }

  /**
   * Durable before it counts: the spool file's bytes, then the entry (written beside, fsynced,
   * renamed into place), then the directory. Without the fsyncs a power cut could leave an empty
   * entry — or one naming bytes that never reached the disk — after close() had reported the
   * failure as journaled (QA).
   */
  async writeJournal(given: JournalEntry, opts: { durable?: boolean } = {}): Promise<string> {
    const endpoint = given.endpoint ?? this.opts.endpoint;
    const entry: JournalEntry = endpoint ? { ...given, endpoint } : given;
    // Not durable: a write-ahead entry, which only a crash of this process must survive (the
    // page cache does), written for every publish — an fsync of the whole spool file each time
    // would cost as much as the upload.
    const durable = opts.durable ?? true;
    const file = this.journalFile(entry.id);
    // One temp name per process: the mount and `recover` may rewrite one entry at once (review).
    const tmp = `${file}.${OWNED_BY_THIS_PROCESS}.tmp`;
    // A stream's entry may have no spool file; any other failure means its bytes may not be on disk.
    if (durable) {
      const spooled = await syncFile(entry.spoolFile).then(() => true, (err: unknown) => {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        return false;
      });
      // Its name in files/ too: a power cut could otherwise keep the entry and lose the file.
      if (spooled) await syncDir(path.dirname(entry.spoolFile));
    }
    const fh = await open(tmp, 'w', 0o600);
    try {
      try {
        await fh.writeFile(JSON.stringify(entry, null, 2));
        if (durable) await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined); // a disk full: no empty temp left behind (QA)
      throw err;
    }
    if (durable) await syncDir(this.journalDir);
    return file;
  }

  /**
   * The journal's entries, and the names of those that cannot be read (torn by a crash before
   * the fsyncs above, or edited by hand) — never dropped silently: recover reports them.
   */
  async readJournal(opts: { strict?: boolean } = {}): Promise<{ entries: JournalEntry[]; unreadable: Array<{ file: string; error: string }> }> {
    // `strict`: a journal directory that cannot be listed is an error, not an empty journal.
    const names = opts.strict ? await readdir(this.journalDir) : await readdir(this.journalDir).catch(() => [] as string[]);
    const entries: JournalEntry[] = [];
    const unreadable: Array<{ file: string; error: string }> = [];
    for (const n of names.filter((x) => x.endsWith('.json')).sort()) {
      const file = path.join(this.journalDir, n);
      try {
        const entry = JSON.parse(await readFile(file, 'utf8')) as JournalEntry;
        if (!entry || typeof entry.id !== 'string' || typeof entry.spoolFile !== 'string') throw new Error('not a journal entry');
        if (entry.publishing && stillPublishing(entry.publishing)) continue;
        entries.push(entry);
      } catch (err) {
        unreadable.push({ file, error: (err as Error).message });
      }
    }
    return { entries, unreadable };
  }

  /** The readable entries (readJournal names the others). */
  async listJournal(): Promise<JournalEntry[]> {
    return (await this.readJournal()).entries;
  }

  /** Delete a spool file that belongs to this spool (never anything outside it). */
  async removeSpoolFile(file: string): Promise<void> {
    if (path.dirname(path.resolve(file)) !== path.resolve(this.filesDir)) return;
    await rm(file, { force: true });
    await rm(`${file}${KEEP_SUFFIX}`, { force: true });
  }

  /**
   * Spool files kept by markKept that no journal entry names (a publish failed and its entry
   * could not be written, the disk full): only a log line said where they were (QA: invisible
   * afterwards to the mount, recover and status). Each with its size; the caller names them.
   */
  async listKept(): Promise<Array<{ file: string; size: number }>> {
    const names = await readdir(this.filesDir).catch(() => [] as string[]);
    const named = new Set((await this.readJournal()).entries.map((e) => path.basename(e.spoolFile)));
    const out: Array<{ file: string; size: number }> = [];
    for (const n of names) {
      if (!n.endsWith(KEEP_SUFFIX)) continue;
      const base = n.slice(0, -KEEP_SUFFIX.length);
      if (named.has(base)) continue;
      const st = await stat(path.join(this.filesDir, base)).catch(() => undefined);
      if (st?.isFile()) out.push({ file: path.join(this.filesDir, base), size: st.size });
    }
    return out;
  }

  /**
   * Bytes the user was told are in `file` (a failed publish whose journal entry could not be
   * written): never swept, whatever becomes of this process. Best effort — the disk may be full.
   */
  async markKept(file: string): Promise<void> {
    if (path.dirname(path.resolve(file)) !== path.resolve(this.filesDir)) return;
    await writeFile(`${file}${KEEP_SUFFIX}`, '', { mode: 0o600 }).catch(() => undefined);
  }

  /**
   * Spool files a mount that died (kill -9, the OOM killer, a power cut) left being written:
   * no journal entry names them, their process is gone, and the programs writing them were
   * told (their writes and close failed once the mount was gone) — so they go. Files of a live
   * process, named by an entry, or marked kept stay; so does everything while any journal
   * entry is unreadable or the journal cannot be listed (it might name one), files of another
   * host or pid namespace (OWNER_TAG), and files from before owners were named
   * (`unowned`: counted, left for the user).
   */
  async sweepOrphanedFiles(): Promise<{ removed: number; bytes: number; unowned: number }> {
    const { entries, unreadable } = await this.readJournal({ strict: true });
    const out = { removed: 0, bytes: 0, unowned: 0 };
    if (unreadable.length > 0) return out;
    // Entries of live publishers are left out of readJournal: their files are live (owner check).
    const named = new Set(entries.map((e) => path.basename(e.spoolFile)));
    const names = await readdir(this.filesDir).catch(() => [] as string[]);
    const present = new Set(names);
    const candidates: string[] = [];
    for (const n of names) {
      if (n.endsWith(KEEP_SUFFIX) || named.has(n) || present.has(`${n}${KEEP_SUFFIX}`)) continue;
      const owner = ownerOf(n, /^[0-9a-f-]{36}$/);
      if (owner === undefined) out.unowned++;
      // Another host's or container's is not ours to judge; a live process's is in use.
      else if (owner === 'ours, gone') candidates.push(n);
    }
    if (candidates.length === 0) return out;
    // Read again: a process that journaled a file and died since the first read owns an entry now.
    const again = await this.readJournal({ strict: true });
    if (again.unreadable.length > 0) return out;
    for (const e of again.entries) named.add(path.basename(e.spoolFile));
    for (const n of candidates.filter((x) => !named.has(x))) {
      const file = path.join(this.filesDir, n);
      const size = await stat(file).then((st) => st.size, () => 0);
      await rm(file, { force: true });
      out.removed++;
      out.bytes += size;
    }
    return out;
  }

  /** Where entry `id` is kept (gone once recover published or discarded it). */
  journalFile(id: string): string {
    return path.join(this.journalDir, `${id}.json`);
  }

  /** Is entry `id` still in the journal? (A running mount removes an entry it published or discarded.) */
  async hasJournal(id: string): Promise<boolean> {
    return stat(this.journalFile(id)).then(() => true, (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    });
  }

  async removeJournal(id: string): Promise<void> {
    await rm(this.journalFile(id), { force: true });
  }

  /** The entry's file was closed for the last time: it is recover's now (JournalEntry.heldOpen). */
  async releaseHeld(id: string): Promise<void> {
    const file = this.journalFile(id);
    const entry = JSON.parse(await readFile(file, 'utf8')) as JournalEntry;
    if (!entry.heldOpen) return;
    delete entry.heldOpen;
    // Removed meanwhile (the file's rm): not brought back (review).
    if (!(await this.hasJournal(id))) return;
    await this.writeJournal(entry);
  }
}

export class SpoolFile {
  private hash: Hash | undefined = createHash('md5');
  private hashedUpTo = 0;
  size = 0;
  private closed = false;
  /** Writes and truncates so far: a read-back MD5 stays good while this has not moved. */
  private changes = 0;
  private readBack: { changes: number; hex: string } | undefined;

  constructor(readonly id: string, readonly file: string, private readonly fh: FileHandle,
    private readonly makeRoom?: (bytes: number) => Promise<boolean>) {}

  async write(data: Buffer, position: number): Promise<void> {
    // Counted when it starts and when it has landed: a read-back in between saw neither for sure.
    this.changes++;
    try {
      await this.writeAll(data, position);
    } finally {
      this.changes++;
    }
  }

  private async writeAll(data: Buffer, position: number): Promise<void> {
    let off = 0;
    let askedForRoom = false;
    while (off < data.length) {
      try {
        const { bytesWritten } = await this.fh.write(data, off, data.length - off, position + off);
        off += bytesWritten;
      } catch (err) {
        const full = (err as NodeJS.ErrnoException).code === 'ENOSPC' || (err as NodeJS.ErrnoException).code === 'EDQUOT';
        // A cache sharing the disk gives way, once per write (Spool opts.makeRoom).
        if (!full || askedForRoom || !this.makeRoom || !(await this.makeRoom(Math.max(data.length - off, MAKE_ROOM_MIN)).catch(() => false))) throw err;
        askedForRoom = true;
      }
    }
    if (this.hash && position === this.hashedUpTo && position === this.size) {
      this.hash.update(data);
      this.hashedUpTo += data.length;
    } else {
      this.hash = undefined;
    }
    this.size = Math.max(this.size, position + data.length);
  }

  async read(position: number, length: number): Promise<Buffer> {
    const len = Math.max(0, Math.min(length, this.size - position));
    const buf = Buffer.allocUnsafe(len);
    let got = 0;
    while (got < len) {
      const { bytesRead } = await this.fh.read(buf, got, len - got, position + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  }

  async truncate(size: number): Promise<void> {
    this.changes++;
    try {
      await this.fh.truncate(size);
    } finally {
      this.changes++;
    }
    if (size === 0) {
      this.hash = createHash('md5');
      this.hashedUpTo = 0;
    } else if (size !== this.size) {
      this.hash = undefined;
    }
    this.size = size;
  }

  /**
   * MD5 hex of the current content (incremental when possible, else read back — once per
   * content: a held temporary file written out of order was read back for its journal entry,
   * then again for its publish).
   */
  async md5(): Promise<string> {
    if (this.hash && this.hashedUpTo === this.size) return this.hash.copy().digest('hex');
    if (this.readBack?.changes === this.changes) return this.readBack.hex;
    const changes = this.changes;
    const hex = (await sizeAndMd5Of(this.file, this.size)).md5;
    // Keyed by the count at the start: a write during the read-back has moved it on already.
    this.readBack = { changes, hex };
    return hex;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close();
  }

  async remove(): Promise<void> {
    await this.close();
    await rm(this.file, { force: true });
    await rm(`${this.file}${KEEP_SUFFIX}`, { force: true }); // a later publish succeeded (review: the marker stayed)
  }
}

/**
 * A file's size and MD5 hex as it is now: read whole, or its first `limit` bytes (SpoolFile.md5's
 * read-back, and recover checking a spool file against its entry).
 */
export async function sizeAndMd5Of(file: string, limit?: number): Promise<{ size: number; md5: string }> {
  const h = createHash('md5');
  let size = 0;
  if (limit === 0) return { size, md5: h.digest('hex') };
  await new Promise<void>((resolve, reject) => {
    createReadStream(file, { highWaterMark: 1 << 20, ...(limit !== undefined ? { start: 0, end: limit - 1 } : {}) })
      .on('data', (c) => { h.update(c as Buffer); size += c.length; })
      .on('end', () => resolve())
      .on('error', reject);
  });
  return { size, md5: h.digest('hex') };
}

/**
 * fsync a directory, so the names made or renamed in it survive a power cut. A failure is the
 * caller's (the entry is not durable), except where the file system cannot sync a directory.
 */
async function syncDir(p: string): Promise<void> {
  await syncFile(p).catch((err: unknown) => {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP') throw err;
  });
}

/** fsync a file or directory by path. */
async function syncFile(p: string): Promise<void> {
  const fh = await open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
