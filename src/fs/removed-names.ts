/**
 * Files this mount removed a moment ago, by (folder, name), so that a file made again under the
 * same name becomes the removed one's next version instead of a new synID.
 *
 * Why: tools replace files by removing them and making them again — `tar x` unlinks and then
 * creates each file, `unzip -o` too, `zip` updating an archive renames its temp file onto the
 * name it just removed. On a local disk that is a new inode nobody notices; in Synapse it was a
 * new entity, and the old one — its history, annotations, provenance, the links to its synID —
 * went to the trash can (QA). Synapse's own model is "same name in the same folder, next
 * version", which is what `cp` over a file and `mv` onto one already give here.
 *
 * How: unlink notes the entity it deleted; a new file created under that name within
 * REPLACE_WINDOW_MS takes the note, and its publish brings the entity back out of the trash can
 * (PUT /trashcan/restore, which only the user who deleted it may do) and commits the bytes as its
 * next version — or, if they are the same bytes, only restores it. A rename onto the name does the
 * same before it renames (the target is then an ordinary rename-over). If the restore is refused
 * (the name taken meanwhile, the trash can purged) the file is a new entity, as before.
 *
 * Only files that inherit their sharing: Synapse drops an entity's own ACL when it goes to the
 * trash can, so a file shared by one of its own would come back open to whatever its folder allows.
 */
import { LRUCache } from 'lru-cache';

/** From the removal to the new file's create (or the rename onto the name). */
export const REPLACE_WINDOW_MS = 60_000;

export class RemovedNames {
  private readonly byName: LRUCache<string, string>;

  constructor(windowMs = REPLACE_WINDOW_MS) {
    this.byName = new LRUCache<string, string>({ max: 10_000, ttl: windowMs, ttlAutopurge: false });
  }

  /** `entityId`, which lived at `name` in `parentId`, was just deleted by this mount. */
  note(parentId: string, name: string, entityId: string): void {
    this.byName.set(`${parentId}/${name}`, entityId);
  }

  /** The entity removed from this name lately, if any (taken: a second file of the name gets none). */
  take(parentId: string, name: string): string | undefined {
    const key = `${parentId}/${name}`;
    const id = this.byName.get(key);
    if (id !== undefined) this.byName.delete(key);
    return id;
  }
}
