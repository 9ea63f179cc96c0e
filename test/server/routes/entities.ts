/**
 * Entity routes (repo service): create, get, update (rename, move, new versions), delete to the
 * trash can, versions, bundle2, annotations2 — with Synapse's permission checks, name rules,
 * 409 on a taken name and 412 on a stale etag. A FileEntity gets a new version when its
 * dataFileHandleId changes and the MD5s differ or are missing (EntityManagerImpl), or on
 * ?newVersion=true; renames and moves never version. EntityViews carry scopeIds, viewTypeMask and
 * columnIds (validated by routes/tables.ts, which serves their queries).
 */
import { CONCRETE } from '../../../src/synapse/types.js';
import {
  asObject, badRequest, conflict, forbidden, notFound, optString, preconditionFailed, type Router, type Obj,
} from '../http.js';
import { validateEntityName } from '../names.js';
import { ALL_PERMS, kindOfConcrete, parseSynId, ROOT_ID, synId, type EntityRecord, type State, type User } from '../state.js';
import { entityJson, fileHandleJson, versionInfoJson } from '../views.js';
import {
  isContainer, lookupEntity, queryFlag, readableEntity, requirePerm, validateCanAddFile, validateCanMoveFolder, type Deps,
} from './common.js';
import { viewDefinition } from './tables.js';

const DEFAULT_VERSION_LIMIT = 10;
const MAX_VERSION_LIMIT = 100;
const ANNOTATION_TYPES = new Set(['STRING', 'DOUBLE', 'LONG', 'TIMESTAMP_MS', 'BOOLEAN']);

function nameTaken(state: State, parentId: number, name: string, self?: EntityRecord): void {
  const other = state.childByName(parentId, name);
  if (other && other !== self) {
    throw conflict(`An entity with the name: ${name} already exists with a parentId: ${synId(parentId)}`);
  }
}

function checkFileHandleUse(state: State, user: User, fileHandleId: string, entity?: EntityRecord): void {
  const fh = state.fileHandles.get(fileHandleId);
  if (!fh) throw notFound(`FileHandle with id ${fileHandleId} does not exist`);
  const alreadyOnEntity = entity?.versions.some((v) => v.dataFileHandleId === fileHandleId) ?? false;
  if (fh.createdBy !== user.id && !alreadyOnEntity) {
    throw forbidden(`Only the creator of a FileHandle can assign it to an Entity. FileHandleId: ${fileHandleId}, UserId: ${user.id}`);
  }
}

function parentFor(state: State, body: Obj, user: User): EntityRecord {
  const parentText = optString(body, 'parentId');
  if (parentText === undefined) throw badRequest('parentId is required.');
  const parent = lookupEntity(state, parentText);
  if (!isContainer(parent)) throw badRequest(`The parent ${synId(parent.id)} is not a container (Project or Folder)`);
  requirePerm(state, parent, user.id, 'CREATE');
  return parent;
}

function linkTarget(state: State, body: Obj): { targetId: string; targetVersionNumber?: number } {
  const lt = body.linksTo;
  if (!lt || typeof lt !== 'object') throw badRequest('Link.linksTo is required.');
  const o = lt as Obj;
  const target = lookupEntity(state, optString(o, 'targetId'));
  const out: { targetId: string; targetVersionNumber?: number } = { targetId: synId(target.id) };
  if (typeof o.targetVersionNumber === 'number') out.targetVersionNumber = o.targetVersionNumber;
  return out;
}

export function register(router: Router, deps: Deps): void {
  const { state } = deps;

  router.add('POST', 'repo', '/entity', ({ body, user }) => {
    const b = asObject(body, 'Entity');
    const concreteType = optString(b, 'concreteType');
    if (!concreteType) throw badRequest('Entity.concreteType cannot be null');
    const kind = kindOfConcrete(concreteType);
    if (!kind) throw badRequest(`Unsupported concreteType: ${concreteType}`);
    let rawName = b.name;
    let dataFileHandleId: string | undefined;
    if (kind === 'file') {
      dataFileHandleId = optString(b, 'dataFileHandleId');
      if (!dataFileHandleId) throw badRequest('FileEntity.dataFileHandleId cannot be null');
      checkFileHandleUse(state, user, dataFileHandleId);
      if (rawName === undefined || rawName === null) rawName = state.fileHandles.get(dataFileHandleId)?.fileName;
    }
    const name = validateEntityName(rawName);
    let parentId = ROOT_ID;
    if (kind !== 'project') {
      const parent = parentFor(state, b, user);
      parentId = parent.id;
      if (kind === 'file' && dataFileHandleId) {
        const fh = state.fileHandles.get(dataFileHandleId);
        if (fh) validateCanAddFile(state, fh.storageLocationId, parent);
      }
    }
    nameTaken(state, parentId, name);
    const init: Parameters<State['createEntity']>[0] = { kind, name, parentId, userId: user.id };
    if (dataFileHandleId) init.dataFileHandleId = dataFileHandleId;
    const desc = optString(b, 'description');
    if (desc !== undefined) init.description = desc;
    const label = optString(b, 'versionLabel');
    if (label !== undefined) init.versionLabel = label;
    const comment = optString(b, 'versionComment');
    if (comment !== undefined) init.versionComment = comment;
    if (kind === 'link') {
      init.linksTo = linkTarget(state, b);
      init.linksToClassName = optString(b, 'linksToClassName') ?? CONCRETE.file;
    }
    if (kind === 'entityview') init.view = viewDefinition(state, b);
    const e = state.createEntity(init);
    return { status: 201, json: entityJson(state, e) };
  });

  router.add('GET', 'repo', '/entity/{id}', ({ params, user }) => {
    const e = readableEntity(state, params.id, user.id);
    return { status: 200, json: entityJson(state, e) };
  });

  router.add('GET', 'repo', '/entity/{id}/version/{n}', ({ params, user }) => {
    const e = readableEntity(state, params.id, user.id);
    const v = e.versions.find((x) => String(x.versionNumber) === params.n);
    if (!v) throw notFound(`Entity ${synId(e.id)} version ${params.n ?? ''} does not exist`);
    return { status: 200, json: entityJson(state, e, v) };
  });

  router.add('PUT', 'repo', '/entity/{id}', ({ params, user, body, url }) => {
    const e = lookupEntity(state, params.id);
    requirePerm(state, e, user.id, 'READ');
    const b = asObject(body, 'Entity');
    const bodyId = parseSynId(optString(b, 'id'));
    if (bodyId !== undefined && bodyId !== e.id) throw badRequest('The ID in the URL does not match the ID in the body');
    requirePerm(state, e, user.id, 'UPDATE');
    const ct = optString(b, 'concreteType');
    if (ct !== undefined && ct !== entityJson(state, e).concreteType) throw badRequest('Cannot change the concreteType of an entity');
    const etag = optString(b, 'etag');
    if (etag === undefined) throw badRequest('The etag is required to update an entity');
    if (etag !== e.etag) {
      throw preconditionFailed(`Object: ${synId(e.id)} was updated since you last fetched it, retrieve it again and re-apply the update`);
    }
    // validate everything before changing anything
    const name = b.name === undefined || b.name === null ? e.name : validateEntityName(b.name);
    let newParent = state.entities.get(e.parentId);
    const parentText = optString(b, 'parentId');
    if (parentText !== undefined && parseSynId(parentText) !== e.parentId) {
      if (e.kind === 'project') throw badRequest('A Project cannot be moved');
      const p = lookupEntity(state, parentText);
      if (!isContainer(p)) throw badRequest(`The parent ${synId(p.id)} is not a container (Project or Folder)`);
      if (state.isDescendantOrSelf(p, e)) throw badRequest('Cannot move an entity into itself or one of its descendants');
      requirePerm(state, p, user.id, 'CREATE');
      const oldParent = state.entities.get(e.parentId);
      if (e.kind === 'folder' && oldParent) validateCanMoveFolder(state, e, oldParent, p);
      newParent = p;
    }
    if (!newParent && e.kind !== 'project') throw notFound('Parent does not exist');
    const targetParentId = newParent?.id ?? ROOT_ID;
    if (name !== e.name || targetParentId !== e.parentId) nameTaken(state, targetParentId, name, e);

    const cur = state.currentVersion(e);
    let newHandle: string | undefined;
    let autoVersion = false;
    if (e.kind === 'file') {
      const dfh = optString(b, 'dataFileHandleId');
      if (!dfh) throw badRequest('FileEntity.dataFileHandleId cannot be null');
      if (dfh !== cur.dataFileHandleId) {
        checkFileHandleUse(state, user, dfh, e);
        const a = cur.dataFileHandleId ? state.fileHandles.get(cur.dataFileHandleId) : undefined;
        const c = state.fileHandles.get(dfh);
        autoVersion = !a?.contentMd5 || !c?.contentMd5 || a.contentMd5 !== c.contentMd5;
        newHandle = dfh;
      }
      const fhId = newHandle ?? cur.dataFileHandleId;
      const fh = fhId ? state.fileHandles.get(fhId) : undefined;
      if (fh && newParent && (newHandle !== undefined || targetParentId !== e.parentId)) validateCanAddFile(state, fh.storageLocationId, newParent);
    }
    if (e.kind === 'link' && b.linksTo !== undefined) e.linksTo = linkTarget(state, b);
    if (e.kind === 'entityview') e.view = viewDefinition(state, b, e.view);

    e.name = name;
    state.move(e, targetParentId);
    const desc = optString(b, 'description');
    if (desc !== undefined) e.description = desc; else if ('description' in b) delete e.description;
    const label = optString(b, 'versionLabel');
    const comment = optString(b, 'versionComment');
    const newVersion = e.kind === 'file' && (queryFlag(url, 'newVersion') || autoVersion);
    if (newVersion) {
      // Synapse clears a label equal to the current one so the new version gets its number
      const useLabel = label !== undefined && label !== cur.versionLabel ? label : undefined;
      state.addVersion(e, user.id, newHandle ?? cur.dataFileHandleId, useLabel, comment !== cur.versionComment ? comment : undefined);
    } else {
      if (newHandle !== undefined) cur.dataFileHandleId = newHandle;
      if (label !== undefined) cur.versionLabel = label;
      if (comment !== undefined) cur.versionComment = comment;
      cur.modifiedOn = new Date().toISOString();
      cur.modifiedBy = user.id;
      state.touch(e, user.id);
    }
    return { status: 200, json: entityJson(state, e) };
  });

  router.add('DELETE', 'repo', '/entity/{id}', ({ params, user }) => {
    const e = lookupEntity(state, params.id);
    requirePerm(state, e, user.id, 'DELETE');
    state.trash(e, user.id);
    state.touch(e, user.id);
    return { status: 200, empty: true };
  });

  // TrashController.restoreFromTrash (PUT /trashcan/restore/{id}): only the user who deleted
  // the entity, into the parent it was deleted from, which must be live, writable to them and
  // free of the name (NameConflictException). 200 with no body.
  router.add('PUT', 'repo', '/trashcan/restore/{id}', ({ params, user }) => {
    const id = parseSynId(params.id);
    const e = id === undefined ? undefined : state.entities.get(id);
    if (!e || e.trashedFrom === undefined) throw notFound(`The node ${params.id ?? ''} is not in the trash can.`);
    if (e.trashedBy !== user.id) {
      throw forbidden(`User ${user.id} not allowed to restore ${synId(e.id)}. The node was deleted by a different user.`);
    }
    const parent = state.entities.get(e.trashedFrom);
    if (!parent || state.isTrashed(parent)) {
      throw forbidden(`The intended parent ${synId(e.trashedFrom)} is in the trash can and cannot be restored to.`);
    }
    requirePerm(state, parent, user.id, 'CREATE');
    nameTaken(state, parent.id, e.name);
    state.restore(e);
    state.touch(e, user.id);
    // Into the root (a project): an ACL granting the restorer admin access, as Synapse makes.
    if (parent.id === ROOT_ID) state.grant(e, user.id, [...ALL_PERMS]);
    return { status: 200, empty: true };
  });

  router.add('GET', 'repo', '/entity/{id}/version', ({ params, user, url }) => {
    const e = readableEntity(state, params.id, user.id);
    const offset = Number(url.searchParams.get('offset') ?? 0);
    const limit = Number(url.searchParams.get('limit') ?? DEFAULT_VERSION_LIMIT);
    if (!Number.isInteger(offset) || offset < 0) throw badRequest('offset must be a non-negative integer');
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_VERSION_LIMIT) throw badRequest(`limit must be between 1 and ${MAX_VERSION_LIMIT}`);
    const newestFirst = [...e.versions].reverse();
    return {
      status: 200,
      json: {
        totalNumberOfResults: newestFirst.length,
        results: newestFirst.slice(offset, offset + limit).map((v) => versionInfoJson(state, e, v)),
      },
    };
  });

  const bundle = (e: EntityRecord, userId: string, body: unknown, versionNumber?: string) => {
    const b = body === undefined ? {} : asObject(body, 'EntityBundleRequest');
    const v = versionNumber === undefined ? undefined : e.versions.find((x) => String(x.versionNumber) === versionNumber);
    if (versionNumber !== undefined && !v) throw notFound(`Entity ${synId(e.id)} version ${versionNumber} does not exist`);
    const out: Record<string, unknown> = {};
    if (b.includeEntity === true) out.entity = entityJson(state, e, v);
    out.entityType = e.kind;
    if (b.includeAnnotations === true) out.annotations = { id: synId(e.id), etag: e.etag, annotations: e.annotations };
    if (b.includeFileHandles === true) {
      const ver = v ?? state.currentVersion(e);
      const fh = ver.dataFileHandleId ? state.fileHandles.get(ver.dataFileHandleId) : undefined;
      out.fileHandles = fh && state.can(e, userId, 'DOWNLOAD') ? [fileHandleJson(fh)] : [];
    }
    if (b.includeRestrictionInformation === true) {
      out.restrictionInformation = { objectId: e.id, restrictionLevel: 'OPEN', hasUnmetAccessRequirement: false };
    }
    if (b.includePermissions === true) {
      const p = state.perms(e, userId);
      out.permissions = {
        canView: p.has('READ'), canEdit: p.has('UPDATE'), canMove: p.has('UPDATE'), canAddChild: p.has('CREATE'),
        canDelete: p.has('DELETE'), canDownload: p.has('DOWNLOAD'), canChangePermissions: p.has('CHANGE_PERMISSIONS'),
        canUpload: p.has('CREATE'), ownerPrincipalId: Number(e.createdBy), isEntityOpenData: false,
      };
    }
    if (b.includeBenefactorACL === true) out.benefactorAcl = { id: synId(state.benefactor(e).id) };
    return { status: 200, json: out };
  };

  router.add('POST', 'repo', '/entity/{id}/bundle2', ({ params, user, body }) =>
    bundle(readableEntity(state, params.id, user.id), user.id, body));
  router.add('POST', 'repo', '/entity/{id}/version/{n}/bundle2', ({ params, user, body }) =>
    bundle(readableEntity(state, params.id, user.id), user.id, body, params.n));

  router.add('GET', 'repo', '/entity/{id}/annotations2', ({ params, user }) => {
    const e = readableEntity(state, params.id, user.id);
    return { status: 200, json: { id: synId(e.id), etag: e.etag, annotations: e.annotations } };
  });

  router.add('PUT', 'repo', '/entity/{id}/annotations2', ({ params, user, body }) => {
    const e = readableEntity(state, params.id, user.id);
    requirePerm(state, e, user.id, 'UPDATE');
    const b = asObject(body, 'Annotations');
    const bodyId = parseSynId(optString(b, 'id'));
    if (bodyId !== undefined && bodyId !== e.id) throw badRequest('The ID in the URL does not match the ID in the body');
    const etag = optString(b, 'etag');
    if (etag === undefined) throw badRequest('etag is required.');
    if (etag !== e.etag) {
      throw preconditionFailed(`Object: ${synId(e.id)} was updated since you last fetched it, retrieve it again and re-apply the update`);
    }
    const raw = b.annotations ?? {};
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw badRequest('annotations must be an object');
    const next: EntityRecord['annotations'] = {};
    for (const [k, val] of Object.entries(raw as Obj)) {
      const o = val as Obj | null;
      if (!o || typeof o !== 'object' || typeof o.type !== 'string' || !ANNOTATION_TYPES.has(o.type) || !Array.isArray(o.value)) {
        throw badRequest(`Annotation "${k}" must have a type (${[...ANNOTATION_TYPES].join(', ')}) and a value list`);
      }
      next[k] = { type: o.type, value: o.value.map((x) => String(x)) };
    }
    e.annotations = next;
    state.touch(e, user.id);
    return { status: 200, json: { id: synId(e.id), etag: e.etag, annotations: e.annotations } };
  });

  void deps;
}
