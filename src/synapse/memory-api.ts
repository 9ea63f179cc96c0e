/**
 * MemorySynapseApi: the in-memory fake at the Synapse seam (CONVENTIONS §2), for tests of the
 * layers above (the filesystem, the publisher) without HTTP, and for the model-based test
 * (test/unit/fs-model.test.ts) that drives SynapseFilesystem beside a plain tree.
 *
 * What it models — the Synapse semantics the filesystem depends on, with the local server's
 * (test/server) rules and messages, checked against it in test/unit/memory-api.test.ts:
 *  - Entities (Project / Folder / FileEntity / Link) with etags: every change makes a new etag,
 *    and an update carrying a stale one is 412. Renames and moves never make a version.
 *  - Versions: an update of a FileEntity whose dataFileHandleId changes makes a new version when
 *    the two handles' MD5s differ (or one is missing); same MD5 → the current version's handle is
 *    replaced in place (EntityManagerImpl). `?newVersion=true` always makes one.
 *  - Names: trimmed, then 1..256 of letters, digits, space and , _ . - + ( ) ' — else 400;
 *    a name taken in the parent (by a live entity) is 409.
 *  - Children listings sorted by name (then id), lookupChild (null when absent), bundle2
 *    (entity + its file handle), getLatestVersionInfo (size and MD5 of the newest version).
 *  - File handles: external S3 handles only from the storage location's creator, with a 32-hex
 *    MD5, the location's bucket, the baseKey prefix of an STS location, and an object that
 *    exists in the given MemoryObjectStore (peeked at directly: the check costs no counted call
 *    and no injected fault of the store). Only a handle's creator may put it on an entity
 *    (403) unless it is already on that entity.
 *  - Storage: location 1 is Synapse's own storage (presigned URLs + multipart API).
 *    `createStsFolder()` makes what the filesystem's STS fast path needs: an STS-enabled
 *    external S3 location created by this client's user (so getStorageLocation answers with
 *    createdBy = the user), set as the folder's upload destination. STS credentials are
 *    dummies with a far expiration (`stsLifetimeMs`, 12 h by default); nothing checks them —
 *    the MemoryObjectStore has no auth.
 *  - Moves into or out of an STS folder (files and folders; StsManagerImpl's rules) → 400
 *    whose reason names STS, which the filesystem turns into EXDEV.
 *  - Delete moves to the trash can; a trashed folder takes its subtree (404 below it).
 *
 * Not modelled: ACLs (every user may do everything; `getFileHandle` and the creator rules are
 * the only per-user checks), annotations beyond bundle2's empty set, paging (listChildren returns
 * everything at once, as the HTTP client does after following nextPageToken), previews, and
 * Synapse's multipart upload API: startMultipartUpload, getPartUploadUrls, addPart and
 * completeMultipartUpload throw NotImplementedInFake — the STS fast path never calls them, so
 * tests that publish must write into an STS folder. Presigned URLs are `memory://` strings that
 * nothing can fetch, for the same reason.
 *
 * Acting as another Synapse client: `otherClient()` returns a second MemorySynapseApi over the
 * same state (same user by default — the user's Python client on another machine — or another
 * user id), and the helpers `putFile`, `putVersion`, `move`, `trash`, `mkdir` do in one call what
 * such a client would do in several (upload bytes to the folder's storage, register a handle,
 * create the entity or its next version), so tests can change Synapse behind the filesystem's
 * back. Inspection helpers (`resolvePath`, `tree`, `fileBytes`, `versions`) and `calls` (per
 * method counts) read the state without counting as calls.
 *
 * INVARIANT (checkInvariants): no two live children of one parent share a name; every live
 * non-project entity's parent is a live container; version numbers increase by one from 1;
 * every FileEntity version names an existing file handle whose object exists in the store;
 * etags are unique among entities. Results are deep copies: a caller mutating an answer never
 * changes the state.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { MemoryObjectStore } from '../s3/memory-object-store.js';
import type { BundleRequest, ChildType, SynapseApi } from './api.js';
import { SynapseError } from './errors.js';
import {
  CONCRETE,
  type AddPartResponse,
  type BatchFileResult,
  type Entity,
  type EntityBundle,
  type EntityHeader,
  type ExternalS3FileHandleRequest,
  type FileHandleAssociation,
  type MultipartUploadRequest,
  type MultipartUploadStatus,
  type NewEntity,
  type PartPresignedUrl,
  type S3FileHandle,
  type StorageLocationSetting,
  type StsCredentials,
  type StsPermission,
  type UploadDestination,
  type UploadDestinationListSetting,
  type UserProfile,
  type VersionInfo,
} from './types.js';

/** Synapse's root entity (the parent of every project). */
export const ROOT_ID = 4489;
/** Synapse's default storage location (its own bucket). */
export const DEFAULT_STORAGE_LOCATION_ID = 1;
const FIRST_ENTITY_ID = 1001;
const FIRST_FILE_HANDLE_ID = 5001;
const FIRST_STORAGE_LOCATION_ID = 101;
const FIRST_PROJECT_SETTING_ID = 201;
const MAX_NAME_LENGTH = 256;
const VALID_NAME = /^[a-zA-Z0-9,_.\-+()' ]+$/;
const MD5_HEX = /^[0-9a-fA-F]{32}$/;
const MAX_BATCH = 100;
/** Far enough that no test ever sees the credentials near expiry. */
const DEFAULT_STS_LIFETIME_MS = 12 * 60 * 60 * 1000;
const SYNAPSE_ADMIN = '273950';

export type EntityKind = 'project' | 'folder' | 'file' | 'link';

const KIND_CONCRETE: Record<EntityKind, string> = {
  project: CONCRETE.project,
  folder: CONCRETE.folder,
  file: CONCRETE.file,
  link: CONCRETE.link,
};

function kindOfConcrete(concreteType: string): EntityKind | undefined {
  for (const [k, v] of Object.entries(KIND_CONCRETE)) if (v === concreteType) return k as EntityKind;
  return undefined;
}

const CHILD_TYPE_KIND: Record<ChildType, EntityKind> = { project: 'project', folder: 'folder', file: 'file', link: 'link' };

/** Thrown by the multipart-API methods, which the fake does not implement (see the header). */
export class NotImplementedInFake extends Error {
  override readonly name = 'NotImplementedInFake';
  constructor(method: string) {
    super(`${method}: not implemented in the fake (MemorySynapseApi serves the STS fast path only; publish into an STS folder)`);
  }
}

interface VersionRec {
  versionNumber: number;
  versionLabel: string;
  versionComment?: string;
  dataFileHandleId?: string;
  modifiedOn: string;
  modifiedBy: string;
}

interface EntityRec {
  id: number;
  name: string;
  parentId: number;
  kind: EntityKind;
  etag: string;
  createdOn: string;
  createdBy: string;
  modifiedOn: string;
  modifiedBy: string;
  description?: string;
  versions: VersionRec[];
  linksTo?: { targetId: string; targetVersionNumber?: number };
  /** Shared by an ACL of its own (shareOnItsOwn): its own benefactor. Dropped in the trash can, as Synapse does. */
  ownAcl?: true;
  linksToClassName?: string;
  /** Set when deleted (moved to the trash can); its subtree goes with it. */
  trashedFrom?: number;
  trashedBy?: string;
}

interface LocationRec {
  storageLocationId: number;
  concreteType: string;
  uploadType: string;
  bucket: string;
  baseKey?: string;
  stsEnabled?: boolean;
  banner?: string;
  endpointUrl?: string;
  createdBy: string;
  createdOn: string;
  etag: string;
}

interface SettingRec {
  id: string;
  etag: string;
  projectId: string;
  locations: number[];
}

interface User {
  id: string;
  userName: string;
}

/** The shared state every client view of one fake works on. */
class FakeState {
  readonly entities = new Map<number, EntityRec>();
  readonly fileHandles = new Map<string, S3FileHandle>();
  readonly locations = new Map<number, LocationRec>();
  readonly settings = new Map<string, SettingRec>();
  readonly users = new Map<string, User>();
  readonly calls: Record<string, number> = {};
  nextEntity = FIRST_ENTITY_ID;
  nextFileHandle = FIRST_FILE_HANDLE_ID;
  nextLocation = FIRST_STORAGE_LOCATION_ID;
  nextSetting = FIRST_PROJECT_SETTING_ID;
  nextStsKey = 1;
  /** Strictly increasing clock, so modifiedOn orders changes even within one millisecond. */
  private lastTime = 0;

  constructor(
    readonly store: MemoryObjectStore,
    readonly bucket: string,
    readonly managedBucket: string,
    readonly stsLifetimeMs: number,
    private readonly clock: () => number,
  ) {
    this.locations.set(DEFAULT_STORAGE_LOCATION_ID, {
      storageLocationId: DEFAULT_STORAGE_LOCATION_ID, concreteType: CONCRETE.s3Location, uploadType: 'S3',
      bucket: managedBucket, createdBy: SYNAPSE_ADMIN, createdOn: '2014-06-01T00:00:00.000Z', etag: randomUUID(),
    });
  }

  now(): string {
    this.lastTime = Math.max(this.lastTime + 1, this.clock());
    return new Date(this.lastTime).toISOString();
  }

  isTrashed(e: EntityRec): boolean {
    for (let cur: EntityRec | undefined = e; cur; cur = this.entities.get(cur.parentId)) {
      if (cur.trashedFrom !== undefined) return true;
    }
    return false;
  }

  /**
   * The ACL benefactor as Synapse's headers name it. This fake checks no permissions: every
   * entity inherits its project's ACL, as in Synapse, unless it was shared on its own (ownAcl).
   */
  benefactor(e: EntityRec): number {
    let cur = e;
    for (let parent = this.entities.get(cur.parentId); cur.kind !== 'project' && !cur.ownAcl && parent; parent = this.entities.get(cur.parentId)) cur = parent;
    return cur.id;
  }

  live(id: number): EntityRec | undefined {
    const e = this.entities.get(id);
    return e && !this.isTrashed(e) ? e : undefined;
  }

  children(parentId: number): EntityRec[] {
    const out: EntityRec[] = [];
    for (const e of this.entities.values()) if (e.parentId === parentId && e.trashedFrom === undefined) out.push(e);
    return out;
  }

  /** Children ever placed here, trashed ones included (STS can only be enabled on an empty folder). */
  everChildren(parentId: number): EntityRec[] {
    return [...this.entities.values()].filter((e) => e.parentId === parentId);
  }

  childByName(parentId: number, name: string): EntityRec | undefined {
    for (const e of this.entities.values()) {
      if (e.parentId === parentId && e.trashedFrom === undefined && e.name === name) return e;
    }
    return undefined;
  }

  isDescendantOrSelf(candidate: EntityRec, of: EntityRec): boolean {
    for (let cur: EntityRec | undefined = candidate; cur; cur = this.entities.get(cur.parentId)) {
      if (cur.id === of.id) return true;
    }
    return false;
  }

  current(e: EntityRec): VersionRec {
    const v = e.versions[e.versions.length - 1];
    if (!v) throw new Error(`entity syn${e.id} has no versions`);
    return v;
  }

  touch(e: EntityRec, userId: string): void {
    e.etag = randomUUID();
    e.modifiedOn = this.now();
    e.modifiedBy = userId;
  }

  settingOn(id: number): SettingRec | undefined {
    for (const s of this.settings.values()) if (parseSynId(s.projectId) === id) return s;
    return undefined;
  }

  /** The setting that applies to a node: its own or the nearest ancestor's. */
  settingFor(e: EntityRec): SettingRec | undefined {
    for (let cur: EntityRec | undefined = e; cur; cur = this.entities.get(cur.parentId)) {
      const s = this.settingOn(cur.id);
      if (s) return s;
    }
    return undefined;
  }

  isStsLocation(id: number | undefined): boolean {
    return id !== undefined && this.locations.get(id)?.stsEnabled === true;
  }

  isStsSetting(s: SettingRec | undefined): boolean {
    return s !== undefined && this.isStsLocation(s.locations[0]);
  }

  effectiveLocation(e: EntityRec): LocationRec {
    const id = this.settingFor(e)?.locations[0] ?? DEFAULT_STORAGE_LOCATION_ID;
    return this.locations.get(id) ?? this.locations.get(DEFAULT_STORAGE_LOCATION_ID)!;
  }

  objectExists(bucket: string, key: string): boolean {
    return this.store.objects.has(`${bucket}/${key}`);
  }

  putObject(bucket: string, key: string, bytes: Buffer): void {
    this.store.objects.set(`${bucket}/${key}`, { data: Buffer.from(bytes), etag: md5Hex(bytes) });
  }
}

export interface MemorySynapseApiOptions {
  /** Where external S3 objects live (file handle creation checks that the object exists here). */
  store: MemoryObjectStore;
  /** This client's user; default '3421001' / 'demo-user' (the local server's user1). */
  userId?: string;
  userName?: string;
  /** Bucket of the external (STS) storage locations createStsFolder makes; default 'lab-external'. */
  bucket?: string;
  /** Bucket standing for Synapse's own storage (location 1); default 'synapse-managed'. */
  managedBucket?: string;
  /** Lifetime of the dummy STS credentials; default 12 h. */
  stsLifetimeMs?: number;
  /** Clock for createdOn/modifiedOn/expiration (epoch ms); default Date.now. */
  now?: () => number;
}

/** A node of `tree()`: what Synapse holds under a container, by name. */
export type FakeTree = { [name: string]: { kind: 'folder'; id: string; children: FakeTree } | { kind: 'file'; id: string; bytes: Buffer; versionNumber: number } | { kind: 'link' | 'project'; id: string } };

function md5Hex(b: Buffer): string {
  return createHash('md5').update(b).digest('hex');
}

export function parseSynId(s: string | number | undefined | null): number | undefined {
  if (typeof s === 'number') return Number.isInteger(s) && s > 0 ? s : undefined;
  if (typeof s !== 'string') return undefined;
  const m = /^(?:syn)?(\d+)$/i.exec(s.trim());
  return m ? Number(m[1]) : undefined;
}

const synId = (n: number): string => `syn${n}`;

function clone<T>(v: T): T {
  return structuredClone(v);
}

export class MemorySynapseApi implements SynapseApi {
  private readonly s: FakeState;
  readonly user: User;

  constructor(opts: MemorySynapseApiOptions);
  /** @internal another client over the same state (otherClient). */
  constructor(opts: MemorySynapseApiOptions, shared: FakeState, user: User);
  constructor(opts: MemorySynapseApiOptions, shared?: FakeState, user?: User) {
    this.s = shared ?? new FakeState(
      opts.store, opts.bucket ?? 'lab-external', opts.managedBucket ?? 'synapse-managed',
      opts.stsLifetimeMs ?? DEFAULT_STS_LIFETIME_MS, opts.now ?? Date.now,
    );
    this.user = user ?? { id: opts.userId ?? '3421001', userName: opts.userName ?? 'demo-user' };
    if (!this.s.users.has(this.user.id)) this.s.users.set(this.user.id, this.user);
  }

  /** Calls per SynapseApi method, across every client of this fake. */
  get calls(): Record<string, number> {
    return this.s.calls;
  }

  get store(): MemoryObjectStore {
    return this.s.store;
  }

  /**
   * Another Synapse client over the same state: the same user elsewhere (default), or another
   * user (`userId`), e.g. a collaborator whose file handles this user may not reuse.
   */
  otherClient(user?: { userId: string; userName?: string }): MemorySynapseApi {
    const u = user ? { id: user.userId, userName: user.userName ?? `user-${user.userId}` } : this.user;
    return new MemorySynapseApi({ store: this.s.store }, this.s, u);
  }

  // ---------- plumbing ----------

  private count(method: string): void {
    this.s.calls[method] = (this.s.calls[method] ?? 0) + 1;
  }

  private err(status: number, reason: string, method: string, path: string): SynapseError {
    return new SynapseError(status, reason, method, path);
  }

  private lookup(idText: string | undefined, method: string, path: string): EntityRec {
    const id = parseSynId(idText);
    const e = id === undefined ? undefined : this.s.entities.get(id);
    if (!e || id === undefined) throw this.err(404, `Entity ${idText ?? ''} does not exist`, method, path);
    if (this.s.isTrashed(e)) throw this.err(404, `Entity syn${id} is in trash can.`, method, path);
    return e;
  }

  private validateName(raw: unknown, method: string, path: string): string {
    if (typeof raw !== 'string') throw this.err(400, 'Entity name is required.', method, path);
    const name = raw.trim();
    if (name === '') throw this.err(400, 'Entity names cannot be empty strings', method, path);
    if (name.length > MAX_NAME_LENGTH) throw this.err(400, `Name must be ${MAX_NAME_LENGTH} characters or less`, method, path);
    if (!VALID_NAME.test(name)) {
      throw this.err(400, `Invalid Entity name: '${name}'. Entity names may only contain: letters, numbers, spaces, underscores, ` +
        'hyphens, periods, plus signs, apostrophes, and parentheses', method, path);
    }
    return name;
  }

  private nameTaken(parentId: number, name: string, self: EntityRec | undefined, method: string, path: string): void {
    const other = this.s.childByName(parentId, name);
    if (other && other !== self) {
      throw this.err(409, `An entity with the name: ${name} already exists with a parentId: ${synId(parentId)}`, method, path);
    }
  }

  private checkHandleUse(fileHandleId: string, entity: EntityRec | undefined, method: string, path: string): S3FileHandle {
    const fh = this.s.fileHandles.get(fileHandleId);
    if (!fh) throw this.err(404, `FileHandle with id ${fileHandleId} does not exist`, method, path);
    const onEntity = entity?.versions.some((v) => v.dataFileHandleId === fileHandleId) ?? false;
    if (fh.createdBy !== this.user.id && !onEntity) {
      throw this.err(403, `Only the creator of a FileHandle can assign it to an Entity. FileHandleId: ${fileHandleId}, UserId: ${this.user.id}`, method, path);
    }
    return fh;
  }

  /** StsManagerImpl.validateCanAddFile: STS files stay in their location's folders and vice versa. */
  private validateCanAddFile(fileLocationId: number | undefined, parent: EntityRec, method: string, path: string): void {
    const fileSts = this.s.isStsLocation(fileLocationId);
    const setting = this.s.settingFor(parent);
    const parentSts = this.s.isStsSetting(setting);
    if ((fileSts || parentSts) && fileLocationId !== setting?.locations[0]) {
      throw this.err(400, fileSts
        ? 'Files in STS-enabled storage locations can only be placed in folders with the same storage location'
        : 'Folders with STS-enabled storage locations can only accept files with the same storage location', method, path);
    }
  }

  /** StsManagerImpl.validateCanMoveFolder. */
  private validateCanMoveFolder(folder: EntityRec, oldParent: EntityRec, newParent: EntityRec, method: string, path: string): void {
    if (oldParent.id === newParent.id) return;
    const own = this.s.settingOn(folder.id);
    const oldSetting = own ?? this.s.settingFor(oldParent);
    const oldSts = this.s.isStsSetting(oldSetting);
    const newSetting = this.s.settingFor(newParent);
    const newSts = this.s.isStsSetting(newSetting);
    if (own && oldSts) {
      if (newSts) throw this.err(400, 'Cannot place an STS-enabled folder inside another STS-enabled folder', method, path);
    } else if ((oldSts || newSts) && oldSetting?.locations[0] !== newSetting?.locations[0]) {
      throw this.err(400, oldSts
        ? 'Folders in STS-enabled storage locations can only be placed in folders with the same storage location'
        : 'Non-STS-enabled folders cannot be placed inside STS-enabled folders', method, path);
    }
  }

  private isContainer(e: EntityRec): boolean {
    return e.kind === 'project' || e.kind === 'folder';
  }

  // ---------- views ----------

  private entityJson(e: EntityRec, version?: VersionRec): Entity {
    const cur = this.s.current(e);
    const v = version ?? cur;
    const out: Entity = {
      id: synId(e.id), name: e.name, parentId: synId(e.parentId), etag: e.etag, concreteType: KIND_CONCRETE[e.kind],
      createdOn: e.createdOn, createdBy: e.createdBy,
      modifiedOn: e.kind === 'file' && version ? v.modifiedOn : e.modifiedOn,
      modifiedBy: e.kind === 'file' && version ? v.modifiedBy : e.modifiedBy,
    };
    if (e.description !== undefined) out.description = e.description;
    if (e.kind === 'file') {
      out.versionNumber = v.versionNumber;
      out.versionLabel = v.versionLabel;
      out.isLatestVersion = v.versionNumber === cur.versionNumber;
      if (v.dataFileHandleId !== undefined) out.dataFileHandleId = v.dataFileHandleId;
    }
    if (e.kind === 'link') {
      if (e.linksTo) out.linksTo = clone(e.linksTo);
      if (e.linksToClassName !== undefined) out.linksToClassName = e.linksToClassName;
    }
    return out;
  }

  private headerJson(e: EntityRec): EntityHeader {
    const v = this.s.current(e);
    return {
      id: synId(e.id), name: e.name, type: KIND_CONCRETE[e.kind], versionNumber: v.versionNumber, versionLabel: v.versionLabel,
      benefactorId: this.s.benefactor(e), createdOn: e.createdOn, modifiedOn: e.modifiedOn, createdBy: e.createdBy, modifiedBy: e.modifiedBy,
      isLatestVersion: true,
    };
  }

  private locationJson(l: LocationRec): StorageLocationSetting {
    const out: StorageLocationSetting = {
      concreteType: l.concreteType, storageLocationId: l.storageLocationId, uploadType: l.uploadType,
      etag: l.etag, createdOn: l.createdOn, createdBy: l.createdBy,
    };
    if (l.banner !== undefined) out.banner = l.banner;
    if (l.concreteType === CONCRETE.externalS3Location) {
      out.bucket = l.bucket;
      if (l.endpointUrl !== undefined) out.endpointUrl = l.endpointUrl;
    }
    if (l.baseKey !== undefined) out.baseKey = l.baseKey;
    if (l.stsEnabled !== undefined) out.stsEnabled = l.stsEnabled;
    return out;
  }

  private destinationJson(l: LocationRec): UploadDestination {
    const external = l.concreteType === CONCRETE.externalS3Location;
    const out: UploadDestination = {
      concreteType: external ? CONCRETE.externalS3UploadDestination : CONCRETE.s3UploadDestination,
      storageLocationId: l.storageLocationId, uploadType: l.uploadType, stsEnabled: l.stsEnabled === true,
    };
    if (external) out.bucket = l.bucket;
    if (l.baseKey !== undefined) out.baseKey = l.baseKey;
    if (l.banner !== undefined) out.banner = l.banner;
    return out;
  }

  private settingJson(st: SettingRec): UploadDestinationListSetting {
    return { concreteType: CONCRETE.uploadListSetting, id: st.id, etag: st.etag, projectId: st.projectId, settingsType: 'upload', locations: [...st.locations] };
  }

  // ---------- SynapseApi: entities ----------

  async getUserProfile(): Promise<UserProfile> {
    this.count('getUserProfile');
    return { ownerId: this.user.id, userName: this.user.userName, emails: [`${this.user.userName}@example.org`] };
  }

  async getEntity(id: string): Promise<Entity> {
    this.count('getEntity');
    const path = `/repo/v1/entity/${id}`;
    return this.entityJson(this.lookup(id, 'GET', path));
  }

  async createEntity(ne: NewEntity): Promise<Entity> {
    this.count('createEntity');
    const M = 'POST';
    const P = '/repo/v1/entity';
    if (!ne.concreteType) throw this.err(400, 'Entity.concreteType cannot be null', M, P);
    const kind = kindOfConcrete(ne.concreteType);
    if (!kind) throw this.err(400, `Unsupported concreteType: ${ne.concreteType}`, M, P);
    let rawName: unknown = ne.name;
    let fh: S3FileHandle | undefined;
    if (kind === 'file') {
      if (!ne.dataFileHandleId) throw this.err(400, 'FileEntity.dataFileHandleId cannot be null', M, P);
      fh = this.checkHandleUse(String(ne.dataFileHandleId), undefined, M, P);
      if (rawName === undefined || rawName === null) rawName = fh.fileName;
    }
    const name = this.validateName(rawName, M, P);
    let parentId = ROOT_ID;
    if (kind !== 'project') {
      if (ne.parentId === undefined) throw this.err(400, 'parentId is required.', M, P);
      const parent = this.lookup(ne.parentId, M, P);
      if (!this.isContainer(parent)) throw this.err(400, `The parent ${synId(parent.id)} is not a container (Project or Folder)`, M, P);
      parentId = parent.id;
      if (fh) this.validateCanAddFile(fh.storageLocationId, parent, M, P);
    }
    this.nameTaken(parentId, name, undefined, M, P);
    let linksTo: EntityRec['linksTo'];
    if (kind === 'link') {
      if (!ne.linksTo) throw this.err(400, 'Link.linksTo is required.', M, P);
      const target = this.lookup(ne.linksTo.targetId, M, P);
      linksTo = { targetId: synId(target.id) };
      if (ne.linksTo.targetVersionNumber !== undefined) linksTo.targetVersionNumber = ne.linksTo.targetVersionNumber;
    }
    const now = this.s.now();
    const v: VersionRec = { versionNumber: 1, versionLabel: '1', modifiedOn: now, modifiedBy: this.user.id };
    if (fh) v.dataFileHandleId = String(fh.id);
    const e: EntityRec = {
      id: this.s.nextEntity++, name, parentId, kind, etag: randomUUID(), createdOn: now, createdBy: this.user.id,
      modifiedOn: now, modifiedBy: this.user.id, versions: [v],
    };
    if (linksTo) {
      e.linksTo = linksTo;
      e.linksToClassName = ne.linksToClassName ?? CONCRETE.file;
    }
    this.s.entities.set(e.id, e);
    return this.entityJson(e);
  }

  async updateEntity(entity: Entity, opts?: { newVersion?: boolean }): Promise<Entity> {
    this.count('updateEntity');
    const M = 'PUT';
    const P = `/repo/v1/entity/${entity.id}${opts?.newVersion ? '?newVersion=true' : ''}`;
    const e = this.lookup(entity.id, M, P);
    if (entity.concreteType !== undefined && entity.concreteType !== KIND_CONCRETE[e.kind]) {
      throw this.err(400, 'Cannot change the concreteType of an entity', M, P);
    }
    if (entity.etag === undefined) throw this.err(400, 'The etag is required to update an entity', M, P);
    if (entity.etag !== e.etag) {
      throw this.err(412, `Object: ${synId(e.id)} was updated since you last fetched it, retrieve it again and re-apply the update`, M, P);
    }
    // Validate everything before changing anything.
    const name = entity.name === undefined || entity.name === null ? e.name : this.validateName(entity.name, M, P);
    let newParent = this.s.entities.get(e.parentId);
    if (entity.parentId !== undefined && parseSynId(entity.parentId) !== e.parentId) {
      if (e.kind === 'project') throw this.err(400, 'A Project cannot be moved', M, P);
      const p = this.lookup(entity.parentId, M, P);
      if (!this.isContainer(p)) throw this.err(400, `The parent ${synId(p.id)} is not a container (Project or Folder)`, M, P);
      if (this.s.isDescendantOrSelf(p, e)) throw this.err(400, 'Cannot move an entity into itself or one of its descendants', M, P);
      const oldParent = this.s.entities.get(e.parentId);
      if (e.kind === 'folder' && oldParent) this.validateCanMoveFolder(e, oldParent, p, M, P);
      newParent = p;
    }
    const targetParentId = newParent?.id ?? ROOT_ID;
    if (name !== e.name || targetParentId !== e.parentId) this.nameTaken(targetParentId, name, e, M, P);

    const cur = this.s.current(e);
    let newHandle: string | undefined;
    let autoVersion = false;
    if (e.kind === 'file') {
      const dfh = entity.dataFileHandleId === undefined ? undefined : String(entity.dataFileHandleId);
      if (!dfh) throw this.err(400, 'FileEntity.dataFileHandleId cannot be null', M, P);
      if (dfh !== cur.dataFileHandleId) {
        const c = this.checkHandleUse(dfh, e, M, P);
        const a = cur.dataFileHandleId ? this.s.fileHandles.get(cur.dataFileHandleId) : undefined;
        autoVersion = !a?.contentMd5 || !c.contentMd5 || a.contentMd5 !== c.contentMd5;
        newHandle = dfh;
      }
      const fhId = newHandle ?? cur.dataFileHandleId;
      const fh = fhId ? this.s.fileHandles.get(fhId) : undefined;
      if (fh && newParent && (newHandle !== undefined || targetParentId !== e.parentId)) {
        this.validateCanAddFile(fh.storageLocationId, newParent, M, P);
      }
    }
    let linksTo: EntityRec['linksTo'];
    if (e.kind === 'link' && entity.linksTo !== undefined) {
      const target = this.lookup(entity.linksTo.targetId, M, P);
      linksTo = { targetId: synId(target.id) };
      if (entity.linksTo.targetVersionNumber !== undefined) linksTo.targetVersionNumber = entity.linksTo.targetVersionNumber;
    }

    if (linksTo) e.linksTo = linksTo;
    e.name = name;
    e.parentId = targetParentId;
    if (entity.description !== undefined) e.description = entity.description;
    else if ('description' in entity) delete e.description;
    const newVersion = e.kind === 'file' && (opts?.newVersion === true || autoVersion);
    if (newVersion) {
      const n = cur.versionNumber + 1;
      const v: VersionRec = { versionNumber: n, versionLabel: String(n), modifiedOn: this.s.now(), modifiedBy: this.user.id };
      const dataFileHandleId = newHandle ?? cur.dataFileHandleId;
      if (dataFileHandleId !== undefined) v.dataFileHandleId = dataFileHandleId;
      e.versions.push(v);
    } else {
      if (newHandle !== undefined) cur.dataFileHandleId = newHandle;
      cur.modifiedOn = this.s.now();
      cur.modifiedBy = this.user.id;
    }
    this.s.touch(e, this.user.id);
    return this.entityJson(e);
  }

  async deleteEntity(id: string): Promise<void> {
    this.count('deleteEntity');
    const e = this.lookup(id, 'DELETE', `/repo/v1/entity/${id}`);
    e.trashedFrom = e.parentId;
    e.trashedBy = this.user.id;
    // Synapse drops the trashed subtree's own ACLs (TrashManagerImpl.moveToTrash).
    for (const x of this.s.entities.values()) {
      for (let cur: EntityRec | undefined = x; cur; cur = this.s.entities.get(cur.parentId)) {
        if (cur === e) { delete x.ownAcl; break; }
      }
    }
    this.s.touch(e, this.user.id);
  }

  async restoreFromTrash(id: string): Promise<void> {
    this.count('restoreFromTrash');
    const M = 'PUT';
    const P = `/repo/v1/trashcan/restore/${id}`;
    const n = parseSynId(id);
    const e = n === undefined ? undefined : this.s.entities.get(n);
    if (!e || e.trashedFrom === undefined) throw this.err(404, `The node ${id} is not in the trash can.`, M, P);
    if (e.trashedBy !== this.user.id) throw this.err(403, `User ${this.user.id} not allowed to restore ${id}. The node was deleted by a different user.`, M, P);
    const parent = this.s.entities.get(e.trashedFrom);
    if (!parent || this.s.isTrashed(parent)) throw this.err(403, `The intended parent ${synId(e.trashedFrom)} is in the trash can and cannot be restored to.`, M, P);
    this.nameTaken(parent.id, e.name, e, M, P);
    delete e.trashedFrom;
    delete e.trashedBy;
    this.s.touch(e, this.user.id);
  }

  async listChildren(parentId: string, types: ChildType[]): Promise<EntityHeader[]> {
    this.count('listChildren');
    const M = 'POST';
    const P = '/repo/v1/entity/children';
    if (types.length === 0) throw this.err(400, 'EntityChildrenRequest.includeTypes must include at least one type', M, P);
    const parent = this.lookup(parentId, M, P);
    const kinds = new Set(types.map((t) => CHILD_TYPE_KIND[t]));
    const all = this.s.children(parent.id).filter((e) => kinds.has(e.kind));
    all.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : a.id - b.id));
    return all.map((e) => this.headerJson(e));
  }

  async lookupChild(parentId: string, name: string): Promise<string | null> {
    this.count('lookupChild');
    // The HTTP client answers null for any 404 — an unknown parent as much as an absent child.
    const pid = parseSynId(parentId);
    const parent = pid === undefined ? undefined : this.s.live(pid);
    if (!parent || !this.isContainer(parent)) return null;
    const child = this.s.childByName(parent.id, name);
    return child ? synId(child.id) : null;
  }

  async getBundle(id: string, request: BundleRequest, version?: number): Promise<EntityBundle> {
    this.count('getBundle');
    const M = 'POST';
    const P = version === undefined ? `/repo/v1/entity/${id}/bundle2` : `/repo/v1/entity/${id}/version/${version}/bundle2`;
    const e = this.lookup(id, M, P);
    const v = version === undefined ? undefined : e.versions.find((x) => x.versionNumber === version);
    if (version !== undefined && !v) throw this.err(404, `Entity ${synId(e.id)} version ${version} does not exist`, M, P);
    const out: EntityBundle = { entityType: e.kind };
    if (request.includeEntity === true) out.entity = this.entityJson(e, v);
    if (request.includeAnnotations === true) out.annotations = { id: synId(e.id), etag: e.etag, annotations: {} };
    if (request.includeFileHandles === true) {
      const ver = v ?? this.s.current(e);
      const fh = ver.dataFileHandleId ? this.s.fileHandles.get(ver.dataFileHandleId) : undefined;
      out.fileHandles = fh ? [clone(fh)] : [];
    }
    if (request.includeRestrictionInformation === true) out.restrictionInformation = { hasUnmetAccessRequirement: false };
    // No ACLs here (module head): every user may do everything.
    if (request.includePermissions === true) out.permissions = { canAddChild: true, canEdit: true, canDelete: true };
    return out;
  }

  async getLatestVersionInfo(id: string): Promise<VersionInfo> {
    this.count('getLatestVersionInfo');
    const e = this.lookup(id, 'GET', `/repo/v1/entity/${id}/version?offset=0&limit=1`);
    const v = this.s.current(e);
    const out: VersionInfo = {
      id: synId(e.id), versionNumber: v.versionNumber, versionLabel: v.versionLabel, modifiedOn: v.modifiedOn,
      modifiedByPrincipalId: v.modifiedBy, isLatestVersion: true,
    };
    const fh = v.dataFileHandleId ? this.s.fileHandles.get(v.dataFileHandleId) : undefined;
    if (fh) {
      out.contentSize = String(fh.contentSize);
      if (fh.contentMd5 !== undefined) out.contentMd5 = fh.contentMd5;
    }
    return out;
  }

  // ---------- SynapseApi: file handles ----------

  async getFileHandle(id: string): Promise<S3FileHandle> {
    this.count('getFileHandle');
    const P = `/file/v1/fileHandle/${id}`;
    const fh = this.s.fileHandles.get(String(id));
    if (!fh) throw this.err(404, `FileHandle does not exist for id: ${id}`, 'GET', P);
    if (fh.createdBy !== this.user.id) throw this.err(403, 'Only the creator of a FileHandle can access it', 'GET', P);
    return clone(fh);
  }

  async batchFileHandles(
    files: FileHandleAssociation[],
    opts: { includeFileHandles: boolean; includePreSignedURLs: boolean },
  ): Promise<BatchFileResult[]> {
    this.count('batchFileHandles');
    const M = 'POST';
    const P = '/file/v1/fileHandle/batch';
    if (files.length === 0) return [];
    if (!opts.includeFileHandles && !opts.includePreSignedURLs) {
      throw this.err(400, 'At least one of includeFileHandles, includePreSignedURLs, or includePreviewPreSignedURLs must be true', M, P);
    }
    if (files.length > MAX_BATCH) throw this.err(400, `Request exceeds the maximum number of objects per request: ${MAX_BATCH}`, M, P);
    return files.map((f) => {
      const fileHandleId = String(f.fileHandleId);
      const r: BatchFileResult = { fileHandleId };
      const oid = parseSynId(f.associateObjectId);
      const e = oid === undefined ? undefined : this.s.live(oid);
      const associated = f.associateObjectType === 'FileEntity' && e?.kind === 'file'
        && e.versions.some((v) => v.dataFileHandleId === fileHandleId);
      const fh = this.s.fileHandles.get(fileHandleId);
      if (!associated) r.failureCode = 'UNAUTHORIZED';
      else if (!fh) r.failureCode = 'NOT_FOUND';
      else {
        if (opts.includeFileHandles) r.fileHandle = clone(fh);
        if (opts.includePreSignedURLs) r.preSignedURL = `memory://${fh.bucketName}/${fh.key}?fileHandleId=${fh.id}`;
      }
      return r;
    });
  }

  async createExternalS3FileHandle(req: ExternalS3FileHandleRequest): Promise<S3FileHandle> {
    this.count('createExternalS3FileHandle');
    const M = 'POST';
    const P = '/file/v1/externalFileHandle/s3';
    if (req.storageLocationId === undefined) throw this.err(400, 'FileHandle.storageLocationId is required.', M, P);
    if (!req.bucketName) throw this.err(400, 'FileHandle.bucket is required and must not be the empty string.', M, P);
    if (!req.key) throw this.err(400, 'FileHandle.key is required and must not be the empty string.', M, P);
    if (!req.contentMd5) throw this.err(400, 'FileHandle.contentMd5 is required and must not be the empty string.', M, P);
    if (!MD5_HEX.test(req.contentMd5)) throw this.err(400, 'The content MD5 digest must be a valid hexadecimal string of length 32.', M, P);
    const id = req.storageLocationId;
    const loc = this.s.locations.get(id);
    if (!loc) throw this.err(404, `StorageLocationSetting with id ${id} does not exist`, M, P);
    if (loc.concreteType !== CONCRETE.externalS3Location) {
      throw this.err(400, `StorageLocationSetting.id=${id} was not of the expected type: ${CONCRETE.externalS3Location}`, M, P);
    }
    if (req.bucketName !== loc.bucket) {
      throw this.err(400, `The bucket for ExternalS3StorageLocationSetting.id=${id} does not match the provided bucket: ${req.bucketName}`, M, P);
    }
    if (loc.stsEnabled === true && loc.baseKey !== undefined && !req.key.startsWith(loc.baseKey)) {
      throw this.err(400, `The baseKey for ExternalS3StorageLocationSetting.id=${id} does not match the provided key: ${req.key}`, M, P);
    }
    if (loc.createdBy !== this.user.id) {
      throw this.err(403, `Only the creator of ExternalS3StorageLocationSetting.id=${id} can create an external S3FileHandle with storageLocationId = ${id}`, M, P);
    }
    const obj = this.s.store.objects.get(`${req.bucketName}/${req.key}`);
    if (!obj) throw this.err(400, `Unable to access the file at bucket: ${req.bucketName} key: ${req.key}.`, M, P);
    return clone(this.addHandle({
      bucketName: req.bucketName, key: req.key, contentMd5: req.contentMd5.toLowerCase(),
      contentSize: req.contentSize ?? obj.data.length, contentType: req.contentType ?? 'NOT_SET',
      fileName: req.fileName ?? 'NOT_SET', storageLocationId: id,
    }));
  }

  private addHandle(init: Pick<S3FileHandle, 'bucketName' | 'key' | 'contentMd5' | 'contentSize' | 'contentType' | 'fileName' | 'storageLocationId'>): S3FileHandle {
    const now = this.s.now();
    const fh: S3FileHandle = {
      ...init, id: String(this.s.nextFileHandle++), etag: randomUUID(), concreteType: CONCRETE.s3FileHandle,
      createdBy: this.user.id, createdOn: now, modifiedOn: now, status: 'AVAILABLE', isPreview: false,
    };
    this.s.fileHandles.set(fh.id, fh);
    return fh;
  }

  // ---------- SynapseApi: storage ----------

  async getUploadDestination(parentId: string): Promise<UploadDestination> {
    this.count('getUploadDestination');
    const e = this.lookup(parentId, 'GET', `/file/v1/entity/${parentId}/uploadDestination`);
    return this.destinationJson(this.s.effectiveLocation(e));
  }

  async createStorageLocation(setting: StorageLocationSetting): Promise<StorageLocationSetting> {
    this.count('createStorageLocation');
    const M = 'POST';
    const P = '/repo/v1/storageLocation';
    let rec: Omit<LocationRec, 'storageLocationId' | 'etag' | 'createdOn'>;
    if (setting.concreteType === CONCRETE.externalS3Location) {
      const bucket = setting.bucket;
      if (!bucket) throw this.err(400, 'bucket is required.', M, P);
      const baseKey = setting.baseKey;
      if (baseKey !== undefined && baseKey.endsWith('/')) throw this.err(400, 'Base keys cannot end with trailing slashes', M, P);
      const ownerKey = (baseKey === undefined ? '' : `${baseKey}/`) + 'owner.txt';
      const owner = this.s.store.objects.get(`${bucket}/${ownerKey}`);
      if (!owner) throw this.err(400, `Did not find S3 object at key ${ownerKey} from bucket ${bucket}.`, M, P);
      const firstLine = (owner.data.toString('utf8').split(/\r?\n/)[0] ?? '').trim();
      if (firstLine.toLowerCase() !== this.user.userName.toLowerCase()) {
        throw this.err(400, `The username ${firstLine} found under key ${ownerKey} from bucket ${bucket} is not what was expected.`, M, P);
      }
      rec = { concreteType: setting.concreteType, uploadType: setting.uploadType ?? 'NONE', bucket, createdBy: this.user.id };
      if (baseKey !== undefined) rec.baseKey = baseKey;
      if (setting.endpointUrl !== undefined) rec.endpointUrl = setting.endpointUrl;
    } else if (setting.concreteType === CONCRETE.s3Location) {
      if (setting.baseKey !== undefined) throw this.err(400, 'Cannot specify baseKey when creating an S3StorageLocationSetting', M, P);
      rec = { concreteType: setting.concreteType, uploadType: setting.uploadType ?? 'NONE', bucket: this.s.managedBucket, createdBy: this.user.id };
      if (setting.stsEnabled === true) rec.baseKey = `${this.user.id}/${randomUUID()}`;
    } else {
      throw this.err(400, `Unsupported storage location type: ${setting.concreteType}`, M, P);
    }
    if (setting.stsEnabled !== undefined) rec.stsEnabled = setting.stsEnabled;
    if (setting.banner !== undefined) rec.banner = setting.banner;
    if (rec.concreteType === CONCRETE.externalS3Location) {
      // Synapse de-duplicates identical settings of one user.
      for (const l of this.s.locations.values()) {
        if (l.createdBy === rec.createdBy && l.concreteType === rec.concreteType && l.bucket === rec.bucket && l.baseKey === rec.baseKey
          && l.stsEnabled === rec.stsEnabled && l.uploadType === rec.uploadType && l.banner === rec.banner && l.endpointUrl === rec.endpointUrl) {
          return this.locationJson(l);
        }
      }
    }
    const full: LocationRec = { ...rec, storageLocationId: this.s.nextLocation++, etag: randomUUID(), createdOn: this.s.now() };
    this.s.locations.set(full.storageLocationId, full);
    return this.locationJson(full);
  }

  async getStorageLocation(id: number): Promise<StorageLocationSetting> {
    this.count('getStorageLocation');
    const P = `/repo/v1/storageLocation/${id}`;
    const l = this.s.locations.get(Number(id));
    if (!l) throw this.err(404, `StorageLocationSetting with id ${id} does not exist`, 'GET', P);
    if (l.createdBy !== this.user.id) throw this.err(403, 'Only the creator can access storage location settings', 'GET', P);
    return this.locationJson(l);
  }

  async getUploadProjectSetting(projectOrFolderId: string): Promise<UploadDestinationListSetting | null> {
    this.count('getUploadProjectSetting');
    const e = this.lookup(projectOrFolderId, 'GET', `/repo/v1/projectSettings/${projectOrFolderId}/type/upload`);
    const st = this.s.settingOn(e.id);
    return st ? this.settingJson(st) : null;
  }

  private validateLocations(locations: number[], kind: EntityKind, M: string, P: string): void {
    if (locations.length < 1) throw this.err(400, 'settings.locations must at least have one entry', M, P);
    for (const id of locations) {
      const l = this.s.locations.get(id);
      if (!l) throw this.err(400, `uploadId ${id} is not a valid upload destination location`, M, P);
      if (l.concreteType === CONCRETE.externalS3Location && l.createdBy !== this.user.id) {
        throw this.err(403, 'Only the owner of the external S3 upload destination can add this upload destination to a project.', M, P);
      }
      if (l.stsEnabled === true) {
        if (kind !== 'folder') throw this.err(400, 'Can only enable STS on a folder', M, P);
        if (locations.length !== 1) throw this.err(400, 'An STS-enabled folder cannot add other upload destinations', M, P);
      }
    }
  }

  async createProjectSetting(setting: UploadDestinationListSetting): Promise<UploadDestinationListSetting> {
    this.count('createProjectSetting');
    const M = 'POST';
    const P = '/repo/v1/projectSettings';
    const e = this.lookup(setting.projectId, M, P);
    if (!this.isContainer(e)) throw this.err(400, 'The id is not the id of a project or folder entity', M, P);
    if (this.s.isStsSetting(this.s.settingFor(e))) throw this.err(400, 'Can\'t override project settings in an STS-enabled folder path', M, P);
    if (this.s.settingOn(e.id)) throw this.err(400, `A project setting of type upload already exists for ${synId(e.id)}`, M, P);
    this.validateLocations(setting.locations, e.kind, M, P);
    if (this.s.isStsLocation(setting.locations[0]) && this.s.everChildren(e.id).length > 0) {
      throw this.err(400, 'Can\'t enable STS in a non-empty folder', M, P);
    }
    const st: SettingRec = { id: String(this.s.nextSetting++), etag: randomUUID(), projectId: synId(e.id), locations: [...setting.locations] };
    this.s.settings.set(st.id, st);
    return this.settingJson(st);
  }

  async updateProjectSetting(setting: UploadDestinationListSetting): Promise<void> {
    this.count('updateProjectSetting');
    const M = 'PUT';
    const P = '/repo/v1/projectSettings';
    const e = this.lookup(setting.projectId, M, P);
    const st = setting.id === undefined ? undefined : this.s.settings.get(setting.id);
    if (!st) throw this.err(404, `ProjectSetting with id ${setting.id ?? ''} does not exist`, M, P);
    if (parseSynId(st.projectId) !== e.id) throw this.err(400, 'The projectId of a project setting cannot be changed', M, P);
    if (setting.etag !== st.etag) throw this.err(412, `Project setting ${st.id} was updated since you last fetched it, retrieve it again and re-apply the update`, M, P);
    this.validateLocations(setting.locations, e.kind, M, P);
    if (this.s.isStsLocation(setting.locations[0]) && !this.s.isStsSetting(st) && this.s.everChildren(e.id).length > 0) {
      throw this.err(400, 'Can\'t enable STS in a non-empty folder', M, P);
    }
    st.locations = [...setting.locations];
    st.etag = randomUUID();
  }

  async getStsCredentials(entityId: string, permission: StsPermission): Promise<StsCredentials> {
    this.count('getStsCredentials');
    const M = 'GET';
    const P = `/repo/v1/entity/${entityId}/sts?permission=${permission}`;
    if (permission !== 'read_only' && permission !== 'read_write') throw this.err(400, `Invalid permission: ${String(permission)}`, M, P);
    const e = this.lookup(entityId, M, P);
    const setting = this.s.settingFor(e);
    if (!setting) throw this.err(400, 'Entity must have a project setting', M, P);
    if (!this.s.isStsSetting(setting)) throw this.err(400, 'Entity must have an STS-enabled storage location', M, P);
    const loc = this.s.locations.get(setting.locations[0]!)!;
    if (permission === 'read_write' && loc.concreteType === CONCRETE.s3Location) {
      throw this.err(400, 'STS write access is not allowed in Synapse storage', M, P);
    }
    const n = this.s.nextStsKey++;
    return {
      bucket: loc.bucket,
      ...(loc.baseKey !== undefined ? { baseKey: loc.baseKey } : {}),
      accessKeyId: `ASIAFAKE${String(n).padStart(8, '0')}`,
      secretAccessKey: `fake-secret-${n}`,
      sessionToken: `fake-session-${n}`,
      expiration: new Date(Date.parse(this.s.now()) + this.s.stsLifetimeMs).toISOString(),
    };
  }

  // ---------- SynapseApi: multipart (not in the fake) ----------

  startMultipartUpload(_request: MultipartUploadRequest, _forceRestart?: boolean): Promise<MultipartUploadStatus> {
    this.count('startMultipartUpload');
    return Promise.reject(new NotImplementedInFake('startMultipartUpload'));
  }

  getPartUploadUrls(_uploadId: string, _partNumbers: number[]): Promise<PartPresignedUrl[]> {
    this.count('getPartUploadUrls');
    return Promise.reject(new NotImplementedInFake('getPartUploadUrls'));
  }

  addPart(_uploadId: string, _partNumber: number, _partMd5Hex: string): Promise<AddPartResponse> {
    this.count('addPart');
    return Promise.reject(new NotImplementedInFake('addPart'));
  }

  completeMultipartUpload(_uploadId: string): Promise<MultipartUploadStatus> {
    this.count('completeMultipartUpload');
    return Promise.reject(new NotImplementedInFake('completeMultipartUpload'));
  }

  // ---------- SynapseApi: table/view queries (not in the fake; added with --metadata-view) ----------
  // The mount falls back to per-file sizes when a view query fails, so a fake without views is
  // a mount without --metadata-view. src/fs/view-sizes.ts has its own fake in its unit test.

  startTableQuery(_viewId: string, _sql: string, _opts?: import('./api.js').TableQueryOptions): Promise<string> {
    this.count('startTableQuery');
    return Promise.reject(new NotImplementedInFake('startTableQuery'));
  }

  getTableQueryResult(_viewId: string, _token: string): Promise<import('./types.js').TableQueryPoll> {
    this.count('getTableQueryResult');
    return Promise.reject(new NotImplementedInFake('getTableQueryResult'));
  }

  // ---------- helpers: setting up and acting as another client ----------

  /** A project owned by this client's user. */
  createProject(name: string): Promise<Entity> {
    return this.createEntity({ concreteType: CONCRETE.project, name });
  }

  /** Share `id` by an ACL of its own (what the web UI's "Sharing Settings" does): its headers name it its own benefactor. */
  shareOnItsOwn(id: string): void {
    this.lookup(id, 'POST', `/repo/v1/entity/${id}/acl`).ownAcl = true;
  }

  /** A folder (no storage of its own). */
  mkdir(parentId: string, name: string): Promise<Entity> {
    return this.createEntity({ concreteType: CONCRETE.folder, name, parentId });
  }

  /**
   * What a lab does to get the STS fast path: owner.txt in the bucket, an STS-enabled external
   * S3 location created by this user, a new folder whose upload destination it is.
   */
  async createStsFolder(parentId: string, name: string, opts: { baseKey?: string } = {}): Promise<{ folder: Entity; storageLocationId: number }> {
    const baseKey = opts.baseKey ?? `lab/${name.replace(/[^A-Za-z0-9._-]/g, '_')}-${randomUUID().slice(0, 8)}`;
    this.s.putObject(this.s.bucket, `${baseKey}/owner.txt`, Buffer.from(`${this.user.userName}\n`));
    const loc = await this.createStorageLocation({
      concreteType: CONCRETE.externalS3Location, uploadType: 'S3', bucket: this.s.bucket, baseKey, stsEnabled: true,
    });
    const folder = await this.mkdir(parentId, name);
    await this.createProjectSetting({
      concreteType: CONCRETE.uploadListSetting, projectId: folder.id, settingsType: 'upload', locations: [loc.storageLocationId!],
    });
    return { folder, storageLocationId: loc.storageLocationId! };
  }

  /**
   * Put bytes where a client would for a new file of `parentId` (its upload destination) and
   * register a handle: an external one (the location's creator only, as Synapse requires) or, on
   * Synapse's storage, the handle the multipart API would have made. Returns the handle id.
   */
  async uploadBytes(parentId: string, name: string, bytes: Buffer): Promise<string> {
    const parent = this.lookup(parentId, 'POST', '/file/v1/upload');
    const loc = this.s.effectiveLocation(parent);
    const md5 = md5Hex(bytes);
    if (loc.concreteType === CONCRETE.externalS3Location) {
      const key = [loc.baseKey, randomUUID(), name].filter((x) => x).join('/');
      this.s.putObject(loc.bucket, key, bytes);
      const fh = await this.createExternalS3FileHandle({
        concreteType: CONCRETE.s3FileHandle, bucketName: loc.bucket, key, storageLocationId: loc.storageLocationId,
        contentMd5: md5, contentSize: bytes.length, fileName: name, contentType: 'application/octet-stream',
      });
      return String(fh.id);
    }
    const key = [loc.baseKey, this.user.id, randomUUID(), name].filter((x) => x).join('/');
    this.s.putObject(loc.bucket, key, bytes);
    return this.addHandle({
      bucketName: loc.bucket, key, contentMd5: md5, contentSize: bytes.length, contentType: 'application/octet-stream',
      fileName: name, storageLocationId: loc.storageLocationId,
    }).id;
  }

  /** Another client uploads a new file (409 when the name is taken). */
  async putFile(parentId: string, name: string, bytes: Buffer): Promise<Entity> {
    const fh = await this.uploadBytes(parentId, name, bytes);
    return this.createEntity({ concreteType: CONCRETE.file, name, parentId, dataFileHandleId: fh });
  }

  /** Another client uploads new content for an existing file (a new version when it differs). */
  async putVersion(entityId: string, bytes: Buffer): Promise<Entity> {
    const e = await this.getEntity(entityId);
    const fh = await this.uploadBytes(e.parentId!, e.name, bytes);
    return this.updateEntity({ ...e, dataFileHandleId: fh });
  }

  /** Another client renames and/or moves an entity. */
  async move(entityId: string, name: string, parentId?: string): Promise<Entity> {
    const e = await this.getEntity(entityId);
    return this.updateEntity({ ...e, name, ...(parentId ? { parentId } : {}) });
  }

  /** Another client deletes an entity (to the trash can; a folder takes its subtree). */
  trash(entityId: string): Promise<void> {
    return this.deleteEntity(entityId);
  }

  // ---------- inspection (not counted as calls) ----------

  /** The live entity at `path` ("/a/b", relative to container `rootId`), or undefined. */
  resolvePath(rootId: string, path: string): { id: string; kind: EntityKind } | undefined {
    let cur = this.s.live(parseSynId(rootId) ?? -1);
    for (const part of path.split('/').filter((p) => p.length > 0)) {
      if (!cur || !this.isContainer(cur)) return undefined;
      cur = this.s.childByName(cur.id, part);
    }
    return cur ? { id: synId(cur.id), kind: cur.kind } : undefined;
  }

  /** The bytes of a file's newest version (or of `versionNumber`), read from the store. */
  fileBytes(entityId: string, versionNumber?: number): Buffer {
    const e = this.s.live(parseSynId(entityId) ?? -1);
    if (!e || e.kind !== 'file') throw new Error(`fake: ${entityId} is not a live file`);
    const v = versionNumber === undefined ? this.s.current(e) : e.versions.find((x) => x.versionNumber === versionNumber);
    const fh = v?.dataFileHandleId ? this.s.fileHandles.get(v.dataFileHandleId) : undefined;
    if (!fh) throw new Error(`fake: ${entityId} v${versionNumber ?? 'latest'} has no file handle`);
    const obj = this.s.store.objects.get(`${fh.bucketName}/${fh.key}`);
    if (!obj) throw new Error(`fake: object ${fh.bucketName}/${fh.key} of ${entityId} is missing`);
    return Buffer.from(obj.data);
  }

  /** A file's versions, oldest first: number and file handle id. */
  versions(entityId: string): Array<{ versionNumber: number; fileHandleId: string | undefined }> {
    const e = this.s.entities.get(parseSynId(entityId) ?? -1);
    if (!e) throw new Error(`fake: no entity ${entityId}`);
    return e.versions.map((v) => ({ versionNumber: v.versionNumber, fileHandleId: v.dataFileHandleId }));
  }

  /** The file handle record, whoever created it. */
  fileHandle(id: string): S3FileHandle | undefined {
    const fh = this.s.fileHandles.get(String(id));
    return fh ? clone(fh) : undefined;
  }

  /** Everything live under a container, with each file's newest bytes. */
  tree(rootId: string): FakeTree {
    const root = this.s.live(parseSynId(rootId) ?? -1);
    if (!root) throw new Error(`fake: no live container ${rootId}`);
    const walk = (id: number): FakeTree => {
      const out: FakeTree = {};
      for (const c of this.s.children(id)) {
        if (c.kind === 'folder') out[c.name] = { kind: 'folder', id: synId(c.id), children: walk(c.id) };
        else if (c.kind === 'file') out[c.name] = { kind: 'file', id: synId(c.id), bytes: this.fileBytes(synId(c.id)), versionNumber: this.s.current(c).versionNumber };
        else out[c.name] = { kind: c.kind, id: synId(c.id) };
      }
      return out;
    };
    return walk(root.id);
  }

  /** Throws when the state breaks an invariant of the header. */
  checkInvariants(): void {
    const etags = new Set<string>();
    const names = new Map<string, number>();
    for (const e of this.s.entities.values()) {
      if (etags.has(e.etag)) throw new Error(`fake invariant: etag ${e.etag} of syn${e.id} is not unique`);
      etags.add(e.etag);
      e.versions.forEach((v, i) => {
        if (v.versionNumber !== i + 1) throw new Error(`fake invariant: syn${e.id} version ${i} is numbered ${v.versionNumber}`);
        if (e.kind !== 'file') return;
        const fh = v.dataFileHandleId ? this.s.fileHandles.get(v.dataFileHandleId) : undefined;
        if (!fh) throw new Error(`fake invariant: syn${e.id} v${v.versionNumber} names no existing file handle`);
        if (!this.s.objectExists(fh.bucketName, fh.key)) throw new Error(`fake invariant: object of file handle ${fh.id} is missing`);
      });
      if (this.s.isTrashed(e)) continue;
      const key = `${e.parentId}/${e.name}`;
      const other = names.get(key);
      if (other !== undefined) throw new Error(`fake invariant: syn${other} and syn${e.id} share the name "${e.name}" in syn${e.parentId}`);
      names.set(key, e.id);
      if (e.kind !== 'project') {
        const p = this.s.entities.get(e.parentId);
        if (!p || !this.isContainer(p)) throw new Error(`fake invariant: parent of syn${e.id} is not a live container`);
      }
    }
  }
}
