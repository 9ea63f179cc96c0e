/**
 * File names the mount accepts (synapse-api.md "Entity names"): Synapse takes ASCII letters,
 * digits, space and , _ . - + ( ) ' — at most 256 characters (the mount makes at most 255,
 * NAME_MAX), and trims spaces. Anything else
 * fails at create/mkdir/rename with EINVAL and a log line naming the rule, so `cp a:b.txt`
 * says "Invalid argument" instead of publishing a renamed file.
 *
 * Editors' scratch files (vim `file~`, `.file.swp`, its `.file.swx`/`.file.swpx` probes; emacs `#file#`,
 * `.#file`; rsync's temp file for one of them, `.file~.XXXXXX`) are kept local to the mount and
 * never published, so editors can save (documented). vim's other probe, `4913`, is a real name
 * (a sample, a year): a new, empty `4913` stays local, and it is published once written to
 * (isProbeName; QA: a data file of that name was never published).
 */
import { constants } from 'node:fs';

export const MAX_NAME_LENGTH = 256;
/**
 * Linux's NAME_MAX, which statfs reports: a 256-character name Synapse would take could not be
 * copied to any local disk (QA), so the mount makes none (an existing one still lists).
 */
export const NAME_MAX = 255;
const VALID = /^[A-Za-z0-9,_.\-+()' ]+$/;

/** Why Synapse would refuse `name`, or undefined when it is fine. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'empty name';
  if (name.length > MAX_NAME_LENGTH) return `longer than ${MAX_NAME_LENGTH} characters`;
  if (name.length > NAME_MAX) return `longer than ${NAME_MAX} characters (NAME_MAX; Synapse takes 256, no local disk does)`;
  if (name !== name.trim()) return 'Synapse trims leading and trailing spaces';
  if (!VALID.test(name)) return "Synapse names may only contain letters, digits, spaces and , _ . - + ( ) '";
  return undefined;
}

export function isScratchName(name: string): boolean {
  return name.endsWith('~')
    || isSqliteSideFile(name)
    || (name.startsWith('#') && name.endsWith('#') && name.length > 1)
    || name.startsWith('.#')
    // vim's swap files (.f.swp, .f.swo, …) and the .f.swx / .f.swpx it creates to probe a directory
    || /^\..+\.(sw[a-px]|swpx)$/.test(name)
    || isRsyncTempOfScratch(name);
}

/**
 * SQLite's files beside a database `<db>`: its rollback journal `<db>-journal` and the WAL index
 * `<db>-shm`, where `<db>` has an extension (`.db`, `.sqlite`, `.gpkg`, …; a real file named
 * `lab-journal` is not one). Only SQLite on this mount ever reads them: the database file is
 * published at each commit (SQLite fsyncs it), so Synapse always holds a committed state, and
 * the journal — published at its fsync, removed at the commit — made every transaction cost a
 * publish, a delete and a restore from the trash can, and failed for a "Can edit" collaborator,
 * who may not delete (QA: "disk I/O error", a hot journal left in Synapse that rolled back the
 * next open). The WAL (`<db>-wal`) is published as any file: in WAL mode it holds the commits
 * until a checkpoint writes them into the database.
 */
export function isSqliteSideFile(name: string): boolean {
  // The extension has a letter: `v1.2-journal` is a real name.
  return /^.+\.(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{1,16}-(?:journal|shm)$/.test(name);
}

/**
 * A tool's staging folder, made in the mount only (filesystem.ts mkdir): rsync --delay-updates'
 * `.~tmp~` — a dot, then a name between tildes, which Synapse refuses. Other scratch-looking
 * folder names keep their old fate (a real folder, or EINVAL): a folder that ends with the mount
 * must never take a user's `cp -r backup~` by surprise (review).
 */
export function isStagingFolderName(name: string): boolean {
  return /^\.~.*~$/.test(name) && name.length > 2;
}

/** rsync's temp file `.<name>.XXXXXX` (six random characters) for a scratch `<name>` (`rsync -b`). */
function isRsyncTempOfScratch(name: string): boolean {
  const m = /^\.(.+)\.[A-Za-z0-9]{6}$/.exec(name);
  return m !== null && isScratchName(m[1]!);
}

/**
 * vim's probe for "may I create files here" (created empty, removed at once): `4913`, or while
 * that name exists 5036, 5159, … (+123 each time). A new file of such a name stays local while
 * empty; written to, it is an ordinary file.
 */
export function isProbeName(name: string): boolean {
  if (!/^[1-9]\d{3,8}$/.test(name)) return false;
  const n = Number(name);
  return n >= 4913 && (n - 4913) % 123 === 0;
}

/**
 * A new file under one of these names is a tool's temporary file, written whole and then renamed
 * onto its real name: rsync's `.<name>.XXXXXX`, GNU sed -i's `sedXXXXXX`, zip's `ziXXXXXX`, perl -i's `XXXXXXXX` (six
 * mkstemp characters, at least one a capital letter, or lower case and digits mixed — or any six
 * when the file was `madeByMkstemp`). Its publish waits a moment after its last close (filesystem.ts
 * HELD_TEMP_MS) for that rename, so the bytes are published once, under the real name — and a
 * collaborator who may not delete (Synapse's "Can edit" sharing) is not left with a published temp
 * file the rename could not remove (QA). Not renamed by then, it is published under its own name.
 */
export function isHeldTempName(name: string, madeByMkstemp = false): boolean {
  // `<name>.tmp`, written whole and renamed onto `<name>`: the hand-made atomic save (`f + '.tmp'`
  // then os.replace), and NamedTemporaryFile(prefix='.<name>.', suffix='.tmp'). A real file of
  // that name is published 10 s after its last close instead of at it (QA: a "Can edit"
  // collaborator's second save failed with EACCES, and the file handle kept the temp name).
  if (/^.+\.tmp$/.test(name)) return true;
  // git's loose-object and pack temp files, renamed onto their object name.
  if (/^tmp_(?:obj|pack|idx|rev|bitmap|mtimes)_[A-Za-z0-9]{6}$/.test(name)) return true;
  // Python's tempfile (NamedTemporaryFile(dir=…, delete=False) or mkstemp, then os.replace: the
  // atomic-write idiom): `tmp` and 8 of a–z, 0–9 and _, with its `suffix=` if any (QA: a "Can
  // edit" collaborator's os.replace onto a file failed, leaving a temp entity they could not
  // remove). All letters too (6 % of its names: a test failed on `tmpbupmfasu`); not all digits.
  const py = /^tmp([a-z0-9_]{8})(?:\.[A-Za-z0-9]{1,10})?$/.exec(name)?.[1];
  if (py !== undefined) return madeByMkstemp || /[a-z_]/.test(py);
  // Perl's in-place edit (`perl -pi`, 5.28+): `XX` and six mkstemp characters (QA: a "Can edit"
  // collaborator's rename failed with EACCES, leaving a published `XXcA9MTu` they could not remove).
  const suffix = /^\..+\.([A-Za-z0-9]{6})$/.exec(name)?.[1] ?? /^(?:sed|zi|XX)([A-Za-z0-9]{6})$/.exec(name)?.[1];
  // mkstemp draws from 62 characters: 99.4 % of its names have a capital letter or mix lower
  // case and digits, which real names like `.env.sample`, `.bashrc.backup`, `zipcodes` or
  // `zi202401` do not (review). A capital alone missed 3.8 % of them: a "Can edit" collaborator's
  // rsync then failed with EACCES (`.x.txt.0psng6`, session 26's test run). A temporary file
  // matching neither is published at its close, as any file — unless it was made as mkstemp
  // makes files: then the other 0.6 % are held too (CI: rsync's `.b.bin.yszklp` was published under
  // that name, and its file handle kept it).
  return suffix !== undefined && (madeByMkstemp || /[A-Z]/.test(suffix) || (/[a-z]/.test(suffix) && /[0-9]/.test(suffix)));
}

/**
 * A create as mkstemp(3) makes its file — read-write, O_EXCL, no permission for group or others
 * (it asks 0600; rsync, sed -i, perl -i, zip and Python's tempfile all go through it). Copies
 * open write-only: `cp -p`/`cp -a` and `install` also create O_EXCL with 0600 until they set the
 * mode, `tar x` as root too, and under umask 077 the kernel hands us 0600 for any create (review).
 * Only a read-write O_EXCL create of a private file (a program's own `os.open(p, O_RDWR|O_CREAT|
 * O_EXCL, 0o600)`) with a temporary file's name is held by mistake: published 10 s after its close.
 * With such a name, this settles that the file is a temporary one (isHeldTempName).
 * `flags` undefined (fuse-native's prebuild passes none): not known, so not.
 */
export function isMkstempCreate(mode: number, flags: number | undefined): boolean {
  const O_ACCMODE = 3; // not in fs.constants; 3 on every Linux
  return flags !== undefined && (flags & O_ACCMODE) === constants.O_RDWR && (flags & constants.O_EXCL) !== 0 && (mode & 0o077) === 0;
}

/**
 * The name a held temporary file (isHeldTempName) will most likely be renamed to, where its name
 * says: rsync's `.<name>.XXXXXX` → `<name>`. Undefined for sed's and zip's, whose names do not.
 */
export function heldTempTarget(name: string): string | undefined {
  return /^\.(.+)\.[A-Za-z0-9]{6}$/.exec(name)?.[1]
    // NamedTemporaryFile(prefix='.<name>.', suffix='.tmp'): 8 of a–z, 0–9 and _ between them.
    ?? /^\.(.+)\.[a-z0-9_]{8}\.tmp$/.exec(name)?.[1]
    ?? /^(.+)\.tmp$/.exec(name)?.[1];
}

/**
 * A git lock file: `<file>.lock` inside a repository's `.git` folder — or, in a bare `*.git`
 * one, a lock of git's own files (HEAD, config, index, packed-refs, shallow, refs/, logs/), not a
 * working tree's `yarn.lock` (review) — written whole and renamed onto `<file>`: git's way to
 * replace config, index, HEAD and refs. Held as the temporary files above are, but until renamed
 * or removed however long that takes (QA: a "Can edit" collaborator's `git init` failed — the
 * rename onto `config` had to delete the published lock file — and left `config.lock` they could
 * not remove). A lock git removes instead (a rollback) is never published.
 */
export function isGitLockPath(path: string): boolean {
  // And git's other files written whole and renamed (or removed) inside `.git`: `packed-refs.new`,
  // `gc.pid`, update-server-info's `refs_XXXXXX` and `packs_XXXXXX`, repack's `.tmp-<pid>-pack-*`
  // (QA: a "Can edit" collaborator's `git gc` failed — "unable to unlink packed-refs.new").
  if (/(^|\/)\.git\/(?:[^/]+\/)*(?:packed-refs\.new|gc\.pid|(?:refs|packs)_[A-Za-z0-9]{6}|\.tmp-\d+-pack-[^/]+)$/.test(path)) return true;
  return /(^|\/)\.git\/(?:[^/]+\/)*[^/]+\.lock$/.test(path)
    || /(^|\/)[^/]+\.git\/(?:(?:HEAD|config|index|packed-refs|shallow|[A-Z_]+_HEAD)\.lock|(?:refs|logs|worktrees)\/(?:[^/]+\/)*[^/]+\.lock)$/.test(path);
}
