/**
 * Integration tests of the local Synapse + S3 stack (test/server) through real HTTP: raw fetch
 * for Synapse's REST API, @aws-sdk/client-s3 for the S3 gate. One stack serves the file; tests
 * that change knobs restore them. Waits for expiry poll with a bounded deadline (no fixed sleeps).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  S3Client, GetObjectCommand, PutObjectCommand, ListObjectsV2Command, CreateMultipartUploadCommand,
  UploadPartCommand, CompleteMultipartUploadCommand, S3ServiceException,
} from '@aws-sdk/client-s3';
import { startStack, type Stack } from '../server/stack.js';
import { CONCRETE } from '../../src/synapse/types.js';

const MiB = 1024 * 1024;
const md5 = (b: Uint8Array): string => createHash('md5').update(b).digest('hex');
/** A copy in a plain ArrayBuffer: fetch's BodyInit type (TS 5.9 + @types/node 20) rejects Buffer views. */
const body = (b: Buffer): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

let stack: Stack;
let projectId: string;

interface Res { status: number; json: any; text: string; headers: Headers }

async function call(method: string, path: string, body?: unknown, token: string | null = stack.authToken): Promise<Res> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (token !== null) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(stack.endpoint + path, {
    method, headers, signal: AbortSignal.timeout(20_000),
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await r.text();
  let json: any;
  try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
  return { status: r.status, json, text, headers: r.headers };
}

function s3Client(creds: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }, opts: Record<string, unknown> = {}): S3Client {
  const credentials = creds.sessionToken === undefined
    ? { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey }
    : { accessKeyId: creds.accessKeyId, secretAccessKey: creds.secretAccessKey, sessionToken: creds.sessionToken };
  return new S3Client({
    endpoint: stack.s3Endpoint, region: 'us-east-1', forcePathStyle: true, credentials, maxAttempts: 1, ...opts,
  });
}

async function s3Error(p: Promise<unknown>): Promise<{ name: string; status: number | undefined }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof S3ServiceException) return { name: e.name, status: e.$metadata.httpStatusCode };
    throw e;
  }
  assert.fail('expected an S3 error');
}

/** Poll `f` until it returns true, at most `ms`. */
async function waitFor(f: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await f()) return;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  stack = await startStack({ fixture: 'empty' });
  projectId = stack.seed.project('Test Project');
});

after(async () => {
  await stack?.close();
});

describe('auth and entities', () => {
  test('401 for a bad or missing token; userProfile for a good one', async () => {
    const bad = await call('GET', '/repo/v1/userProfile', undefined, 'not-a-token');
    assert.equal(bad.status, 401);
    assert.equal(typeof bad.json.reason, 'string');
    assert.equal((await call('GET', '/repo/v1/userProfile', undefined, null)).status, 401);
    const ok = await call('GET', '/repo/v1/userProfile');
    assert.equal(ok.status, 200);
    assert.equal(ok.json.userName, stack.userName);
    assert.equal(ok.json.ownerId, stack.userId);
  });

  test('entity create/get/update/delete, 409, 412, newVersion, name rules', async () => {
    const created = await call('POST', '/repo/v1/entity', { concreteType: CONCRETE.folder, name: '  crud folder ', parentId: projectId });
    assert.equal(created.status, 201);
    assert.equal(created.json.name, 'crud folder');
    assert.match(created.json.createdOn, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    const id: string = created.json.id;
    const numeric = await call('GET', `/repo/v1/entity/${id.slice(3)}`);
    assert.equal(numeric.status, 200);
    assert.equal(numeric.json.id, id);

    const dup = await call('POST', '/repo/v1/entity', { concreteType: CONCRETE.folder, name: 'crud folder', parentId: projectId });
    assert.equal(dup.status, 409);
    assert.equal(dup.json.reason, `An entity with the name: crud folder already exists with a parentId: ${projectId}`);

    const badName = await call('POST', '/repo/v1/entity', { concreteType: CONCRETE.folder, name: 'a:b', parentId: projectId });
    assert.equal(badName.status, 400);
    assert.match(badName.json.reason, /may only contain/);

    const renamed = await call('PUT', `/repo/v1/entity/${id}`, { ...created.json, name: 'renamed' });
    assert.equal(renamed.status, 200);
    assert.notEqual(renamed.json.etag, created.json.etag);
    const stale = await call('PUT', `/repo/v1/entity/${id}`, { ...created.json, name: 'again' });
    assert.equal(stale.status, 412);

    // a file: new version when the handle's MD5 changes, and with ?newVersion=true
    const f = await stack.seed.file(id, 'data.txt', Buffer.from('one'));
    const v2 = await stack.seed.file(id, 'data.txt', Buffer.from('two')); // same name → new version
    assert.equal(v2.versionNumber, 2);
    const cur = (await call('GET', `/repo/v1/entity/${f.id}`)).json;
    assert.equal(cur.versionNumber, 2);
    const forced = await call('PUT', `/repo/v1/entity/${f.id}?newVersion=true`, cur);
    assert.equal(forced.status, 200);
    assert.equal(forced.json.versionNumber, 3);
    const auto = await call('PUT', `/repo/v1/entity/${f.id}`, { ...forced.json, dataFileHandleId: f.fileHandleId });
    assert.equal(auto.json.versionNumber, 4, 'a different MD5 makes a new version');
    const same = await call('PUT', `/repo/v1/entity/${f.id}`, { ...auto.json, name: 'data2.txt' });
    assert.equal(same.json.versionNumber, 4, 'rename does not version');
    const versions = await call('GET', `/repo/v1/entity/${f.id}/version?offset=0&limit=2`);
    assert.equal(versions.status, 200);
    assert.equal(versions.json.totalNumberOfResults, 4);
    assert.deepEqual(versions.json.results.map((v: any) => v.versionNumber), [4, 3]);
    assert.equal(versions.json.results[0].contentSize, '3');
    assert.equal(versions.json.results[0].contentMd5, md5(Buffer.from('one')));

    // a handle created by someone else cannot be attached
    const other = await call('POST', '/repo/v1/entity',
      { concreteType: CONCRETE.file, name: 'theirs.txt', parentId: id, dataFileHandleId: f.fileHandleId }, stack.secondAuthToken);
    assert.equal(other.status, 403);

    const del = await call('DELETE', `/repo/v1/entity/${id}`);
    assert.equal(del.status, 200);
    assert.equal((await call('GET', `/repo/v1/entity/${id}`)).status, 404);
    assert.equal((await call('GET', `/repo/v1/entity/${f.id}`)).status, 404, 'children go to the trash with the folder');
    assert.equal((await call('GET', '/repo/v1/entity/syn99999999')).status, 404);
  });

  test('children paging: 120 children in pages of 50 with nextPageToken; child lookup', async () => {
    const folder = await stack.seed.folder(projectId, 'many');
    for (let i = 0; i < 120; i++) {
      const r = await call('POST', '/repo/v1/entity', { concreteType: CONCRETE.folder, name: `f${String(i).padStart(3, '0')}`, parentId: folder.id });
      assert.equal(r.status, 201);
    }
    const names: string[] = [];
    let token: string | undefined;
    let pages = 0;
    do {
      const r = await call('POST', '/repo/v1/entity/children', {
        parentId: folder.id, includeTypes: ['folder', 'file'], sortBy: 'NAME', sortDirection: 'ASC',
        includeTotalChildCount: true, ...(token ? { nextPageToken: token } : {}),
      });
      assert.equal(r.status, 200);
      assert.ok(r.json.page.length <= 50);
      assert.equal(r.json.totalChildCount, 120);
      const h = r.json.page[0];
      for (const k of ['id', 'name', 'type', 'versionNumber', 'versionLabel', 'benefactorId', 'createdOn', 'modifiedOn', 'createdBy', 'modifiedBy', 'isLatestVersion']) {
        assert.ok(k in h, `EntityHeader has ${k}`);
      }
      names.push(...r.json.page.map((e: any) => e.name));
      token = r.json.nextPageToken ?? undefined;
      pages++;
    } while (token);
    assert.equal(pages, 3);
    assert.equal(names.length, 120);
    assert.deepEqual(names, [...names].sort());
    const child = await call('POST', '/repo/v1/entity/child', { parentId: folder.id, entityName: 'f007' });
    assert.equal(child.status, 200);
    assert.match(child.json.id, /^syn\d+$/);
    assert.equal((await call('POST', '/repo/v1/entity/child', { parentId: folder.id, entityName: 'nope' })).status, 404);
  });

  test('READ without DOWNLOAD: bundle2 has no file handles, batch says UNAUTHORIZED; no READ: 403', async () => {
    const p = stack.seed.project('Shared Read Only');
    const f = await stack.seed.file(p, 'secret.bin', randomBytes(100));
    const bundleReq = { includeEntity: true, includeFileHandles: true, includeAnnotations: true, includeRestrictionInformation: true };
    assert.equal((await call('POST', `/repo/v1/entity/${f.id}/bundle2`, bundleReq, stack.secondAuthToken)).status, 403);
    stack.seed.grant(p, stack.secondUserId, ['READ']);
    const b2 = await call('POST', `/repo/v1/entity/${f.id}/bundle2`, bundleReq, stack.secondAuthToken);
    assert.equal(b2.status, 200);
    assert.deepEqual(b2.json.fileHandles, []);
    assert.equal(b2.json.entity.id, f.id);
    assert.equal(b2.json.restrictionInformation.hasUnmetAccessRequirement, false);
    const b1 = await call('POST', `/repo/v1/entity/${f.id}/version/1/bundle2`, bundleReq);
    assert.equal(b1.json.fileHandles.length, 1);
    assert.equal(b1.json.fileHandles[0].id, f.fileHandleId);
    const batch = await call('POST', '/file/v1/fileHandle/batch', {
      requestedFiles: [{ fileHandleId: f.fileHandleId, associateObjectId: f.id, associateObjectType: 'FileEntity' }],
      includeFileHandles: true, includePreSignedURLs: true,
    }, stack.secondAuthToken);
    assert.equal(batch.status, 201, 'Synapse answers CREATED for fileHandle/batch');
    assert.equal(batch.json.requestedFiles[0].failureCode, 'UNAUTHORIZED');
    assert.equal((await call('GET', `/file/v1/fileHandle/${f.fileHandleId}`, undefined, stack.secondAuthToken)).status, 403);
    const tooMany = await call('POST', '/file/v1/fileHandle/batch', {
      requestedFiles: Array.from({ length: 101 }, () => ({ fileHandleId: f.fileHandleId, associateObjectId: f.id, associateObjectType: 'FileEntity' })),
      includeFileHandles: true,
    });
    assert.equal(tooMany.status, 400);
  });
});

describe('presigned URLs', () => {
  test('Range GET → 206 with the right bytes; 403 after the URL lifetime', async () => {
    const data = randomBytes(300_000);
    const f = await stack.seed.file(projectId, 'ranged.bin', data);
    // X-Amz-Date has whole seconds: a 1 s URL signed late in a second lives only a few ms.
    stack.dev.setConfig({ presignedUrlLifetimeSec: 3 });
    try {
      const batch = await call('POST', '/file/v1/fileHandle/batch', {
        requestedFiles: [{ fileHandleId: f.fileHandleId, associateObjectId: f.id, associateObjectType: 'FileEntity' }],
        includeFileHandles: true, includePreSignedURLs: true,
      });
      const url: string = batch.json.requestedFiles[0].preSignedURL;
      assert.match(url, /X-Amz-Date=/);
      assert.match(url, /X-Amz-Expires=3(&|$)/);
      assert.equal(batch.json.requestedFiles[0].fileHandle.contentMd5, md5(data));
      const r = await fetch(url, { headers: { Range: 'bytes=1000-1999' } });
      assert.equal(r.status, 206);
      assert.equal(r.headers.get('content-range'), `bytes 1000-1999/${data.length}`);
      assert.ok(Buffer.from(await r.arrayBuffer()).equals(data.subarray(1000, 2000)));
      for (const [range, from, to] of [['bytes=0-0', 0, 1], ['bytes=-10', data.length - 10, data.length]] as const) {
        const x = await fetch(url, { headers: { Range: range } });
        assert.equal(x.status, 206);
        assert.equal(x.headers.get('content-range'), `bytes ${from}-${to - 1}/${data.length}`);
        assert.ok(Buffer.from(await x.arrayBuffer()).equals(data.subarray(from, to)), range);
      }
      await waitFor(async () => {
        const x = await fetch(url, { headers: { Range: 'bytes=0-0' } });
        const body = await x.text();
        if (x.status === 403) { assert.match(body, /<Code>AccessDenied<\/Code>/); assert.match(body, /Request has expired/); return true; }
        return false;
      }, 10_000, 'URL expiry');
    } finally {
      stack.dev.setConfig({ presignedUrlLifetimeSec: 30 });
    }
  });
});

describe('STS and the S3 gate', () => {
  let stsFolder: string;
  let readmeKey: string;
  let baseKey: string;
  const readme = Buffer.from('hello from sts\n');

  before(async () => {
    const f = await stack.seed.folder(projectId, 'sts-folder', { storage: 'sts' });
    stsFolder = f.id;
    const file = await stack.seed.file(stsFolder, 'README.txt', readme);
    readmeKey = stack.seed.fileHandle(file.fileHandleId).key;
    baseKey = readmeKey.split('/').slice(0, -2).join('/');
  });

  test('read_only and read_write credentials: scope, read-only writes, wrong secret, non-STS entity', async () => {
    const ro = await call('GET', `/repo/v1/entity/${stsFolder}/sts?permission=read_only`);
    assert.equal(ro.status, 200);
    assert.equal(ro.json.bucket, stack.externalBucket);
    assert.equal(ro.json.baseKey, baseKey);
    assert.match(ro.json.expiration, /\.\d{3}Z$/);
    const client = s3Client(ro.json);
    const got = await client.send(new GetObjectCommand({ Bucket: ro.json.bucket, Key: readmeKey }));
    assert.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(readme));
    const list = await client.send(new ListObjectsV2Command({ Bucket: ro.json.bucket, Prefix: `${baseKey}/` }));
    assert.ok((list.Contents ?? []).some((o) => o.Key === readmeKey));

    assert.deepEqual(await s3Error(client.send(new PutObjectCommand({ Bucket: ro.json.bucket, Key: `${baseKey}/new.txt`, Body: 'x' }))),
      { name: 'AccessDenied', status: 403 });
    await stack.seed.objectBytes(stack.externalBucket, readmeKey);
    const outside = await s3Error(client.send(new GetObjectCommand({ Bucket: ro.json.bucket, Key: 'elsewhere/file.txt' })));
    assert.equal(outside.name, 'AccessDenied');
    const otherBucket = await s3Error(client.send(new GetObjectCommand({ Bucket: stack.managedBucket, Key: `${baseKey}/x` })));
    assert.equal(otherBucket.name, 'AccessDenied');
    const listOutside = await s3Error(client.send(new ListObjectsV2Command({ Bucket: ro.json.bucket, Prefix: 'elsewhere/' })));
    assert.equal(listOutside.name, 'AccessDenied');

    const wrong = s3Client({ ...ro.json, secretAccessKey: 'not-the-secret' });
    assert.equal((await s3Error(wrong.send(new GetObjectCommand({ Bucket: ro.json.bucket, Key: readmeKey })))).name, 'SignatureDoesNotMatch');
    const badToken = s3Client({ ...ro.json, sessionToken: 'bogus' });
    assert.equal((await s3Error(badToken.send(new GetObjectCommand({ Bucket: ro.json.bucket, Key: readmeKey })))).name, 'InvalidToken');

    const rw = await call('GET', `/repo/v1/entity/${stsFolder}/sts?permission=read_write`);
    assert.equal(rw.status, 200);
    const w = s3Client(rw.json);
    await w.send(new PutObjectCommand({ Bucket: rw.json.bucket, Key: `${baseKey}/written.txt`, Body: 'written' }));
    assert.equal((await stack.seed.objectBytes(stack.externalBucket, `${baseKey}/written.txt`)).toString(), 'written');

    const notSts = await call('GET', `/repo/v1/entity/${projectId}/sts?permission=read_only`);
    assert.equal(notSts.status, 400);
    assert.equal(typeof notSts.json.reason, 'string');
    const noDownload = await call('GET', `/repo/v1/entity/${stsFolder}/sts?permission=read_only`, undefined, stack.secondAuthToken);
    assert.equal(noDownload.status, 403);
    for (const c of [client, wrong, badToken, w]) c.destroy();
  });

  test('expired session token → 400 ExpiredToken; issuance is counted', async () => {
    const before = stack.dev.stats().sts.issued;
    stack.dev.setConfig({ stsLifetimeSec: 1 });
    try {
      const ro = await call('GET', `/repo/v1/entity/${stsFolder}/sts?permission=read_only`);
      assert.equal(ro.status, 200);
      assert.equal(stack.dev.stats().sts.issued, before + 1);
      const client = s3Client(ro.json);
      await waitFor(async () => {
        try {
          await client.send(new GetObjectCommand({ Bucket: ro.json.bucket, Key: readmeKey }));
          return false;
        } catch (e) {
          assert.ok(e instanceof S3ServiceException);
          assert.equal(e.name, 'ExpiredToken');
          assert.equal(e.$metadata.httpStatusCode, 400);
          return true;
        }
      }, 5000, 'token expiry');
      client.destroy();
    } finally {
      stack.dev.setConfig({ stsLifetimeSec: 3600 });
    }
  });

  test('moves into or out of an STS folder are refused', async () => {
    const plain = await stack.seed.folder(projectId, 'plain-for-move');
    const f = await stack.seed.file(plain.id, 'movable.txt', Buffer.from('m'));
    const ent = (await call('GET', `/repo/v1/entity/${f.id}`)).json;
    const into = await call('PUT', `/repo/v1/entity/${f.id}`, { ...ent, parentId: stsFolder });
    assert.equal(into.status, 400);
    assert.match(into.json.reason, /STS-enabled/);
    const stsFile = (await call('POST', '/repo/v1/entity/child', { parentId: stsFolder, entityName: 'README.txt' })).json.id;
    const se = (await call('GET', `/repo/v1/entity/${stsFile}`)).json;
    const out = await call('PUT', `/repo/v1/entity/${stsFile}`, { ...se, parentId: plain.id });
    assert.equal(out.status, 400);
    assert.match(out.json.reason, /STS-enabled/);
  });

  test('aws-chunked PutObject of 20 MiB with the SDK default checksums stores exactly the bytes', async () => {
    const data = randomBytes(20 * MiB + 123);
    const admin = s3Client({ accessKeyId: stack.s3AccessKeyId, secretAccessKey: stack.s3SecretAccessKey });
    await admin.send(new PutObjectCommand({
      Bucket: stack.managedBucket, Key: 'chunked/big.bin', Body: Readable.from([data.subarray(0, 7 * MiB), data.subarray(7 * MiB)]),
      ContentLength: data.length,
    }));
    const stored = await stack.seed.objectBytes(stack.managedBucket, 'chunked/big.bin');
    assert.equal(stored.length, data.length);
    assert.equal(md5(stored), md5(data));
    admin.destroy();
  });

  test('a GET during a PUT of the same key never sees a partial object', async () => {
    const data = randomBytes(4 * MiB);
    const admin = s3Client({ accessKeyId: stack.s3AccessKeyId, secretAccessKey: stack.s3SecretAccessKey });
    async function* slow(): AsyncGenerator<Buffer> {
      for (let i = 0; i < 8; i++) {
        yield data.subarray(i * (MiB / 2), (i + 1) * (MiB / 2));
        await new Promise((r) => setTimeout(r, 40));
      }
    }
    // The PUT's connection was cut once in ≈ 40 full-suite runs (EPIPE while its body streamed;
    // not reproduced alone or under CPU load): a PUT that fails on the wire is made again, at
    // most twice — every GET that overlapped one is checked all the same.
    for (let attempt = 1; ; attempt++) {
      const put = admin.send(new PutObjectCommand({ Bucket: stack.managedBucket, Key: 'atomic/obj.bin', Body: Readable.from(slow()), ContentLength: data.length }));
      const putFailed = put.then(() => undefined, (e: unknown) => e as Error & { code?: string });
      await new Promise((r) => setTimeout(r, 80));
      const got = await admin.send(new GetObjectCommand({ Bucket: stack.managedBucket, Key: 'atomic/obj.bin' }))
        .then(async (r) => Buffer.from(await r.Body!.transformToByteArray()), (e: unknown) => (e as Error).name);
      const err = await putFailed;
      if (typeof got === 'string') assert.equal(got, 'NoSuchKey');
      else assert.equal(md5(got), md5(data), 'a GET that overlaps the PUT returns the whole new object');
      if (err && attempt < 3 && ['EPIPE', 'ECONNRESET'].includes(err.code ?? '')) continue;
      assert.equal(err, undefined, `the PUT (try ${attempt})`);
      break;
    }
    admin.destroy();
  });

  test('a reset fault cuts an S3 GET mid-body', async () => {
    const admin = s3Client({ accessKeyId: stack.s3AccessKeyId, secretAccessKey: stack.s3SecretAccessKey });
    stack.dev.addFault({ target: 's3', pathPattern: '/atomic/obj.bin', method: 'GET', reset: true, count: 1 });
    await assert.rejects(async () => {
      const r = await admin.send(new GetObjectCommand({ Bucket: stack.managedBucket, Key: 'atomic/obj.bin' }));
      await r.Body!.transformToByteArray();
    });
    const ok = await admin.send(new GetObjectCommand({ Bucket: stack.managedBucket, Key: 'atomic/obj.bin' }));
    assert.equal((await ok.Body!.transformToByteArray()).length, 4 * MiB, 'count: 1 fires once');
    admin.destroy();
  });

  test('S3 multipart: EntityTooSmall for small non-last parts; part number > 10000 refused', async () => {
    const admin = s3Client({ accessKeyId: stack.s3AccessKeyId, secretAccessKey: stack.s3SecretAccessKey });
    const Key = 'mpu/small.bin';
    const { UploadId } = await admin.send(new CreateMultipartUploadCommand({ Bucket: stack.managedBucket, Key }));
    const parts = [];
    for (const n of [1, 2]) {
      const r = await admin.send(new UploadPartCommand({ Bucket: stack.managedBucket, Key, UploadId, PartNumber: n, Body: randomBytes(1024) }));
      parts.push({ PartNumber: n, ETag: r.ETag });
    }
    const e = await s3Error(admin.send(new CompleteMultipartUploadCommand({ Bucket: stack.managedBucket, Key, UploadId, MultipartUpload: { Parts: parts } })));
    assert.deepEqual(e, { name: 'EntityTooSmall', status: 400 });
    const big = await s3Error(admin.send(new UploadPartCommand({ Bucket: stack.managedBucket, Key, UploadId, PartNumber: 10001, Body: 'x' })));
    assert.deepEqual(big, { name: 'InvalidArgument', status: 400 });
    admin.destroy();
  });
});

describe('multipart upload through Synapse', () => {
  test('create → resume (partsState) → presigned URLs → PUT parts → add → complete', async () => {
    const data = randomBytes(12 * MiB + 5);
    const partSize = 5 * MiB;
    const request = {
      concreteType: CONCRETE.multipartUploadRequest, contentMD5Hex: md5(data), fileName: 'upload.bin',
      fileSizeBytes: data.length, partSizeBytes: partSize, contentType: 'application/octet-stream', storageLocationId: 1,
      generatePreview: false,
    };
    const created = await call('POST', '/file/v1/file/multipart?forceRestart=false', request);
    assert.equal(created.status, 201);
    assert.equal(created.json.state, 'UPLOADING');
    assert.equal(created.json.partsState, '000');
    const uploadId: string = created.json.uploadId;

    const putPart = async (n: number): Promise<void> => {
      const urls = await call('POST', `/file/v1/file/multipart/${uploadId}/presigned/url/batch`, { uploadId, partNumbers: [n] });
      assert.equal(urls.status, 201);
      const p = urls.json.partPresignedUrls[0];
      assert.equal(p.partNumber, n);
      const bytes = data.subarray((n - 1) * partSize, Math.min(data.length, n * partSize));
      const r = await fetch(p.uploadPresignedUrl, { method: 'PUT', headers: p.signedHeaders, body: body(bytes) });
      assert.equal(r.status, 200, await r.text());
      const add = await call('PUT', `/file/v1/file/multipart/${uploadId}/add/${n}?partMD5Hex=${md5(bytes)}`);
      assert.equal(add.json.addPartState, 'ADD_SUCCESS');
    };
    await putPart(1);
    const resumed = await call('POST', '/file/v1/file/multipart?forceRestart=false', request);
    assert.equal(resumed.json.uploadId, uploadId);
    assert.equal(resumed.json.partsState, '100');
    const early = await call('PUT', `/file/v1/file/multipart/${uploadId}/complete`);
    assert.equal(early.status, 400);
    const wrongMd5 = await call('PUT', `/file/v1/file/multipart/${uploadId}/add/2?partMD5Hex=${'0'.repeat(32)}`);
    assert.equal(wrongMd5.json.addPartState, 'ADD_FAILED');
    assert.equal(typeof wrongMd5.json.errorMessage, 'string');
    await putPart(2);
    await putPart(3);
    const done = await call('PUT', `/file/v1/file/multipart/${uploadId}/complete`);
    assert.equal(done.status, 201);
    assert.equal(done.json.state, 'COMPLETED');
    const fh = await call('GET', `/file/v1/fileHandle/${done.json.resultFileHandleId}`);
    assert.equal(fh.status, 200);
    assert.equal(fh.json.concreteType, CONCRETE.s3FileHandle);
    assert.equal(fh.json.contentMd5, md5(data));
    assert.equal(fh.json.contentSize, data.length);
    assert.equal(fh.json.bucketName, stack.managedBucket);
    assert.ok(fh.json.key.startsWith(`${stack.userId}/`));
    assert.equal(md5(await stack.seed.objectBytes(fh.json.bucketName, fh.json.key)), md5(data));
    const ent = await call('POST', '/repo/v1/entity', { concreteType: CONCRETE.file, name: 'upload.bin', parentId: projectId, dataFileHandleId: fh.json.id });
    assert.equal(ent.status, 201);
    assert.equal(ent.json.versionNumber, 1);
  });

  test('0-byte files and tiny parts are refused', async () => {
    const zero = await call('POST', '/file/v1/file/multipart', {
      contentMD5Hex: md5(Buffer.alloc(0)), fileName: 'empty.txt', fileSizeBytes: 0, partSizeBytes: 5 * MiB, storageLocationId: 1,
    });
    assert.equal(zero.status, 400);
    assert.equal(zero.json.reason, 'File size must be at least one byte');
    const tiny = await call('POST', '/file/v1/file/multipart', {
      contentMD5Hex: md5(Buffer.from('x')), fileName: 'x.txt', fileSizeBytes: 100, partSizeBytes: 1024, storageLocationId: 1,
    });
    assert.equal(tiny.status, 400);
  });
});

describe('storage locations, external handles, project settings', () => {
  test('only the location creator may register external S3 handles; object and MD5 are checked', async () => {
    const ext = await stack.seed.folder(projectId, 'ext-folder', { storage: 'external', baseKey: 'lab/ext-test' });
    const key = 'lab/ext-test/abc/data.bin';
    const bytes = Buffer.from('external bytes');
    const admin = s3Client({ accessKeyId: stack.s3AccessKeyId, secretAccessKey: stack.s3SecretAccessKey });
    await admin.send(new PutObjectCommand({ Bucket: stack.externalBucket, Key: key, Body: bytes }));
    admin.destroy();
    const req = {
      concreteType: CONCRETE.s3FileHandle, bucketName: stack.externalBucket, key, storageLocationId: ext.storageLocationId,
      contentMd5: md5(bytes), contentSize: bytes.length, fileName: 'data.bin', contentType: 'application/octet-stream',
    };
    const theirs = await call('POST', '/file/v1/externalFileHandle/s3', req, stack.secondAuthToken);
    assert.equal(theirs.status, 403);
    assert.equal(theirs.json.reason,
      `Only the creator of ExternalS3StorageLocationSetting.id=${ext.storageLocationId} can create an external S3FileHandle with storageLocationId = ${ext.storageLocationId}`);
    assert.equal((await call('POST', '/file/v1/externalFileHandle/s3', { ...req, contentMd5: 'xyz' })).status, 400);
    assert.equal((await call('POST', '/file/v1/externalFileHandle/s3', { ...req, key: 'lab/ext-test/missing' })).status, 400);
    const mine = await call('POST', '/file/v1/externalFileHandle/s3', req);
    assert.equal(mine.status, 200, 'Synapse answers OK (not CREATED) for externalFileHandle/s3');
    assert.equal(mine.json.storageLocationId, ext.storageLocationId);
    assert.equal(mine.json.contentSize, bytes.length);
    const dest = await call('GET', `/file/v1/entity/${ext.id}/uploadDestination`);
    assert.equal(dest.json.concreteType, CONCRETE.externalS3UploadDestination);
    assert.equal(dest.json.endpointUrl, stack.s3Endpoint);
    assert.equal(dest.json.baseKey, 'lab/ext-test');
    const def = await call('GET', `/file/v1/entity/${projectId}/uploadDestination`);
    assert.equal(def.json.concreteType, CONCRETE.s3UploadDestination);
    assert.equal(def.json.storageLocationId, 1);
  });

  test('owner.txt must name the caller', async () => {
    const body = { concreteType: CONCRETE.externalS3Location, uploadType: 'S3', bucket: stack.externalBucket, baseKey: 'owned/by/me', stsEnabled: true };
    const missing = await call('POST', '/repo/v1/storageLocation', body);
    assert.equal(missing.status, 400);
    assert.match(missing.json.reason, /owned\/by\/me\/owner\.txt/);
    const admin = s3Client({ accessKeyId: stack.s3AccessKeyId, secretAccessKey: stack.s3SecretAccessKey });
    await admin.send(new PutObjectCommand({ Bucket: stack.externalBucket, Key: 'owned/by/me/owner.txt', Body: 'someone-else\n' }));
    const wrong = await call('POST', '/repo/v1/storageLocation', body);
    assert.equal(wrong.status, 400);
    assert.match(wrong.json.reason, /someone-else/);
    await admin.send(new PutObjectCommand({ Bucket: stack.externalBucket, Key: 'owned/by/me/owner.txt', Body: `${stack.userName}\n` }));
    admin.destroy();
    const ok = await call('POST', '/repo/v1/storageLocation', body);
    assert.equal(ok.status, 201);
    assert.equal(typeof ok.json.storageLocationId, 'number');
    assert.equal(ok.json.createdBy, Number(stack.userId));
    assert.equal(typeof ok.json.etag, 'string');
    assert.equal((await call('GET', `/repo/v1/storageLocation/${ok.json.storageLocationId}`)).status, 200);
    assert.equal((await call('GET', `/repo/v1/storageLocation/${ok.json.storageLocationId}`, undefined, stack.secondAuthToken)).status, 403);
  });

  test('project settings: empty GET is 200 with no body; STS only on an empty folder', async () => {
    const folder = (await call('POST', '/repo/v1/entity', { concreteType: CONCRETE.folder, name: 'to-be-sts', parentId: projectId })).json;
    const none = await call('GET', `/repo/v1/projectSettings/${folder.id}/type/upload`);
    assert.equal(none.status, 200);
    assert.equal(none.text, '');
    assert.ok(!(none.headers.get('content-type') ?? '').includes('json'));
    const loc = await call('POST', '/repo/v1/storageLocation', { concreteType: CONCRETE.s3Location, uploadType: 'S3', stsEnabled: true });
    assert.equal(loc.status, 201);
    assert.ok(loc.json.baseKey);
    const setting = { concreteType: CONCRETE.uploadListSetting, settingsType: 'upload', projectId: folder.id, locations: [loc.json.storageLocationId] };
    await stack.seed.file(folder.id, 'occupant.txt', Buffer.from('x'));
    const refused = await call('POST', '/repo/v1/projectSettings', setting);
    assert.equal(refused.status, 400);
    assert.equal(refused.json.reason, 'Can\'t enable STS in a non-empty folder');
    const empty = (await call('POST', '/repo/v1/entity', { concreteType: CONCRETE.folder, name: 'empty-sts', parentId: projectId })).json;
    const created = await call('POST', '/repo/v1/projectSettings', { ...setting, projectId: empty.id });
    assert.equal(created.status, 201);
    const got = await call('GET', `/repo/v1/projectSettings/${empty.id}/type/upload`);
    assert.deepEqual(got.json.locations, [loc.json.storageLocationId]);
    const onProject = await call('POST', '/repo/v1/projectSettings', { ...setting, projectId: stack.seed.project('STS on project') });
    assert.equal(onProject.status, 400);
    const rw = await call('GET', `/repo/v1/entity/${empty.id}/sts?permission=read_write`);
    assert.equal(rw.status, 400, 'no STS write access in Synapse storage');
    const ro = await call('GET', `/repo/v1/entity/${empty.id}/sts?permission=read_only`);
    assert.equal(ro.status, 200);
    assert.equal(ro.json.bucket, stack.managedBucket);
  });
});

describe('knobs, faults, stats', () => {
  test('throttling: 5 concurrent requests → some 429 without Retry-After', async () => {
    stack.dev.setConfig({ throttle: true, synapseLatencyMs: 300 });
    try {
      const before = stack.dev.stats().synapse.throttled;
      const rs = await Promise.all(Array.from({ length: 5 }, () => call('GET', '/repo/v1/userProfile')));
      const codes = rs.map((r) => r.status).sort();
      assert.ok(codes.includes(429), `got ${codes.join(',')}`);
      assert.ok(codes.includes(200), `got ${codes.join(',')}`);
      const t = rs.find((r) => r.status === 429);
      assert.equal(t?.headers.get('retry-after'), null);
      assert.equal(typeof t?.json.reason, 'string');
      assert.ok(stack.dev.stats().synapse.throttled > before);
    } finally {
      stack.dev.setConfig({ throttle: false, synapseLatencyMs: 0 });
    }
  });

  test('a 503 fault with count 2 fires twice; DELETE clears; /_dev/config answers the config', async () => {
    const add = await fetch(`${stack.endpoint}/_dev/faults`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ target: 'synapse', pathPattern: '/userProfile', method: 'GET', status: 503, rate: 1.0, latencyMs: 0, reset: false, count: 2 }),
    });
    assert.equal(add.status, 200);
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await call('GET', '/repo/v1/userProfile')).status);
    assert.deepEqual(codes, [503, 503, 200]);
    const s3Fault = await fetch(`${stack.endpoint}/_dev/faults`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ target: 's3', pathPattern: '/', status: 503, count: 1 }),
    });
    assert.equal(s3Fault.status, 200);
    const admin = s3Client({ accessKeyId: stack.s3AccessKeyId, secretAccessKey: stack.s3SecretAccessKey });
    const e = await s3Error(admin.send(new GetObjectCommand({ Bucket: stack.managedBucket, Key: 'chunked/big.bin' })));
    assert.deepEqual(e, { name: 'SlowDown', status: 503 });
    admin.destroy();
    const del = await fetch(`${stack.endpoint}/_dev/faults`, { method: 'DELETE' });
    assert.equal(del.status, 200);
    const cfg = await fetch(`${stack.endpoint}/_dev/config`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ childrenPageSize: 50 }) });
    assert.equal(cfg.status, 200);
    assert.equal((await cfg.json() as any).childrenPageSize, 50);
  });

  test('stats count Synapse routes and S3 traffic', async () => {
    const get = async (): Promise<any> => (await fetch(`${stack.endpoint}/_dev/stats`)).json();
    const s0 = await get();
    const f = await stack.seed.file(projectId, 'stats.bin', randomBytes(4096));
    await call('GET', `/repo/v1/entity/${f.id}/version?limit=1`);
    await call('POST', '/repo/v1/entity/children', { parentId: projectId, includeTypes: ['file'] });
    const batch = await call('POST', '/file/v1/fileHandle/batch', {
      requestedFiles: [{ fileHandleId: f.fileHandleId, associateObjectId: f.id, associateObjectType: 'FileEntity' }], includePreSignedURLs: true,
    });
    const r = await fetch(batch.json.requestedFiles[0].preSignedURL);
    assert.equal((await r.arrayBuffer()).byteLength, 4096);
    const s1 = await get();
    assert.equal(s1.synapse.requests - s0.synapse.requests, 3);
    assert.equal((s1.synapse.byRoute['GET /entity/{id}/version'] ?? 0) - (s0.synapse.byRoute['GET /entity/{id}/version'] ?? 0), 1);
    assert.equal((s1.synapse.byRoute['POST /entity/children'] ?? 0) - (s0.synapse.byRoute['POST /entity/children'] ?? 0), 1);
    assert.equal((s1.synapse.byRoute['POST /fileHandle/batch'] ?? 0) - (s0.synapse.byRoute['POST /fileHandle/batch'] ?? 0), 1);
    assert.equal(s1.s3.requests - s0.s3.requests, 1, 'seeding and server-side S3 calls are not counted');
    assert.equal(s1.s3.bytesOut - s0.s3.bytesOut, 4096);
  });
});

test('the local server never gives an entity Synapse\'s root id (the 3,489th entity did, and the root became its own ancestor)', async () => {
  const { State, ROOT_ID } = await import('../server/state.js');
  const state = new State('bucket');
  const ids = new Set<number>();
  for (let i = 0; i < ROOT_ID; i++) ids.add(state.newEntityId());
  assert.equal(ids.has(ROOT_ID), false);
  assert.equal(ids.size, ROOT_ID, 'ids stay unique past the root\'s');
});
