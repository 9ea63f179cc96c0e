/**
 * Shared pieces of the Synapse routes: the dependencies every route module receives, entity
 * lookup with Synapse's 404/403 semantics (404 for unknown or trashed, 403 for lacking access),
 * and the STS placement rules Synapse applies when a file or folder lands in a new parent.
 */
import type { DevConfig } from '../config.js';
import type { Faults } from '../faults.js';
import type { S3Backend } from '../s3-backend.js';
import type { Stats } from '../stats.js';
import { forbidden, notFound, badRequest } from '../http.js';
import { parseSynId, type EntityRecord, type Perm, type State } from '../state.js';

export interface Deps {
  state: State;
  config: DevConfig;
  s3: S3Backend;
  stats: Stats;
  faults: Faults;
}

export function lookupEntity(state: State, idText: string | undefined): EntityRecord {
  const id = parseSynId(idText);
  const e = id === undefined ? undefined : state.entities.get(id);
  if (!e || id === undefined) throw notFound(`Entity ${idText ?? ''} does not exist`);
  if (state.isTrashed(e)) throw notFound(`Entity syn${id} is in trash can.`);
  return e;
}

export function requirePerm(state: State, e: EntityRecord, userId: string, ...perms: Perm[]): void {
  for (const p of perms) {
    if (!state.can(e, userId, p)) throw forbidden(`You lack ${p} access to the requested entity.`);
  }
}

/** lookupEntity + READ. */
export function readableEntity(state: State, idText: string | undefined, userId: string): EntityRecord {
  const e = lookupEntity(state, idText);
  requirePerm(state, e, userId, 'READ');
  return e;
}

export function isContainer(e: EntityRecord): boolean {
  return e.kind === 'project' || e.kind === 'folder';
}

/** StsManagerImpl.validateCanAddFile: STS files stay in their location's folders and vice versa. */
export function validateCanAddFile(state: State, fileStorageLocationId: number, parent: EntityRecord): void {
  const fileSts = state.isStsLocation(fileStorageLocationId);
  const setting = state.uploadSettingFor(parent);
  const parentSts = state.isStsSetting(setting);
  const parentLoc = setting?.locations[0];
  if ((fileSts || parentSts) && fileStorageLocationId !== parentLoc) {
    if (fileSts) throw badRequest('Files in STS-enabled storage locations can only be placed in folders with the same storage location');
    throw badRequest('Folders with STS-enabled storage locations can only accept files with the same storage location');
  }
}

/** StsManagerImpl.validateCanMoveFolder. */
export function validateCanMoveFolder(state: State, folder: EntityRecord, oldParent: EntityRecord, newParent: EntityRecord): void {
  if (oldParent.id === newParent.id) return;
  const own = state.settingOn(folder.id);
  const oldSetting = own ?? state.uploadSettingFor(oldParent);
  const oldSts = state.isStsSetting(oldSetting);
  const newSetting = state.uploadSettingFor(newParent);
  const newSts = state.isStsSetting(newSetting);
  if (own && oldSts) {
    if (newSts) throw badRequest('Cannot place an STS-enabled folder inside another STS-enabled folder');
  } else if ((oldSts || newSts) && oldSetting?.locations[0] !== newSetting?.locations[0]) {
    if (oldSts) throw badRequest('Folders in STS-enabled storage locations can only be placed in folders with the same storage location');
    throw badRequest('Non-STS-enabled folders cannot be placed inside STS-enabled folders');
  }
}

export function queryFlag(url: URL, name: string): boolean {
  return url.searchParams.get(name) === 'true';
}
