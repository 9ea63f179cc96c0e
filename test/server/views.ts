/**
 * Renders state records as Synapse's JSON: Entity (EntityView included), EntityHeader, VersionInfo,
 * S3FileHandle, storage location settings, upload destinations, project settings, ColumnModel. Field names are the real
 * schema's (org.sagebionetworks.repo.model.*); ids of entities are "synN", file handle ids are
 * strings, storage location ids are integers, user ids are strings.
 */
import { CONCRETE } from '../../src/synapse/types.js';
import type {
  ColumnModelRecord, EntityRecord, EntityVersion, FileHandleRecord, ProjectSettingRecord, State, StorageLocationRecord,
} from './state.js';
import { KIND_CONCRETE, synId } from './state.js';

export function entityJson(state: State, e: EntityRecord, version?: EntityVersion): Record<string, unknown> {
  const cur = state.currentVersion(e);
  const v = version ?? cur;
  const out: Record<string, unknown> = {
    name: e.name,
    id: synId(e.id),
    etag: e.etag,
    createdOn: e.createdOn,
    modifiedOn: e.kind === 'file' && version ? v.modifiedOn : e.modifiedOn,
    createdBy: e.createdBy,
    modifiedBy: e.kind === 'file' && version ? v.modifiedBy : e.modifiedBy,
    parentId: synId(e.parentId),
    concreteType: KIND_CONCRETE[e.kind],
  };
  if (e.description !== undefined) out.description = e.description;
  if (e.kind === 'file') {
    out.versionNumber = v.versionNumber;
    out.versionLabel = v.versionLabel;
    if (v.versionComment !== undefined) out.versionComment = v.versionComment;
    out.isLatestVersion = v.versionNumber === cur.versionNumber;
    if (v.dataFileHandleId !== undefined) out.dataFileHandleId = v.dataFileHandleId;
  }
  if (e.kind === 'link') {
    if (e.linksTo) out.linksTo = e.linksTo;
    if (e.linksToClassName !== undefined) out.linksToClassName = e.linksToClassName;
  }
  if (e.kind === 'entityview' && e.view) {
    // Versionable like every table; scopeIds come back as bare numbers (NodeUtils.createIdListFromBytes)
    out.versionNumber = v.versionNumber;
    out.versionLabel = v.versionLabel;
    out.isLatestVersion = v.versionNumber === cur.versionNumber;
    out.columnIds = [...e.view.columnIds];
    out.isSearchEnabled = false;
    out.viewTypeMask = e.view.viewTypeMask;
    out.scopeIds = e.view.scopeIds.map(String);
  }
  return out;
}

export function columnModelJson(c: ColumnModelRecord): Record<string, unknown> {
  const out: Record<string, unknown> = { id: c.id, name: c.name, columnType: c.columnType };
  if (c.maximumSize !== undefined) out.maximumSize = c.maximumSize;
  if (c.facetType !== undefined) out.facetType = c.facetType;
  return out;
}

export function entityHeaderJson(state: State, e: EntityRecord): Record<string, unknown> {
  const v = state.currentVersion(e);
  return {
    name: e.name,
    id: synId(e.id),
    type: KIND_CONCRETE[e.kind],
    versionNumber: v.versionNumber,
    versionLabel: v.versionLabel,
    benefactorId: state.benefactor(e).id,
    createdOn: e.createdOn,
    modifiedOn: e.modifiedOn,
    createdBy: e.createdBy,
    modifiedBy: e.modifiedBy,
    isLatestVersion: true,
  };
}

export function versionInfoJson(state: State, e: EntityRecord, v: EntityVersion): Record<string, unknown> {
  const out: Record<string, unknown> = {
    id: synId(e.id),
    versionNumber: v.versionNumber,
    versionLabel: v.versionLabel,
  };
  if (v.versionComment !== undefined) out.versionComment = v.versionComment;
  const fh = v.dataFileHandleId ? state.fileHandles.get(v.dataFileHandleId) : undefined;
  if (fh) {
    out.contentSize = String(fh.contentSize);
    out.contentMd5 = fh.contentMd5;
  }
  out.modifiedBy = state.userName(v.modifiedBy);
  out.modifiedByPrincipalId = v.modifiedBy;
  out.modifiedOn = v.modifiedOn;
  out.isLatestVersion = v.versionNumber === state.currentVersion(e).versionNumber;
  return out;
}

export function fileHandleJson(fh: FileHandleRecord): Record<string, unknown> {
  return {
    id: fh.id,
    etag: fh.etag,
    createdBy: fh.createdBy,
    createdOn: fh.createdOn,
    modifiedOn: fh.modifiedOn,
    concreteType: CONCRETE.s3FileHandle,
    contentType: fh.contentType,
    contentMd5: fh.contentMd5,
    fileName: fh.fileName,
    storageLocationId: fh.storageLocationId,
    contentSize: fh.contentSize,
    status: 'AVAILABLE',
    bucketName: fh.bucketName,
    key: fh.key,
    isPreview: false,
  };
}

export function storageLocationJson(loc: StorageLocationRecord): Record<string, unknown> {
  const out: Record<string, unknown> = {
    concreteType: loc.concreteType,
    storageLocationId: loc.storageLocationId,
    uploadType: loc.uploadType,
  };
  if (loc.banner !== undefined) out.banner = loc.banner;
  if (loc.description !== undefined) out.description = loc.description;
  out.etag = loc.etag;
  out.createdOn = loc.createdOn;
  out.createdBy = Number(loc.createdBy);
  if (loc.concreteType === CONCRETE.externalS3Location) {
    out.bucket = loc.bucket;
    if (loc.endpointUrl !== undefined) out.endpointUrl = loc.endpointUrl;
  }
  if (loc.baseKey !== undefined) out.baseKey = loc.baseKey;
  if (loc.stsEnabled !== undefined) out.stsEnabled = loc.stsEnabled;
  return out;
}

/** UploadDestination for a storage location; `s3Endpoint` stands in for https://s3.amazonaws.com. */
export function uploadDestinationJson(loc: StorageLocationRecord, s3Endpoint: string): Record<string, unknown> {
  if (loc.concreteType === CONCRETE.externalS3Location) {
    const out: Record<string, unknown> = {
      concreteType: CONCRETE.externalS3UploadDestination,
      storageLocationId: loc.storageLocationId,
      uploadType: loc.uploadType,
      stsEnabled: loc.stsEnabled === true,
      bucket: loc.bucket,
      endpointUrl: s3Endpoint,
    };
    if (loc.baseKey !== undefined) out.baseKey = loc.baseKey;
    if (loc.banner !== undefined) out.banner = loc.banner;
    return out;
  }
  const out: Record<string, unknown> = {
    concreteType: CONCRETE.s3UploadDestination,
    storageLocationId: loc.storageLocationId,
    uploadType: loc.uploadType,
    stsEnabled: loc.stsEnabled === true,
  };
  if (loc.baseKey !== undefined) out.baseKey = loc.baseKey;
  if (loc.banner !== undefined) out.banner = loc.banner;
  return out;
}

export function projectSettingJson(s: ProjectSettingRecord): Record<string, unknown> {
  return {
    concreteType: CONCRETE.uploadListSetting,
    id: s.id,
    projectId: s.projectId,
    settingsType: 'upload',
    etag: s.etag,
    locations: [...s.locations],
  };
}
