/**
 * Storage locations, project settings and upload destinations — ProjectSettingsManagerImpl's
 * rules: an ExternalS3StorageLocationSetting needs `<baseKey>/owner.txt` in the bucket whose
 * first line is the creator's userName (or email); only a location's creator may put it in a
 * project setting; STS locations only on an empty folder (trash included), alone, never below
 * another STS folder. A Synapse-storage location with stsEnabled gets a generated baseKey
 * `<userId>/<uuid>` in the managed bucket. GET of a missing project setting answers 200 with an
 * empty body (no JSON content type), as synapse.org does.
 */
import { randomUUID } from 'node:crypto';
import { CONCRETE } from '../../../src/synapse/types.js';
import {
  asObject, badRequest, forbidden, notFound, optBool, optString, preconditionFailed, reqString, type Router, type Obj,
} from '../http.js';
import { DEFAULT_STORAGE_LOCATION_ID, nowIso, parseSynId, synId, type State, type StorageLocationRecord, type User } from '../state.js';
import { projectSettingJson, storageLocationJson, uploadDestinationJson } from '../views.js';
import { isContainer, lookupEntity, readableEntity, requirePerm, type Deps } from './common.js';

const OWNER_MARKER = 'owner.txt';
const MAX_LOCATIONS_PER_PROJECT = 10;
const EXTERNAL_STORAGE_HELP =
  'http://docs.synapse.org/articles/custom_storage_location.html for more information on how to create a new external upload destination.';

function explanation(user: User, bucket: string, key: string): string {
  return `For security purposes, Synapse needs to establish that ${user.userName} has permission to write to the bucket. ` +
    `Please create an object in bucket '${bucket}' with key '${key}' that contains the text '${user.userName}'. Also see ${EXTERNAL_STORAGE_HELP}`;
}

function parseLocations(b: Obj): number[] {
  const raw = b.locations;
  if (!Array.isArray(raw)) throw badRequest('settings.locations is required.');
  if (raw.length < 1) throw badRequest('settings.locations must at least have one entry');
  if (raw.length > MAX_LOCATIONS_PER_PROJECT) throw badRequest(`The maximum number of settings.locations is limited to ${MAX_LOCATIONS_PER_PROJECT}`);
  return raw.map((x) => {
    const n = typeof x === 'string' ? Number(x) : x;
    if (typeof n !== 'number' || !Number.isInteger(n)) throw badRequest(`uploadId ${String(x)} is not a valid upload destination location`);
    return n;
  });
}

export function register(router: Router, deps: Deps): void {
  const { state, s3 } = deps;

  /** ProjectSettingsManagerImpl.validateUploadDestinationListSetting */
  const validateLocations = (locations: number[], projectKind: string, user: User): void => {
    for (const id of locations) {
      const loc = state.storageLocations.get(id);
      if (!loc) throw badRequest(`uploadId ${id} is not a valid upload destination location`);
      if (loc.concreteType === CONCRETE.externalS3Location && loc.createdBy !== user.id) {
        throw forbidden(
          `Only the owner of the external S3 upload destination (user ${state.userName(loc.createdBy)}) can add this upload destination to a project. ` +
          `Either ask that user to perform this operation or follow the steps to create a new external s3 upload destination (see ${EXTERNAL_STORAGE_HELP}`,
        );
      }
      if (loc.stsEnabled === true) {
        if (projectKind !== 'folder') throw badRequest('Can only enable STS on a folder');
        if (locations.length !== 1) throw badRequest('An STS-enabled folder cannot add other upload destinations');
      }
    }
  };

  router.add('POST', 'repo', '/storageLocation', async ({ body, user }) => {
    const b = asObject(body, 'StorageLocationSetting');
    const concreteType = reqString(b, 'concreteType');
    const stsEnabled = optBool(b, 'stsEnabled');
    const banner = optString(b, 'banner');
    const description = optString(b, 'description');
    let rec: Omit<StorageLocationRecord, 'storageLocationId' | 'etag' | 'createdOn'>;
    if (concreteType === CONCRETE.externalS3Location) {
      const bucket = reqString(b, 'bucket');
      const baseKey = optString(b, 'baseKey');
      if (baseKey !== undefined && baseKey.endsWith('/')) throw badRequest('Base keys cannot end with trailing slashes');
      const ownerKey = (baseKey === undefined ? '' : `${baseKey}/`) + OWNER_MARKER;
      const got = await s3.get(bucket, ownerKey);
      if (!Buffer.isBuffer(got)) {
        if (got.code === 'NoSuchBucket') throw badRequest(`Did not find S3 bucket ${bucket}. ${explanation(user, bucket, ownerKey)}`);
        if (got.code === 'NoSuchKey' || got.code === 'NotFound') {
          const hint = ownerKey === OWNER_MARKER ? '' : 'If the S3 object is in a folder, please make sure you specify a trailing \'/\' in the base key. ';
          throw badRequest(`Did not find S3 object at key ${ownerKey} from bucket ${bucket}. ${hint}${explanation(user, bucket, ownerKey)}`);
        }
        throw badRequest(`Could not read S3 object at key ${ownerKey} from bucket ${bucket}: ${got.code}. ${explanation(user, bucket, ownerKey)}`);
      }
      const firstLine = (got.toString('utf8').split(/\r?\n/)[0] ?? '').trim();
      if (firstLine === '') throw badRequest(`No username found under key ${ownerKey} from bucket ${bucket}. ${explanation(user, bucket, ownerKey)}`);
      const lc = firstLine.toLowerCase();
      if (lc !== user.userName.toLowerCase() && lc !== user.email.toLowerCase()) {
        throw badRequest(`The username ${firstLine} found under key ${ownerKey} from bucket ${bucket} is not what was expected. ${explanation(user, bucket, ownerKey)}`);
      }
      rec = { concreteType, uploadType: optString(b, 'uploadType') ?? 'NONE', bucket, createdBy: user.id };
      if (baseKey !== undefined) rec.baseKey = baseKey;
      const endpointUrl = optString(b, 'endpointUrl');
      if (endpointUrl !== undefined) rec.endpointUrl = endpointUrl;
    } else if (concreteType === CONCRETE.s3Location) {
      if (optString(b, 'baseKey') !== undefined) throw badRequest('Cannot specify baseKey when creating an S3StorageLocationSetting');
      rec = { concreteType, uploadType: optString(b, 'uploadType') ?? 'NONE', bucket: state.managedBucket, createdBy: user.id };
      if (stsEnabled === true) rec.baseKey = `${user.id}/${randomUUID()}`;
    } else {
      throw badRequest(`Unsupported storage location type: ${concreteType}`);
    }
    if (stsEnabled !== undefined) rec.stsEnabled = stsEnabled;
    if (banner !== undefined) rec.banner = banner;
    if (description !== undefined) rec.description = description;
    // Synapse de-duplicates identical settings of the same user (StorageLocationDAO data hash),
    // Synapse-managed ones too; an STS one never matches (its base key is new each time).
    {
      for (const existing of state.storageLocations.values()) {
        if (existing.createdBy === rec.createdBy && existing.concreteType === rec.concreteType && existing.bucket === rec.bucket
          && existing.baseKey === rec.baseKey && existing.stsEnabled === rec.stsEnabled && existing.uploadType === rec.uploadType
          && existing.banner === rec.banner && existing.endpointUrl === rec.endpointUrl) {
          return { status: 201, json: storageLocationJson(existing) };
        }
      }
    }
    const full: StorageLocationRecord = { ...rec, storageLocationId: state.newStorageLocationId(), etag: randomUUID(), createdOn: nowIso() };
    state.storageLocations.set(full.storageLocationId, full);
    return { status: 201, json: storageLocationJson(full) };
  });

  router.add('GET', 'repo', '/storageLocation/{id}', ({ params, user }) => {
    const loc = state.storageLocations.get(Number(params.id));
    if (!loc) throw notFound(`StorageLocationSetting with id ${params.id ?? ''} does not exist`);
    if (loc.createdBy !== user.id) throw forbidden('Only the creator can access storage location settings');
    return { status: 200, json: storageLocationJson(loc) };
  });

  router.add('GET', 'repo', '/projectSettings/{id}/type/{type}', ({ params, user }) => {
    if (params.type !== 'upload') throw badRequest(`Unknown project settings type: ${params.type ?? ''}`);
    const e = lookupEntity(state, params.id);
    if (!state.can(e, user.id, 'READ')) throw forbidden(`The current user does not have READ access on the project ${synId(e.id)}.`);
    const s = state.settingOn(e.id);
    return s ? { status: 200, json: projectSettingJson(s) } : { status: 200, empty: true };
  });

  router.add('GET', 'repo', '/projectSettings/{id}', ({ params, user }) => {
    const s = params.id ? state.projectSettings.get(params.id) : undefined;
    if (!s) throw notFound(`ProjectSetting with id ${params.id ?? ''} does not exist`);
    const e = lookupEntity(state, s.projectId);
    if (!state.can(e, user.id, 'READ')) throw forbidden('The current user does not have READ access on the project this setting applies to.');
    return { status: 200, json: projectSettingJson(s) };
  });

  router.add('POST', 'repo', '/projectSettings', ({ body, user }) => {
    const b = asObject(body, 'ProjectSetting');
    const ct = optString(b, 'concreteType');
    if (ct !== undefined && ct !== CONCRETE.uploadListSetting) throw badRequest(`Unsupported project setting type: ${ct}`);
    const st = optString(b, 'settingsType');
    if (st !== undefined && st !== 'upload') throw badRequest(`Unknown project settings type: ${st}`);
    const e = lookupEntity(state, reqString(b, 'projectId'));
    if (!isContainer(e)) throw badRequest('The id is not the id of a project or folder entity');
    if (!state.can(e, user.id, 'CREATE')) throw forbidden('Cannot create settings for this project');
    const inherited = state.uploadSettingFor(e);
    if (inherited && state.isStsSetting(inherited)) throw badRequest('Can\'t override project settings in an STS-enabled folder path');
    if (state.settingOn(e.id)) throw badRequest(`A project setting of type upload already exists for ${synId(e.id)}`);
    const locations = parseLocations(b);
    validateLocations(locations, e.kind, user);
    if (state.isStsLocation(locations[0]) && state.childrenInclTrash(e.id).length > 0) {
      throw badRequest('Can\'t enable STS in a non-empty folder');
    }
    const s = { id: state.newProjectSettingId(), etag: randomUUID(), projectId: synId(e.id), locations };
    state.projectSettings.set(s.id, s);
    return { status: 201, json: projectSettingJson(s) };
  });

  router.add('PUT', 'repo', '/projectSettings', ({ body, user }) => {
    const b = asObject(body, 'ProjectSetting');
    const id = reqString(b, 'id');
    const projectId = reqString(b, 'projectId');
    const e = lookupEntity(state, projectId);
    if (!state.can(e, user.id, 'UPDATE')) throw forbidden('Cannot update settings on this project');
    const s = state.projectSettings.get(id);
    if (!s) throw notFound(`ProjectSetting with id ${id} does not exist`);
    if (parseSynId(s.projectId) !== e.id) throw badRequest('The projectId of a project setting cannot be changed');
    const etag = optString(b, 'etag');
    if (etag !== s.etag) throw preconditionFailed(`Project setting ${id} was updated since you last fetched it, retrieve it again and re-apply the update`);
    const locations = parseLocations(b);
    validateLocations(locations, e.kind, user);
    if (state.isStsLocation(locations[0]) && !state.isStsSetting(s) && state.childrenInclTrash(e.id).length > 0) {
      throw badRequest('Can\'t enable STS in a non-empty folder');
    }
    s.locations = locations;
    s.etag = randomUUID();
    return { status: 200, empty: true };
  });

  router.add('DELETE', 'repo', '/projectSettings/{id}', ({ params, user }) => {
    const s = params.id ? state.projectSettings.get(params.id) : undefined;
    if (!s) throw notFound(`ProjectSetting with id ${params.id ?? ''} does not exist`);
    const e = lookupEntity(state, s.projectId);
    if (!state.can(e, user.id, 'DELETE')) throw forbidden('Cannot delete settings from this project');
    state.projectSettings.delete(s.id);
    return { status: 200, empty: true };
  });

  router.add('GET', 'file', '/entity/{id}/uploadDestination', ({ params, user }) => {
    const e = readableEntity(state, params.id, user.id);
    return { status: 200, json: uploadDestinationJson(state.effectiveLocation(e), s3.endpoint) };
  });

  router.add('GET', 'file', '/entity/{id}/uploadDestination/{locationId}', ({ params, user }) => {
    const e = readableEntity(state, params.id, user.id);
    const id = Number(params.locationId);
    const allowed = state.uploadSettingFor(e)?.locations ?? [DEFAULT_STORAGE_LOCATION_ID];
    const loc = state.storageLocations.get(id);
    if (!loc) throw notFound(`StorageLocationSetting with id ${params.locationId ?? ''} does not exist`);
    if (!allowed.includes(id)) throw badRequest(`Storage location ${id} is not an upload destination of ${synId(e.id)}`);
    return { status: 200, json: uploadDestinationJson(loc, s3.endpoint) };
  });

  void requirePerm;
}
