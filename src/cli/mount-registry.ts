/**
 * Which process serves which mountpoint: a small JSON file per mount under the state dir, so
 * `synapse-mount unmount DIR` can ask the serving process to drain and unmount itself (it must
 * finish uploads first; a bare `fusermount -u` cannot wait for them).
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { defaultStateDir } from '../config.js';

export interface MountRecord {
  pid: number;
  mountpoint: string;
  entityId: string;
  startedAt: string;
  logFile?: string;
}

function recordPath(mountpoint: string): string {
  const hash = createHash('sha1').update(path.resolve(mountpoint)).digest('hex').slice(0, 16);
  return path.join(defaultStateDir(), 'mounts', `${hash}.json`);
}

export async function writeMountRecord(rec: MountRecord): Promise<void> {
  const file = recordPath(rec.mountpoint);
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFile(file, JSON.stringify(rec), { mode: 0o600 });
}

export async function readMountRecord(mountpoint: string): Promise<MountRecord | undefined> {
  try {
    return JSON.parse(await readFile(recordPath(mountpoint), 'utf8')) as MountRecord;
  } catch {
    return undefined;
  }
}

export async function removeMountRecord(mountpoint: string, pid: number): Promise<void> {
  const rec = await readMountRecord(mountpoint);
  if (rec && rec.pid === pid) await rm(recordPath(mountpoint), { force: true });
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
