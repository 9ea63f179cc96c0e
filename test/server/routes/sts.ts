/**
 * GET /entity/{id}/sts?permission=read_only|read_write — StsManagerImpl's rules: the entity's
 * nearest project setting must use an STS-enabled location; read_write is refused on Synapse
 * storage; read_only needs DOWNLOAD, read_write DOWNLOAD+UPDATE+CREATE+DELETE. Credentials live
 * `stsLifetimeSec` (1 hour on synapse.org) and are registered with the S3 gate, scoped to the
 * location's bucket and `baseKey/`. Access key ids look like AWS session keys (ASIA…).
 */
import { randomBytes } from 'node:crypto';
import { CONCRETE } from '../../../src/synapse/types.js';
import { badRequest, type Router } from '../http.js';
import { lookupEntity, requirePerm, type Deps } from './common.js';

export function register(router: Router, deps: Deps): void {
  const { state, s3, stats } = deps;

  router.add('GET', 'repo', '/entity/{id}/sts', ({ params, user, url, config }) => {
    const permission = url.searchParams.get('permission');
    if (permission === null) throw badRequest('permission is required.');
    if (permission !== 'read_only' && permission !== 'read_write') throw badRequest(`Invalid permission: ${permission}`);
    const e = lookupEntity(state, params.id);
    const setting = state.uploadSettingFor(e);
    if (!setting) throw badRequest('Entity must have a project setting');
    if (!state.isStsSetting(setting)) throw badRequest('Entity must have an STS-enabled storage location');
    const loc = state.storageLocations.get(setting.locations[0] ?? -1);
    if (!loc) throw badRequest('Entity must have an STS-enabled storage location');
    if (permission === 'read_write' && loc.concreteType === CONCRETE.s3Location) {
      throw badRequest('STS write access is not allowed in Synapse storage');
    }
    if (permission === 'read_write') requirePerm(state, e, user.id, 'DOWNLOAD', 'UPDATE', 'CREATE', 'DELETE');
    else requirePerm(state, e, user.id, 'DOWNLOAD');

    const accessKeyId = `ASIA${randomBytes(8).toString('hex').toUpperCase()}`;
    const secretAccessKey = randomBytes(30).toString('base64');
    const sessionToken = randomBytes(96).toString('base64');
    const expiresAt = Date.now() + config.stsLifetimeSec * 1000;
    const session = {
      accessKeyId, secretAccessKey, sessionToken, bucket: loc.bucket, permission, expiresAt, userId: user.id,
      ...(loc.baseKey !== undefined ? { baseKey: loc.baseKey } : {}),
    } as const;
    s3.registerSession(session);
    stats.countSts(user.id);
    const out: Record<string, unknown> = { bucket: loc.bucket };
    if (loc.baseKey !== undefined) out.baseKey = loc.baseKey;
    Object.assign(out, { accessKeyId, secretAccessKey, sessionToken, expiration: new Date(expiresAt).toISOString() });
    return { status: 200, json: out };
  });
}
