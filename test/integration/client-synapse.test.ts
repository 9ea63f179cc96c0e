/**
 * HttpSynapseClient and StsCredentialCache against the local Synapse-compatible stack
 * (test/server/stack.ts, sample fixture): every SynapseApi method through real HTTP, the error
 * statuses the filesystem relies on (401/403/404/409/412/400), paging, presigned URLs that really
 * download, an external S3 file handle registered after an upload made with STS credentials from
 * the cache (through the AWS SDK's provider contract), storage location + project setting, and the
 * multipart upload cycle. Also: throttling and injected faults are absorbed by the client.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startStack, type Stack } from '../server/stack.js';
import { HttpSynapseClient } from '../../src/synapse/http-client.js';
import { SynapseError } from '../../src/synapse/errors.js';
import { StsCredentialCache } from '../../src/synapse/sts.js';
import { CONCRETE, type Entity } from '../../src/synapse/types.js';

const T = { timeout: 30_000 };
let stack: Stack;
let syn: HttpSynapseClient;
let sample: NonNullable<Stack['sample']>;

const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

async function rejects(p: Promise<unknown>, status: number, reason?: RegExp): Promise<SynapseError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof SynapseError, `expected SynapseError, got ${String(e)}`);
    assert.equal(e.status, status, e.message);
    if (reason) assert.match(e.reason, reason);
    return e;
  }
  assert.fail(`expected a ${status} rejection`);
}

function s3Client(credentials: S3Client['config']['credentials'] | { accessKeyId: string; secretAccessKey: string }): S3Client {
  return new S3Client({
    endpoint: stack.s3Endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: credentials as never,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
    requestHandler: { requestTimeout: 10_000, connectionTimeout: 5_000 },
  });
}

before(async () => {
  stack = await startStack({ fixture: 'sample' });
  sample = stack.sample!;
  syn = new HttpSynapseClient({ endpoint: stack.endpoint, authToken: stack.authToken, backoff: { initialMs: 10, maxMs: 100 } });
});

after(async () => {
  await stack?.close();
});

test('profile validates the token; a bad token is 401 and not retried', T, async () => {
  const p = await syn.getUserProfile();
  assert.equal(p.userName, stack.userName);
  assert.equal(p.ownerId, stack.userId);
  const bad = new HttpSynapseClient({ endpoint: stack.endpoint, authToken: 'not-a-token' });
  const e = await rejects(bad.getUserProfile(), 401);
  assert.equal(e.code, 'UNAUTHORIZED');
  assert.equal(bad.stats().requests, 1);
});

test('create / get / update / delete; 409 on a taken name; 412 on a stale etag; lookupChild', T, async () => {
  const folder = await syn.createEntity({ concreteType: CONCRETE.folder, name: `client-${randomUUID().slice(0, 8)}`, parentId: sample.projectId });
  assert.match(folder.id, /^syn\d+$/);
  assert.equal(folder.concreteType, CONCRETE.folder);
  assert.equal((await syn.getEntity(folder.id)).etag, folder.etag);

  await rejects(syn.createEntity({ concreteType: CONCRETE.folder, name: folder.name, parentId: sample.projectId }), 409);
  assert.equal(await syn.lookupChild(sample.projectId, folder.name), folder.id);
  assert.equal(await syn.lookupChild(sample.projectId, 'no such child'), null);

  const renamed = await syn.updateEntity({ ...folder, name: `${folder.name}-renamed` });
  assert.equal(renamed.name, `${folder.name}-renamed`);
  assert.notEqual(renamed.etag, folder.etag);
  const stale = await rejects(syn.updateEntity({ ...folder, name: 'whatever' }), 412);
  assert.equal(stale.code, 'PRECONDITION_FAILED');

  await rejects(syn.createEntity({ concreteType: CONCRETE.folder, name: 'a:b', parentId: sample.projectId }), 400);

  await syn.deleteEntity(folder.id);
  const gone = await rejects(syn.getEntity(folder.id), 404);
  assert.equal(gone.code, 'NOT_FOUND');
  await rejects(syn.deleteEntity(folder.id), 404);
});

test('trash can restore: only the deleter, into the parent it left, if the name is still free', T, async () => {
  const name = `trash-${randomUUID().slice(0, 8)}`;
  const parent = await syn.createEntity({ concreteType: CONCRETE.folder, name, parentId: sample.projectId });
  const child = await syn.createEntity({ concreteType: CONCRETE.folder, name: 'kid', parentId: parent.id });
  await rejects(syn.restoreFromTrash(child.id), 404); // not in the trash can
  await syn.deleteEntity(child.id);
  const syn2 = new HttpSynapseClient({ endpoint: stack.endpoint, authToken: stack.secondAuthToken });
  await rejects(syn2.restoreFromTrash(child.id), 403); // deleted by someone else
  await syn.restoreFromTrash(child.id);
  const back = await syn.getEntity(child.id);
  assert.equal(back.parentId, parent.id);
  assert.equal(back.name, 'kid');
  assert.notEqual(back.etag, child.etag);
  await rejects(syn.restoreFromTrash(child.id), 404); // out already

  // The name taken meanwhile: 409, and it stays in the trash can.
  await syn.deleteEntity(child.id);
  const other = await syn.createEntity({ concreteType: CONCRETE.folder, name: 'kid', parentId: parent.id });
  await rejects(syn.restoreFromTrash(child.id), 409);
  await rejects(syn.getEntity(child.id), 404);
  await syn.deleteEntity(other.id);
  // Its parent in the trash can too: 403 (ParentInTrashCanException).
  await syn.deleteEntity(parent.id);
  await rejects(syn.restoreFromTrash(child.id), 403);
  await syn.restoreFromTrash(parent.id);
  await syn.restoreFromTrash(child.id);
  assert.equal((await syn.listChildren(parent.id, ['folder'])).map((c) => c.id).sort().join(), [child.id].join());
});

test('listChildren follows nextPageToken (page size 2 → 3 pages for 5 children)', T, async () => {
  const parent = await syn.createEntity({ concreteType: CONCRETE.folder, name: `paging-${randomUUID().slice(0, 8)}`, parentId: sample.projectId });
  const names = ['e', 'b', 'd', 'a', 'c'];
  for (const name of names) await syn.createEntity({ concreteType: CONCRETE.folder, name, parentId: parent.id });
  stack.dev.setConfig({ childrenPageSize: 2 });
  try {
    const before = stack.dev.stats().synapse.byRoute['POST /entity/children'] ?? 0;
    const kids = await syn.listChildren(parent.id, ['folder', 'file', 'link']);
    const pages = (stack.dev.stats().synapse.byRoute['POST /entity/children'] ?? 0) - before;
    assert.deepEqual(kids.map((k) => k.name), ['a', 'b', 'c', 'd', 'e']);
    assert.equal(pages, 3);
    assert.ok(kids.every((k) => k.type === CONCRETE.folder));
  } finally {
    stack.dev.setConfig({ childrenPageSize: 50 });
  }
  const top = await syn.listChildren(sample.projectId, ['folder', 'file', 'link']);
  assert.ok(top.some((k) => k.id === sample.linkId && k.type === CONCRETE.link));
  const filesOnly = await syn.listChildren(sample.managedFolderId, ['file']);
  assert.deepEqual(filesOnly.map((k) => k.name).sort(), ['notes.txt', 'samples.tsv']);
});

test('bundle2, version info and file handle: ids strings, sizes numbers', T, async () => {
  const b = await syn.getBundle(sample.readmeId, { includeEntity: true, includeFileHandles: true });
  assert.equal(b.entity?.id, sample.readmeId);
  const fh = b.fileHandles?.[0];
  assert.ok(fh);
  assert.equal(typeof fh.id, 'string');
  assert.equal(fh.id, b.entity?.dataFileHandleId);
  assert.equal(typeof fh.storageLocationId, 'number');
  assert.equal(fh.storageLocationId, sample.stsStorageLocationId);
  assert.equal(typeof fh.contentSize, 'number');
  const v = await syn.getLatestVersionInfo(sample.readmeId);
  assert.equal(v.contentSize, String(fh.contentSize));
  assert.equal(v.contentMd5, fh.contentMd5);
  const direct = await syn.getFileHandle(fh.id);
  assert.equal(direct.key, fh.key);
  const v1 = await syn.getBundle(sample.readmeId, { includeEntity: true }, 1);
  assert.equal(v1.entity?.versionNumber, 1);
});

test('second user: READ-granted project readable; someone else\'s storage location 403', T, async () => {
  const syn2 = new HttpSynapseClient({ endpoint: stack.endpoint, authToken: stack.secondAuthToken });
  assert.equal((await syn2.getUserProfile()).userName, stack.secondUserName);
  assert.equal((await syn2.getEntity(sample.notesId)).name, 'notes.txt');
  await rejects(syn2.getStorageLocation(sample.stsStorageLocationId), 403);
});

test('batch presigned URLs download the real bytes; >100 requests are chunked', T, async () => {
  const entities = await Promise.all([sample.notesId, sample.readmeId, sample.deepId].map((id) => syn.getEntity(id)));
  const results = await syn.batchFileHandles(
    entities.map((e) => ({ fileHandleId: e.dataFileHandleId!, associateObjectId: e.id, associateObjectType: 'FileEntity' as const })),
    { includeFileHandles: true, includePreSignedURLs: true },
  );
  assert.equal(results.length, 3);
  for (const [i, r] of results.entries()) {
    assert.equal(r.fileHandleId, entities[i]!.dataFileHandleId);
    assert.equal(r.failureCode, undefined);
    assert.ok(r.preSignedURL);
    const res = await fetch(r.preSignedURL);
    assert.equal(res.status, 200);
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.equal(md5(bytes), r.fileHandle?.contentMd5);
  }
  // 150 associations (the same one repeated) → 2 requests, 150 results in order.
  const before = stack.dev.stats().synapse.byRoute['POST /fileHandle/batch'] ?? 0;
  const many = Array.from({ length: 150 }, () => ({
    fileHandleId: entities[0]!.dataFileHandleId!, associateObjectId: entities[0]!.id, associateObjectType: 'FileEntity' as const,
  }));
  const r150 = await syn.batchFileHandles(many, { includeFileHandles: true, includePreSignedURLs: false });
  assert.equal(r150.length, 150);
  assert.equal((stack.dev.stats().synapse.byRoute['POST /fileHandle/batch'] ?? 0) - before, 2);
});

test('STS: credentials for an STS folder; 400 elsewhere; cache + SDK provider upload; external handle + FileEntity', T, async () => {
  const ro = await syn.getStsCredentials(sample.stsFolderId, 'read_only');
  assert.ok(ro.accessKeyId && ro.secretAccessKey && ro.sessionToken && ro.bucket);
  assert.ok(Date.parse(ro.expiration) > Date.now());
  await rejects(syn.getStsCredentials(sample.managedFolderId, 'read_only'), 400);

  const cache = new StsCredentialCache({ fetch: (id, p) => syn.getStsCredentials(id, p) });
  const scope = `sl:${sample.stsStorageLocationId}`;
  const provider = cache.credentialProvider(sample.stsFolderId, 'read_write', scope);
  const rw = await cache.get(scope, sample.stsFolderId, 'read_write');
  const dest = await syn.getUploadDestination(sample.stsFolderId);
  assert.equal(dest.concreteType, CONCRETE.externalS3UploadDestination);
  assert.equal(dest.storageLocationId, sample.stsStorageLocationId);
  assert.equal(dest.stsEnabled, true);
  assert.equal(dest.bucket, rw.bucket);

  const body = Buffer.from(`registered without copying ${randomUUID()}\n`);
  const fileName = 'external.txt';
  const key = `${dest.baseKey}/${randomUUID()}/${fileName}`;
  await s3Client(provider).send(new PutObjectCommand({ Bucket: dest.bucket!, Key: key, Body: body, ContentType: 'text/plain' }));
  assert.equal(cache.stats().fetches, 1, 'the SDK used the cached credentials');

  const handle = await syn.createExternalS3FileHandle({
    concreteType: CONCRETE.s3FileHandle,
    bucketName: dest.bucket!,
    key,
    storageLocationId: dest.storageLocationId,
    contentMd5: md5(body),
    contentSize: body.length,
    fileName,
    contentType: 'text/plain',
  });
  assert.equal(typeof handle.id, 'string');
  assert.equal(handle.storageLocationId, sample.stsStorageLocationId);
  const file = await syn.createEntity({ concreteType: CONCRETE.file, name: fileName, parentId: sample.stsFolderId, dataFileHandleId: handle.id });
  assert.equal(file.dataFileHandleId, handle.id);
  const info = await syn.getLatestVersionInfo(file.id);
  assert.equal(info.contentSize, String(body.length));

  // A key outside the location's baseKey is refused.
  await rejects(
    syn.createExternalS3FileHandle({
      concreteType: CONCRETE.s3FileHandle, bucketName: dest.bucket!, key: `elsewhere/${fileName}`,
      storageLocationId: dest.storageLocationId, contentMd5: md5(body), contentSize: body.length, fileName,
    }),
    400,
  );
});

test('STS cache refreshes short-lived tokens at half their lifetime', T, async () => {
  stack.dev.setConfig({ stsLifetimeSec: 2 });
  try {
    const cache = new StsCredentialCache({ fetch: (id, p) => syn.getStsCredentials(id, p) });
    const a = await cache.get('s', sample.stsFolderId, 'read_only');
    const a2 = await cache.get('s', sample.stsFolderId, 'read_only');
    assert.equal(a2.accessKeyId, a.accessKeyId);
    await new Promise((r) => setTimeout(r, 1100));
    const b = await cache.get('s', sample.stsFolderId, 'read_only');
    assert.notEqual(b.accessKeyId, a.accessKeyId);
    assert.equal(cache.stats().fetches, 2);
  } finally {
    stack.dev.setConfig({ stsLifetimeSec: 3600 });
  }
});

test('storage location + project setting on a new folder; upload destination follows it', T, async () => {
  const baseKey = `client-test/${randomUUID().slice(0, 8)}`;
  const admin = s3Client({ accessKeyId: stack.s3AccessKeyId, secretAccessKey: stack.s3SecretAccessKey });
  await admin.send(new PutObjectCommand({ Bucket: stack.externalBucket, Key: `${baseKey}/owner.txt`, Body: stack.userName }));

  const loc = await syn.createStorageLocation({
    concreteType: CONCRETE.externalS3Location, uploadType: 'S3', bucket: stack.externalBucket, baseKey, stsEnabled: true,
  });
  assert.equal(typeof loc.storageLocationId, 'number');
  const got = await syn.getStorageLocation(loc.storageLocationId!);
  assert.equal(got.baseKey, baseKey);
  assert.equal(got.stsEnabled, true);

  await rejects(
    syn.createStorageLocation({ concreteType: CONCRETE.externalS3Location, uploadType: 'S3', bucket: stack.externalBucket, baseKey: 'no-owner-file' }),
    400,
    /owner\.txt/,
  );

  const folder = await syn.createEntity({ concreteType: CONCRETE.folder, name: `ext-${randomUUID().slice(0, 8)}`, parentId: sample.projectId });
  assert.equal(await syn.getUploadProjectSetting(folder.id), null);
  const setting = await syn.createProjectSetting({
    concreteType: CONCRETE.uploadListSetting, settingsType: 'upload', projectId: folder.id, locations: [loc.storageLocationId!],
  });
  assert.deepEqual(setting.locations, [loc.storageLocationId]);
  const read = await syn.getUploadProjectSetting(folder.id);
  assert.ok(read);
  assert.equal(read.id, setting.id);
  assert.deepEqual(read.locations, [loc.storageLocationId]);

  const dest = await syn.getUploadDestination(folder.id);
  assert.equal(dest.storageLocationId, loc.storageLocationId);
  assert.equal(dest.baseKey, baseKey);
  assert.equal(dest.stsEnabled, true);

  // Update with the current etag succeeds (no body); with a stale one → 412.
  await syn.updateProjectSetting(read);
  await rejects(syn.updateProjectSetting(read), 412);

  const creds = await syn.getStsCredentials(folder.id, 'read_write');
  assert.equal(creds.bucket, stack.externalBucket);
  assert.equal(creds.baseKey, baseKey);
});

test('multipart upload: start, part URL, PUT, add, complete, resume; new version via updateEntity', T, async () => {
  const bytes = Buffer.from(`multipart body ${randomUUID()}\n`.repeat(100));
  const request = {
    contentMD5Hex: md5(bytes),
    fileName: 'mp.txt',
    fileSizeBytes: bytes.length,
    partSizeBytes: 5 * 1024 * 1024,
    contentType: 'text/plain',
    storageLocationId: 1,
  };
  const started = await syn.startMultipartUpload(request);
  assert.equal(started.state, 'UPLOADING');
  assert.equal(started.partsState, '0');
  const resumed = await syn.startMultipartUpload(request);
  assert.equal(resumed.uploadId, started.uploadId);

  const [url] = await syn.getPartUploadUrls(started.uploadId, [1]);
  assert.ok(url);
  assert.equal(url.partNumber, 1);
  const put = await fetch(url.uploadPresignedUrl, { method: 'PUT', body: bytes, headers: url.signedHeaders ?? {} });
  assert.equal(put.status, 200, await put.text());

  const added = await syn.addPart(started.uploadId, 1, md5(bytes));
  assert.equal(added.addPartState, 'ADD_SUCCESS');
  const done = await syn.completeMultipartUpload(started.uploadId);
  assert.equal(done.state, 'COMPLETED');
  assert.equal(typeof done.resultFileHandleId, 'string');
  const fh = await syn.getFileHandle(done.resultFileHandleId!);
  assert.equal(fh.contentSize, bytes.length);
  assert.equal(fh.contentMd5, md5(bytes));

  // File entity, then a second upload becomes version 2.
  const entity = await syn.createEntity({ concreteType: CONCRETE.file, name: `mp-${randomUUID().slice(0, 8)}.txt`, parentId: sample.managedFolderId, dataFileHandleId: fh.id });
  const bytes2 = Buffer.concat([bytes, Buffer.from('more\n')]);
  const s2 = await syn.startMultipartUpload({ ...request, contentMD5Hex: md5(bytes2), fileSizeBytes: bytes2.length });
  const [u2] = await syn.getPartUploadUrls(s2.uploadId, [1]);
  assert.equal((await fetch(u2!.uploadPresignedUrl, { method: 'PUT', body: bytes2, headers: u2!.signedHeaders ?? {} })).status, 200);
  assert.equal((await syn.addPart(s2.uploadId, 1, md5(bytes2))).addPartState, 'ADD_SUCCESS');
  const d2 = await syn.completeMultipartUpload(s2.uploadId);
  const v2: Entity = await syn.updateEntity({ ...entity, dataFileHandleId: d2.resultFileHandleId! });
  assert.equal(v2.versionNumber, 2);
  assert.equal((await syn.getLatestVersionInfo(entity.id)).contentSize, String(bytes2.length));

  await rejects(syn.startMultipartUpload({ ...request, fileSizeBytes: 0, contentMD5Hex: md5(Buffer.alloc(0)) }), 400, /at least one byte/);
});

test('throttling: the 3-slot queue never trips it; a wider client is throttled and retries', T, async () => {
  stack.dev.setConfig({ throttle: true, synapseLatencyMs: 20 });
  try {
    const t0 = stack.dev.stats().synapse.throttled;
    await Promise.all(Array.from({ length: 12 }, () => syn.getEntity(sample.readmeId)));
    assert.equal(stack.dev.stats().synapse.throttled - t0, 0);

    const wide = new HttpSynapseClient({ endpoint: stack.endpoint, authToken: stack.authToken, maxConcurrent: 8, backoff: { initialMs: 10, maxMs: 100 } });
    const got = await Promise.all(Array.from({ length: 16 }, () => wide.getEntity(sample.readmeId)));
    assert.equal(got.length, 16);
    assert.ok(wide.stats().throttled > 0, 'the server throttled the 8-wide client');
    assert.equal(wide.stats().errors, 0);
  } finally {
    stack.dev.setConfig({ throttle: false, synapseLatencyMs: 0 });
  }
});

test('injected 503s and connection resets are retried through', T, async () => {
  stack.dev.addFault({ target: 'synapse', pathPattern: `/entity/${sample.notesId}`, method: 'GET', status: 503, count: 2 });
  stack.dev.addFault({ target: 'synapse', pathPattern: '/userProfile', reset: true, count: 1 });
  try {
    const c = new HttpSynapseClient({ endpoint: stack.endpoint, authToken: stack.authToken, backoff: { initialMs: 10, maxMs: 50 } });
    assert.equal((await c.getEntity(sample.notesId)).name, 'notes.txt');
    assert.equal((await c.getUserProfile()).userName, stack.userName);
    assert.equal(c.stats().retries, 3);
  } finally {
    stack.dev.clearFaults();
  }
});
