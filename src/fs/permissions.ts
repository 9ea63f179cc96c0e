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
 * Answers are kept for the metadata TTL — but at least 10 s (with `--metadata-ttl 0` a `cp -r`
 * of 10,000 files asked 10,000 times, at Synapse's 600 a minute) and at most 10 min (an
 * indefinite TTL would never see a grant or a revocation) — by ACL benefactor where the listing
 * named one (an entity's permissions are its benefactor's ACL), so a thousand files of one
 * project cost one request; checks of one key at once share it (`xargs -P 8 cp`). A failed
 * check (Synapse unreachable) lets the change through: the publish decides, as before.
 */
import { LRUCache } from 'lru-cache';
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

/** Bounds of how long an answer is kept (module head). */
export const PERMISSION_TTL_MIN_MS = 10_000;
export const PERMISSION_TTL_MAX_MS = 600_000;

export class Permissions {
  private readonly known = new LRUCache<string, { perms: UserEntityPermissions; at: number }>({ max: 10_000 });
  private readonly asking = new Map<string, Promise<UserEntityPermissions | undefined>>();

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

  private of(entityId: string, benefactorId: string | undefined): Promise<UserEntityPermissions | undefined> {
    const key = benefactorId ? `b${benefactorId}` : entityId;
    const hit = this.known.get(key);
    const ttl = Math.min(PERMISSION_TTL_MAX_MS, Math.max(PERMISSION_TTL_MIN_MS, this.ttlMs()));
    if (hit && Date.now() - hit.at < ttl) return Promise.resolve(hit.perms);
    let asking = this.asking.get(key);
    if (!asking) {
      const mine = this.ask(key, entityId).finally(() => {
        if (this.asking.get(key) === mine) this.asking.delete(key);
      });
      asking = mine;
      this.asking.set(key, mine);
    }
    return asking;
  }

  private async ask(key: string, entityId: string): Promise<UserEntityPermissions | undefined> {
    try {
      const bundle = await this.api.getBundle(entityId, { includePermissions: true });
      if (!bundle.permissions) return undefined;
      this.known.set(key, { perms: bundle.permissions, at: Date.now() });
      return bundle.permissions;
    } catch (err) {
      this.logger?.debug({ err, entityId }, 'permission check failed; the change goes ahead and Synapse decides');
      return undefined;
    }
  }
}
