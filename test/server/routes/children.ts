/**
 * POST /entity/children and POST /entity/child. Pages hold `childrenPageSize` entries (50 on
 * synapse.org); nextPageToken uses Synapse's NextPageToken format "<limit>a<offset>". Children
 * the caller cannot READ are left out, as Synapse filters by benefactor. includeTypes is required
 * (400 without it); a null parentId lists the projects the caller can read (EntityManagerImpl).
 */
import { asObject, badRequest, forbidden, notFound, optString, optBool, type Router } from '../http.js';
import { ROOT_ID, synId, type EntityKind, type EntityRecord } from '../state.js';
import { entityHeaderJson } from '../views.js';
import { isContainer, lookupEntity, requirePerm, type Deps } from './common.js';

const TYPE_NAMES: Record<string, EntityKind | undefined> = {
  project: 'project', folder: 'folder', file: 'file', link: 'link', entityview: 'entityview',
};
const KNOWN_TYPES = new Set([
  'project', 'folder', 'file', 'link', 'table', 'entityview', 'dockerrepo', 'submissionview', 'dataset',
  'datasetcollection', 'materializedview', 'virtualtable',
]);

function parseToken(token: string | undefined, pageSize: number): { limit: number; offset: number } {
  if (token === undefined || token === null) return { limit: pageSize, offset: 0 };
  const m = /^(\d+)a(\d+)$/.exec(token);
  if (!m) throw badRequest(`Invalid nextPageToken: ${token}`);
  return { limit: Number(m[1]), offset: Number(m[2]) };
}

export function register(router: Router, deps: Deps): void {
  const { state } = deps;

  router.add('POST', 'repo', '/entity/children', ({ body, user, config }) => {
    const b = asObject(body, 'EntityChildrenRequest');
    const parentText = optString(b, 'parentId');
    // a null parentId lists projects (EntityManagerImpl.getChildren); otherwise includeTypes is required
    const types = parentText === undefined ? ['project'] : b.includeTypes;
    if (types === undefined || types === null) throw badRequest('EntityChildrenRequest.includeTypes is required.');
    if (!Array.isArray(types)) throw badRequest('EntityChildrenRequest.includeTypes must be a list');
    if (types.length === 0) throw badRequest('EntityChildrenRequest.includeTypes must include at least one type');
    const kinds = new Set<EntityKind>();
    for (const t of types) {
      if (typeof t !== 'string' || !KNOWN_TYPES.has(t)) throw badRequest(`Unknown entity type in includeTypes: ${String(t)}`);
      const k = TYPE_NAMES[t];
      if (k) kinds.add(k);
    }
    const sortBy = optString(b, 'sortBy') ?? 'NAME';
    if (sortBy !== 'NAME' && sortBy !== 'CREATED_ON' && sortBy !== 'MODIFIED_ON') throw badRequest(`Unknown sortBy: ${sortBy}`);
    const dir = optString(b, 'sortDirection') ?? 'ASC';
    if (dir !== 'ASC' && dir !== 'DESC') throw badRequest(`Unknown sortDirection: ${dir}`);
    const { limit, offset } = parseToken(optString(b, 'nextPageToken'), config.childrenPageSize);

    let parentId = ROOT_ID;
    if (parentText !== undefined) {
      const parent = lookupEntity(state, parentText);
      requirePerm(state, parent, user.id, 'READ');
      parentId = parent.id;
    }
    const all = state.children(parentId).filter((e) => kinds.has(e.kind) && state.can(e, user.id, 'READ'));
    const key = (e: EntityRecord): string => (sortBy === 'NAME' ? e.name : sortBy === 'CREATED_ON' ? e.createdOn : e.modifiedOn);
    all.sort((a, c) => {
      const ka = key(a); const kc = key(c);
      const r = ka < kc ? -1 : ka > kc ? 1 : a.id - c.id;
      return dir === 'ASC' ? r : -r;
    });
    const page = all.slice(offset, offset + limit);
    const out: Record<string, unknown> = { page: page.map((e) => entityHeaderJson(state, e)) };
    if (offset + limit < all.length) out.nextPageToken = `${limit}a${offset + limit}`;
    if (optBool(b, 'includeTotalChildCount') === true) out.totalChildCount = all.length;
    if (optBool(b, 'includeSumFileSizes') === true) {
      let sum = 0;
      for (const e of all) {
        if (e.kind !== 'file') continue;
        const fhId = state.currentVersion(e).dataFileHandleId;
        sum += (fhId ? state.fileHandles.get(fhId)?.contentSize : 0) ?? 0;
      }
      out.sumFileSizesBytes = sum;
    }
    return { status: 200, json: out };
  });

  router.add('POST', 'repo', '/entity/child', ({ body, user }) => {
    const b = asObject(body, 'EntityLookupRequest');
    const name = optString(b, 'entityName');
    if (!name) throw badRequest('EntityLookupRequest.entityName is required.');
    const parentText = optString(b, 'parentId');
    let parentId = ROOT_ID;
    if (parentText !== undefined) {
      const parent = lookupEntity(state, parentText);
      if (!state.can(parent, user.id, 'READ')) throw forbidden('Lack of READ permission on the parent entity.');
      if (!isContainer(parent)) throw notFound('The resource you are attempting to access cannot be found');
      parentId = parent.id;
    }
    const child = state.childByName(parentId, name);
    if (!child) throw notFound('The resource you are attempting to access cannot be found');
    if (!state.can(child, user.id, 'READ')) throw forbidden('Lack of READ permission on the requested entity.');
    return { status: 200, json: { id: synId(child.id) } };
  });
}
