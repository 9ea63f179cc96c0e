/**
 * Direct in-memory setup for tests and fixtures, bypassing HTTP but producing exactly what a
 * user doing the same through the REST API would get: projects with the creator's ACL, folders
 * with external/STS storage locations (owner.txt written, location created by the project's
 * owner, an UploadDestinationListSetting on the folder), files whose bytes are put in the
 * parent's effective storage location with a correct S3FileHandle (MD5, size), new versions,
 * links, entity views (file views with the default columns, as the web UI makes them) and grants. Keys: managed `<userId>/<uuid>/<name>`; external `<baseKey>/<uuid>/<name>`
 * (what the Python client writes with STS credentials).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Entity, S3FileHandle } from '../../src/synapse/types.js';
import { CONCRETE } from '../../src/synapse/types.js';
import type { S3Backend } from './s3-backend.js';
import {
  nowIso, parseSynId, ROOT_ID, synId, type EntityRecord, type Perm, type State, type User,
} from './state.js';
import { entityJson, fileHandleJson } from './views.js';
import { validateEntityName } from './names.js';

export type UserRef = 'user1' | 'user2';

export interface SeedVersion { versionNumber: number; versionLabel: string; fileHandleId?: string }

export interface Seeder {
  project(name: string, opts?: { owner?: UserRef }): string;
  folder(parentId: string, name: string, opts?: { storage?: 'managed' | 'external' | 'sts'; baseKey?: string }):
    Promise<{ id: string; storageLocationId?: number }>;
  file(parentId: string, name: string, bytes: Buffer, opts?: { contentType?: string }):
    Promise<{ id: string; fileHandleId: string; versionNumber: number }>;
  fileVersion(entityId: string, bytes: Buffer, opts?: { contentType?: string }):
    Promise<{ id: string; fileHandleId: string; versionNumber: number }>;
  link(parentId: string, name: string, targetId: string): string;
  /**
   * An EntityView in `parentId` over the files below `scopeIds` (projects or folders, whole
   * subtrees), with the default file-view columns (id, name, currentVersion, parentId,
   * dataFileSizeBytes, dataFileMD5Hex, modifiedOn, …). `viewTypeMask` defaults to files (0x01).
   */
  view(parentId: string, name: string, scopeIds: string[], opts?: { viewTypeMask?: number }): string;
  grant(entityId: string, userId: string, perms: Perm[]): void;
  entity(id: string): Entity;
  versions(id: string): SeedVersion[];
  fileHandle(id: string): S3FileHandle;
  objectBytes(bucket: string, key: string): Promise<Buffer>;
  /**
   * Test-only: give an entity a name Synapse's NameValidation would refuse ("a/b", NUL, …), to
   * test that a client never turns a server-side name into a path escape. Bypasses all checks.
   */
  forceName(id: string, name: string): void;
  /** The synID of the folder an entity in the trash can was deleted from; undefined for one not there. */
  trashedFrom(id: string): string | undefined;
}

export function createSeeder(state: State, s3: S3Backend, users: { user1: User; user2: User }, externalBucket: string): Seeder {
  let baseKeyCounter = 0;

  const get = (id: string): EntityRecord => {
    const n = parseSynId(id);
    const e = n === undefined ? undefined : state.live(n);
    if (!e) throw new Error(`seeder: no entity ${id}`);
    return e;
  };
  const ownerOf = (e: EntityRecord): string => {
    const chain = [e, ...state.ancestors(e)];
    const project = chain.find((x) => x.kind === 'project');
    return project?.createdBy ?? users.user1.id;
  };
  const container = (id: string): EntityRecord => {
    const e = get(id);
    if (e.kind !== 'project' && e.kind !== 'folder') throw new Error(`seeder: ${id} is not a container`);
    return e;
  };
  const resolveUser = (u: string): string => (u === 'user1' ? users.user1.id : u === 'user2' ? users.user2.id : u);
  const freeName = (parentId: number, name: string): void => {
    if (state.childByName(parentId, name)) throw new Error(`seeder: ${name} already exists in ${synId(parentId)}`);
  };

  const putBytes = async (parent: EntityRecord, name: string, bytes: Buffer, contentType: string, userId: string) => {
    const loc = state.effectiveLocation(parent);
    const key = loc.concreteType === CONCRETE.externalS3Location
      ? `${loc.baseKey ? `${loc.baseKey}/` : ''}${randomUUID()}/${name}`
      : `${loc.baseKey ? `${loc.baseKey}/` : ''}${userId}/${randomUUID()}/${name}`;
    await s3.put(loc.bucket, key, bytes, contentType);
    return state.addFileHandle({
      createdBy: userId, bucketName: loc.bucket, key, contentMd5: createHash('md5').update(bytes).digest('hex'),
      contentSize: bytes.length, contentType, fileName: name, storageLocationId: loc.storageLocationId,
    });
  };

  const seeder: Seeder = {
    project(name, opts = {}) {
      const n = validateEntityName(name);
      freeName(ROOT_ID, n);
      const owner = opts.owner === 'user2' ? users.user2 : users.user1;
      return synId(state.createEntity({ kind: 'project', name: n, parentId: ROOT_ID, userId: owner.id }).id);
    },

    async folder(parentId, name, opts = {}) {
      const parent = container(parentId);
      const n = validateEntityName(name);
      freeName(parent.id, n);
      const userId = ownerOf(parent);
      const f = state.createEntity({ kind: 'folder', name: n, parentId: parent.id, userId });
      if (!opts.storage || opts.storage === 'managed') return { id: synId(f.id) };
      const baseKey = opts.baseKey ?? `lab/${n.replace(/[^A-Za-z0-9._-]/g, '_')}-${++baseKeyCounter}`;
      const user = state.users.get(userId);
      await s3.put(externalBucket, `${baseKey}/owner.txt`, Buffer.from(`${user?.userName ?? ''}\n`), 'text/plain');
      const storageLocationId = state.newStorageLocationId();
      state.storageLocations.set(storageLocationId, {
        storageLocationId, concreteType: CONCRETE.externalS3Location, uploadType: 'S3', bucket: externalBucket, baseKey,
        stsEnabled: opts.storage === 'sts', createdBy: userId, createdOn: nowIso(), etag: randomUUID(),
      });
      const ps = { id: state.newProjectSettingId(), etag: randomUUID(), projectId: synId(f.id), locations: [storageLocationId] };
      state.projectSettings.set(ps.id, ps);
      return { id: synId(f.id), storageLocationId };
    },

    async file(parentId, name, bytes, opts = {}) {
      const parent = container(parentId);
      const n = validateEntityName(name);
      const existing = state.childByName(parent.id, n);
      if (existing) {
        if (existing.kind !== 'file') throw new Error(`seeder: ${n} exists in ${parentId} and is not a file`);
        return seeder.fileVersion(synId(existing.id), bytes, opts);
      }
      const userId = ownerOf(parent);
      const fh = await putBytes(parent, n, bytes, opts.contentType ?? 'application/octet-stream', userId);
      const e = state.createEntity({ kind: 'file', name: n, parentId: parent.id, userId, dataFileHandleId: fh.id });
      return { id: synId(e.id), fileHandleId: fh.id, versionNumber: 1 };
    },

    async fileVersion(entityId, bytes, opts = {}) {
      const e = get(entityId);
      if (e.kind !== 'file') throw new Error(`seeder: ${entityId} is not a file`);
      const parent = container(synId(e.parentId));
      const userId = ownerOf(e);
      const prevId = state.currentVersion(e).dataFileHandleId;
      const prev = prevId ? state.fileHandles.get(prevId) : undefined;
      const fh = await putBytes(parent, e.name, bytes, opts.contentType ?? prev?.contentType ?? 'application/octet-stream', userId);
      const v = state.addVersion(e, userId, fh.id);
      return { id: synId(e.id), fileHandleId: fh.id, versionNumber: v.versionNumber };
    },

    link(parentId, name, targetId) {
      const parent = container(parentId);
      const n = validateEntityName(name);
      freeName(parent.id, n);
      const target = get(targetId);
      const e = state.createEntity({
        kind: 'link', name: n, parentId: parent.id, userId: ownerOf(parent),
        linksTo: { targetId: synId(target.id) }, linksToClassName: entityJson(state, target).concreteType as string,
      });
      return synId(e.id);
    },

    view(parentId, name, scopeIds, opts = {}) {
      const parent = container(parentId);
      const n = validateEntityName(name);
      freeName(parent.id, n);
      const viewTypeMask = opts.viewTypeMask ?? 0x01;
      const e = state.createEntity({
        kind: 'entityview', name: n, parentId: parent.id, userId: ownerOf(parent),
        view: { scopeIds: scopeIds.map((id) => container(id).id), viewTypeMask, columnIds: state.defaultViewColumns(viewTypeMask).map((c) => c.id) },
      });
      return synId(e.id);
    },

    grant(entityId, userId, perms) {
      state.grant(get(entityId), resolveUser(userId), perms);
    },

    entity(id) {
      return entityJson(state, get(id)) as unknown as Entity;
    },

    versions(id) {
      return [...get(id).versions].reverse().map((v) => {
        const out: SeedVersion = { versionNumber: v.versionNumber, versionLabel: v.versionLabel };
        if (v.dataFileHandleId !== undefined) out.fileHandleId = v.dataFileHandleId;
        return out;
      });
    },

    fileHandle(id) {
      const fh = state.fileHandles.get(id);
      if (!fh) throw new Error(`seeder: no file handle ${id}`);
      return fileHandleJson(fh) as unknown as S3FileHandle;
    },

    forceName(id, name) {
      get(id).name = name;
    },

    trashedFrom(id) {
      const n = parseSynId(id);
      const from = n === undefined ? undefined : state.entities.get(n)?.trashedFrom;
      return from === undefined ? undefined : synId(from);
    },

    async objectBytes(bucket, key) {
      const r = await s3.get(bucket, key);
      if (!Buffer.isBuffer(r)) throw new Error(`seeder: ${bucket}/${key}: ${r.code}`);
      return r;
    },
  };
  return seeder;
}
