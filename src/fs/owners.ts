/**
 * Who made the files and folders other users created through a shared mount (--allow-other).
 *
 * Synapse has no owner uid, so every file shows as the mount's --uid/--gid. On a shared mount
 * the kernel enforces ownership itself (default_permissions): only a file's owner may chmod it
 * or set its times, so another user's `rsync -a`, `cp -p` or tar failed on the very files they
 * had just made (EPERM; rsync then dropped the file). As on a local disk, what another user
 * creates now shows as theirs — for this mount's life (a remount shows the mount owner again),
 * following renames, forgotten on unlink/rmdir. Bounded: past MAX_ENTRIES the oldest go back to
 * the mount owner, which only matters if their maker then chmods them.
 *
 * Only the owner: the group stays the mount's --gid, as under a setgid directory — a lab's
 * shared mount (--gid lab, --dir-mode 775) stays writable to the lab inside what one member
 * made (the creator's own group would shut the others out).
 *
 * Keyed by path (the mount's own paths; the kernel asks by path through libfuse).
 */
import { LRUCache } from 'lru-cache';

const MAX_ENTRIES = 100_000;

export interface Owner {
  uid: number;
  gid: number;
}

/** The addon's "no caller known" (libfuse had no context): not root's. */
const UNKNOWN_UID = 0xffffffff;

export class Owners {
  private readonly byPath = new LRUCache<string, number>({ max: MAX_ENTRIES });

  constructor(private readonly mountOwner: Owner) {}

  /** After a create or mkdir succeeded; uid undefined when the addon could not tell (prebuild). */
  created(path: string, uid: number | undefined): void {
    if (uid === undefined || uid === UNKNOWN_UID) return;
    if (uid === this.mountOwner.uid) this.byPath.delete(path);
    else this.byPath.set(path, uid);
  }

  /** The stat's owner: its maker when another user made it here. */
  apply<S extends { uid: number }>(path: string, stat: S): S {
    if (this.byPath.size === 0) return stat;
    const uid = this.byPath.get(path);
    return uid !== undefined ? { ...stat, uid } : stat;
  }

  /**
   * After rename(src, dest): what was at dest is replaced, src's entry moves — and for a folder
   * its contents' (a scan, so only for folders: rsync renames every file it writes).
   */
  renamed(src: string, dest: string, folder: boolean): void {
    if (this.byPath.size === 0) return;
    if (!folder) {
      const owner = this.byPath.get(src);
      this.byPath.delete(src);
      if (owner) this.byPath.set(dest, owner);
      else this.byPath.delete(dest);
      return;
    }
    const entries = [...this.byPath.entries()];
    for (const [path] of entries) if (below(path, dest) || below(path, src)) this.byPath.delete(path);
    for (const [path, uid] of entries) if (below(path, src)) this.byPath.set(dest + path.slice(src.length), uid);
  }

  /** After unlink or rmdir (a folder only goes when empty). */
  removed(path: string): void {
    this.byPath.delete(path);
  }
}

/** `path` is `top` or inside it. */
function below(path: string, top: string): boolean {
  return path === top || path.startsWith(`${top}/`);
}
