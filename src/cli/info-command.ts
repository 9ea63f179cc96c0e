/**
 * `synapse-mount info <path> [--json]`: from a path inside a synapse-mount mount back to
 * Synapse — synID, version, MD5, size, storage location and S3 URL, so a script can record
 * provenance.
 *
 * How: the mount answers the extended attribute `user.synapse.id` (and `user.synapse.version`
 * for files: the version the mount serves); this command reads them with `getfattr` (Debian
 * package `attr`), or Python's os.getxattr when getfattr is missing — Node has no xattr API. The
 * CLI is a separate process from the one serving the mount, so these calls cannot deadlock it.
 * Then one bundle2 of that exact version with its file handles gives MD5, size, storage
 * location and bucket/key; a Link names its target; for a folder or project, its upload destination gives the storage
 * location (and the s3:// prefix of an external bucket).
 *
 * bundle2 lists file handles only to users with DOWNLOAD permission; without it the MD5 comes
 * from the mount's `user.synapse.md5` attribute and the size from stat, and the storage fields
 * are null.
 */
import { execFile } from 'node:child_process';
import { lstat, stat } from 'node:fs/promises';
import path from 'node:path';
import type { SynapseApi } from '../synapse/api.js';
import { CONCRETE, type S3FileHandle } from '../synapse/types.js';
import { ConfigError } from '../config.js';

const XATTR_TIMEOUT_MS = 30_000;

export interface InfoResult {
  path: string;
  id: string;
  name: string;
  type: 'file' | 'folder' | 'project' | 'link' | string;
  version: number | null;
  md5: string | null;
  size: number | null;
  storageLocationId: number | null;
  stsEnabled: boolean | null;
  s3Url: string | null;
  /** A Link's target (synID) and pinned version (null: the newest); null for anything else. */
  targetId: string | null;
  targetVersion: number | null;
}

interface ExecResult { code: number | string | null; stdout: string; stderr: string }

function run(cmd: string, args: string[]): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: XATTR_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? ((err as NodeJS.ErrnoException).code ?? 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const PY_GETXATTR =
  'import os,sys\ntry:\n sys.stdout.write(os.getxattr(sys.argv[1],sys.argv[2]).decode())\n' +
  'except OSError as e:\n sys.stderr.write(e.strerror or str(e))\n sys.exit(1)';

/**
 * One extended attribute of `file` as text, or null when the file does not have it. Throws
 * ConfigError for a missing file or when no xattr tool is available.
 */
export async function readXattr(file: string, name: string): Promise<string | null> {
  let r = await run('getfattr', ['--only-values', '--absolute-names', '-n', name, '--', file]);
  if (r.code === 'ENOENT') {
    r = await run('python3', ['-c', PY_GETXATTR, file, name]);
    if (r.code === 'ENOENT') throw new ConfigError('reading extended attributes needs getfattr (Debian/Ubuntu package "attr") or python3');
  }
  if (r.code === 0) return r.stdout;
  if (/No such file or directory/i.test(r.stderr)) throw new ConfigError(`${file}: No such file or directory`);
  if (/No such attribute|No data available|not supported/i.test(r.stderr)) return null;
  throw new ConfigError(`cannot read the ${name} attribute of ${file}: ${r.stderr.trim() || `exit ${String(r.code)}`}`);
}

function kindOf(concreteType: string): string {
  switch (concreteType) {
    case CONCRETE.file: return 'file';
    case CONCRETE.folder: return 'folder';
    case CONCRETE.project: return 'project';
    case CONCRETE.link: return 'link';
    default: return concreteType.slice(concreteType.lastIndexOf('.') + 1);
  }
}

/**
 * A symlink in a mount is a Link entity. Linux keeps user.* attributes off symlinks (getxattr
 * follows them, to the target), so the Link is found by its folder and name instead.
 */
async function linkEntityId(api: SynapseApi, abs: string): Promise<string | undefined> {
  if (!(await lstat(abs).catch(() => undefined))?.isSymbolicLink()) return undefined;
  const parentId = (await readXattr(path.dirname(abs), 'user.synapse.id'))?.trim();
  if (!parentId) return undefined;
  return (await api.lookupChild(parentId, path.basename(abs))) ?? undefined;
}

export async function runInfo(api: SynapseApi, file: string): Promise<InfoResult> {
  const abs = path.resolve(file);
  const linkId = await linkEntityId(api, abs);
  if (linkId) return describe(api, abs, linkId, undefined);
  const raw = await readXattr(abs, 'user.synapse.id');
  // No synID inside a mount (its folder has one) is a file only the mount has (README "What
  // POSIX operations do"; it answered an empty one until session 27, which rsync -aX tripped on).
  const id = raw?.trim() ?? '';
  if (!id && !(await readXattr(path.dirname(abs), 'user.synapse.id').catch(() => null))?.trim()) {
    throw new ConfigError(`${abs} is not inside a synapse-mount mount (it has no user.synapse.id attribute)`);
  }
  if (!id) {
    throw new ConfigError(`${abs} is not in Synapse (yet): a file only this mount has — being written, empty where Synapse storage cannot hold 0 bytes, a scratch name, or waiting for \`synapse-mount recover\``);
  }
  const versionText = (await readXattr(abs, 'user.synapse.version'))?.trim();
  const version = versionText ? Number(versionText) : undefined;
  return describe(api, abs, id, version);
}

async function describe(api: SynapseApi, abs: string, id: string, version: number | undefined): Promise<InfoResult> {
  const bundle = await api.getBundle(id, { includeEntity: true, includeFileHandles: true },
    version !== undefined && Number.isInteger(version) && version > 0 ? version : undefined);
  const entity = bundle.entity;
  if (!entity) throw new Error(`Synapse returned no entity for ${id}`);
  const result: InfoResult = {
    path: abs, id: entity.id, name: entity.name, type: kindOf(entity.concreteType),
    version: entity.concreteType === CONCRETE.file ? entity.versionNumber ?? null : null,
    md5: null, size: null, storageLocationId: null, stsEnabled: null, s3Url: null,
    targetId: entity.linksTo?.targetId ?? null, targetVersion: entity.linksTo?.targetVersionNumber ?? null,
  };

  if (entity.concreteType === CONCRETE.file) {
    const fh: S3FileHandle | undefined = bundle.fileHandles?.find((h) => h.id === entity.dataFileHandleId);
    if (fh) {
      result.md5 = fh.contentMd5 ?? null;
      result.size = fh.contentSize ?? null;
      result.storageLocationId = fh.storageLocationId ?? null;
      result.s3Url = fh.bucketName && fh.key ? `s3://${fh.bucketName}/${fh.key}` : null;
    } else {
      result.md5 = (await readXattr(abs, 'user.synapse.md5'))?.trim() || null;
      result.size = (await stat(abs)).size;
    }
  } else if (entity.concreteType === CONCRETE.folder || entity.concreteType === CONCRETE.project) {
    const dest = await api.getUploadDestination(entity.id).catch(() => undefined);
    if (dest) {
      result.storageLocationId = dest.storageLocationId;
      result.stsEnabled = dest.stsEnabled ?? false;
      if (dest.bucket) result.s3Url = `s3://${dest.bucket}/${dest.baseKey ? `${dest.baseKey}/` : ''}`;
    }
  }
  if (result.stsEnabled === null && result.storageLocationId !== null && entity.parentId) {
    // A file's location is its folder's: the folder's upload destination says whether it is STS.
    const dest = await api.getUploadDestination(entity.parentId).catch(() => undefined);
    if (dest && dest.storageLocationId === result.storageLocationId) result.stsEnabled = dest.stsEnabled ?? false;
  }
  return result;
}

export function formatInfo(r: InfoResult, json: boolean): string {
  if (json) return `${JSON.stringify(r)}\n`;
  const rows: Array<[string, string]> = [
    ['path', r.path],
    ['id', r.id],
    ['name', r.name],
    ['type', r.type],
  ];
  if (r.version !== null) rows.push(['version', String(r.version)]);
  if (r.md5 !== null) rows.push(['md5', r.md5]);
  if (r.size !== null) rows.push(['size', String(r.size)]);
  if (r.storageLocationId !== null) {
    rows.push(['storage location', `${r.storageLocationId}${r.stsEnabled ? ' (STS-enabled)' : ''}`]);
  }
  if (r.s3Url !== null) rows.push(['s3 url', r.s3Url]);
  if (r.targetId !== null) rows.push(['target', r.targetVersion !== null ? `${r.targetId}.${r.targetVersion} (pinned)` : `${r.targetId} (newest version)`]);
  return rows.map(([k, v]) => `${`${k}:`.padEnd(18)}${v}\n`).join('');
}
