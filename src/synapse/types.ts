/**
 * Wire models of the Synapse REST API subset we use (see shared/synapse-api.md).
 *
 * Field names and shapes are exactly Synapse's JSON; optional fields are the ones Synapse may omit.
 * IDs: entity ids are "synN" strings; file handle and storage location ids are numeric strings on
 * the wire in some places and integers in others — the client normalises file handle ids to
 * strings and storage location ids to numbers.
 */

/** Synapse's default storage location (S3UploadDestination's storageLocationId: 1, synapse-api.md). */
export const SYNAPSE_STORAGE_LOCATION_ID = 1;

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
  entityView: 'org.sagebionetworks.repo.model.table.EntityView',
  queryBundleRequest: 'org.sagebionetworks.repo.model.table.QueryBundleRequest',
  queryResultBundle: 'org.sagebionetworks.repo.model.table.QueryResultBundle',
  queryResult: 'org.sagebionetworks.repo.model.table.QueryResult',
  rowSet: 'org.sagebionetworks.repo.model.table.RowSet',
  queryNextPageToken: 'org.sagebionetworks.repo.model.table.QueryNextPageToken',
  columnModel: 'org.sagebionetworks.repo.model.table.ColumnModel',
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
  /** EntityView only: the containers whose subtrees the view covers, and the entity types (File = 0x01). */
  scopeIds?: string[];
  viewTypeMask?: number;
  columnIds?: string[];
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
  permissions?: UserEntityPermissions;
}

/**
 * What the caller may do with an entity (UserEntityPermissions; the fields the mount reads).
 * canAddChild and canEdit already account for certification where Synapse requires it.
 */
export interface UserEntityPermissions {
  canAddChild: boolean;
  canEdit: boolean;
  canDelete: boolean;
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

// ---------- Tables and views (TableController: POST/GET /entity/{id}/table/query/async/…) ----------

/** EntityView.viewTypeMask bits (HasViewTypeMask): File=0x01, Project=0x02, Table=0x04, Folder=0x08, … */
export const VIEW_TYPE_FILE = 0x01;

/** QueryBundleRequest.partMask bits. */
export const QUERY_PART = { results: 0x1, count: 0x2, selectColumns: 0x4, maxRowsPerPage: 0x8, columnModels: 0x10 } as const;

/** org.sagebionetworks.repo.model.table.Query (the subset we send). */
export interface TableQuery {
  sql: string;
  offset?: number;
  limit?: number;
  includeEntityEtag?: boolean;
}

/** Body of POST /entity/{id}/table/query/async/start. */
export interface QueryBundleRequest {
  concreteType: string;
  entityId: string;
  query: TableQuery;
  partMask?: number;
}

export interface SelectColumn {
  name: string;
  columnType?: string;
  id?: string;
}

/** A row of a RowSet: `values` align with `headers`; a null cell is null. */
export interface TableRow {
  rowId?: number;
  versionNumber?: number;
  etag?: string;
  values: Array<string | null>;
}

export interface RowSet {
  concreteType?: string;
  tableId?: string;
  etag?: string;
  headers: SelectColumn[];
  rows: TableRow[];
}

export interface QueryResult {
  concreteType?: string;
  queryResults: RowSet;
  /** Present when the page is full (rows = maxRowsPerPage): more rows may follow. */
  nextPageToken?: { concreteType?: string; entityId?: string; token: string };
}

export interface QueryResultBundle {
  concreteType?: string;
  queryResult?: QueryResult;
  queryCount?: number;
  selectColumns?: SelectColumn[];
  maxRowsPerPage?: number;
}

/** org.sagebionetworks.repo.model.asynch.AsynchronousJobStatus (the fields we read). */
export interface AsynchronousJobStatus {
  jobState: 'PROCESSING' | 'FAILED' | 'COMPLETE';
  jobId?: string;
  jobCanceling?: boolean;
  progressMessage?: string;
  progressCurrent?: number;
  progressTotal?: number;
  errorMessage?: string;
  errorDetails?: string;
  startedOn?: string;
  changedOn?: string;
}

/** GET …/async/get/{token}: 202 → still running (its status); other 2xx → the result. */
export type TableQueryPoll =
  | { done: false; status: AsynchronousJobStatus }
  | { done: true; bundle: QueryResultBundle };
