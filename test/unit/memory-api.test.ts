/**
 * MemorySynapseApi (src/synapse/memory-api.ts) against the local Synapse server (test/server,
 * through HttpSynapseClient): one scenario — the calls and failures the filesystem depends on —
 * runs on both, and the outcomes (HTTP status or the fields that matter) must be equal. That is
 * what makes the fake's answers trustworthy in the model test (test/unit/fs-model.test.ts).
 *
 * Covered: etags (412 on stale), versions (new when the handle's MD5 differs, none when it is
 * the same, always with ?newVersion), 409 on a taken name, name validation and trimming (400),
 * children sorted by name, lookupChild, bundle2 + getLatestVersionInfo, external S3 handles
 * (object must exist; baseKey), the STS fast-path prerequisites (upload destination,
 * getStorageLocation createdBy = the user, STS credentials; 400 outside STS), moves into or out
 * of an STS folder (400 naming STS), trash (a deleted folder takes its children).
 * Then the fake's helpers and invariants, and the failure-injecting wrappers
 * (src/synapse/faulty-api.ts, src/s3/faulty-object-store.ts).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startStack, type Stack } from '../server/stack.js';
import { HttpSynapseClient } from '../../src/synapse/http-client.js';
import { SynapseError } from '../../src/synapse/errors.js';
import { CONCRETE, type Entity } from '../../src/synapse/types.js';
import type { SynapseApi } from '../../src/synapse/api.js';
import { MemorySynapseApi, NotImplementedInFake } from '../../src/synapse/memory-api.js';
import { FaultySynapseApi } from '../../src/synapse/faulty-api.js';
import { MemoryObjectStore } from '../../src/s3/memory-object-store.js';
import { FaultyObjectStore } from '../../src/s3/faulty-object-store.js';
import { S3Error } from '../../src/s3/object-store.js';

const T = { timeout: 60_000 };
const md5 = (b: Buffer): string => createHash('md5').update(b).digest('hex');

/** What differs between the two backends and the scenario needs: making folders with storage, putting S3 objects. */
interface Backend {
  api: SynapseApi;
  userId: string;
  stsFolder(parentId: string, name: string): Promise<string>;
  putObject(bucket: string, key: string, bytes: Buffer): Promise<void>;
}

type Outcome = Record<string, unknown>;

async function outcome(p: Promise<unknown>, pick: (v: never) => Outcome = () => ({})): Promise<Outcome> {
  try {
    return { ok: true, ...pick((await p) as never) };
  } catch (err) {
    if (!(err instanceof SynapseError)) throw err;
    return { status: err.status, ...(/\bSTS\b/.test(err.reason) ? { namesSts: true } : {}) };
  }
}

/** The scenario: every step's outcome, in order. Ids differ between backends, so none is recorded. */
async function scenario(b: Backend): Promise<Array<[string, Outcome]>> {
  const out: Array<[string, Outcome]> = [];
  const step = async (name: string, p: Promise<unknown>, pick?: (v: never) => Outcome): Promise<void> => {
    out.push([name, await outcome(p, pick)]);
  };
  const api = b.api;
  const project = await api.createEntity({ concreteType: CONCRETE.project, name: `fake-vs-server-${randomUUID().slice(0, 8)}` });
  const managed = await api.createEntity({ concreteType: CONCRETE.folder, name: 'managed', parentId: project.id });
  const stsId = await b.stsFolder(project.id, 'sts');

  // names
  await step('duplicate name', api.createEntity({ concreteType: CONCRETE.folder, name: 'managed', parentId: project.id }));
  await step('invalid name', api.createEntity({ concreteType: CONCRETE.folder, name: 'a:b', parentId: project.id }));
  await step('name is trimmed', api.createEntity({ concreteType: CONCRETE.folder, name: '  padded ', parentId: project.id }),
    (e: Entity) => ({ name: e.name }));
  await step('empty name', api.createEntity({ concreteType: CONCRETE.folder, name: '   ', parentId: project.id }));
  for (const n of ['b', 'a', 'C', 'a b']) await api.createEntity({ concreteType: CONCRETE.folder, name: n, parentId: managed.id });
  await step('children sorted by name', api.listChildren(managed.id, ['folder', 'file']), (hs: Array<{ name: string; type: string }>) =>
    ({ names: hs.map((h) => h.name), types: [...new Set(hs.map((h) => h.type))] }));
  await step('lookupChild present', api.lookupChild(managed.id, 'a b'), (id: string | null) => ({ found: id !== null }));
  await step('lookupChild absent', api.lookupChild(managed.id, 'nope'), (id: string | null) => ({ found: id !== null }));

  // etags
  const a = (await api.listChildren(managed.id, ['folder'])).find((h) => h.name === 'a')!;
  const aEntity = await api.getEntity(a.id);
  const renamed = await api.updateEntity({ ...aEntity, name: 'a2' });
  await step('rename changes the etag', Promise.resolve(renamed), (e: Entity) => ({ etagChanged: e.etag !== aEntity.etag, name: e.name }));
  await step('stale etag', api.updateEntity({ ...aEntity, name: 'a3' }));
  await step('rename onto a taken name', api.updateEntity({ ...renamed, name: 'b' }));

  // STS prerequisites
  const dest = await api.getUploadDestination(stsId);
  await step('STS upload destination', Promise.resolve(dest), (d: typeof dest) => ({
    concreteType: d.concreteType, stsEnabled: d.stsEnabled, hasBucket: !!d.bucket, hasBaseKey: !!d.baseKey,
  }));
  await step('managed upload destination', api.getUploadDestination(managed.id), (d: typeof dest) => ({
    concreteType: d.concreteType, stsEnabled: d.stsEnabled, storageLocationId: d.storageLocationId,
  }));
  await step('STS location created by the user', api.getStorageLocation(dest.storageLocationId), (l: { createdBy?: string | number }) =>
    ({ mine: String(l.createdBy) === b.userId }));
  await step('Synapse storage location is not the user\'s', api.getStorageLocation(1));
  await step('STS read_write credentials', api.getStsCredentials(stsId, 'read_write'), (c: { bucket: string; baseKey?: string; expiration: string }) =>
    ({ bucket: c.bucket === dest.bucket, baseKey: c.baseKey === dest.baseKey, future: Date.parse(c.expiration) > Date.now() + 10 * 60_000 }));
  await step('STS credentials outside STS', api.getStsCredentials(managed.id, 'read_only'));

  // external file handles and versions
  const bucket = dest.bucket!;
  const upload = async (name: string, bytes: Buffer, store = true): Promise<string> => {
    const key = `${dest.baseKey}/${randomUUID()}/${name}`;
    if (store) await b.putObject(bucket, key, bytes);
    const fh = await api.createExternalS3FileHandle({
      concreteType: CONCRETE.s3FileHandle, bucketName: bucket, key, storageLocationId: dest.storageLocationId,
      contentMd5: md5(bytes), contentSize: bytes.length, fileName: name, contentType: 'text/plain',
    });
    return String(fh.id);
  };
  await step('handle for a missing object', upload('missing.txt', Buffer.from('x'), false));
  await step('handle outside the baseKey', api.createExternalS3FileHandle({
    concreteType: CONCRETE.s3FileHandle, bucketName: bucket, key: `elsewhere/${randomUUID()}`, storageLocationId: dest.storageLocationId,
    contentMd5: md5(Buffer.from('x')), contentSize: 1, fileName: 'x',
  }));
  const v1 = Buffer.from('version one');
  const file = await api.createEntity({ concreteType: CONCRETE.file, name: 'f.txt', parentId: stsId, dataFileHandleId: await upload('f.txt', v1) });
  await step('file created at version 1', Promise.resolve(file), (e: Entity) => ({ v: e.versionNumber }));
  const sameBytes = await api.updateEntity({ ...file, dataFileHandleId: await upload('f.txt', v1) });
  await step('same MD5: no new version', Promise.resolve(sameBytes), (e: Entity) => ({ v: e.versionNumber }));
  const v2 = await api.updateEntity({ ...sameBytes, dataFileHandleId: await upload('f.txt', Buffer.from('version two!')) });
  await step('other MD5: new version', Promise.resolve(v2), (e: Entity) => ({ v: e.versionNumber }));
  const forced = await api.updateEntity({ ...v2, name: 'f2.txt' }, { newVersion: true });
  await step('?newVersion=true', Promise.resolve(forced), (e: Entity) => ({ v: e.versionNumber, name: e.name }));
  await step('rename: no new version', api.updateEntity({ ...forced, name: 'f3.txt' }), (e: Entity) => ({ v: e.versionNumber }));
  await step('latest version info', api.getLatestVersionInfo(file.id), (v: { versionNumber: number; contentSize?: string; contentMd5?: string }) =>
    ({ v: v.versionNumber, size: v.contentSize, md5: v.contentMd5 }));
  await step('bundle2 with file handle', api.getBundle(file.id, { includeEntity: true, includeFileHandles: true }),
    (bd: { entity?: Entity; fileHandles?: Array<{ id: string; contentSize: number }> }) => ({
      matches: bd.fileHandles?.[0]?.id === bd.entity?.dataFileHandleId, size: bd.fileHandles?.[0]?.contentSize,
    }));
  await step('bundle2 of version 1', api.getBundle(file.id, { includeEntity: true, includeFileHandles: true }, 1),
    (bd: { entity?: Entity; fileHandles?: Array<{ contentSize: number }> }) => ({ v: bd.entity?.versionNumber, size: bd.fileHandles?.[0]?.contentSize }));

  // STS boundaries
  const current = await api.getEntity(file.id);
  await step('move a file out of the STS folder', api.updateEntity({ ...current, parentId: managed.id }));
  const plain = await api.createEntity({ concreteType: CONCRETE.folder, name: 'plain', parentId: managed.id });
  await step('move a folder into the STS folder', api.updateEntity({ ...plain, parentId: stsId }));
  const sub = await api.createEntity({ concreteType: CONCRETE.folder, name: 'sub', parentId: stsId });
  await step('move a folder within the STS folder', api.updateEntity({ ...sub, parentId: stsId, name: 'sub2' }), (e: Entity) => ({ name: e.name }));
  await step('move a folder into its own subfolder', api.updateEntity({ ...(await api.getEntity(managed.id)), parentId: plain.id }));

  // trash
  const child = await api.createEntity({ concreteType: CONCRETE.folder, name: 'child', parentId: plain.id });
  await api.deleteEntity(plain.id);
  await step('deleted folder', api.getEntity(plain.id));
  await step('child of a deleted folder', api.getEntity(child.id));
  await step('delete twice', api.deleteEntity(plain.id));
  const again = api.createEntity({ concreteType: CONCRETE.folder, name: 'plain', parentId: managed.id });
  await step('name free again after delete', again, (e: Entity) => ({ name: e.name }));
  await step('restore a child of a deleted folder (not itself in the trash can)', api.restoreFromTrash(child.id));
  await step('restore onto a name taken since', api.restoreFromTrash(plain.id));
  await api.deleteEntity((await again).id);
  await step('restore', api.restoreFromTrash(plain.id));
  await step('child back with its folder', api.getEntity(child.id), (e: Entity) => ({ name: e.name }));
  await step('restore twice', api.restoreFromTrash(plain.id));
  return out;
}

let stack: Stack;
let s3: S3Client;

before(async () => {
  stack = await startStack({ fixture: 'empty' });
  s3 = new S3Client({
    endpoint: stack.s3Endpoint, region: 'us-east-1', forcePathStyle: true,
    credentials: { accessKeyId: stack.s3AccessKeyId, secretAccessKey: stack.s3SecretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED', maxAttempts: 1,
  });
});

after(async () => {
  s3?.destroy();
  await stack?.close();
});

test('the fake answers the scenario exactly as the local Synapse server does', T, async () => {
  const server: Backend = {
    api: new HttpSynapseClient({ endpoint: stack.endpoint, authToken: stack.authToken, backoff: { initialMs: 10, maxMs: 100 } }),
    userId: stack.userId,
    stsFolder: async (parentId, name) => (await stack.seed.folder(parentId, name, { storage: 'sts' })).id,
    putObject: async (bucket, key, bytes) => { await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes })); },
  };
  const store = new MemoryObjectStore();
  const fakeApi = new MemorySynapseApi({ store, userId: stack.userId, userName: stack.userName });
  const fake: Backend = {
    api: fakeApi,
    userId: stack.userId,
    stsFolder: async (parentId, name) => (await fakeApi.createStsFolder(parentId, name)).folder.id,
    putObject: async (bucket, key, bytes) => { await store.putObject({ bucket, key }, bytes); },
  };
  const want = await scenario(server);
  if (process.env.SHOW_SCENARIO) console.log(JSON.stringify(want));
  const got = await scenario(fake);
  for (let i = 0; i < Math.max(want.length, got.length); i++) {
    assert.deepEqual(got[i], want[i], `step ${i + 1}: ${want[i]?.[0] ?? got[i]?.[0]}`);
  }
  // A few expectations spelled out, so a change on both sides does not pass unnoticed.
  const byName = new Map(want);
  assert.deepEqual(byName.get('stale etag'), { status: 412 });
  assert.deepEqual(byName.get('duplicate name'), { status: 409 });
  assert.deepEqual(byName.get('move a file out of the STS folder'), { status: 400, namesSts: true });
  assert.deepEqual(byName.get('other MD5: new version'), { ok: true, v: 2 });
  assert.deepEqual(byName.get('child of a deleted folder'), { status: 404 });
  fakeApi.checkInvariants();
});

// ---- the fake's helpers: another client, inspection ----

test('otherClient changes Synapse behind a client\'s back; the tree and versions show it', async () => {
  const store = new MemoryObjectStore();
  const api = new MemorySynapseApi({ store });
  const project = await api.createProject('P');
  const { folder } = await api.createStsFolder(project.id, 'data');
  const other = api.otherClient();
  const f = await other.putFile(folder.id, 'a.txt', Buffer.from('one'));
  const seen = await api.getEntity(f.id);
  await other.putVersion(f.id, Buffer.from('two'));
  await assert.rejects(api.updateEntity({ ...seen, name: 'b.txt' }), (e: unknown) => e instanceof SynapseError && e.status === 412);
  assert.deepEqual(api.versions(f.id).map((v) => v.versionNumber), [1, 2]);
  assert.equal(api.fileBytes(f.id).toString(), 'two');
  assert.equal(api.fileBytes(f.id, 1).toString(), 'one');
  await other.move(f.id, 'renamed.txt');
  await other.mkdir(folder.id, 'sub');
  const tree = api.tree(folder.id);
  assert.deepEqual(Object.keys(tree).sort(), ['renamed.txt', 'sub']);
  assert.equal(api.resolvePath(folder.id, '/renamed.txt')?.id, f.id);
  await other.trash(f.id);
  assert.equal(api.resolvePath(folder.id, '/renamed.txt'), undefined);
  assert.ok((api.calls['createEntity'] ?? 0) >= 4);
  api.checkInvariants();
});

test('a collaborator\'s file handle cannot be put on another entity (403), its location not read', async () => {
  const store = new MemoryObjectStore();
  const api = new MemorySynapseApi({ store });
  const project = await api.createProject('P');
  const { folder, storageLocationId } = await api.createStsFolder(project.id, 'data');
  const mine = await api.putFile(folder.id, 'mine.txt', Buffer.from('mine'));
  const collaborator = api.otherClient({ userId: '999', userName: 'collab' });
  await assert.rejects(collaborator.getStorageLocation(storageLocationId), (e: unknown) => e instanceof SynapseError && e.status === 403);
  // Only the location's creator registers external handles: a collaborator cannot upload here.
  await assert.rejects(collaborator.putFile(folder.id, 'theirs.txt', Buffer.from('x')), (e: unknown) => e instanceof SynapseError && e.status === 403);
  const theirHandle = await collaborator.uploadBytes(project.id, 'theirs.txt', Buffer.from('theirs')); // Synapse storage
  const current = await api.getEntity(mine.id);
  await assert.rejects(api.updateEntity({ ...current, dataFileHandleId: theirHandle }), (e: unknown) => e instanceof SynapseError && e.status === 403);
});

test('the multipart API is not in the fake, and says so', async () => {
  const api = new MemorySynapseApi({ store: new MemoryObjectStore() });
  await assert.rejects(api.startMultipartUpload({ contentMD5Hex: md5(Buffer.from('x')), fileName: 'x', fileSizeBytes: 1, partSizeBytes: 5 << 20 }),
    (e: unknown) => e instanceof NotImplementedInFake && /not implemented in the fake/.test(e.message));
});

test('results are copies: mutating an answer does not change the fake', async () => {
  const api = new MemorySynapseApi({ store: new MemoryObjectStore() });
  const p = await api.createProject('P');
  const e = await api.getEntity(p.id);
  e.name = 'changed';
  assert.equal((await api.getEntity(p.id)).name, 'P');
});

// ---- the failure-injecting wrappers ----

test('FaultySynapseApi: scripted failures per method — times, skip, status, afterCall, custom error', async () => {
  const inner = new MemorySynapseApi({ store: new MemoryObjectStore() });
  const api = new FaultySynapseApi(inner);
  const p = await api.createEntity({ concreteType: CONCRETE.project, name: 'P' });

  api.failNext('getEntity', 2, 503);
  for (let i = 0; i < 2; i++) {
    await assert.rejects(api.getEntity(p.id), (e: unknown) => e instanceof SynapseError && e.status === 503 && e.code === 'SERVER_ERROR' && /injected/.test(e.reason));
  }
  assert.equal((await api.getEntity(p.id)).id, p.id);
  assert.equal(api.calls.getEntity, 3);
  assert.equal(api.injected.getEntity, 2);

  api.fail('listChildren', { skip: 1, status: 429 });
  await api.listChildren(p.id, ['folder']);
  await assert.rejects(api.listChildren(p.id, ['folder']), (e: unknown) => e instanceof SynapseError && e.status === 429);
  assert.equal(api.pending('listChildren'), 0);

  // The answer is lost after Synapse did the work: the folder exists, the caller saw a 502.
  api.fail('createEntity', { status: 502, afterCall: true });
  await assert.rejects(api.createEntity({ concreteType: CONCRETE.folder, name: 'made', parentId: p.id }));
  assert.ok(await inner.lookupChild(p.id, 'made'));

  const boom = new Error('socket hang up');
  api.fail('deleteEntity', { error: boom });
  await assert.rejects(api.deleteEntity(p.id), (e: unknown) => e === boom);
  assert.ok(await api.getEntity(p.id), 'the failed delete never reached the fake');

  api.fail('getUserProfile', { times: 5 });
  api.clear();
  assert.ok(await api.getUserProfile());
});

test('FaultyObjectStore: scripted S3 failures, and delays', async () => {
  const inner = new MemoryObjectStore();
  const store = new FaultyObjectStore(inner);
  const loc = { bucket: 'b', key: 'k' };
  await store.putObject(loc, Buffer.from('hello world'));
  store.failNext('getRange', 1, 'SlowDown', 503);
  await assert.rejects(store.getRange(loc, 0, 5), (e: unknown) => e instanceof S3Error && e.code === 'SlowDown' && e.status === 503);
  assert.equal((await store.getRange(loc, 0, 5)).data.toString(), 'hello');

  // The part reached S3, the answer did not.
  const id = await store.createMultipartUpload(loc);
  store.fail('uploadPart', { afterCall: true });
  await assert.rejects(store.uploadPart(loc, id, 1, Buffer.from('part')));
  assert.equal(inner.uploads.get(id)?.parts.size, 1);

  store.fail('head', { delayMs: 30, skip: 1 });
  const t0 = Date.now();
  await store.head(loc); // skipped, but delayed
  assert.ok(Date.now() - t0 >= 25);
  await assert.rejects(store.head(loc), (e: unknown) => e instanceof S3Error && e.code === 'InternalError');
  assert.equal(store.calls.head, 2);
  assert.equal(store.injected.head, 1);
});
