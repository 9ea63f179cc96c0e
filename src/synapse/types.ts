/**
 * Wire models of the Synapse REST API subset we use (see shared/synapse-api.md).
 *
 * Field names and shapes are exactly Synapse's JSON; optional fields are the ones Synapse may omit.
 * IDs: entity ids are "synN" strings; file handle and storage location ids are numeric strings on
 * the wire in some places and integers in others — the client normalises file handle ids to
 * strings and storage location ids to numbers.
 */

export const CONCRETE = {
  project: 'org.sagebionetworks.repo.model.Project',
  folder: 'org.sagebionetworks.repo.model.Folder',
  file: 'org.sagebionetworks.repo.model.FileEntity',
  link: 'org.sagebionetworks.repo.model.Link',
  s3FileHandle: 'org.sagebionetworks.repo.model.file.S3FileHandle',
  externalS3Location: 'org.sagebionetworks.repo.model.project.ExternalS3StorageLocationSetting',
  s3Location: 'org.sagebionetworks.repo.model.project.S3StorageLocationSetting',
  uploadListSetting: 'org.sagebionetworks.repo.model.project.UploadDestinationListSetting',
  s3UploadDestination: 'org.sagebionetworks.repo.model.file.S3UploadDestination',
  externalS3UploadDestination: 'org.sagebionetworks.repo.model.file.ExternalS3UploadDestination',
  multipartUploadRequest: 'org.sagebionetworks.repo.model.file.MultipartUploadRequest',
  entityChildrenRequest: 'org.sagebionetworks.repo.model.EntityChildrenRequest',
} as const;

export interface UserProfile {
  ownerId: string;
  userName: string;
  displayName?: string;
  emails?: string[];
}

export interface Entity {
  id: string;
  name: string;
  parentId?: string;
  etag: string;
  concreteType: string;
  createdOn: string;
  modifiedOn: string;
  createdBy: string;
  modifiedBy: string;
  versionNumber?: number;
  versionLabel?: string;
  isLatestVersion?: boolean;
  dataFileHandleId?: string;
  linksTo?: { targetId: string; targetVersionNumber?: number };
  linksToClassName?: string;
  description?: string;
}

/** The body of POST /entity: what a client sends to create an entity. */
export interface NewEntity {
  concreteType: string;
  name: string;
  parentId?: string;
  dataFileHandleId?: string;
  linksTo?: { targetId: string; targetVersionNumber?: number };
  linksToClassName?: string;
}

export interface EntityHeader {
  id: string;
  name: string;
  type: string;
  versionNumber?: number;
  versionLabel?: string;
  benefactorId?: number;
  createdOn?: string;
  modifiedOn?: string;
  createdBy?: string;
  modifiedBy?: string;
  isLatestVersion?: boolean;
}

export interface EntityChildrenResponse {
  page: EntityHeader[];
  nextPageToken?: string | null;
}

export interface VersionInfo {
  id: string;
  versionNumber: number;
  versionLabel?: string;
  contentSize?: string;
  contentMd5?: string;
  modifiedOn: string;
  modifiedByPrincipalId?: string;
  isLatestVersion?: boolean;
}

export interface S3FileHandle {
  id: string;
  etag: string;
  concreteType: string;
  bucketName: string;
  key: string;
  contentMd5?: string;
  contentSize: number;
  contentType?: string;
  fileName: string;
  storageLocationId?: number;
  createdBy: string;
  createdOn: string;
  modifiedOn?: string;
  /** AVAILABLE | UNLINKED | ARCHIVED — a handle that is not AVAILABLE should not be read. */
  status?: string;
  previewId?: string;
  isPreview?: boolean;
  endpointUrl?: string;
}

export interface EntityBundle {
  entity?: Entity;
  entityType?: string;
  annotations?: { id: string; etag: string; annotations: Record<string, { type: string; value: string[] }> };
  fileHandles?: S3FileHandle[];
  restrictionInformation?: { hasUnmetAccessRequirement: boolean };
}

export interface FileHandleAssociation {
  fileHandleId: string;
  associateObjectId: string;
  associateObjectType: 'FileEntity' | 'TableEntity';
}

export interface BatchFileResult {
  fileHandleId: string;
  fileHandle?: S3FileHandle;
  preSignedURL?: string;
  previewPreSignedURL?: string;
  failureCode?: 'NOT_FOUND' | 'UNAUTHORIZED';
}

export interface StsCredentials {
  bucket: string;
  baseKey?: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: string;
}

export type StsPermission = 'read_only' | 'read_write';

export interface UploadDestination {
  concreteType: string;
  storageLocationId: number;
  uploadType: string;
  stsEnabled?: boolean;
  banner?: string;
  /** ExternalS3UploadDestination only */
  bucket?: string;
  baseKey?: string;
  endpointUrl?: string;
}

export interface StorageLocationSetting {
  concreteType: string;
  storageLocationId?: number;
  uploadType: string;
  bucket?: string;
  baseKey?: string;
  stsEnabled?: boolean;
  banner?: string;
  endpointUrl?: string;
  createdBy?: string;
  createdOn?: string;
  etag?: string;
}

export interface UploadDestinationListSetting {
  concreteType: string;
  id?: string;
  etag?: string;
  projectId: string;
  settingsType: 'upload';
  locations: number[];
}

export interface ExternalS3FileHandleRequest {
  concreteType: string;
  bucketName: string;
  key: string;
  storageLocationId: number;
  contentMd5: string;
  contentSize: number;
  fileName: string;
  contentType?: string;
}

export interface MultipartUploadRequest {
  concreteType?: string;
  contentMD5Hex: string;
  fileName: string;
  fileSizeBytes: number;
  partSizeBytes: number;
  contentType?: string;
  storageLocationId?: number;
  generatePreview?: boolean;
}

export interface MultipartUploadStatus {
  uploadId: string;
  state: 'UPLOADING' | 'COMPLETED';
  partsState: string;
  startedBy?: string;
  startedOn?: string;
  updatedOn?: string;
  resultFileHandleId?: string;
}

export interface PartPresignedUrl {
  partNumber: number;
  uploadPresignedUrl: string;
  signedHeaders?: Record<string, string>;
}

export interface AddPartResponse {
  uploadId: string;
  partNumber: number;
  addPartState: 'ADD_SUCCESS' | 'ADD_FAILED';
  errorMessage?: string;
}
