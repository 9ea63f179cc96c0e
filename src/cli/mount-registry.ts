/**
 * Which process serves which mountpoint: a small JSON file per mount under the state dir, so
 * `synapse-mount unmount DIR` can ask the serving process to drain and unmount itself (it must
 * finish uploads first; a bare `fusermount -u` cannot wait for them), and `synapse-mount status`
 * can list mounts and find each one's control socket (`<hash>.sock`, control.ts) next to it.
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
}

function mountsDir(): string {
  return path.join(defaultStateDir(), 'mounts');
}

function recordBase(mountpoint: string): string {
  const hash = createHash('sha1').update(path.resolve(mountpoint)).digest('hex').slice(0, 16);
  return path.join(mountsDir(), hash);
}

function recordPath(mountpoint: string): string {
  return `${recordBase(mountpoint)}.json`;
}

/** The serving process's control socket (control.ts), next to its record. */
export function controlSocketPath(mountpoint: string): string {
  return `${recordBase(mountpoint)}.sock`;
}

export async function writeMountRecord(rec: MountRecord): Promise<void> {
  const file = recordPath(rec.mountpoint);
  await makeDirs(path.dirname(file));
  await writeFile(file, JSON.stringify(rec), { mode: 0o600 });
}

export async function readMountRecord(mountpoint: string): Promise<MountRecord | undefined> {
  try {
    return JSON.parse(await readFile(recordPath(mountpoint), 'utf8')) as MountRecord;
  } catch {
    return undefined;
  }
}

/**
 * The record of the mount at `dir`: by the path it was mounted at, else by the identity of what
 * is mounted at `dir` now (a folder above it renamed since). Its `mountpoint` is where it was
 * mounted: the name of its record and control socket.
 */
export async function findMountRecord(dir: string): Promise<MountRecord | undefined> {
  const info = (await readMountinfoText()) ?? '';
  const rec = await readMountRecord(dir);
  // Not when that mount lives on elsewhere now (QA: an empty folder left at the old path
  // answered as the moved mount).
  const live = rec !== undefined && processAlive(rec.pid);
  const movedAway = rec?.mountId && live ? mountpointOf(rec.mountId, info) : undefined;
  if (rec && live && (movedAway === undefined || movedAway === dir)) return rec;
  // A live mount moved here wins over a dead one's record left at this path (review).
  const id = mountIdAt(dir, info);
  const moved = id ? (await listMountRecords()).find((r) => r.mountId === id && processAlive(r.pid)) : undefined;
  return moved ?? (rec && !live ? rec : undefined);
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
  const rec = await readMountRecord(mountpoint);
  if (rec && rec.pid === pid) {
    await rm(recordPath(mountpoint), { force: true });
    await rm(controlSocketPath(mountpoint), { force: true });
  }
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
