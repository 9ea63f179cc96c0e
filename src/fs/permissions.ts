/**
 * Write permission, asked before a change rather than learned at close.
 *
 * Synapse checks every change, but the mount publishes at close(): a collaborator with read
 * access only saw `echo x > f`, `>>`, `truncate` and `touch` "succeed" — close errors reach few
 * programs (the shell ignores them) — and each left a journal entry `recover` could never
 * publish and an empty file in the listing (QA pass, collaborators). So create and
 * open-for-writing ask first (bundle2 `includePermissions`, the caller's UserEntityPermissions),
 * and a rename onto a file asks for DELETE on the source before committing anything (Synapse
 * took the new version and then refused the delete, leaving both).
 *
 * Answers are kept for the metadata TTL, by ACL benefactor where the listing named one (an
 * entity's permissions are its benefactor's ACL), so a thousand files of one project cost one
 * request. A failed check (Synapse unreachable) lets the change through: the publish decides,
 * as before. A permission granted meanwhile is seen within the TTL.
 */
import type { Logger } from 'pino';
import type { SynapseApi } from '../synapse/api.js';
import type { UserEntityPermissions } from '../synapse/types.js';
import { FsError } from './errors.js';

export type WriteAction = 'add files to' | 'change' | 'delete';

const FIELD: Record<WriteAction, keyof UserEntityPermissions> = {
  'add files to': 'canAddChild',
  change: 'canEdit',
  delete: 'canDelete',
};

export class Permissions {
  private readonly known = new Map<string, { perms: UserEntityPermissions; at: number }>();

  constructor(
    private readonly api: SynapseApi,
    private readonly ttlMs: () => number,
    private readonly logger?: Logger,
  ) {}

  /** EACCES unless the user may `action` the entity (`benefactorId`: its ACL's entity, if known). */
  async require(action: WriteAction, entityId: string, path: string, benefactorId?: string): Promise<void> {
    const perms = await this.of(entityId, benefactorId);
    if (!perms || perms[FIELD[action]]) return;
    throw new FsError('EACCES', `${path}: you may not ${action} ${entityId} in Synapse (${FIELD[action]} is false for your account)`);
  }

  private async of(entityId: string, benefactorId: string | undefined): Promise<UserEntityPermissions | undefined> {
    const key = benefactorId ? `b${benefactorId}` : entityId;
    const hit = this.known.get(key);
    if (hit && Date.now() - hit.at < this.ttlMs()) return hit.perms;
    try {
      const bundle = await this.api.getBundle(entityId, { includePermissions: true });
      if (!bundle.permissions) return undefined;
      if (this.known.size > 10_000) this.known.clear();
      this.known.set(key, { perms: bundle.permissions, at: Date.now() });
      return bundle.permissions;
    } catch (err) {
      this.logger?.debug({ err, entityId }, 'permission check failed; the change goes ahead and Synapse decides');
      return undefined;
    }
  }
}
