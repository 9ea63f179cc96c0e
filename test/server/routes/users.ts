/**
 * GET /userProfile (the caller) and GET /userProfile/{id} — how clients validate a token and
 * learn their userName (ownerId is the user id as a string).
 */
import { notFound, type Router } from '../http.js';
import type { User } from '../state.js';
import type { Deps } from './common.js';

function profileJson(u: User, self: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ownerId: u.id,
    etag: u.etag,
    firstName: u.firstName,
    lastName: u.lastName,
    userName: u.userName,
    createdOn: u.createdOn,
  };
  if (self) out.emails = [u.email];
  return out;
}

export function register(router: Router, deps: Deps): void {
  router.add('GET', 'repo', '/userProfile', ({ user }) => ({ status: 200, json: profileJson(user, true) }));
  router.add('GET', 'repo', '/userProfile/{id}', ({ params, user }) => {
    const u = deps.state.users.get(params.id ?? '');
    if (!u) throw notFound(`UserProfile with id ${params.id ?? ''} does not exist`);
    return { status: 200, json: profileJson(u, u.id === user.id) };
  });
}
