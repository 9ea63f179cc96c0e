/**
 * File-handle routes (file service): GET /fileHandle/{id} (creator only), GET
 * /fileHandle/{id}/url, POST /fileHandle/batch (≤ 100 associations; per item NOT_FOUND or
 * UNAUTHORIZED; presigned URLs are real SigV4 GETs on the local S3 living
 * `presignedUrlLifetimeSec`, 30 s like Synapse), POST /externalFileHandle/s3 with the checks of
 * FileHandleManagerImpl.createExternalS3FileHandle (32-hex MD5, ExternalS3 location, bucket
 * match, baseKey match for STS locations, only the location's creator, object must exist).
 */
import { CONCRETE } from '../../../src/synapse/types.js';
import { MAX_BATCH_FILE_REQUESTS } from '../config.js';
import { asObject, badRequest, forbidden, notFound, optNumber, optString, reqString, type Router } from '../http.js';
import { parseSynId, type FileHandleRecord, type State, type User } from '../state.js';
import { fileHandleJson } from '../views.js';
import type { Deps } from './common.js';

const MD5_HEX = /^[0-9a-fA-F]{32}$/;
const NOT_SET = 'NOT_SET';

function ownHandle(state: State, id: string | undefined, user: User): FileHandleRecord {
  const fh = id === undefined ? undefined : state.fileHandles.get(id);
  if (!fh) throw notFound(`FileHandle does not exist for id: ${id ?? ''}`);
  if (fh.createdBy !== user.id) throw forbidden('Only the creator of a FileHandle can access it');
  return fh;
}

export function register(router: Router, deps: Deps): void {
  const { state, s3, config } = deps;

  const presign = (fh: FileHandleRecord): Promise<string> =>
    s3.presignGet(fh.bucketName, fh.key, config.presignedUrlLifetimeSec, fh.fileName, fh.contentType);

  router.add('GET', 'file', '/fileHandle/{id}', ({ params, user }) => {
    return { status: 200, json: fileHandleJson(ownHandle(state, params.id, user)) };
  });

  router.add('GET', 'file', '/fileHandle/{id}/url', async ({ params, user, url }) => {
    const fh = ownHandle(state, params.id, user);
    const u = await presign(fh);
    if (url.searchParams.get('redirect') === 'false') return { status: 200, text: u };
    return { status: 307, location: u };
  });

  router.add('POST', 'file', '/fileHandle/batch', async ({ body, user }) => {
    const b = asObject(body, 'BatchFileRequest');
    const files = b.requestedFiles;
    if (!Array.isArray(files)) throw badRequest('requestedFiles is required.');
    const incHandles = b.includeFileHandles === true;
    const incUrls = b.includePreSignedURLs === true;
    const incPreview = b.includePreviewPreSignedURLs === true;
    if (!incHandles && !incUrls && !incPreview) {
      throw badRequest('At least one of includeFileHandles, includePreSignedURLs, or includePreviewPreSignedURLs must be true');
    }
    if (files.length > MAX_BATCH_FILE_REQUESTS) {
      throw badRequest(`Request exceeds the maximum number of objects per request: ${MAX_BATCH_FILE_REQUESTS}`);
    }
    const results: Array<Record<string, unknown>> = [];
    for (const item of files) {
      const a = asObject(item, 'FileHandleAssociation');
      const fileHandleId = reqString(a, 'fileHandleId');
      const objectType = optString(a, 'associateObjectType');
      const objectId = parseSynId(optString(a, 'associateObjectId'));
      const r: Record<string, unknown> = { fileHandleId };
      const e = objectId === undefined ? undefined : state.live(objectId);
      const associated = objectType === 'FileEntity' && e !== undefined && e.kind === 'file'
        && e.versions.some((v) => v.dataFileHandleId === fileHandleId);
      if (!associated || !e || !state.can(e, user.id, 'READ', 'DOWNLOAD')) {
        r.failureCode = 'UNAUTHORIZED';
      } else {
        const fh = state.fileHandles.get(fileHandleId);
        if (!fh) r.failureCode = 'NOT_FOUND';
        else {
          if (incHandles) r.fileHandle = fileHandleJson(fh);
          if (incUrls) r.preSignedURL = await presign(fh);
        }
      }
      results.push(r);
    }
    return { status: 201, json: { requestedFiles: results } }; // UploadController: CREATED
  });

  router.add('POST', 'file', '/externalFileHandle/s3', async ({ body, user }) => {
    const b = asObject(body, 'S3FileHandle');
    const storageLocationId = optNumber(b, 'storageLocationId');
    if (storageLocationId === undefined) throw badRequest('FileHandle.storageLocationId is required.');
    const bucketName = optString(b, 'bucketName');
    if (!bucketName) throw badRequest('FileHandle.bucket is required and must not be the empty string.');
    const key = optString(b, 'key');
    if (!key) throw badRequest('FileHandle.key is required and must not be the empty string.');
    const contentMd5 = optString(b, 'contentMd5');
    if (!contentMd5) throw badRequest('FileHandle.contentMd5 is required and must not be the empty string.');
    if (!MD5_HEX.test(contentMd5)) throw badRequest('The content MD5 digest must be a valid hexadecimal string of length 32.');
    const loc = state.storageLocations.get(storageLocationId);
    if (!loc) throw notFound(`StorageLocationSetting with id ${storageLocationId} does not exist`);
    if (loc.concreteType !== CONCRETE.externalS3Location) {
      throw badRequest(`StorageLocationSetting.id=${storageLocationId} was not of the expected type: ${CONCRETE.externalS3Location}`);
    }
    if (bucketName !== loc.bucket) {
      throw badRequest(`The bucket for ExternalS3StorageLocationSetting.id=${storageLocationId} does not match the provided bucket: ${bucketName}`);
    }
    if (loc.stsEnabled === true && loc.baseKey !== undefined && !key.startsWith(loc.baseKey)) {
      throw badRequest(`The baseKey for ExternalS3StorageLocationSetting.id=${storageLocationId} does not match the provided key: ${key}`);
    }
    if (loc.createdBy !== user.id) {
      throw forbidden(
        `Only the creator of ExternalS3StorageLocationSetting.id=${storageLocationId} can create an external S3FileHandle with storageLocationId = ${storageLocationId}`,
      );
    }
    const head = await s3.head(bucketName, key);
    if (!head) throw badRequest(`Unable to access the file at bucket: ${bucketName} key: ${key}.`);
    const contentSize = optNumber(b, 'contentSize') ?? head.size;
    const fh = state.addFileHandle({
      createdBy: user.id,
      bucketName,
      key,
      contentMd5: contentMd5.toLowerCase(),
      contentSize,
      contentType: optString(b, 'contentType') ?? NOT_SET,
      fileName: optString(b, 'fileName') ?? NOT_SET,
      storageLocationId,
    });
    return { status: 200, json: fileHandleJson(fh) }; // UploadController: OK (not CREATED)
  });
}
