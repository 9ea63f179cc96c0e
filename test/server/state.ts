/**
 * In-memory model of the Synapse objects the local server serves: users, entities (with their
 * versions, ACLs and trash state), file handles, storage locations, project settings and
 * multipart uploads. No HTTP here: routes and the seeder both call these functions.
 *
 * Ids: entities count from 1001 (syn4489 is Synapse's root, the parent of every project);
 * file handles from 5001; storage locations from 101 (1 is Synapse's default storage);
 * project settings from 201; column models from 7001 (the default columns of entity views, made
 * at start as Synapse has them for everyone). Permissions follow Synapse's benefactor model: an
 * entity's permissions come from the ACL of the nearest ancestor-or-self that has one.
 */
import { randomUUID } from 'node:crypto';
import { CONCRETE } from '../../src/synapse/types.js';

export type Perm = 'READ' | 'DOWNLOAD' | 'CREATE' | 'UPDATE' | 'DELETE' | 'CHANGE_PERMISSIONS';
export const ALL_PERMS: readonly Perm[] = ['READ', 'DOWNLOAD', 'CREATE', 'UPDATE', 'DELETE', 'CHANGE_PERMISSIONS'];
export type EntityKind = 'project' | 'folder' | 'file' | 'link' | 'entityview';

export const ROOT_ID = 4489;
const FIRST_ENTITY_ID = 1001;
const FIRST_FILE_HANDLE_ID = 5001;
const FIRST_STORAGE_LOCATION_ID = 101;
const FIRST_PROJECT_SETTING_ID = 201;
const FIRST_COLUMN_MODEL_ID = 7001;
export const DEFAULT_STORAGE_LOCATION_ID = 1;

export const KIND_CONCRETE: Record<EntityKind, string> = {
  project: CONCRETE.project,
  folder: CONCRETE.folder,
  file: CONCRETE.file,
  link: CONCRETE.link,
  entityview: CONCRETE.entityView,
};

export function kindOfConcrete(concreteType: string): EntityKind | undefined {
  for (const [k, v] of Object.entries(KIND_CONCRETE)) if (v === concreteType) return k as EntityKind;
  return undefined;
}

export interface User {
  id: string;
  userName: string;
  token: string;
  firstName: string;
  lastName: string;
  email: string;
  etag: string;
  createdOn: string;
}

export interface EntityVersion {
  versionNumber: number;
  versionLabel: string;
  versionComment?: string;
  dataFileHandleId?: string;
  modifiedOn: string;
  modifiedBy: string;
}

export interface AnnotationValue { type: string; value: string[] }

export interface EntityRecord {
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
  versions: EntityVersion[]; // oldest first; every node has at least version 1
  linksTo?: { targetId: string; targetVersionNumber?: number };
  linksToClassName?: string;
  annotations: Record<string, AnnotationValue>;
  acl?: Map<string, Set<Perm>>;
  /** Set when the entity was deleted (moved to the trash can); children go with it. */
  trashedFrom?: number;
  /** Who deleted it: only they may restore it (TrashManagerImpl.restoreFromTrash). */
  trashedBy?: string;
  /** EntityView only (routes/tables.ts). */
  view?: ViewDefinition;
}

/** An EntityView's definition: scope containers, entity-type mask, schema (column model ids). */
export interface ViewDefinition {
  scopeIds: number[];
  viewTypeMask: number;
  columnIds: string[];
}

/** org.sagebionetworks.repo.model.table.ColumnModel (the fields views use). */
export interface ColumnModelRecord {
  id: string;
  name: string;
  columnType: string;
  maximumSize?: number;
  facetType?: string;
}

/**
 * The default columns of an entity view (EntityMetadataIndexProvider: Constants.BASIC_DEAFULT_COLUMNS,
 * then FILE_SPECIFIC_COLUMNS when the mask includes files), typed and sized as ObjectField says.
 */
export const VIEW_BASIC_COLUMNS: ReadonlyArray<Omit<ColumnModelRecord, 'id'>> = [
  { name: 'id', columnType: 'ENTITYID' },
  { name: 'name', columnType: 'STRING', maximumSize: 256 },
  { name: 'description', columnType: 'STRING', maximumSize: 1000 },
  { name: 'createdOn', columnType: 'DATE', facetType: 'range' },
  { name: 'createdBy', columnType: 'USERID', facetType: 'enumeration' },
  { name: 'etag', columnType: 'STRING', maximumSize: 36 },
  { name: 'modifiedOn', columnType: 'DATE', facetType: 'range' },
  { name: 'modifiedBy', columnType: 'USERID', facetType: 'enumeration' },
  { name: 'path', columnType: 'STRING', maximumSize: 1000 },
];
export const VIEW_FILE_COLUMNS: ReadonlyArray<Omit<ColumnModelRecord, 'id'>> = [
  { name: 'type', columnType: 'STRING', maximumSize: 20, facetType: 'enumeration' },
  { name: 'currentVersion', columnType: 'INTEGER' },
  { name: 'parentId', columnType: 'ENTITYID', facetType: 'enumeration' },
  { name: 'benefactorId', columnType: 'ENTITYID' },
  { name: 'projectId', columnType: 'ENTITYID', facetType: 'enumeration' },
  { name: 'dataFileHandleId', columnType: 'FILEHANDLEID' },
  { name: 'dataFileName', columnType: 'STRING', maximumSize: 256 },
  { name: 'dataFileSizeBytes', columnType: 'INTEGER' },
  { name: 'dataFileMD5Hex', columnType: 'STRING', maximumSize: 100 },
  { name: 'dataFileConcreteType', columnType: 'STRING', maximumSize: 65, facetType: 'enumeration' },
  { name: 'dataFileBucket', columnType: 'STRING', maximumSize: 100, facetType: 'enumeration' },
  { name: 'dataFileKey', columnType: 'STRING', maximumSize: 700 },
];

export interface FileHandleRecord {
  id: string;
  etag: string;
  createdBy: string;
  createdOn: string;
  modifiedOn: string;
  bucketName: string;
  key: string;
  contentMd5: string;
  contentSize: number;
  contentType: string;
  fileName: string;
  storageLocationId: number;
}

export interface StorageLocationRecord {
  storageLocationId: number;
  concreteType: string; // ExternalS3StorageLocationSetting | S3StorageLocationSetting
  uploadType: string;
  bucket: string; // for Synapse storage: the managed bucket (not shown in JSON)
  baseKey?: string;
  stsEnabled?: boolean;
  banner?: string;
  description?: string;
  endpointUrl?: string;
  createdBy: string;
  createdOn: string;
  etag: string;
}

export interface ProjectSettingRecord {
  id: string;
  etag: string;
  projectId: string; // synN of a project or folder
  locations: number[];
}

export interface MultipartRecord {
  uploadId: string;
  requestHash: string;
  userId: string;
  bucket: string;
  key: string;
  s3UploadId: string;
  fileName: string;
  contentType: string;
  contentMD5Hex: string;
  fileSizeBytes: number;
  partSizeBytes: number;
  numberOfParts: number;
  storageLocationId: number;
  parts: Map<number, string>; // partNumber → md5 hex of added parts
  state: 'UPLOADING' | 'COMPLETED';
  startedOn: string;
  updatedOn: string;
  resultFileHandleId?: string;
}

export const nowIso = (): string => new Date().toISOString();

/** Parse "syn123" or "123" into 123; undefined when malformed. */
export function parseSynId(s: string | number | undefined | null): number | undefined {
  if (typeof s === 'number') return Number.isInteger(s) && s > 0 ? s : undefined;
  if (typeof s !== 'string') return undefined;
  const m = /^(?:syn)?(\d+)$/i.exec(s.trim());
  return m ? Number(m[1]) : undefined;
}
export const synId = (n: number): string => `syn${n}`;

export class State {
  users = new Map<string, User>(); // by id
  entities = new Map<number, EntityRecord>();
  fileHandles = new Map<string, FileHandleRecord>();
  storageLocations = new Map<number, StorageLocationRecord>();
  projectSettings = new Map<string, ProjectSettingRecord>();
  multipart = new Map<string, MultipartRecord>();
  /** Column models by id (only the entity-view defaults: there is no POST /column here). */
  columnModels = new Map<string, ColumnModelRecord>();
  /** parentId → children (trashed ones included; readers filter), so listings stay O(children) */
  private byParent = new Map<number, Set<EntityRecord>>();
  private nextEntity = FIRST_ENTITY_ID;
  private nextFileHandle = FIRST_FILE_HANDLE_ID;
  private nextStorageLocation = FIRST_STORAGE_LOCATION_ID;
  private nextProjectSetting = FIRST_PROJECT_SETTING_ID;
  private nextUpload = 1;
  private nextColumnModel = FIRST_COLUMN_MODEL_ID;

  constructor(readonly managedBucket: string) {
    this.storageLocations.set(DEFAULT_STORAGE_LOCATION_ID, {
      storageLocationId: DEFAULT_STORAGE_LOCATION_ID,
      concreteType: CONCRETE.s3Location,
      uploadType: 'S3',
      bucket: managedBucket,
      createdBy: '273950', // Synapse's admin principal id
      createdOn: '2014-06-01T00:00:00.000Z',
      etag: randomUUID(),
    });
    for (const c of [...VIEW_BASIC_COLUMNS, ...VIEW_FILE_COLUMNS]) {
      const id = String(this.nextColumnModel++);
      this.columnModels.set(id, { id, ...c });
    }
  }

  /** The default column models of an entity view with this type mask (files add the file columns). */
  defaultViewColumns(viewTypeMask: number): ColumnModelRecord[] {
    const names = new Set([...VIEW_BASIC_COLUMNS, ...((viewTypeMask & 1) !== 0 ? VIEW_FILE_COLUMNS : [])].map((c) => c.name));
    return [...this.columnModels.values()].filter((c) => names.has(c.name));
  }

  addUser(u: Omit<User, 'etag' | 'createdOn'>): User {
    const user: User = { ...u, etag: randomUUID(), createdOn: nowIso() };
    this.users.set(user.id, user);
    return user;
  }

  userByToken(token: string): User | undefined {
    for (const u of this.users.values()) if (u.token === token) return u;
    return undefined;
  }

  userName(id: string): string {
    return this.users.get(id)?.userName ?? id;
  }

  // ---------- entities ----------

  /** Never Synapse's root id: the 3,489th entity took it and made the root its own ancestor (QA: isTrashed looped). */
  newEntityId(): number {
    if (this.nextEntity === ROOT_ID) this.nextEntity++;
    return this.nextEntity++;
  }
  newFileHandleId(): string { return String(this.nextFileHandle++); }
  newStorageLocationId(): number { return this.nextStorageLocation++; }
  newProjectSettingId(): string { return String(this.nextProjectSetting++); }
  newUploadId(): string { return String(this.nextUpload++); }

  /** The entity when it exists and is not in the trash (nor below a trashed ancestor). */
  live(id: number): EntityRecord | undefined {
    const e = this.entities.get(id);
    if (!e || this.isTrashed(e)) return undefined;
    return e;
  }

  isTrashed(e: EntityRecord): boolean {
    for (let cur: EntityRecord | undefined = e; cur; cur = this.entities.get(cur.parentId)) {
      if (cur.trashedFrom !== undefined) return true;
    }
    return false;
  }

  private index(e: EntityRecord): void {
    let set = this.byParent.get(e.parentId);
    if (!set) { set = new Set(); this.byParent.set(e.parentId, set); }
    set.add(e);
  }

  /** Change an entity's parent (keeps the child index right). */
  move(e: EntityRecord, newParentId: number): void {
    if (newParentId === e.parentId) return;
    this.byParent.get(e.parentId)?.delete(e);
    e.parentId = newParentId;
    this.index(e);
  }

  /**
   * Move an entity (and so its subtree) to the trash can. As TrashManagerImpl.moveToTrash, the
   * ACLs of the subtree go (deleteAllAclsInHierarchy): a restored folder inherits its parent's.
   */
  trash(e: EntityRecord, userId: string): void {
    e.trashedFrom = e.parentId;
    e.trashedBy = userId;
    const drop = (n: EntityRecord): void => {
      delete n.acl;
      for (const c of this.byParent.get(n.id) ?? []) drop(c);
    };
    drop(e);
  }

  /** Back out of the trash can into the parent it was deleted from. */
  restore(e: EntityRecord): void {
    delete e.trashedFrom;
    delete e.trashedBy;
  }

  /** Live children of a node, in creation order. */
  children(parentId: number): EntityRecord[] {
    const out: EntityRecord[] = [];
    for (const e of this.byParent.get(parentId) ?? []) if (e.trashedFrom === undefined) out.push(e);
    return out;
  }

  /** Children including those deleted from this parent into the trash can. */
  childrenInclTrash(parentId: number): EntityRecord[] {
    return [...(this.byParent.get(parentId) ?? [])];
  }

  childByName(parentId: number, name: string): EntityRecord | undefined {
    for (const e of this.byParent.get(parentId) ?? []) {
      if (e.trashedFrom === undefined && e.name === name) return e;
    }
    return undefined;
  }

  /** Ancestors from the entity's parent up to (not including) the root. */
  ancestors(e: EntityRecord): EntityRecord[] {
    const out: EntityRecord[] = [];
    let cur = this.entities.get(e.parentId);
    while (cur) { out.push(cur); cur = this.entities.get(cur.parentId); }
    return out;
  }

  isDescendantOrSelf(candidate: EntityRecord, of: EntityRecord): boolean {
    if (candidate.id === of.id) return true;
    return this.ancestors(candidate).some((a) => a.id === of.id);
  }

  benefactor(e: EntityRecord): EntityRecord {
    for (let cur: EntityRecord | undefined = e; cur; cur = this.entities.get(cur.parentId)) {
      if (cur.acl) return cur;
    }
    return e; // every project has an ACL, so this is not reached for well-formed trees
  }

  perms(e: EntityRecord, userId: string): Set<Perm> {
    return this.benefactor(e).acl?.get(userId) ?? new Set();
  }

  can(e: EntityRecord, userId: string, ...perms: Perm[]): boolean {
    const p = this.perms(e, userId);
    return perms.every((x) => p.has(x));
  }

  /** Give `userId` exactly `perms` on `e`; an entity without an ACL first copies its benefactor's. */
  grant(e: EntityRecord, userId: string, perms: Perm[]): void {
    if (!e.acl) {
      const inherited = this.benefactor(e).acl ?? new Map<string, Set<Perm>>();
      e.acl = new Map([...inherited].map(([u, s]) => [u, new Set(s)]));
    }
    e.acl.set(userId, new Set(perms));
  }

  currentVersion(e: EntityRecord): EntityVersion {
    const v = e.versions[e.versions.length - 1];
    if (!v) throw new Error(`entity ${e.id} has no versions`);
    return v;
  }

  createEntity(init: {
    kind: EntityKind; name: string; parentId: number; userId: string; dataFileHandleId?: string;
    linksTo?: { targetId: string; targetVersionNumber?: number }; linksToClassName?: string;
    description?: string; versionLabel?: string; versionComment?: string; view?: ViewDefinition;
  }): EntityRecord {
    const now = nowIso();
    const v: EntityVersion = {
      versionNumber: 1,
      versionLabel: init.versionLabel ?? '1',
      modifiedOn: now,
      modifiedBy: init.userId,
    };
    if (init.versionComment !== undefined) v.versionComment = init.versionComment;
    if (init.dataFileHandleId !== undefined) v.dataFileHandleId = init.dataFileHandleId;
    const e: EntityRecord = {
      id: this.newEntityId(),
      name: init.name,
      parentId: init.parentId,
      kind: init.kind,
      etag: randomUUID(),
      createdOn: now,
      createdBy: init.userId,
      modifiedOn: now,
      modifiedBy: init.userId,
      versions: [v],
      annotations: {},
    };
    if (init.description !== undefined) e.description = init.description;
    if (init.linksTo) e.linksTo = init.linksTo;
    if (init.linksToClassName !== undefined) e.linksToClassName = init.linksToClassName;
    if (init.view) e.view = init.view;
    if (init.kind === 'project') e.acl = new Map([[init.userId, new Set(ALL_PERMS)]]);
    this.entities.set(e.id, e);
    this.index(e);
    return e;
  }

  /** Append a version (files): the label defaults to the version number. */
  addVersion(e: EntityRecord, userId: string, dataFileHandleId: string | undefined, label?: string, comment?: string): EntityVersion {
    const n = this.currentVersion(e).versionNumber + 1;
    const now = nowIso();
    const v: EntityVersion = { versionNumber: n, versionLabel: label ?? String(n), modifiedOn: now, modifiedBy: userId };
    if (comment !== undefined) v.versionComment = comment;
    if (dataFileHandleId !== undefined) v.dataFileHandleId = dataFileHandleId;
    e.versions.push(v);
    this.touch(e, userId);
    return v;
  }

  touch(e: EntityRecord, userId: string): void {
    e.etag = randomUUID();
    e.modifiedOn = nowIso();
    e.modifiedBy = userId;
  }

  /** The project (or folder) setting that applies to a node: its own or the nearest ancestor's. */
  uploadSettingFor(e: EntityRecord): ProjectSettingRecord | undefined {
    for (let cur: EntityRecord | undefined = e; cur; cur = this.entities.get(cur.parentId)) {
      const s = this.settingOn(cur.id);
      if (s) return s;
    }
    return undefined;
  }

  settingOn(entityId: number): ProjectSettingRecord | undefined {
    for (const s of this.projectSettings.values()) if (parseSynId(s.projectId) === entityId) return s;
    return undefined;
  }

  isStsLocation(id: number | undefined): boolean {
    if (id === undefined) return false;
    return this.storageLocations.get(id)?.stsEnabled === true;
  }

  isStsSetting(s: ProjectSettingRecord | undefined): boolean {
    return s !== undefined && this.isStsLocation(s.locations[0]);
  }

  /** Storage location new files of this container go to (first location of the effective setting). */
  effectiveLocation(e: EntityRecord): StorageLocationRecord {
    const s = this.uploadSettingFor(e);
    const id = s?.locations[0] ?? DEFAULT_STORAGE_LOCATION_ID;
    const loc = this.storageLocations.get(id) ?? this.storageLocations.get(DEFAULT_STORAGE_LOCATION_ID);
    if (!loc) throw new Error('default storage location missing');
    return loc;
  }

  addFileHandle(fh: Omit<FileHandleRecord, 'id' | 'etag' | 'createdOn' | 'modifiedOn'>): FileHandleRecord {
    const now = nowIso();
    const rec: FileHandleRecord = { ...fh, id: this.newFileHandleId(), etag: randomUUID(), createdOn: now, modifiedOn: now };
    this.fileHandles.set(rec.id, rec);
    return rec;
  }
}
