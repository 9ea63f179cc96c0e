/**
 * SynapseApi: the seam between the filesystem and Synapse's REST API.
 *
 * The filesystem depends only on this interface; `HttpSynapseClient` (http-client.ts) implements it
 * over HTTP. Every method maps to one documented Synapse call (or a paged series of them) — no
 * method may assume anything real Synapse does not offer (see shared/synapse-api.md).
 * Errors are thrown as `SynapseError` (errors.ts) with the HTTP status and Synapse's `reason`.
 */
import type {
  AddPartResponse,
  BatchFileResult,
  Entity,
  EntityBundle,
  EntityHeader,
  ExternalS3FileHandleRequest,
  FileHandleAssociation,
  MultipartUploadRequest,
  MultipartUploadStatus,
  NewEntity,
  PartPresignedUrl,
  S3FileHandle,
  StorageLocationSetting,
  StsCredentials,
  StsPermission,
  TableQueryPoll,
  UploadDestination,
  UploadDestinationListSetting,
  UserProfile,
  VersionInfo,
} from './types.js';

export type ChildType = 'folder' | 'file' | 'link' | 'project';

export interface BundleRequest {
  includeEntity?: boolean;
  includeAnnotations?: boolean;
  includeFileHandles?: boolean;
  includeRestrictionInformation?: boolean;
  /** The caller's UserEntityPermissions on the entity (canAddChild, canEdit, canDelete, …). */
  includePermissions?: boolean;
}

export interface SynapseApi {
  /** GET /repo/v1/userProfile — also validates the token. */
  getUserProfile(): Promise<UserProfile>;

  /** GET /repo/v1/entity/{id} */
  getEntity(id: string): Promise<Entity>;
  /** POST /repo/v1/entity — 409 when the name is taken in the parent. */
  createEntity(entity: NewEntity): Promise<Entity>;
  /** PUT /repo/v1/entity/{id}[?newVersion=true] — 412 on a stale etag. */
  updateEntity(entity: Entity, opts?: { newVersion?: boolean }): Promise<Entity>;
  /** DELETE /repo/v1/entity/{id} (to the trash can). */
  deleteEntity(id: string): Promise<void>;
  /**
   * PUT /repo/v1/trashcan/restore/{id} — back into the parent it was deleted from. Only its
   * deleter may (403); 404 when it is not in the trash can; 409 when the name is taken again.
   */
  restoreFromTrash(id: string): Promise<void>;
  /** POST /repo/v1/entity/children, following nextPageToken until the end. */
  listChildren(parentId: string, types: ChildType[]): Promise<EntityHeader[]>;
  /** POST /repo/v1/entity/child — null when absent (404). */
  lookupChild(parentId: string, name: string): Promise<string | null>;
  /** POST /repo/v1/entity/{id}[/version/{n}]/bundle2 */
  getBundle(id: string, request: BundleRequest, version?: number): Promise<EntityBundle>;
  /** GET /repo/v1/entity/{id}/version?offset=0&limit=1 — the newest version's size and md5. */
  getLatestVersionInfo(id: string): Promise<VersionInfo>;

  /** GET /file/v1/fileHandle/{id} (creator only). */
  getFileHandle(id: string): Promise<S3FileHandle>;
  /** POST /file/v1/fileHandle/batch — callers pass at most 100 associations. */
  batchFileHandles(
    files: FileHandleAssociation[],
    opts: { includeFileHandles: boolean; includePreSignedURLs: boolean },
  ): Promise<BatchFileResult[]>;
  /** POST /file/v1/externalFileHandle/s3 */
  createExternalS3FileHandle(request: ExternalS3FileHandleRequest): Promise<S3FileHandle>;

  /** GET /file/v1/entity/{id}/uploadDestination */
  getUploadDestination(parentId: string): Promise<UploadDestination>;
  /** POST /repo/v1/storageLocation */
  createStorageLocation(setting: StorageLocationSetting): Promise<StorageLocationSetting>;
  /** GET /repo/v1/storageLocation/{id} */
  getStorageLocation(id: number): Promise<StorageLocationSetting>;
  /** GET /repo/v1/projectSettings/{id}/type/upload — null when none exists (200, empty body). */
  getUploadProjectSetting(projectOrFolderId: string): Promise<UploadDestinationListSetting | null>;
  /** POST /repo/v1/projectSettings */
  createProjectSetting(setting: UploadDestinationListSetting): Promise<UploadDestinationListSetting>;
  /** PUT /repo/v1/projectSettings */
  updateProjectSetting(setting: UploadDestinationListSetting): Promise<void>;

  /** GET /repo/v1/entity/{id}/sts?permission=… */
  getStsCredentials(entityId: string, permission: StsPermission): Promise<StsCredentials>;

  /** POST /file/v1/file/multipart?forceRestart=… — the same request again resumes. */
  startMultipartUpload(request: MultipartUploadRequest, forceRestart?: boolean): Promise<MultipartUploadStatus>;
  /** POST /file/v1/file/multipart/{uploadId}/presigned/url/batch */
  getPartUploadUrls(uploadId: string, partNumbers: number[]): Promise<PartPresignedUrl[]>;
  /** PUT /file/v1/file/multipart/{uploadId}/add/{partNumber}?partMD5Hex=… */
  addPart(uploadId: string, partNumber: number, partMd5Hex: string): Promise<AddPartResponse>;
  /** PUT /file/v1/file/multipart/{uploadId}/complete */
  completeMultipartUpload(uploadId: string): Promise<MultipartUploadStatus>;

  /**
   * POST /repo/v1/entity/{viewId}/table/query/async/start with a QueryBundleRequest → the job's
   * token. `sql` names the view (`FROM synN`); offset/limit override the SQL's pagination.
   * Use `queryView` (table-query.ts) to poll and page.
   */
  startTableQuery(viewId: string, sql: string, opts?: TableQueryOptions): Promise<string>;
  /**
   * GET /repo/v1/entity/{viewId}/table/query/async/get/{token}: `{done: false}` while the job runs
   * (202 + AsynchronousJobStatus), else the QueryResultBundle. A failed job is a SynapseError.
   */
  getTableQueryResult(viewId: string, token: string): Promise<TableQueryPoll>;
}

export interface TableQueryOptions {
  offset?: number;
  limit?: number;
  /** QueryBundleRequest.partMask (QUERY_PART in types.ts); Synapse's default is every part. */
  partMask?: number;
}
