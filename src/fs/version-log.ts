/**
 * A small persistent map keyed by (entity id, version), kept as an append-only JSON-lines log:
 * what the mount learns about immutable content and wants to keep across remounts — sizes under
 * `--cache-dir` (disk-cache.ts), mtimes set by utimens in the spool (filesystem.ts).
 *
 * Why (entity, version): a version names immutable content, so an entry never goes stale; a newer
 * version (written anywhere) has another key, so an old entry cannot describe it.
 *
 * Line format: one JSON array per line, `[entityId, version, ...fields, seal]` (the codec's
 * fields); `[entityId, version, seal]` alone forgets the entry (its entity was deleted). The seal,
 * `"#crc32"` of the line's JSON without it, makes a damaged or hand-edited line a skipped one, not
 * a wrong value (QA: a size edited in sizes.jsonl truncated a file's reads). Lines written before
 * seals (no seal) are taken only where the caller says so (`acceptUnsealed`). Ids of any Synapse
 * but synapse.org are written with its host (`scope`, synapse-scope.ts); one log holds all.
 * Several mounts may append to one log at once (O_APPEND, one write per batch of whole lines);
 * a line torn by a crash is skipped when read. The log is rewritten (temp + rename) at open when
 * it holds many more lines than entries or more than the cap; a line another mount appends during
 * that rewrite may be lost, so keep here only what can be learned again or done without.
 */
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { appendFile, open, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { makeDirs } from './make-dirs.js';
import { scopedKey } from './synapse-scope.js';

export interface VersionLogCodec<V> {
  /** The fields after (entity id, version) on a line. */
  encode(v: V): unknown[];
  /** Undefined for fields that do not make a value (skipped like a torn line). */
  decode(fields: unknown[]): V | undefined;
  same(a: V, b: V): boolean;
}

export interface VersionLogOptions {
  /** Entries kept (oldest dropped first); default 500,000. */
  maxEntries?: number;
  /** New entries are appended in batches at most this often (default 1 s). */
  flushMs?: number;
  /** Load only: never create, rewrite or append (a read-only mount). */
  readOnly?: boolean;
  logger?: Logger;
  /** Awaited between writing a rewrite and carrying over what others appended meanwhile (tests: another mount's append). */
  beforeCarryOver?: () => Promise<void>;
  /** Take lines without a seal (written by versions before seals); default: skip them. */
  acceptUnsealed?: boolean;
  /** Which Synapse this mount's ids belong to (synapse-scope.ts); lines of others are kept, unseen. */
  scope?: string;
}

const SEAL = /^#[0-9a-f]{8}$/;

/** The seal of a line's array (its last element when written). */
function sealOf(fields: unknown[]): string {
  return `#${crc32(JSON.stringify(fields)).toString(16).padStart(8, '0')}`;
}

/** A sealed line's array without its seal; 'unsealed' (written before seals), or 'damaged' (the seal does not match). */
function unseal(v: unknown[]): unknown[] | 'unsealed' | 'damaged' {
  const last = v[v.length - 1];
  if (typeof last !== 'string' || !SEAL.test(last)) return 'unsealed';
  const fields = v.slice(0, -1);
  return sealOf(fields) === last ? fields : 'damaged';
}

export class VersionLog<V> {
  private readonly map = new Map<string, V>();
  /** Lines not yet appended, by key: a key set again before the flush is one line. */
  private readonly pending = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private readonly maxEntries: number;
  /** Lines the last load skipped: a seal that does not match, or none (unless accepted). */
  private skipped = { damaged: 0, unsealed: 0 };

  private constructor(readonly file: string, private readonly codec: VersionLogCodec<V>, private readonly opts: VersionLogOptions) {
    this.maxEntries = opts.maxEntries ?? 500_000;
  }

  static async open<V>(file: string, codec: VersionLogCodec<V>, opts: VersionLogOptions = {}): Promise<VersionLog<V>> {
    const log = new VersionLog(path.resolve(file), codec, opts);
    if (!opts.readOnly) {
      await makeDirs(path.dirname(log.file));
      // Writable now, or the caller hears it now: not as every later append failing quietly.
      await appendFile(log.file, '', { mode: 0o600 });
    }
    await log.load();
    return log;
  }

  get count(): number {
    return this.map.size;
  }

  get(entityId: string, versionNumber: number): V | undefined {
    return this.map.get(this.key(entityId, versionNumber));
  }

  private key(entityId: string, versionNumber: number): string {
    return `${scopedKey(entityId, this.opts.scope)}.${versionNumber}`;
  }

  set(entityId: string, versionNumber: number, value: V): void {
    const key = this.key(entityId, versionNumber);
    const known = this.map.get(key);
    if (known !== undefined && this.codec.same(known, value)) return;
    this.map.delete(key); // re-insert: Map order is age order for the cap
    if (this.map.size >= this.maxEntries) this.map.delete(this.map.keys().next().value as string);
    this.map.set(key, value);
    if (this.opts.readOnly) return;
    this.pending.delete(key);
    this.pending.set(key, this.line(key, value));
    this.schedule();
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => { this.timer = undefined; void this.flush(); }, this.opts.flushMs ?? 1000);
    this.timer.unref();
  }

  /** Forget an entry (its entity is gone): a tombstone line, `[entityId, version]`. */
  delete(entityId: string, versionNumber: number): void {
    const key = this.key(entityId, versionNumber);
    if (!this.map.delete(key)) return;
    if (this.opts.readOnly) return;
    this.pending.delete(key);
    this.pending.set(key, sealedLine([scopedKey(entityId, this.opts.scope), versionNumber]));
    this.schedule();
  }

  /** Append what is pending (one write of whole lines); never rejects (a failed append is logged). */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return this.writing;
    const body = [...this.pending.values()].join('');
    this.pending.clear();
    this.writing = this.writing.then(() => appendFile(this.file, body, { mode: 0o600 })).catch((err: unknown) => {
      this.opts.logger?.debug({ err, file: this.file }, 'could not append to a version log');
    });
    return this.writing;
  }

  private async load(): Promise<void> {
    const read = await readWithInode(this.file);
    if (!read) return;
    this.skipped = { damaged: 0, unsealed: 0 };
    const lines = this.apply(read.bytes.toString('utf8'));
    const { damaged, unsealed } = this.skipped;
    if (damaged > 0) {
      this.opts.logger?.warn({ file: this.file, lines: damaged }, 'version log: damaged or edited lines skipped (their entries are asked for again)');
    }
    // A log an older synapse-mount wrote (no seals): read as empty, once — the rewrite drops it.
    if (unsealed > 0) this.opts.logger?.debug({ file: this.file, lines: unsealed }, 'version log: lines without a seal (an older synapse-mount\'s) skipped');
    while (this.map.size > this.maxEntries) this.map.delete(this.map.keys().next().value as string);
    if (!this.opts.readOnly && (lines > 2 * this.map.size + 1000 || damaged + unsealed > 0)) await this.compact(read);
  }

  /** Take in a log's lines (the last of a key wins); returns how many there were. */
  private apply(text: string): number {
    let lines = 0;
    for (const line of text.split('\n')) {
      if (!line) continue;
      lines++;
      try {
        const parsed = JSON.parse(line) as unknown;
        if (!Array.isArray(parsed)) continue;
        const opened = unseal(parsed);
        if (opened === 'damaged' || (opened === 'unsealed' && this.opts.acceptUnsealed !== true)) {
          this.skipped[opened]++;
          continue;
        }
        const v = opened === 'unsealed' ? parsed : opened;
        if (typeof v[0] !== 'string' || !Number.isInteger(v[1])) continue;
        const key = `${v[0]}.${v[1] as number}`;
        if (v.length === 2) { // a tombstone (delete)
          this.map.delete(key);
          continue;
        }
        const value = this.codec.decode(v.slice(2));
        if (value === undefined) continue;
        this.map.delete(key); // the last line of a key wins, and counts as its age
        this.map.set(key, value);
      } catch { /* a torn line */ }
    }
    return lines;
  }

  /**
   * Rewrite the log as one line per entry. Lines other mounts appended since it was read
   * (`was`) are carried over just before the rename; one appended in between those two
   * steps (microseconds) is lost.
   */
  private async compact(was: { bytes: Buffer; ino: number }): Promise<void> {
    const tmp = `${this.file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const body = [...this.map].map(([k, v]) => this.line(k, v)).join('');
    try {
      await writeFile(tmp, body, { mode: 0o600 });
      await this.opts.beforeCarryOver?.();
      const now = await readWithInode(this.file);
      // The same file, grown (another mount's rewrite would be another inode: nothing to carry).
      // From the end of the last whole line read: a line being appended then was skipped as torn.
      const from = was.bytes.lastIndexOf(0x0a) + 1;
      if (now && now.ino === was.ino && now.bytes.length > from) {
        const tail = now.bytes.subarray(from);
        const whole = tail.subarray(0, tail.lastIndexOf(0x0a) + 1); // a line still being written is left out
        this.apply(whole.toString('utf8'));
        while (this.map.size > this.maxEntries) this.map.delete(this.map.keys().next().value as string);
        await appendFile(tmp, whole);
      }
      await rename(tmp, this.file);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      this.opts.logger?.debug({ err, file: this.file }, 'version log compaction failed');
    }
  }

  private line(key: string, v: V): string {
    const dot = key.lastIndexOf('.');
    return sealedLine([key.slice(0, dot), Number(key.slice(dot + 1)), ...this.codec.encode(v)]);
  }
}

/** A log line: the fields and their seal (exported for tests that write logs by hand). */
export function sealedLine(fields: unknown[]): string {
  return `${JSON.stringify([...fields, sealOf(fields)])}\n`;
}

/** A file's bytes and inode, read through one descriptor; undefined if there is none. */
async function readWithInode(file: string): Promise<{ bytes: Buffer; ino: number } | undefined> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const ino = (await fh.stat()).ino;
    return { bytes: await fh.readFile(), ino };
  } finally {
    await fh.close();
  }
}
