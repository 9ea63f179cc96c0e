/**
 * Synapse's multipart upload API (file service), MultipartManagerV2Impl + MultipartUtils:
 * create/resume (the same request by the same user resumes the same upload unless
 * ?forceRestart=true), presigned UploadPart URLs (15 min, signed with the admin key), add part
 * (checks the part S3 holds has that MD5 → ADD_SUCCESS, else ADD_FAILED with a message),
 * complete (all parts added; S3 CompleteMultipartUpload; the whole-object MD5 must equal
 * contentMD5Hex) → an S3FileHandle. Validation: file name rules, size ≥ 1 byte, part size ≥
 * 5 MiB, ≤ 10,000 parts. Every call answers 201 (UploadController's @ResponseStatus(CREATED)).
 * Keys: `<userId>/<uuid>/<fileName>`, prefixed by `<baseKey>/` in a location with a base key
 * (MultipartUtils.createNewKey).
 */
import { createHash, randomUUID } from 'node:crypto';
import { PART_URL_LIFETIME_SEC, S3_MAX_PARTS, S3_MIN_PART_SIZE } from '../config.js';
import { asObject, badRequest, forbidden, notFound, optNumber, optString, type Router } from '../http.js';
import { validateEntityName } from '../names.js';
import { DEFAULT_STORAGE_LOCATION_ID, nowIso, type MultipartRecord, type User } from '../state.js';
import type { Deps } from './common.js';

const MD5_HEX = /^[0-9a-fA-F]{32}$/;
const MAX_FILE_SIZE = 5 * 1024 ** 4; // 5 TB

function statusJson(u: MultipartRecord): Record<string, unknown> {
  const partsState = Array.from({ length: u.numberOfParts }, (_x, i) => (u.parts.has(i + 1) ? '1' : '0')).join('');
  const out: Record<string, unknown> = {
    uploadId: u.uploadId,
    startedBy: u.userId,
    startedOn: u.startedOn,
    updatedOn: u.updatedOn,
    state: u.state,
    partsState,
  };
  if (u.resultFileHandleId !== undefined) out.resultFileHandleId = u.resultFileHandleId;
  return out;
}

export function register(router: Router, deps: Deps): void {
  const { state, s3 } = deps;

  const ownUpload = (id: string | undefined, user: User): MultipartRecord => {
    const u = id === undefined ? undefined : state.multipart.get(id);
    if (!u) throw notFound(`Multipart upload with id ${id ?? ''} does not exist`);
    if (u.userId !== user.id) throw forbidden('Only the user that started a multipart upload can access it');
    return u;
  };

  router.add('POST', 'file', '/file/multipart', async ({ body, user, url }) => {
    const b = asObject(body, 'MultipartUploadRequest');
    const fileName = validateEntityName(optString(b, 'fileName'));
    const fileSizeBytes = optNumber(b, 'fileSizeBytes');
    if (fileSizeBytes === undefined) throw badRequest('FileSizeBytes is required.');
    if (fileSizeBytes < 1) throw badRequest('File size must be at least one byte');
    if (fileSizeBytes > MAX_FILE_SIZE) throw badRequest('The maximum file size is 5 TB');
    const partSizeBytes = optNumber(b, 'partSizeBytes');
    if (partSizeBytes === undefined) throw badRequest('PartSizeBytes is required.');
    if (partSizeBytes < S3_MIN_PART_SIZE) {
      throw badRequest(`Part size of ${partSizeBytes} bytes is too small.  The minimum part size is :${S3_MIN_PART_SIZE} bytes`);
    }
    const numberOfParts = Math.ceil(fileSizeBytes / partSizeBytes);
    if (numberOfParts > S3_MAX_PARTS) {
      throw badRequest(`File size of ${fileSizeBytes} bytes would require more than ${S3_MAX_PARTS} parts. Please choose a larger part size.`);
    }
    const contentMD5Hex = optString(b, 'contentMD5Hex');
    if (!contentMD5Hex) throw badRequest('ContentMD5Hex is required.');
    if (!MD5_HEX.test(contentMD5Hex)) throw badRequest('The content MD5 digest must be a valid hexadecimal string of length 32.');
    const storageLocationId = optNumber(b, 'storageLocationId') ?? DEFAULT_STORAGE_LOCATION_ID;
    const loc = state.storageLocations.get(storageLocationId);
    if (!loc) throw notFound(`StorageLocationSetting with id ${storageLocationId} does not exist`);
    const contentType = optString(b, 'contentType') ?? 'application/octet-stream';

    const requestHash = createHash('md5').update(JSON.stringify([
      user.id, fileName, fileSizeBytes, partSizeBytes, contentMD5Hex.toLowerCase(), storageLocationId, contentType,
      b.generatePreview === true,
    ])).digest('hex');
    const force = url.searchParams.get('forceRestart') === 'true';
    for (const u of state.multipart.values()) {
      if (u.requestHash !== requestHash) continue;
      if (force) { u.requestHash = `restarted-${u.uploadId}`; continue; }
      return { status: 201, json: statusJson(u) };
    }
    const base = loc.baseKey ? `${loc.baseKey}/` : '';
    const key = `${base}${user.id}/${randomUUID()}/${fileName}`;
    const s3UploadId = await s3.createMultipart(loc.bucket, key, contentType);
    const now = nowIso();
    const u: MultipartRecord = {
      uploadId: state.newUploadId(), requestHash, userId: user.id, bucket: loc.bucket, key, s3UploadId, fileName, contentType,
      contentMD5Hex: contentMD5Hex.toLowerCase(), fileSizeBytes, partSizeBytes, numberOfParts, storageLocationId,
      parts: new Map(), state: 'UPLOADING', startedOn: now, updatedOn: now,
    };
    state.multipart.set(u.uploadId, u);
    return { status: 201, json: statusJson(u) };
  });

  const checkPart = (u: MultipartRecord, n: number): void => {
    if (!Number.isInteger(n) || n < 1) throw badRequest('Part numbers cannot be less than one');
    if (n > u.numberOfParts) {
      throw badRequest(`Part number cannot be larger than number of parts. Number of parts: ${u.numberOfParts}, provided part number: ${n}`);
    }
  };

  router.add('POST', 'file', '/file/multipart/{uploadId}/presigned/url/batch', async ({ params, body, user }) => {
    const u = ownUpload(params.uploadId, user);
    const b = asObject(body, 'BatchPresignedUploadUrlRequest');
    const nums = b.partNumbers;
    if (!Array.isArray(nums) || nums.length === 0) throw badRequest('PartNumbers is required and must not be empty.');
    if (u.state === 'COMPLETED') throw badRequest('The multipart upload has already been completed');
    const out: Array<Record<string, unknown>> = [];
    for (const x of nums) {
      const n = Number(x);
      checkPart(u, n);
      out.push({
        partNumber: n,
        uploadPresignedUrl: await s3.presignUploadPart(u.bucket, u.key, u.s3UploadId, n, PART_URL_LIFETIME_SEC),
        signedHeaders: { 'Content-Type': u.contentType },
      });
    }
    return { status: 201, json: { partPresignedUrls: out } };
  });

  router.add('PUT', 'file', '/file/multipart/{uploadId}/add/{partNumber}', ({ params, user, url }) => {
    const u = ownUpload(params.uploadId, user);
    const n = Number(params.partNumber);
    checkPart(u, n);
    const md5 = url.searchParams.get('partMD5Hex');
    if (!md5) throw badRequest('PartMD5Hex is required.');
    const base = { uploadId: u.uploadId, partNumber: n };
    if (u.state === 'COMPLETED') return { status: 201, json: { ...base, addPartState: 'ADD_SUCCESS' } };
    const info = s3.partInfo(u.s3UploadId, n);
    if (!info) return { status: 201, json: { ...base, addPartState: 'ADD_FAILED', errorMessage: 'The uploaded part could not be found' } };
    if (info.etag.toLowerCase() !== md5.toLowerCase()) {
      return {
        status: 201,
        json: { ...base, addPartState: 'ADD_FAILED', errorMessage: 'The provided MD5 does not match the MD5 of the uploaded part.  Please re-upload the part.' },
      };
    }
    u.parts.set(n, info.etag.toLowerCase());
    u.updatedOn = nowIso();
    return { status: 201, json: { ...base, addPartState: 'ADD_SUCCESS' } };
  });

  router.add('PUT', 'file', '/file/multipart/{uploadId}/complete', async ({ params, user }) => {
    const u = ownUpload(params.uploadId, user);
    if (u.state === 'COMPLETED') return { status: 201, json: statusJson(u) };
    const missing: number[] = [];
    for (let i = 1; i <= u.numberOfParts; i++) if (!u.parts.has(i)) missing.push(i);
    if (missing.length) {
      throw badRequest(`All parts must be successfully added before a file upload can be completed. Missing parts: ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? ', …' : ''}`);
    }
    const parts = [...u.parts.entries()].sort((a, b) => a[0] - b[0]).map(([PartNumber, md5]) => ({ PartNumber, ETag: `"${md5}"` }));
    const r = await s3.completeMultipart(u.bucket, u.key, u.s3UploadId, parts);
    if ('code' in r) throw badRequest(`${r.code}: ${r.message}`);
    const head = await s3.head(u.bucket, u.key);
    if (!head) throw badRequest(`Unable to access the file at bucket: ${u.bucket} key: ${u.key}.`);
    if (r.etag.toLowerCase() !== u.contentMD5Hex) {
      throw badRequest(`The MD5 of the uploaded file (${r.etag}) does not match the contentMD5Hex of the upload request (${u.contentMD5Hex})`);
    }
    const fh = state.addFileHandle({
      createdBy: user.id, bucketName: u.bucket, key: u.key, contentMd5: u.contentMD5Hex, contentSize: head.size,
      contentType: u.contentType, fileName: u.fileName, storageLocationId: u.storageLocationId,
    });
    u.state = 'COMPLETED';
    u.resultFileHandleId = fh.id;
    u.updatedOn = nowIso();
    return { status: 201, json: statusJson(u) };
  });
}
