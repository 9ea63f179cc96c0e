/**
 * Permissions (src/fs/permissions.ts): asked before a change, kept per ACL benefactor for the
 * metadata TTL within [10 s, 10 min], one request for checks of one key at once. A fake at the
 * seam: getBundle answers scripted permissions and counts its calls.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SynapseApi } from '../../src/synapse/api.js';
import type { UserEntityPermissions } from '../../src/synapse/types.js';
import { errnoName } from '../../src/fs/errors.js';
import { Permissions, PERMISSION_TTL_MAX_MS } from '../../src/fs/permissions.js';

function fakeApi(perms: UserEntityPermissions, delayMs = 0): { api: SynapseApi; calls: () => number; set: (p: UserEntityPermissions) => void } {
  let calls = 0;
  let current = perms;
  const api = {
    getBundle: async () => {
      calls++;
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      return { permissions: current };
    },
  } as unknown as SynapseApi;
  return { api, calls: () => calls, set: (p) => { current = p; } };
}

const readOnly = { canAddChild: false, canEdit: false, canDelete: false };
const editor = { canAddChild: true, canEdit: true, canDelete: false };

test('with --metadata-ttl 0 a burst of creates under one ACL asks Synapse once (not once per file)', async () => {
  const f = fakeApi(editor);
  const p = new Permissions(f.api, () => 0);
  for (let i = 0; i < 100; i++) await p.require('add files to', `syn${i}`, `/f${i}`, 'syn1');
  assert.equal(f.calls(), 1);
});

test('checks of one key at once share one request (xargs -P 8 cp)', async () => {
  const f = fakeApi(editor, 20);
  const p = new Permissions(f.api, () => 60_000);
  await Promise.all(Array.from({ length: 8 }, (_, i) => p.require('change', `syn${i}`, `/f${i}`, 'syn1')));
  assert.equal(f.calls(), 1);
});

test('a refusal is EACCES naming the missing right; an indefinite TTL still re-asks after 10 minutes', async (t) => {
  t.mock.timers.enable({ apis: ['Date'] });
  const f = fakeApi(readOnly);
  const p = new Permissions(f.api, () => Number.POSITIVE_INFINITY);
  await assert.rejects(p.require('change', 'syn5', '/x', 'syn1'), (err: unknown) => errnoName(err) === 'EACCES' && /canEdit/.test(String(err)));
  f.set(editor); // granted meanwhile
  t.mock.timers.tick(PERMISSION_TTL_MAX_MS - 1000);
  await assert.rejects(p.require('change', 'syn5', '/x', 'syn1'), (err: unknown) => errnoName(err) === 'EACCES', 'still the kept answer');
  t.mock.timers.tick(2000);
  await p.require('change', 'syn5', '/x', 'syn1');
  assert.equal(f.calls(), 2);
});

test('an unreachable Synapse lets the change through (the publish decides), and is asked again next time', async () => {
  let calls = 0;
  const api = { getBundle: async () => { calls++; throw new Error('ECONNREFUSED'); } } as unknown as SynapseApi;
  const p = new Permissions(api, () => 60_000);
  await p.require('delete', 'syn5', '/x');
  await p.require('delete', 'syn5', '/x');
  assert.equal(calls, 2, 'a failure is not kept');
});
