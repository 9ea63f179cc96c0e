/**
 * Checks made before mounting, so that user errors get one clear line instead of libfuse's
 * stderr and fuse-native's bare "fuse failed" (DESIGN §6): mountpoint missing / not a
 * directory / not empty / already mounted, /dev/fuse or fusermount missing. A stale FUSE mount
 * left by a killed process (stat → ENOTCONN) is detached first; an automount trigger (autofs) is
 * refused before anything touches it. All calls are async and touch
 * only the mountpoint itself — never a path inside a mount this process serves.
 */
import { execFile } from 'node:child_process';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import { constants, readFileSync, readlinkSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export class MountError extends Error {
  override readonly name = 'MountError';
}

export type MountinfoReader = () => Promise<string>;
const MOUNTINFO = '/proc/self/mountinfo';
/** This process's mount table; undefined when it cannot be read (no verdict, never "nothing mounted"). */
export const readMountinfoText = (): Promise<string | undefined> => readFile(MOUNTINFO, 'utf8').catch(() => undefined);
const readMountinfo: MountinfoReader = async () => (await readMountinfoText()) ?? '';
const readMountinfoSync = (): string => {
  try {
    return readFileSync(MOUNTINFO, 'utf8');
  } catch {
    return '';
  }
};

/** One mountinfo line: the mount's identity (mountIdAt), where it is, and its fs type. */
interface MountEntry {
  identity: string;
  path: string;
  type: string;
}

/**
 * The mounts of a mountinfo text, in its order (a later entry at a path is on top). Identity:
 * the mount id and device (first and third fields) — a mount id freed by an unmount can be
 * reused at once, the pair cannot while its filesystem lives: trust it only while the serving
 * process does. Paths come with space, tab, newline and backslash octal-escaped (`\040`).
 */
function mountEntries(info: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of info.split('\n')) {
    const fields = line.split(' ');
    if (fields[4] === undefined) continue;
    const sep = fields.indexOf('-');
    out.push({ identity: `${fields[0]} ${fields[2]}`, path: mountinfoPath(fields[4]), type: sep >= 0 ? fields[sep + 1] ?? 'unknown' : 'unknown' });
  }
  return out;
}

/** The entry on top at `canonical` (canonicalMountpoint), if anything is mounted there. */
const topAt = (canonical: string, info: string): MountEntry | undefined => mountEntries(info).filter((e) => e.path === canonical).pop();

/**
 * The path the kernel will name a mountpoint by (/proc/self/mountinfo): absolute, symlinks
 * resolved, no trailing slash. What a user typed (`mnt/`, `./mnt`, a symlink) is not, and a
 * mount that compared those found itself "unmounted from outside" a second after mounting (QA).
 * Never touches the mountpoint itself — a FUSE mount there would be asked (a hung one would hang
 * `unmount`, and the serving process would wait on itself), and an automount there (autofs)
 * would wait for the very mount being started: its parent is resolved, a path mountinfo lists
 * is taken as it is (a mountpoint is no link), and only another last name is read as a link.
 */
export function canonicalMountpoint(dir: string, depth = 0, info = readMountinfoSync()): string {
  const abs = path.resolve(dir);
  if (abs === path.dirname(abs)) return abs; // "/"
  let parent = path.dirname(abs);
  try {
    parent = realpathSync(parent);
  } catch { /* missing: as typed */ }
  const candidate = path.join(parent, path.basename(abs));
  if (depth >= 40 || topAt(candidate, info)) return candidate; // ELOOP's bound; a mountpoint
  try {
    return canonicalMountpoint(path.resolve(parent, readlinkSync(candidate)), depth + 1, info);
  } catch {
    return candidate; // not a link
  }
}

/** A mountinfo path field: space, tab, newline and backslash come octal-escaped (`\040`). */
export function mountinfoPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Is `dir` a mountpoint right now (per /proc/self/mountinfo)? Returns its fs type or undefined. */
export async function mountedType(dir: string, mountinfo: MountinfoReader = readMountinfo): Promise<string | undefined> {
  const info = await mountinfo();
  return typeMountedAt(canonicalMountpoint(dir, 0, info), info);
}

/** The identity (mountEntries) of the mount on top at `canonical`, or undefined. */
export function mountIdAt(canonical: string, info: string): string | undefined {
  return topAt(canonical, info)?.identity;
}

/** Is the mount `id` (mountIdAt) in this mountinfo text, wherever it is now? */
export function mountPresent(id: string, info: string): boolean {
  return mountpointOf(id, info) !== undefined;
}

/** Where the mount `id` (mountIdAt) is now — moved with a folder above it — or undefined. */
export function mountpointOf(id: string, info: string): string | undefined {
  return mountEntries(info).find((e) => e.identity === id)?.path;
}

/** The fs type mounted at `canonical` (canonicalMountpoint) in a mountinfo text, or undefined. */
export function typeMountedAt(canonical: string, info: string): string | undefined {
  return topAt(canonical, info)?.type;
}

export async function findOnPath(cmd: string): Promise<string | undefined> {
  for (const dir of (process.env['PATH'] ?? '/usr/bin:/bin').split(':').concat(['/usr/bin', '/bin', '/usr/sbin', '/sbin'])) {
    const p = path.join(dir, cmd);
    try {
      await access(p, constants.X_OK);
      return p;
    } catch { /* next */ }
  }
  return undefined;
}

/** libfuse 2's fusermount, or libfuse 3's (either unmounts any FUSE mount). */
export async function findFusermount(): Promise<string | undefined> {
  return (await findOnPath('fusermount')) ?? (await findOnPath('fusermount3'));
}

export async function lazyUnmount(dir: string): Promise<void> {
  const fusermount = await findFusermount();
  if (fusermount) {
    await exec(fusermount, ['-uz', dir]).catch(() => undefined);
    return;
  }
  await exec('umount', ['-l', dir]).catch(() => undefined);
}

export async function preflight(mountpoint: string, mountinfo: MountinfoReader = readMountinfo): Promise<void> {
  const dir = path.resolve(mountpoint);
  try {
    await access('/dev/fuse', constants.R_OK | constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // Present but not ours to open (QA: mode 0600, a user not root): installing FUSE is not the fix.
    if (code === 'EACCES') {
      throw new MountError('/dev/fuse exists but this user may not open it: ask an administrator to allow FUSE for users (chmod 0666 /dev/fuse, as Debian sets it), or mount as root');
    }
    if (code === 'ENOENT') {
      throw new MountError('/dev/fuse is missing: install FUSE (apt-get install fuse libfuse2) or run where /dev/fuse exists (a container needs --device /dev/fuse)');
    }
    throw new MountError(`/dev/fuse cannot be opened (${code ?? (err as Error).message}): a security policy or a container may forbid FUSE here`);
  }
  if (!(await findFusermount())) {
    throw new MountError('fusermount not found: install FUSE (apt-get install fuse)');
  }
  // An automount trigger (x-systemd.automount) first, before anything touches the path: Node's
  // stat (statx without AT_NO_AUTOMOUNT), a listing, libfuse's emptiness check and fuse-native's
  // own stat would each wait for the automount — this very mount. Not supported: say so.
  if ((await mountedType(dir, mountinfo)) === 'autofs') {
    throw new MountError(`${dir}: is an automount point (autofs); synapse-mount cannot be started by an automount (x-systemd.automount) — use a plain fstab entry with _netdev,nofail, or a systemd service`);
  }
  let st;
  try {
    st = await stat(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN') {
      await lazyUnmount(dir);
      st = await stat(dir).catch(() => undefined);
      if (!st) throw new MountError(`${dir}: a stale mount could not be cleaned up (try: fusermount -uz ${dir})`);
    } else if (code === 'ENOENT') {
      throw new MountError(`${dir}: mountpoint does not exist`);
    } else {
      throw new MountError(`${dir}: cannot use mountpoint (${code ?? String(err)})`);
    }
  }
  if (!st.isDirectory()) throw new MountError(`${dir}: mountpoint is not a directory`);
  let type = await mountedType(dir, mountinfo);
  if (type) {
    // The kernel may still answer stat from its attribute cache; a listing tells a dead mount.
    const dead = await readdir(dir).then(() => false, (err: NodeJS.ErrnoException) => err.code === 'ENOTCONN');
    if (dead) {
      await lazyUnmount(dir);
      type = await mountedType(dir, mountinfo);
    }
  }
  if (type) throw new MountError(`${dir}: already mounted (${type}); unmount it first (synapse-mount unmount ${dir})`);
  const entries = await readdir(dir);
  if (entries.length > 0) throw new MountError(`${dir}: mountpoint is not empty`);
}
