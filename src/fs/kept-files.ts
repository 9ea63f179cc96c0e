/**
 * Files waiting for `recover`, as the mount shows them.
 *
 * A file whose publish failed is journaled (spool.ts) after its last close. Until `recover`
 * runs, its path shows the bytes kept in the spool — size and content as written — not the
 * version Synapse still has, nor an empty file. What the user then does to the path is
 * what happens to the entry:
 *  - opened for writing: the new content starts as the kept bytes (filesystem.ts writeKept: an
 *    append or an edit in place builds on what the kernel was shown; O_TRUNC drops them), and
 *    once it is published the entry is dropped — its bytes are in Synapse, or were replaced
 *    (openedOver → superseded; followRename; closed unchanged, it shows again: closed);
 *  - removed, or replaced by a rename onto it: the entry and its bytes are dropped, as the user
 *    asked (QA: rsync's temporary file, removed after its failed close, came back at recover);
 *  - renamed: the entry follows, so recover publishes under the new name.
 * `recover` removing the entry (published or discarded) ends the view, and the folder is listed
 * afresh; so does a newer version of the file published by someone else (theirs shows; recover
 * will call it a conflict). Keyed by folder id and name, so a view follows its folder's moves;
 * a mount starts with one per entry of its spool's journal (the newest per name shows; older
 * entries of the same file go wherever it goes — `older`). A stream
 * journaled by its S3 object, file handle or open upload has no whole copy in the spool: it is
 * tracked (for removal and renames of the published file it is a version of) but not shown; a
 * new file of that kind is not listed at all (`recover --list` names it).
 */
import { access, readFile, stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { FsNode, InodeTable } from './inode-table.js';
import type { JournalEntry, Spool } from './spool.js';
import type { ActiveFile } from './write-handle.js';

export interface KeptFile {
  parentId: string;
  name: string;
  /** The entity the bytes are a new version of ('' for a new file): another file under that name is not it. */
  entityId: string;
  journalId: string;
  spoolFile: string;
  md5: string;
  /** The spool file holds the whole content, so the file is shown (see the module head). */
  whole: boolean;
  /** The version of `entityId` the bytes were written over. */
  baseVersion?: number;
  size: number;
  mtime: number;
  /**
   * Earlier entries of the same file under this name (saved again before recover ran): removed
   * and renamed with it — `rm` once left them for recover to bring back. Not dropped when this
   * one is published: their bytes may differ (built on another version), recover judges them.
   */
  older?: Array<{ journalId: string; spoolFile: string }>;
  /**
   * Why the bytes may be incomplete (a SQLite database closed mid-transaction, a file still open
   * when the mount stopped): JournalEntry.incomplete. Shown as any kept file; filesystem.ts
   * refuses to write a SQLite database held back mid-transaction once its journal is gone.
   */
  incomplete?: string;
}

const keyOf = (parentId: string | undefined, name: string): string => `${parentId ?? ''}/${name}`;

/** What lastClosed knows of a file whose last fd closed (KeptFiles.closed). */
export interface ClosedFile {
  parentId: string;
  name: string;
  entityId: string | undefined;
  mtime: number;
  /** Its journal entry, if its publish failed. */
  entry: Pick<KeptFile, 'journalId' | 'spoolFile' | 'md5' | 'whole' | 'size' | 'baseVersion' | 'incomplete'> | undefined;
  /** Unlinked, or replaced by a rename onto it: its name is not its own. */
  unlinked: boolean;
  /** Another file is open for writing under its path already. */
  replaced: boolean;
}

export class KeptFiles {
  private readonly byName = new Map<string, KeptFile>();
  /** Files open for writing that started from a kept file (openedOver): the entry they replace once published. */
  private readonly startedFrom = new WeakMap<ActiveFile, KeptFile>();

  constructor(private readonly spool: Spool, private readonly table: InodeTable, private readonly logger?: Logger) {}

  /** Anything kept under this folder and name (sync: getattr's fast path defers to shown()). */
  has(parentId: string | undefined, name: string): boolean {
    return this.byName.size > 0 && this.byName.has(keyOf(parentId, name));
  }

  add(file: KeptFile): void {
    const key = keyOf(file.parentId, file.name);
    const prev = this.byName.get(key);
    if (prev && prev.journalId !== file.journalId && prev.entityId === file.entityId) {
      const older = [...(file.older ?? []), ...(prev.older ?? []), { journalId: prev.journalId, spoolFile: prev.spoolFile }];
      file = { ...file, older: older.filter((o, i) => o.journalId !== file.journalId && older.findIndex((x) => x.journalId === o.journalId) === i) };
    }
    this.byName.set(key, file);
  }

  /** At mount: every entry of the spool's journal; a new file's name is listed again. Returns how many. */
  async loadJournal(): Promise<number> {
    // Oldest first: of two saves of one file, the later one shows (as recover publishes it last).
    const journal = await this.spool.readJournal();
    for (const u of journal.unreadable) this.logger?.error(u, 'a journal entry cannot be read; `synapse-mount recover --list` names it');
    // Another Synapse's entries name its ids, which mean other folders here (sameSynapse).
    const entries = journal.entries.filter((e) => this.spool.ours(e)).sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    for (const e of entries) {
      const whole = (e.inSpool ?? (!e.s3Object && !e.s3Upload)) && (await stat(e.spoolFile).then((st) => st.size, () => -1)) === e.size;
      const mtime = e.mtime ?? (Date.parse(e.createdAt) || Date.now());
      this.add({
        parentId: e.parentId, name: e.name, entityId: e.entityId ?? '', journalId: e.id, spoolFile: e.spoolFile, md5: e.md5, whole, size: e.size, mtime,
        ...(e.baseVersion !== undefined ? { baseVersion: e.baseVersion } : {}),
        ...(e.incomplete ? { incomplete: e.incomplete } : {}),
      });
      if (!e.entityId && whole) this.table.addLocal({ entityId: '', name: e.name, kind: 'file', parentId: e.parentId, versionNumber: undefined, modifiedOn: mtime, createdOn: mtime });
    }
    return entries.length;
  }

  /**
   * The kept file `node` shows: its bytes are whole in the spool, its entry still waits, and no
   * one has published a newer version of the file since.
   */
  async shown(node: FsNode): Promise<KeptFile | undefined> {
    const kept = await this.waiting(node);
    if (!kept?.whole) return undefined;
    if (kept.baseVersion !== undefined && node.versionNumber !== undefined && node.versionNumber !== kept.baseVersion) return undefined;
    return kept;
  }

  /**
   * The kept file of entry `journalId` under `node`'s name while its entry waits and its bytes
   * are whole — shown or not (a newer version of the file hides it: shown()).
   */
  async stillKept(node: FsNode, journalId: string): Promise<KeptFile | undefined> {
    const kept = await this.waiting(node);
    return kept?.whole && kept.journalId === journalId ? kept : undefined;
  }

  /**
   * `file` (an open-for-write file) starts from the kept bytes of `view`: the path shows the file
   * from now on; the entry stays until `file` is published (superseded) or closed unchanged.
   */
  openedOver(file: ActiveFile, view: KeptFile): void {
    this.byName.delete(keyOf(view.parentId, view.name));
    this.startedFrom.set(file, view);
  }

  /**
   * `file` was published, journaled anew (`newerJournalId`), removed or replaced: the entry it
   * started from is no longer needed. Not when its newer entry was never written (ENOSPC in the
   * spool…): then the old one is all there is.
   */
  async superseded(file: ActiveFile, newerJournalId: string | undefined, why: string): Promise<void> {
    const view = this.startedFrom.get(file);
    if (!view) return;
    if (newerJournalId && !(await access(this.spool.journalFile(newerJournalId)).then(() => true, () => false))) return;
    this.startedFrom.delete(file);
    await this.dropEntry(view, why);
  }

  /** `file`, open over a kept file, was renamed: the entry it started from follows. */
  async followRename(file: ActiveFile, parentId: string, name: string): Promise<void> {
    const view = this.startedFrom.get(file);
    if (view) this.startedFrom.set(file, await this.renamed(view, parentId, name));
  }

  /**
   * The last fd of a file open for writing closed: a journal entry it left shows; if it was
   * opened over a kept file and closed unchanged, that one still waits, and shows again.
   */
  closed(file: ActiveFile, c: ClosedFile): void {
    const view = this.startedFrom.get(file);
    this.startedFrom.delete(file);
    if (c.unlinked || c.replaced) return;
    if (c.entry) {
      this.add({ parentId: c.parentId, name: c.name, entityId: c.entityId ?? '', ...c.entry, mtime: c.mtime });
      // A new file whose bytes are not whole here is not listed: there is nothing to show (QA:
      // a 0-byte file was, which backups copied and whose read published it empty).
      if (!c.entityId && !c.entry.whole) {
        this.table.remove(c.parentId, c.name);
        this.table.invalidate(c.parentId);
      }
    } else if (view && view.parentId === c.parentId && view.name === c.name) this.add({ ...view, mtime: c.mtime }); // touch of a kept file
  }

  /** `node` was removed, or replaced by a rename onto it: its entry and kept bytes go too. */
  async discard(node: FsNode | undefined, why: string): Promise<void> {
    const kept = node && (await this.waiting(node));
    if (kept) await this.discardKept(kept, why);
  }

  /**
   * `kept` (from waiting) and its older entries go. What shows under its name now may be a
   * newer entry that listed them as older (a held file's failed publish over it): they leave that list.
   */
  async discardKept(kept: KeptFile, why: string): Promise<void> {
    const key = keyOf(kept.parentId, kept.name);
    const gone = new Set([kept.journalId, ...(kept.older ?? []).map((o) => o.journalId)]);
    const now = this.byName.get(key);
    if (now?.journalId === kept.journalId) this.byName.delete(key);
    else if (now?.older) this.byName.set(key, { ...now, older: now.older.filter((o) => !gone.has(o.journalId)) });
    for (const e of [kept, ...(kept.older ?? [])]) await this.removeEntry(e);
    this.logger?.info({ parentId: kept.parentId, name: kept.name, journalId: kept.journalId, older: kept.older?.length ?? 0, why }, 'a file waiting for recover was removed: its journal entries are dropped');
  }

  /** The content of `kept` was published (or replaced) from this mount: its entry and bytes go. */
  async dropEntry(kept: KeptFile, why: string): Promise<void> {
    const key = keyOf(kept.parentId, kept.name);
    if (this.byName.get(key)?.journalId === kept.journalId) this.byName.delete(key);
    await this.removeEntry(kept);
    this.logger?.info({ parentId: kept.parentId, name: kept.name, journalId: kept.journalId, why }, 'a journal entry is no longer needed');
  }

  /** `node` was renamed to `name` in folder `parentId`: its entry follows, so recover publishes it there. */
  async moved(node: FsNode, parentId: string, name: string): Promise<void> {
    const kept = await this.waiting(node);
    if (!kept) return;
    this.byName.delete(keyOf(kept.parentId, kept.name));
    this.add(await this.renamed(kept, parentId, name));
  }

  /**
   * The entry of `kept` now names folder `parentId` and `name` (recover publishes it there);
   * returns the kept file under its new name — or as it was, when the journal could not be
   * rewritten (logged). Its view is the caller's: a file open over it shows itself meanwhile.
   */
  private async renamed(kept: KeptFile, parentId: string, name: string): Promise<KeptFile> {
    // The newest first: if it cannot be renamed, none is (the entries stay together).
    for (const { journalId } of [kept, ...(kept.older ?? [])]) {
      const file = this.spool.journalFile(journalId);
      try {
        const entry = JSON.parse(await readFile(file, 'utf8')) as JournalEntry;
        // Dropped meanwhile (published, or removed): not brought back.
        if (!(await access(file).then(() => true, () => false))) continue;
        await this.spool.writeJournal({ ...entry, parentId, name });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        this.logger?.warn({ err, journal: file }, 'could not rename a journal entry; recover publishes it under its old name');
        if (journalId === kept.journalId) return kept;
      }
    }
    return { ...kept, parentId, name };
  }

  /**
   * utimens on a kept file (`os.utime`; `touch` opens it instead): the time it shows, and the one
   * its journal entry keeps for the next mount and for recover. False if `node` has none waiting.
   */
  async setMtime(node: FsNode, mtime: number): Promise<boolean> {
    const kept = await this.waiting(node);
    if (!kept) return false;
    this.byName.set(keyOf(kept.parentId, kept.name), { ...kept, mtime });
    const file = this.spool.journalFile(kept.journalId);
    try {
      const entry = JSON.parse(await readFile(file, 'utf8')) as JournalEntry;
      // Removed or renamed meanwhile (rm, recover, mv): not brought back, not renamed back (review).
      if (!(await access(file).then(() => true, () => false))) return true;
      const now = this.byName.get(keyOf(kept.parentId, kept.name));
      if (now?.journalId !== kept.journalId) return true;
      await this.spool.writeJournal({ ...entry, mtime });
    } catch (err) {
      this.logger?.warn({ err, journal: file }, 'could not keep a kept file\'s new time in its journal entry; it shows until unmount');
    }
    return true;
  }

  private async removeEntry(e: { journalId: string; spoolFile: string }): Promise<void> {
    await this.spool.removeJournal(e.journalId);
    await this.spool.removeSpoolFile(e.spoolFile);
  }

  /** The kept file under `node`'s name, if it is `node`'s and its journal entry still waits. */
  async waiting(node: FsNode): Promise<KeptFile | undefined> {
    const key = keyOf(node.parentId, node.name);
    const kept = node.kind === 'file' && this.byName.size > 0 ? this.byName.get(key) : undefined;
    // Someone else's file under that name now (recover will call it a conflict): theirs shows.
    if (!kept || kept.entityId !== node.entityId) return undefined;
    try {
      await access(this.spool.journalFile(kept.journalId));
      if (kept.whole) await access(kept.spoolFile);
      return kept;
    } catch {
      // recover published (or discarded) it: the path shows what Synapse has now — listed
      // afresh, not the empty local entry a new file had while it waited.
      if (this.byName.get(key) === kept) {
        this.byName.delete(key);
        this.table.removeLocal(kept.parentId, kept.name);
        this.table.invalidate(kept.parentId);
      }
      return undefined;
    }
  }
}
