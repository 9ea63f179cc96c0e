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
 * REPLACE_WINDOW_MS takes the note, and its publish — once the bytes are uploaded, so a failed
 * publish never undoes the removal — brings the entity back out of the trash can (PUT
 * /trashcan/restore, which only the user who deleted it may do) and commits the bytes as its next
 * version (if that commit fails, the entity goes back to the trash can). The same bytes it had
 * (size and MD5 known at the removal) only restore it, with no upload. A file renamed or moved
 * before its publish is not that file any more. A temporary file not yet published, renamed onto
 * the name (zip), does the same through the rename (the target is then an ordinary rename-over);
 * a published file renamed there keeps its own identity. If the restore is refused (the name
 * taken meanwhile, the trash can purged) the file is a new entity, as before.
 *
 * Only files that inherit their sharing: Synapse drops an entity's own ACL when it goes to the
 * trash can, so a file shared by one of its own would come back open to whatever its folder allows.
 */
import { LRUCache } from 'lru-cache';

/** From the removal to the new file's create (or the rename onto the name). */
export const REPLACE_WINDOW_MS = 60_000;

/** A file this mount removed: where it was, and its size and MD5 when known (the same bytes again need no upload). */
export interface RemovedFile {
  entityId: string;
  parentId: string;
  name: string;
  size?: number | undefined;
  md5?: string | undefined;
}

export class RemovedNames {
  private readonly byName: LRUCache<string, RemovedFile>;

  constructor(windowMs = REPLACE_WINDOW_MS) {
    this.byName = new LRUCache<string, RemovedFile>({ max: 10_000, ttl: windowMs, ttlAutopurge: false });
  }

  /** `file` was just deleted by this mount. */
  note(file: RemovedFile): void {
    this.byName.set(`${file.parentId}/${file.name}`, file);
  }

  /** The file removed from this name lately, if any (taken: a second file of the name gets none). */
  take(parentId: string, name: string): RemovedFile | undefined {
    const key = `${parentId}/${name}`;
    const file = this.byName.get(key);
    if (file !== undefined) this.byName.delete(key);
    return file;
  }
}
