/**
 * `synapse-mount create-folder --parent <synID> --name <name> [--bucket B [--base-key K]] [--sts]`:
 * the Python client's `Synapse.create_s3_storage_location(parent=, folder_name=, bucket_name=,
 * base_key=, sts_enabled=)` — a Folder, a storage location and the folder's upload project
 * setting — printing `{"folderId": "synN", "storageLocationId": N, "projectSettingId": "N"}`.
 *
 * Steps, and why in this order:
 *  1. GET the parent: it must be a project or folder (a clear message beats Synapse's 400).
 *  2. POST /entity/child: an existing child of that name is taken when it is a folder (what the
 *     Python client's store(createOrUpdate) does). One with files keeps its storage when asked
 *     for the same (a harmless re-run); it may not become an STS folder (Synapse enables STS
 *     only on an empty folder, counting the trash, which we cannot see: its own 400 still comes
 *     through) nor stop being one (its files would stay in STS storage).
 *  3. POST /storageLocation — before the folder, so a bucket that is not ready (no owner.txt
 *     naming the user, see docs/storage-commands.md) leaves no empty folder behind. Storage
 *     locations are cheap and de-duplicated by Synapse.
 *  4. POST /entity (Folder) when it did not exist.
 *  5. The upload project setting: PUT the existing one with the new location, else POST
 *     (Python's setStorageLocation), then GET it back for its id.
 * A base key loses leading/trailing slashes (Synapse refuses a trailing one; S3 keys have no
 * leading one).
 */
import type { SynapseApi } from '../synapse/api.js';
import { CONCRETE, type StorageLocationSetting, type UploadDestinationListSetting } from '../synapse/types.js';
import { ConfigError, UsageError } from '../config.js';
import { nameProblem } from '../fs/names.js';
import { pythonJsonDumps } from './sts-token-command.js';

export interface CreateFolderOptions {
  parentId: string;
  name: string;
  bucket?: string | undefined;
  baseKey?: string | undefined;
  sts: boolean;
}

export interface CreateFolderResult {
  folderId: string;
  storageLocationId: number;
  projectSettingId: string;
}

export function normaliseBaseKey(baseKey: string | undefined): string | undefined {
  if (baseKey === undefined) return undefined;
  const k = baseKey.replace(/^\/+|\/+$/g, '');
  return k === '' ? undefined : k;
}

const CONTAINERS: readonly string[] = [CONCRETE.project, CONCRETE.folder];

function shortType(concreteType: string): string {
  return concreteType.slice(concreteType.lastIndexOf('.') + 1);
}

export async function runCreateFolder(api: SynapseApi, opts: CreateFolderOptions): Promise<CreateFolderResult> {
  if (opts.baseKey !== undefined && opts.bucket === undefined) throw new ConfigError('--base-key needs --bucket');
  const name = opts.name.trim();
  // Synapse's own 400 would come after the parent's checks, as exit 1: a bad argument is a usage error.
  const problem = nameProblem(name);
  if (problem !== undefined) throw new UsageError(`--name "${name}": ${problem}`);

  const parent = await api.getEntity(opts.parentId);
  if (!CONTAINERS.includes(parent.concreteType)) {
    throw new ConfigError(`${parent.id} is a ${shortType(parent.concreteType)}, not a project or folder: the new folder needs a project or folder as --parent`);
  }

  let folderId = await api.lookupChild(parent.id, name);
  let items = 0;
  if (folderId !== null) {
    const existing = await api.getEntity(folderId);
    if (existing.concreteType !== CONCRETE.folder) {
      throw new ConfigError(`"${name}" already exists in ${parent.id} as ${existing.id}, a ${shortType(existing.concreteType)}, not a folder`);
    }
    items = (await api.listChildren(existing.id, ['folder', 'file', 'link'])).length;
  }

  const setting: StorageLocationSetting = opts.bucket === undefined
    ? { concreteType: CONCRETE.s3Location, uploadType: 'S3', stsEnabled: opts.sts }
    : { concreteType: CONCRETE.externalS3Location, uploadType: 'S3', stsEnabled: opts.sts, bucket: opts.bucket };
  const baseKey = normaliseBaseKey(opts.baseKey);
  if (baseKey !== undefined) setting.baseKey = baseKey;
  const location = await api.createStorageLocation(setting);
  const storageLocationId = location.storageLocationId;
  if (storageLocationId === undefined) throw new Error('Synapse created the storage location but returned no storageLocationId');

  if (folderId === null) {
    const folder = await api.createEntity({ concreteType: CONCRETE.folder, name, parentId: parent.id });
    folderId = folder.id;
  }

  const existingSetting = await api.getUploadProjectSetting(folderId);
  if (items > 0) {
    // The same command again (Synapse de-duplicates the location): nothing to change (QA: the
    // identical --sts run was refused once the folder had files, though documented harmless).
    if (existingSetting?.id && existingSetting.locations?.length === 1 && existingSetting.locations[0] === storageLocationId) {
      return { folderId, storageLocationId, projectSettingId: String(existingSetting.id) };
    }
    if (opts.sts) {
      throw new ConfigError(`STS can only be enabled on an empty folder, and ${folderId} ("${name}") has ${items} item(s); choose a new --name`);
    }
    // An STS folder with files moved off STS: its files would stay in STS storage, which Synapse
    // keeps apart from any other (QA: it was done silently, exit 0).
    if (existingSetting?.locations?.[0] !== undefined && (await isStsLocation(api, existingSetting.locations[0]))) {
      throw new ConfigError(`${folderId} ("${name}") is an STS folder with ${items} item(s): its storage cannot change (files cannot move out of STS storage); choose a new --name`);
    }
  }
  let projectSetting: UploadDestinationListSetting | null;
  if (existingSetting) {
    await api.updateProjectSetting({ ...existingSetting, locations: [storageLocationId] });
    projectSetting = await api.getUploadProjectSetting(folderId);
  } else {
    projectSetting = await api.createProjectSetting({
      concreteType: CONCRETE.uploadListSetting, settingsType: 'upload', projectId: folderId, locations: [storageLocationId],
    });
  }
  if (!projectSetting?.id) throw new Error(`Synapse did not return the upload setting of ${folderId}`);
  return { folderId, storageLocationId, projectSettingId: String(projectSetting.id) };
}

/** Whether a storage location is STS-enabled; unknown (not its creator: 403) counts as not. */
async function isStsLocation(api: SynapseApi, id: number): Promise<boolean> {
  try {
    return (await api.getStorageLocation(id)).stsEnabled === true;
  } catch {
    return false;
  }
}

/** The one line the command prints, spaced like the Python client's json.dumps. */
export function formatCreateFolder(r: CreateFolderResult): string {
  return `${pythonJsonDumps({ folderId: r.folderId, storageLocationId: r.storageLocationId, projectSettingId: r.projectSettingId })}\n`;
}
