/**
 * A small persistent map keyed by (entity id, version), kept as an append-only JSON-lines log:
 * what the mount learns about immutable content and wants to keep across remounts — sizes under
 * `--cache-dir` (disk-cache.ts), mtimes set by utimens in the spool (filesystem.ts).
 *
 * Why (entity, version): a version names immutable content, so an entry never goes stale; a newer
 * version (written anywhere) has another key, so an old entry cannot describe it.
 *
 * Line format: one JSON array per line, `[entityId, version, ...fields]` (the codec's fields).
 * Several mounts may append to one log at once (O_APPEND, one write per batch of whole lines);
 * a line torn by a crash is skipped when read. The log is rewritten (temp + rename) at open when
 * it holds many more lines than entries or more than the cap; a line another mount appends during
 * that rewrite may be lost, so keep here only what can be learned again or done without.
 */
import { randomBytes } from 'node:crypto';
import { appendFile, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { makeDirs } from './make-dirs.js';

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
}

export class VersionLog<V> {
  private readonly map = new Map<string, V>();
  /** Lines not yet appended, by key: a key set again before the flush is one line. */
  private readonly pending = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  private readonly maxEntries: number;

  private constructor(readonly file: string, private readonly codec: VersionLogCodec<V>, private readonly opts: VersionLogOptions) {
    this.maxEntries = opts.maxEntries ?? 500_000;
  }

  static async open<V>(file: string, codec: VersionLogCodec<V>, opts: VersionLogOptions = {}): Promise<VersionLog<V>> {
    const log = new VersionLog(path.resolve(file), codec, opts);
    if (!opts.readOnly) await makeDirs(path.dirname(log.file));
    await log.load();
    return log;
  }

  get count(): number {
    return this.map.size;
  }

  get(entityId: string, versionNumber: number): V | undefined {
    return this.map.get(`${entityId}.${versionNumber}`);
  }

  set(entityId: string, versionNumber: number, value: V): void {
    const key = `${entityId}.${versionNumber}`;
    const known = this.map.get(key);
    if (known !== undefined && this.codec.same(known, value)) return;
    this.map.delete(key); // re-insert: Map order is age order for the cap
    if (this.map.size >= this.maxEntries) this.map.delete(this.map.keys().next().value as string);
    this.map.set(key, value);
    if (this.opts.readOnly) return;
    this.pending.delete(key);
    this.pending.set(key, this.line(key, value));
    if (!this.timer) {
      this.timer = setTimeout(() => { this.timer = undefined; void this.flush(); }, this.opts.flushMs ?? 1000);
      this.timer.unref();
    }
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
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    let lines = 0;
    for (const line of text.split('\n')) {
      if (!line) continue;
      lines++;
      try {
        const v = JSON.parse(line) as unknown;
        if (!Array.isArray(v) || typeof v[0] !== 'string' || !Number.isInteger(v[1])) continue;
        const value = this.codec.decode(v.slice(2));
        if (value === undefined) continue;
        const key = `${v[0]}.${v[1] as number}`;
        this.map.delete(key); // the last line of a key wins, and counts as its age
        this.map.set(key, value);
      } catch { /* a torn line */ }
    }
    while (this.map.size > this.maxEntries) this.map.delete(this.map.keys().next().value as string);
    if (!this.opts.readOnly && lines > 2 * this.map.size + 1000) await this.compact();
  }

  private async compact(): Promise<void> {
    const tmp = `${this.file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const body = [...this.map].map(([k, v]) => this.line(k, v)).join('');
    try {
      await writeFile(tmp, body, { mode: 0o600 });
      await rename(tmp, this.file);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      this.opts.logger?.debug({ err, file: this.file }, 'version log compaction failed');
    }
  }

  private line(key: string, v: V): string {
    const dot = key.lastIndexOf('.');
    return `${JSON.stringify([key.slice(0, dot), Number(key.slice(dot + 1)), ...this.codec.encode(v)])}\n`;
  }
}
