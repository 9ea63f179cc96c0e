/**
 * Which process serves which mountpoint: a small JSON file per mount under the state dir, so
 * `synapse-mount unmount DIR` can ask the serving process to drain and unmount itself (it must
 * finish uploads first; a bare `fusermount -u` cannot wait for them), and `synapse-mount status`
 * can list mounts and find each one's control socket (control.ts) next to it.
 *
 * Names: `<hash of the path mounted at>-<pid>.json` and `.sock`. One per mount, not per path: a
 * mount whose path moved (a folder above it renamed) keeps its files when another mount takes
 * its old path — named by the path alone, the new mount's record and socket replaced the moved
 * one's, and `status`/`unmount` of it fell back to a bare fusermount. Records before session 21
 * are `<hash>.json` with `<hash>.sock` (still read: a mount started by an older version).
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { defaultStateDir } from '../config.js';
import { processAlive } from '../process-alive.js';
import { makeDirs } from '../fs/make-dirs.js';
import { mountIdAt, mountpointOf, readMountinfoText } from '../fs/preflight.js';

export interface MountRecord {
  pid: number;
  mountpoint: string;
  entityId: string;
  startedAt: string;
  logFile?: string;
  /** The Synapse endpoint the mount talks to, so `info` on a path inside it needs no --endpoint. */
  endpoint?: string;
  /**
   * The mount's identity in /proc/self/mountinfo (preflight.ts mountIdAt): finds this record
   * when a folder above the mountpoint was renamed (the record is named by the path mounted at).
   */
  mountId?: string;
  /** Its control socket (absent in records before session 21: `<hash>.sock`). */
  socket?: string;
}

function mountsDir(): string {
  return path.join(defaultStateDir(), 'mounts');
}

function recordBase(mountpoint: string): string {
  const hash = createHash('sha1').update(path.resolve(mountpoint)).digest('hex').slice(0, 16);
  return path.join(mountsDir(), hash);
}

/** A mount's files: by the path it was mounted at and its serving process. */
function recordStem(mountpoint: string, pid: number): string {
  return `${recordBase(mountpoint)}-${pid}`;
}

/** The control socket (control.ts) of the mount `pid` serves at `mountpoint`, next to its record. */
export function controlSocketPath(mountpoint: string, pid: number): string {
  return `${recordStem(mountpoint, pid)}.sock`;
}

/** Where a recorded mount's control socket is. */
export function socketOf(rec: MountRecord): string {
  return rec.socket ?? `${recordBase(rec.mountpoint)}.sock`;
}

export async function writeMountRecord(rec: MountRecord): Promise<void> {
  const file = `${recordStem(rec.mountpoint, rec.pid)}.json`;
  await makeDirs(path.dirname(file));
  await writeFile(file, JSON.stringify(rec), { mode: 0o600 });
}

const newestFirst = (a: MountRecord, b: MountRecord): number => b.startedAt.localeCompare(a.startedAt);

/**
 * Where a recorded mount is now (a folder above it renamed since it was mounted), by its id in
 * mountinfo — only while its process lives: a dead mount's id and device are the next mount's.
 */
export function whereNow(rec: MountRecord, mountinfo: string): string | undefined {
  return rec.mountId && processAlive(rec.pid) ? mountpointOf(rec.mountId, mountinfo) : undefined;
}

/**
 * The record of the mount at `dir`: a live mount mounted there that has not moved away, else
 * the live mount whose identity is what is mounted at `dir` now (a folder above it renamed
 * since), else a dead mount's record left at `dir` (status reports it, unmount clears it). Its
 * `mountpoint` is where it was mounted.
 */
export async function findMountRecord(dir: string): Promise<MountRecord | undefined> {
  const info = (await readMountinfoText()) ?? '';
  const abs = path.resolve(dir);
  const records = await listMountRecords();
  const here = records.filter((r) => r.mountpoint === abs).sort(newestFirst);
  // Not a mount that lives on elsewhere now (QA: an empty folder left at the old path
  // answered as the moved mount).
  const stayed = here.find((r) => processAlive(r.pid) && (whereNow(r, info) ?? abs) === abs);
  if (stayed) return stayed;
  // A live mount moved here wins over a dead one's record left at this path (review).
  const id = mountIdAt(abs, info);
  const moved = id ? records.find((r) => r.mountId === id && processAlive(r.pid)) : undefined;
  return moved ?? here.find((r) => !processAlive(r.pid));
}

/** Every mount record (live or not), sorted by mountpoint. */
export async function listMountRecords(): Promise<MountRecord[]> {
  const names = await readdir(mountsDir()).catch(() => [] as string[]);
  const out: MountRecord[] = [];
  for (const n of names.filter((x) => x.endsWith('.json'))) {
    try {
      const rec = JSON.parse(await readFile(path.join(mountsDir(), n), 'utf8')) as MountRecord;
      if (typeof rec.pid === 'number' && typeof rec.mountpoint === 'string') out.push(rec);
    } catch { /* a torn or foreign file */ }
  }
  return out.sort((a, b) => a.mountpoint.localeCompare(b.mountpoint));
}

export async function removeMountRecord(mountpoint: string, pid: number): Promise<void> {
  const stem = recordStem(mountpoint, pid);
  await rm(`${stem}.json`, { force: true });
  await rm(`${stem}.sock`, { force: true });
  // A record written before session 21 (`<hash>.json`), if it is this process's.
  const legacy = recordBase(mountpoint);
  try {
    const rec = JSON.parse(await readFile(`${legacy}.json`, 'utf8')) as MountRecord;
    if (rec.pid !== pid) return;
  } catch {
    return;
  }
  await rm(`${legacy}.json`, { force: true });
  await rm(`${legacy}.sock`, { force: true });
}

export { processAlive } from '../process-alive.js';

/** The record of the mount whose mountpoint holds `file` (the innermost, if mounts nest). */
export async function mountRecordFor(file: string): Promise<MountRecord | undefined> {
  const abs = path.resolve(file);
  let best: MountRecord | undefined;
  for (const rec of await listMountRecords()) {
    if (!processAlive(rec.pid)) continue; // a dead mount's record: its mountpoint serves nothing
    const inside = abs === rec.mountpoint || abs.startsWith(rec.mountpoint.endsWith(path.sep) ? rec.mountpoint : rec.mountpoint + path.sep);
    if (inside && (!best || rec.mountpoint.length > best.mountpoint.length)) best = rec;
  }
  return best;
}
