/**
 * FaultySynapseApi: a failure-injecting wrapper around any SynapseApi (CONVENTIONS §2, after
 * mountpoint-s3's failure_client.rs) — for tests of what the layers above do when Synapse fails.
 *
 * Failures are scripted per method: `fail('updateEntity', { times: 2, status: 503 })` makes the
 * next two calls of updateEntity throw SynapseError(503) without reaching the wrapped API;
 * `failNext(method, times, status)` is the short form. Options:
 *  - `skip`: let this many calls through first (fail the 3rd call: `{ skip: 2 }`);
 *  - `afterCall`: make the real call first, then throw — Synapse did the work but the answer was
 *    lost (a reset connection, a timeout after commit), the case where a retry meets a 409 or a
 *    stale etag and `recover` must not publish twice;
 *  - `error`: throw this instead of a SynapseError (or build it per call);
 *  - `delayMs`: wait before answering (to widen races), failing or not.
 * Scripts for one method run in the order they were added; a script is used up after `times`
 * failures. `calls` counts every call per method (failed ones included) and `injected` the
 * failures thrown. Injected SynapseErrors carry the HTTP verb and path template of the method
 * and a reason starting with "injected".
 */
import { FaultScript, type ScriptedFault } from '../fault-script.js';
import type { BundleRequest, ChildType, SynapseApi } from './api.js';
import { SynapseError } from './errors.js';
import type {
  AddPartResponse, BatchFileResult, Entity, EntityBundle, EntityHeader, ExternalS3FileHandleRequest,
  FileHandleAssociation, MultipartUploadRequest, MultipartUploadStatus, NewEntity, PartPresignedUrl,
  S3FileHandle, StorageLocationSetting, StsCredentials, StsPermission, UploadDestination,
  UploadDestinationListSetting, UserProfile, VersionInfo,
} from './types.js';

export type SynapseMethod = keyof SynapseApi;

export interface SynapseFault extends ScriptedFault {
  /** HTTP status of the injected SynapseError (default 500). */
  status?: number;
  /** Its reason (default "injected failure"). */
  reason?: string;
}

/** HTTP verb and path of each method, for the injected errors' messages. */
const ROUTES: Record<SynapseMethod, [string, string]> = {
  getUserProfile: ['GET', '/repo/v1/userProfile'],
  getEntity: ['GET', '/repo/v1/entity/{id}'],
  createEntity: ['POST', '/repo/v1/entity'],
  updateEntity: ['PUT', '/repo/v1/entity/{id}'],
  deleteEntity: ['DELETE', '/repo/v1/entity/{id}'],
  restoreFromTrash: ['PUT', '/repo/v1/trashcan/restore/{id}'],
  listChildren: ['POST', '/repo/v1/entity/children'],
  lookupChild: ['POST', '/repo/v1/entity/child'],
  getBundle: ['POST', '/repo/v1/entity/{id}/bundle2'],
  getLatestVersionInfo: ['GET', '/repo/v1/entity/{id}/version'],
  getFileHandle: ['GET', '/file/v1/fileHandle/{id}'],
  batchFileHandles: ['POST', '/file/v1/fileHandle/batch'],
  createExternalS3FileHandle: ['POST', '/file/v1/externalFileHandle/s3'],
  getUploadDestination: ['GET', '/file/v1/entity/{id}/uploadDestination'],
  createStorageLocation: ['POST', '/repo/v1/storageLocation'],
  getStorageLocation: ['GET', '/repo/v1/storageLocation/{id}'],
  getUploadProjectSetting: ['GET', '/repo/v1/projectSettings/{id}/type/upload'],
  createProjectSetting: ['POST', '/repo/v1/projectSettings'],
  updateProjectSetting: ['PUT', '/repo/v1/projectSettings'],
  getStsCredentials: ['GET', '/repo/v1/entity/{id}/sts'],
  startMultipartUpload: ['POST', '/file/v1/file/multipart'],
  getPartUploadUrls: ['POST', '/file/v1/file/multipart/{uploadId}/presigned/url/batch'],
  addPart: ['PUT', '/file/v1/file/multipart/{uploadId}/add/{partNumber}'],
  completeMultipartUpload: ['PUT', '/file/v1/file/multipart/{uploadId}/complete'],
  startTableQuery: ['POST', '/repo/v1/entity/{id}/table/query/async/start'],
  getTableQueryResult: ['GET', '/repo/v1/entity/{id}/table/query/async/get/{asyncToken}'],
};

export class FaultySynapseApi implements SynapseApi {
  private readonly script = new FaultScript<SynapseMethod, SynapseFault>();
  readonly calls = this.script.calls;
  readonly injected = this.script.injected;

  constructor(readonly inner: SynapseApi) {}

  /** Script failures of `method` (see the header). */
  fail(method: SynapseMethod, fault: SynapseFault = {}): this {
    this.script.add(method, fault);
    return this;
  }

  /** Fail the next `times` calls of `method` with SynapseError(`status`). */
  failNext(method: SynapseMethod, times = 1, status = 500): this {
    return this.fail(method, { times, status });
  }

  /** Failures still scripted for `method`. */
  pending(method: SynapseMethod): number {
    return this.script.pending(method);
  }

  clear(): void {
    this.script.clear();
  }

  private run<T>(method: SynapseMethod, call: () => Promise<T>): Promise<T> {
    return this.script.run(method, call, (f) => {
      const [verb, path] = ROUTES[method];
      return new SynapseError(f.status ?? 500, f.reason ?? 'injected failure', verb, path);
    });
  }

  getUserProfile(): Promise<UserProfile> { return this.run('getUserProfile', () => this.inner.getUserProfile()); }
  getEntity(id: string): Promise<Entity> { return this.run('getEntity', () => this.inner.getEntity(id)); }
  createEntity(entity: NewEntity): Promise<Entity> { return this.run('createEntity', () => this.inner.createEntity(entity)); }
  updateEntity(entity: Entity, opts?: { newVersion?: boolean }): Promise<Entity> {
    return this.run('updateEntity', () => this.inner.updateEntity(entity, opts));
  }
  deleteEntity(id: string): Promise<void> { return this.run('deleteEntity', () => this.inner.deleteEntity(id)); }
  restoreFromTrash(id: string): Promise<void> { return this.run('restoreFromTrash', () => this.inner.restoreFromTrash(id)); }
  listChildren(parentId: string, types: ChildType[]): Promise<EntityHeader[]> {
    return this.run('listChildren', () => this.inner.listChildren(parentId, types));
  }
  lookupChild(parentId: string, name: string): Promise<string | null> {
    return this.run('lookupChild', () => this.inner.lookupChild(parentId, name));
  }
  getBundle(id: string, request: BundleRequest, version?: number): Promise<EntityBundle> {
    return this.run('getBundle', () => this.inner.getBundle(id, request, version));
  }
  getLatestVersionInfo(id: string): Promise<VersionInfo> { return this.run('getLatestVersionInfo', () => this.inner.getLatestVersionInfo(id)); }
  getFileHandle(id: string): Promise<S3FileHandle> { return this.run('getFileHandle', () => this.inner.getFileHandle(id)); }
  batchFileHandles(files: FileHandleAssociation[], opts: { includeFileHandles: boolean; includePreSignedURLs: boolean }): Promise<BatchFileResult[]> {
    return this.run('batchFileHandles', () => this.inner.batchFileHandles(files, opts));
  }
  createExternalS3FileHandle(request: ExternalS3FileHandleRequest): Promise<S3FileHandle> {
    return this.run('createExternalS3FileHandle', () => this.inner.createExternalS3FileHandle(request));
  }
  getUploadDestination(parentId: string): Promise<UploadDestination> {
    return this.run('getUploadDestination', () => this.inner.getUploadDestination(parentId));
  }
  createStorageLocation(setting: StorageLocationSetting): Promise<StorageLocationSetting> {
    return this.run('createStorageLocation', () => this.inner.createStorageLocation(setting));
  }
  getStorageLocation(id: number): Promise<StorageLocationSetting> { return this.run('getStorageLocation', () => this.inner.getStorageLocation(id)); }
  getUploadProjectSetting(projectOrFolderId: string): Promise<UploadDestinationListSetting | null> {
    return this.run('getUploadProjectSetting', () => this.inner.getUploadProjectSetting(projectOrFolderId));
  }
  createProjectSetting(setting: UploadDestinationListSetting): Promise<UploadDestinationListSetting> {
    return this.run('createProjectSetting', () => this.inner.createProjectSetting(setting));
  }
  updateProjectSetting(setting: UploadDestinationListSetting): Promise<void> {
    return this.run('updateProjectSetting', () => this.inner.updateProjectSetting(setting));
  }
  getStsCredentials(entityId: string, permission: StsPermission): Promise<StsCredentials> {
    return this.run('getStsCredentials', () => this.inner.getStsCredentials(entityId, permission));
  }
  startMultipartUpload(request: MultipartUploadRequest, forceRestart?: boolean): Promise<MultipartUploadStatus> {
    return this.run('startMultipartUpload', () => this.inner.startMultipartUpload(request, forceRestart));
  }
  getPartUploadUrls(uploadId: string, partNumbers: number[]): Promise<PartPresignedUrl[]> {
    return this.run('getPartUploadUrls', () => this.inner.getPartUploadUrls(uploadId, partNumbers));
  }
  addPart(uploadId: string, partNumber: number, partMd5Hex: string): Promise<AddPartResponse> {
    return this.run('addPart', () => this.inner.addPart(uploadId, partNumber, partMd5Hex));
  }
  completeMultipartUpload(uploadId: string): Promise<MultipartUploadStatus> {
    return this.run('completeMultipartUpload', () => this.inner.completeMultipartUpload(uploadId));
  }
  // table/view queries (added with --metadata-view)
  startTableQuery(viewId: string, sql: string, opts?: import('./api.js').TableQueryOptions): Promise<string> {
    return this.run('startTableQuery', () => this.inner.startTableQuery(viewId, sql, opts));
  }
  getTableQueryResult(viewId: string, token: string): Promise<import('./types.js').TableQueryPoll> {
    return this.run('getTableQueryResult', () => this.inner.getTableQueryResult(viewId, token));
  }
}
